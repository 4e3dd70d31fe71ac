"""Design spaces for :func:`sim.sweep.sweep`: which parameters vary, over which values, in what order.

A parameter is a dotted path into the TOML layout of :mod:`accel.config` (``array.rows``,
``scratchpad.size_bytes``, ``dram.bandwidth_bytes_per_cycle``, ``clock_hz``, ``energy.vector_op_pj``),
a mapper option (``mapper.allocator``, ``mapper.objective``, any field of :class:`mapper.MapOptions`)
or the workload option ``workload.nm`` (``"dense"`` or an N:M pattern such as ``"2:4"``, applied with
:func:`workloads.sparsify`). ``array.size`` is a tied parameter: ``rows = cols = size``.

A :class:`Space` has *axes*: each entry of ``params`` is one axis (its values in order), and each
``zip`` group is one axis whose parameters move together (lists of equal length, the i-th values
forming one setting, e.g. ``{"array.rows": [8, 16], "array.cols": [32, 16]}``). The space is the
product of its axes, enumerated row-major in declaration order (``params`` first, then the zip
groups), or, with ``sample="random"`` or ``"lhs"``, ``samples`` points drawn from that product with
a seeded generator: ``random`` draws distinct points uniformly; ``lhs`` is a Latin hypercube over the
axes' value indices (every value of every axis drawn about equally often), duplicates removed.

Values are checked and written in one canonical form when the space is built (sizes as integer
bytes, dataflows and N:M patterns as lowercase strings), so ``"128 KiB"`` and ``131072`` are the
same point. A path that names no field, or a value of the wrong type, raises
:class:`~accel.errors.ConfigError` naming the key; a value of the right type that makes an invalid
design (``rows = 0``, a 2:4 array with 3 rows) is not an error here: that point's rows are kept with
status ``invalid``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accel import config
from accel.config import parse_size
from accel.energy import EnergyTable
from accel.errors import ConfigError
from accel.formats import NumberFormat
from accel.hardware import DMA, DRAM, Dataflow, Memory, Sparsity, SystolicArray, VectorUnit
from mapper.options import MapOptions
from workloads import zoo

__all__ = ["SAMPLES", "Space", "SweepSpec", "default_spec_path", "load_spec", "param_column_value", "parameter_paths"]

SAMPLES = ("product", "random", "lhs")

_SECTIONS: dict[str, type] = {"array": SystolicArray, "vector": VectorUnit, "scratchpad": Memory,
                              "accumulator": Memory, "dma": DMA, "dram": DRAM, "energy": EnergyTable,
                              "mapper": MapOptions}
_TIED = {"array.size": ("array.rows", "array.cols")}


def parameter_paths() -> tuple[str, ...]:
    """Every path a space may sweep (besides ``energy.*`` fields, which are listed too)."""
    paths = ["clock_hz", "workload.nm", *_TIED]
    for section, cls in _SECTIONS.items():
        paths.extend(f"{section}.{f.name}" for f in dataclasses.fields(cls))
    return tuple(paths)


def _annotation(path: str) -> str:
    if path == "clock_hz":
        return "float"
    if path == "workload.nm":
        return "nm"
    if path in _TIED:
        return "int"
    section, _, name = path.partition(".")
    cls = _SECTIONS.get(section)
    fields = {f.name: f for f in dataclasses.fields(cls)} if cls else {}
    if name not in fields:
        raise ConfigError("unknown parameter (expected clock_hz, workload.nm, array.size or a field such as "
                          "array.rows, scratchpad.size_bytes, mapper.allocator)")
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
        return tuple(_normalize(kind, v) for v in values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class Space:
    """A design space around ``base`` (a preset name, a TOML path or an :class:`~accel.Accelerator`).

    ``params`` maps each swept path to its values; ``zip`` is a sequence of groups of paths whose
    values move together. ``sample``, ``samples`` and ``seed`` choose product enumeration or a seeded
    sample; ``fpga_family`` is the family of the resource estimate (``ecp5`` or ``ice40``).
    """

    base: Any = "gemmini"
    params: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    zip: Sequence[Mapping[str, Sequence[Any]]] = ()
    sample: str = "product"
    samples: int | None = None
    seed: int = 0
    fpga_family: str = "ecp5"

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
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, not {self.seed!r}")
        if self.fpga_family not in ("ecp5", "ice40"):
            raise ConfigError(f"fpga_family must be 'ecp5' or 'ice40', not {self.fpga_family!r}")
        object.__setattr__(self, "_axes", tuple(axes))

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
            total = self.size
            flat = rng.choice(total, size=min(self.samples, total), replace=False) if total < 2**62 else \
                rng.integers(0, 2**62, size=self.samples)
            indices = [tuple(int(i) for i in np.unravel_index(int(f), lengths)) for f in flat]
        else:
            rng = np.random.default_rng(self.seed)
            n = self.samples
            columns = []
            for length in lengths:
                strata = (rng.permutation(n) + rng.random(n)) / n  # one draw in each of n strata of [0, 1)
                columns.append(np.minimum((strata * length).astype(int), length - 1))
            indices = list(dict.fromkeys(tuple(int(c[i]) for c in columns) for i in range(n)))
        points = []
        for index in indices:
            point: dict[str, Any] = {}
            for (names, values), i in zip(self._axes, index, strict=True):
                point.update(zip(names, values[i], strict=True))
            points.append(point)
        return points


@dataclass(frozen=True)
class SweepSpec:
    """What a spec file asks for: a space, the workloads and the objectives a report trades off."""

    space: Space
    workloads: tuple[str, ...]
    objectives: tuple[str, ...] = ("latency_s", "energy_j")
    source: str = "<spec>"


_SWEEP_KEYS = ("base", "workloads", "objectives", "sample", "samples", "seed", "fpga_family")


def default_spec_path() -> Path:
    """The built-in spec ``accel sweep`` runs without a file (``sim/sweeps/default.toml``)."""
    return Path(__file__).with_name("sweeps") / "default.toml"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"array": {"rows": [..]}}`` and ``{"array.rows": [..]}`` both as ``{"array.rows": [..]}``."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def load_spec(path: str | Path, **overrides: Any) -> SweepSpec:
    """Read a sweep spec (TOML); ``overrides`` replace keys of its ``[sweep]`` table (e.g. ``samples=``).

    Layout::

        [sweep]
        base = "sparse-nm"                      # preset name or TOML path (relative to this file)
        workloads = ["resnet18", "bert_base_layer"]   # zoo names or .onnx/.csv paths
        objectives = ["latency_s", "energy_j"]  # optional; metric columns to trade off
        sample = "product"                      # or "random" / "lhs" with samples = N, seed = S
        fpga_family = "ecp5"                    # family of the LUT/DSP/Fmax estimate

        [params]                                # one axis per key: the product of all axes
        "array.size" = [8, 16, 32]              # tied: rows = cols
        "array.dataflows" = [["ws"], ["os"]]
        "scratchpad.size_bytes" = ["128 KiB", "512 KiB"]
        "workload.nm" = ["dense", "2:4"]

        [[zip]]                                 # optional: paths that move together, one axis
        "dram.bandwidth_bytes_per_cycle" = [8.0, 16.0]
        "dma.bandwidth_bytes_per_cycle" = [8.0, 16.0]

    Every problem raises :class:`ConfigError` naming the file and the key.
    """
    path = Path(path)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    for key in data:
        if key not in ("sweep", "params", "zip"):
            raise ConfigError(f"{source}: unknown table {key} (expected [sweep], [params], [[zip]])")
    settings = dict(data.get("sweep", {}))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    for key in settings:
        if key not in _SWEEP_KEYS:
            raise ConfigError(f"{source}: unknown key sweep.{key} (expected one of {', '.join(_SWEEP_KEYS)})")
    if "workloads" not in settings:
        raise ConfigError(f"{source}: sweep.workloads is missing (a list of zoo names or .onnx/.csv files)")
    base = settings.get("base", "gemmini")
    if isinstance(base, str) and base.endswith(".toml"):
        base = str(path.parent / base)
    try:
        base_arch = config.load(base) if isinstance(base, str) else None
    except ConfigError as exc:
        raise ConfigError(f"{source}: sweep.base: {exc}") from None
    if base_arch is None:
        raise ConfigError(f"{source}: sweep.base must be a preset name or a TOML path, not {base!r}")
    names = settings["workloads"]
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{source}: sweep.workloads must be a non-empty list, not {names!r}")
    zoo_names = set(zoo.names())
    resolved = []
    for name in names:
        if isinstance(name, str) and name in zoo_names:
            resolved.append(name)
        elif isinstance(name, str) and (path.parent / name).is_file():
            resolved.append(str(path.parent / name))
        else:
            raise ConfigError(f"{source}: sweep.workloads: unknown workload {name!r} (a zoo model such as "
                              f"resnet18, or an existing .onnx/.csv file)")
    objectives = settings.get("objectives", ["latency_s", "energy_j"])
    from sim.sweep import METRICS  # not at the top: sim.sweep imports this module

    if not isinstance(objectives, list) or not objectives or not all(o in METRICS for o in objectives):
        raise ConfigError(f"{source}: sweep.objectives must list metric columns ({', '.join(METRICS)}), "
                          f"not {objectives!r}")
    zips = data.get("zip", [])
    if not isinstance(zips, list):
        raise ConfigError(f"{source}: zip must be an array of tables [[zip]], not {zips!r}")
    try:
        space = Space(base=base_arch, params=_flatten(data.get("params", {})),
                      zip=[_flatten(z) if isinstance(z, dict) else z for z in zips],
                      sample=settings.get("sample", "product"), samples=settings.get("samples"),
                      seed=settings.get("seed", 0), fpga_family=settings.get("fpga_family", "ecp5"))
    except ConfigError as exc:
        section = "sweep." if str(exc).split()[0] in _SWEEP_KEYS else ""
        raise ConfigError(f"{source}: {section}{exc}") from None
    return SweepSpec(space, tuple(resolved), tuple(objectives), source)
