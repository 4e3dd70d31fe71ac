"""Graph-level fusion: activations that the accumulator's read path applies join the array layer before them.

A design whose accumulator-to-scratchpad path applies element functions (``[activation] functions``,
:class:`accel.hardware.ActivationPath`: TPU v1's Activate unit, Gemmini's ``mvout`` scaling and
ReLU) runs ``conv -> relu`` as one layer: the results are activated while they leave the
accumulator, so the activation layer, its vector pass and its DRAM round trip disappear.

:func:`fuse_activations` rewrites the graph: an ``activation`` layer is folded into its input's
producer when

* its function is one the design lists, and it has no other input (no extra parameters);
* the producer is an array layer (conv, GEMM, matmul) whose only output is that tensor;
* that tensor has no other consumer and is not a graph output.

The array layer then writes the activation's output tensor and carries ``attrs["fused"]``, the
functions applied in order (chains such as ``relu -> clip`` fuse one after the other). The mapper
marks the final stores and on-chip moves of a fused layer with those functions
(:attr:`accel.commands.Store.activation`), and :func:`accel.energy.command_energy_pj` charges one
vector operation per value and function on the store path. Nothing else changes: the store path's
cycles are those of the store or move (the function runs at its rate, one accumulator row per cycle).
"""

from __future__ import annotations

import dataclasses

from accel.hardware import Accelerator
from workloads.graph import Graph, Layer, OpKind

__all__ = ["fuse_activations", "fused_functions"]


def fused_functions(layer: Layer) -> tuple[str, ...]:
    """The functions fused into ``layer``'s output path (empty if none)."""
    return tuple(layer.attrs.get("fused", ()))


def fuse_activations(graph: Graph, arch: Accelerator) -> Graph:
    """``graph`` with every fusable activation folded into its array layer (the same graph when the
    design's store path applies no functions, or nothing is fusable)."""
    functions = set(arch.activation.functions)
    if not functions:
        return graph
    layers = list(graph.layers)
    index = {layer.name: i for i, layer in enumerate(layers)}
    dropped_tensors: set[str] = set()
    dropped_layers: set[str] = set()
    outputs = {t.name for t in graph.outputs}
    consumers = {name: list(t.consumers) for name, t in graph.tensors.items()}
    producer = {name: t.producer for name, t in graph.tensors.items()}
    for i, layer in enumerate(layers):
        if layer.op is not OpKind.ACTIVATION or layer.attrs.get("fn") not in functions or len(layer.inputs) != 1:
            continue
        x = layer.inputs[0]
        source = producer.get(x)
        if source is None or x in outputs or consumers[x] != [layer.name]:
            continue
        j = index[source]
        array_layer = layers[j]
        if not array_layer.op.uses_array or array_layer.outputs != (x,):
            continue
        layers[j] = dataclasses.replace(
            array_layer, outputs=layer.outputs,
            attrs={**array_layer.attrs, "fused": (*fused_functions(array_layer), layer.attrs["fn"])})
        for out in layer.outputs:
            producer[out] = source
        dropped_tensors.add(x)
        dropped_layers.add(layer.name)
        layers[i] = layer  # kept in place until the end, so the indices stay valid
    if not dropped_layers:
        return graph
    tensors = {name: t for name, t in graph.tensors.items() if name not in dropped_tensors}
    return Graph(graph.name, tensors, tuple(layer for layer in layers if layer.name not in dropped_layers))
