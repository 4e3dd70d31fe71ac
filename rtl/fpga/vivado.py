"""Reading the utilisation and timing reports Vivado writes (``report_utilization``, ``report_timing_summary``).

Vivado cannot run here; a user who builds the project :func:`rtl.fpga.board.write_vivado_project`
writes (or any Vivado project) hands us its text reports, and :func:`parse_utilization` and
:func:`parse_timing` turn them into values. Both locate every table by its heading and header row,
never by line number, so the layouts of Vivado 2018 to 2025 read alike:

* utilisation: the "Slice Logic" (7-series) or "CLB Logic" (UltraScale) table for LUTs and
  registers, "Memory" or "BLOCKRAM" for block RAM, "DSP" or "ARITHMETIC" for DSP slices, and
  "Primitives" for the cell counts (CARRY4/CARRY8 live there on 7-series). The "Used" column is
  found by name, so the extra ``Fixed`` and ``Prohibited`` columns of some versions do not matter.
* timing: "Design Timing Summary" (WNS, TNS, WHS, ... of the whole design), "Clock Summary"
  (every clock's waveform, period and frequency) and "Intra Clock Table" (each clock's own WNS).
  Their columns are whitespace-aligned; each is cut at the dashes under its heading, so the blank
  cells Vivado leaves for a clock with only pulse-width checks stay blank.

:func:`report_json` puts one design's reports in the shape of ``accel fpga synth``'s
``report.json`` (:meth:`rtl.fpga.synth.FpgaReport.to_json`), so sweeps read either.

Anything that is not such a report raises :class:`~accel.errors.ToolError` naming the source and
what was looked for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from accel.errors import ToolError

__all__ = ["VivadoUtilization", "ClockTiming", "VivadoTiming", "parse_utilization", "parse_timing",
           "read_utilization", "read_timing", "report_json", "summary"]

_HEADING = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+(\S.*?)\s*$")
_HEADER_FIELD = re.compile(r"^\|\s*([A-Z][A-Za-z ]*?)\s*:\s*(.*?)\s*$")
_CLOCK_ROW = re.compile(r"^(\s*)(\S+)\s+\{([^}]*)\}\s+(\S+)\s+(\S+)\s*$")
_CARRY = ("CARRY4", "CARRY8")
_NOT_OTHER = ("LUT", "FD", "LD", "CARRY", "DSP", "RAMB")  # primitive prefixes counted in a category


@dataclass(frozen=True)
class VivadoUtilization:
    """What :func:`parse_utilization` reads from one ``report_utilization`` text.

    ``luts`` and ``flip_flops`` are the "Slice/CLB LUTs" and "Slice/CLB Registers" rows (registers
    include latches, as Vivado counts them); ``dsp`` the "DSPs" row; ``ramb36`` and ``ramb18`` the
    "RAMB36/FIFO" and "RAMB18" rows; ``carry`` the CARRY4 + CARRY8 primitives (``None`` when the
    report lists neither a Primitives table nor a CARRY8 row). ``available`` holds the "Available"
    column of those rows by their name in the report; ``cells`` the Primitives table.
    """

    source: str
    device: str | None
    design: str | None
    tool_version: str | None
    command: str | None
    luts: int
    flip_flops: int
    dsp: int
    ramb36: int
    ramb18: int
    carry: int | None
    available: Mapping[str, int] = field(hash=False, compare=False)
    cells: Mapping[str, int] = field(hash=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "available", MappingProxyType(dict(self.available)))
        object.__setattr__(self, "cells", MappingProxyType(dict(self.cells)))

    @property
    def bram_tiles(self) -> float:
        """Block RAM in 36 Kb tiles: RAMB36 + RAMB18 / 2 (a whole number unless a RAMB18 is alone)."""
        return self.ramb36 + self.ramb18 / 2

    @property
    def other_cells(self) -> int:
        """Primitives that are not LUTs, flip-flops/latches, carry, DSP or block RAM (I/O, clocking, ...)."""
        return sum(n for c, n in self.cells.items() if not c.startswith(_NOT_OTHER))

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-able dict."""
        return {"source": self.source, "device": self.device, "design": self.design,
                "tool_version": self.tool_version, "luts": self.luts, "flip_flops": self.flip_flops,
                "dsp": self.dsp, "ramb36": self.ramb36, "ramb18": self.ramb18, "bram_tiles": self.bram_tiles,
                "carry": self.carry, "available": dict(self.available), "cells": dict(self.cells)}


@dataclass(frozen=True)
class ClockTiming:
    """One clock of a timing summary: its constraint and its own (intra-clock) slacks in ns.

    ``wns_ns`` and ``whs_ns`` are ``None`` when Vivado timed no setup or hold path on the clock
    (blank cells: a clock with only pulse-width checks, such as an MMCM input).
    """

    clock: str
    period_ns: float
    frequency_mhz: float
    waveform_ns: tuple[float, ...]
    wns_ns: float | None
    whs_ns: float | None

    @property
    def fmax_mhz(self) -> float | None:
        """Achieved Fmax: ``1000 / (period_ns - wns_ns)``, the clock at which the worst intra-clock
        setup path would have zero slack (``None`` without a setup WNS).

        This assumes the worst path is a full-period register-to-register path of this clock;
        multicycle or half-cycle paths and inter-clock paths are not scaled, so it is an estimate,
        as every WNS-derived Fmax is.
        """
        if self.wns_ns is None:
            return None
        return 1000.0 / (self.period_ns - self.wns_ns)

    @property
    def met(self) -> bool | None:
        """Whether the clock's setup slack is non-negative (``None`` without a setup WNS)."""
        return None if self.wns_ns is None else self.wns_ns >= 0


@dataclass(frozen=True)
class VivadoTiming:
    """What :func:`parse_timing` reads from one ``report_timing_summary`` text.

    ``summary`` is the "Design Timing Summary" row by column name (``WNS(ns)`` in ns, ``TNS Failing
    Endpoints`` as an int, ...; ``None`` for a blank, ``NA`` or ``inf`` cell); ``clocks`` come in the order of the Clock
    Summary; ``constraints_met`` is Vivado's own verdict line (``None`` if absent, or if the design's
    WNS is blank or NaN: a "met" line over no timed path proves nothing).
    """

    source: str
    device: str | None
    design: str | None
    tool_version: str | None
    summary: Mapping[str, float | None] = field(hash=False, compare=False)
    clocks: tuple[ClockTiming, ...]
    constraints_met: bool | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", MappingProxyType(dict(self.summary)))

    @property
    def wns_ns(self) -> float | None:
        """The design's worst setup slack."""
        return self.summary.get("WNS(ns)")

    @property
    def whs_ns(self) -> float | None:
        """The design's worst hold slack."""
        return self.summary.get("WHS(ns)")

    @property
    def fmax_mhz(self) -> dict[str, float]:
        """Achieved Fmax per clock that has a setup WNS (see :attr:`ClockTiming.fmax_mhz`)."""
        return {c.clock: f for c in self.clocks if (f := c.fmax_mhz) is not None}

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-able dict."""
        return {"source": self.source, "device": self.device, "design": self.design,
                "tool_version": self.tool_version, "summary": dict(self.summary),
                "constraints_met": self.constraints_met,
                "clocks": [{"clock": c.clock, "period_ns": c.period_ns, "frequency_mhz": c.frequency_mhz,
                            "waveform_ns": list(c.waveform_ns), "wns_ns": c.wns_ns, "whs_ns": c.whs_ns,
                            "fmax_mhz": c.fmax_mhz} for c in self.clocks]}


def parse_utilization(text: str, *, source: str) -> VivadoUtilization:
    """Read the text of a ``report_utilization`` report (``source`` names it in errors).

    Raises :class:`~accel.errors.ToolError` listing every problem: no logic table (then nothing
    else is looked for), no memory or DSP table, a missing row or column, a non-integer count.
    """
    lines = text.splitlines()
    header = _header_fields(lines)
    tables = _pipe_tables(lines)
    logic = _find(tables, "Slice Logic", "CLB Logic")
    if logic is None:
        raise ToolError(f"{source}: no 'Slice Logic' or 'CLB Logic' table found; "
                        "is this the output of report_utilization?")
    problems: list[str] = []
    memory = _find(tables, "Memory", "BLOCKRAM")
    dsp = _find(tables, "DSP", "ARITHMETIC")
    if memory is None:
        problems.append("no 'Memory' or 'BLOCKRAM' table found")
    if dsp is None:
        problems.append("no 'DSP' or 'ARITHMETIC' table found")
    available: dict[str, int] = {}

    def used(table: _Table | None, *names: str, required: bool = True) -> int | None:
        if table is None:
            return None
        for name in names:
            if name in table.rows:
                value = table.cell(name, "Used", problems)
                if (avail := table.cell(name, "Available", [])) is not None:
                    available[name] = avail
                return value
        if required:
            problems.append(f"table '{table.title}' has no {' or '.join(repr(n) for n in names)} row")
        return None

    luts = used(logic, "Slice LUTs", "CLB LUTs")
    ffs = used(logic, "Slice Registers", "CLB Registers")
    carry8_row = used(logic, "CARRY8", required=False)
    ramb36 = used(memory, "RAMB36/FIFO")
    ramb18 = used(memory, "RAMB18")
    used(memory, "Block RAM Tile", required=False)
    dsps = used(dsp, "DSPs", "DSP48E1", "DSP48E2")
    primitives = _find(tables, "Primitives")
    cells: dict[str, int] = {}
    if primitives is not None:
        for name in primitives.rows:
            if (n := primitives.cell(name, "Used", problems)) is not None:
                cells[name] = n
    carry = sum(cells.get(c, 0) for c in _CARRY) if primitives is not None else carry8_row
    if problems:
        raise ToolError(f"{source}: " + "; ".join(problems))
    assert luts is not None and ffs is not None and ramb36 is not None and ramb18 is not None and dsps is not None
    return VivadoUtilization(source, header.get("Device"), header.get("Design"), header.get("Tool Version"),
                             header.get("Command"), luts, ffs, dsps, ramb36, ramb18, carry, available, cells)


def parse_timing(text: str, *, source: str) -> VivadoTiming:
    """Read the text of a ``report_timing_summary`` report (``source`` names it in errors).

    Every clock of the Clock Summary is returned with its Intra Clock Table slacks; the achieved
    Fmax of each is ``1000 / (period_ns - WNS_ns)`` (:attr:`ClockTiming.fmax_mhz`). Raises
    :class:`~accel.errors.ToolError` listing every problem: no Design Timing Summary (then nothing
    else is looked for), no Clock Summary or Intra Clock Table, unreadable numbers, a clock in the
    Intra Clock Table that the Clock Summary does not define.
    """
    lines = text.splitlines()
    header = _header_fields(lines)
    design = _aligned_table(lines, "Design Timing Summary")
    if design is None or not design[1]:
        raise ToolError(f"{source}: no 'Design Timing Summary' table found; "
                        "is this the output of report_timing_summary?")
    problems: list[str] = []
    columns, rows = design
    summary = {name: _number(rows[0].get(name, ""), f"Design Timing Summary {name}", problems) for name in columns}
    summary = {name: int(v) if v is not None and "Endpoints" in name else v for name, v in summary.items()}
    clocks_at = _section(lines, "Clock Summary")
    intra = _aligned_table(lines, "Intra Clock Table", named_rows=True)
    if clocks_at is None:
        problems.append("no 'Clock Summary' table found")
    if intra is None:
        problems.append("no 'Intra Clock Table' table found")
    defined: list[tuple[str, float, float, tuple[float, ...]]] = []
    named: set[str] = set()  # every clock the Clock Summary lists, even one with an unreadable number
    if clocks_at is not None:
        for line in _rows_after_dashes(lines, clocks_at, "Period(ns)"):
            match = _CLOCK_ROW.match(line)
            if match is None:
                problems.append(f"Clock Summary row {line.strip()!r} is not 'clock {{waveform}} period frequency'")
                continue
            name = match.group(2)
            named.add(name)
            period = _number(match.group(4), f"clock {name} period", problems)
            freq = _number(match.group(5), f"clock {name} frequency", problems)
            wave = tuple(_number(v, f"clock {name} waveform", problems) or 0.0 for v in match.group(3).split())
            if period is not None and freq is not None:
                defined.append((name, period, freq, wave))
        if not defined and not problems:
            problems.append("the Clock Summary lists no clock")
    slacks: dict[str, tuple[float | None, float | None]] = {}
    if intra is not None:
        for row in intra[1]:
            name = row["Clock"]
            slacks[name] = (_number(row.get("WNS(ns)", ""), f"clock {name} WNS", problems),
                            _number(row.get("WHS(ns)", ""), f"clock {name} WHS", problems))
        unknown = sorted(set(slacks) - named)
        if unknown and clocks_at is not None:
            problems.append(f"Intra Clock Table clock(s) {', '.join(unknown)} missing from the Clock Summary")
    if problems:
        raise ToolError(f"{source}: " + "; ".join(problems))
    clocks = tuple(ClockTiming(name, period, freq, wave, *slacks.get(name, (None, None)))
                   for name, period, freq, wave in defined)
    met = (True if "All user specified timing constraints are met." in text
           else False if "Timing constraints are not met." in text else None)
    if met and summary.get("WNS(ns)") is None and "WNS(ns)" in summary:
        # Vivado prints its "met" line even when it timed no setup path (WNS NaN or blank): that
        # proves nothing, so there is no verdict.
        met = None
    return VivadoTiming(source, header.get("Device"), header.get("Design"), header.get("Tool Version"), summary,
                        clocks, met)


def read_utilization(path: Path | str) -> VivadoUtilization:
    """:func:`parse_utilization` of a file (:class:`~accel.errors.ToolError` if it cannot be read)."""
    return parse_utilization(_read(path, "report_utilization"), source=str(path))


def read_timing(path: Path | str) -> VivadoTiming:
    """:func:`parse_timing` of a file (:class:`~accel.errors.ToolError` if it cannot be read)."""
    return parse_timing(_read(path, "report_timing_summary"), source=str(path))


def report_json(utilization: VivadoUtilization, timing: VivadoTiming | None = None) -> dict[str, Any]:
    """One design's Vivado reports in the shape of :meth:`rtl.fpga.synth.FpgaReport.to_json`.

    The same keys: ``resources`` (``luts`` and ``lut_primitives``, both Vivado's LUT count,
    ``flip_flops``, ``carry``, ``dsp``, ``bram`` in
    36 Kb tiles, ``other`` primitives, ``cells`` from the Primitives table), ``fmax_mhz`` per clock
    (empty without ``timing``), ``pnr`` in :class:`rtl.fpga.nextpnr.PnrReport`'s JSON shape
    (achieved and constraint MHz per clock, "Available" per resource row; no critical paths), and
    ``family`` ``"xilinx"``. Keys of the yosys flow that have no Vivado meaning (``options``,
    ``harness_bits``, ``flow_version``) are empty or ``None``. ``vivado`` adds both parsed reports.
    """
    u = utilization
    tools = {"vivado": u.tool_version or "unknown"}
    pnr = None
    fmax: dict[str, float] = {}
    if timing is not None:
        fmax = timing.fmax_mhz
        measured = ((u.luts, ("Slice LUTs", "CLB LUTs")), (u.flip_flops, ("Slice Registers", "CLB Registers")),
                    (u.bram_tiles, ("Block RAM Tile",)), (u.dsp, ("DSPs", "DSP48E1", "DSP48E2")))
        utilization_rows = {name: {"used": value, "available": u.available[name]}
                            for value, names in measured for name in names if name in u.available}
        pnr = {"fmax_mhz": fmax, "constraint_mhz": {c.clock: c.frequency_mhz for c in timing.clocks if c.clock in fmax},
               "utilization": utilization_rows, "critical_paths": [], "nets_timed": 0}
    digest = hashlib.sha256(u.source.encode() + repr(u.to_json()).encode()
                            + (repr(timing.to_json()).encode() if timing else b"")).hexdigest()[:24]
    bram = u.bram_tiles
    return {
        "unit": u.design, "options": {}, "module": u.design, "family": "xilinx", "device": u.device or "",
        "package": "", "freq_mhz": None,
        "resources": {"luts": u.luts, "lut_primitives": u.luts, "flip_flops": u.flip_flops, "carry": u.carry,
                      "dsp": u.dsp,
                      "bram": int(bram) if bram.is_integer() else bram, "other": u.other_cells,
                      "cells": dict(u.cells)},
        "fmax_mhz": fmax, "pnr": pnr, "pnr_skipped": None if timing else "no Vivado timing report given",
        "fits": None, "fit_problems": [],  # Vivado's own placement decides; nothing is checked here
        "harness_bits": None, "tools": tools, "key": digest, "flow_version": None,
        "synth_command": u.command or "",
        "vivado": {"utilization": u.to_json(), "timing": timing.to_json() if timing else None},
    }


def summary(utilization: VivadoUtilization, timing: VivadoTiming | None = None) -> str:
    """A short human-readable summary of the reports."""
    u = utilization
    lines = [f"{u.design or 'design'} on {u.device or 'unknown device'} ({u.tool_version or 'Vivado'})", "",
             f"utilisation ({u.source}):", f"  LUTs        {u.luts:>8}", f"  flip-flops  {u.flip_flops:>8}",
             f"  carry       {'-' if u.carry is None else u.carry:>8}", f"  DSP         {u.dsp:>8}",
             f"  BRAM tiles  {u.bram_tiles:>8g}  (RAMB36 {u.ramb36}, RAMB18 {u.ramb18})"]
    if timing is not None:
        verdict = {True: "met", False: "NOT met", None: "no verdict"}[timing.constraints_met]
        if timing.wns_ns is None:
            verdict = "not checked: no setup path was timed"
        lines += ["", f"timing ({timing.source}): WNS {_ns(timing.wns_ns)}, WHS {_ns(timing.whs_ns)}, "
                      f"constraints {verdict}"]
        for c in timing.clocks:
            if c.fmax_mhz is not None:
                lines.append(f"  Fmax {c.fmax_mhz:8.2f} MHz on {c.clock} (period {c.period_ns:g} ns, "
                             f"WNS {c.wns_ns:g} ns)")
    return "\n".join(lines) + "\n"


def _ns(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ns"


def _read(path: Path | str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ToolError(f"{path}: cannot be read as the text of {what}: {exc.strerror or exc}") from None


def _header_fields(lines: list[str]) -> dict[str, str]:
    """``| Key : value`` lines of the report header (before the first blank line after them)."""
    fields: dict[str, str] = {}
    for line in lines[:40]:
        match = _HEADER_FIELD.match(line)
        if match:
            fields.setdefault(match.group(1), match.group(2))
        elif fields and not line.strip():
            break
    return fields


def _number(text: str, what: str, problems: list[str]) -> float | None:
    """A float cell; ``None`` for blank, ``NA``, ``NaN`` or ``inf`` (nothing timed); a problem otherwise."""
    text = text.strip()
    if text.lower() in ("", "na", "n/a", "nan", "-nan", "inf", "-inf"):
        return None
    try:
        return float(text)
    except ValueError:
        problems.append(f"{what} must be a number, not {text!r}")
        return None


@dataclass(frozen=True)
class _Table:
    """A ``+---+`` table under a numbered heading: column names and cells by row name."""

    title: str
    columns: tuple[str, ...]
    rows: Mapping[str, tuple[str, ...]]

    def cell(self, row: str, column: str, problems: list[str]) -> int | None:
        if column not in self.columns:
            problems.append(f"table '{self.title}' has no '{column}' column (columns: {', '.join(self.columns)})")
            return None
        text = self.rows[row][self.columns.index(column)].strip()
        try:
            return int(text)
        except ValueError:
            if text:
                problems.append(f"'{row}' {column} must be an integer, not {text!r}")
            return None


def _pipe_tables(lines: list[str]) -> list[_Table]:
    """Every ``| a | b |`` table that follows a numbered heading underlined with dashes."""
    tables: list[_Table] = []
    i = 0
    while i < len(lines) - 1:
        match = _HEADING.match(lines[i])
        underline = lines[i + 1].strip()
        if not (match and underline and set(underline) == {"-"}):
            i += 1
            continue
        title = match.group(2)
        j = i + 2
        while j < len(lines) and not lines[j].startswith(("+", "|")) and not _HEADING.match(lines[j]):
            j += 1
        columns: tuple[str, ...] = ()
        rows: dict[str, tuple[str, ...]] = {}
        while j < len(lines) and lines[j].startswith(("+", "|")):
            if lines[j].startswith("|"):
                cells = tuple(c.strip() for c in lines[j].strip().strip("|").split("|"))
                if not columns:
                    columns = cells
                else:
                    rows.setdefault(cells[0].rstrip("*").strip(), cells)
            j += 1
        tables.append(_Table(title, columns, rows))
        i = j
    return tables


def _find(tables: list[_Table], *titles: str) -> _Table | None:
    wanted = {t.lower() for t in titles}
    return next((t for t in tables if t.title.lower() in wanted and t.columns), None)


def _section(lines: list[str], title: str) -> int | None:
    """Index of the ``| title`` heading line of a timing-summary section."""
    return next((i for i, line in enumerate(lines) if line.strip() == f"| {title}"), None)


def _rows_after_dashes(lines: list[str], start: int, header_word: str) -> list[str]:
    """The rows of a whitespace-aligned table: after the dash line under the header containing
    ``header_word`` (searched from ``start``), up to the first blank line."""
    for i in range(start + 1, min(start + 12, len(lines))):
        if header_word in lines[i] and i + 1 < len(lines) and lines[i + 1].lstrip().startswith("-"):
            rows = []
            for line in lines[i + 2:]:
                if not line.strip():
                    if rows:
                        break
                    continue
                if line.lstrip().startswith(("-", "|")):
                    break
                rows.append(line.rstrip())
            return rows
    return []


def _aligned_table(lines: list[str], title: str, *,
                   named_rows: bool = False) -> tuple[tuple[str, ...], list[dict[str, str]]] | None:
    """A whitespace-aligned timing table: its column names and its rows as column -> cell text.

    Columns are the runs of dashes under the header; a cell is the text between the end of the
    previous run and the end of its own (Vivado right-aligns numbers to the dashes). With
    ``named_rows`` the first column is a clock name, which may run past its dashes: it is the row's
    first word, and the next cell starts after it.
    """
    start = _section(lines, title)
    if start is None:
        return None
    for i in range(start + 1, min(start + 12, len(lines) - 1)):
        if "WNS(ns)" in lines[i] and set(lines[i + 1].strip()) <= {"-", " "} and lines[i + 1].strip():
            header, dashes = lines[i], lines[i + 1]
            break
    else:
        return None
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", dashes)]
    columns = tuple(header[a:b].strip() for a, b in spans)
    rows: list[dict[str, str]] = []
    for line in lines[i + 2:]:
        if not line.strip():
            if rows:
                break
            continue
        if line.lstrip().startswith(("-", "|")):  # the next section: the table has no rows
            break
        row: dict[str, str] = {}
        cursor = 0
        for index, (name, (_, end)) in enumerate(zip(columns, spans, strict=True)):
            if named_rows and index == 0:
                word = re.match(r"\s*\S+", line)
                assert word is not None
                row[name] = word.group(0).strip()
                cursor = word.end()
                continue
            row[name] = line[cursor:end].strip()
            cursor = max(cursor, end)
        rows.append(row)
        if not named_rows:
            break
    return columns, rows
