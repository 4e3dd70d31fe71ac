"""One row of a sweep: a point's design, mapper options and workload, mapped, simulated and measured.

:func:`materialize` gives back the objects of a row (to re-run it, e.g. for a report's drill-down);
:func:`run_chunk` computes the outcome of a list of ``(point, key, params JSON, workload)`` tasks and
is what a worker process runs. A point whose design or mapping is rejected
(:class:`~accel.errors.AccelError`) is an ``invalid`` row with the message; any other exception is
an ``error`` row. The metrics are those of :mod:`sim.metrics`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import mapper
import workloads as workloads_pkg
from accel import config
from accel.errors import AccelError, ConfigError
from accel.hardware import Accelerator
from mapper.options import MapOptions
from sim.engine import simulate
from sim.metrics import METRICS, metric_row
from sim.sweep.space import Space
from workloads import Graph

__all__ = ["check_workload", "computed_on", "load_base", "materialize", "row_key", "run_chunk"]

log = logging.getLogger(__name__)

Task = tuple[int, str, str, str]
"""``(point, key, params JSON, workload)``: one row to compute."""


def load_base(base: Any) -> Accelerator:
    """The base design of a space: an :class:`Accelerator` as it is, or a preset name / TOML path loaded."""
    return base if isinstance(base, Accelerator) else config.load(base)


def row_key(base: Mapping[str, Any], fpga_family: str, params: Mapping[str, Any], workload: str,
            fpga_device: str | None = None) -> str:
    """A row's ``key``: the SHA-1 of the canonical JSON of its base design (its TOML form as a dict), FPGA
    family, overrides and workload, and its FPGA device when the sweep has one."""
    identity: dict[str, Any] = {"base": base, "fpga_family": fpga_family, "params": params, "workload": workload}
    if fpga_device is not None:  # absent otherwise: unconstrained sweeps keep their keys
        identity["fpga_device"] = fpga_device
    return hashlib.sha1(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def computed_on(row: Mapping[str, Any], base: Any) -> bool:
    """Whether the sweep row ``row`` (with ``key``, ``params`` and ``workload``) was computed on the base
    design ``base`` (preset name, TOML path or Accelerator), whatever FPGA family and device it ran with."""
    from accel.resources import DEVICES

    design = config.to_dict(load_base(base))
    params = json.loads(row["params"]) if isinstance(row["params"], str) else dict(row["params"])
    return any(row_key(design, family.value, params, row["workload"], device) == row["key"]
               for family, devices in DEVICES.items() for device in (None, *(d.name for d in devices)))


@functools.lru_cache(maxsize=8)
def _base_dict(base_json: str) -> dict[str, Any]:
    return json.loads(base_json)


class Shape(NamedTuple):
    """A point's workload options: N:M pattern, batch (None: the workload's own) and symbolic dims."""

    nm: str = "dense"
    batch: int | None = None
    dims: tuple[tuple[str, int], ...] = ()  # (name, size), sorted by name


_DENSE = Shape()


@functools.lru_cache(maxsize=64)
def _graph(workload: str, shape: Shape = _DENSE) -> Graph:
    graph = workloads_pkg.load(workload, batch=shape.batch, dims=dict(shape.dims) or None)
    return graph if shape.nm == "dense" else workloads_pkg.sparsify(graph, shape.nm)


def check_workload(workload: str) -> None:
    """Load ``workload`` (a zoo name or a .onnx/.csv file) as the rows will, so that a file that cannot
    be read is one error before any row (raises its :class:`~accel.errors.WorkloadError`), not an
    ``invalid`` row per point. Memoised with the rows' own loads: in this process they load it no more."""
    _graph(workload)


def _split(base: dict[str, Any], params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Shape]:
    """The design dict, the MapOptions keywords and the workload options of a point."""
    design = json.loads(json.dumps(base))  # a deep copy of plain data
    options: dict[str, Any] = {}
    nm, batch, dims = "dense", None, {}
    for path, value in params.items():
        if path == "workload.nm":
            nm = value
        elif path == "workload.batch":
            batch = value
        elif path.startswith("workload.dim."):
            dims[path.removeprefix("workload.dim.")] = value
        elif path == "array.size":
            design["array"]["rows"] = design["array"]["cols"] = value
        elif path.startswith("mapper."):
            options[path.removeprefix("mapper.")] = value
        elif "." in path:
            section, name = path.split(".", 1)
            design.setdefault(section, {})[name] = value
        else:
            design[path] = value
    return design, options, Shape(nm, batch, tuple(sorted(dims.items())))


def _reason(exc: BaseException) -> str:
    lines = [line.removeprefix("design: ") for line in str(exc).splitlines()]
    return "; ".join(lines) or type(exc).__name__


def _run_point(base: dict[str, Any], family: str, params: dict[str, Any], workload: str,
               device: str | None = None) -> dict[str, Any]:
    design, options, shape = _split(base, params)
    try:
        arch = config.from_dict(design, source="design")
        if device is not None:
            _check_fit(arch, family, device)
        graph, map_options = _graph(workload, shape), MapOptions(**options)
        summary = simulate(mapper.map_graph(graph, arch, map_options)).summary()
        return {"status": "ok", "reason": "", **metric_row(arch, summary, family)}
    except AccelError as exc:
        return {"status": "invalid", "reason": _reason(exc), **dict.fromkeys(METRICS, math.nan)}
    except Exception as exc:  # noqa: BLE001 - an unexpected failure is a row, not the end of the sweep
        log.debug("point %s on %s failed", params, workload, exc_info=True)
        return {"status": "error", "reason": f"{type(exc).__name__}: {_reason(exc)}",
                **dict.fromkeys(METRICS, math.nan)}


def _check_fit(arch: Accelerator, family: str, device: str) -> None:
    """Raise :class:`ConfigError` saying what overflows when ``arch``'s tile does not fit ``device``."""
    from accel.resources import device as find_device
    from accel.resources import estimate_array

    chosen = find_device(family, device)
    for flow in arch.array.dataflows:
        problems = estimate_array(arch.array, family=family, dataflow=flow).fit_problems(chosen)
        if problems:
            raise ConfigError(f"the {arch.array.rows}x{arch.array.cols} {flow.value} tile does not fit the "
                              f"{family} {device}: it needs {', '.join(problems)}")


def run_chunk(base_json: str, family: str, tasks: list[Task], *, device: str | None = None) -> list[dict[str, Any]]:
    """The rows of ``tasks`` on the base design ``base_json`` (canonical JSON of its TOML form): each
    ``{"point", "key", "workload", "params", "status", "reason", *metrics}``, JSON-ready. With
    ``device``, a point whose tile does not fit that FPGA device is ``invalid``."""
    base = _base_dict(base_json)
    return [{"point": point, "key": key, "workload": workload, "params": params_json,
             **_run_point(base, family, json.loads(params_json), workload, device)}
            for point, key, params_json, workload in tasks]


def materialize(row_or_params: Mapping[str, Any], base: Any = None, *,
                workload: str | None = None) -> tuple[Accelerator, Graph, MapOptions]:
    """The design, graph and mapper options of one row (or of a dict of overrides), to re-run it.

    ``base`` is the sweep's base design (preset name, TOML path or Accelerator; default: the row's
    ``arch`` as a preset name). ``workload`` defaults to the row's. Raises the
    :class:`~accel.errors.AccelError` that made the point invalid.
    """
    record = dict(row_or_params)
    if "params" in record:
        params = json.loads(record["params"]) if isinstance(record["params"], str) else dict(record["params"])
        workload = workload or record.get("workload")
        base = record.get("arch") if base is None else base
    else:
        params = record
    if workload is None:
        raise ConfigError("materialize needs a workload: a row with one, or workload=")
    if base is None:
        raise ConfigError("materialize needs the base design: a row with 'arch', or base=")
    normalized = Space(base=base, params={p: [v] for p, v in params.items()}).points()[0]
    design, options, shape = _split(config.to_dict(load_base(base)), normalized)
    return config.from_dict(design, source="design"), _graph(workload, shape), MapOptions(**options)
