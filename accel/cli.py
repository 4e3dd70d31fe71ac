"""The ``accel`` command line: wires every package together (nothing imports this module).

Bad input prints one line ``accel: error: ...`` on stderr and exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from accel import config
from accel.cli_types import positive_int
from accel.errors import AccelError, MappingError
from accel.hardware import Accelerator, Sparsity
from mapper.options import Depthwise, LoopOrder

__all__ = ["main"]

_EPILOG = "Presets: {presets}. Models: {models}."


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="accel: %(levelname)s: %(message)s")
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except AccelError as exc:
        print(f"accel: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accel: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from workloads import zoo

    epilog = _EPILOG.format(presets=", ".join(config.preset_names()), models=", ".join(zoo.names()))
    parser = argparse.ArgumentParser(
        prog="accel",
        description="Design DNN accelerators: describe the hardware, map a DNN onto it, simulate it.",
        epilog=epilog,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each step does")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    info = sub.add_parser("info", help="print a hardware description",
                          description="Print an accelerator: a preset name or a TOML file.", epilog=epilog)
    info.add_argument("arch", nargs="?", help="preset name or path to a TOML file (omit to list the presets)")
    info.add_argument("--toml", action="store_true", help="print it as TOML (a file you can edit and load)")
    info.add_argument("--json", action="store_true", help="print it as JSON")
    info.set_defaults(handler=_info)

    work = sub.add_parser("workload", help="print a workload's layer table",
                          description="Print the layers of a DNN: a zoo model name, an ONNX file or a "
                                      "SCALE-Sim topology CSV, with MACs, weight and activation sizes.",
                          epilog=epilog)
    work.add_argument("workload", help="zoo model name, FILE.onnx or FILE.csv")
    work.add_argument("--batch", type=positive_int, default=None, help="batch size (default: the model's, 1)")
    work.add_argument("--json", action="store_true", help="print JSON (exact integer total_macs) instead")
    work.set_defaults(handler=_workload)

    run = sub.add_parser("run", help="map a workload onto a design and simulate it",
                         description="Map a workload onto an accelerator, simulate it with the event "
                                     "simulator, print a summary and write CSV reports and a plot.",
                         epilog=epilog)
    run.add_argument("--arch", default="gemmini", help="preset name or TOML file (default: gemmini)")
    run.add_argument("--workload", default="resnet18", help="zoo name, FILE.onnx or FILE.csv (default: resnet18)")
    run.add_argument("--topology", dest="workload", help="a SCALE-Sim topology CSV (same as --workload FILE.csv)")
    run.add_argument("--scalesim-config", type=Path, metavar="FILE.cfg",
                     help="take the hardware from a SCALE-Sim v3 config instead of --arch, run layers in "
                          "SCALE-Sim's fold-outer order, and also write COMPUTE_REPORT.csv in its layout")
    run.add_argument("--dataflow", choices=["ws", "os", "is"], help="dataflow (default: the array's first)")
    run.add_argument("--loop-order", choices=[o.value for o in LoopOrder], default=None,
                     help="tile-outer, fold-outer (SCALE-Sim's) or auto: per layer the faster estimate "
                          "(default: auto; fold-outer with --scalesim-config)")
    run.add_argument("--depthwise", choices=[d.value for d in Depthwise], default=None,
                     help="where depthwise convolutions run: array, vector unit, or auto: the faster "
                          "estimate (default: auto; array with --scalesim-config)")
    run.add_argument("--nm", default=None, metavar="N:M",
                     help="mark every weight-bearing layer N:M structured-sparse (e.g. 2:4); the array runs it "
                          "natively when the design lists that pattern, dense otherwise")
    run.add_argument("--batch", type=positive_int, default=None, help="batch size (default: 1)")
    run.add_argument("--allocator", choices=["none", "greedy", "firstfit", "ilp"], default="none",
                     help="keep tensors in the scratchpad between layers (default: none, SCALE-Sim style; "
                          "ilp: the HiGHS allocation; the report then has memory_map.png)")
    run.add_argument("--objective", choices=["latency", "energy", "edp"], default="latency",
                     help="what each layer's mapping search minimises (default: latency)")
    run.add_argument("--out", type=Path, default=None,
                     help="write CSVs (summary, layers, units, energy, power), plots (layer_cycles.png, "
                          "power.png) and trace.json (Perfetto) here")
    run.add_argument("--power-window", type=positive_int, default=None, metavar="CYCLES",
                     help="window of the power-over-time series (default: the run in about 200 windows)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    run.set_defaults(handler=_run)

    mapping = sub.add_parser(
        "map", help="map a workload: per-layer tiling and scratchpad allocation",
        description="Map a workload onto an accelerator: search each layer's dataflow, loop order and tile "
                    "for the objective, place tensors in the scratchpad with an allocator (ilp: HiGHS; "
                    "greedy: greedy-by-size with LRU eviction; firstfit; none: every tensor through DRAM), "
                    "emit and check the command program, and print each layer's mapping with its estimate "
                    "and roofline bound, the plan's DRAM traffic, and every allocator's tensor traffic.",
        epilog=epilog)
    mapping.add_argument("--arch", default="gemmini", help="preset name or TOML file (default: gemmini)")
    mapping.add_argument("--workload", default="resnet18", help="zoo name, FILE.onnx or FILE.csv")
    mapping.add_argument("--scratchpad", default=None, metavar="SIZE",
                         help="scratchpad bytes for resident tensors, e.g. 512KiB (default: the design's)")
    mapping.add_argument("--allocator", choices=["ilp", "greedy", "firstfit", "none"], default="ilp",
                         help="how tensors stay in the scratchpad between layers (default: ilp)")
    mapping.add_argument("--objective", choices=["latency", "energy", "edp"], default="latency",
                         help="what each layer's mapping search minimises (default: latency)")
    mapping.add_argument("--time-limit", type=float, default=10.0, metavar="S", help="ILP time limit (default 10)")
    mapping.add_argument("--mip-gap", type=float, default=0.01, help="ILP relative gap (default 0.01)")
    mapping.add_argument("--out", type=Path, default=None, help="write the plan as JSON here")
    mapping.add_argument("--plot", type=Path, default=None, help="write the memory-map plot (PNG or SVG) here")
    mapping.add_argument("--json", action="store_true", help="print the plan summary as JSON instead")
    mapping.set_defaults(handler=_map)

    from accel.cli_fpga import register as register_fpga
    from accel.cli_sweep import register as register_sweep

    register_fpga(sub)
    register_sweep(sub)

    from accel.cli_report import register as register_report

    register_report(sub)

    rtl = sub.add_parser("rtl", help="generate Verilog for the RTL units",
                         description="Generate Verilog and a JSON manifest for an Amaranth unit.")
    rtl_sub = rtl.add_subparsers(title="rtl commands", metavar="RTL_COMMAND")
    gen = rtl_sub.add_parser("generate", help="write UNIT.v and UNIT.json",
                             description="Write the Verilog of a unit and a JSON manifest (ports, "
                                         "parameters, latency). Number formats come from --arch's array, "
                                         "or default to int8 x int8 -> int32.",
                             epilog="e.g. accel rtl generate systolic --rows 8 --cols 8 --dataflow ws --out build/")
    gen.add_argument("unit", choices=["pe", "systolic", "requant", "nm_compressor", "sparse_systolic"],
                     help="pe: one MAC processing element; systolic: a rows x cols tile; requant: the "
                          "requantizer (int32 -> int8, gemmlowp semantics); nm_compressor: dense weights to "
                          "N:M compressed groups; sparse_systolic: an N:M weight-stationary tile with a dense mode")
    gen.add_argument("--arch", default=None, help="take number formats (and rows/cols) from this preset or TOML")
    gen.add_argument("--rows", type=positive_int, default=None, help="systolic: array rows (default 4)")
    gen.add_argument("--cols", type=positive_int, default=None, help="systolic: array columns (default 4)")
    gen.add_argument("--dataflow", choices=["ws", "os"], default=None, help="systolic: dataflow (default ws)")
    gen.add_argument("--mode", choices=["double", "single"], default=None,
                     help="requant: TFLite's double rounding (default) or single rounding")
    gen.add_argument("--lanes", type=positive_int, default=None,
                     help="requant, nm_compressor: values (groups) per cycle (default 1)")
    gen.add_argument("--nm", default=None, metavar="N:M",
                     help="nm_compressor, sparse_systolic: the sparsity pattern (default 2:4)")
    gen.add_argument("--name", default=None, help="Verilog module and file name (default: from the unit)")
    gen.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build/)")
    gen.set_defaults(handler=_rtl_generate)
    rtl.set_defaults(handler=lambda args: rtl.print_help() or 2)
    return parser


# -- handlers ------------------------------------------------------------------------------------

def _info(args: argparse.Namespace) -> int:
    if args.arch is None:
        for name in config.preset_names():
            print(f"{name:12s} {config.load(name).description}")
        return 0
    arch = config.load(args.arch)
    if args.toml:
        print(config.dumps(arch), end="")
    elif args.json:
        print(json.dumps(config.to_dict(arch), indent=2))
    else:
        print(_describe(arch))
    return 0


def _describe(arch: Accelerator) -> str:
    a = arch.array
    lines = [
        f"{arch.name}: {arch.description}" if arch.description else arch.name,
        f"  clock          {arch.clock_hz / 1e6:g} MHz",
        f"  array          {a.rows} x {a.cols} PEs, dataflows {', '.join(d.value for d in a.dataflows)}",
        f"  formats        inputs {a.input_format}, weights {a.weight_format}, accumulators "
        f"{a.accumulator_format} ({a.accumulator_format.overflow.value})",
        f"  sparsity       {', '.join(map(str, a.sparsity)) or 'dense only'}",
        f"  peak           {arch.peak_macs_per_s / 1e9:g} GMAC/s ({arch.peak_macs_per_cycle} MAC/cycle)",
        f"  vector unit    {arch.vector.lanes} lanes, {arch.vector.latency_cycles} cycles latency",
    ]
    for name in ("scratchpad", "accumulator"):
        mem = getattr(arch, name)
        lines.append(f"  {name:14s} {_bytes(mem.size_bytes)}, {mem.banks} banks x {mem.ports} ports x "
                     f"{mem.word_bytes} B words")
    lines += [
        f"  dma            {arch.dma.channels} channel(s) x {arch.dma.bandwidth_bytes_per_cycle:g} B/cycle, "
        f"{arch.dma.latency_cycles} cycles setup, {arch.dma.burst_bytes} B bursts",
        f"  dram           {arch.dram.bandwidth_bytes_per_cycle:g} B/cycle "
        f"({arch.dram.bandwidth_bytes_per_cycle * arch.clock_hz / 1e9:g} GB/s), "
        f"{arch.dram.latency_cycles} cycles latency, {arch.dram.energy_pj_per_byte:g} pJ/B",
    ]
    from accel.area import area_mm2

    area = area_mm2(arch)
    select = f" + N:M select {area.sparse_select_mm2:.3g}" if area.sparse_select_mm2 else ""
    lines.append(f"  area (45 nm)   {area.total_mm2:.3g} mm2: PE array {area.pe_array_mm2:.3g}{select}, scratchpad "
                 f"{area.scratchpad_mm2:.3g}, accumulator {area.accumulator_mm2:.3g}, vector {area.vector_mm2:.3g}, "
                 f"DMA and control {area.dma_mm2 + area.control_mm2:.3g}")
    return "\n".join(lines)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}"
        n /= 1024
    raise AssertionError


def _workload(args: argparse.Namespace) -> int:
    import workloads

    graph = workloads.load(args.workload, batch=args.batch)
    rows = workloads.layer_table(graph)
    if args.json:
        print(json.dumps({"name": graph.name, "layers": rows, "total_macs": graph.total_macs,
                          "weight_bytes": graph.weight_bytes}, indent=2))
        return 0
    columns = ["name", "op", "m", "k", "n", "batch", "macs", "weight_bytes", "output_bytes", "vector_ops"]
    columns = [c for c in columns if any(c in r for r in rows)]
    print(_table(rows, columns))
    print(f"\n{graph.name}: {len(graph.layers)} layers, {graph.total_macs:,} MACs, "
          f"{graph.weight_bytes:,} weight bytes")
    return 0


def _run(args: argparse.Namespace) -> int:
    import mapper
    import sim
    import workloads

    if args.scalesim_config is not None:
        from accel.scalesim import load_scalesim_config

        arch = load_scalesim_config(args.scalesim_config)
        default_order, default_depthwise = LoopOrder.FOLD_OUTER, Depthwise.ARRAY
    else:
        arch = config.load(args.arch)
        default_order, default_depthwise = LoopOrder.AUTO, Depthwise.AUTO
    graph = workloads.load(args.workload, batch=args.batch)
    if args.nm:
        graph = workloads.sparsify(graph, args.nm)
    if args.allocator != "none":
        fixed = [flag for flag, value in (("--dataflow", args.dataflow), ("--loop-order", args.loop_order),
                                          ("--depthwise", args.depthwise), ("--scalesim-config", args.scalesim_config))
                 if value]
        if fixed:
            raise MappingError(f"--allocator {args.allocator} searches every layer's mapping; it cannot be combined "
                               f"with {', '.join(fixed)}")
    options = mapper.MapOptions(allocator=args.allocator, objective=args.objective, dataflow=args.dataflow,
                                loop_order=args.loop_order or default_order,
                                depthwise=args.depthwise or default_depthwise)
    plan = mapper.map_graph(graph, arch, options)
    result = sim.simulate(plan)
    summary = result.summary()
    if args.out is not None:
        from reports import write_run_report
        from reports.scalesim import write_compute_report

        written = write_run_report(result, args.out, power_window_cycles=args.power_window)
        if plan.allocation is not None and plan.problem is not None:
            from reports.memory_map import plot_memory_map

            figure = plot_memory_map(plan.problem, plan.allocation, title=f"{graph.name} on {arch.name}")
            written["memory_map"] = args.out / "memory_map.png"
            figure.savefig(written["memory_map"], dpi=120)
        if args.scalesim_config is not None:
            written["compute_report"] = write_compute_report(result, args.out / "COMPUTE_REPORT.csv")
        summary["files"] = {k: str(v) for k, v in written.items()}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    layers = result.layers()
    print(_table(layers.to_dict("records"),
                 ["layer", "op", "dataflow", "macs", "cycles", "utilization", "dram_read_bytes", "dram_write_bytes"]))
    print()
    for key, value in summary.items():
        if key == "files":
            for name, path in value.items():
                print(f"  wrote {name:14s} {path}")
        else:
            print(f"  {key:18s} {value:,.6g}" if isinstance(value, float) else f"  {key:18s} {value:,}"
                  if isinstance(value, int) else f"  {key:18s} {value}")
    return 0


def _map(args: argparse.Namespace) -> int:
    import mapper
    import workloads

    arch = config.load(args.arch)
    graph = workloads.load(args.workload)
    capacity = config.parse_size(args.scratchpad) if args.scratchpad else None
    options = mapper.MapOptions(allocator=args.allocator, objective=args.objective, scratchpad_bytes=capacity,
                                time_limit_s=args.time_limit, mip_gap=args.mip_gap)
    mapped = mapper.map_with_baselines(graph, arch, options)
    plan, problem, chosen, results = mapped.plan, mapped.problem, mapped.allocation, mapped.baselines
    document = mapped.to_dict()
    if args.out is not None:
        _write_json(args.out, document)
    if args.plot is not None:
        from reports.memory_map import plot_memory_map

        figure = plot_memory_map(problem, chosen, title=f"{graph.name} on {arch.name}: {args.allocator}")
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.plot, dpi=120)
    if args.json:
        print(json.dumps({k: v for k, v in document.items() if k not in ("layers", "tensors")}, indent=2))
        return 0
    rows = [{**row, "tile": "" if row["tile"] is None else "x".join(str(row["tile"][d]) for d in "bmkn"),
             "estimate": f"{row['estimate_cycles']:,.0f}",
             "roofline": "" if row["roofline_fraction"] is None else f"{row['roofline_fraction']:.0%}"}
            for row in document["layers"] if row["dataflow"] or row["loop_order"]]
    print(_table(rows, ["layer", "op", "dataflow", "loop_order", "tile", "tiles", "macs", "estimate", "roofline"]))
    print(f"\n{plan.dram_bytes:,} B of DRAM traffic ({plan.dram_read_bytes:,} read, {plan.dram_write_bytes:,} "
          f"written) on a {plan.arch.scratchpad.size_bytes:,} B scratchpad; tensors alone need "
          f"{problem.compulsory_dram_bytes:,} B (compulsory). Estimated {document['estimate_cycles']:,.0f} cycles, "
          f"roofline bound {document['roofline_cycles']:,.0f}.")
    if document["tensors_from"] != args.allocator:
        print(f"The program runs {document['tensors_from']}'s allocation: {document['reason']}.")
    print(_table([{"allocator": m if a.method == m else f"{m} ({a.method}'s)", "tensor_dram_bytes": a.dram_bytes,
                   "non_compulsory_bytes": a.non_compulsory_bytes,
                   "solve_time_s": a.solve_time_s, "gap": a.gap} for m, a in results.items()],
                 ["allocator", "tensor_dram_bytes", "non_compulsory_bytes", "solve_time_s", "gap"]))
    return 0


def _write_json(path: Path, document: dict) -> None:
    """Write JSON through a temporary file, so an interrupted run leaves nothing half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2))
    tmp.replace(path)


def _rtl_generate(args: argparse.Namespace) -> int:
    from rtl.units import generate_unit

    options: dict[str, object] = {}
    if args.arch:
        array = config.load(args.arch).array
        formats = {"pe": {"a_format": array.input_format, "b_format": array.weight_format,
                          "acc_format": array.accumulator_format},
                   "systolic": {"a_format": array.input_format, "b_format": array.weight_format,
                                "acc_format": array.accumulator_format, "rows": array.rows, "cols": array.cols},
                   "requant": {"out_format": array.input_format},
                   "nm_compressor": {"value_format": array.weight_format}}
        formats["sparse_systolic"] = formats["systolic"]
        options.update(formats[args.unit])
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


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(value: object) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, float):
            return f"{value:.3f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(_is_numberish(row[i]) for row in cells) for i in range(len(columns))]
    def fmt(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))
    return "\n".join([fmt(columns), fmt(["-" * w for w in widths]), *(fmt(row) for row in cells)])


def _is_numberish(text: str) -> bool:
    return text == "" or text.replace(",", "").replace(".", "").replace("-", "").isdigit()


if __name__ == "__main__":
    sys.exit(main())
