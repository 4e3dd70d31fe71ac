"""The error hierarchy of the whole toolkit.

Every error caused by bad input is a subclass of :class:`AccelError`; its message names the file,
field or layer and says what was expected, so the command line can print it as one line and exit 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["AccelError", "ConfigError", "WorkloadError", "MappingError", "ToolError", "unknown_field"]


class AccelError(Exception):
    """Base class of every error this toolkit raises for bad input or a missing tool."""


class ConfigError(AccelError):
    """A hardware description (TOML file, preset name or dataclass field) is invalid."""


class WorkloadError(AccelError):
    """A workload (zoo name, ONNX file, SCALE-Sim topology) cannot be read or is inconsistent."""


class MappingError(AccelError):
    """A workload cannot be mapped onto an accelerator (e.g. a tensor that can never fit)."""


class ToolError(AccelError):
    """An external tool (Icarus, yosys, nextpnr, ...) is missing or failed."""


def unknown_field(name: str, known: Iterable[str], *, prefix: str = "") -> str:
    """The problem line for a field ``name`` not among ``known`` (listed in the given order), with the
    closest known name when one is close: ``unknown field array.rowz (did you mean rows? expected one
    of rows, cols, ...)``. ``prefix`` (``"array."``) is put before ``name`` only."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:  # a change of case only (clock_Hz) scores below the cutoff
        close = [k for k in known if k.lower() == name.lower()][:1]
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown field {prefix}{name} ({hint}expected one of {', '.join(known)})"
