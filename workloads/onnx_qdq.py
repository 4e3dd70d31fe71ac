"""Rewrite the QDQ form of a quantized ONNX model into the operator form (QLinearConv, QGemm, ...).

``onnxruntime.quantization.quantize_static`` writes a quantized model in one of two forms: the
operator form (``QLinearConv``, ``QLinearMatMul``, ``com.microsoft`` ``QGemm``/``QLinearAdd``/...)
or the QDQ form, float ops with ``DequantizeLinear`` on their inputs and ``QuantizeLinear`` on their
output. onnxruntime runs the QDQ form by fusing each such node group into the operator form
(its QDQ selectors and actions); :func:`fold_qdq` does the same rewrite, so one importer reads both.

A node ``op`` is replaced when every data input is the output of a ``DequantizeLinear`` (of an
activation or of a constant) and its one output is read only by ``QuantizeLinear`` nodes with equal
parameters (and is not a graph output):

=====================================  ===================================================================
float op                               replacement
=====================================  ===================================================================
``Conv``                               ``QLinearConv`` (an int32 bias from the bias's ``DequantizeLinear``)
``MatMul``                             ``QLinearMatMul``
``Gemm`` (``beta == 1``)               ``com.microsoft.QGemm``
``Add``, ``Mul``                       ``com.microsoft.QLinearAdd`` / ``QLinearMul``
``GlobalAveragePool``, ``AveragePool`` ``com.microsoft.QLinearGlobalAveragePool`` / ``QLinearAveragePool``
``Concat``                             ``com.microsoft.QLinearConcat``
``Sigmoid``                            ``com.microsoft.QLinearSigmoid``
``MaxPool``, ``Relu``, ``Flatten``,    the same op on the integer codes, when the input's and output's
``Reshape``, ``Transpose``,            scale and zero point are equal (onnxruntime drops such Q/DQ pairs)
``Squeeze``, ``Unsqueeze``,
``Identity``
=====================================  ===================================================================

``QuantizeLinear`` nodes so absorbed, and ``DequantizeLinear`` nodes no longer read, are removed.
Everything else (a float op between a DQ and a Q that no rule covers, the graph input's
``QuantizeLinear``, the output's ``DequantizeLinear``) is kept as it is. Scales and zero points are
compared by value.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["fold_qdq"]

_MS = "com.microsoft"

_REWRITES = {
    "Conv": ("QLinearConv", ""), "MatMul": ("QLinearMatMul", ""), "Gemm": ("QGemm", _MS),
    "Add": ("QLinearAdd", _MS), "Mul": ("QLinearMul", _MS),
    "GlobalAveragePool": ("QLinearGlobalAveragePool", _MS), "AveragePool": ("QLinearAveragePool", _MS),
    "Concat": ("QLinearConcat", _MS), "Sigmoid": ("QLinearSigmoid", _MS),
}
#: Ops that commute with an affine quantization of equal input and output parameters.
_SAME_SCALE = frozenset({"MaxPool", "Relu", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
                         "Identity"})
#: Data inputs (by index) of each op; other inputs (reshape targets, axes) pass through unchanged.
_DATA_INPUTS = {"Reshape": (0,), "Squeeze": (0,), "Unsqueeze": (0,)}


@dataclass(frozen=True)
class _DQ:
    codes: str  # the integer tensor
    scale: str
    zero_point: str  # "" when absent (zero of uint8)
    axis: int


def fold_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with its QDQ node groups replaced by operator-form nodes (module docstring)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    values = {t.name: t for t in graph.initializer}
    for node in graph.node:  # scales and zero points may also be Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = node.attribute[0].t
    graph_outputs = {o.name for o in graph.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                consumers[name].append(node)
    dq: dict[str, _DQ] = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.domain in ("", "ai.onnx"):
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            dq[node.output[0]] = _DQ(node.input[0], node.input[1], node.input[2] if len(node.input) > 2 else "", axis)

    def same(a: str, b: str) -> bool:
        if a == b:
            return True
        if not a or not b or a not in values or b not in values:
            return False
        va, vb = numpy_helper.to_array(values[a]), numpy_helper.to_array(values[b])
        return va.dtype == vb.dtype and va.shape == vb.shape and bool(np.all(va == vb))

    def output_q(name: str) -> onnx.NodeProto | None:
        """The QuantizeLinear all readers of ``name`` are (with equal parameters), else None."""
        readers = consumers.get(name, [])
        if name in graph_outputs or not readers or any(r.op_type != "QuantizeLinear" for r in readers):
            return None
        first = readers[0]
        for r in readers[1:]:
            if not (same(r.input[1], first.input[1]) and same(_zp(r), _zp(first))):
                return None
        return first

    rename: dict[str, str] = {}  # absorbed Q outputs -> the integer tensor that replaces them
    absorbed: set[int] = set()  # ids of absorbed QuantizeLinear nodes
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        replaced = None
        if node.domain in ("", "ai.onnx") and len(node.output) == 1 and (
                node.op_type in _REWRITES or node.op_type in _SAME_SCALE):
            q = output_q(node.output[0])
            data = [i for i in _DATA_INPUTS.get(node.op_type, range(len(node.input))) if i < len(node.input)
                    and node.input[i]]
            if q is not None and data and all(node.input[i] in dq for i in data):
                replaced = _rewrite(node, q, [dq[node.input[i]] for i in data], data, same)
        if replaced is None:
            new_nodes.append(node)
            continue
        new_nodes.append(replaced)
        for r in consumers[node.output[0]]:
            absorbed.add(id(r))
            rename[r.output[0]] = replaced.output[0]
    kept = [n for n in new_nodes if id(n) not in absorbed]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    # Drop DequantizeLinear nodes nobody reads any more (repeat: a chain may hang on them).
    while True:
        read = {name for n in kept for name in n.input} | graph_outputs
        alive = [n for n in kept if n.op_type != "DequantizeLinear" or n.output[0] in read]
        if len(alive) == len(kept):
            break
        kept = alive
    for out in graph.output:
        if out.name in rename:
            out.name = rename[out.name]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for n in kept for name in n.input} | graph_outputs
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    if any(n.domain == _MS for n in kept) and not any(o.domain == _MS for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_MS, 1))
    return model


def _zp(node: onnx.NodeProto) -> str:
    return node.input[2] if len(node.input) > 2 else ""


def _rewrite(node: onnx.NodeProto, q: onnx.NodeProto, ins: list[_DQ], data: list[int], same) -> onnx.NodeProto | None:
    y, ys, yzp = q.output[0], q.input[1], _zp(q)
    op = node.op_type
    attrs = list(node.attribute)
    if op in _SAME_SCALE:
        x = ins[0]
        if not (same(x.scale, ys) and same(x.zero_point, yzp)):
            return None
        inputs = list(node.input)
        inputs[data[0]] = x.codes
        same_op = helper.make_node(op, inputs, [y], name=node.name, domain=node.domain)
        same_op.attribute.extend(attrs)
        return same_op
    new_op, domain = _REWRITES[op]
    triples = [[d.codes, d.scale, d.zero_point] for d in ins]
    if op == "Conv":
        if len(ins) not in (2, 3):
            return None
        inputs = [*triples[0], *triples[1], ys, yzp] + ([ins[2].codes] if len(ins) == 3 else [])
    elif op == "MatMul":
        inputs = [*triples[0], *triples[1], ys, yzp]
    elif op == "Gemm":
        get = {a.name: helper.get_attribute_value(a) for a in attrs}
        if get.get("beta", 1.0) != 1.0:
            return None
        attrs = [a for a in attrs if a.name != "beta"]
        inputs = [*triples[0], *triples[1], ins[2].codes if len(ins) == 3 else "", ys, yzp]
    elif op in ("Add", "Mul"):
        if len(ins) != 2:
            return None
        inputs = [*triples[0], *triples[1], ys, yzp]
    elif op in ("GlobalAveragePool", "AveragePool", "Sigmoid"):
        inputs = [*triples[0], ys, yzp]
        if op == "GlobalAveragePool":
            attrs = [helper.make_attribute("channels_last", 0)]
    else:  # Concat
        inputs = [ys, yzp] + [name for t in triples for name in t]
    node_out = helper.make_node(new_op, inputs, [y], name=node.name, domain=domain)
    node_out.attribute.extend(attrs)
    return node_out
