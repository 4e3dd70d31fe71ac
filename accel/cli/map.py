"""``accel map``: map a workload and print each layer's mapping, the plan's DRAM traffic and every
allocator's tensor traffic; ``--out`` writes the plan as JSON, ``--plot`` the memory map."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from accel import config
from accel.cli._output import file_for_output
from accel.cli._output import table as _table
from accel.cli._types import dimension

__all__ = ["PLOT_SUFFIXES", "register"]

_log = logging.getLogger("accel.cli.map")


def register(subparsers: Any) -> None:
    """Add the ``map`` command to ``subparsers``."""
    import mapper
    from accel.cli import epilog
    from mapper.options import Schedule

    epilog = epilog()
    mapping = subparsers.add_parser(
        "map", help="map a workload: per-layer tiling and scratchpad allocation",
        description="Map a workload onto an accelerator: search each layer's dataflow, loop order and tile "
                    "for the objective, place tensors in the scratchpad with an allocator (ilp: HiGHS; "
                    "greedy: greedy-by-size with LRU eviction; firstfit; none: every tensor through DRAM), "
                    "emit and check the command program, and print each layer's mapping with its estimate "
                    "and roofline bound, the plan's DRAM traffic, and every allocator's tensor traffic.",
        epilog=epilog)
    mapping.add_argument("--arch", default="gemmini", help="preset name or TOML file (default: gemmini)")
    mapping.add_argument("--workload", default="resnet18", help="zoo name, FILE.onnx or FILE.csv")
    mapping.add_argument("--dim", type=dimension, action="append", default=[], metavar="NAME=SIZE",
                         help="size of an ONNX model's symbolic input dimension (repeatable, e.g. --dim seq=128)")
    mapping.add_argument("--scratchpad", default=None, metavar="SIZE",
                         help="scratchpad bytes for resident tensors, e.g. 512KiB (default: the design's)")
    mapping.add_argument("--allocator", choices=mapper.ALLOCATORS, default="ilp",
                         help="how tensors stay in the scratchpad between layers (default: ilp)")
    mapping.add_argument("--objective", choices=mapper.OBJECTIVES, default="latency",
                         help="what each layer's mapping search minimises (default: latency)")
    mapping.add_argument("--schedule", choices=[v.value for v in Schedule], default="candidates",
                         help="the operator order: candidates (a few orders, each allocated, the best kept) or joint "
                              "(the order a decision of the joint order-and-allocation ILP, within --time-limit); "
                              "default: candidates")
    mapping.add_argument("--time-limit", type=float, default=10.0, metavar="S", help="ILP time limit (default 10)")
    mapping.add_argument("--mip-gap", type=float, default=0.01, help="ILP relative gap (default 0.01)")
    mapping.add_argument("--out", type=Path, default=None, help="write the plan as JSON here")
    mapping.add_argument("--plot", type=Path, default=None, help="write the memory-map plot (.png, .svg or .pdf) here")
    mapping.add_argument("--json", action="store_true", help="print the plan summary as JSON instead")
    mapping.set_defaults(handler=_command)


#: The memory-map formats ``--plot`` writes (matplotlib's vector and PNG back ends, no extra packages).
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _command(args: argparse.Namespace) -> int:
    """Check where the plan and the plot go before any work, then map."""
    if args.out is not None:
        file_for_output(args.out, option="--out", suffixes=(".json",))
    if args.plot is not None:
        file_for_output(args.plot, option="--plot", suffixes=PLOT_SUFFIXES)
    _log.info("map: %s on %s with allocator %s", args.workload, args.arch, args.allocator)
    start = time.perf_counter()
    code = _map(args)
    _log.info("map: done in %.1f s", time.perf_counter() - start)
    return code


def _map(args: argparse.Namespace) -> int:
    import mapper
    import workloads

    arch = config.load(args.arch)
    graph = workloads.load(args.workload, dims=dict(args.dim))
    capacity = config.parse_size(args.scratchpad) if args.scratchpad else None
    options = mapper.MapOptions(allocator=args.allocator, objective=args.objective, scratchpad_bytes=capacity,
                                time_limit_s=args.time_limit, mip_gap=args.mip_gap, schedule=args.schedule)
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
    try:
        tmp.write_text(json.dumps(document, indent=2))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
