"""What the mapper is asked to do: every choice of :func:`mapper.map_graph`, as one frozen value.

Each choice is an enum (a :class:`enum.StrEnum`, so ``options.allocator == "ilp"`` holds and sweep
files may say ``mapper.allocator = "ilp"``); strings are turned into members in ``__post_init__``,
and a value outside the allowed ones is a :class:`~accel.errors.MappingError` naming the field and
the values it takes.

``allocator`` (:class:`Allocator`)
    how activations (and reused weights) are kept in the scratchpad between layers: ``none``, every
    layer reads its inputs from DRAM and writes its outputs back (SCALE-Sim style); ``greedy``,
    ``firstfit``, ``ilp``: see :mod:`mapper.memory`.
``objective`` (:class:`Objective`)
    what the per-layer mapping search minimises: ``latency`` (cycles, then energy), ``energy``
    (energy, then cycles) or ``edp`` (energy-delay product).
``dataflow`` (:class:`~accel.hardware.Dataflow` or ``None``)
    the dataflow of every array layer; ``None`` searches, per layer, every one the array supports.
``loop_order`` (:class:`LoopOrder`)
    ``tile-outer``, ``fold-outer`` (SCALE-Sim's) or ``auto``: per layer the better estimate (see
    :mod:`mapper.decide`).
``depthwise`` (:class:`Depthwise`)
    where depthwise convolutions run: ``array``, ``vector`` unit, or ``auto``: the better estimate.
``keep_operands``
    whether tiles may keep an operand on chip across tiles (a split reduction's column of weight
    tiles, a row of input tiles: :attr:`mapper.plan.Tile.keep`); they are chosen only where they move
    at most the DRAM bytes of the best mapping without them. ``False``: none (a reduction of one
    tile still loads each weight tile once for its column of output tiles).
``scratchpad_bytes``
    overrides the design's scratchpad size (``None``: the design's).
``time_limit_s``, ``mip_gap``
    bound the ILP.
``schedule`` (:class:`Schedule`)
    the operator order: ``candidates`` (a few orders ranked by their greedy allocation,
    :mod:`mapper.order`) or ``joint`` (a decision of the joint order-and-allocation ILP,
    :func:`mapper.joint.schedule`, within ``time_limit_s``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum, StrEnum

from accel.errors import MappingError
from accel.hardware import Dataflow, is_int

__all__ = ["ALLOCATORS", "CHOICE_FIELDS", "OBJECTIVES", "Allocator", "Depthwise", "LoopOrder", "MapOptions",
           "Objective", "Schedule"]


class Allocator(StrEnum):
    """How tensors stay in the scratchpad between layers (see :mod:`mapper.memory`)."""

    NONE = "none"
    GREEDY = "greedy"
    FIRSTFIT = "firstfit"
    ILP = "ilp"


class Objective(StrEnum):
    """What the per-layer mapping search minimises."""

    LATENCY = "latency"
    ENERGY = "energy"
    EDP = "edp"


class LoopOrder(StrEnum):
    """The loop order of array layers (see :mod:`mapper.decide`)."""

    AUTO = "auto"
    TILE_OUTER = "tile-outer"
    FOLD_OUTER = "fold-outer"


class Depthwise(StrEnum):
    """Where depthwise convolutions (one output channel per group) run."""

    AUTO = "auto"  # whichever estimate is better for the objective
    ARRAY = "array"  # as ``groups`` tiny GEMMs on the systolic array
    VECTOR = "vector"  # as multiply-accumulates on the vector unit, one per lane per cycle


class Schedule(StrEnum):
    """How the operator order is chosen (see :mod:`mapper.order` and :mod:`mapper.joint`)."""

    CANDIDATES = "candidates"
    JOINT = "joint"


ALLOCATORS = tuple(a.value for a in Allocator)
OBJECTIVES = tuple(o.value for o in Objective)

#: field -> (its enum, what the error calls it)
_CHOICES: dict[str, tuple[type[Enum], str]] = {
    "allocator": (Allocator, "Allocator"),
    "objective": (Objective, "Mapping objective"),
    "loop_order": (LoopOrder, "Loop order"),
    "depthwise": (Depthwise, "Depthwise placement"),
    "dataflow": (Dataflow, "Dataflow"),
    "schedule": (Schedule, "Schedule"),
}
#: The :class:`MapOptions` fields that take one of an enum's values.
CHOICE_FIELDS = frozenset(_CHOICES)


def choice(enum: type[Enum], value: object, what: str) -> Enum:
    """``value`` as a member of ``enum`` (a member or its value), or a :class:`MappingError`."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in enum)  # type: ignore[attr-defined]
        raise MappingError(f"{what} must be one of {allowed}, not {value!r}") from None


def _is_number(value: object) -> bool:
    """An int or float, not a bool or a string (so comparing it cannot raise)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class MapOptions:
    allocator: Allocator = Allocator.NONE
    objective: Objective = Objective.LATENCY
    dataflow: Dataflow | None = None
    loop_order: LoopOrder = LoopOrder.AUTO
    depthwise: Depthwise = Depthwise.AUTO
    keep_operands: bool = True
    scratchpad_bytes: int | None = None
    time_limit_s: float = 10.0
    mip_gap: float = 0.01
    schedule: Schedule = Schedule.CANDIDATES

    def __post_init__(self) -> None:
        for name, (enum, what) in _CHOICES.items():
            value = getattr(self, name)
            if value is not None or name != "dataflow":
                object.__setattr__(self, name, choice(enum, value, what))
        if not isinstance(self.keep_operands, bool):
            raise MappingError(f"keep_operands must be true or false, not {self.keep_operands!r}")
        if self.scratchpad_bytes is not None and (not is_int(self.scratchpad_bytes) or self.scratchpad_bytes <= 0):
            raise MappingError(f"Scratchpad size must be a positive number of bytes, not {self.scratchpad_bytes!r}")
        if not _is_number(self.time_limit_s) or not self.time_limit_s > 0:
            raise MappingError(f"ILP time limit must be a positive number of seconds, not {self.time_limit_s!r}")
        if not _is_number(self.mip_gap) or not 0 <= self.mip_gap < 1:
            raise MappingError(f"ILP MIP gap must be in [0, 1), not {self.mip_gap!r}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: enums as their values."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, Enum) else value
        return out
