"""The plan: how a graph runs on an accelerator (the seam between the mapper and the simulator).

A :class:`Plan` holds, for each layer in schedule order, its :class:`LayerMapping` (dataflow, tile sizes, loop
order, tile count) and the whole command program in issue order. Derived figures (DRAM traffic,
MACs) are properties computed from the commands, so they cannot drift from what runs.
:meth:`Plan.to_dict` is the plan as JSON (what ``accel map --out`` writes, with
:class:`mapper.summary.MapSummary` adding the allocators' comparison).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from accel.commands import Command, Compute, Load, Store, Vector
from accel.hardware import Accelerator, Dataflow, Sparsity
from mapper.allocate import Allocation
from mapper.layout import PackedTile
from mapper.lifetimes import MemoryProblem
from mapper.options import MapOptions
from workloads.graph import GemmShape, Graph, OpKind

__all__ = ["Tile", "LayerMapping", "Plan"]


@dataclass(frozen=True)
class Tile:
    """Tile sizes of a GEMM layer: ``b`` groups x ``m`` rows x ``k`` reduction x ``n`` columns.

    ``keep`` (tile-outer): ``"w"`` keeps each column's weights on chip for the whole column of output
    tiles although the reduction is split into several ``k`` tiles
    (:func:`mapper.schedules.keeps_weights`; with one ``k`` tile they are kept anyway); ``"x"`` runs
    the output tiles row by row instead and keeps each row's input tiles on chip for the whole row
    (:func:`mapper.schedules.keeps_inputs`); ``""``: neither."""

    m: int
    k: int
    n: int
    b: int = 1
    keep: str = ""


@dataclass(frozen=True)
class LayerMapping:
    layer: str
    op: OpKind
    macs: int
    dataflow: Dataflow | None = None  # None for layers that do not use the array
    tile: Tile | None = None
    # "tile-outer" or "fold-outer" (see mapper.decide), "vector" for depthwise there, "bands" for a pool
    # run in bands of output rows (mapper.decide.chunking)
    loop_order: str = ""
    tiles: int = 0  # number of compute commands (GEMM) or chunks (vector) the layer runs as
    gemm: GemmShape | None = None  # the layer's whole GEMM, for array layers
    sparsity: Sparsity | None = None  # the N:M pattern the array runs this layer with (None: dense)
    # the mapping search's datasheet estimate of the chosen mapping, and the layer's roofline bound
    # max(MACs / peak, compulsory DRAM bytes / bandwidth), in cycles (0 where not estimated)
    estimate_cycles: float = 0.0
    estimate_energy_pj: float = 0.0
    roofline_cycles: float = 0.0
    candidates: int = 0  # mappings priced
    pareto: int = 0  # of which not dominated

    @property
    def roofline_fraction(self) -> float | None:
        """How close the estimate is to the roofline bound (1.0: on it), or ``None``."""
        return self.roofline_cycles / self.estimate_cycles if self.estimate_cycles else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the layer's mapping, estimate and roofline bound."""
        return {"layer": self.layer, "op": self.op.value, "dataflow": self.dataflow.value if self.dataflow else None,
                "loop_order": self.loop_order, "tile": None if self.tile is None else vars(self.tile),
                "tiles": self.tiles, "macs": self.macs, "estimate_cycles": self.estimate_cycles,
                "roofline_cycles": self.roofline_cycles, "roofline_fraction": self.roofline_fraction}


@dataclass(frozen=True)
class Plan:
    arch: Accelerator
    graph_name: str
    layers: tuple[LayerMapping, ...]
    commands: tuple[Command, ...]
    graph: Graph | None = field(default=None, compare=False, repr=False)  # what was lowered
    # with a scratchpad allocator: the allocation problem (its ``steps`` are the schedule), the
    # allocator's answer, and each layer's working space in bytes
    problem: MemoryProblem | None = field(default=None, compare=False)
    allocation: Allocation | None = field(default=None, compare=False)
    working_bytes: Mapping[str, int] | None = field(default=None, compare=False)
    options: MapOptions | None = field(default=None, compare=False)  # what the mapper was asked (None: not mapped)
    # N:M weight tensors as the compiler packed them in DRAM, tile by tile (mapper.layout.PackedTile)
    weight_tiles: Mapping[str, tuple[PackedTile, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def dram_read_bytes(self) -> int:
        return sum(c.size_bytes for c in self.commands if isinstance(c, Load))

    @property
    def dram_write_bytes(self) -> int:
        return sum(c.size_bytes for c in self.commands if isinstance(c, Store))

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    @property
    def macs(self) -> int:
        """The workload's MACs (dense-equivalent)."""
        return sum(m.macs for m in self.layers)

    @property
    def performed_macs(self) -> int:
        """The multiply-accumulates the hardware performs: fewer than :attr:`macs` for N:M layers."""
        return sum(c.macs for c in self.commands if isinstance(c, Compute | Vector))

    @property
    def vector_ops(self) -> int:
        return sum(c.elements for c in self.commands if isinstance(c, Vector))

    @property
    def estimate_cycles(self) -> float:
        """The mapping search's estimate, summed over the layers."""
        return sum(m.estimate_cycles for m in self.layers)

    @property
    def roofline_cycles(self) -> float:
        """The layers' roofline bounds, summed."""
        return sum(m.roofline_cycles for m in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: design, workload, the options it was mapped with (``allocator`` and
        ``mapping_objective``; ``None`` for a plan not made by the mapper), DRAM traffic, estimate and
        roofline bound, every layer's mapping with its working space, and the allocation (``None``
        without one; else :meth:`mapper.allocate.Allocation.to_dict`)."""
        return {
            "arch": self.arch.name, "workload": self.graph_name,
            "allocator": None if self.options is None else self.options.allocator.value,
            "mapping_objective": None if self.options is None else self.options.objective.value,
            "schedule": None if self.options is None else self.options.schedule.value,
            "scratchpad_bytes": self.arch.scratchpad.size_bytes,
            "dram_bytes": self.dram_bytes, "dram_read_bytes": self.dram_read_bytes,
            "dram_write_bytes": self.dram_write_bytes,
            "estimate_cycles": self.estimate_cycles, "roofline_cycles": self.roofline_cycles,
            "layers": [{**m.to_dict(), "working_bytes": (self.working_bytes or {}).get(m.layer)} for m in self.layers],
            "allocation": None if self.allocation is None else self.allocation.to_dict(),
        }
