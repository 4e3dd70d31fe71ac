"""``accel run``: map a workload onto a design, simulate it, print the summary and write the reports.

With ``--out DIR`` the reports go into DIR, which must be empty (or hold only an earlier run's
files, which ``--force`` replaces), so that two runs never mix in one folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from accel import config
from accel.cli._output import OutputError, folder_for_output
from accel.cli._output import table as _table
from accel.cli._types import dimension, positive_int
from accel.errors import MappingError

__all__ = ["RUN_FILES", "register"]

_log = logging.getLogger("accel.cli.run")


def register(subparsers: Any) -> None:
    """Add the ``run`` command to ``subparsers``."""
    import mapper
    from accel.cli import epilog
    from accel.formats import Requantization
    from mapper.options import Depthwise, LoopOrder, Schedule

    epilog = epilog()
    run = subparsers.add_parser("run", help="map a workload onto a design and simulate it",
                         description="Map a workload onto an accelerator, simulate it with the event "
                                     "simulator, print a summary and write CSV reports and a plot.",
                         epilog=epilog)
    hardware = run.add_mutually_exclusive_group()
    hardware.add_argument("--arch", default=None, help="preset name or TOML file (default: gemmini)")
    work = run.add_mutually_exclusive_group()
    work.add_argument("--workload", default=None, help="zoo name, FILE.onnx or FILE.csv (default: resnet18)")
    work.add_argument("--topology", default=None, help="a SCALE-Sim topology CSV (same as --workload FILE.csv)")
    hardware.add_argument("--scalesim-config", type=Path, metavar="FILE.cfg",
                     help="take the hardware from a SCALE-Sim v3 config instead of --arch, run layers in "
                          "SCALE-Sim's fold-outer order, and also write COMPUTE_REPORT.csv in its layout")
    run.add_argument("--dataflow", choices=["ws", "os", "is"], help="dataflow (default: the array's first)")
    run.add_argument("--loop-order", choices=[o.value for o in LoopOrder], default=None,
                     help="tile-outer, fold-outer (SCALE-Sim's) or auto: per layer the faster estimate "
                          "(default: auto; fold-outer with --scalesim-config)")
    run.add_argument("--depthwise", choices=[d.value for d in Depthwise], default=None,
                     help="where depthwise convolutions run: array, vector unit, or auto: the faster "
                          "estimate (default: auto; array with --scalesim-config)")
    run.add_argument("--no-keep", dest="keep_operands", action="store_false",
                     help="no tile keeps an operand on chip across tiles (by default a split reduction's "
                          "weight column or a row of input tiles stays where that moves no more DRAM bytes)")
    run.add_argument("--nm", default=None, metavar="N:M",
                     help="mark every weight-bearing layer N:M structured-sparse (e.g. 2:4); the array runs it "
                          "natively when the design lists that pattern, dense otherwise")
    run.add_argument("--batch", type=positive_int, default=None, help="batch size (default: 1)")
    run.add_argument("--dim", type=dimension, action="append", default=[], metavar="NAME=SIZE",
                     help="size of an ONNX model's symbolic input dimension (repeatable, e.g. --dim seq=128)")
    run.add_argument("--allocator", choices=mapper.ALLOCATORS, default="none",
                     help="keep tensors in the scratchpad between layers (default: none, SCALE-Sim style; "
                          "ilp: the HiGHS allocation; the report then has memory_map.png)")
    run.add_argument("--schedule", choices=[v.value for v in Schedule], default=None,
                     help="with --allocator: the operator order, candidates (a few orders, each allocated, the best "
                          "kept; the default) or joint (a decision of the joint order-and-allocation ILP)")
    run.add_argument("--objective", choices=mapper.OBJECTIVES, default="latency",
                     help="what each layer's mapping search minimises (default: latency)")
    run.add_argument("--out", type=Path, default=None,
                     help="write CSVs (summary, layers, units, energy, power), plots (layer_cycles.png, "
                          "power.png) and trace.json (Perfetto) here: a new or empty folder (see --force)")
    run.add_argument("--force", action="store_true",
                     help="write into a --out folder that is not empty, replacing the files an earlier run wrote "
                          "there (other files are left alone)")
    run.add_argument("--power-window", type=positive_int, default=None, metavar="CYCLES",
                     help="window of the power-over-time series (default: the run in about 200 windows)")
    run.add_argument("--fine", action="store_true",
                     help="simulate every command one by one (default: steady runs of identical blocks are "
                          "recorded at once, which gives the same results, proven per run; see sim.engine)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    numerics = run.add_argument_group("numerics", "run the mapped program on data beside the timing run")
    numerics.add_argument("--check-numerics", action="store_true",
                          help="execute every command of the mapped program on data (sim.execute) and compare each "
                               "output with onnxruntime running the same quantized ONNX model (--workload FILE.onnx, "
                               "QDQ or QOperator); prints the largest difference per output, zero when the design "
                               "computes what the model does; exit status 1 when an output differs")
    numerics.add_argument("--requant", choices=[r.value for r in Requantization], default=None,
                          help="requantize as this mode instead of the design's (float32-half-even is "
                               "onnxruntime's: with it --check-numerics expects zero differences)")
    numerics.add_argument("--inputs", type=Path, default=None, metavar="FILE.npz",
                          help="graph inputs for --check-numerics, one array per input name (default: seeded "
                               "N(0, 1) floats of the inputs' shapes, see --seed)")
    numerics.add_argument("--seed", type=int, default=None,
                          help="seed of the default --check-numerics inputs (default 0)")
    run.set_defaults(handler=_command)


#: Every file ``accel run --out`` may write: an earlier run's, replaced as a whole with ``--force``.
RUN_FILES = ("summary.csv", "layers.csv", "units.csv", "energy.csv", "power.csv", "layer_cycles.png", "power.png",
             "trace.json", "memory_map.png", "COMPUTE_REPORT.csv")


def _command(args: argparse.Namespace) -> int:
    """Check the arguments and the output folder before any work, then run."""
    args.arch = args.arch or "gemmini"
    args.workload = args.topology or args.workload or "resnet18"
    if args.force and args.out is None:
        raise OutputError("--force concerns --out, which is not given")
    if (args.inputs is not None or args.seed is not None) and not args.check_numerics:
        raise OutputError(f"{'--inputs' if args.inputs is not None else '--seed'} concerns --check-numerics, "
                          "which is not given")
    if args.check_numerics and Path(args.workload).suffix.lower() != ".onnx":
        raise OutputError(f"--check-numerics compares with onnxruntime on a quantized ONNX model: give "
                          f"--workload FILE.onnx, not {args.workload!r}")
    if args.out is not None:
        _prepare_out(args.out, force=args.force)
    _log.info("run: %s on %s", args.workload, args.scalesim_config or args.arch)
    start = time.perf_counter()
    code = _run(args)
    _log.info("run: done in %.1f s", time.perf_counter() - start)
    return code


def _prepare_out(out: Path, *, force: bool) -> None:
    """``out`` as an empty folder for this run: an earlier run's files are refused, or removed with ``force``."""
    folder_for_output(out)
    present = sorted(p.name for p in out.iterdir()) if out.exists() else []
    if not present:
        return
    if not force:
        shown = ", ".join(present[:4]) + (f" and {len(present) - 4} more" if len(present) > 4 else "")
        raise OutputError(f"--out {out}: the folder is not empty ({shown}); a run writes into an empty folder "
                          "(or give --force to replace an earlier run's files)")
    for name in present:
        if name in RUN_FILES or name.endswith(".tmp"):
            path = out / name
            if path.is_file() or path.is_symlink():
                _log.info("run: removing %s of an earlier run", path)
                path.unlink()


def _run(args: argparse.Namespace) -> int:
    import mapper
    import sim
    import workloads
    from mapper.options import Depthwise, LoopOrder

    if args.scalesim_config is not None:
        from accel.scalesim import load_scalesim_config

        arch = load_scalesim_config(args.scalesim_config)
        default_order, default_depthwise = LoopOrder.FOLD_OUTER, Depthwise.ARRAY
    else:
        arch = config.load(args.arch)
        default_order, default_depthwise = LoopOrder.AUTO, Depthwise.AUTO
    if args.requant is not None:
        from accel.formats import Requantization

        arch = dataclasses.replace(arch, array=dataclasses.replace(arch.array, requant=Requantization(args.requant)))
    graph = workloads.load(args.workload, batch=args.batch, dims=dict(args.dim))
    if args.nm:
        graph = workloads.sparsify(graph, args.nm)
    if args.allocator != "none":
        fixed = [flag for flag, value in (("--dataflow", args.dataflow), ("--loop-order", args.loop_order),
                                          ("--depthwise", args.depthwise), ("--scalesim-config", args.scalesim_config))
                 if value]
        if fixed:
            raise MappingError(f"--allocator {args.allocator} searches every layer's mapping; it cannot be combined "
                               f"with {', '.join(fixed)}")
    if args.schedule is not None and args.allocator == "none":
        raise MappingError("--schedule orders the layers for a scratchpad allocator; give --allocator "
                           "(greedy, firstfit or ilp) with it")
    options = mapper.MapOptions(allocator=args.allocator, objective=args.objective, dataflow=args.dataflow,
                                schedule=args.schedule or "candidates",
                                loop_order=args.loop_order or default_order,
                                depthwise=args.depthwise or default_depthwise, keep_operands=args.keep_operands)
    plan = mapper.map_graph(graph, arch, options)
    _log.info("run: %s mapped onto %s: %d layers, %d commands", graph.name, arch.name, len(plan.layers),
              len(plan.commands))
    result = sim.simulate(plan, fine=args.fine)
    summary = result.summary()
    _log.info("run: simulated %s cycles", f"{summary['total_cycles']:,}")
    # before the report: a check that fails (unreadable --inputs, a model onnxruntime cannot run) leaves no files
    check = _check_numerics(args, graph, plan) if args.check_numerics else None
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
    if check is not None:
        summary["numerics"] = check.to_dict()
    status = 1 if check is not None and not check.equal else 0
    if args.json:
        print(json.dumps(summary, indent=2))
        return status
    layers = result.layers()
    print(_table(layers.to_dict("records"),
                 ["layer", "op", "dataflow", "macs", "cycles", "utilization", "dram_read_bytes", "dram_write_bytes"]))
    print()
    for key, value in summary.items():
        if key == "files":
            for name, path in value.items():
                print(f"  wrote {name:14s} {path}")
        elif key != "numerics":
            print(f"  {key:18s} {value:,.6g}" if isinstance(value, float) else f"  {key:18s} {value:,}"
                  if isinstance(value, int) else f"  {key:18s} {value}")
    if check is not None:
        print()
        print(f"numerics against onnxruntime (the design requantizes in {check.requant} mode; onnxruntime in "
              "float32-half-even):")
        print(_table([{"output": o.name, "shape": "x".join(map(str, o.shape)), "elements": o.elements,
                       "mismatches": o.mismatches, "max_abs_diff": o.max_abs_diff} for o in check.outputs],
                     ["output", "shape", "elements", "mismatches", "max_abs_diff"]))
        if check.float_layers:
            print(f"  (compared where the integer part ends: onnxruntime computes {', '.join(check.float_layers)} "
                  "in float, which this design does not run)")
        print(f"  {'numerics':18s} {'equal' if check.equal else 'DIFFERENT'}")
    return status


def _check_numerics(args: argparse.Namespace, graph: Any, plan: Any) -> Any:
    """The functional run of ``plan`` against onnxruntime on ``args.workload`` (see :mod:`sim.oracle`)."""
    from sim.oracle import check_numerics

    inputs = _read_inputs(args.inputs, graph) if args.inputs is not None else None
    start = time.perf_counter()
    check = check_numerics(args.workload, graph, plan, inputs=inputs, seed=args.seed or 0)
    _log.info("run: functional execution and onnxruntime in %.1f s: %s", time.perf_counter() - start,
              "equal" if check.equal else "different")
    return check


def _read_inputs(path: Path, graph: Any) -> dict:
    """The arrays of ``path`` (an ``.npz`` file), one per input of ``graph``, with its shape."""
    import numpy as np

    from accel.errors import WorkloadError

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise WorkloadError(f"--inputs {path}: not a readable .npz file of arrays ({exc})") from exc
    for t in graph.inputs:
        if t.name not in arrays:
            raise WorkloadError(f"--inputs {path}: no array for graph input {t.name!r} (the file has "
                                f"{', '.join(sorted(arrays)) or 'none'})")
        if tuple(arrays[t.name].shape) != tuple(t.shape):
            raise WorkloadError(f"--inputs {path}: array {t.name!r} has shape {tuple(arrays[t.name].shape)}; "
                                f"the graph input has shape {tuple(t.shape)}")
    return {t.name: arrays[t.name] for t in graph.inputs}
