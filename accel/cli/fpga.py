"""The ``accel fpga`` commands: ``synth`` (resources and Fmax report), ``build`` (a board bitstream),
``report`` (the same report.json from a user's Vivado reports) and ``run`` (a tile, or with ``--design
npu`` a mapped layer on the whole NPU, on a board).

Registered by :mod:`accel.cli` through :func:`register`. Handlers print their results and raise
:class:`~accel.errors.AccelError` subclasses for bad input or missing tools (the CLI prints those as
one line). ``run`` talks to a board running :class:`rtl.fpga.host_link.HostLink` over a serial port
with :class:`rtl.fpga.driver.HostLinkDriver` (the same driver the cocotb bench drives through the
UART pins) and checks the tile against ``sim.numerics`` and ``accel.timing``; ``run --design npu`` talks
to :class:`rtl.fpga.npu_link.NPULink` with :class:`rtl.fpga.driver.NPULinkDriver` and checks a mapped
layer's outputs, cycles and trace against ``rtl.npu.golden`` and ``sim.simulate``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from accel.cli._types import non_negative_int, positive_int
from accel.errors import ToolError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``fpga`` command with ``synth``, ``build``, ``report`` and ``run`` to ``subparsers``."""
    fpga = subparsers.add_parser("fpga", help="FPGA synthesis reports and board bitstreams",
                                 description="Synthesize, place and route RTL units; build board bitstreams.")
    sub = fpga.add_subparsers(title="fpga commands", metavar="FPGA_COMMAND")

    synth = sub.add_parser("synth", help="synthesize (and place and route) a unit; write report.json",
                           description="Out-of-context synthesis of a unit with yosys, place and route with "
                                       "nextpnr (iCE40, ECP5); writes OUT/report.json and OUT/summary.txt.")
    synth.add_argument("--family", required=True, choices=("ice40", "ecp5", "xilinx"))
    synth.add_argument("--device", help="device of the family (default: the smallest that fits)")
    synth.add_argument("--freq", type=_megahertz, help="nextpnr target frequency in MHz")
    synth.add_argument("--no-pnr", action="store_true", help="stop after synthesis (no Fmax)")
    synth.add_argument("--no-cache", action="store_true", help="rebuild even if a cached report exists")
    _design_arguments(synth)
    synth.add_argument("--out", type=Path, required=True, help="output directory")
    synth.set_defaults(handler=_synth)

    build = sub.add_parser("build", help="build a board bitstream through amaranth-boards",
                           description="Build a bitstream of a unit behind the serial harness for a board.")
    build.add_argument("--board", required=True,
                       choices=("icebreaker", "ulx3s", "orangecrab", "versa-ecp5", "arty-a7", "nexys4ddr"),
                       help="iCE40/ECP5 boards build here with YoWASP; Xilinx boards (arty-a7, nexys4ddr) need Vivado")
    _design_arguments(build, board=True)
    build.add_argument("--out", type=Path, default=Path("build/fpga"), help="build directory")
    build.add_argument("--program", action="store_true", help="program the attached board afterwards")
    build.add_argument("--script-only", action="store_true",
                       help="Xilinx boards: write the Vivado project and build script without running them")
    build.set_defaults(handler=_build)

    report = sub.add_parser("report", help="summarise Vivado utilisation/timing reports; write report.json",
                            description="Read the text of Vivado's report_utilization (and report_timing_summary) "
                                        "for a design, print a summary and write OUT/report.json in the shape "
                                        "'accel fpga synth' writes (Fmax per clock = 1000 / (period - WNS)).")
    report.add_argument("--utilization", type=Path, required=True, metavar="FILE.rpt",
                        help="report_utilization output, e.g. <name>_utilization_place.rpt")
    report.add_argument("--timing", type=Path, metavar="FILE.rpt",
                        help="report_timing_summary output, e.g. <name>_timing.rpt")
    report.add_argument("--out", type=Path, help="directory for report.json (default: print only)")
    report.set_defaults(handler=_report)

    run = sub.add_parser("run", help="run a tile or a mapped layer on a board over UART and check it",
                         description="host_link (default): send random int8 weights and activations to a board "
                                     "running the HostLink top level, read back the results and the cycle "
                                     "counter, and check them against sim.numerics and the timing datasheet. "
                                     "npu: map a fully connected layer (or with --conv a 3x3 convolution) onto "
                                     "--arch, send its program, tables and random "
                                     "inputs to a board running the NPU host link (accel fpga build --design "
                                     "npu), run it, read the outputs, cycles and trace back and compare them "
                                     "with rtl.npu.golden and sim.simulate. Needs pyserial.")
    run.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    run.add_argument("--design", choices=("host_link", "npu"), default="host_link",
                     help="the board's top level: host_link (a WS tile) or npu (the whole NPU)")
    run.add_argument("--baud", type=positive_int, default=115200, help="baud rate (default 115200)")
    run.add_argument("--stream", type=positive_int, default=4, help="host_link: activation rows S to send (default 4)")
    run.add_argument("--arch", default="fpga-small",
                     help="npu: the board's hardware description, a preset name or TOML path (default fpga-small)")
    run.add_argument("--layer", default="16x32x16", metavar="MxKxN",
                     help="npu: the fully connected layer x (M x K) @ w (K x N) to map (default 16x32x16)")
    run.add_argument("--conv", metavar="CxHxWxO",
                     help="npu: map a 3x3 convolution with padding 1 of a C x H x W input to O channels instead "
                          "of --layer (its computes gather im2col rows through the NPU's input feeder), e.g. 4x6x6x8")
    run.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random operands (default 0)")
    run.set_defaults(handler=_run)
    fpga.set_defaults(handler=lambda args: fpga.print_help() or 2)


def _design_arguments(parser: argparse.ArgumentParser, *, board: bool = False) -> None:
    parser.add_argument("--design", default="systolic",
                        help="RTL unit: systolic, pe, requant, nm_compressor, sparse_systolic, npu; for build also "
                             "host_link (the UART command protocol around a WS tile, for 'accel fpga run'); "
                             "build of npu puts the NPU and a DRAM model behind the UART "
                             "(for 'accel fpga run --design npu')")
    parser.add_argument("--rows", type=int, help="systolic rows")
    parser.add_argument("--cols", type=int, help="systolic columns")
    parser.add_argument("--dataflow", choices=("ws", "os"), help="systolic dataflow")
    parser.add_argument("--arch", help="npu: the hardware description, a preset name or TOML path (default fpga-small)")
    parser.add_argument("--max-commands", type=int, help="npu: commands a program may have")
    parser.add_argument("--program-words", type=int, help="npu: 32-bit words of program memory")
    parser.add_argument("--requant-channels", type=int,
                        help="npu: entries of the requantization channel table (default 32; on a board 256); 0 "
                             "builds no requantizer and no vector datapath (their multipliers: for a 45F board)")
    if board:
        parser.add_argument("--dram-bytes", type=int, help="npu: bytes of the board's DRAM model (default 16384)")
        parser.add_argument("--clock-mhz", type=_megahertz,
                            help="npu on ECP5 boards: the NPU's clock, made by the FPGA's PLL from the board's "
                                 "(default: rtl.fpga.board.NPU_ECP5_CLOCK_MHZ, 10); the NPU counts its own cycles, "
                                 "so they do not change")


def _megahertz(text: str) -> float:
    """An argparse type for a frequency in MHz: a positive, finite number."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of MHz, not {text!r}")
    return value


#: The unit options each --design takes (others are refused in the command line's words).
_DESIGN_OPTIONS = {"pe": (), "requant": (), "nm_compressor": (), "systolic": ("rows", "cols", "dataflow"),
                   "sparse_systolic": ("rows", "cols"), "host_link": ("rows", "cols"),
                   "npu": ("arch", "max_commands", "program_words", "requant_channels", "dram_bytes", "clock_mhz")}


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The unit options given on the command line (only those given: each unit has its defaults); an
    option the --design does not take is a :class:`~accel.errors.ConfigError` naming it."""
    from accel.errors import ConfigError

    names = ("rows", "cols", "dataflow", "arch", "max_commands", "program_words", "requant_channels", "dram_bytes",
             "clock_mhz")
    given = {k: v for k in names if (v := getattr(args, k, None)) is not None}
    takes = _DESIGN_OPTIONS.get(args.design)
    wrong = [name for name in given if takes is not None and name not in takes]
    if wrong:
        def flag(name: str) -> str:
            return "--" + name.replace("_", "-")

        allowed = [flag(name) for name in takes if hasattr(args, name)]
        raise ConfigError(f"--design {args.design} takes {', '.join(allowed) if allowed else 'no unit options'}, "
                          f"not {', '.join(flag(name) for name in wrong)}")
    return given


def _synth(args: argparse.Namespace) -> int:
    from accel.cli._output import folder_for_output
    from rtl.fpga.synth import synthesize_unit

    folder_for_output(args.out)
    report = synthesize_unit(args.design, family=args.family, options=_options(args), device=args.device,
                             freq_mhz=args.freq, place=not args.no_pnr, out_dir=args.out,
                             use_cache=not args.no_cache)
    print(report.summary(), end="")
    print(f"report: {args.out / 'report.json'}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from accel.cli._output import folder_for_output
    from rtl.fpga.board import build_bitstream, write_vivado_project

    folder_for_output(args.out)
    if args.script_only:
        written = write_vivado_project(args.board, args.design, options=_options(args), build_dir=args.out)
        for path in written:
            print(f"wrote {path}")
        scripts = [p for p in written if p.name.startswith("build_") and p.suffix == ".sh"]
        if scripts:
            name, out = scripts[0].stem.removeprefix("build_"), args.out
            print(f"next: run {scripts[0].name} in {out} where Vivado is installed; it writes "
                  f"{name}_utilization_place.rpt and {name}_timing.rpt, which\n"
                  f"  accel fpga report --utilization {out / f'{name}_utilization_place.rpt'} "
                  f"--timing {out / f'{name}_timing.rpt'} --out {out}\n"
                  "turns into report.json")
        return 0

    done = build_bitstream(args.board, args.design, options=_options(args), build_dir=args.out,
                           program=args.program)
    print(done.summary(), end="")
    return 0


def _report(args: argparse.Namespace) -> int:
    from accel.cli._output import folder_for_output
    from rtl.fpga.vivado import read_timing, read_utilization, report_json, summary

    if args.out is not None:
        folder_for_output(args.out)
    # Both reports are read before anything is written: a bad file leaves no report.json behind.
    utilization = read_utilization(args.utilization)
    timing = read_timing(args.timing) if args.timing is not None else None
    print(summary(utilization, timing), end="")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / "report.json"
        partial = target.with_suffix(".json.tmp")
        partial.write_text(json.dumps(report_json(utilization, timing), indent=2, allow_nan=False) + "\n")
        partial.replace(target)
        print(f"report: {target}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.design == "npu":
        return _run_npu(args)
    import numpy as np

    from rtl.fpga.driver import HostLinkDriver, SerialTransport

    transport = SerialTransport(args.port, args.baud)
    try:
        driver = HostLinkDriver(transport)
        info = driver.info()
        if not 1 <= args.stream <= info.max_stream:
            raise ToolError(f"--stream must be from 1 to the board's {info.max_stream}, not {args.stream}")
        rng = np.random.default_rng(args.seed)
        x = rng.integers(-128, 128, (args.stream, info.rows))
        w = rng.integers(-128, 128, (info.rows, info.cols))
        run = driver.run_tile(x, w)
    finally:
        transport.close()
    print(f"{info.rows}x{info.cols} tile on {args.port}: {args.stream} rows, results equal sim.numerics, "
          f"{run.cycles} cycles (accel.timing: {run.expected_cycles})")
    return 0


def _run_npu(args: argparse.Namespace) -> int:
    from accel.config import load
    from accel.errors import ConfigError
    from rtl.fpga.driver import LinkError, NPULinkDriver, SerialTransport, conv_layer, fc_layer, random_inputs

    option, text, example = ("--conv", args.conv, "4x6x6x8") if args.conv else ("--layer", args.layer, "16x32x16")
    try:
        dims = tuple(int(x) for x in text.lower().split("x"))
        if len(dims) != (4 if args.conv else 3) or min(dims) < 1:
            raise ValueError
    except ValueError:
        shape = "CxHxWxO" if args.conv else "MxKxN"
        raise ConfigError(f"{option} must be {shape} with positive integers, e.g. {example}, not {text!r}") from None
    arch = load(args.arch)
    if args.conv:
        c, h, w, o = dims
        plan, what = conv_layer(arch, c, h, w, o), f"3x3 conv {c}x{h}x{w} -> {o} channels"
    else:
        m, k, n = dims
        plan, what = fc_layer(arch, m, k, n), f"fc {m}x{k} @ {k}x{n}"
    inputs = random_inputs(plan.commands, args.seed)
    transport = SerialTransport(args.port, args.baud)
    try:
        run = NPULinkDriver(transport).run_program(plan, inputs, check=False)
    finally:
        transport.close()
    print(f"{arch.name}: {what} ({len(plan.commands)} commands) on the NPU at {args.port}")
    for name, data in run.outputs.items():
        verdict = "equal to" if data == run.expected[name] else "DIFFERENT from"
        print(f"  output {name}: {len(data)} bytes, {verdict} rtl.npu.golden.execute")
    print(f"  cycles: {run.cycles} (sim.simulate: {run.expected_cycles}"
          f"{', equal' if run.cycles_match else ', DIFFERENT'})")
    print(f"  trace: {len(run.trace)} commands, {'equal to' if run.trace_match else 'DIFFERENT from'} sim.simulate's")
    problems = run.mismatches()
    if problems:
        raise LinkError("; ".join(problems))
    return 0
