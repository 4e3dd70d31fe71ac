"""Design spaces for :func:`sim.sweep.run_sweep`: which parameters vary, over which values, in what order.

A parameter is a dotted path into the TOML layout of :mod:`accel.config` (``array.rows``,
``scratchpad.size_bytes``, ``dram.bandwidth_bytes_per_cycle``, ``clock_hz``, ``energy.vector_op_pj``),
a mapper option (``mapper.allocator``, ``mapper.objective``, any field of :class:`mapper.MapOptions`)
or a workload option: ``workload.nm`` (``"dense"`` or an N:M pattern such as ``"2:4"``, applied with
:func:`workloads.sparsify`), ``workload.batch`` (the batch size, as ``accel run --batch``) or
``workload.dim.NAME`` (the size of an ONNX model's symbolic input dimension ``NAME``, as ``--dim
NAME=SIZE``). ``array.size`` is a tied parameter: ``rows = cols = size``.

A :class:`Space` has *axes*: each entry of ``params`` is one axis (its values in order), and each
``zip`` group is one axis whose parameters move together (lists of equal length, the i-th values
forming one setting, e.g. ``{"array.rows": [8, 16], "array.cols": [32, 16]}``). The space is the
product of its axes, enumerated row-major in declaration order (``params`` first, then the zip
groups), or, with ``sample="random"`` or ``"lhs"``, ``samples`` points drawn from that product with
a seeded generator (``seed`` a non-negative integer): ``random`` draws distinct points uniformly;
``lhs`` is a Latin hypercube over the axes' value indices (every value of every axis drawn about
equally often), where a point drawn twice (axes with fewer values than ``samples``) is replaced by a
distinct point drawn uniformly from the rest. Either way there are exactly ``samples`` distinct
points; asking for more than the product holds is an error.

Values are checked and written in one canonical form when the space is built (sizes as integer
bytes, dataflows and N:M patterns as lowercase strings, booleans only as true or false), so
``"128 KiB"`` and ``131072`` are the same point. A path that names no field, or a value of the wrong type
(a mapper option's value that :class:`mapper.MapOptions` refuses, such as a misspelt allocator),
raises :class:`~accel.errors.ConfigError` naming the key; a value of the right type that makes an
invalid design (``rows = 0``, a 2:4 array with 3 rows) is not an error here: that point's rows are
kept with status ``invalid``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from accel.config import parse_size
from accel.energy import EnergyTable
from accel.errors import ConfigError, MappingError
from accel.formats import NumberFormat
from accel.hardware import DMA, DRAM, Dataflow, Memory, Sparsity, SystolicArray, VectorUnit
from mapper.options import CHOICE_FIELDS, MapOptions

__all__ = ["SAMPLES", "Space", "param_column_value", "parameter_paths"]

SAMPLES = ("product", "random", "lhs")

_SECTIONS: dict[str, type] = {"array": SystolicArray, "vector": VectorUnit, "scratchpad": Memory,
                              "accumulator": Memory, "dma": DMA, "dram": DRAM, "energy": EnergyTable,
                              "mapper": MapOptions}
_TIED = {"array.size": ("array.rows", "array.cols")}


def parameter_paths() -> tuple[str, ...]:
    """Every path a space may sweep (besides ``energy.*`` fields, which are listed too)."""
    paths = ["clock_hz", "workload.nm", "workload.batch", *_TIED]  # and workload.dim.NAME for any NAME
    for section, cls in _SECTIONS.items():
        paths.extend(f"{section}.{f.name}" for f in dataclasses.fields(cls))
    return tuple(paths)


def _annotation(path: str) -> str:
    if path == "clock_hz":
        return "float"
    if path == "workload.nm":
        return "nm"
    if path == "workload.batch" or path in _TIED or (path.startswith("workload.dim.") and path[13:]):
        return "int"
    section, _, name = path.partition(".")
    cls = _SECTIONS.get(section)
    fields = {f.name: f for f in dataclasses.fields(cls)} if cls else {}
    if name not in fields:
        raise ConfigError("unknown parameter (expected clock_hz, workload.nm, workload.batch, workload.dim.NAME, "
                          "array.size or a field such as array.rows, scratchpad.size_bytes, mapper.allocator)")
    if name in ("size_bytes", "scratchpad_bytes"):
        return "size"
    return str(fields[name].type)


def _normalize(kind: str, value: Any) -> Any:
    """The canonical, JSON-ready form of one value of a parameter of ``kind`` (its annotation)."""
    if kind == "size" or kind == "int | None":
        if value is None:
            raise ConfigError("must not be empty")
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"must be a byte count such as 262144 or '256 KiB', not {value!r}")
        return parse_size(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"must be an integer, not {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"must be a number, not {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, not {value!r}")
        return value
    if kind == "Dataflow | None":  # the mapper's: None searches every dataflow of the array
        return None if value is None else Dataflow.parse(value).value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, not {value!r}")
        return value
    if kind == "nm":
        if not isinstance(value, str):
            raise ConfigError(f"must be 'dense' or an N:M pattern such as '2:4', not {value!r}")
        return "dense" if value.strip().lower() == "dense" else str(Sparsity.parse(value))
    if kind == "tuple[Dataflow, ...]":
        if not isinstance(value, list | tuple):
            raise ConfigError(f"each value must be a list such as ['ws', 'os'], not {value!r}")
        return [Dataflow.parse(v).value for v in value]
    if kind == "tuple[Sparsity, ...]":
        if not isinstance(value, list | tuple):
            raise ConfigError(f"each value must be a list such as ['2:4'], not {value!r}")
        return [str(Sparsity.parse(v)) for v in value]
    if kind == "NumberFormat":
        if isinstance(value, str):
            return NumberFormat.parse(value).name
        if isinstance(value, dict) and "format" in value:
            return {k: value[k] for k in sorted(value)}
        raise ConfigError(f"must be a number format such as 'int8' or a table with 'format', not {value!r}")
    # energy curves and anything else the dataclasses accept: passed through, checked per point
    return value


def param_column_value(value: Any) -> Any:
    """How a parameter's value appears in its DataFrame column: scalars as they are, lists joined by ","."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def _check_axis(path: str, values: Any) -> tuple[Any, ...]:
    try:
        kind = _annotation(path)
        if not isinstance(values, list | tuple):
            raise ConfigError(f"must be a list of values, not {values!r}")
        if not values:
            raise ConfigError("must list at least one value")
        normalized = tuple(_normalize(kind, v) for v in values)
        if path.startswith("mapper."):
            normalized = tuple(_mapper_value(path.removeprefix("mapper."), v) for v in normalized)
        return normalized
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _mapper_value(name: str, value: Any) -> Any:
    """A mapper option's value checked as :class:`mapper.MapOptions` checks it (each field on its own), so
    that a misspelt choice (``allocator = "ilpx"``) is one error naming the key, not an invalid row per
    point; a choice is written as its lowercase value (``"ILP"`` and ``"ilp"`` are one point)."""
    if isinstance(value, str) and name in CHOICE_FIELDS:
        value = value.strip().lower()
    try:
        checked = getattr(MapOptions(**{name: value}), name)
    except MappingError as exc:
        raise ConfigError(str(exc)) from None
    return checked.value if isinstance(checked, Enum) else value


@dataclass(frozen=True)
class Space:
    """A design space around ``base`` (a preset name, a TOML path or an :class:`~accel.Accelerator`).

    ``params`` maps each swept path to its values; ``zip`` is a sequence of groups of paths whose
    values move together. ``sample``, ``samples`` and ``seed`` choose product enumeration or a seeded
    sample; ``fpga_family`` is the family of the resource estimate (``ecp5`` or ``ice40``);
    ``fpga_device`` (a device of that family, e.g. ``"25k"``, or ``None``) is a constraint: a point
    whose systolic tile does not fit it is an ``invalid`` row saying what overflows.
    """

    base: Any = "gemmini"
    params: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    zip: Sequence[Mapping[str, Sequence[Any]]] = ()
    sample: str = "product"
    samples: int | None = None
    seed: int = 0
    fpga_family: str = "ecp5"
    fpga_device: str | None = None

    def __post_init__(self) -> None:
        axes: list[tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]] = []
        seen: set[str] = set()

        def claim(path: str) -> None:
            targets = _TIED.get(path, (path,))
            for p in (path, *targets):
                if p in seen or any(p in _TIED.get(s, ()) for s in seen):
                    raise ConfigError(f"{path}: swept twice (once per space: in params or in one zip group)")
            seen.add(path)

        for path, values in dict(self.params).items():
            claim(path)
            axes.append(((path,), tuple((v,) for v in _check_axis(path, values))))
        for i, group in enumerate(self.zip):
            if not isinstance(group, Mapping) or not group:
                raise ConfigError(f"zip[{i}]: must be a table of paths to lists of equal length, not {group!r}")
            columns = {}
            for path, values in group.items():
                try:
                    claim(path)
                    columns[path] = _check_axis(path, values)
                except ConfigError as exc:
                    raise ConfigError(f"zip[{i}].{exc}") from None
            lengths = {path: len(v) for path, v in columns.items()}
            if len(set(lengths.values())) != 1:
                raise ConfigError(f"zip[{i}]: lists must have equal lengths, not "
                                  + ", ".join(f"{p} {n}" for p, n in lengths.items()))
            axes.append((tuple(columns), tuple(zip(*columns.values(), strict=True))))
        if not axes:
            raise ConfigError("params: the space is empty (sweep at least one parameter)")
        if self.sample not in SAMPLES:
            raise ConfigError(f"sample must be one of {', '.join(SAMPLES)}, not {self.sample!r}")
        if self.sample != "product" and (isinstance(self.samples, bool) or not isinstance(self.samples, int)
                                         or self.samples < 1):
            raise ConfigError(f"samples must be a positive integer with sample = {self.sample!r}, "
                              f"not {self.samples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, not {self.seed!r}")
        if self.fpga_family not in ("ecp5", "ice40"):
            raise ConfigError(f"fpga_family must be 'ecp5' or 'ice40', not {self.fpga_family!r}")
        if self.fpga_device is not None:
            from accel.resources import device

            device(self.fpga_family, self.fpga_device)  # names the known devices otherwise
        object.__setattr__(self, "_axes", tuple(axes))
        if self.sample != "product" and self.samples > self.size:
            raise ConfigError(f"samples must be at most the {self.size} points of the space (sample = 'product' "
                              f"runs them all), not {self.samples}")

    @property
    def paths(self) -> tuple[str, ...]:
        """The swept paths, in column order."""
        return tuple(p for names, _ in self._axes for p in names)

    @property
    def size(self) -> int:
        """Points in the full product."""
        return int(np.prod([len(values) for _, values in self._axes], dtype=object))

    def points(self) -> list[dict[str, Any]]:
        """The overrides of every point, in enumeration order (the ``point`` column is the position)."""
        lengths = [len(values) for _, values in self._axes]
        if self.sample == "product":
            indices: list[tuple[int, ...]] = list(itertools.product(*(range(n) for n in lengths)))
        elif self.sample == "random":
            rng = np.random.default_rng(self.seed)
            indices = _draw_distinct(rng, lengths, self.samples, set())
        else:
            rng = np.random.default_rng(self.seed)
            n = self.samples
            columns = []
            for length in lengths:
                strata = (rng.permutation(n) + rng.random(n)) / n  # one draw in each of n strata of [0, 1)
                columns.append(np.minimum((strata * length).astype(int), length - 1))
            indices = list(dict.fromkeys(tuple(int(c[i]) for c in columns) for i in range(n)))
            if len(indices) < n:  # repeats: replaced by distinct points, so that there are n of them
                indices += _draw_distinct(rng, lengths, n - len(indices), set(indices))
        points = []
        for index in indices:
            point: dict[str, Any] = {}
            for (names, values), i in zip(self._axes, index, strict=True):
                point.update(zip(names, values[i], strict=True))
            points.append(point)
        return points


def _draw_distinct(rng: np.random.Generator, lengths: Sequence[int], count: int,
                   taken: set[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """``count`` distinct value-index tuples, none in ``taken``, drawn uniformly (``count`` fits: checked)."""
    total = int(np.prod(lengths, dtype=object))
    if not taken and total < 2**62:
        flat = rng.choice(total, size=count, replace=False)
        return [tuple(int(i) for i in np.unravel_index(int(f), lengths)) for f in flat]
    if total <= 2**20:
        used = [int(np.ravel_multi_index(t, lengths)) for t in taken]
        free = np.setdiff1d(np.arange(total), np.asarray(used, dtype=np.int64))
        flat = rng.choice(free, size=count, replace=False)
        return [tuple(int(i) for i in np.unravel_index(int(f), lengths)) for f in flat]
    drawn: list[tuple[int, ...]] = []
    seen = set(taken)
    while len(drawn) < count:  # a huge space: collisions are rare, draw again on one
        index = tuple(int(rng.integers(n)) for n in lengths)
        if index not in seen:
            seen.add(index)
            drawn.append(index)
    return drawn
