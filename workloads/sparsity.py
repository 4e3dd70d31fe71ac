"""Mark layers of a graph N:M structured-sparse (their weights, along the reduction dimension).

``sparsify(graph, Sparsity(2, 4))`` returns a new graph in which every weight-bearing layer (a conv
or GEMM whose second operand is a constant) carries the pattern; ``layers=`` restricts it to named
layers. Matmuls of two activations are never marked: their operands are not known ahead of time.
The pruning itself (which values survive) is ``sim.numerics``' business; the graph records only
the pattern, which the mapper, the simulator and the cost models read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from accel.errors import WorkloadError
from accel.hardware import Sparsity
from workloads.graph import Graph, Layer, OpKind

__all__ = ["sparsify", "is_weight_bearing"]


def is_weight_bearing(graph: Graph, layer: Layer) -> bool:
    """A conv or GEMM layer whose weights are a constant of the graph."""
    return (layer.op in (OpKind.CONV, OpKind.GEMM) and len(layer.inputs) > 1
            and graph.tensors[layer.inputs[1]].is_constant)


def sparsify(graph: Graph, pattern: Sparsity | str, *, layers: Iterable[str] | None = None) -> Graph:
    """``graph`` with ``pattern`` on every weight-bearing layer (or on the named ones)."""
    if not isinstance(pattern, Sparsity | str):
        raise WorkloadError(f"N:M pattern must be a Sparsity or a string such as '2:4', not {pattern!r}")
    nm = Sparsity.parse(pattern) if isinstance(pattern, str) else pattern
    wanted = set(layers) if layers is not None else None
    if wanted is not None:
        names = {layer.name for layer in graph.layers}
        missing = sorted(wanted - names)
        if missing:
            raise WorkloadError(f"Graph {graph.name!r} has no layer {', '.join(map(repr, missing))} to make N:M")
        unfit = sorted(n for n in wanted if not is_weight_bearing(graph, graph.layer(n)))
        if unfit:
            raise WorkloadError(f"Layer {unfit[0]!r} has no constant weights to make {nm} sparse")
    marked = tuple(
        replace(layer, sparsity=nm)
        if (wanted is None or layer.name in wanted) and is_weight_bearing(graph, layer) else layer
        for layer in graph.layers
    )
    return Graph(f"{graph.name}@{nm}", graph.tensors, marked)
