"""The NPU on ECP5: out-of-context synthesis (cells, block RAMs), then a board bitstream with its
utilisation and Fmax; prints the figures and writes them as JSON.

    python benchmarks/npu_fpga.py [--arch fpga-small] [--board versa-ecp5] [--clock-mhz MHZ] [--no-build]
                                  [--out build/npu_fpga]

(``--board ulx3s`` is the 85F build of the README's figures).

Step 1 is :func:`rtl.fpga.synth.synthesize_unit` of the ``npu`` unit for ECP5 (yosys only); step 2,
when the unit fits the board's device, :func:`rtl.fpga.board.build_bitstream` (yosys, nextpnr-ecp5
and ecppack through amaranth-boards) of the board unit ``npu`` (the NPU behind the UART host link with
its DRAM model, :class:`rtl.fpga.npu_link.NPULink`), whose nextpnr report gives the utilisation and Fmax
(and whether every clock meets the board's; the bitstream's size is recorded too). Each
step's wall time and peak memory of the tools (the children's maximum resident set) are recorded;
a step that fails is recorded with its error and the script exits non-zero. The JSON is
``OUT/npu_fpga.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


def _peak_child_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="fpga-small", help="preset or TOML of the NPU")
    parser.add_argument("--board", default="versa-ecp5", help="ECP5 board of rtl.fpga.board.BOARDS")
    parser.add_argument("--max-commands", type=int,
                        help="default: the npu unit's (64) for synthesis, the board unit's (32) for the build")
    parser.add_argument("--program-words", type=int,
                        help="default: the npu unit's (2048) for synthesis, the board unit's (2048) for the build")
    parser.add_argument("--clock-mhz", type=float,
                        help="the board build's NPU clock, from the PLL (default: the board's)")
    parser.add_argument("--no-build", action="store_true", help="stop after synthesis")
    parser.add_argument("--out", type=Path, default=Path("build/npu_fpga"))
    args = parser.parse_args(argv)

    from accel.errors import AccelError
    from rtl.fpga.board import BOARDS, build_bitstream
    from rtl.fpga.synth import synthesize_unit

    options = {"arch": args.arch, **{k: v for k, v in (("max_commands", args.max_commands),
                                                        ("program_words", args.program_words)) if v is not None}}
    device = BOARDS[args.board][3]
    figures: dict[str, Any] = {"options": options, "board": args.board, "device": device}
    args.out.mkdir(parents=True, exist_ok=True)
    status = 0
    start = time.monotonic()
    try:
        report = synthesize_unit("npu", family="ecp5", options=options, device=device, place=False,
                                 out_dir=args.out / "synth", use_cache=False)
        figures["synthesis"] = {"resources": report.resources.to_json(), "fits": report.fits,
                                "fit_problems": list(report.fit_problems)}
        print(report.summary(), end="")
    except AccelError as exc:
        figures["synthesis"] = {"error": str(exc)}
        print(f"synthesis failed: {exc}")
        status = 1
    figures["synthesis"]["seconds"] = round(time.monotonic() - start, 1)
    figures["synthesis"]["peak_tool_mib"] = round(_peak_child_mib())
    if status == 0 and not args.no_build and figures["synthesis"]["fits"]:
        start = time.monotonic()
        try:
            board_options = options if args.clock_mhz is None else {**options, "clock_mhz": args.clock_mhz}
            build = build_bitstream(args.board, "npu", options=board_options, build_dir=args.out / args.board)
            figures["build"] = {"bitstream": str(build.bitstream), "bitstream_bytes": build.bitstream.stat().st_size,
                                "fmax_mhz": build.pnr.fmax_mhz if build.pnr else {},
                                "timing_met": all(c.met for c in build.pnr.fmax) if build.pnr else None,
                                "utilization": {k: list(v) for k, v in build.pnr.utilization.items()}
                                if build.pnr else {}}
            print(build.summary(), end="")
        except AccelError as exc:
            figures["build"] = {"error": str(exc)}
            print(f"build failed: {exc}")
            status = 1
        figures["build"]["seconds"] = round(time.monotonic() - start, 1)
        figures["build"]["peak_tool_mib"] = round(_peak_child_mib())
    target = args.out / "npu_fpga.json"
    target.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {target}")
    return status


if __name__ == "__main__":
    sys.exit(main())
