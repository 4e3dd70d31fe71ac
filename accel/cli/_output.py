"""Printing helpers shared by the commands: a plain-text table, byte sizes, checked output paths and
a progress line for long steps."""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from accel.errors import AccelError

__all__ = ["OutputError", "activity", "folder_for_output", "file_for_output", "format_bytes", "table"]


class OutputError(AccelError):
    """An output path the command cannot write (an existing file where a folder is meant, a folder
    where a file is meant, no permission); raised before the command does its work."""


def table(rows: list[dict], columns: list[str]) -> str:
    def cell(value: object) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, float):
            return f"{value:.3f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(_is_numberish(row[i]) for row in cells) for i in range(len(columns))]
    def fmt(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))
    return "\n".join([fmt(columns), fmt(["-" * w for w in widths]), *(fmt(row) for row in cells)])


def _is_numberish(text: str) -> bool:
    return text == "" or text.replace(",", "").replace(".", "").replace("-", "").isdigit()




def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}"
        n /= 1024
    raise AssertionError



def folder_for_output(path: Path, *, option: str = "--out") -> Path:
    """Check, before any work, that ``path`` can be a folder to write into: an existing folder where a
    file can be created, or a path whose nearest existing ancestor is such a folder (nothing is
    created here: a command that then fails leaves no empty folder behind).

    An existing file, a path under a file, or a folder where nothing can be created is an
    :class:`OutputError` naming the option and the path.
    """
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: is a file; expected a folder to write into")
    _check_writable(path, option, path)
    return path


def _check_writable(folder: Path, option: str, path: Path) -> None:
    """``folder`` (or, if missing, its nearest existing ancestor) is a folder where files can be created."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise OutputError(f"{option} {path}: cannot write into {existing} ({_reason(exc)})") from None


def file_for_output(path: Path, *, option: str = "--out", suffixes: tuple[str, ...] = ()) -> Path:
    """Check, before any work, that ``path`` can be written as a file (its folder may be missing).

    A folder, a suffix not in ``suffixes`` (when given) or a folder where nothing can be created is
    an :class:`OutputError` naming the option and the path.
    """
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder; expected a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        allowed = suffixes[0] if len(suffixes) == 1 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
        raise OutputError(f"{option} {path}: must end in {allowed}, not {path.suffix or 'no suffix'}")
    _check_writable(path.parent, option, path)
    return path


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


class _LatestStep(logging.Handler):
    """Shows the latest INFO message of the libraries as the activity line's text."""

    def __init__(self, bar: Any) -> None:
        super().__init__(logging.INFO)
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.INFO:
            text = record.getMessage().splitlines()[0] if record.getMessage() else ""
            self.bar.set_postfix_str(text[:100], refresh=True)


@contextlib.contextmanager
def activity(desc: str, *, stream: TextIO | None = None, force: bool = False,
             refresh_s: float = 0.5) -> Iterator[None]:
    """While the block runs, show on ``stream`` (stderr) a tqdm line: ``desc``, the elapsed time and the
    libraries' latest step (their INFO log messages), for steps whose library gives no progress hook
    (synthesis, place and route, a report's drill-down). Only on a terminal unless ``force``; the line
    is cleared at the end, so nothing is left in the output."""
    stream = sys.stderr if stream is None else stream
    if not (force or (hasattr(stream, "isatty") and stream.isatty())):
        yield
        return
    from tqdm import tqdm

    bar = tqdm(total=None, desc=desc, file=stream, bar_format="{desc}: {elapsed}{postfix}", leave=False)
    root = logging.getLogger()
    handler, level = _LatestStep(bar), root.level
    opened = [h for h in root.handlers if h.level == logging.NOTSET]
    for existing in opened:  # keep what reaches the user's stderr (and any other handler) as it was
        existing.setLevel(level)
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    done = threading.Event()

    def tick() -> None:
        while not done.wait(refresh_s):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        root.removeHandler(handler)
        root.setLevel(level)
        for existing in opened:
            existing.setLevel(logging.NOTSET)
        bar.close()
