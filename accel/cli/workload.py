"""``accel workload``: print the layer table of a zoo model, an ONNX file or a SCALE-Sim topology."""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

from accel.cli._output import table as _table
from accel.cli._types import dimension, positive_int

__all__ = ["register"]

_log = logging.getLogger("accel.cli.workload")


def register(subparsers: Any) -> None:
    """Add the ``workload`` command to ``subparsers``."""
    from accel.cli import epilog

    work = subparsers.add_parser("workload", help="print a workload's layer table",
                          description="Print the layers of a DNN: a zoo model name, an ONNX file or a "
                                      "SCALE-Sim topology CSV, with MACs, weight and activation sizes.",
                          epilog=epilog())
    work.add_argument("workload", help="zoo model name, FILE.onnx or FILE.csv")
    work.add_argument("--batch", type=positive_int, default=None, help="batch size (default: the model's, 1)")
    work.add_argument("--dim", type=dimension, action="append", default=[], metavar="NAME=SIZE",
                      help="size of an ONNX model's symbolic input dimension (repeatable, e.g. --dim seq=128)")
    work.add_argument("--json", action="store_true", help="print JSON (exact integer total_macs) instead")
    work.set_defaults(handler=_workload)


def _workload(args: argparse.Namespace) -> int:
    import workloads

    start = time.perf_counter()
    graph = workloads.load(args.workload, batch=args.batch, dims=dict(args.dim))
    _log.info("workload: %s loaded in %.2f s (%d layers, %d tensors)", args.workload, time.perf_counter() - start,
              len(graph.layers), len(graph.tensors))
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
