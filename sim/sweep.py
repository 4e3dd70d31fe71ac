"""Design-space sweeps: map and simulate every point of a :class:`~sim.sweep_space.Space` on every workload.

``sweep(space, workloads)`` returns a pandas DataFrame with one row per (point, workload) and the
columns of :data:`COLUMNS` (with the swept paths after ``arch``): identity (``point``, ``key``,
``workload``, ``arch``, one column per swept path, ``params``), outcome (``status`` ``ok`` /
``invalid`` / ``error`` and its ``reason``) and metrics (NaN unless ``ok``), FPGA estimates from
:func:`accel.resources.estimate_array` included (NaN where the model does not cover the design).
A point whose design or mapping is rejected (:class:`~accel.errors.AccelError`) is kept as
``invalid`` with the message; any other exception is kept as ``error``.

Rows are computed in chunks by an executor: local processes by default (all cores, ``max_workers``),
in this process when ``max_workers=1``, any :class:`concurrent.futures.Executor`, or a Dask cluster
(a ``distributed.Client`` or a scheduler address ``tcp://host:8786``; its workers must be able to
import this package). Every row is a pure function of the base design, its overrides and the
workload, so the frame is the same whichever executor ran it.

With ``out``, finished rows are appended to a journal next to it (``OUT.partial.jsonl``, one JSON
row per line) as chunks finish, and written to ``out`` (Parquet or CSV by suffix) atomically at the
end; the journal is then removed. ``resume=True`` reuses every row of ``out`` and of the journal
whose ``key`` belongs to the space, computing only the others; without it an existing ``out`` or
journal is an error. Rows are identified by ``key``: the SHA-1 of the canonical JSON of the base
design (its whole TOML form), the FPGA family, the point's overrides and the workload.

The module itself is callable, so ``sim.sweep(space, workloads)`` works whether ``sim.sweep`` is
reached as the package's attribute or as the imported submodule (both are this module).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import logging
import math
import os
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import mapper
import workloads as workloads_pkg
from accel import config
from accel.errors import AccelError, ConfigError
from accel.hardware import Accelerator
from accel.resources import estimate_array
from mapper.options import MapOptions
from sim.engine import simulate
from sim.sweep_space import Space, param_column_value
from workloads import Graph

__all__ = ["COLUMNS", "METRICS", "MAXIMIZED", "Space", "SweepError", "materialize", "read_results",
           "sweep", "write_results"]

log = logging.getLogger(__name__)

METRICS = ("total_cycles", "latency_s", "throughput_per_s", "macs", "energy_j", "average_power_w", "edp_js",
           "dram_bytes", "array_utilization", "peak_macs_per_cycle", "clock_hz",
           "luts", "flip_flops", "dsp", "bram", "fmax_mhz")
"""Metric columns, all float64 (NaN unless the row's status is ``ok``)."""

MAXIMIZED = frozenset({"throughput_per_s", "array_utilization", "peak_macs_per_cycle", "clock_hz", "fmax_mhz"})
"""Metrics where more is better (every other metric is better smaller)."""

COLUMNS = ("point", "key", "workload", "arch", "params", "status", "reason", *METRICS)
"""The fixed columns; the swept paths come between ``arch`` and ``params``."""

_STRING_COLUMNS = ("key", "workload", "arch", "params", "status", "reason")


class SweepError(AccelError):
    """A sweep's output already exists (pass ``resume``) or cannot be written."""


# -- one point ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _base_dict(base_json: str) -> dict[str, Any]:
    return json.loads(base_json)


@functools.lru_cache(maxsize=64)
def _graph(workload: str, nm: str) -> Graph:
    graph = workloads_pkg.load(workload)
    return graph if nm == "dense" else workloads_pkg.sparsify(graph, nm)


def _split(base: dict[str, Any], params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The design dict, the MapOptions keywords and the N:M pattern of a point."""
    design = json.loads(json.dumps(base))  # a deep copy of plain data
    options: dict[str, Any] = {}
    nm = "dense"
    for path, value in params.items():
        if path == "workload.nm":
            nm = value
        elif path == "array.size":
            design["array"]["rows"] = design["array"]["cols"] = value
        elif path.startswith("mapper."):
            options[path.removeprefix("mapper.")] = value
        elif "." in path:
            section, name = path.split(".", 1)
            design.setdefault(section, {})[name] = value
        else:
            design[path] = value
    return design, options, nm


def _reason(exc: BaseException) -> str:
    lines = [line.removeprefix("design: ") for line in str(exc).splitlines()]
    return "; ".join(lines) or type(exc).__name__


def _metrics(arch: Accelerator, graph: Graph, options: MapOptions, family: str) -> dict[str, float]:
    result = simulate(mapper.map_graph(graph, arch, options))
    summary = result.summary()
    latency = float(summary["latency_s"])
    energy = float(summary["energy_pj"]) * 1e-12
    row = {
        "total_cycles": float(summary["total_cycles"]), "latency_s": latency,
        "throughput_per_s": 1.0 / latency if latency > 0 else math.nan, "macs": float(summary["macs"]),
        "energy_j": energy, "average_power_w": float(summary["average_power_w"]), "edp_js": energy * latency,
        "dram_bytes": float(summary["dram_bytes"]), "array_utilization": float(summary["array_utilization"]),
        "peak_macs_per_cycle": float(arch.peak_macs_per_cycle), "clock_hz": float(arch.clock_hz),
    }
    try:
        fpga = estimate_array(arch.array, family=family)
        row.update(luts=float(fpga.luts), flip_flops=float(fpga.flip_flops), dsp=float(fpga.dsp),
                   bram=float(fpga.bram), fmax_mhz=math.nan if fpga.fmax_mhz is None else float(fpga.fmax_mhz))
    except ConfigError:
        row.update(luts=math.nan, flip_flops=math.nan, dsp=math.nan, bram=math.nan, fmax_mhz=math.nan)
    return row


def _run_point(base: dict[str, Any], family: str, params: dict[str, Any], workload: str) -> dict[str, Any]:
    design, options, nm = _split(base, params)
    try:
        arch = config.from_dict(design, source="design")
        metrics = _metrics(arch, _graph(workload, nm), MapOptions(**options), family)
        return {"status": "ok", "reason": "", **metrics}
    except AccelError as exc:
        return {"status": "invalid", "reason": _reason(exc), **dict.fromkeys(METRICS, math.nan)}
    except Exception as exc:  # noqa: BLE001 - an unexpected failure is a row, not the end of the sweep
        log.debug("point %s on %s failed", params, workload, exc_info=True)
        return {"status": "error", "reason": f"{type(exc).__name__}: {_reason(exc)}",
                **dict.fromkeys(METRICS, math.nan)}


def _run_chunk(base_json: str, family: str, tasks: list[tuple[int, str, str, str]]) -> list[dict[str, Any]]:
    """Outcomes and metrics of ``(point, key, params JSON, workload)`` tasks (runs in a worker)."""
    base = _base_dict(base_json)
    out = []
    for point, key, params_json, workload in tasks:
        out.append({"point": point, "key": key, **_run_point(base, family, json.loads(params_json), workload)})
    return out


# -- the sweep ------------------------------------------------------------------------------------

def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _load_base(base: Any) -> Accelerator:
    return base if isinstance(base, Accelerator) else config.load(base)


def _check_workloads(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not names:
        raise ConfigError(f"workloads must be a non-empty list of zoo names or .onnx/.csv files, not {names!r}")
    zoo = set(workloads_pkg.zoo.names())
    for name in names:
        if not isinstance(name, str) or (name not in zoo and not Path(name).is_file()):
            raise ConfigError(f"workloads: {name!r} is neither a zoo model ({', '.join(sorted(zoo))}) "
                              f"nor an existing .onnx/.csv file")
    return tuple(names)


class _Tasks:
    """Every (point, workload) row of a sweep with its identity columns."""

    def __init__(self, space: Space, names: Sequence[str]) -> None:
        self.space = space
        self.arch = _load_base(space.base)
        self.base_json = _canonical(config.to_dict(self.arch))
        self.workloads = tuple(names)
        self.identity: dict[str, dict[str, Any]] = {}  # key -> identity columns, in enumeration order
        base = json.loads(self.base_json)
        for point, params in enumerate(space.points()):
            params_json = _canonical(params)
            for workload in self.workloads:
                key = hashlib.sha1(_canonical({"base": base, "fpga_family": space.fpga_family, "params": params,
                                               "workload": workload}).encode()).hexdigest()
                self.identity[key] = {"point": point, "key": key, "workload": workload, "arch": self.arch.name,
                                      **{p: param_column_value(params[p]) for p in space.paths},
                                      "params": params_json}

    def chunks(self, keys: Iterable[str], workers: int) -> list[list[tuple[int, str, str, str]]]:
        order = {w: i for i, w in enumerate(self.workloads)}
        todo = sorted((self.identity[k] for k in keys), key=lambda r: (order[r["workload"]], r["point"]))
        size = max(1, min(8, math.ceil(len(todo) / max(1, 4 * workers))))
        tasks = [(r["point"], r["key"], r["params"], r["workload"]) for r in todo]
        return [tasks[i:i + size] for i in range(0, len(tasks), size)]

    def frame(self, results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
        rows = []
        for key, identity in self.identity.items():
            outcome = results[key]
            rows.append({**identity, "status": outcome["status"], "reason": outcome["reason"],
                         **{m: outcome[m] for m in METRICS}})
        return _typed(pd.DataFrame(rows, columns=[*COLUMNS[:4], *self.space.paths, *COLUMNS[4:]]))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame["point"] = frame["point"].astype("int64")
    for column in _STRING_COLUMNS:
        frame[column] = frame[column].astype(str)
    for column in METRICS:
        frame[column] = frame[column].astype("float64")
    frame = frame.sort_values(["point", "workload"], kind="stable", key=None).reset_index(drop=True)
    return frame


def sweep(space: Space, workloads: Sequence[str], *, objectives: Sequence[str] = ("latency_s", "energy_j"),
          executor: Any = None, max_workers: int | None = None, out: str | Path | None = None,
          resume: bool = False, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Map and simulate every point of ``space`` on every workload; one row per (point, workload).

    ``objectives`` are the metric columns a report should trade off (checked here, stored in
    ``frame.attrs["objectives"]``; :mod:`reports.pareto` uses them). ``executor``: ``None`` (local
    processes, ``max_workers`` of them, all cores by default; ``max_workers=1`` runs in this process),
    a :class:`concurrent.futures.Executor`, a ``distributed.Client`` or a Dask scheduler address.
    ``out``, ``resume``: see the module docstring. ``progress(done, total)`` is called once before
    any work (``done`` = rows reused from a previous run) and after every finished chunk.
    """
    objectives = tuple(objectives)
    unknown = [o for o in objectives if o not in METRICS]
    if unknown:
        raise ConfigError(f"objectives must be metric columns ({', '.join(METRICS)}), not {unknown[0]!r}")
    tasks = _Tasks(space, _check_workloads(workloads))
    out_path = Path(out) if out is not None else None
    journal = _Journal(out_path) if out_path is not None else None
    results: dict[str, dict[str, Any]] = {}
    if out_path is not None:
        _check_format(out_path)
        if not resume and (out_path.exists() or journal.path.exists()):
            existing = out_path if out_path.exists() else journal.path
            raise SweepError(f"{existing} exists; pass --resume (resume=True) to continue that sweep, "
                             f"or remove it")
        if resume:
            if out_path.exists():
                results.update((r["key"], r) for r in read_results(out_path).to_dict("records"))
            results.update(journal.read())
    results = {k: v for k, v in results.items() if k in tasks.identity}
    total = len(tasks.identity)
    pending = [k for k in tasks.identity if k not in results]
    log.info("sweep: %d rows, %d already done, %d to compute", total, total - len(pending), len(pending))
    if progress is not None:
        progress(total - len(pending), total)
    if pending:
        for rows in _execute(tasks, pending, executor, max_workers):
            if journal is not None:
                journal.append(rows)
            results.update((r["key"], r) for r in rows)
            if progress is not None:
                progress(len(results), total)
    frame = tasks.frame(results)
    frame.attrs["objectives"] = list(objectives)
    if out_path is not None and (pending or not out_path.exists() or journal.path.exists()):
        write_results(frame, out_path)
        journal.remove()
    return frame


def _execute(tasks: _Tasks, keys: list[str], executor: Any, max_workers: int | None) -> Iterable[list[dict]]:
    """Run the chunks of ``keys`` and yield each chunk's rows as it finishes."""
    if isinstance(executor, str):
        from distributed import Client

        with Client(executor) as client:
            yield from _execute(tasks, keys, client, max_workers)
        return
    if executor is None:
        workers = max_workers or os.cpu_count() or 1
        if workers == 1:
            for chunk in tasks.chunks(keys, 1):
                yield _run_chunk(tasks.base_json, tasks.space.fpga_family, chunk)
            return
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            yield from _execute(tasks, keys, pool, workers)
        return
    if _is_dask(executor):
        from distributed import as_completed

        workers = max(1, len(executor.scheduler_info().get("workers", {})))
        futures = [executor.submit(_run_chunk, tasks.base_json, tasks.space.fpga_family, chunk, pure=False)
                   for chunk in tasks.chunks(keys, workers)]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            executor.cancel(futures)
        return
    workers = getattr(executor, "_max_workers", None) or max_workers or os.cpu_count() or 1
    futures = [executor.submit(_run_chunk, tasks.base_json, tasks.space.fpga_family, chunk)
               for chunk in tasks.chunks(keys, workers)]
    try:
        for future in concurrent.futures.as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


def _is_dask(executor: Any) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed"


# -- files ------------------------------------------------------------------------------------------

class _Journal:
    """Finished rows, one JSON object per line, appended and flushed as chunks finish."""

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(out.name + ".partial.jsonl")

    def read(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return rows
        with self.path.open() as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the line being written when the sweep was killed
                    continue
                rows[row["key"]] = row
        return rows

    def append(self, rows: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in rows))
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _check_format(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise SweepError(f"{path}: sweep results are written as .parquet or .csv, not {suffix or 'no suffix'!r}")
    if suffix == ".parquet" and not _has_pyarrow():
        raise SweepError(f"{path}: writing Parquet needs pyarrow (pip install pyarrow); or write a .csv file")


def write_results(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a sweep's frame to ``path`` (``.parquet`` or ``.csv``) atomically: all of it or nothing."""
    path = Path(path)
    _check_format(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False, na_rep="NaN")
    os.replace(tmp, path)
    return path


def read_results(path: str | Path) -> pd.DataFrame:
    """A sweep's frame from a file :func:`write_results` wrote, with the same column types."""
    path = Path(path)
    _check_format(path)
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
    else:
        exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}  # 3: default
        frame = pd.read_csv(path, keep_default_na=False, na_values={m: ["NaN"] for m in METRICS},
                            dtype={c: str for c in _STRING_COLUMNS}, **exact)
    return _typed(frame)


# -- using the results --------------------------------------------------------------------------------

def materialize(row_or_params: Mapping[str, Any] | pd.Series, base: Any = None, *,
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
    design, options, nm = _split(config.to_dict(_load_base(base)), normalized)
    return config.from_dict(design, source="design"), _graph(workload, nm), MapOptions(**options)


class _CallableModule(types.ModuleType):
    """This module's type: calling the module calls :func:`sweep`."""

    def __call__(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
