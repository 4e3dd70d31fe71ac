"""Out-of-context synthesis, place-and-route and Fmax of any RTL unit, cached by design hash.

:func:`synthesize_unit` builds a unit from the registry (:func:`rtl.units.build_unit`), then

1. synthesizes the bare unit with yosys for the family (``synth_ice40 -dsp``, ``synth_ecp5``,
   ``synth_xilinx -family xc7 -noiopad``) and reads its cells from ``stat -json`` into :class:`Resources`
   (LUTs, flip-flops, carry, DSP, block RAM): these are the unit's own resources, what
   :mod:`accel.resources` models;
2. for iCE40 and ECP5, wraps the unit in :class:`rtl.fpga.harness.SerialHarness` (every port bit
   registered and shifted through five pins, so any unit fits any package), synthesizes that, and
   places and routes it with nextpnr (``--freq``, ``--timing-allow-fail``, ``--report`` with
   ``--detailed-timing-report``, unconstrained pins placed automatically). The report's ``fmax`` gives
   the achieved Fmax per clock (a register-to-register figure, as in an out-of-context run with
   registered boundaries); its ``utilization`` counts the harnessed design's bels. Xilinx stops after
   step 1: a yosys estimate, no Fmax.

The device is the smallest of the family that holds the unit's DSPs and LUTs (iCE40: UP5K/SG48, the
only iCE40 with DSPs; ECP5: 25k, 45k or 85k in CABGA381) unless one is given. A unit that fits no
device of its family keeps its synthesis figures and skips place-and-route; the report says why.

``DIR/report.json`` (see :meth:`FpgaReport.to_json`) and ``DIR/summary.txt`` are written when
``out_dir`` is given, next to every tool input, log and output. Reports are cached as JSON under
``cache_dir`` (default ``$ACCEL_FPGA_CACHE``, else ``$XDG_CACHE_HOME/accel/fpga`` or
``~/.cache/accel/fpga``) by a SHA-256 of the unit's RTLIL, the family, device, frequency, seed, the
tool versions and this flow's version, so a sweep never rebuilds a design point it has.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from amaranth.back import rtlil

from accel.errors import ConfigError, ToolError
from rtl.fpga.harness import SerialHarness, port_bits
from rtl.fpga.nextpnr import PnrReport, find_tool, parse_report, tool_version
from rtl.units import build_unit

__all__ = ["FpgaFamily", "Device", "DEVICES", "Resources", "FpgaReport", "synthesize_unit", "default_cache_dir",
           "FLOW_VERSION"]

_log = logging.getLogger(__name__)

FLOW_VERSION = 2
"""Bumped whenever the flow changes what it reports, so cached reports are not reused across it."""


class FpgaFamily(Enum):
    """FPGA families :func:`synthesize_unit` targets."""

    ICE40 = "ice40"
    ECP5 = "ecp5"
    XILINX = "xilinx"

    @classmethod
    def parse(cls, text: str | FpgaFamily) -> FpgaFamily:
        """The family named ``text``; :class:`ConfigError` otherwise."""
        if isinstance(text, FpgaFamily):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            raise ConfigError(f"FPGA family must be one of 'ice40', 'ecp5', 'xilinx', not {text!r}") from None


@dataclass(frozen=True)
class Device:
    """One device: its nextpnr name and package, and the capacity used to choose it."""

    family: FpgaFamily
    name: str
    package: str
    luts: int
    dsps: int


DEVICES: dict[FpgaFamily, tuple[Device, ...]] = {
    FpgaFamily.ICE40: (Device(FpgaFamily.ICE40, "up5k", "sg48", 5280, 8),),
    FpgaFamily.ECP5: (Device(FpgaFamily.ECP5, "25k", "CABGA381", 24288, 28),
                      Device(FpgaFamily.ECP5, "45k", "CABGA381", 43848, 72),
                      Device(FpgaFamily.ECP5, "85k", "CABGA381", 83640, 156)),
    FpgaFamily.XILINX: (Device(FpgaFamily.XILINX, "xc7", "", 0, 0),),
}
"""Devices per family, smallest first (Xilinx: a family-wide estimate, not placed)."""


@dataclass(frozen=True)
class _Tech:
    synth: str
    luts: tuple[str, ...]
    flip_flops: tuple[str, ...]
    carry: tuple[str, ...]
    dsp: tuple[str, ...]
    bram: tuple[str, ...]
    default_freq_mhz: float
    nextpnr: str | None


_TECH = {
    FpgaFamily.ICE40: _Tech("synth_ice40 -dsp", ("SB_LUT4",), ("SB_DFF",), ("SB_CARRY",), ("SB_MAC16",),
                            ("SB_RAM40_4K", "SB_SPRAM256KA"), 50.0, "nextpnr-ice40"),
    FpgaFamily.ECP5: _Tech("synth_ecp5", ("LUT4",), ("TRELLIS_FF",), ("CCU2C",), ("MULT18X18D", "ALU54B"),
                           ("DP16KD", "PDPW16KD"), 150.0, "nextpnr-ecp5"),
    FpgaFamily.XILINX: _Tech("synth_xilinx -family xc7 -flatten -noiopad",
                             ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"), ("FDRE", "FDSE", "FDCE", "FDPE"),
                             ("CARRY4",), ("DSP48E1",), ("RAMB18E1", "RAMB36E1"), 0.0, None),
}


@dataclass(frozen=True)
class Resources:
    """Cells of one synthesized unit: totals per kind and the full table by primitive."""

    luts: int
    flip_flops: int
    carry: int
    dsp: int
    bram: int
    other: int
    cells: Mapping[str, int] = field(hash=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", MappingProxyType(dict(sorted(self.cells.items()))))

    @classmethod
    def from_cells(cls, family: FpgaFamily, cells: Mapping[str, int]) -> Resources:
        """Totals of ``cells`` (yosys cell type -> count) by the family's primitive names.

        Cells whose type starts with ``$`` (yosys bookkeeping such as ``$scopeinfo``) are dropped.
        """
        tech = _TECH[family]
        cells = {c: int(n) for c, n in cells.items() if not c.startswith("$")}

        def count(names: tuple[str, ...], *, prefix: bool = False) -> int:
            return sum(n for c, n in cells.items() if (c.startswith(names) if prefix else c in names))

        luts, ffs = count(tech.luts), count(tech.flip_flops, prefix=True)
        carry, dsp, bram = count(tech.carry), count(tech.dsp), count(tech.bram)
        return cls(luts, ffs, carry, dsp, bram, sum(cells.values()) - luts - ffs - carry - dsp - bram, cells)

    def to_json(self) -> dict[str, Any]:
        """Totals plus ``cells`` as a JSON-able dict."""
        return {"luts": self.luts, "flip_flops": self.flip_flops, "carry": self.carry, "dsp": self.dsp,
                "bram": self.bram, "other": self.other, "cells": dict(self.cells)}


@dataclass(frozen=True)
class FpgaReport:
    """The outcome of :func:`synthesize_unit` for one unit, family and device.

    ``resources`` are the bare unit's synthesized cells; ``pnr`` is nextpnr's report on the
    harnessed unit (``None`` for Xilinx, when place-and-route was not asked for, or when the unit
    fits no device: ``pnr_skipped`` then says why).
    """

    unit: str
    options: Mapping[str, Any] = field(hash=False)
    module: str
    family: FpgaFamily
    device: str
    package: str
    freq_mhz: float | None
    resources: Resources
    pnr: PnrReport | None
    pnr_skipped: str | None
    harness_bits: tuple[int, int]
    tools: Mapping[str, str] = field(hash=False)
    key: str
    synth_command: str = ""

    @property
    def fmax_mhz(self) -> dict[str, float]:
        """Achieved Fmax per clock (empty without place-and-route)."""
        return self.pnr.fmax_mhz if self.pnr is not None else {}

    def to_json(self) -> dict[str, Any]:
        """What ``report.json`` holds: the design point, ``resources``, ``fmax_mhz`` per clock, ``pnr``."""
        return {
            "unit": self.unit, "options": dict(self.options), "module": self.module, "family": self.family.value,
            "device": self.device, "package": self.package, "freq_mhz": self.freq_mhz,
            "resources": self.resources.to_json(), "fmax_mhz": self.fmax_mhz,
            "pnr": self.pnr.to_json() if self.pnr is not None else None, "pnr_skipped": self.pnr_skipped,
            "harness_bits": {"in": self.harness_bits[0], "out": self.harness_bits[1]},
            "tools": dict(self.tools), "key": self.key, "flow_version": FLOW_VERSION,
            "synth_command": self.synth_command,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FpgaReport:
        """Inverse of :meth:`to_json`."""
        family = FpgaFamily.parse(data["family"])
        res = data["resources"]
        resources = Resources(res["luts"], res["flip_flops"], res["carry"], res["dsp"], res["bram"], res["other"],
                              res["cells"])
        pnr = PnrReport.from_json(data["pnr"]) if data.get("pnr") is not None else None
        bits = data["harness_bits"]
        return cls(data["unit"], data["options"], data["module"], family, data["device"], data["package"],
                   data["freq_mhz"], resources, pnr, data.get("pnr_skipped"), (bits["in"], bits["out"]),
                   data["tools"], data["key"], data.get("synth_command", ""))

    def summary(self) -> str:
        """A short human-readable summary (what ``summary.txt`` holds)."""
        r = self.resources
        options = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items())) or "defaults"
        lines = [f"{self.module} ({self.unit}: {options}) on {self.family.value} {self.device} {self.package}".rstrip(),
                 "", f"unit resources (out-of-context synthesis, yosys '{self.synth_command}', stat -json):",
                 f"  LUTs        {r.luts:>8}", f"  flip-flops  {r.flip_flops:>8}", f"  carry       {r.carry:>8}",
                 f"  DSP         {r.dsp:>8}", f"  BRAM        {r.bram:>8}", f"  other cells {r.other:>8}"]
        if self.pnr is not None:
            lines += ["", f"place and route (harnessed: {self.harness_bits[0]} input / {self.harness_bits[1]} "
                          "output bits through a serial chain, nextpnr report):"]
            for clock in self.pnr.fmax:
                verdict = "met" if clock.met else "NOT met"
                lines.append(f"  Fmax {clock.achieved_mhz:8.2f} MHz on {clock.clock} "
                             f"(target {clock.constraint_mhz:g} MHz, {verdict})")
            for bel, (used, available) in self.pnr.utilization.items():
                if used:
                    lines.append(f"  {bel:<14} {used:>6} / {available}")
            if self.pnr.critical_paths:
                worst = max(self.pnr.critical_paths, key=lambda p: p.delay_ns)
                lines.append(f"  critical path {worst.delay_ns:.2f} ns: {worst.start} -> {worst.end}")
        elif self.pnr_skipped:
            lines += ["", f"place and route skipped: {self.pnr_skipped}"]
        lines += ["", "tools: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.tools.items()))]
        return "\n".join(lines) + "\n"


def default_cache_dir() -> Path:
    """``$ACCEL_FPGA_CACHE``, else ``$XDG_CACHE_HOME/accel/fpga``, else ``~/.cache/accel/fpga``."""
    if os.environ.get("ACCEL_FPGA_CACHE"):
        return Path(os.environ["ACCEL_FPGA_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "accel" / "fpga"


def synthesize_unit(unit: str, *, family: FpgaFamily | str, options: Mapping[str, Any] | None = None,
                    device: str | None = None, freq_mhz: float | None = None, seed: int = 1,
                    place: bool = True, out_dir: Path | str | None = None, cache_dir: Path | str | None = None,
                    use_cache: bool = True) -> FpgaReport:
    """Synthesize (and for iCE40/ECP5 place and route) registry unit ``unit`` with ``options``.

    ``device`` names a device of :data:`DEVICES` (default: the smallest that fits); ``freq_mhz`` is
    the nextpnr target (default 50 MHz on iCE40, 150 on ECP5; the achieved Fmax is reported either
    way); ``place=False`` stops after synthesis. With ``out_dir``, writes ``report.json`` and
    ``summary.txt`` there (and keeps every tool file). A cached report with the same key is
    returned without running any tool unless ``use_cache`` is false (a fresh run still refreshes it).

    Raises :class:`ConfigError` for a bad unit, option, family or device, and
    :class:`~accel.errors.ToolError` if a tool is missing or fails.
    """
    family = FpgaFamily.parse(family)
    options = dict(options or {})
    if freq_mhz is not None and not (isinstance(freq_mhz, int | float) and freq_mhz > 0):
        raise ConfigError(f"Target frequency must be a positive number of MHz, not {freq_mhz!r}")
    if device is not None and device not in {d.name for d in DEVICES[family]}:
        names = ", ".join(repr(d.name) for d in DEVICES[family])
        raise ConfigError(f"{family.value} device must be one of {names}, not {device!r}")
    built = build_unit(unit, **options)
    module = built.module
    design = rtlil.convert(built.component, name=module, emit_src=False)
    harness_bits = port_bits(built.component)
    tech = _TECH[family]
    place = place and tech.nextpnr is not None
    freq = float(freq_mhz or tech.default_freq_mhz) if place else None
    tools = {"yosys": tool_version(tuple(find_tool("yosys")))}
    if place:
        tools[tech.nextpnr] = tool_version(tuple(find_tool(tech.nextpnr)))
    key = hashlib.sha256(json.dumps({"flow": FLOW_VERSION, "design": hashlib.sha256(design.encode()).hexdigest(),
                                     "family": family.value, "device": device, "freq_mhz": freq, "seed": seed,
                                     "place": place, "tools": tools}, sort_keys=True).encode()).hexdigest()[:24]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / f"{key}.json"
    if use_cache and cached.is_file():
        try:
            report = FpgaReport.from_json(json.loads(cached.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("ignoring unreadable cached report %s: %s", cached, exc)
        else:
            _log.info("%s on %s: cached report %s", module, family.value, cached)
            _write_outputs(report, out_dir)
            return report

    if out_dir is not None:
        work = Path(out_dir)
        work.mkdir(parents=True, exist_ok=True)
        report = _flow(unit, options, module, design, family, device, freq, seed, place, work, tools, key,
                       harness_bits)
    else:
        with tempfile.TemporaryDirectory(prefix="accel-fpga-") as scratch:
            report = _flow(unit, options, module, design, family, device, freq, seed, place, Path(scratch), tools,
                           key, harness_bits)
    cache.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".tmp")
    partial.write_text(json.dumps(report.to_json(), indent=1))
    partial.replace(cached)  # atomic: a sweep interrupted here never leaves a half-written report
    _write_outputs(report, out_dir)
    return report


def _flow(unit: str, options: dict[str, Any], module: str, design: str, family: FpgaFamily, device: str | None,
          freq: float | None, seed: int, place: bool, work: Path, tools: dict[str, str], key: str,
          harness_bits: tuple[int, int]) -> FpgaReport:
    tech = _TECH[family]
    yosys = find_tool("yosys")
    start = time.monotonic()
    (work / f"{module}.il").write_text(design)
    stat = work / f"{module}_stat.json"
    synth = _synthesize(yosys, work, family, module, [f"tee -q -o {stat.name} stat -json"])
    resources = Resources.from_cells(family, _stat_cells(stat, module))
    _log.info("%s on %s: %s (synthesis %.1f s)", module, family.value, resources.to_json() | {"cells": "..."},
              time.monotonic() - start)

    chosen = _choose_device(family, device, resources)
    pnr: PnrReport | None = None
    skipped: str | None = None
    if isinstance(chosen, str):
        skipped, chosen = chosen, DEVICES[family][-1]
    elif not place:
        skipped = "not requested" if tech.nextpnr is not None else f"{family.value} is a synthesis estimate only"
    else:
        try:
            pnr = _place(built_harness(unit, options), family, chosen, freq or tech.default_freq_mhz, seed, work,
                         yosys)
        except ToolError as exc:  # the unit's own figures stand; say why there is no Fmax
            _log.warning("%s on %s: place and route failed: %s", module, family.value, exc)
            skipped = f"place and route failed: {str(exc).splitlines()[0]}"
    return FpgaReport(unit, options, module, family, chosen.name, chosen.package, freq if pnr else None, resources,
                      pnr, skipped, harness_bits, tools, key, synth)


def built_harness(unit: str, options: Mapping[str, Any]) -> SerialHarness:
    """A fresh ``unit`` with ``options`` wrapped in :class:`SerialHarness` (as placed and routed)."""
    return SerialHarness(build_unit(unit, **options).component)


def _choose_device(family: FpgaFamily, name: str | None, resources: Resources) -> Device | str:
    """The requested device, or the smallest that holds the unit; a reason string if none does."""
    devices = DEVICES[family]
    if family is FpgaFamily.XILINX:
        return devices[0]
    candidates = [d for d in devices if d.name == name] if name else list(devices)
    # The harness adds about two flip-flops and one LUT per port bit; leave room for it.
    for dev in candidates:
        if resources.dsp <= dev.dsps and resources.luts * 1.2 + 200 <= dev.luts:
            return dev
    biggest = candidates[-1]
    return (f"the unit needs {resources.dsp} DSPs and {resources.luts} LUTs; the largest {family.value} device "
            f"considered ({biggest.name}) has {biggest.dsps} DSPs and {biggest.luts} LUTs")


def _place(harness: SerialHarness, family: FpgaFamily, dev: Device, freq: float, seed: int, work: Path,
           yosys: list[str]) -> PnrReport:
    tech = _TECH[family]
    top = "harness"
    (work / f"{top}.il").write_text(rtlil.convert(harness, name=top, emit_src=False))
    netlist = f"{top}_{family.value}.json"
    _synthesize(yosys, work, family, top, [f"write_json {netlist}"])
    report = f"{top}_{family.value}_nextpnr.json"
    assert tech.nextpnr is not None
    command = [*find_tool(tech.nextpnr), f"--{dev.name}", "--package", dev.package, "--json", netlist,
               "--freq", f"{freq:g}", "--seed", str(seed), "--timing-allow-fail", "--report", report,
               "--detailed-timing-report", "-q", "-l", f"{top}_{family.value}_nextpnr.log"]
    command.append("--pcf-allow-unconstrained" if family is FpgaFamily.ICE40 else "--lpf-allow-unconstrained")
    start = time.monotonic()
    _run_tool(command, work, f"{tech.nextpnr} ({dev.name})", work / f"{top}_{family.value}_nextpnr.log")
    parsed = parse_report(work / report)
    _log.info("harnessed unit on %s %s: Fmax %s (place and route %.1f s)", family.value, dev.name,
              parsed.fmax_mhz, time.monotonic() - start)
    return parsed


def _synthesize(yosys: list[str], work: Path, family: FpgaFamily, top: str, after: list[str]) -> str:
    """Synthesize ``top.il`` and run ``after``; return the synthesis command used.

    The netlist is checked (``check -assert``). Yosys 0.70's ECP5 flow can merge flip-flops with
    enables into conflicting drivers of one net (seen on a 4x4 output-stationary tile); when the
    check fails on ECP5 the synthesis is repeated with ``-nodffe`` (enables built from LUTs), and if
    yosys then fails (an ABC9 assertion seen on some harnessed tiles) with ``-nodffe -noabc9``.
    """
    commands = [_TECH[family].synth]
    if family is FpgaFamily.ECP5:
        commands += [f"{_TECH[family].synth} -nodffe", f"{_TECH[family].synth} -nodffe -noabc9"]
    for attempt, synth in enumerate(commands):
        try:
            _yosys(yosys, work, f"{top}_synth", [f"read_rtlil {top}.il", f"{synth} -top {top}", "check -assert",
                                                 *after])
            return synth
        except ToolError:
            if attempt == len(commands) - 1:
                raise
            _log.warning("%s: '%s' produced a netlist that fails 'check'; retrying with '%s'", top, synth,
                         commands[attempt + 1])
    raise AssertionError("unreachable")


def _yosys(yosys: list[str], work: Path, stem: str, commands: list[str]) -> None:
    # Relative paths only: YoWASP runs yosys in a WebAssembly sandbox rooted at the working directory.
    (work / f"{stem}.ys").write_text("\n".join(commands) + "\n")
    _run_tool([*yosys, "-q", "-l", f"{stem}.log", "-s", f"{stem}.ys"], work, "yosys", work / f"{stem}.log")


def _run_tool(command: list[str], cwd: Path, what: str, log: Path) -> None:
    """Run one tool in ``cwd``; :class:`ToolError` with the end of its log if it fails."""
    _log.debug("running %s in %s", " ".join(command), cwd)
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ToolError(f"{what} cannot be run ({command[0]}): {exc}") from None
    if done.returncode != 0:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            text = ""
        tail = "\n".join((done.stderr + "\n" + text).strip().splitlines()[-20:])
        raise ToolError(f"{what} failed with exit status {done.returncode} in {cwd}:\n{tail}")


def _stat_cells(stat: Path, module: str) -> dict[str, int]:
    data = json.loads(stat.read_text())
    scope = data.get("design") or data.get("modules", {}).get(f"\\{module}") or {}
    if "num_cells_by_type" not in scope:
        raise ToolError(f"yosys 'stat -json' output {stat} has no cell counts for {module}: keys {sorted(data)}")
    return {str(cell): int(n) for cell, n in scope["num_cells_by_type"].items()}


def _write_outputs(report: FpgaReport, out_dir: Path | str | None) -> None:
    if out_dir is None:
        return
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    (out / "summary.txt").write_text(report.summary())
