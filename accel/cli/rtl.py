"""``accel rtl generate``: write the Verilog of an Amaranth unit and its JSON manifest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from accel import config
from accel.cli._types import positive_int
from accel.hardware import Sparsity

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``rtl`` command (with ``generate``) to ``subparsers``."""
    rtl = subparsers.add_parser("rtl", help="generate Verilog for the RTL units",
                         description="Generate Verilog and a JSON manifest for an Amaranth unit.")
    rtl_sub = rtl.add_subparsers(title="rtl commands", metavar="RTL_COMMAND")
    gen = rtl_sub.add_parser("generate", help="write UNIT.v and UNIT.json",
                             description="Write the Verilog of a unit and a JSON manifest (ports, "
                                         "parameters, latency). Number formats come from --arch's array, "
                                         "or default to int8 x int8 -> int32.",
                             epilog="e.g. accel rtl generate systolic --rows 8 --cols 8 --dataflow ws --out build/")
    gen.add_argument("unit", choices=["pe", "systolic", "requant", "nm_compressor", "sparse_systolic", "npu"],
                     help="pe: one MAC processing element; systolic: a rows x cols tile; requant: the "
                          "requantizer (int32 -> int8, gemmlowp semantics); nm_compressor: dense weights to "
                          "N:M compressed groups; sparse_systolic: an N:M weight-stationary tile with a dense mode; "
                          "npu: the whole accelerator of --arch (default fpga-small) that runs command programs")
    gen.add_argument("--arch", default=None, help="take number formats (and rows/cols) from this preset or TOML")
    gen.add_argument("--rows", type=positive_int, default=None, help="systolic: array rows (default 4)")
    gen.add_argument("--cols", type=positive_int, default=None, help="systolic: array columns (default 4)")
    gen.add_argument("--dataflow", choices=["ws", "os"], default=None,
                     help="systolic: dataflow (default: --arch's first, else ws)")
    gen.add_argument("--mode", choices=["double", "single"], default=None,
                     help="requant: TFLite's double rounding (default) or single rounding")
    gen.add_argument("--lanes", type=positive_int, default=None,
                     help="requant, nm_compressor: values (groups) per cycle (default 1)")
    gen.add_argument("--nm", default=None, metavar="N:M",
                     help="nm_compressor, sparse_systolic: the sparsity pattern (default 2:4; sparse_systolic "
                          "with --arch: its first)")
    gen.add_argument("--name", default=None, help="Verilog module and file name (default: from the unit)")
    gen.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build/)")
    gen.set_defaults(handler=_rtl_generate)
    rtl.set_defaults(handler=lambda args: rtl.print_help() or 2)



#: The unit options each unit takes (``--arch``, ``--name`` and ``--out`` apply to every unit).
_UNIT_FLAGS = {"pe": (), "systolic": ("rows", "cols", "dataflow"), "requant": ("mode", "lanes"),
               "nm_compressor": ("nm", "lanes"), "sparse_systolic": ("rows", "cols", "nm"), "npu": ()}


def _check_flags(args: argparse.Namespace) -> None:
    """Refuse, in the words of the command line, an option the unit does not take."""
    from accel.errors import ConfigError

    wrong = [f"--{name}" for name in ("rows", "cols", "dataflow", "mode", "lanes", "nm")
             if getattr(args, name) is not None and name not in _UNIT_FLAGS[args.unit]]
    if wrong:
        takes = ", ".join(f"--{name}" for name in (*_UNIT_FLAGS[args.unit], "arch", "name", "out"))
        raise ConfigError(f"accel rtl generate {args.unit} takes {takes}, not {', '.join(wrong)}")


def _rtl_generate(args: argparse.Namespace) -> int:
    from accel.cli._output import folder_for_output
    from rtl.units import generate_unit

    _check_flags(args)
    folder_for_output(args.out)
    options: dict[str, object] = {}
    if args.unit == "npu":
        options["arch"] = args.arch or "fpga-small"  # a name, so that its errors name the --arch given
    elif args.arch:
        options.update(_from_arch(args))
    if args.nm:
        nm = Sparsity.parse(args.nm)
        options.update(n=nm.n, m=nm.m)
    given = {"rows": args.rows, "cols": args.cols, "dataflow": args.dataflow, "mode": args.mode, "lanes": args.lanes}
    for key, value in given.items():
        if value is not None:
            options[key] = value
    verilog = generate_unit(args.unit, args.out, module=args.name, **options)
    print(f"wrote {verilog}")
    print(f"wrote {verilog.with_suffix('.json')}")
    return 0


def _from_arch(args: argparse.Namespace) -> dict[str, object]:
    """The unit options --arch's array gives: its number formats and size, and as the simulator runs it,
    its first dataflow (systolic, unless --dataflow names another it lists) and its first N:M pattern
    (sparse_systolic, unless --nm is given)."""
    from accel.errors import ConfigError

    array = config.load(args.arch).array
    tile = {"a_format": array.input_format, "b_format": array.weight_format,
            "acc_format": array.accumulator_format, "rows": array.rows, "cols": array.cols}
    if args.unit == "pe":
        return {key: tile[key] for key in ("a_format", "b_format", "acc_format")}
    if args.unit == "requant":
        return {"out_format": array.input_format}
    if args.unit == "nm_compressor":
        return {"value_format": array.weight_format}
    if args.unit == "systolic":
        listed = [d.value for d in array.dataflows]
        if args.dataflow is not None and args.dataflow not in listed:
            raise ConfigError(f"--arch {args.arch} supports dataflows {', '.join(listed)}, not {args.dataflow}")
        if args.dataflow is None and listed[0] not in ("ws", "os"):
            raise ConfigError(f"--arch {args.arch}'s first dataflow is {listed[0]}, which the systolic tile does "
                              "not run (it runs ws and os); give one with --dataflow")
        return {**tile, "dataflow": args.dataflow or listed[0]}
    if args.nm is not None:  # sparse_systolic: --nm's pattern, whether or not the design lists it
        return tile
    if not array.sparsity:
        raise ConfigError(f"--arch {args.arch} lists no N:M sparsity (array.sparsity); give the pattern with --nm")
    return {**tile, "n": array.sparsity[0].n, "m": array.sparsity[0].m}
