"""DNN workloads: the graph IR, a built-in model zoo, and importers (ONNX, SCALE-Sim topologies).

:func:`load` is the one entry point the command line and sweeps use: a zoo name, a ``.onnx`` file or
a SCALE-Sim ``.csv`` topology in, a :class:`Graph` out. :func:`layer_table` flattens a graph into one
plain row per layer for printing and JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accel.errors import WorkloadError
from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.graph import DTYPE_BYTES, GemmShape, Graph, Layer, OpKind, QuantParams, Tensor, TensorKind
from workloads.scalesim_import import load_scalesim_topology
from workloads.sparsity import sparsify

__all__ = [
    "DTYPE_BYTES", "GemmShape", "Graph", "Layer", "OpKind", "QuantParams", "Tensor", "TensorKind",
    "GraphBuilder", "load", "layer_table", "load_onnx", "load_scalesim_topology", "sparsify", "zoo",
]


def __getattr__(name: str) -> Any:
    # The ONNX importer pulls in onnx (and ml_dtypes: about a second); it is imported on first use.
    if name == "load_onnx":
        from workloads.onnx_import import load_onnx

        return load_onnx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(spec: str | Path, *, batch: int | None = None, dims: Mapping[str, int] | None = None) -> Graph:
    """A workload from a zoo name, an ``.onnx`` path or a SCALE-Sim ``.csv`` topology path.

    ``batch`` defaults to 1 for zoo models and to the file's own batch for ONNX; a SCALE-Sim topology
    has no batch dimension, so ``batch`` other than ``None`` or 1 is an error for it. ``dims`` gives
    an ONNX model's symbolic input dimensions their sizes (``{"seq": 128}``); only ONNX has them.
    """
    text = str(spec)
    suffix = Path(text).suffix.lower()
    if dims and suffix != ".onnx":
        raise WorkloadError(f"Workload {text!r}: symbolic dimensions ({', '.join(dims)}) are an ONNX model's; "
                            "a zoo model or SCALE-Sim topology has none")
    if text in zoo.names():
        return zoo.build(text, batch=1 if batch is None else batch)
    if suffix == ".onnx":
        from workloads.onnx_import import load_onnx

        return load_onnx(text, batch=batch, dims=dims)
    if suffix == ".csv":
        if batch not in (None, 1):
            raise WorkloadError(f"SCALE-Sim topology {text!r}: has no batch dimension; batch must be 1,"
                                f" not {batch!r}")
        return load_scalesim_topology(text)
    raise WorkloadError(
        f"Workload {text!r} is neither a zoo model nor a .onnx or .csv file; zoo models are:"
        f" {', '.join(zoo.names())}"
    )


def layer_table(graph: Graph) -> list[dict[str, Any]]:
    """One JSON-ready row per layer, in execution order.

    Keys: ``name``, ``op`` (the :class:`OpKind` value), ``source_op``, ``m``, ``k``, ``n``, ``batch``
    (``""`` for layers without a GEMM), ``macs``, ``weight_bytes`` (constant inputs),
    ``input_bytes`` (activation and graph-input operands), ``output_bytes`` and ``vector_ops``.
    A constant read by two layers (GPT-2's tied ``wte``) counts in both rows; ``Graph.weight_bytes``
    counts it once.
    """
    rows = []
    for layer in graph.layers:
        inputs = [graph.tensors[t] for t in layer.inputs]
        gemm = layer.gemm
        rows.append({
            "name": layer.name,
            "op": layer.op.value,
            "source_op": layer.source_op,
            "m": gemm.m if gemm else "",
            "k": gemm.k if gemm else "",
            "n": gemm.n if gemm else "",
            "batch": gemm.batch if gemm else "",
            "macs": layer.macs,
            "weight_bytes": sum(t.size_bytes for t in inputs if t.is_constant),
            "input_bytes": sum(t.size_bytes for t in inputs if not t.is_constant),
            "output_bytes": sum(graph.tensors[t].size_bytes for t in layer.outputs),
            "vector_ops": layer.vector_ops,
        })
    return rows
