"""Running a sweep: every (point, workload) row of a :class:`~sim.sweep.space.Space`, computed once.

:func:`run_sweep` returns a pandas DataFrame with one row per (point, workload) and the columns of
:data:`~sim.sweep.results.COLUMNS` (the swept paths after ``arch``): identity (``point``, ``key``,
``workload``, ``arch``, one column per swept path, ``params``), outcome (``status`` ``ok`` /
``invalid`` / ``error`` and its ``reason``) and the metrics of :mod:`sim.metrics` (missing unless
``ok``; a swept path that is also a metric, ``clock_hz``, is one column, among the swept ones). Every
row is a pure function of the base design, its overrides and the workload, so the
frame is the same whichever executor ran it (:mod:`sim.sweep.executors`).

With ``out``, finished rows are appended to the journal next to it (``OUT.partial.jsonl``) as
chunks finish, and written to ``out`` (Parquet or CSV by suffix) atomically at the end; the journal
is then removed. ``resume=True`` reuses every row of ``out`` and of the journal and computes only
the others; without it an existing ``out`` or journal is an error. Rows are identified by ``key``:
the SHA-1 of the canonical JSON of the base design (its whole TOML form), the FPGA family, the
point's overrides and the workload. A resume never drops a finished row: if ``out`` or the journal
holds rows the space no longer contains (the spec was edited), it raises one
:class:`~sim.sweep.results.SweepError` that says what changed, and nothing is computed or written.
Journal lines torn by a kill are counted (a warning, and ``frame.attrs["unreadable_journal_lines"]``)
and their rows computed again.

SIGINT and SIGTERM stop a sweep promptly (:class:`~sim.sweep.executors.SweepInterrupted`): local
workers are ended at once, every finished row stays in the journal.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import workloads as workloads_pkg
from accel import config
from accel.errors import AccelError, ConfigError
from sim.metrics import METRICS
from sim.sweep import executors
from sim.sweep.point import Task, check_workload, load_base, row_key, run_chunk
from sim.sweep.results import (
    COLUMNS,
    Journal,
    SweepError,
    check_format,
    check_schema,
    read_results,
    typed,
    write_results,
)
from sim.sweep.space import Space, param_column_value

__all__ = ["run_sweep"]

log = logging.getLogger(__name__)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _check_workloads(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not names:
        raise ConfigError(f"workloads must be a non-empty list of zoo names or .onnx/.csv files, not {names!r}")
    zoo = set(workloads_pkg.zoo.names())
    for name in names:
        if not isinstance(name, str) or (name not in zoo and not Path(name).is_file()):
            raise ConfigError(f"workloads: {name!r} is neither a zoo model ({', '.join(sorted(zoo))}) "
                              f"nor an existing .onnx/.csv file")
        if name not in zoo:
            try:
                check_workload(name)
            except AccelError as exc:
                raise ConfigError(f"workloads: {exc}") from None
    return tuple(names)


CHUNK_ROWS = 8
"""The most rows a chunk has (a resume recomputes at most this many rows per worker)."""
ON_CHIP = ("array.", "scratchpad.", "accumulator.")
"""Swept paths that change what a design's programs are (:class:`mapper.emit.OnChip`); the others
(DRAM, DMA, clock, energy, ...) change only how a program is timed."""


class _Tasks:
    """Every (point, workload) row of a sweep with its identity columns."""

    def __init__(self, space: Space, names: Sequence[str]) -> None:
        self.space = space
        self.arch = load_base(space.base)
        self.base_json = _canonical(config.to_dict(self.arch))
        self.workloads = tuple(names)
        self.points = space.points()
        self.identity: dict[str, dict[str, Any]] = {}  # key -> identity columns, in enumeration order
        base = json.loads(self.base_json)
        for point, params in enumerate(self.points):
            params_json = _canonical(params)
            for workload in self.workloads:
                key = row_key(base, space.fpga_family, params, workload, space.fpga_device)
                self.identity[key] = {"point": point, "key": key, "workload": workload, "arch": self.arch.name,
                                      **{p: param_column_value(params[p]) for p in space.paths},
                                      "params": params_json}

    def chunks(self, keys: Iterable[str], workers: int) -> list[list[Task]]:
        """The rows of ``keys`` in chunks of at most :data:`CHUNK_ROWS` for ``workers`` workers.

        Rows of one workload whose points differ only off chip (the swept paths outside
        :data:`ON_CHIP`) come one after another: a worker maps them with what it memoised for the
        first (:mod:`mapper.programs`, the search's compute prices). When there are at least two such
        groups per worker, each group is its own chunk (split at :data:`CHUNK_ROWS`), so no two workers
        repeat a group's mapping; otherwise the rows are cut into chunks enough for four per worker.
        """
        order = {w: i for i, w in enumerate(self.workloads)}
        on_chip = [p for p in self.space.paths if p.startswith(ON_CHIP)]
        groups: dict[tuple, list[Task]] = {}
        for r in sorted((self.identity[k] for k in keys), key=lambda r: (order[r["workload"]], r["point"])):
            group = (r["workload"], *(_canonical(self.points[r["point"]][p]) for p in on_chip))
            groups.setdefault(group, []).append((r["point"], r["key"], r["params"], r["workload"]))
        if len(groups) >= 2 * max(1, workers):
            return [g[i:i + CHUNK_ROWS] for g in groups.values() for i in range(0, len(g), CHUNK_ROWS)]
        tasks = [task for g in groups.values() for task in g]
        size = max(1, min(CHUNK_ROWS, math.ceil(len(tasks) / max(1, 4 * workers))))
        return [tasks[i:i + size] for i in range(0, len(tasks), size)]

    def frame(self, results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
        metrics = [m for m in METRICS if m not in self.space.paths]  # a swept clock_hz is one column
        rows = []
        for key, identity in self.identity.items():
            outcome = results[key]
            rows.append({**identity, "status": outcome["status"], "reason": outcome["reason"],
                         **{m: outcome[m] for m in metrics}})
        columns = [*COLUMNS[:4], *self.space.paths, *(c for c in COLUMNS[4:] if c not in self.space.paths)]
        frame = typed(pd.DataFrame(rows, columns=columns))
        return frame.sort_values(["point", "workload"], kind="stable").reset_index(drop=True)

    def describe_foreign(self, rows: Sequence[Mapping[str, Any]]) -> str:
        """What about the space changed, as far as ``rows`` (finished, not in this space) tell."""
        changes: list[str] = []
        old_workloads = {r["workload"] for r in rows if isinstance(r.get("workload"), str)}
        gone = sorted(old_workloads - set(self.workloads))
        if gone:
            changes.append("workload " + ", ".join(gone) + " is no longer in the list")
        old_params = []
        for row in rows:
            with contextlib.suppress(TypeError, ValueError):
                params = json.loads(row["params"]) if isinstance(row.get("params"), str) else None
                if isinstance(params, dict):
                    old_params.append(params)
        values = {path: {_canonical(p[path]) for p in self.points} for path in self.space.paths}
        for path in dict.fromkeys(p for params in old_params for p in params):
            if path not in values:
                changes.append(f"{path} is no longer swept")
                continue
            dropped = sorted({_canonical(p[path]) for p in old_params if path in p} - values[path])
            if dropped:
                changes.append(f"{path} = {', '.join(dropped)} " + ("is" if len(dropped) == 1 else "are")
                               + " no longer swept")
        added = [p for p in self.space.paths if old_params and all(p not in params for params in old_params)]
        changes.extend(f"{p} is newly swept" for p in added)
        if not changes:
            changes.append("the base design, its fpga_family or fpga_device, or the sample of points differs")
        return "; ".join(changes)


def run_sweep(space: Space, workloads: Sequence[str], *, objectives: Sequence[str] = ("latency_s", "energy_j"),
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
    if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                    or max_workers < 1):
        raise ConfigError(f"max_workers must be a positive integer, not {max_workers!r}")
    tasks = _Tasks(space, _check_workloads(workloads))
    out_path = Path(out) if out is not None else None
    journal = Journal(out_path) if out_path is not None else None
    results: dict[str, dict[str, Any]] = {}
    unreadable = 0
    if out_path is not None:
        check_format(out_path)
        if out_path.is_dir():
            raise SweepError(f"{out_path}: is a directory; name the results file (.parquet or .csv)")
        if not resume and (out_path.exists() or journal.exists()):
            existing = out_path if out_path.exists() else journal.path
            raise SweepError(f"{existing} exists; pass --resume (resume=True) to continue that sweep, "
                             f"or remove it")
        if resume:
            results = _finished(tasks, out_path, journal)
            unreadable = journal.unreadable
    total = len(tasks.identity)
    pending = [k for k in tasks.identity if k not in results]
    log.info("sweep: %d rows, %d already done, %d to compute", total, total - len(pending), len(pending))
    with executors.interruptible() as signals, executors.connect(executor) as runner:
        if journal is not None and pending:
            journal.start()
        if progress is not None:
            progress(total - len(pending), total)
        if pending:
            work = functools.partial(run_chunk, tasks.base_json, space.fpga_family, device=space.fpga_device)
            chunks = tasks.chunks(pending, executors.workers_of(runner, max_workers))
            with contextlib.closing(executors.execute(work, chunks, runner, max_workers)) as batches:
                for rows in batches:
                    if journal is not None:
                        with signals.critical():
                            journal.append(rows)
                    results.update((r["key"], r) for r in rows)
                    if progress is not None:
                        progress(len(results), total)
        frame = tasks.frame(results)
        frame.attrs["objectives"] = list(objectives)
        frame.attrs["unreadable_journal_lines"] = unreadable
        if out_path is not None and (pending or not out_path.exists() or journal.exists()):
            with signals.critical():
                write_results(frame, out_path)
                journal.remove()
    return frame


def _finished(tasks: _Tasks, out: Path, journal: Journal) -> dict[str, dict[str, Any]]:
    """The finished rows of ``out`` and its journal; refuses (:class:`SweepError`) rows not in ``tasks``."""
    results: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    if out.exists():
        frame = read_results(out)
        check_schema(frame, str(out))
        for row in frame.to_dict("records"):
            results[row["key"]] = row
            sources[row["key"]] = str(out)
    for key, row in journal.read().items():
        results[key] = row
        sources.setdefault(key, str(journal.path))
    if journal.unreadable:
        log.warning("%s: %d journal line%s unreadable (torn when the sweep was killed); %s computed again",
                    journal.path, journal.unreadable, "" if journal.unreadable == 1 else "s",
                    "that row is" if journal.unreadable == 1 else "those rows are")
    foreign = [k for k in results if k not in tasks.identity]
    if foreign:
        where = sorted({sources[k] for k in foreign})
        count = len(foreign)
        raise SweepError(f"{' and '.join(where)}: holds {count} finished row{'' if count == 1 else 's'} this sweep "
                         f"does not contain ({tasks.describe_foreign([results[k] for k in foreign])}); resuming "
                         f"would drop {'it' if count == 1 else 'them'}: restore the spec (to extend a sweep, add "
                         f"values), or write to another output")
    return results
