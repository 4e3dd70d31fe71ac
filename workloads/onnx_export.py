"""Export a :class:`~workloads.graph.Graph` as a float32 ONNX model with seeded random weights.

The zoo builds graphs in code, without weights; onnxruntime's quantizer and the functional tests need
real ONNX models. :func:`export_onnx` writes one node per layer, in the graph's order, with the
layer's own hyper-parameters (kernel, strides, padding, dilation, groups, axes, permutations,
reshape targets) and every constant filled from a seeded generator:

* conv and linear weights: He-normal, ``N(0, 2 / fan_in)``; biases ``N(0, 0.01^2)``; layer-norm
  gains ``1 + N(0, 0.1^2)`` and shifts ``N(0, 0.1^2)``; other constants ``N(0, 0.1^2)``;
* with ``fold_batchnorm`` (the default), a batch norm that is the only reader of a convolution is
  folded into it, as inference exporters do (the convolution gains a bias, the norm's output is
  the convolution's); otherwise it becomes ``BatchNormalization`` with random statistics;
* linear layers on a 2-D input become ``Gemm`` (``transB = 1`` for an ``(out, in)`` weight), on
  higher ranks ``MatMul`` against the weight stored as ``(in, out)`` plus ``Add`` of the bias;
* ``relu6`` is ``Clip(0, 6)``, ``gelu`` the opset-20 ``Gelu``.

Importing the result (:func:`workloads.load_onnx`) gives back the graph's shapes and MACs. Layers with
no ONNX counterpart (pass-through layers, such as GPT-2's embedding gather) raise
:class:`~accel.errors.WorkloadError` naming the layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from accel.errors import WorkloadError
from workloads.graph import Graph, Layer, OpKind

__all__ = ["export_onnx", "OPSET"]

#: The ONNX opset of exported models (20: ``Gelu`` is a standard op).
OPSET = 20

_UNARY = {
    "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "hardswish": "HardSwish",
    "hardsigmoid": "HardSigmoid", "leaky_relu": "LeakyRelu", "elu": "Elu", "selu": "Selu", "gelu": "Gelu",
    "erf": "Erf", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "reciprocal": "Reciprocal", "neg": "Neg",
    "abs": "Abs", "softplus": "Softplus", "mish": "Mish", "identity": "Identity",
}
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "max": "Max", "min": "Min",
           "sum": "Sum", "mean": "Mean", "pow": "Pow"}


def export_onnx(graph: Graph, *, seed: int = 0, fold_batchnorm: bool = True) -> onnx.ModelProto:
    """``graph`` as a float32 ONNX model (opset :data:`OPSET`) with weights drawn from ``seed``."""
    exporter = _Exporter(graph, np.random.default_rng(seed), fold_batchnorm)
    for layer in graph.layers:
        exporter.layer(layer)
    outputs = [helper.make_tensor_value_info(exporter.name_of(t.name), TensorProto.FLOAT, t.shape)
               for t in graph.outputs]
    inputs = [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, t.shape) for t in graph.inputs]
    onnx_graph = helper.make_graph(exporter.nodes, graph.name, inputs, outputs, exporter.initializers)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="accel.workloads.onnx_export")
    model.ir_version = 9  # what onnxruntime 1.17+ reads
    onnx.checker.check_model(model)
    return model


class _Exporter:
    def __init__(self, graph: Graph, rng: np.random.Generator, fold_batchnorm: bool) -> None:
        self.graph = graph
        self.rng = rng
        self.fold = fold_batchnorm
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.done: set[str] = set()  # constants already written
        self.alias: dict[str, str] = {}  # graph tensor -> ONNX name (a folded norm's output)
        self.folded: set[str] = set()  # norm layers folded into their convolution

    def name_of(self, tensor: str) -> str:
        return self.alias.get(tensor, tensor)

    # -- constants ------------------------------------------------------------------------------

    def const(self, name: str, value: np.ndarray) -> str:
        if name not in self.done:
            self.done.add(name)
            self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def normal(self, shape: Sequence[int], std: float, mean: float = 0.0) -> np.ndarray:
        return (mean + std * self.rng.standard_normal(tuple(shape))).astype(np.float32)

    def weight(self, name: str, fan_in: int) -> str:
        return self.const(name, self.normal(self.graph.tensors[name].shape, float(np.sqrt(2.0 / max(fan_in, 1)))))

    def small(self, name: str, std: float = 0.1, mean: float = 0.0) -> str:
        return self.const(name, self.normal(self.graph.tensors[name].shape, std, mean))

    def node(self, op: str, inputs: Sequence[str], outputs: Sequence[str], layer: Layer, **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op, [self.name_of(t) if t else "" for t in inputs], list(outputs),
                                           name=layer.name, **attrs))

    # -- layers -------------------------------------------------------------------------------

    def layer(self, layer: Layer) -> None:
        if layer.name in self.folded:
            return
        handler = {
            OpKind.CONV: self.conv, OpKind.GEMM: self.linear, OpKind.MATMUL: self.matmul,
            OpKind.POOL: self.pool, OpKind.ELEMENTWISE: self.elementwise, OpKind.ACTIVATION: self.activation,
            OpKind.SOFTMAX: self.softmax, OpKind.NORM: self.norm, OpKind.CONCAT: self.concat,
            OpKind.RESHAPE: self.reshape,
        }.get(layer.op)
        if handler is None:
            raise WorkloadError(f"Layer {layer.name!r}: a {layer.op.value} layer ({layer.source_op or 'no source op'})"
                                " has no ONNX counterpart to export")
        handler(layer)

    def conv(self, layer: Layer) -> None:
        a = layer.attrs
        x, w = layer.inputs[0], layer.inputs[1]
        bias = layer.inputs[2] if len(layer.inputs) > 2 else ""
        wshape = self.graph.tensors[w].shape
        self.weight(w, int(np.prod(wshape[1:])))
        out = layer.outputs[0]
        norm = self._foldable_norm(layer)
        if norm is not None:
            bias = bias or f"{layer.name}.folded_bias"
            self.const(bias, self.normal((wshape[0],), 0.01))
            self.folded.add(norm.name)
            self.alias[norm.outputs[0]] = out
        elif bias:
            self.small(bias, 0.01)
        pt, pl, pb, pr = a.get("padding", (0, 0, 0, 0))
        self.node("Conv", [x, w, bias] if bias else [x, w], [out], layer,
                  kernel_shape=list(a["kernel"]), strides=list(a["stride"]), pads=[pt, pl, pb, pr],
                  dilations=list(a.get("dilation", (1, 1))), group=int(a["groups"]))

    def _foldable_norm(self, layer: Layer) -> Layer | None:
        if not self.fold:
            return None
        consumers = self.graph.tensors[layer.outputs[0]].consumers
        if len(consumers) != 1:
            return None
        norm = self.graph.layer(consumers[0])
        if norm.op is OpKind.NORM and norm.attrs.get("kind") == "batch":
            return norm
        return None

    def linear(self, layer: Layer) -> None:
        x, w = layer.inputs[0], layer.inputs[1]
        bias = layer.inputs[2] if len(layer.inputs) > 2 else ""
        k = self.graph.tensors[x].shape[-1]
        n = layer.gemm.n  # type: ignore[union-attr]
        wshape = self.graph.tensors[w].shape
        out_in = tuple(wshape) == (n, k)
        gemm = len(self.graph.tensors[x].shape) == 2
        value = self.normal(wshape, float(np.sqrt(2.0 / max(k, 1))))
        # Gemm reads an (out, in) weight with transB; MatMul needs (in, out): stored transposed.
        self.const(w, value if gemm or not out_in else value.T.copy())
        if bias:
            self.small(bias, 0.01)
        out = layer.outputs[0]
        if gemm:
            self.node("Gemm", [x, w, bias] if bias else [x, w], [out], layer, transB=1 if out_in else 0)
            return
        if not bias:
            self.node("MatMul", [x, w], [out], layer)
            return
        self.node("MatMul", [x, w], [f"{out}.mm"], layer)
        self.nodes.append(helper.make_node("Add", [f"{out}.mm", bias], [out], name=f"{layer.name}.bias"))

    def matmul(self, layer: Layer) -> None:
        self.node("MatMul", layer.inputs[:2], layer.outputs, layer)

    def pool(self, layer: Layer) -> None:
        a = layer.attrs
        kind = a["kind"]
        if a.get("global"):
            self.node("GlobalMaxPool" if kind == "max" else "GlobalAveragePool", layer.inputs[:1], layer.outputs, layer)
            return
        pt, pl, pb, pr = a["padding"]
        extra: dict[str, Any] = {"count_include_pad": 1} if kind == "avg" else {}
        self.node("MaxPool" if kind == "max" else "AveragePool", layer.inputs[:1], layer.outputs, layer,
                  kernel_shape=list(a["kernel"]), strides=list(a["stride"]), pads=[pt, pl, pb, pr],
                  ceil_mode=int(a.get("ceil_mode", False)), **extra)

    def elementwise(self, layer: Layer) -> None:
        fn = layer.attrs.get("fn")
        if fn not in _BINARY:
            raise WorkloadError(f"Layer {layer.name!r}: element-wise {fn!r} has no ONNX counterpart to export")
        for t in layer.inputs:
            if self.graph.tensors[t].is_constant:
                self.small(t)
        self.node(_BINARY[fn], layer.inputs, layer.outputs, layer)

    def activation(self, layer: Layer) -> None:
        fn = layer.attrs["fn"]
        x = layer.inputs[0]
        if fn in ("relu6", "clip"):
            low = float(layer.attrs.get("min", 0.0))
            high = float(layer.attrs.get("max", 6.0))
            lo = self.const(f"{layer.name}.min", np.array(low, dtype=np.float32))
            hi = self.const(f"{layer.name}.max", np.array(high, dtype=np.float32))
            self.node("Clip", [x, lo, hi], layer.outputs, layer)
            return
        if fn not in _UNARY:
            raise WorkloadError(f"Layer {layer.name!r}: activation {fn!r} has no ONNX counterpart to export")
        self.node(_UNARY[fn], [x], layer.outputs, layer)

    def softmax(self, layer: Layer) -> None:
        self.node("Softmax", layer.inputs[:1], layer.outputs, layer, axis=int(layer.attrs.get("axis", -1)))

    def norm(self, layer: Layer) -> None:
        kind = layer.attrs.get("kind")
        x = layer.inputs[0]
        params = list(layer.inputs[1:])
        if kind == "layer" and len(params) == 2:
            self.small(params[0], 0.1, 1.0)
            self.small(params[1], 0.1)
            self.node("LayerNormalization", [x, *params], layer.outputs, layer, axis=-1, epsilon=1e-5)
            return
        if kind == "batch" and len(params) == 2:
            channels = self.graph.tensors[x].shape[1]
            self.small(params[0], 0.1, 1.0)
            self.small(params[1], 0.1)
            mean = self.const(f"{layer.name}.running_mean", self.normal((channels,), 0.1))
            var = self.const(f"{layer.name}.running_var",
                             (1.0 + 0.1 * np.abs(self.rng.standard_normal(channels))).astype(np.float32))
            self.node("BatchNormalization", [x, *params, mean, var], layer.outputs, layer, epsilon=1e-5)
            return
        raise WorkloadError(f"Layer {layer.name!r}: {kind} norm with {len(params)} parameters has no ONNX"
                            " counterpart to export")

    def concat(self, layer: Layer) -> None:
        self.node("Concat", layer.inputs, layer.outputs, layer, axis=int(layer.attrs["axis"]))

    def reshape(self, layer: Layer) -> None:
        fn = layer.attrs.get("fn")
        if fn == "flatten":
            self.node("Flatten", layer.inputs[:1], layer.outputs, layer, axis=int(layer.attrs["axis"]))
        elif fn == "transpose":
            self.node("Transpose", layer.inputs[:1], layer.outputs, layer, perm=list(layer.attrs["perm"]))
        else:
            target = self.const(f"{layer.name}.shape",
                                np.array(self.graph.tensors[layer.outputs[0]].shape, dtype=np.int64))
            self.node("Reshape", [layer.inputs[0], target], layer.outputs, layer)
