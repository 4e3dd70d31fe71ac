"""The error hierarchy of the whole toolkit.

Every error caused by bad input is a subclass of :class:`AccelError`; its message names the file,
field or layer and says what was expected, so the command line can print it as one line and exit 2.
"""

from __future__ import annotations

__all__ = ["AccelError", "ConfigError", "WorkloadError", "MappingError", "ToolError"]


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
