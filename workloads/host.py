"""The host's share of a quantized graph: the float conversions at its boundary.

A quantized ONNX model takes float inputs and returns float outputs: ``QuantizeLinear`` right after a
graph input and ``DequantizeLinear`` right before a graph output convert between floats and the
integer codes the accelerator computes on. An accelerator's DMA moves codes, so those conversions
are the host's (as Gemmini's and VTA's drivers do them): :func:`split_host` cuts them off.

``split_host(graph)`` returns a :class:`HostSplit`: ``device``, the graph the accelerator runs (the
quantized codes of the inputs are its inputs, the codes the final dequantizations read its outputs),
``before`` and ``after``, the host's layers on either side. A graph without such layers is its own
device graph (``before`` and ``after`` empty).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from workloads.graph import Graph, Layer, TensorKind

__all__ = ["HostSplit", "split_host"]


@dataclass(frozen=True)
class HostSplit:
    device: Graph
    before: tuple[Layer, ...]  # QuantizeLinear of graph inputs: the host quantizes
    after: tuple[Layer, ...]  # DequantizeLinear of graph outputs: the host dequantizes


def split_host(graph: Graph) -> HostSplit:
    """``graph``'s device part and the host's conversions around it (see the module docstring)."""
    tensors = graph.tensors

    def is_input(name: str) -> bool:
        return tensors[name].kind in (TensorKind.INPUT, TensorKind.CONSTANT)

    before = tuple(layer for layer in graph.layers if layer.attrs.get("numerics") == "quantize"
                   and all(is_input(t) for t in layer.inputs) and any(tensors[t].kind is TensorKind.INPUT
                                                                      for t in layer.inputs))
    after = tuple(layer for layer in graph.layers if layer.attrs.get("numerics") == "dequantize"
                  and all(not tensors[t].consumers for t in layer.outputs))
    if not before and not after:
        return HostSplit(graph, (), ())
    cut = {layer.name for layer in (*before, *after)}
    layers = tuple(layer for layer in graph.layers if layer.name not in cut)
    used = {t for layer in layers for t in (*layer.inputs, *layer.outputs)}
    fed = {t for layer in before for t in layer.outputs}
    kept = {name: dataclasses.replace(t, kind=TensorKind.INPUT, producer=None) if name in fed else t
            for name, t in tensors.items() if name in used}
    if not layers:
        return HostSplit(graph, (), ())
    return HostSplit(Graph(graph.name, kept, layers), before, after)
