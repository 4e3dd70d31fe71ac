"""The layer-level integer reference: a quantized graph run on data, layer by layer, in integer arithmetic.

:func:`run_quantized` ``(graph, inputs, *, requant, outputs, intermediates)`` runs a graph imported from a
quantized ONNX model (:func:`workloads.load_onnx`; tensors carry :class:`~workloads.graph.QuantParams`,
constants their values) and returns the requested tensors as numpy arrays: the graph outputs by
default, every tensor with ``intermediates=True``. Graph inputs are float arrays where a
``QuantizeLinear`` layer reads them, integer codes where the input itself is quantized. With
``requant=Requantization.FLOAT32_HALF_EVEN`` every output equals onnxruntime's CPU result bit for bit
(integer codes, and the final ``DequantizeLinear`` in float32).

The arithmetic, per layer (``numerics`` ``"integer"`` unless said otherwise), all through
:mod:`sim.numerics`, vectorised over whole tensors:

* **conv** (incl. grouped and depthwise), **GEMM** (linear) and **matmul**: the int32 accumulator
  ``acc = bias + sum_k (x - x_zp) (w - w_zp)`` (:func:`~sim.numerics.gemm_array`, exact, wrapping int32;
  a convolution's padding holds ``x_zp``, i.e. contributes zero), then
  :func:`~sim.numerics.requantize_array` by the real scale ``float32(float32(x_scale * w_scale) / y_scale)``
  (per output channel for per-channel weights), the output zero point and the output format
  (``int8``/``uint8`` from the output's dtype). ``ConvInteger``/``MatMulInteger`` stop at the int32
  accumulator. A matmul of two activations (both with zero points) is computed as an array that
  multiplies raw codes does, the raw product plus the zero-point cross terms
  (:func:`raw_code_matmul`, :func:`zero_point_terms`: exactly the product of the shifted codes).
  :func:`gemm_operands` gives every parameter of one such layer (and
  ``folded_bias``, the bias with the input zero point folded in for arrays that multiply raw codes),
  :func:`im2col` its reduction-ordered input matrix, :func:`accumulators` its complete int32
  accumulators and :func:`requantize_accumulators` the store path: what a command-level executor
  computes tile by tile and is checked against.
* **add** (``QLinearAdd``): onnxruntime's x86-64 AVX2 kernel (MLAS ``qladd_avx2.cpp``), in float32:
  ``ra = a_scale / y_scale``, ``rb = b_scale / y_scale``, ``fixed = y_zp - fma(ra, a_zp, rb * b_zp)``,
  ``y = saturate(round_half_even(fma(a, ra, fma(b, rb, fixed))))`` on the raw codes (float32-half-even
  mode only; MLAS's SSE2 and NEON kernels associate or round differently). An operand that
  broadcasts as one value per span of the other (:func:`span_scalar`: a per-channel ``1 x C x 1 x 1``
  against ``1 x C x H x W``) is the kernel's scalar ``b`` (the spans its ``a``, whatever the inputs'
  order): ``y = saturate(round_half_even(fma(a, ra, fixed + b * rb)))``.
* **mul** (``QLinearMul``): ``saturate(round_half_even(float32((a - a_zp) (b - b_zp)) * ((a_scale *
  b_scale) / y_scale) + y_zp))`` as MLAS's SSE2 kernel (float32-half-even mode only).
* **global average pool** (``QLinearGlobalAveragePool``): ``acc = sum(x) - x_zp * HW`` requantized by
  ``x_scale / (y_scale * HW)``; **average pool** (``QLinearAveragePool``, windowed), as onnxruntime's
  kernel, in float32: the window's dequantized codes ``x_scale * (x - x_zp)`` summed in row-major
  order, divided by the kernel size (``count_include_pad``) or the window's in-image count, then
  ``saturate(round_half_even(avg / y_scale + y_zp))`` (float32-half-even mode only; a window over the
  whole unpadded input is the global pool's integer kernel, as onnxruntime falls back to it);
  **max pool**: the maximum of codes (padding never wins); **relu**: ``max(x, zp)``; **sigmoid**
  (``QLinearSigmoid``): onnxruntime's lookup table of every code through MLAS's logistic
  (:func:`sigmoid_table`, float32-half-even mode only); **concat**: each
  input requantized to the output's parameters when they differ (``QuantizeLinear(DequantizeLinear(x))``,
  as onnxruntime's lookup table); **reshape, flatten, transpose, squeeze, identity**: the codes rearranged.
* ``"quantize"``: :func:`~sim.numerics.quantize_linear`; ``"dequantize"``:
  :func:`~sim.numerics.dequantize_linear`.

Layers whose numerics are ``"float"`` (``LayerNormalization``, ``Gelu``, ``QLinearSoftmax``, ...) and
integer layers this reference has no kernel for are never run in float: asking for a tensor that
depends on one raises :class:`ReferenceError` naming every such layer. Only the layers the requested
tensors depend on are run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from accel.errors import AccelError
from accel.formats import INT32, NumberFormat, Overflow, Requantization
from sim.numerics import (
    dequantize_linear,
    fma_float32,
    gemm_array,
    logistic_float32,
    quantize_linear,
    requantize_array,
    tflite_add_codes,
    tflite_add_multipliers,
)
from workloads.graph import Graph, Layer, OpKind, QuantParams, Tensor

__all__ = ["ReferenceError", "GemmOperands", "run_quantized", "run_layer", "gemm_operands", "im2col",
           "accumulators", "requantize_accumulators", "supported", "code_format", "add_codes", "global_avg_codes",
           "avgpool_codes", "maxpool_codes", "mul_codes", "concat_part_codes", "raw_code_matmul",
           "float_average", "sigmoid_codes", "sigmoid_table", "span_scalar", "tflite_add_parameters", "wrap_int32",
           "zero_point_terms"]

_log = logging.getLogger(__name__)

#: Shifted operands ``code - zero_point`` of 8-bit codes span [-255, 255]: a 16-bit signed format holds them.
_SHIFTED = NumberFormat(16, overflow=Overflow.WRAP)
_WRAP32 = INT32


class ReferenceError(AccelError):
    """A graph, layer or input the integer reference cannot run (float layers, missing values, ...)."""


def code_format(tensor: Tensor) -> NumberFormat:
    """The integer format of a quantized tensor's codes, from its dtype (``int8``, ``uint8``, ``int32``, ...)."""
    dtype = tensor.dtype
    if dtype.startswith("uint") and dtype[4:].isdigit():
        return NumberFormat(int(dtype[4:]), signed=False)
    if dtype.startswith("int") and dtype[3:].isdigit():
        return NumberFormat(int(dtype[3:]))
    raise ReferenceError(f"Tensor {tensor.name!r}: dtype {dtype} is not an integer type of quantized codes")


@dataclass(frozen=True)
class GemmOperands:
    """Everything one conv / GEMM / matmul layer of a quantized graph computes with.

    The layer is ``groups`` products ``(x - x_zero_point) (m x k) @ (w - w_zero_point) (k x n)``, plus
    ``bias``, requantized per output column. Arrays are indexed ``[group, ..., column]``:

    ``weight``
        ``groups x k x n`` int64 weight codes (``None`` for a matmul of two activations), ``k`` in
        the order :func:`im2col` lays out the input (input channel, kernel row, kernel column);
    ``w_zero_point``, ``bias``, ``scale``
        ``groups x n``: the weight zero points, the int32 bias (zeros without one) and the float32
        requantization scale ``float32(x_scale * w_scale) / y_scale`` (``None`` without an output
        scale: ``ConvInteger``/``MatMulInteger`` stop at the accumulator);
    ``x_zero_point``, ``y_zero_point``
        the input's and output's zero points (the output's 0 without quantization);
    ``out_format``
        the codes' format of the output (``INT32`` for an accumulator output).
    """

    layer: str
    groups: int
    weight: np.ndarray | None
    w_zero_point: np.ndarray
    x_zero_point: int
    bias: np.ndarray
    scale: np.ndarray | None
    y_zero_point: int
    out_format: NumberFormat

    @property
    def folded_bias(self) -> np.ndarray:
        """``groups x n``: ``bias - x_zero_point * sum_k (w - w_zero_point)``, for an array that multiplies raw
        input codes: ``acc = folded_bias + x @ (w - w_zero_point)`` exactly (padding holding ``x_zero_point``)."""
        if self.weight is None:
            raise ReferenceError(f"Layer {self.layer!r}: a matmul of two activations has no constant weight to fold")
        shifted = self.weight - self.w_zero_point[:, None, :]
        return self.bias - self.x_zero_point * shifted.sum(axis=1)


# -- entry points ---------------------------------------------------------------------------------

def run_quantized(
    graph: Graph,
    inputs: Mapping[str, np.ndarray],
    *,
    requant: Requantization | str = Requantization.FLOAT32_HALF_EVEN,
    outputs: Iterable[str] | None = None,
    intermediates: bool = False,
) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``inputs``; the ``outputs`` tensors (default: the graph's), or every tensor.

    ``requant`` is the hardware's :class:`~accel.formats.Requantization` (onnxruntime's is
    ``float32-half-even``). Raises :class:`ReferenceError` naming the float or unsupported layers
    the requested tensors depend on, a missing or misshapen input, or a constant without a value.
    """
    mode = Requantization.parse(requant)
    wanted = [t.name for t in graph.outputs] if outputs is None else list(outputs)
    for name in wanted:
        if name not in graph.tensors:
            raise ReferenceError(f"Graph {graph.name!r} has no tensor {name!r}")
    needed = graph.layers_feeding(wanted)
    blocked = [layer for layer in graph.layers if layer.name in needed and supported(graph, layer) is not None]
    if blocked:
        reasons = "; ".join(f"{layer.name} ({supported(graph, layer)})" for layer in blocked[:8])
        more = f" and {len(blocked) - 8} more" if len(blocked) > 8 else ""
        raise ReferenceError(f"Graph {graph.name!r}: {len(blocked)} layer(s) cannot run integer-only: {reasons}{more}")
    values: dict[str, np.ndarray] = {}
    for t in graph.inputs:
        if any(c in needed for c in t.consumers):
            values[t.name] = _graph_input(graph, t, inputs)
    for layer in graph.layers:
        if layer.name in needed:
            values.update(run_layer(graph, layer, values, requant=mode))
    if intermediates:
        return values
    return {name: values[name] if name in values else _constant(graph.tensors[name]) for name in wanted}


def run_layer(graph: Graph, layer: Layer, values: Mapping[str, np.ndarray], *,
              requant: Requantization | str = Requantization.FLOAT32_HALF_EVEN) -> dict[str, np.ndarray]:
    """One layer on the values of its activation inputs (``values``, by tensor name): its outputs."""
    mode = Requantization.parse(requant)
    reason = supported(graph, layer)
    if reason is not None:
        raise ReferenceError(f"Layer {layer.name!r} cannot run integer-only: {reason}")

    def get(name: str) -> np.ndarray:
        t = graph.tensors[name]
        if t.is_constant:
            return _constant(t)
        if name not in values:
            raise ReferenceError(f"Layer {layer.name!r}: no value for its input {name!r}")
        return np.asarray(values[name])

    kernel = _KERNELS[_kernel_name(graph, layer)]
    result = kernel(graph, layer, get, mode)
    return dict(zip(layer.outputs, result, strict=True))


def supported(graph: Graph, layer: Layer) -> str | None:
    """``None`` if :func:`run_layer` can run ``layer``, else the reason it cannot."""
    numerics = layer.attrs.get("numerics")
    if numerics is None:
        return "the graph is not quantized (import a quantized ONNX model)"
    if numerics == "float":
        return f"{layer.source_op or layer.op.value} computes in floating point"
    name = _kernel_name(graph, layer)
    if name not in _KERNELS:
        return f"no integer kernel for {layer.source_op or layer.op.value} ({name})"
    return None


# -- graph plumbing ---------------------------------------------------------------------------------

def _graph_input(graph: Graph, t: Tensor, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    if t.name not in inputs:
        raise ReferenceError(f"Graph {graph.name!r}: no value given for input {t.name!r} (shape {t.shape})")
    value = np.asarray(inputs[t.name])
    if tuple(value.shape) != tuple(t.shape):
        raise ReferenceError(f"Graph {graph.name!r}: input {t.name!r} must have shape {t.shape}, not {value.shape}")
    if t.quant is not None:
        fmt = code_format(t)
        if value.dtype.kind not in "iu" or value.min(initial=fmt.min_int) < fmt.min_int or \
                value.max(initial=fmt.max_int) > fmt.max_int:
            raise ReferenceError(f"Graph {graph.name!r}: input {t.name!r} is quantized: give {fmt.name} codes")
        return value.astype(np.int64)
    return value.astype(np.float32)


def _constant(t: Tensor) -> np.ndarray:
    if t.value is None:
        raise ReferenceError(f"Constant {t.name!r} has no value (a weight-stripped model?)")
    return np.asarray(t.value)


def _quant(graph: Graph, name: str, layer: Layer) -> QuantParams:
    q = graph.tensors[name].quant
    if q is None:
        raise ReferenceError(f"Layer {layer.name!r}: tensor {name!r} is not quantized")
    return q


def _kernel_name(graph: Graph, layer: Layer) -> str:
    numerics = layer.attrs.get("numerics")
    if numerics in ("quantize", "dequantize"):
        return numerics
    if layer.op in (OpKind.CONV, OpKind.GEMM, OpKind.MATMUL):
        return layer.op.value
    if layer.op is OpKind.POOL:
        if layer.attrs.get("global") and layer.attrs["kind"] == "avg":
            return "global_avg"
        return f"{layer.attrs['kind']}pool"
    if layer.op in (OpKind.ELEMENTWISE, OpKind.ACTIVATION):
        return str(layer.attrs.get("fn"))
    if layer.op is OpKind.RESHAPE:
        return str(layer.attrs.get("fn", "reshape"))
    return layer.op.value


# -- array layers -----------------------------------------------------------------------------------

def gemm_operands(graph: Graph, layer: Layer) -> GemmOperands:
    """The integer operands and requantization parameters of a quantized conv / GEMM / matmul layer."""
    if layer.gemm is None:
        raise ReferenceError(f"Layer {layer.name!r} is not a conv, GEMM or matmul layer")
    x = layer.inputs[0]
    xq = _quant(graph, x, layer)
    out = graph.tensors[layer.outputs[0]]
    groups = layer.gemm.batch if layer.op is OpKind.CONV else 1
    n = layer.gemm.n
    second = graph.tensors[layer.inputs[1]]
    wq = _quant(graph, second.name, layer)
    if layer.op is OpKind.MATMUL and not second.is_constant:
        weight = None
    elif layer.op is OpKind.CONV:
        w = _constant(second).astype(np.int64)  # (OC, C/g, KH, KW)
        weight = w.reshape(groups, n, -1).transpose(0, 2, 1)  # (g, k, n): k = (c, kh, kw)
    else:
        w = _constant(second).astype(np.int64)
        layout = layer.attrs.get("weight_layout") or ("nk" if tuple(w.shape) == (n, layer.gemm.k) else "kn")
        weight = (w.T if layout == "nk" else w)[None]  # (1, k, n)
    if layer.op is not OpKind.MATMUL and float(layer.attrs.get("alpha", 1.0)) != 1.0:
        raise ReferenceError(f"Layer {layer.name!r}: Gemm alpha {layer.attrs['alpha']} is not supported (only 1)")
    w_zp = np.broadcast_to(np.asarray(wq.zero_point, dtype=np.int64), (groups * n,) if wq.per_channel else (1,))
    w_zp = np.broadcast_to(w_zp, (groups * n,)).reshape(groups, n)
    bias = np.zeros((groups, n), dtype=np.int64)
    if len(layer.inputs) > 2 and graph.tensors[layer.inputs[2]].is_constant:
        bias = _constant(graph.tensors[layer.inputs[2]]).astype(np.int64).reshape(groups, n)
    if out.quant is None or not out.quant.has_scale:
        scale, y_zp, fmt = None, 0, INT32
    else:
        if out.quant.per_channel:
            raise ReferenceError(f"Layer {layer.name!r}: a per-channel output quantization is not supported")
        x_scale = np.float32(xq.scale[0])
        w_scale = np.broadcast_to(np.asarray(wq.scale, dtype=np.float32), (groups * n,)).reshape(groups, n)
        scale = (x_scale * w_scale) / np.float32(out.quant.scale[0])  # float32 arithmetic, onnxruntime's order
        y_zp, fmt = out.quant.zero_point[0], code_format(out)
    return GemmOperands(layer.name, groups, weight, w_zp, xq.zero_point[0], bias, scale, y_zp, fmt)


def im2col(graph: Graph, layer: Layer, x: np.ndarray, pad_value: int) -> np.ndarray:
    """A conv layer's input ``x`` (N x C x H x W) as ``groups x (N*OH*OW) x (C/g*KH*KW)`` windows.

    Rows are output pixels (batch, row, column); columns run over input channel, kernel row, kernel
    column (the weight's order); padding holds ``pad_value``.
    """
    a = layer.attrs
    n, c, h, w = x.shape
    kh, kw = a["kernel"]
    sh, sw = a["stride"]
    dh, dw = a.get("dilation", (1, 1))
    pt, pl, pb, pr = a.get("padding", (0, 0, 0, 0))
    groups = int(a["groups"])
    padded = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=pad_value)
    out_shape = graph.tensors[layer.outputs[0]].shape
    oh, ow = out_shape[2], out_shape[3]
    cols = np.empty((n, oh, ow, c, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = padded[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            cols[:, :, :, :, i, j] = rows.transpose(0, 2, 3, 1)
    cols = cols.reshape(n * oh * ow, groups, (c // groups) * kh * kw)
    return cols.transpose(1, 0, 2)


def accumulators(graph: Graph, layer: Layer, x: np.ndarray) -> np.ndarray:
    """The int32 accumulators (``groups x m x n``, before requantization) of a conv or GEMM layer on input
    codes ``x``: what the array's accumulator memory holds when the layer's reduction is complete."""
    ops = gemm_operands(graph, layer)
    if ops.weight is None:
        raise ReferenceError(f"Layer {layer.name!r}: accumulators() needs a constant weight (conv or GEMM)")
    x = np.asarray(x).astype(np.int64)
    rows = im2col(graph, layer, x, ops.x_zero_point) if layer.op is OpKind.CONV else x.reshape(1, -1, x.shape[-1])
    return _accumulate(ops, rows, ops.weight)


def requantize_accumulators(ops: GemmOperands, acc: np.ndarray, *,
                            requant: Requantization | str = Requantization.FLOAT32_HALF_EVEN) -> np.ndarray:
    """``groups x ... x n`` int32 accumulators to output codes: the store path of the layer (its per-column
    scales, the output zero point and format); accumulators unchanged without an output scale."""
    return _finish(ops, np.asarray(acc).astype(np.int64), Requantization.parse(requant))


def _accumulate(ops: GemmOperands, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``bias + (a - x_zp) @ (b - w_zp)`` per group: int32 accumulators (``groups x ... x n``)."""
    shifted_a = a - ops.x_zero_point
    shifted_b = b - ops.w_zero_point[:, None, :] if b.ndim == 3 else b
    acc = gemm_array(shifted_a, shifted_b, a_format=_SHIFTED, b_format=_SHIFTED, acc_format=_WRAP32)
    return wrap_int32(acc + ops.bias.reshape(ops.bias.shape[0], *([1] * (acc.ndim - 2)), ops.bias.shape[1]))


def _finish(ops: GemmOperands, acc: np.ndarray, mode: Requantization) -> np.ndarray:
    if ops.scale is None:
        return acc
    scale = ops.scale.reshape(ops.scale.shape[0], *([1] * (acc.ndim - 2)), ops.scale.shape[1])
    return requantize_array(acc, scale, ops.y_zero_point, mode=mode, out_format=ops.out_format)


def _conv(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    ops = gemm_operands(graph, layer)
    x = get(layer.inputs[0]).astype(np.int64)
    cols = im2col(graph, layer, x, ops.x_zero_point)  # (g, M, K)
    result = _finish(ops, _accumulate(ops, cols, ops.weight), mode)  # (g, M, n)
    n, oc, oh, ow = graph.tensors[layer.outputs[0]].shape
    result = result.reshape(ops.groups, n, oh, ow, -1).transpose(1, 0, 4, 2, 3).reshape(n, oc, oh, ow)
    return [result]


def _gemm(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    ops = gemm_operands(graph, layer)
    x = get(layer.inputs[0]).astype(np.int64)
    rows = x.reshape(1, -1, x.shape[-1])
    result = _finish(ops, _accumulate(ops, rows, ops.weight), mode)[0]
    return [result.reshape(graph.tensors[layer.outputs[0]].shape)]


def _matmul(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    ops = gemm_operands(graph, layer)
    a_name, b_name = layer.inputs[:2]
    acc = raw_code_matmul(get(a_name).astype(np.int64), get(b_name).astype(np.int64), ops.x_zero_point,
                          int(ops.w_zero_point[0, 0]), a_format=code_format(graph.tensors[a_name]),
                          b_format=code_format(graph.tensors[b_name]))
    if ops.scale is None:
        return [acc.reshape(graph.tensors[layer.outputs[0]].shape)]
    out = requantize_array(acc, ops.scale[0, 0], ops.y_zero_point, mode=mode, out_format=ops.out_format)
    return [out.reshape(graph.tensors[layer.outputs[0]].shape)]


def zero_point_terms(a: np.ndarray, b: np.ndarray, a_zero_point: int, b_zero_point: int) -> np.ndarray:
    """``sum_k (a - a_zp) (b - b_zp) - sum_k a b`` for codes ``a`` (``... x m x k``) and ``b`` (``... x k x n``):
    the zero-point cross terms ``k a_zp b_zp - b_zp rowsum(a) - a_zp colsum(b)`` (``... x m x n``, exact
    int64), which an array multiplying raw codes adds from the row sums of its input and the column sums
    of its second operand (as onnxruntime's MLAS QGEMM corrects its raw products)."""
    a, b = np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)
    rows = a.sum(axis=-1)[..., :, None]
    cols = b.sum(axis=-2)[..., None, :]
    return a.shape[-1] * a_zero_point * b_zero_point - b_zero_point * rows - a_zero_point * cols


def raw_code_matmul(a: np.ndarray, b: np.ndarray, a_zero_point: int, b_zero_point: int, *,
                    a_format: NumberFormat, b_format: NumberFormat, acc: np.ndarray | None = None,
                    acc_format: NumberFormat = _WRAP32) -> np.ndarray:
    """``acc + sum_k (a - a_zp) (b - b_zp)`` of two activations' codes, as an array whose multipliers take
    the codes themselves (``a_format``, ``b_format``) computes it: the raw product plus
    :func:`zero_point_terms`, in ``acc_format`` (wrapping int32: equal to the product of the shifted codes)."""
    terms = zero_point_terms(a, b, a_zero_point, b_zero_point)
    start = terms if acc is None else np.asarray(acc).astype(np.int64) + terms
    return gemm_array(a, b, acc=wrap_int32(start), a_format=a_format, b_format=b_format, acc_format=acc_format)


def wrap_int32(values: np.ndarray) -> np.ndarray:
    """``values`` (int64) wrapped to int32, as two's-complement accumulators overflow."""
    return ((values + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


# -- vector layers ------------------------------------------------------------------------------------

def _binary(codes_of: Any) -> Any:
    """The kernel of a binary element-wise layer whose codes ``codes_of`` gives, broadcast to its output."""
    def kernel(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
        out = graph.tensors[layer.outputs[0]]
        codes = codes_of(graph, layer, get(layer.inputs[0]), get(layer.inputs[1]), requant=mode)
        return [np.broadcast_to(codes, out.shape).copy()]
    return kernel


def _binary_quant(graph: Graph, layer: Layer, what: str) -> tuple[QuantParams, QuantParams, QuantParams, NumberFormat]:
    """The per-tensor quantization of binary layer ``layer``'s two inputs and its output, and the output's
    code format (a per-channel one is refused, naming ``what`` the layer is)."""
    aq, bq = _quant(graph, layer.inputs[0], layer), _quant(graph, layer.inputs[1], layer)
    out = graph.tensors[layer.outputs[0]]
    yq = _quant(graph, out.name, layer)
    if aq.per_channel or bq.per_channel or yq.per_channel:
        raise ReferenceError(f"Layer {layer.name!r}: per-channel quantized {what} is not supported")
    return aq, bq, yq, code_format(out)


def add_codes(graph: Graph, layer: Layer, a: np.ndarray, b: np.ndarray, *,
              requant: Requantization | str = Requantization.FLOAT32_HALF_EVEN) -> np.ndarray:
    """The codes of quantized add ``layer`` on input codes ``a`` and ``b`` (any shapes that broadcast:
    whole tensors or a chunk of them)."""
    mode = Requantization.parse(requant)
    if mode is Requantization.DYADIC:
        raise ReferenceError(f"Layer {layer.name!r}: a quantized add is modelled in the float32-half-even"
                             " (onnxruntime) and TFLite modes, not dyadic")
    aq, bq, yq, fmt = _binary_quant(graph, layer, "add")
    if mode is not Requantization.FLOAT32_HALF_EVEN:
        a_zp, b_zp, multipliers, y_zp = tflite_add_parameters(graph, layer, requant=mode)
        return tflite_add_codes(a, b, a_zp, b_zp, multipliers, y_zp, mode=mode, out_format=fmt)
    scalar = span_scalar(graph, layer)
    if scalar == 0:  # onnxruntime passes the spans as the kernel's first operand, the scalar as its second
        a, b, aq, bq = b, a, bq, aq
    y_scale = np.float32(yq.scale[0])
    ratio_a = np.float32(aq.scale[0]) / y_scale
    ratio_b = np.float32(bq.scale[0]) / y_scale
    zp = yq.zero_point[0]
    # MLAS's AVX2 kernel: fixed = zc - (ra * za + rb * zb), compiled with the first product fused into the sum
    # (onnxruntime's x86-64 build contracts it to fma(ra, za, rb * zb)); c = fma(a, ra, fma(b, rb, fixed)),
    # or with a scalar b: fixed + b * rb first (rounded product, rounded sum), then c = fma(a, ra, that).
    fixed = np.float32(zp) - fma_float32(ratio_a, np.float32(aq.zero_point[0]),
                                         ratio_b * np.float32(bq.zero_point[0]))
    a_real, b_real = np.asarray(a).astype(np.float32), np.asarray(b).astype(np.float32)
    if scalar is None:
        total = fma_float32(a_real, ratio_a, fma_float32(b_real, ratio_b, fixed))
    else:
        total = fma_float32(a_real, ratio_a, fixed + b_real * ratio_b)
    return np.clip(np.rint(total).astype(np.int64), fmt.min_int, fmt.max_int)


def span_scalar(graph: Graph, layer: Layer) -> int | None:
    """Which input of binary ``layer`` onnxruntime's broadcaster hands its kernel as one value per span
    (``None``: both as spans): the input of size 1 along the output's innermost axis longer than 1,
    which the other runs along (a per-channel ``1 x C x 1 x 1`` against ``1 x C x H x W``: each
    channel's ``H x W`` pixels are a span and its scale value the scalar)."""
    out = graph.tensors[layer.outputs[0]].shape
    shapes = [(1,) * (len(out) - len(s)) + tuple(s) for s in (graph.tensors[t].shape for t in layer.inputs[:2])]
    axes = [i for i, size in enumerate(out) if size > 1]
    if not axes:
        return None
    ones = [k for k, shape in enumerate(shapes) if shape[axes[-1]] == 1]
    return ones[0] if len(ones) == 1 else None


def tflite_add_parameters(graph: Graph, layer: Layer, *, requant: Requantization | str = Requantization.TFLITE_DOUBLE
                          ) -> tuple[int, int, tuple[tuple[int, int], ...], int]:
    """``(a_zero_point, b_zero_point, multipliers, y_zero_point)`` of quantized add ``layer`` in a TFLite
    mode: what :func:`add_codes` computes with (:func:`sim.numerics.tflite_add_codes`), and so what a
    host configures an integer vector unit with (the layer's inputs in order, then its output)."""
    mode = Requantization.parse(requant)
    aq, bq, yq, _ = _binary_quant(graph, layer, "add")
    multipliers = tflite_add_multipliers(aq.scale[0], bq.scale[0], yq.scale[0], mode=mode)
    return int(aq.zero_point[0]), int(bq.zero_point[0]), multipliers, int(yq.zero_point[0])


def mul_codes(graph: Graph, layer: Layer, a: np.ndarray, b: np.ndarray, *,
              requant: Requantization | str = Requantization.FLOAT32_HALF_EVEN) -> np.ndarray:
    """The codes of quantized multiply ``layer`` on input codes ``a`` and ``b`` (any shapes that broadcast:
    whole tensors or a chunk of them)."""
    _onnxruntime_only(layer, Requantization.parse(requant), "multiply")
    aq, bq, yq, fmt = _binary_quant(graph, layer, "multiply")
    # MLAS qlmul.cpp (SSE2): the exact int32 product of the shifted codes, float32 scaled by
    # (a_scale * b_scale) / y_scale, plus y_zp, rounded half to even, saturated.
    ratio = (np.float32(aq.scale[0]) * np.float32(bq.scale[0])) / np.float32(yq.scale[0])
    product = (np.asarray(a).astype(np.int64) - aq.zero_point[0]) * (np.asarray(b).astype(np.int64) - bq.zero_point[0])
    total = product.astype(np.float32) * ratio + np.float32(yq.zero_point[0])
    return np.clip(np.rint(total).astype(np.int64), fmt.min_int, fmt.max_int)


def _global_avg(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    out = graph.tensors[layer.outputs[0]]
    return [global_avg_codes(graph, layer, get(layer.inputs[0]), requant=mode).reshape(out.shape)]


def global_avg_codes(graph: Graph, layer: Layer, x: np.ndarray, *,
                     requant: Requantization | str = Requantization.FLOAT32_HALF_EVEN) -> np.ndarray:
    """``N x C`` codes of global average pool ``layer`` on ``N x C x H x W`` codes ``x`` (any ``C``: a chunk
    of the channels)."""
    xq = _quant(graph, layer.inputs[0], layer)
    out = graph.tensors[layer.outputs[0]]
    yq = _quant(graph, out.name, layer)
    x = np.asarray(x).astype(np.int64)
    size = int(np.prod(x.shape[2:]))
    acc = x.reshape(*x.shape[:2], -1).sum(axis=-1) - xq.zero_point[0] * size
    scale = np.float32(xq.scale[0]) / (np.float32(yq.scale[0]) * np.float32(size))
    return requantize_array(acc, scale, yq.zero_point[0], mode=Requantization.parse(requant),
                            out_format=code_format(out))


def _maxpool(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    out = graph.tensors[layer.outputs[0]]
    return [maxpool_codes(layer, get(layer.inputs[0]), out.shape)]


def maxpool_codes(layer: Layer, x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    """Max pool ``layer`` on ``N x C x H x W`` codes ``x`` with output ``out_shape`` (any ``C``: a chunk)."""
    x = np.asarray(x).astype(np.int64)
    if layer.attrs.get("global"):
        return x.reshape(*x.shape[:2], -1).max(axis=-1).reshape(out_shape)
    kh, kw = layer.attrs["kernel"]
    sh, sw = layer.attrs["stride"]
    pt, pl, pb, pr = layer.attrs["padding"]
    oh, ow = out_shape[2], out_shape[3]
    low = np.iinfo(np.int64).min
    extra_h = max(0, (oh - 1) * sh + kh - (x.shape[2] + pt + pb))  # ceil_mode windows past the end
    extra_w = max(0, (ow - 1) * sw + kw - (x.shape[3] + pl + pr))
    padded = np.pad(x, ((0, 0), (0, 0), (pt, pb + extra_h), (pl, pr + extra_w)), constant_values=low)
    result = np.full(out_shape, low, dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            np.maximum(result, padded[:, :, i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw], out=result)
    return result


def _avgpool(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    out = graph.tensors[layer.outputs[0]]
    return [avgpool_codes(graph, layer, get(layer.inputs[0]), out.shape, requant=mode)]


def avgpool_codes(graph: Graph, layer: Layer, x: np.ndarray, out_shape: tuple[int, ...], *,
                  requant: Requantization | str = Requantization.FLOAT32_HALF_EVEN) -> np.ndarray:
    """Windowed average pool ``layer`` (``QLinearAveragePool``) on ``N x C x H x W`` codes ``x`` with
    output ``out_shape`` (any ``C``: a chunk of the channels), as onnxruntime computes it.

    A window that covers the whole input without padding is the global average pool's integer kernel
    (onnxruntime falls back to it). Otherwise, in float32 (``float32-half-even`` mode only): each code
    dequantized, ``x_scale * (x - x_zp)``; the window's in-image values summed in row-major order from
    0; divided by the kernel's size (``count_include_pad``) or the in-image count; then
    ``saturate(round_half_even(avg / y_scale + y_zp))``. Windows are clipped to the image as
    onnxruntime's are (``ceil_mode`` windows past the end count only their in-image elements)."""
    mode = Requantization.parse(requant)
    x = np.asarray(x).astype(np.int64)
    kh, kw = layer.attrs["kernel"]
    sh, sw = layer.attrs["stride"]
    pt, pl, _, _ = layer.attrs["padding"]  # (the ends: windows are clipped to the image)
    h, w = x.shape[2], x.shape[3]
    if not float_average(layer, x.shape):
        return global_avg_codes(graph, layer, x, requant=mode).reshape(out_shape)
    _onnxruntime_only(layer, mode, "average pool")
    xq = _quant(graph, layer.inputs[0], layer)
    out = graph.tensors[layer.outputs[0]]
    yq = _quant(graph, out.name, layer)
    fmt = code_format(out)
    oh, ow = out_shape[2], out_shape[3]
    real = np.float32(xq.scale[0]) * (x - xq.zero_point[0]).astype(np.float32)
    rows, cols = np.arange(oh) * sh - pt, np.arange(ow) * sw - pl  # each window's first row and column
    total = np.zeros((*x.shape[:2], oh, ow), dtype=np.float32)
    for i in range(kh):
        r = rows + i
        r_in = (r >= 0) & (r < h)
        for j in range(kw):
            c = cols + j
            c_in = (c >= 0) & (c < w)
            window = real[:, :, np.clip(r, 0, h - 1)][:, :, :, np.clip(c, 0, w - 1)]
            total += np.where(r_in[:, None] & c_in[None, :], window, np.float32(0))
    if layer.attrs.get("count_include_pad"):
        count = np.full((oh, ow), kh * kw)
    else:
        count = ((np.minimum(rows + kh, h) - np.maximum(rows, 0))[:, None]
                 * (np.minimum(cols + kw, w) - np.maximum(cols, 0))[None, :])
    mean = total / count.astype(np.float32)
    codes = np.rint(mean / np.float32(yq.scale[0]) + np.float32(yq.zero_point[0]))
    return np.clip(codes, fmt.min_int, fmt.max_int).astype(np.int64)


def float_average(layer: Layer, in_shape: Sequence[int]) -> bool:
    """Whether onnxruntime computes windowed average pool ``layer`` on an ``N x C x H x W`` input of
    ``in_shape`` in float32 (a window smaller than the input, or padded); a window over the whole
    unpadded input is the global pool's integer kernel, which onnxruntime falls back to."""
    return tuple(layer.attrs["padding"]) != (0, 0, 0, 0) or tuple(layer.attrs["kernel"]) != tuple(in_shape[2:])


def _onnxruntime_only(layer: Layer, mode: Requantization, what: str) -> None:
    """Refuse a ``mode`` other than onnxruntime's for ``layer``, a quantized ``what`` modelled in it alone."""
    if mode is not Requantization.FLOAT32_HALF_EVEN:
        raise ReferenceError(f"Layer {layer.name!r}: a quantized {what} is modelled in float32-half-even mode only"
                             f" (onnxruntime's), not {mode.value}")


def sigmoid_table(graph: Graph, layer: Layer, *,
                  requant: Requantization | str = Requantization.FLOAT32_HALF_EVEN) -> np.ndarray:
    """The output code of quantized sigmoid ``layer`` (``QLinearSigmoid``) for each input code, from the
    format's lowest: the lookup table onnxruntime builds, every code dequantized (``x_scale * (x -
    x_zp)``), through MLAS's logistic (:func:`sim.numerics.logistic_float32`) and quantized
    (:func:`sim.numerics.quantize_linear`); float32-half-even mode only."""
    _onnxruntime_only(layer, Requantization.parse(requant), "sigmoid")
    xq = _quant(graph, layer.inputs[0], layer)
    out = graph.tensors[layer.outputs[0]]
    yq = _quant(graph, out.name, layer)
    if xq.per_channel or yq.per_channel:
        raise ReferenceError(f"Layer {layer.name!r}: a per-channel quantized sigmoid is not supported")
    in_format = code_format(graph.tensors[layer.inputs[0]])
    real = dequantize_linear(np.arange(in_format.min_int, in_format.max_int + 1), xq.scale[0], xq.zero_point[0])
    return quantize_linear(logistic_float32(real), yq.scale[0], yq.zero_point[0], out_format=code_format(out))


def sigmoid_codes(graph: Graph, layer: Layer, x: np.ndarray, *,
                  requant: Requantization | str = Requantization.FLOAT32_HALF_EVEN) -> np.ndarray:
    """The codes of quantized sigmoid ``layer`` on input codes ``x`` (any shape): each looked up in
    :func:`sigmoid_table`."""
    low = code_format(graph.tensors[layer.inputs[0]]).min_int
    return sigmoid_table(graph, layer, requant=requant)[np.asarray(x).astype(np.int64) - low]


def _sigmoid(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    return [sigmoid_codes(graph, layer, get(layer.inputs[0]), requant=mode)]


def _relu(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    q = _quant(graph, layer.inputs[0], layer)
    rank = len(graph.tensors[layer.inputs[0]].shape)
    return [np.maximum(get(layer.inputs[0]).astype(np.int64), q.zero_point_array(rank))]


def concat_part_codes(graph: Graph, layer: Layer, name: str, codes: np.ndarray) -> np.ndarray:
    """Input ``name``'s ``codes`` as concatenation ``layer``'s output codes: the same codes when the two
    share scale and zero point, else onnxruntime's lookup (``QuantizeLinear(DequantizeLinear(x))``)."""
    out = graph.tensors[layer.outputs[0]]
    yq, q = _quant(graph, out.name, layer), _quant(graph, name, layer)
    codes = np.asarray(codes).astype(np.int64)
    if q == yq:
        return codes
    real = dequantize_linear(codes, q.scale[0], q.zero_point[0])
    return quantize_linear(real, yq.scale[0], yq.zero_point[0], out_format=code_format(out))


def _concat(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    parts = [concat_part_codes(graph, layer, name, get(name)) for name in layer.inputs]
    return [np.concatenate(parts, axis=int(layer.attrs["axis"]))]


def _rearrange(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    x = get(layer.inputs[0])
    out = graph.tensors[layer.outputs[0]]
    if layer.attrs.get("fn") == "transpose":
        return [np.transpose(x, layer.attrs["perm"])]
    return [x.reshape(out.shape)]


def _identity(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    return [get(layer.inputs[0])]


def _quantize(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    out = graph.tensors[layer.outputs[0]]
    q = _quant(graph, out.name, layer)
    rank = len(out.shape)
    return [quantize_linear(get(layer.inputs[0]), q.scale_array(rank), q.zero_point_array(rank),
                            out_format=code_format(out))]


def _dequantize(graph: Graph, layer: Layer, get: Any, mode: Requantization) -> list[np.ndarray]:
    x = layer.inputs[0]
    q = _quant(graph, x, layer)
    rank = len(graph.tensors[x].shape)
    return [dequantize_linear(get(x), q.scale_array(rank), q.zero_point_array(rank))]


_KERNELS = {
    "conv": _conv, "gemm": _gemm, "matmul": _matmul, "add": _binary(add_codes), "mul": _binary(mul_codes),
    "global_avg": _global_avg, "avgpool": _avgpool,
    "maxpool": _maxpool, "relu": _relu, "sigmoid": _sigmoid, "concat": _concat, "reshape": _rearrange,
    "flatten": _rearrange,
    "transpose": _rearrange, "identity": _identity, "passthrough": _identity, "quantize": _quantize,
    "dequantize": _dequantize,
}
