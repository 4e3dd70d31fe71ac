"""Build a :class:`~workloads.graph.Graph` layer by layer, with shapes and work inferred in one place.

:class:`GraphBuilder` is used by the model zoo and by every importer, so the rules that turn a
layer's hyper-parameters into output shapes, :class:`~workloads.graph.GemmShape` and vector-op
counts live only here. Each method adds one layer and returns the name of its output tensor; the
layer and tensor names default to ``<op><n>`` (``conv1``, ``relu3``, ...) and can be given.

Work conventions (the contract the mapper and simulator rely on):

* **conv** on NCHW: ``m = N*OH*OW``, ``k = (C/groups)*KH*KW``, ``n = OC/groups``, ``batch = groups``
  (a depthwise conv is ``groups = C`` products with ``k = KH*KW``, ``n = 1``).
* **linear** (GEMM against a constant weight) on the last dimension: leading dimensions fold into
  ``m``. The builder creates the weight as ``(out_features, in_features)`` (PyTorch's layout); an
  existing weight may be given in either orientation.
* **matmul** (activation x activation) with NumPy broadcasting of the leading dimensions:
  ``batch`` is the product of the broadcast leading dimensions.
* **vector ops**: one per output element for activation and normalisation layers and for two-input
  element-wise layers (``n - 1`` per output element for an ``n``-input sum, max, ...);
  ``output elements x window`` for pooling (global pooling: one per input element);
  :data:`SOFTMAX_OPS_PER_ELEMENT` per element for softmax.
* concat / reshape / flatten / transpose move data and do no work; pass-through layers stand for
  ops the IR does not model and do no work either.

Weights and biases are :attr:`~workloads.graph.TensorKind.CONSTANT` tensors named
``<layer>.weight`` / ``<layer>.bias`` unless existing constants are passed in. Inconsistent
shapes raise :class:`~accel.errors.WorkloadError` naming the layer and what was expected.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from accel.errors import WorkloadError
from workloads.graph import DTYPE_BYTES, GemmShape, Graph, Layer, OpKind, QuantParams, Tensor, TensorKind

__all__ = [
    "GraphBuilder",
    "ACTIVATIONS",
    "SOFTMAX_OPS_PER_ELEMENT",
    "broadcast_shapes",
    "conv_output_size",
    "pool_output_size",
]

#: Element-wise unary functions :meth:`GraphBuilder.activation` accepts.
ACTIVATIONS = frozenset({
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "sigmoid", "hardsigmoid",
    "tanh", "hardswish", "clip", "softplus", "exp", "log", "sqrt", "rsqrt", "reciprocal", "neg",
    "abs", "erf", "floor", "ceil", "round", "sign", "not", "identity", "cast", "quantize",
    "dequantize", "sin", "cos", "pow", "prelu",
})

#: Vector ops per element of a softmax: a max reduction, a subtraction, an exponential, a sum
#: reduction and a division (the numerically safe softmax every framework computes).
SOFTMAX_OPS_PER_ELEMENT = 5

_POOL_KINDS = ("max", "avg")
_NORM_KINDS = ("batch", "layer", "instance", "group", "lrn", "rms")


def _prod(values: Sequence[int]) -> int:
    return math.prod(values)


def _pair(value: int | Sequence[int], what: str, layer: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    values = tuple(value)
    if len(values) == 1:
        return values[0], values[0]
    if len(values) != 2:
        raise WorkloadError(f"Layer {layer!r}: {what} must be an integer or a pair, not {value!r}")
    return values[0], values[1]


def _padding4(value: int | Sequence[int], layer: str) -> tuple[int, int, int, int]:
    """Padding as ``(top, left, bottom, right)`` from an int, ``(h, w)`` or four values."""
    if isinstance(value, int) and not isinstance(value, bool):
        values: tuple[int, ...] = (value,) * 4
    else:
        values = tuple(value)
        if len(values) == 2:
            values = (values[0], values[1], values[0], values[1])
    if len(values) != 4 or any(not isinstance(v, int) or v < 0 for v in values):
        raise WorkloadError(
            f"Layer {layer!r}: padding must be a non-negative int, (h, w) or (top, left, bottom, right),"
            f" not {value!r}"
        )
    return values  # type: ignore[return-value]


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                     dilation: int = 1) -> int:
    """Output length of a convolution along one axis (floor division, as every framework does)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                     ceil_mode: bool = False, dilation: int = 1) -> int:
    """Output length of a pooling window along one axis, PyTorch/ONNX rules for ``ceil_mode``.

    With ``ceil_mode`` the last window may start past the input, but not inside the end padding only.
    """
    span = size + pad_before + pad_after - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_before:
        out -= 1
    return out


def broadcast_shapes(*shapes: Sequence[int], layer: str = "?") -> tuple[int, ...]:
    """NumPy broadcasting of ``shapes``; raises :class:`WorkloadError` naming ``layer``."""
    rank = max((len(s) for s in shapes), default=0)
    result: list[int] = []
    for axis in range(rank):
        dims = {s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise WorkloadError(
                f"Layer {layer!r}: shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast"
                f" (axis {axis - rank} has sizes {sorted(dims)})"
            )
        result.append(dims.pop() if dims else 1)
    return tuple(result)


class GraphBuilder:
    """Accumulates tensors and layers, then :meth:`build` returns the checked :class:`Graph`.

    ``dtype`` is the element type of every tensor the builder creates unless a method is given
    another one.
    """

    def __init__(self, name: str, dtype: str = "int8") -> None:
        if dtype not in DTYPE_BYTES:
            raise WorkloadError(f"Graph {name!r}: dtype must be one of {', '.join(DTYPE_BYTES)}, not {dtype!r}")
        self.name = name
        self.dtype = dtype
        self._tensors: dict[str, Tensor] = {}
        self._layers: list[Layer] = []
        self._layer_names: set[str] = set()
        self._counts: Counter[str] = Counter()

    # -- queries -----------------------------------------------------------------------------

    def shape(self, tensor: str) -> tuple[int, ...]:
        """The shape of a tensor already in the graph."""
        return self.tensor(tensor).shape

    def tensor(self, name: str) -> Tensor:
        try:
            return self._tensors[name]
        except KeyError:
            raise WorkloadError(f"Graph {self.name!r}: tensor {name!r} is not defined") from None

    def has_tensor(self, name: str) -> bool:
        return name in self._tensors

    def is_constant(self, name: str) -> bool:
        return self.tensor(name).kind is TensorKind.CONSTANT

    # -- graph sources -----------------------------------------------------------------------

    def input(self, name: str, shape: Sequence[int], *, dtype: str | None = None) -> str:
        """Declare a graph input (an activation fed from outside)."""
        return self._add_tensor(name, shape, TensorKind.INPUT, dtype)

    def constant(self, name: str, shape: Sequence[int], *, dtype: str | None = None) -> str:
        """Declare a constant tensor (weight, bias, scale, ...)."""
        return self._add_tensor(name, shape, TensorKind.CONSTANT, dtype)

    # -- the general layer -------------------------------------------------------------------

    def layer(
        self,
        op: OpKind,
        inputs: Sequence[str],
        output_shapes: Sequence[Sequence[int]],
        *,
        name: str | None = None,
        outs: Sequence[str] | None = None,
        gemm: GemmShape | None = None,
        vector_ops: int = 0,
        attrs: Mapping[str, Any] | None = None,
        source_op: str = "",
        dtype: str | None = None,
    ) -> tuple[str, ...]:
        """Add a layer whose output shapes and work are already known (for importers).

        Returns the output tensor names: ``outs`` if given, else ``<name>`` (one output) or
        ``<name>:<i>``.
        """
        layer_name = self._layer_name(name, op.value)
        for t in inputs:
            self.tensor(t)
        if outs is None:
            outs = [layer_name] if len(output_shapes) == 1 else [f"{layer_name}:{i}" for i in range(len(output_shapes))]
        if len(outs) != len(output_shapes):
            raise WorkloadError(
                f"Layer {layer_name!r}: {len(outs)} output names given for {len(output_shapes)} output shapes"
            )
        for out, shape in zip(outs, output_shapes, strict=True):
            self._add_tensor(out, shape, TensorKind.ACTIVATION, dtype, layer=layer_name)
        self._layers.append(Layer(
            name=layer_name, op=op, inputs=tuple(inputs), outputs=tuple(outs), attrs=dict(attrs or {}),
            gemm=gemm, vector_ops=vector_ops, source_op=source_op,
        ))
        self._layer_names.add(layer_name)
        return tuple(outs)

    # -- array layers ------------------------------------------------------------------------

    def conv(
        self,
        x: str,
        out_channels: int,
        kernel: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool | str = True,
        name: str | None = None,
        *,
        weight: str | None = None,
        out: str | None = None,
        source_op: str = "Conv",
    ) -> str:
        """2-D convolution on NCHW. ``weight``/``bias`` may name existing constants.

        ``padding`` is an int, ``(h, w)`` or ``(top, left, bottom, right)``.
        """
        lname = self._layer_name(name, "conv")
        shape = self.shape(x)
        if len(shape) != 4:
            raise WorkloadError(f"Layer {lname!r}: conv input must be NCHW (4-D), not shape {shape}")
        n, c, h, w = shape
        kh, kw = _pair(kernel, "kernel", lname)
        sh, sw = _pair(stride, "stride", lname)
        dh, dw = _pair(dilation, "dilation", lname)
        pt, pl, pb, pr = _padding4(padding, lname)
        if min(kh, kw, sh, sw, dh, dw, groups, out_channels) < 1:
            raise WorkloadError(
                f"Layer {lname!r}: kernel, stride, dilation, groups and out_channels must be positive"
            )
        if c % groups or out_channels % groups:
            raise WorkloadError(
                f"Layer {lname!r}: groups ({groups}) must divide input channels ({c}) and output"
                f" channels ({out_channels})"
            )
        oh = conv_output_size(h, kh, sh, pt, pb, dh)
        ow = conv_output_size(w, kw, sw, pl, pr, dw)
        if oh < 1 or ow < 1:
            raise WorkloadError(
                f"Layer {lname!r}: kernel {kh}x{kw} does not fit the padded input {h}x{w}"
                f" (padding {pt, pl, pb, pr})"
            )
        wshape = (out_channels, c // groups, kh, kw)
        wname = self._weight(lname, weight, wshape, "weight")
        consts = [wname]
        bname = self._bias(lname, bias, (out_channels,))
        if bname:
            consts.append(bname)
        gemm = GemmShape(m=n * oh * ow, k=(c // groups) * kh * kw, n=out_channels // groups, batch=groups)
        attrs = {
            "kernel": (kh, kw), "stride": (sh, sw), "padding": (pt, pl, pb, pr), "dilation": (dh, dw),
            "groups": groups, "in_channels": c, "out_channels": out_channels,
            "depthwise": groups == c and groups > 1,
        }
        return self.layer(OpKind.CONV, [x, *consts], [(n, out_channels, oh, ow)], name=lname,
                          outs=self._outs(out), gemm=gemm, attrs=attrs, source_op=source_op)[0]

    def linear(
        self,
        x: str,
        out_features: int,
        bias: bool | str = True,
        name: str | None = None,
        *,
        weight: str | None = None,
        out: str | None = None,
        source_op: str = "Gemm",
    ) -> str:
        """Fully connected layer on the last dimension; leading dimensions fold into ``m``."""
        lname = self._layer_name(name, "linear")
        shape = self.shape(x)
        if not shape:
            raise WorkloadError(f"Layer {lname!r}: linear input must have at least one dimension")
        k = shape[-1]
        if weight is not None:
            wshape = self.shape(weight)
            if len(wshape) != 2 or sorted(wshape) != sorted((out_features, k)):
                raise WorkloadError(
                    f"Layer {lname!r}: weight {weight!r} must be ({out_features}, {k}) or"
                    f" ({k}, {out_features}), not {wshape}"
                )
            wname = weight
        else:
            wname = self._weight(lname, None, (out_features, k), "weight")
        consts = [wname]
        bname = self._bias(lname, bias, (out_features,))
        if bname:
            consts.append(bname)
        m = _prod(shape[:-1])
        gemm = GemmShape(m=m, k=k, n=out_features)
        attrs = {"in_features": k, "out_features": out_features}
        return self.layer(OpKind.GEMM, [x, *consts], [(*shape[:-1], out_features)], name=lname,
                          outs=self._outs(out), gemm=gemm, attrs=attrs, source_op=source_op)[0]

    def matmul(self, a: str, b: str, name: str | None = None, *, out: str | None = None,
               source_op: str = "MatMul") -> str:
        """Batched ``a @ b`` with NumPy semantics (1-D operands, broadcast leading dimensions)."""
        lname = self._layer_name(name, "matmul")
        sa, sb = self.shape(a), self.shape(b)
        if not sa or not sb:
            raise WorkloadError(f"Layer {lname!r}: matmul operands must have at least one dimension")
        ma = (1, *sa) if len(sa) == 1 else sa
        mb = (*sb, 1) if len(sb) == 1 else sb
        if ma[-1] != mb[-2]:
            raise WorkloadError(
                f"Layer {lname!r}: inner dimensions must match, but {a!r} is {sa} and {b!r} is {sb}"
            )
        lead = broadcast_shapes(ma[:-2], mb[:-2], layer=lname)
        m, k, n = ma[-2], ma[-1], mb[-1]
        out_shape = [*lead]
        if len(sa) > 1:
            out_shape.append(m)
        if len(sb) > 1:
            out_shape.append(n)
        gemm = GemmShape(m=m, k=k, n=n, batch=_prod(lead))
        return self.layer(OpKind.MATMUL, [a, b], [tuple(out_shape)], name=lname, outs=self._outs(out),
                          gemm=gemm, source_op=source_op)[0]

    # -- vector layers -----------------------------------------------------------------------

    def pool(
        self,
        x: str,
        kind: str,
        kernel: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        ceil_mode: bool = False,
        name: str | None = None,
        *,
        dilation: int | Sequence[int] = 1,
        out: str | None = None,
        source_op: str = "",
    ) -> str:
        """Max or average pooling on NCHW (``stride`` defaults to the kernel)."""
        lname = self._layer_name(name, f"{kind}pool")
        if kind not in _POOL_KINDS:
            raise WorkloadError(f"Layer {lname!r}: pool kind must be one of {_POOL_KINDS}, not {kind!r}")
        shape = self.shape(x)
        if len(shape) != 4:
            raise WorkloadError(f"Layer {lname!r}: pool input must be NCHW (4-D), not shape {shape}")
        n, c, h, w = shape
        kh, kw = _pair(kernel, "kernel", lname)
        sh, sw = _pair(kernel if stride is None else stride, "stride", lname)
        dh, dw = _pair(dilation, "dilation", lname)
        pt, pl, pb, pr = _padding4(padding, lname)
        oh = pool_output_size(h, kh, sh, pt, pb, ceil_mode, dh)
        ow = pool_output_size(w, kw, sw, pl, pr, ceil_mode, dw)
        if oh < 1 or ow < 1:
            raise WorkloadError(f"Layer {lname!r}: pool window {kh}x{kw} does not fit the input {h}x{w}")
        out_shape = (n, c, oh, ow)
        attrs = {"kind": kind, "kernel": (kh, kw), "stride": (sh, sw), "padding": (pt, pl, pb, pr),
                 "ceil_mode": bool(ceil_mode)}
        return self.layer(OpKind.POOL, [x], [out_shape], name=lname, outs=self._outs(out),
                          vector_ops=_prod(out_shape) * kh * kw, attrs=attrs,
                          source_op=source_op or ("MaxPool" if kind == "max" else "AveragePool"))[0]

    def global_pool(self, x: str, kind: str = "avg", name: str | None = None, *, out: str | None = None,
                    source_op: str = "") -> str:
        """Pool each channel of an ``N x C x ...`` tensor to one value (output ``N x C x 1 x 1``)."""
        lname = self._layer_name(name, f"global{kind}pool")
        if kind not in _POOL_KINDS:
            raise WorkloadError(f"Layer {lname!r}: pool kind must be one of {_POOL_KINDS}, not {kind!r}")
        shape = self.shape(x)
        if len(shape) < 3:
            raise WorkloadError(f"Layer {lname!r}: global pool input must be N x C x spatial, not {shape}")
        out_shape = (*shape[:2], *(1 for _ in shape[2:]))
        return self.layer(OpKind.POOL, [x], [out_shape], name=lname, outs=self._outs(out),
                          vector_ops=_prod(shape), attrs={"kind": kind, "global": True},
                          source_op=source_op or ("GlobalMaxPool" if kind == "max" else "GlobalAveragePool"))[0]

    def add(self, a: str, b: str, name: str | None = None, *, out: str | None = None,
            source_op: str = "Add") -> str:
        """Element-wise sum with broadcasting."""
        return self.elementwise("add", [a, b], name, out=out, source_op=source_op)

    def mul(self, a: str, b: str, name: str | None = None, *, out: str | None = None,
            source_op: str = "Mul") -> str:
        """Element-wise product with broadcasting."""
        return self.elementwise("mul", [a, b], name, out=out, source_op=source_op)

    def elementwise(self, fn: str, xs: Sequence[str], name: str | None = None, *, out: str | None = None,
                    source_op: str = "") -> str:
        """Any n-ary element-wise op (``add``, ``sub``, ``mul``, ``div``, ``max``, ...), broadcasting."""
        lname = self._layer_name(name, fn)
        if not xs:
            raise WorkloadError(f"Layer {lname!r}: an element-wise op needs at least one input")
        out_shape = broadcast_shapes(*(self.shape(t) for t in xs), layer=lname)
        ordered = sorted(xs, key=self.is_constant)  # activations first, then constants
        ops = _prod(out_shape) * max(1, len(xs) - 1)
        return self.layer(OpKind.ELEMENTWISE, ordered, [out_shape], name=lname, outs=self._outs(out),
                          vector_ops=ops, attrs={"fn": fn}, source_op=source_op or fn.capitalize())[0]

    def activation(self, x: str, fn: str, name: str | None = None, *, out: str | None = None,
                   params: Sequence[str] = (), attrs: Mapping[str, Any] | None = None,
                   source_op: str = "") -> str:
        """Element-wise unary function (one of :data:`ACTIVATIONS`). ``params`` are extra constants."""
        lname = self._layer_name(name, fn)
        if fn not in ACTIVATIONS:
            raise WorkloadError(
                f"Layer {lname!r}: activation must be one of {', '.join(sorted(ACTIVATIONS))}, not {fn!r}"
            )
        shape = self.shape(x)
        return self.layer(OpKind.ACTIVATION, [x, *params], [shape], name=lname, outs=self._outs(out),
                          vector_ops=_prod(shape), attrs={"fn": fn, **(attrs or {})},
                          source_op=source_op or fn.capitalize())[0]

    def softmax(self, x: str, axis: int = -1, name: str | None = None, *, out: str | None = None,
                source_op: str = "Softmax") -> str:
        """Softmax along ``axis``: :data:`SOFTMAX_OPS_PER_ELEMENT` vector ops per element."""
        lname = self._layer_name(name, "softmax")
        shape = self.shape(x)
        axis = self._axis(axis, len(shape), lname)
        return self.layer(OpKind.SOFTMAX, [x], [shape], name=lname, outs=self._outs(out),
                          vector_ops=_prod(shape) * SOFTMAX_OPS_PER_ELEMENT, attrs={"axis": axis},
                          source_op=source_op)[0]

    def norm(self, x: str, kind: str = "batch", name: str | None = None, *, params: Sequence[str] | None = None,
             out: str | None = None, source_op: str = "") -> str:
        """Normalisation: ``batch`` (per channel, axis 1) or ``layer`` (over the last axis), ...

        Without ``params`` the builder creates a scale and a shift constant (for batch norm the
        running mean and variance are taken as folded into them, as inference does).
        """
        lname = self._layer_name(name, f"{kind}norm")
        if kind not in _NORM_KINDS:
            raise WorkloadError(f"Layer {lname!r}: norm kind must be one of {_NORM_KINDS}, not {kind!r}")
        shape = self.shape(x)
        if kind == "batch" and len(shape) < 2:
            raise WorkloadError(f"Layer {lname!r}: batch norm input must be N x C x ..., not {shape}")
        if params is None:
            if kind in ("batch", "instance", "group"):
                pshape: tuple[int, ...] = (shape[1],)
            elif kind == "lrn":
                pshape = ()
            else:
                pshape = (shape[-1],)
            params = [self.constant(f"{lname}.{p}", pshape) for p in ("weight", "bias")] if pshape else []
        for p in params:
            if not self.is_constant(p):
                raise WorkloadError(f"Layer {lname!r}: norm parameter {p!r} must be a constant tensor")
        if kind == "batch":
            for p in params:
                if _prod(self.shape(p)) != shape[1]:
                    raise WorkloadError(
                        f"Layer {lname!r}: batch norm parameter {p!r} must have {shape[1]} channels,"
                        f" not shape {self.shape(p)}"
                    )
        return self.layer(OpKind.NORM, [x, *params], [shape], name=lname, outs=self._outs(out),
                          vector_ops=_prod(shape), attrs={"kind": kind},
                          source_op=source_op or f"{kind.capitalize()}Normalization")[0]

    # -- data movement -----------------------------------------------------------------------

    def concat(self, xs: Sequence[str], axis: int = 1, name: str | None = None, *, out: str | None = None,
               source_op: str = "Concat") -> str:
        """Concatenate along ``axis``; every other dimension must agree."""
        lname = self._layer_name(name, "concat")
        shapes = [self.shape(t) for t in xs]
        if not shapes:
            raise WorkloadError(f"Layer {lname!r}: concat needs at least one input")
        rank = len(shapes[0])
        axis = self._axis(axis, rank, lname)
        for t, s in zip(xs, shapes, strict=True):
            if len(s) != rank or any(s[i] != shapes[0][i] for i in range(rank) if i != axis):
                raise WorkloadError(
                    f"Layer {lname!r}: input {t!r} has shape {s}, expected {shapes[0]} except on axis {axis}"
                )
        out_shape = list(shapes[0])
        out_shape[axis] = sum(s[axis] for s in shapes)
        return self.layer(OpKind.CONCAT, list(xs), [tuple(out_shape)], name=lname, outs=self._outs(out),
                          attrs={"axis": axis}, source_op=source_op)[0]

    def reshape(self, x: str, shape: Sequence[int], name: str | None = None, *, out: str | None = None,
                source_op: str = "Reshape") -> str:
        """Reshape; one dimension may be -1 (inferred)."""
        lname = self._layer_name(name, "reshape")
        src = self.shape(x)
        total = _prod(src)
        target = list(shape)
        if target.count(-1) > 1 or any(d < -1 for d in target):
            raise WorkloadError(f"Layer {lname!r}: reshape target {tuple(shape)} may have at most one -1")
        if -1 in target:
            known = _prod([d for d in target if d != -1])
            if known == 0 or total % known:
                raise WorkloadError(f"Layer {lname!r}: cannot reshape {src} into {tuple(shape)}")
            target[target.index(-1)] = total // known
        if _prod(target) != total:
            raise WorkloadError(
                f"Layer {lname!r}: reshape must keep {total} elements, but {tuple(shape)} holds {_prod(target)}"
            )
        return self.layer(OpKind.RESHAPE, [x], [tuple(target)], name=lname, outs=self._outs(out),
                          attrs={"fn": "reshape"}, source_op=source_op)[0]

    def flatten(self, x: str, axis: int = 1, name: str | None = None, *, out: str | None = None,
                source_op: str = "Flatten") -> str:
        """Flatten to 2-D: dimensions before ``axis`` and from ``axis`` on (ONNX semantics: ``axis`` is in
        ``[-rank, rank]``, a negative one counts from the back, so ``-1`` keeps the last dimension apart)."""
        lname = self._layer_name(name, "flatten")
        src = self.shape(x)
        if not -len(src) <= axis <= len(src):
            raise WorkloadError(f"Layer {lname!r}: flatten axis must be in [{-len(src)}, {len(src)}] for rank "
                                f"{len(src)}, not {axis}")
        axis = axis + len(src) if axis < 0 else axis
        target = (_prod(src[:axis]), _prod(src[axis:]))
        return self.layer(OpKind.RESHAPE, [x], [target], name=lname, outs=self._outs(out),
                          attrs={"fn": "flatten", "axis": axis}, source_op=source_op)[0]

    def transpose(self, x: str, perm: Sequence[int] | None = None, name: str | None = None, *,
                  out: str | None = None, source_op: str = "Transpose") -> str:
        """Permute dimensions (default: reverse them)."""
        lname = self._layer_name(name, "transpose")
        src = self.shape(x)
        perm = tuple(reversed(range(len(src)))) if perm is None else tuple(perm)
        if sorted(perm) != list(range(len(src))):
            raise WorkloadError(f"Layer {lname!r}: perm {perm} is not a permutation of {len(src)} axes")
        target = tuple(src[p] for p in perm)
        return self.layer(OpKind.RESHAPE, [x], [target], name=lname, outs=self._outs(out),
                          attrs={"fn": "transpose", "perm": perm}, source_op=source_op)[0]

    def passthrough(self, xs: Sequence[str], op_name: str, name: str | None = None, *,
                    shape: Sequence[int] | None = None, out: str | None = None) -> str:
        """An op the IR does not model: no work; the output has ``shape`` (default: the first input's)."""
        lname = self._layer_name(name, op_name.lower() or "passthrough")
        if shape is None:
            if not xs:
                raise WorkloadError(f"Layer {lname!r}: a pass-through op with no input needs a shape")
            shape = self.shape(xs[0])
        return self.layer(OpKind.PASSTHROUGH, list(xs), [tuple(shape)], name=lname, outs=self._outs(out),
                          attrs={"op": op_name}, source_op=op_name)[0]

    # -- annotations (quantized imports) ------------------------------------------------------

    def annotate(self, name: str, *, quant: QuantParams | None = None, value: Any = None,
                 dtype: str | None = None) -> None:
        """Attach quantization parameters, a constant's value or a new dtype to tensor ``name``."""
        t = self.tensor(name)
        changes: dict[str, Any] = {}
        if quant is not None:
            changes["quant"] = quant
        if value is not None:
            changes["value"] = value
        if dtype is not None:
            changes["dtype"] = dtype
        self._tensors[name] = replace(t, **changes)

    def layer_attrs(self, name: str) -> Mapping[str, Any]:
        """The attributes of layer ``name``, added earlier."""
        for i in range(len(self._layers) - 1, -1, -1):
            if self._layers[i].name == name:
                return self._layers[i].attrs
        raise WorkloadError(f"Graph {self.name!r}: no layer {name!r}")

    def annotate_layer(self, name: str, **attrs: Any) -> None:
        """Add ``attrs`` to the attributes of layer ``name``."""
        for i in range(len(self._layers) - 1, -1, -1):  # usually the layer just added
            if self._layers[i].name == name:
                self._layers[i] = replace(self._layers[i], attrs={**self._layers[i].attrs, **attrs})
                return
        raise WorkloadError(f"Graph {self.name!r}: no layer {name!r} to annotate")

    # -- result ------------------------------------------------------------------------------

    def build(self) -> Graph:
        """The checked graph of everything added so far."""
        return Graph(self.name, dict(self._tensors), tuple(self._layers))

    # -- helpers -----------------------------------------------------------------------------

    def _add_tensor(self, name: str, shape: Sequence[int], kind: TensorKind, dtype: str | None,
                    layer: str | None = None) -> str:
        if name in self._tensors:
            where = f"Layer {layer!r}" if layer else f"Graph {self.name!r}"
            raise WorkloadError(f"{where}: tensor name {name!r} is already used")
        self._tensors[name] = Tensor(name, tuple(int(d) for d in shape), dtype or self.dtype, kind)
        return name

    def _layer_name(self, name: str | None, prefix: str) -> str:
        if name is None:
            while True:
                self._counts[prefix] += 1
                name = f"{prefix}{self._counts[prefix]}"
                if name not in self._layer_names and name not in self._tensors:
                    break
        elif name in self._layer_names:
            raise WorkloadError(f"Graph {self.name!r}: layer name {name!r} is used twice")
        return name

    @staticmethod
    def _outs(out: str | None) -> list[str] | None:
        return None if out is None else [out]

    @staticmethod
    def _axis(axis: int, rank: int, layer: str) -> int:
        if not -rank <= axis < rank:
            raise WorkloadError(f"Layer {layer!r}: axis {axis} is out of range for rank {rank}")
        return axis % rank

    def _weight(self, layer: str, weight: str | None, shape: tuple[int, ...], what: str) -> str:
        if weight is None:
            return self.constant(f"{layer}.{what}", shape)
        if self.shape(weight) != shape:
            raise WorkloadError(f"Layer {layer!r}: {what} {weight!r} must have shape {shape}, not {self.shape(weight)}")
        return weight

    def _bias(self, layer: str, bias: bool | str, shape: tuple[int, ...]) -> str | None:
        if bias is False:
            return None
        if bias is True:
            return self.constant(f"{layer}.bias", shape)
        if _prod(self.shape(bias)) != _prod(shape):
            raise WorkloadError(f"Layer {layer!r}: bias {bias!r} must have {shape[0]} elements, not shape "
                                f"{self.shape(bias)}")
        return bias
