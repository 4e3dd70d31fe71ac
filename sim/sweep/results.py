"""A sweep's result files: the table (Parquet or CSV) and the journal of finished rows beside it.

:func:`write_results` writes a sweep's frame atomically (all of it or nothing) and
:func:`read_results` reads one back with the sweep's column types: ``point`` int64, the identity and
outcome columns as strings (an empty ``reason`` stays empty), every metric as :mod:`sim.metrics`
says (counts ``Int64``, measures ``float64``); other columns (the swept parameters) as the file holds
them. Every problem (a suffix other than ``.parquet``/``.csv``, a missing or garbled file, a metric
column that holds text) raises one :class:`SweepError` naming the file.

:class:`Journal` is ``OUT.partial.jsonl``: one JSON row per line, appended and flushed as chunks
finish. A kill can leave its last line torn (unterminated): reading counts it as unreadable (its row
is computed again) and :meth:`Journal.start` cuts it off before anything new is appended, so a torn
line never swallows the next row. A line that is JSON but not a row (a missing key) is an error.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from accel.errors import AccelError
from sim.metrics import INTEGER_METRICS, METRICS

__all__ = ["COLUMNS", "STATUSES", "Journal", "SweepError", "check_schema", "read_results", "write_results"]

COLUMNS = ("point", "key", "workload", "arch", "params", "status", "reason", *METRICS)
"""The fixed columns; the swept paths come between ``arch`` and ``params``."""

STATUSES = ("ok", "invalid", "error")
"""The values of ``status``: metrics are missing unless ``ok``."""

_STRING_COLUMNS = ("key", "workload", "arch", "params", "status", "reason")


class SweepError(AccelError):
    """A sweep cannot start or continue: its output exists (pass ``resume``), cannot be read or written,
    holds rows the sweep would drop, or its executor cannot be reached."""


def _line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def default_suffix() -> str:
    """``.parquet`` when pyarrow is installed, else ``.csv``."""
    return ".parquet" if _has_pyarrow() else ".csv"


def check_format(path: Path) -> None:
    """Raise :class:`SweepError` unless ``path`` names a ``.parquet`` (with pyarrow) or ``.csv`` file."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise SweepError(f"{path}: results must be a .parquet or .csv file, not {suffix or 'a file without suffix'}")
    if suffix == ".parquet" and not _has_pyarrow():
        raise SweepError(f"{path}: Parquet needs pyarrow (pip install pyarrow); or use a .csv file")


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the sweep's dtypes on the columns it has (a :class:`ValueError` names a bad column)."""
    frame = frame.copy()
    for i, column in enumerate(frame.columns):  # by position: a swept clock_hz is also the metric's name
        values = frame.iloc[:, i]
        try:
            if column == "point":
                values = values.astype("int64")
            elif column in _STRING_COLUMNS:
                values = values.astype(str)
            elif column in INTEGER_METRICS:
                values = pd.to_numeric(values).astype("Int64")
            elif column in METRICS:
                values = pd.to_numeric(values).astype("float64")
            else:
                continue
        except (ValueError, TypeError) as exc:
            kind = {"point": "integers"}.get(column, "whole numbers" if column in INTEGER_METRICS else "numbers")
            raise ValueError(f"column {column} must hold {kind} ({_line(exc)})") from None
        frame.isetitem(i, values)
    return frame


def write_results(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a sweep's frame to ``path`` (``.parquet`` or ``.csv``) atomically: all of it or nothing.

    In CSV, counts are written as integers and missing metrics as ``NaN``."""
    path = Path(path)
    check_format(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, na_rep="NaN")
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:  # ValueError: pyarrow refuses a repeated column name
        tmp.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _line(exc)
        raise SweepError(f"{path}: cannot be written ({reason})") from None
    return path


def read_results(path: str | Path) -> pd.DataFrame:
    """A sweep's frame from a file :func:`write_results` wrote, with the same column types."""
    path = Path(path)
    check_format(path)
    if path.is_dir():
        raise SweepError(f"{path}: is a directory, not a results file")
    if not path.is_file():
        raise SweepError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}  # 3: default
            frame = pd.read_csv(path, keep_default_na=False, na_values={m: ["NaN", "", "<NA>"] for m in METRICS},
                                dtype={c: str for c in _STRING_COLUMNS}, **exact)
            with path.open(newline="", encoding="utf-8-sig") as handle:  # as pandas: a spreadsheet's BOM is no name
                header = next(csv.reader(handle), [])
            if len(header) == len(frame.columns):
                frame.columns = header  # pandas renames a repeated name (a swept clock_hz) to clock_hz.1
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many types for a garbled file
        kind = "Parquet" if suffix == ".parquet" else "CSV"
        raise SweepError(f"{path}: cannot be read as {kind}: {_line(exc)}") from None
    try:
        return typed(frame)
    except ValueError as exc:
        raise SweepError(f"{path}: {exc}") from None


def check_schema(frame: pd.DataFrame, source: str) -> None:
    """Raise :class:`SweepError` unless ``frame`` has every column of a sweep and valid ``status`` values."""
    for column in COLUMNS:
        if column not in frame.columns:
            raise SweepError(f"{source}: is not a sweep result: no column {column!r}")
    bad = sorted(set(frame["status"]) - set(STATUSES))
    if bad:
        raise SweepError(f"{source}: status must be one of {', '.join(STATUSES)}, not {bad[0]!r}")
    if frame["key"].duplicated().any():
        raise SweepError(f"{source}: key {frame['key'][frame['key'].duplicated()].iloc[0]!r} appears twice")


def _check_row(row: Any) -> str | None:
    """What is wrong with one parsed journal line, or ``None``."""
    if not isinstance(row, dict):
        return f"must be a JSON object, not {type(row).__name__}"
    if "key" not in row:
        return "has no 'key'"
    if not isinstance(row["key"], str) or not row["key"]:
        return f"key must be a non-empty string, not {row['key']!r}"
    if row.get("status") not in STATUSES:
        return f"status must be one of {', '.join(STATUSES)}, not {row.get('status')!r}"
    for name in ("reason", *METRICS):
        if name not in row:
            return f"has no {name!r}"
    for name in METRICS:
        value = row[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{name} must be a number, not {value!r}"
    return None


class Journal:
    """``OUT.partial.jsonl``: a sweep's finished rows, one JSON object per line."""

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(out.name + ".partial.jsonl")
        self.unreadable = 0
        """Lines the last :meth:`read` could not parse (torn by a kill): their rows are computed again."""

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> dict[str, dict[str, Any]]:
        """Every readable row by key (a later line wins); counts unreadable lines in :attr:`unreadable`."""
        rows: dict[str, dict[str, Any]] = {}
        self.unreadable = 0
        if not self.path.exists():
            return rows
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise SweepError(f"{self.path}: cannot be read ({exc.strerror or _line(exc)})") from None
        for number, line in enumerate(data.splitlines(keepends=True), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line) if line.endswith(b"\n") else None  # no newline: torn while written
            except (json.JSONDecodeError, UnicodeDecodeError):
                row = None
            if row is None:
                self.unreadable += 1
                continue
            problem = _check_row(row)
            if problem is not None:
                raise SweepError(f"{self.path}:{number}: not a row of this sweep's journal: {problem} (remove the "
                                 f"file to compute those rows again)")
            rows[row["key"]] = {k: math.nan if k in METRICS and v is None else v for k, v in row.items()}
        return rows

    def start(self) -> None:
        """Make the journal ready to append: its folder exists, it is writable, and a torn last line is cut off."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                if not os.access(self.path.parent, os.W_OK):
                    raise PermissionError(13, "Permission denied")
                return
            with self.path.open("r+b") as handle:
                data = handle.read()
                if data and not data.endswith(b"\n"):
                    handle.truncate(data.rfind(b"\n") + 1)  # the torn line (counted by read) goes
        except OSError as exc:
            raise SweepError(f"{self.path}: cannot be written ({exc.strerror or _line(exc)})") from None

    def append(self, rows: list[Mapping[str, Any]]) -> None:
        """Append ``rows`` and flush them to disk."""
        try:
            with self.path.open("a") as handle:
                handle.write("".join(json.dumps(dict(r)) + "\n" for r in rows))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise SweepError(f"{self.path}: cannot be written ({exc.strerror or _line(exc)})") from None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
