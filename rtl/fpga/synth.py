"""FPGA synthesis: out-of-context synthesis, place-and-route and Fmax of any RTL unit, cached by design hash.

This is the one synthesis module. Its family table (:data:`_TECH`: the yosys command and the
primitive names of each :class:`~accel.resources.FpgaFamily`) and the device table it chooses from
(:data:`accel.resources.DEVICES`) are the only ones; :class:`Resources` is the one report of
synthesized cells. Two entry points:

* :func:`synthesize` synthesizes any Amaranth component out of context and returns its
  :class:`Resources` (no cache, no place-and-route);
* :func:`synthesize_unit` builds a unit from the registry (:func:`rtl.units.build_unit`), then

  1. synthesizes the bare unit with yosys for the family (``synth_ice40 -dsp``, ``synth_ecp5``,
     ``synth_xilinx -family xc7 -noiopad``) and reads its cells from ``stat -json`` and its netlist
     into :class:`Resources`: these are the unit's own resources, what :mod:`accel.resources` models;
  2. for iCE40 and ECP5, wraps the unit in :class:`rtl.fpga.harness.SerialHarness` (every port bit
     registered and shifted through five pins, so any unit fits any package), synthesizes that, and
     places and routes it with nextpnr (``--freq``, ``--timing-allow-fail``, ``--report`` with
     ``--detailed-timing-report``, unconstrained pins placed automatically). The report's ``fmax``
     gives the achieved Fmax per clock (a register-to-register figure, as in an out-of-context run
     with registered boundaries); its ``utilization`` counts the harnessed design's bels. Xilinx
     stops after step 1: a yosys estimate, no Fmax.

LUTs are counted as the device counts them (:attr:`Resources.luts`): on ECP5 a ``CCU2C`` carry cell
is two LUT4s (nextpnr's ``TRELLIS_COMB``), on iCE40 a logic cell holds one LUT4, one carry and one
flip-flop, so the flip-flops and carries that nextpnr's packer cannot put beside a LUT take cells
of their own (counted from the netlist by nextpnr's packing rules: a flip-flop joins the LUT whose
output drives only it, a carry the adder LUT fed by its operands); muxes (``PFUMX``, ``L6MUX21``)
sit in the slices of the LUTs they select and take none.

The device is the smallest of the family that holds the unit (iCE40: UP5K/SG48, the only iCE40 with
DSPs; ECP5: 25k, 45k or 85k in CABGA381) unless one is given. Before any tool runs, the hard
multipliers the unit's RTLIL asks for (:func:`dsp_demand`) are checked against the device; after
synthesis, every resource (:func:`accel.resources.fit_problems`). With place-and-route asked for, a
unit that fits no device is a :class:`~accel.errors.ConfigError` naming what it needs (raised
before synthesis when the multipliers alone do not fit, else after ``report.json`` is written);
with ``place=False`` its figures are reported and ``fits`` is false.

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
import re
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from amaranth.back import rtlil
from amaranth.lib import wiring

from accel.errors import ConfigError, ToolError
from accel.resources import DEVICES, Device, FpgaFamily, dsp_blocks, fit_problems
from accel.resources import device as lookup_device
from rtl.fpga.harness import SerialHarness, port_bits
from rtl.fpga.netlist import merged_cells, modules
from rtl.fpga.nextpnr import PnrReport, find_tool, parse_report, tool_version
from rtl.units import build_unit

__all__ = ["FpgaFamily", "Device", "DEVICES", "Resources", "FpgaReport", "synthesize", "synthesize_unit", "mapped_dsps",
           "dsp_demand", "synth_command", "default_cache_dir", "FLOW_VERSION"]

_log = logging.getLogger(__name__)

FLOW_VERSION = 3
"""Bumped whenever the flow changes what it reports, so cached reports are not reused across it."""


@dataclass(frozen=True)
class _Tech:
    synth: str
    luts: tuple[str, ...]
    flip_flops: tuple[str, ...]
    carry: tuple[str, ...]
    dsp: tuple[str, ...]
    bram: tuple[str, ...]
    carry_luts: int  # LUTs of the device one carry cell occupies (ECP5 CCU2C: 2)
    default_freq_mhz: float  # the nextpnr target when none is asked for (it needs one)
    nextpnr: str | None
    dsp_min_bits: tuple[int, int]  # (a, b) and product widths below which yosys keeps a multiplier in LUTs
    dsp_min_product_bits: int


_TECH = {
    FpgaFamily.ICE40: _Tech("synth_ice40 -dsp", ("SB_LUT4",), ("SB_DFF",), ("SB_CARRY",), ("SB_MAC16",),
                            ("SB_RAM40_4K", "SB_SPRAM256KA"), 0, 50.0, "nextpnr-ice40", (2, 2), 11),
    FpgaFamily.ECP5: _Tech("synth_ecp5", ("LUT4",), ("TRELLIS_FF",), ("CCU2C",), ("MULT18X18D", "ALU54B"),
                           ("DP16KD", "PDPW16KD"), 2, 150.0, "nextpnr-ecp5", (2, 2), 0),
    FpgaFamily.XILINX: _Tech("synth_xilinx -family xc7 -flatten -noiopad",
                             ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"), ("FDRE", "FDSE", "FDCE", "FDPE"),
                             ("CARRY4",), ("DSP48E1",), ("RAMB18E1", "RAMB36E1"), 0, 0.0, None, (2, 2), 0),
}
"""The family table: yosys command, primitive names per kind, and how the device counts them."""


@dataclass(frozen=True)
class Resources:
    """Cells of one synthesized design: totals per kind and the full table by primitive.

    ``luts`` is the logic as the device counts it (see the module docstring): iCE40 logic cells,
    ECP5 LUT4s including two per carry cell, Xilinx LUTs. ``lut_primitives`` counts the LUT cells
    alone. ``other`` counts cells in no total (muxes, I/O, distributed RAM, ...).
    """

    luts: int
    lut_primitives: int
    flip_flops: int
    carry: int
    dsp: int
    bram: int
    other: int
    cells: Mapping[str, int] = field(hash=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", MappingProxyType(dict(sorted(self.cells.items()))))

    @classmethod
    def from_cells(cls, family: FpgaFamily | str, cells: Mapping[str, int], *,
                   logic_cells: int | None = None) -> Resources:
        """Totals of ``cells`` (yosys cell type -> count) by the family's primitive names.

        ``logic_cells`` is iCE40's packed logic-cell count (:func:`_ice40_logic_cells`); without it
        an iCE40 design is counted unpacked (every LUT, flip-flop and carry in a cell of its own, an
        upper bound). Cells whose type starts with ``$`` (yosys bookkeeping such as ``$scopeinfo``)
        are dropped.
        """
        family = FpgaFamily.parse(family)
        tech = _TECH[family]
        cells = {c: int(n) for c, n in cells.items() if not c.startswith("$")}

        def count(names: tuple[str, ...], *, prefix: bool = False) -> int:
            return sum(n for c, n in cells.items() if (c.startswith(names) if prefix else c in names))

        lut_cells, ffs = count(tech.luts), count(tech.flip_flops, prefix=True)
        carry, dsp, bram = count(tech.carry), count(tech.dsp), count(tech.bram)
        if family is FpgaFamily.ICE40:
            luts = logic_cells if logic_cells is not None else lut_cells + ffs + carry
        else:
            luts = lut_cells + tech.carry_luts * carry
        return cls(luts, lut_cells, ffs, carry, dsp, bram, sum(cells.values()) - lut_cells - ffs - carry - dsp - bram,
                   cells)

    def fit_problems(self, dev: Device) -> list[str]:
        """What of ``dev`` these resources overflow (:func:`accel.resources.fit_problems`)."""
        return fit_problems(dev, luts=self.luts, flip_flops=self.flip_flops, dsp=self.dsp, bram=self.bram)

    def to_json(self) -> dict[str, Any]:
        """Totals plus ``cells`` as a JSON-able dict."""
        return {"luts": self.luts, "lut_primitives": self.lut_primitives, "flip_flops": self.flip_flops,
                "carry": self.carry, "dsp": self.dsp, "bram": self.bram, "other": self.other,
                "cells": dict(self.cells)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resources:
        """Inverse of :meth:`to_json`."""
        return cls(data["luts"], data["lut_primitives"], data["flip_flops"], data["carry"], data["dsp"],
                   data["bram"], data["other"], data["cells"])


def synth_command(family: FpgaFamily | str) -> str:
    """The yosys synthesis command of ``family`` (``synth_ice40 -dsp``, ``synth_ecp5``, ...), which board
    builds use too, so that a board maps multipliers to DSPs exactly as :func:`synthesize_unit` does."""
    return _TECH[FpgaFamily.parse(family)].synth


_POWER_OF_TWO = re.compile(r"\d+'0*10*")  # a constant operand with one bit set
_Y_WIRE = re.compile(r"([$\\][^\s\[\]{}]+)")  # a product driving a whole wire


def _used_bits(module: str, wires: set[str]) -> dict[str, int]:
    """For each of ``wires`` of an RTLIL ``module``, one past the highest bit the module reads, or
    ``-1`` when it reads the whole wire somewhere (``wire`` declarations and a cell's own ``\\Y``
    connection are not reads)."""
    used = dict.fromkeys(wires, 0)
    if not wires:
        return used
    names = "|".join(re.escape(w) for w in sorted(wires, key=len, reverse=True))
    token = re.compile(r"(?<![\w$\\.])(" + names + r")(?![\w$.])( \[(\d+)(?::\d+)?\])?")
    for line in module.splitlines():
        stripped = line.strip()
        if stripped.startswith(("wire ", "connect \\Y ")) or not any(w in line for w in ("$", "\\")):
            continue
        for hit in token.finditer(line):
            wire = hit.group(1)
            if used[wire] < 0:
                continue
            used[wire] = -1 if hit.group(2) is None else max(used[wire], int(hit.group(3)) + 1)
    return used


def dsp_demand(design: str, family: FpgaFamily | str) -> int:
    """Hard multiplier blocks yosys will map the ``$mul`` cells of RTLIL text ``design`` to.

    Multipliers that synthesis merges count once: Amaranth writes a cell per use of an expression, so
    a product used in several places is several identical ``$mul`` cells, which yosys' ``opt_merge``
    makes one before any multiplier is mapped (:func:`rtl.fpga.netlist.merged_cells`). Every
    remaining multiplier whose operands are at least the family's minimum widths becomes
    :func:`accel.resources.dsp_blocks` blocks (yosys' ``mul2dsp`` rule) for the product bits the
    design reads (a product of which only slices of the low bits are read, by any of its merged
    copies, is trimmed to them, as yosys' ``wreduce`` does), except a product by a constant power of
    two, which yosys turns into a shift; this is known before synthesis, from the elaborated design alone.
    """
    fam = FpgaFamily.parse(family)
    tech = _TECH[fam]
    total = 0
    for _, body in modules(design):
        muls = [copies for copies in merged_cells(body).values() if copies[0].type == "$mul"]
        y_wire = {c.name: wire.group(1) for copies in muls for c in copies
                  if (wire := _Y_WIRE.fullmatch(c.port("Y") or "")) is not None}
        used = _used_bits(body, set(y_wire.values()))
        for copies in muls:
            cell = copies[0]
            if any(_POWER_OF_TWO.fullmatch(cell.port(port) or "") for port in ("A", "B")):
                continue
            params = dict(cell.parameters)
            a, b, y = (int(params.get(k, 0)) for k in ("A_WIDTH", "B_WIDTH", "Y_WIDTH"))
            reads = [used[y_wire[c.name]] if c.name in y_wire else -1 for c in copies]
            if all(0 <= r < y for r in reads):
                y = max(reads)  # only the product's low bits are read: yosys trims the rest
            if a >= tech.dsp_min_bits[0] and b >= tech.dsp_min_bits[1] and y >= tech.dsp_min_product_bits:
                total += dsp_blocks(fam, a, b, y)
    return total


_BEFORE_LUTS = "map_luts"
"""The label of the families' yosys synthesis scripts (``synth_ice40``, ``synth_ecp5``,
``synth_xilinx``) where LUT mapping (ABC, most of a synthesis' time) begins: multipliers are hard
blocks long before it (``mul2dsp`` in ``coarse`` or ``map_dsp``), and the optimisation between
(memory mapping, gate-level ``opt``) can still remove some (3 of the 115 blocks the NPU has after
``coarse``), LUT mapping and what follows no longer."""


def mapped_dsps(design: str, family: FpgaFamily | str, module: str, work: Path | str) -> int:
    """Hard multiplier blocks yosys maps RTLIL text ``design`` (top ``module``) to, by the family's own
    synthesis run up to its LUT mapping (:data:`_BEFORE_LUTS`): the count a whole synthesis reports,
    what :func:`dsp_demand` predicts, without the LUT mapping that takes most of a synthesis' time.
    Its script, log and ``stat`` JSON are kept in ``work``."""
    fam = FpgaFamily.parse(family)
    tech = _TECH[fam]
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{module}.il").write_text(design)
    stat = work / f"{module}_dsp_stat.json"
    _yosys(find_tool("yosys"), work, f"{module}_dsp", [
        f"read_rtlil {module}.il", f"{tech.synth} -top {module} -run begin:{_BEFORE_LUTS}",
        f"tee -q -o {stat.name} stat -json"])
    cells = _stat_cells(stat, module)
    return sum(cells.get(name, 0) for name in tech.dsp)


@dataclass(frozen=True)
class FpgaReport:
    """The outcome of :func:`synthesize_unit` for one unit, family and device.

    ``resources`` are the bare unit's synthesized cells; ``pnr`` is nextpnr's report on the
    harnessed unit (``None`` for Xilinx, when place-and-route was not asked for, or when the unit
    fits no device: ``pnr_skipped`` then says why). ``freq_mhz`` is the target that was asked for
    (``None`` if none was: nextpnr then ran at the family's default target and no verdict is
    given). ``fit_problems`` lists what the unit overflows on ``device`` (empty: it fits).
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
    fit_problems: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        """Whether the unit fits :attr:`device`."""
        return not self.fit_problems

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
            "fits": self.fits, "fit_problems": list(self.fit_problems),
            "harness_bits": {"in": self.harness_bits[0], "out": self.harness_bits[1]},
            "tools": dict(self.tools), "key": self.key, "flow_version": FLOW_VERSION,
            "synth_command": self.synth_command,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FpgaReport:
        """Inverse of :meth:`to_json`."""
        family = FpgaFamily.parse(data["family"])
        pnr = PnrReport.from_json(data["pnr"]) if data.get("pnr") is not None else None
        bits = data["harness_bits"]
        return cls(data["unit"], data["options"], data["module"], family, data["device"], data["package"],
                   data["freq_mhz"], Resources.from_json(data["resources"]), pnr, data.get("pnr_skipped"),
                   (bits["in"], bits["out"]), data["tools"], data["key"], data.get("synth_command", ""),
                   tuple(data.get("fit_problems", ())))

    def summary(self) -> str:
        """A short human-readable summary (what ``summary.txt`` holds)."""
        r = self.resources
        dev = next((d for d in DEVICES[self.family] if d.name == self.device), None)

        def used(value: int, capacity: int | None) -> str:
            return f"{value:>8}" + (f" / {capacity} ({100 * value / capacity:.1f} %)" if capacity else "")

        lut_note = {FpgaFamily.ECP5: f"  ({r.lut_primitives} LUT4 + 2 x {r.carry} CCU2C)",
                    FpgaFamily.ICE40: f"  logic cells ({r.lut_primitives} LUT4, flip-flops and carries packed)"
                    }.get(self.family, "")
        options = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items())) or "defaults"
        lines = [f"{self.module} ({self.unit}: {options}) on {self.family.value} {self.device} {self.package}".rstrip(),
                 "", f"unit resources (out-of-context synthesis, yosys '{self.synth_command}'):",
                 f"  LUTs        {used(r.luts, dev.luts if dev else None)}{lut_note}",
                 f"  flip-flops  {used(r.flip_flops, dev.flip_flops if dev else None)}",
                 f"  carry       {r.carry:>8}",
                 f"  DSP         {used(r.dsp, dev.dsps if dev else None)}",
                 f"  BRAM        {used(r.bram, dev.brams if dev else None)}",
                 f"  other cells {r.other:>8}"]
        if self.fit_problems:
            lines.append(f"  does NOT fit {self.family.value} {self.device}: needs {', '.join(self.fit_problems)}")
        if self.pnr is not None:
            lines += ["", f"place and route (harnessed: {self.harness_bits[0]} input / {self.harness_bits[1]} "
                          "output bits through a serial chain, nextpnr report):"]
            for clock in self.pnr.fmax:
                verdict = "" if self.freq_mhz is None else \
                    f" (target {self.freq_mhz:g} MHz, {'met' if clock.achieved_mhz >= self.freq_mhz else 'NOT met'})"
                lines.append(f"  Fmax {clock.achieved_mhz:8.2f} MHz on {clock.clock}{verdict}")
            for bel, (n, available) in self.pnr.utilization.items():
                if n:
                    lines.append(f"  {bel:<14} {n:>6} / {available}")
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


def synthesize(component: wiring.Component, *, family: FpgaFamily | str, name: str,
               out_dir: Path | str | None = None) -> Resources:
    """Synthesize any ``component`` out of context as top module ``name`` for ``family``.

    With ``out_dir`` the RTLIL, the yosys script and log, the ``stat`` JSON and the netlist
    (``<name>_<family>.json``, what nextpnr reads) are kept there. Raises
    :class:`~accel.errors.ToolError` if yosys is missing or fails, :class:`ConfigError` for a bad
    family, component or name.
    """
    fam = FpgaFamily.parse(family)
    if not isinstance(component, wiring.Component):
        raise ConfigError(f"Component must be an amaranth.lib.wiring.Component, not {component!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"Top module name must be an identifier like 'mac_pe', not {name!r}")
    design = rtlil.convert(component, name=name, emit_src=False)
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="accel-synth-") as scratch:
            return _synthesize_bare(find_tool("yosys"), Path(scratch), fam, name, design)[0]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _synthesize_bare(find_tool("yosys"), out, fam, name, design)[0]


def synthesize_unit(unit: str, *, family: FpgaFamily | str, options: Mapping[str, Any] | None = None,
                    device: str | None = None, freq_mhz: float | None = None, seed: int = 1,
                    place: bool = True, out_dir: Path | str | None = None, cache_dir: Path | str | None = None,
                    use_cache: bool = True) -> FpgaReport:
    """Synthesize (and for iCE40/ECP5 place and route) registry unit ``unit`` with ``options``.

    ``device`` names a device of :data:`DEVICES` (default: the smallest that fits); ``freq_mhz`` is
    the nextpnr target (default none: nextpnr runs at 50 MHz on iCE40, 150 on ECP5 and the achieved
    Fmax is reported without a verdict); ``place=False`` stops after synthesis. With ``out_dir``,
    writes ``report.json`` and ``summary.txt`` there (and keeps every tool file). A cached report
    with the same key is returned without running any tool unless ``use_cache`` is false (a fresh
    run still refreshes it).

    Raises :class:`ConfigError` for a bad unit, option, family or device, and when place-and-route
    is asked for but the unit fits no device (before synthesis if its multipliers alone do not fit;
    else after writing ``report.json``), and :class:`~accel.errors.ToolError` if a tool is missing
    or fails.
    """
    family = FpgaFamily.parse(family)
    options = dict(options or {})
    if freq_mhz is not None and not (isinstance(freq_mhz, int | float) and freq_mhz > 0):
        raise ConfigError(f"Target frequency must be a positive number of MHz, not {freq_mhz!r}")
    if device is not None:
        lookup_device(family, device)  # ConfigError naming the family's devices
    built = build_unit(unit, **options)
    module = built.module
    design = rtlil.convert(built.component, name=module, emit_src=False)
    harness_bits = port_bits(built.component)
    tech = _TECH[family]
    place = place and tech.nextpnr is not None
    if place:  # before any tool runs: the hard multipliers alone must fit a device
        demand = dsp_demand(design, family)
        candidates = [d for d in DEVICES[family] if device in (None, d.name)]
        if not any(demand <= d.dsps for d in candidates):
            biggest = candidates[-1]
            raise ConfigError(f"{module} does not fit {family.value} {biggest.name}: it needs {demand} DSPs "
                              f"({biggest.name} has {biggest.dsps}); no place and route was run "
                              "(--no-pnr gives its synthesis figures)")
    freq = float(freq_mhz or tech.default_freq_mhz) if place else None
    tools = {"yosys": tool_version(tuple(find_tool("yosys")))}
    if place:
        tools[tech.nextpnr] = tool_version(tuple(find_tool(tech.nextpnr)))
    key = hashlib.sha256(json.dumps({"flow": FLOW_VERSION, "design": hashlib.sha256(design.encode()).hexdigest(),
                                     "family": family.value, "device": device, "freq_mhz": freq,
                                     "target": freq_mhz, "seed": seed, "place": place, "tools": tools},
                                    sort_keys=True).encode()).hexdigest()[:24]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / f"{key}.json"
    report: FpgaReport | None = None
    if use_cache and cached.is_file():
        try:
            report = FpgaReport.from_json(json.loads(cached.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("ignoring unreadable cached report %s: %s", cached, exc)
        else:
            _log.info("%s on %s: cached report %s", module, family.value, cached)
    if report is None:
        if out_dir is not None:
            work = Path(out_dir)
            work.mkdir(parents=True, exist_ok=True)
            report = _flow(unit, options, module, design, family, device, freq, freq_mhz, seed, place, work, tools,
                           key, harness_bits)
        else:
            with tempfile.TemporaryDirectory(prefix="accel-fpga-") as scratch:
                report = _flow(unit, options, module, design, family, device, freq, freq_mhz, seed, place,
                               Path(scratch), tools, key, harness_bits)
        cache.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".tmp")
        partial.write_text(json.dumps(report.to_json(), indent=1))
        partial.replace(cached)  # atomic: a sweep interrupted here never leaves a half-written report
    _write_outputs(report, out_dir)
    if place and not report.fits:
        where = f" (report: {Path(out_dir) / 'report.json'})" if out_dir is not None else ""
        raise ConfigError(f"{module} does not fit {family.value} {report.device}: it needs "
                          f"{', '.join(report.fit_problems)}; place and route was skipped{where}")
    return report


def _flow(unit: str, options: dict[str, Any], module: str, design: str, family: FpgaFamily, device_name: str | None,
          freq: float | None, target: float | None, seed: int, place: bool, work: Path, tools: dict[str, str],
          key: str, harness_bits: tuple[int, int]) -> FpgaReport:
    tech = _TECH[family]
    yosys = find_tool("yosys")
    start = time.monotonic()
    resources, synth = _synthesize_bare(yosys, work, family, module, design)
    _log.info("%s on %s: %s (synthesis %.1f s)", module, family.value, resources.to_json() | {"cells": "..."},
              time.monotonic() - start)

    chosen, problems = _choose_device(family, device_name, resources)
    pnr: PnrReport | None = None
    skipped: str | None = None
    if problems:
        skipped = f"the unit does not fit {family.value} {chosen.name}: it needs {', '.join(problems)}"
    elif not place:
        skipped = "not requested" if tech.nextpnr is not None else f"{family.value} is a synthesis estimate only"
    else:
        try:
            pnr = _place(built_harness(unit, options), family, chosen, freq or tech.default_freq_mhz, seed, work,
                         yosys)
        except ToolError as exc:  # the unit's own figures stand; say why there is no Fmax
            _log.warning("%s on %s: place and route failed: %s", module, family.value, exc)
            skipped = f"place and route failed: {str(exc).splitlines()[0]}"
    return FpgaReport(unit, options, module, family, chosen.name, chosen.package, target if pnr else None, resources,
                      pnr, skipped, harness_bits, tools, key, synth, tuple(problems))


def built_harness(unit: str, options: Mapping[str, Any]) -> SerialHarness:
    """A fresh ``unit`` with ``options`` wrapped in :class:`SerialHarness` (as placed and routed)."""
    return SerialHarness(build_unit(unit, **options).component)


def _choose_device(family: FpgaFamily, name: str | None, resources: Resources) -> tuple[Device, list[str]]:
    """The requested device, or the smallest that holds the unit, and what it overflows (empty: fits).

    The harness adds about two flip-flops and one LUT per port bit (and some control); room is left
    for it when choosing. When nothing fits, the largest candidate and its problems are returned.
    """
    devices = DEVICES[family]
    if family is FpgaFamily.XILINX:
        return devices[0], []
    candidates = [d for d in devices if d.name == name] if name else list(devices)
    for dev in candidates:
        if not resources.fit_problems(dev) and resources.luts * 1.2 + 200 <= dev.luts:
            return dev, []
    return candidates[-1], resources.fit_problems(candidates[-1]) or [
        f"{resources.luts} LUTs and room for the serial harness ({candidates[-1].name} has {candidates[-1].luts})"]


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


def _synthesize_bare(yosys: list[str], work: Path, family: FpgaFamily, module: str,
                     design: str) -> tuple[Resources, str]:
    """Synthesize RTLIL ``design`` as ``module`` in ``work``; its resources and the command used."""
    (work / f"{module}.il").write_text(design)
    stat = work / f"{module}_stat.json"
    netlist = work / f"{module}_{family.value}.json"
    synth = _synthesize(yosys, work, family, module, [f"tee -q -o {stat.name} stat -json",
                                                      f"write_json {netlist.name}"])
    logic_cells = _ice40_logic_cells(json.loads(netlist.read_text()), module) if family is FpgaFamily.ICE40 \
        else None
    return Resources.from_cells(family, _stat_cells(stat, module), logic_cells=logic_cells), synth


def _ice40_logic_cells(netlist: Mapping[str, Any], module: str) -> int:
    """iCE40 logic cells of a flattened yosys JSON netlist, packed as nextpnr's iCE40 packer does.

    Every ``SB_LUT4`` takes a cell. A flip-flop joins the cell of the LUT whose output drives its
    ``D`` and nothing else (nextpnr ``pack_lut_lutffs``); a carry joins the cell of an adder LUT
    whose ``I1``/``I2`` are the carry's ``I0``/``I1`` (``pack_carries``). Whatever joins no LUT
    takes a cell of its own (with a pass-through LUT).
    """
    top = netlist.get("modules", {}).get(module)
    if top is None:
        raise ToolError(f"yosys netlist has no module {module!r}: modules {sorted(netlist.get('modules', {}))}")
    cells = list(top.get("cells", {}).values())
    sinks: Counter[object] = Counter()
    for cell in cells:
        for port, bits in cell.get("connections", {}).items():
            if cell.get("port_directions", {}).get(port) == "input":
                sinks.update(b for b in bits if isinstance(b, int))
    for port in top.get("ports", {}).values():
        if port.get("direction") == "output":
            sinks.update(b for b in port.get("bits", []) if isinstance(b, int))
    luts = [c for c in cells if c.get("type") == "SB_LUT4"]
    lut_by_output = {c["connections"]["O"][0]: i for i, c in enumerate(luts)}
    with_ff: set[int] = set()
    lone = 0
    for cell in cells:
        if not str(cell.get("type", "")).startswith("SB_DFF"):
            continue
        d = cell["connections"]["D"][0]
        owner = lut_by_output.get(d)
        if owner is not None and owner not in with_ff and sinks[d] == 1:
            with_ff.add(owner)
        else:
            lone += 1
    adders: dict[tuple[object, object], list[int]] = {}
    for i, c in enumerate(luts):
        conn = c["connections"]
        adders.setdefault((conn["I1"][0], conn["I2"][0]), []).append(i)
    with_carry: set[int] = set()
    for cell in cells:
        if cell.get("type") != "SB_CARRY":
            continue
        conn = cell["connections"]
        free = [i for i in adders.get((conn["I0"][0], conn["I1"][0]), []) if i not in with_carry]
        if free:
            with_carry.add(free[0])
        else:
            lone += 1
    return len(luts) + lone


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
