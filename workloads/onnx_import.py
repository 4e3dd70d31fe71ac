"""Import an ONNX model as a :class:`~workloads.graph.Graph` (structure and shapes; weights not needed).

Contract of :func:`load_onnx`:

* The file is read with ``onnx.load(path, load_external_data=False)``: weight data may be absent
  (initializers may point at external files that do not exist); only the shapes of initializers,
  ``Constant`` and ``ConstantOfShape`` outputs are used. ``onnx.shape_inference`` (with data
  propagation) fills in shapes the builder cannot compute itself.
* Nodes whose inputs are all constants (``Constant``, ``ConstantOfShape``, casts or reshapes of
  weights, shape arithmetic on ``Shape`` of a known tensor, ...) are folded into constant tensors, not
  layers. Small constant values are evaluated with ``onnx.reference`` so that ``Reshape`` targets,
  ``Clip`` bounds, etc. are known.
* Compute ops go through :class:`~workloads.builder.GraphBuilder`, so output shapes, GEMM shapes and
  vector-op counts follow the same rules as the model zoo: ``Conv`` (2-D; other ranks through the same
  formula on ONNX's shapes), ``Gemm`` and ``MatMul`` with a constant 2-D right operand become GEMM
  (linear) layers, ``MatMul`` of two activations a MATMUL layer; pooling, element-wise, activation,
  softmax, normalisation (also onnxruntime's ``SimplifiedLayerNormalization`` and ``com.microsoft``
  ``Skip(Simplified)LayerNormalization``: its residual add, then the norm), concat and reshape-like
  ops map to their kinds (see ``_HANDLERS``).
  ``LSTM``, ``GRU``, ``RNN``, ``ConvTranspose``, ``Attention`` and ``com.microsoft``'s ``Attention``,
  ``MultiHeadAttention`` and ``GroupQueryAttention`` become several layers each
  (:mod:`workloads.onnx_lowering`: an input projection and a recurrent GEMM per step with the
  cell's vector layers; a GEMM and its ``col2im``; each head's two products and softmax, after the
  QKV projection for the fused one);
  a two-operand ``Einsum`` the batched product its
  indices say; ``Resize`` / ``Upsample`` a vector layer (1, 2 or 4 taps per resized axis: nearest,
  linear, cubic). ``Split`` and ``Slice`` are views of their input with the shapes ONNX defines from
  their constant operands (ONNX's inference where those are not constant).
* Ops the IR does not model become PASSTHROUGH layers with ONNX's inferred output shapes. Inference
  no-ops (``Dropout``, ``Identity``, ``Cast``, ...) do so silently; any other op also emits a
  ``warnings.warn`` (:class:`UnsupportedOpWarning`) naming it. An unknown op never stops an import.
* ``batch`` (optional) replaces the first dimension of every graph input before shape inference;
  a ``Reshape`` whose constant target starts with the file's own batch size is rescaled to match
  (when the target no longer fits its input, or has a ``-1`` and its input starts with the new batch).
  ``dims`` (optional) gives symbolic input dimensions their sizes by name (``{"seq": 128}``); a name
  no input has is an error naming those it has. A symbolic dimension left without a size is 1, with
  a warning.
* ``dtype`` (default ``"int8"``, the accelerator's quantised type) is given to every tensor;
  ``dtype=None`` keeps the ONNX element types instead.
* A missing, truncated or non-ONNX file, or a graph whose nodes use undefined tensors, raises
  :class:`~accel.errors.WorkloadError` naming the file and what was wrong.
* Calls of the model's local functions (``ModelProto.functions``) are inlined first: their bodies'
  nodes are imported as any other.
* ``path`` may also be an in-memory ``onnx.ModelProto``.

Quantized models (any ``QuantizeLinear``, ``DequantizeLinear`` or ``QLinear*``/``*Integer`` node):

* The QDQ form is first rewritten into the operator form by :func:`workloads.onnx_qdq.fold_qdq`
  (as onnxruntime fuses it), so both forms import alike.
* ``QLinearConv``, ``QLinearMatMul``, ``com.microsoft.QGemm``, ``ConvInteger`` and ``MatMulInteger``
  become the same conv / GEMM / matmul layers (same shapes and MACs) as their float ops (dynamic
  quantization: ``DynamicQuantizeLinear`` is a float vector layer, and the codes it makes have no
  static parameters);
  ``com.microsoft`` ``QLinearAdd``/``QLinearMul`` element-wise layers, ``QLinearGlobalAveragePool``/
  ``QLinearAveragePool`` pooling layers, ``QLinearSigmoid`` a sigmoid and ``QLinearConcat`` a concat;
  ``com.microsoft.MatMulNBits`` (block-quantized weights) a GEMM layer whose constants are its packed
  weight and scales. Scale and zero-point inputs are not layer inputs: they become the
  :class:`~workloads.graph.QuantParams` of the tensors they describe (per channel along axis 0 of
  conv weights, along the output-feature axis of GEMM weights), and every constant's data is the
  tensor's ``value``. Quantized tensors keep their integer dtypes (``uint8``, ``int8``, ``int32``
  biases) whatever ``dtype`` says. A tensor described twice with different parameters is an error.
* ``MaxPool``, ``Relu``, ``Flatten``, ``Reshape``, ``Transpose``, ``Squeeze``, ``Unsqueeze`` and
  ``Identity`` on a quantized tensor keep its parameters.
* Every layer gets ``attrs["numerics"]``: ``"integer"``, ``"quantize"`` (``QuantizeLinear``),
  ``"dequantize"`` (``DequantizeLinear``) or ``"float"`` (anything else, e.g. ``LayerNormalization``,
  ``Gelu``, ``QLinearSoftmax``); :meth:`Graph.float_layers` lists the float ones, which integer-only
  hardware cannot run.
* GEMM layers say how their weight is stored: ``attrs["weight_layout"]`` is ``"nk"`` (``Gemm`` with
  ``transB``) or ``"kn"``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.inliner
from onnx import helper, numpy_helper

from accel.errors import WorkloadError
from workloads import onnx_lowering
from workloads.builder import GraphBuilder
from workloads.graph import GemmShape, Graph, OpKind, QuantParams
from workloads.onnx_qdq import fold_qdq

__all__ = ["load_onnx", "UnsupportedOpWarning"]

_log = logging.getLogger(__name__)

#: Constants at most this large are evaluated (for reshape targets, clip bounds, ...).
_MAX_EVAL_ELEMENTS = 4096

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16", onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.UINT16: "uint16", onnx.TensorProto.INT32: "int32", onnx.TensorProto.UINT32: "uint32",
    onnx.TensorProto.INT64: "int64", onnx.TensorProto.BOOL: "bool", onnx.TensorProto.INT4: "int4",
    onnx.TensorProto.UINT4: "uint4",
}


class UnsupportedOpWarning(UserWarning):
    """An ONNX op the IR does not model was imported as a PASSTHROUGH layer."""


@dataclass
class _Context:
    """Import state: the builder plus what is known about every ONNX value."""

    path: Path
    builder: GraphBuilder
    inferred: dict[str, tuple[int | None, ...]]
    onnx_dtypes: dict[str, str]
    keep_dtypes: bool
    file_batch: int | None
    batch: int | None
    opset: int
    values: dict[str, np.ndarray] = field(default_factory=dict)  # known values of small constants
    data: dict[str, np.ndarray] = field(default_factory=dict)  # every constant whose data the file holds
    layer_names: set[str] = field(default_factory=set)
    dropped: dict[str, str] = field(default_factory=dict)  # node outputs not modelled -> "node 'n' (Op)"
    quantized: bool = False  # the model has quantization ops: label every layer's numerics

    def dtype(self, name: str) -> str | None:
        return self.onnx_dtypes.get(name) if self.keep_dtypes else None

    def known_shape(self, name: str) -> tuple[int, ...] | None:
        shape = self.inferred.get(name)
        if shape is None or any(d is None for d in shape):
            return None
        return tuple(int(d) for d in shape)  # type: ignore[arg-type]


# -- entry point ----------------------------------------------------------------------------------

def load_onnx(path: str | Path | onnx.ModelProto, *, batch: int | None = None,
              dtype: str | None = "int8", dims: Mapping[str, int] | None = None) -> Graph:
    """Read the ONNX model at ``path`` as a :class:`Graph` (see the module docstring for the rules)."""
    if isinstance(path, onnx.ModelProto):
        model = onnx.ModelProto.FromString(path.SerializeToString())
        path = Path(f"<model {model.graph.name or 'unnamed'}>")
        _check_model(model, f"ONNX model {str(path)!r}")
    else:
        path = Path(path)
        model = _read(path)
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise WorkloadError(f"ONNX file {str(path)!r}: batch must be a positive integer, not {batch!r}")
    if model.functions:  # calls of the model's own functions (torch's dynamo exporter): their bodies' layers
        try:
            model = onnx.inliner.inline_local_functions(model)
        except Exception as exc:
            raise WorkloadError(f"ONNX file {str(path)!r}: its local functions cannot be inlined: {exc}") from None
    quantized = any(n.op_type in _QUANT_OPS for n in model.graph.node)
    if quantized:
        model = fold_qdq(model)
    graph = model.graph
    initializer_names = {t.name for t in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in initializer_names]
    file_batch = _first_dim(real_inputs)
    sizes = _symbolic_sizes(path, real_inputs, dims or {})
    if _size_inputs(path, real_inputs, batch, sizes):  # inference then sees the sizes the builder uses
        del graph.value_info[:]
        for vi in graph.output:
            vi.type.tensor_type.ClearField("shape")
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # inference is best-effort: shapes the builder computes still work
        _log.warning("ONNX file %s: shape inference failed (%s); using the shapes in the file", path, exc)
    graph = model.graph

    inferred: dict[str, tuple[int | None, ...]] = {}
    onnx_dtypes: dict[str, str] = {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        tt = vi.type.tensor_type
        if tt.elem_type:
            onnx_dtypes[vi.name] = _ONNX_DTYPES.get(tt.elem_type, "float32")
        if tt.HasField("shape"):
            inferred[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)

    keep = dtype is None
    main_dtype = "int8" if dtype is None else dtype
    if keep and real_inputs:
        main_dtype = onnx_dtypes.get(real_inputs[0].name, "float32")
    name = graph.name or path.stem
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 21)
    ctx = _Context(path, GraphBuilder(name, main_dtype), inferred, onnx_dtypes, keep, file_batch, batch, opset,
                   quantized=quantized)
    b = ctx.builder

    for init in graph.initializer:
        b.constant(init.name, tuple(init.dims), dtype=_ONNX_DTYPES.get(init.data_type) if keep else None)
        data = _initializer_data(init)
        if data is not None:
            ctx.data[init.name] = data
            b.annotate(init.name, value=data)
            if data.size <= _MAX_EVAL_ELEMENTS:
                ctx.values[init.name] = data
    for vi in real_inputs:
        b.input(vi.name, _input_shape(ctx, vi), dtype=ctx.dtype(vi.name))

    for index, node in enumerate(graph.node):
        _import_node(ctx, node, index)
    result = b.build()
    _log.info("ONNX file %s: %d layers, %d MACs", path, len(result.layers), result.total_macs)
    return result


def _read(path: Path) -> onnx.ModelProto:
    where = f"ONNX file {str(path)!r}"
    if not path.is_file():
        raise WorkloadError(f"{where} does not exist or is not a file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise WorkloadError(f"{where} cannot be parsed as an ONNX model (truncated or corrupt?): {exc}") from None
    _check_model(model, where)
    return model


def _check_model(model: onnx.ModelProto, where: str) -> None:
    if model.ir_version >= 1 and not model.graph.node:
        raise WorkloadError(f"{where} has an empty graph: it must have at least one node, found none")
    if model.ir_version < 1:
        raise WorkloadError(
            f"{where} is not an ONNX model: expected a graph with nodes and an IR version, found "
            f"{len(model.graph.node)} nodes and IR version {model.ir_version}"
        )
    if not model.graph.output:
        raise WorkloadError(f"{where} is truncated or corrupt: its graph declares no outputs")


def _symbolic_sizes(path: Path, inputs: Sequence[onnx.ValueInfoProto], dims: Mapping[str, int]) -> dict[str, int]:
    """``dims`` checked against the symbolic dimensions the model's inputs name."""
    named = sorted({d.dim_param for vi in inputs for d in vi.type.tensor_type.shape.dim if d.dim_param})
    for name, size in dims.items():
        if name not in named:
            raise WorkloadError(f"ONNX file {str(path)!r}: no input has a symbolic dimension {name!r} (its inputs "
                                f"name {', '.join(repr(n) for n in named) or 'none'})")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise WorkloadError(f"ONNX file {str(path)!r}: dimension {name!r} must be a positive integer, "
                                f"not {size!r}")
    return dict(dims)


def _first_dim(inputs: Sequence[onnx.ValueInfoProto]) -> int | None:
    for vi in inputs:
        dims = vi.type.tensor_type.shape.dim
        if len(dims) and dims[0].HasField("dim_value"):
            return dims[0].dim_value
    return None


def _size_inputs(path: Path, inputs: Sequence[onnx.ValueInfoProto], batch: int | None,
                 sizes: Mapping[str, int]) -> bool:
    """Give every input dimension a size in place: ``batch`` on axis 0, a symbolic one its size in ``sizes``,
    else 1 (with a warning); ``True`` if any dimension changed."""
    changed = False
    for vi in inputs:
        for axis, d in enumerate(vi.type.tensor_type.shape.dim):
            if axis == 0 and batch is not None:
                size = batch
            elif d.HasField("dim_value"):
                continue
            elif d.dim_param in sizes:
                size = sizes[d.dim_param]
            elif d.dim_param:
                size = 1
                _log.warning("ONNX file %s: input %r dimension %d (%r) is symbolic; using 1 (give it a size: "
                             "dims={%r: N}, or --dim %s=N)", path, vi.name, axis, d.dim_param, d.dim_param,
                             d.dim_param)
            else:
                size = 1
                _log.warning("ONNX file %s: input %r dimension %d has no size and no name; using 1", path,
                             vi.name, axis)
            if not d.HasField("dim_value") or d.dim_value != size:
                d.Clear()
                d.dim_value = size
                changed = True
    return changed


def _input_shape(ctx: _Context, vi: onnx.ValueInfoProto) -> tuple[int, ...]:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        what = "declares no shape (its rank is unknown)" if vi.type.HasField("tensor_type") else "is not a tensor"
        raise WorkloadError(f"ONNX file {str(ctx.path)!r}: input {vi.name!r} {what}; every graph input must be a "
                            "tensor whose dimensions the file gives (fixed sizes or symbolic names)")
    return tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)  # every one sized by _size_inputs


def _initializer_data(init: onnx.TensorProto) -> np.ndarray | None:
    """The initializer's data, or ``None`` when the file does not hold it (external or malformed)."""
    if init.data_location == onnx.TensorProto.EXTERNAL:
        return None
    try:
        value = numpy_helper.to_array(init)
    except Exception:  # missing or malformed data: shape is all we need
        return None
    return value if tuple(value.shape) == tuple(init.dims) else None


# -- nodes ----------------------------------------------------------------------------------------

def _where(ctx: _Context, node: onnx.NodeProto, name: str) -> str:
    """How an error names a node: ``ONNX file 'PATH': node 'NAME' (OP)``."""
    return f"ONNX file {str(ctx.path)!r}: node {name!r} ({node.op_type})"


def _import_node(ctx: _Context, node: onnx.NodeProto, index: int) -> None:
    b = ctx.builder
    layer_name = _unique_layer_name(ctx, node, index)
    inputs = [t for t in node.input if t]
    for t in inputs:
        if t in ctx.dropped:
            raise WorkloadError(
                _where(ctx, node, layer_name) + f" reads {t!r}, an output of "
                f"{ctx.dropped[t]} that the importer does not model"
            )
        if not b.has_tensor(t):
            raise WorkloadError(
                _where(ctx, node, layer_name) + f" reads tensor {t!r},"
                " which no earlier node, input or initializer defines"
            )
    if node.op_type == "Constant" or (node.domain in ("", "ai.onnx") and all(b.is_constant(t) for t in inputs)
                                      and node.op_type not in ("RandomNormal", "RandomUniform")):
        _fold_constant(ctx, node, layer_name)
        return
    if node.op_type == "Shape" and node.domain in ("", "ai.onnx"):
        # The shape of an activation is known statically: a constant, not a layer.
        shape = np.array(b.shape(node.input[0]), dtype=np.int64)
        attrs = _attrs(node)
        shape = shape[attrs.get("start", 0): attrs.get("end", len(shape))]
        b.constant(node.output[0], shape.shape, dtype="int64" if ctx.keep_dtypes else None)
        ctx.values[node.output[0]] = shape
        return
    if node.domain in ("", "ai.onnx"):
        handler = _HANDLERS.get(node.op_type)
    else:
        handler = _MS_HANDLERS.get(node.op_type) if node.domain == "com.microsoft" else None
    if handler is None:
        _passthrough(ctx, node, layer_name, warn=node.op_type not in _NO_OPS)
        _label(ctx, node, layer_name, "float")
        return
    out = handler(ctx, node, layer_name, _attrs(node))
    _check_shape(ctx, out)
    for extra in node.output:
        if extra and not b.has_tensor(extra):  # e.g. MaxPool's Indices, LayerNormalization's Mean
            ctx.dropped[extra] = f"node {layer_name!r} ({node.op_type})"
    if ctx.quantized and "numerics" not in b.layer_attrs(layer_name):
        _label_by_operands(ctx, node, layer_name)


def _unique_layer_name(ctx: _Context, node: onnx.NodeProto, index: int) -> str:
    base = node.name or f"{node.op_type}_{index}"
    name, n = base, 1
    while name in ctx.layer_names:
        n += 1
        name = f"{base}_{n}"
    ctx.layer_names.add(name)
    return name


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value: Any) -> str:
    """A string attribute's value (ONNX gives them as bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_shape(ctx: _Context, out: str) -> None:
    expected = ctx.known_shape(out)
    got = ctx.builder.shape(out)
    if expected is not None and expected != got:
        # With a new batch size, inference may have kept shapes baked into the file: not a problem.
        log = _log.debug if ctx.batch is not None else _log.warning
        log("ONNX file %s: tensor %r has shape %s by the builder's rules but %s by ONNX inference",
                     ctx.path, out, got, expected)


def _fold_constant(ctx: _Context, node: onnx.NodeProto, layer_name: str) -> None:
    """A node of constants only produces constants: evaluate small ones, else take inferred shapes."""
    b = ctx.builder
    values: list[np.ndarray] | None = None
    if node.op_type == "Constant":
        values = [_constant_attr_value(ctx, node, layer_name)]
    elif node.op_type == "ConstantOfShape" and node.input[0] in ctx.values:
        shape = tuple(int(d) for d in ctx.values[node.input[0]].reshape(-1))
        fill = _attrs(node).get("value")
        fill_value = numpy_helper.to_array(fill).reshape(-1)[0] if fill is not None else np.float32(0)
        if math.prod(shape) <= _MAX_EVAL_ELEMENTS:
            values = [np.full(shape, fill_value)]
        else:
            b.constant(node.output[0], shape, dtype=ctx.dtype(node.output[0]))
            return
    elif all(t in ctx.values or t in ctx.data for t in node.input if t):
        values = _evaluate(node, ctx)
    for i, out in enumerate(node.output):
        if not out:
            continue
        if values is not None and i < len(values) and values[i] is not None:
            value = np.asarray(values[i])
            b.constant(out, value.shape, dtype=ctx.dtype(out))
            _store_constant(ctx, out, value)
            if value.size <= _MAX_EVAL_ELEMENTS:
                ctx.values[out] = value
            continue
        shape = ctx.known_shape(out)
        if shape is None:
            raise WorkloadError(
                f"ONNX file {str(ctx.path)!r}: cannot tell the shape of constant {out!r} computed by node"
                f" {layer_name!r} ({node.op_type})"
            )
        b.constant(out, shape, dtype=ctx.dtype(out))


def _store_constant(ctx: _Context, name: str, value: np.ndarray) -> None:
    """Remember a folded constant's value (kept as the tensor's ``value`` too)."""
    ctx.data[name] = value
    ctx.builder.annotate(name, value=value)


def _constant_attr_value(ctx: _Context, node: onnx.NodeProto, layer_name: str) -> np.ndarray:
    attrs = _attrs(node)
    if "value" in attrs:
        tensor = attrs["value"]
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            return np.zeros(tuple(tensor.dims), dtype=np.float32)
        return numpy_helper.to_array(tensor)
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise WorkloadError(f"ONNX file {str(ctx.path)!r}: Constant node {layer_name!r} must have one of the attributes "
                        f"value, value_float(s) or value_int(s), not {', '.join(sorted(attrs)) or 'none'}")


def _evaluate(node: onnx.NodeProto, ctx: _Context) -> list[np.ndarray] | None:
    """Run one node on known small constants with ``onnx.reference``; ``None`` if that fails."""
    try:
        from onnx.reference import ReferenceEvaluator

        feeds = {t: ctx.values[t] if t in ctx.values else ctx.data[t] for t in node.input if t}
        graph = helper.make_graph(
            [node], "fold",
            [helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
             for t, v in feeds.items()],
            [helper.make_empty_tensor_value_info(o) for o in node.output if o],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ctx.opset)])
        results = ReferenceEvaluator(model).run(None, feeds)
        return [np.asarray(r) for r in results]
    except Exception as exc:
        _log.debug("could not evaluate constant node %s (%s): %s", node.name, node.op_type, exc)
        return None


def _passthrough(ctx: _Context, node: onnx.NodeProto, layer_name: str, *, warn: bool) -> None:
    b = ctx.builder
    inputs = [t for t in node.input if t]
    outs = [o for o in node.output if o]
    shapes = []
    for out in outs:
        shape = None if node.op_type in _ALIAS_OPS else ctx.known_shape(out)
        if shape is None:
            shape = b.shape(inputs[0]) if inputs else ()
        shapes.append(shape)
    if warn:
        message = (f"ONNX file {str(ctx.path)!r}: op {node.op_type!r} (node {layer_name!r}) is not modelled;"
                   " imported as a pass-through layer with no work")
        warnings.warn(message, UnsupportedOpWarning, stacklevel=4)
        _log.warning(message)
    b.layer(OpKind.PASSTHROUGH, _activations_first(b, inputs), shapes, name=layer_name, outs=outs,
            attrs={"op": node.op_type, "domain": node.domain}, source_op=node.op_type,
            dtype=ctx.dtype(outs[0]) if outs else None)


def _activations_first(b: GraphBuilder, names: Sequence[str]) -> list[str]:
    return sorted(names, key=b.is_constant)


# -- handlers: (ctx, node, layer name, attributes) -> first output tensor --------------------------

_Handler = Callable[[_Context, onnx.NodeProto, str, dict[str, Any]], str]


@dataclass(frozen=True)
class _Window:
    """A convolution's or pooling window's checked attributes, one value per spatial axis (pads: begins
    then ends)."""

    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    pads: list[int]


_AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def _window(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any], xs: Sequence[int],
            kernel: Sequence[int] | None) -> _Window:
    """The window of a ``Conv`` / pooling node on input shape ``xs`` (``kernel``: ``kernel_shape`` or the
    weight's spatial shape); raises :class:`WorkloadError` naming the node when an attribute does not fit."""
    where = _where(ctx, node, name)
    if len(xs) < 3:
        raise WorkloadError(f"{where}: input {node.input[0]!r} must be N x C x spatial (3-D or more), not {tuple(xs)}")
    rank = len(xs) - 2
    if "kernel_shape" in attrs:
        kernel = attrs["kernel_shape"]
    if kernel is None:
        raise WorkloadError(f"{where}: attribute kernel_shape is required")
    auto_pad = _text(attrs.get("auto_pad", b"NOTSET")) or "NOTSET"
    if auto_pad not in _AUTO_PADS:
        raise WorkloadError(f"{where}: auto_pad must be one of {', '.join(_AUTO_PADS)}, not {auto_pad!r}")
    values = {"kernel_shape": list(kernel), "strides": list(attrs.get("strides", [1] * rank)),
              "dilations": list(attrs.get("dilations", [1] * rank)), "pads": list(attrs.get("pads", [0] * 2 * rank))}
    for field_name, value in values.items():
        length, least = (2 * rank, 0) if field_name == "pads" else (rank, 1)
        if len(value) != length or any(v < least for v in value):
            raise WorkloadError(f"{where}: {field_name} must be {length} integers of at least {least} (the input "
                                f"{tuple(xs)} has {rank} spatial axes), not {value}")
    kernel, strides, dilations = values["kernel_shape"], values["strides"], values["dilations"]
    if auto_pad == "NOTSET":
        pads = values["pads"]
    elif auto_pad == "VALID":
        pads = [0] * (2 * rank)
    else:
        begins, ends = [], []
        for size, k, s, d in zip(xs[2:], kernel, strides, dilations, strict=True):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else large)
            ends.append(large if auto_pad == "SAME_UPPER" else small)
        pads = begins + ends
    return _Window(kernel, strides, dilations, pads)


def _conv(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    b = ctx.builder
    x, w = node.input[0], node.input[1]
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else False
    xs, ws = b.shape(x), b.shape(w)
    if len(ws) != len(xs):
        raise WorkloadError(_where(ctx, node, name) + f": weight {w!r} must have "
                            f"the input's rank {len(xs)} (out channels, in channels / group, kernel), not shape {ws}")
    rank = len(xs) - 2
    window = _window(ctx, node, name, attrs, xs, ws[2:])
    kernel, strides, dilations, pads = window.kernel, window.strides, window.dilations, window.pads
    group = attrs.get("group", 1)
    out = node.output[0]
    if rank == 2:
        return b.conv(x, ws[0], kernel, strides, (pads[0], pads[1], pads[2], pads[3]), dilations, group,
                      bias, name, weight=w, out=out)
    # 1-D / 3-D convolution: same GEMM view, spatial sizes from the same formula.
    spatial = [
        (size + pads[i] + pads[i + rank] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1
        for i, size in enumerate(xs[2:])
    ]
    if xs[1] % group or ws[0] % group:
        raise WorkloadError(f"Layer {name!r}: group ({group}) must divide input ({xs[1]}) and output"
                            f" ({ws[0]}) channels")
    gemm = GemmShape(m=xs[0] * math.prod(spatial), k=(xs[1] // group) * math.prod(kernel), n=ws[0] // group,
                     batch=group)
    consts = [w] + ([bias] if bias else [])
    return b.layer(OpKind.CONV, [x, *consts], [(xs[0], ws[0], *spatial)], name=name, outs=[out], gemm=gemm,
                   attrs={"kernel": tuple(kernel), "stride": tuple(strides), "groups": group},
                   source_op="Conv")[0]


def _gemm(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    b = ctx.builder
    a, w = node.input[0], node.input[1]
    c = node.input[2] if len(node.input) > 2 and node.input[2] else None
    trans_a, trans_b = attrs.get("transA", 0), attrs.get("transB", 0)
    sa, sw = b.shape(a), b.shape(w)
    if len(sa) != 2 or len(sw) != 2:
        raise WorkloadError(_where(ctx, node, name) + f": A and B must be 2-D "
                            f"matrices, not {a!r} of shape {sa} and {w!r} of shape {sw}")
    m, k = (sa[1], sa[0]) if trans_a else (sa[0], sa[1])
    kb, n = (sw[1], sw[0]) if trans_b else (sw[0], sw[1])
    if k != kb:
        raise WorkloadError(f"Layer {name!r}: Gemm inner dimensions differ: A gives {k}, B gives {kb}")
    bias_ok = c is None or math.prod(b.shape(c)) == n
    if not trans_a and b.is_constant(w) and bias_ok:
        out = b.linear(a, n, c or False, name, weight=w, out=node.output[0], source_op="Gemm")
        b.annotate_layer(name, weight_layout="nk" if trans_b else "kn", alpha=float(attrs.get("alpha", 1.0)),
                         beta=float(attrs.get("beta", 1.0)))
        return out
    op = OpKind.GEMM if b.is_constant(w) else OpKind.MATMUL
    inputs = [a, w] + ([c] if c else [])
    return b.layer(op, inputs, [(m, n)], name=name, outs=[node.output[0]], gemm=GemmShape(m=m, k=k, n=n),
                   attrs={"transA": trans_a, "transB": trans_b}, source_op="Gemm")[0]


def _matmul(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    b = ctx.builder
    a, w = node.input[0], node.input[1]
    if b.is_constant(w) and len(b.shape(w)) == 2 and not b.is_constant(a):
        out = b.linear(a, b.shape(w)[1], False, name, weight=w, out=node.output[0], source_op="MatMul")
        b.annotate_layer(name, weight_layout="kn")
        return out
    return b.matmul(a, w, name, out=node.output[0])


def _lowered(lower: Callable[..., str]) -> _Handler:
    """The handler of an op that :mod:`workloads.onnx_lowering` turns into several layers, each labelled float
    (``lower(builder, node, name, attrs, known_shape, label)``)."""
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        return lower(ctx.builder, node, name, attrs, ctx.known_shape, lambda layer: _label(ctx, node, layer, "float"))
    return handler


_recurrent = _lowered(onnx_lowering.recurrent)
_attention = _lowered(onnx_lowering.attention)
_sdpa = _lowered(onnx_lowering.scaled_dot_product_attention)
_group_query_attention = _lowered(onnx_lowering.group_query_attention)
_conv_transpose = _lowered(onnx_lowering.conv_transpose)


def _multi_head_attention(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    """``com.microsoft.MultiHeadAttention`` with separate 3-D ``(batch, seq, hidden)`` query, key and value:
    ONNX's ``Attention`` with as many key/value heads as query heads; its packed forms are pass-throughs."""
    b = ctx.builder
    qkv = [_opt(node, i) for i in range(3)]
    if not all(qkv) or any(len(b.shape(t)) != 3 for t in qkv):
        _passthrough(ctx, node, name, warn=True)
        return node.output[0]
    heads = int(attrs.get("num_heads", 0))
    return _sdpa(ctx, node, name, {"q_num_heads": heads, "kv_num_heads": heads})


def _pool(kind: str) -> _Handler:
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        b = ctx.builder
        x = node.input[0]
        xs = b.shape(x)
        window = _window(ctx, node, name, attrs, xs, None)  # ONNX default stride is 1, not the kernel
        kernel, strides, dilations, pads = window.kernel, window.strides, window.dilations, window.pads
        rank = len(kernel)
        out = node.output[0]
        if rank == 2:
            return b.pool(x, kind, kernel, strides, (pads[0], pads[1], pads[2], pads[3]),
                          bool(attrs.get("ceil_mode", 0)), name, dilation=dilations, out=out,
                          source_op=node.op_type)
        shape = ctx.known_shape(out) or xs
        return b.layer(OpKind.POOL, [x], [shape], name=name, outs=[out],
                       vector_ops=math.prod(shape) * math.prod(kernel), attrs={"kind": kind},
                       source_op=node.op_type)[0]
    return handler


def _global_pool(kind: str) -> _Handler:
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        return ctx.builder.global_pool(node.input[0], kind, name, out=node.output[0], source_op=node.op_type)
    return handler


def _unary(fn: str) -> _Handler:
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        b = ctx.builder
        params = [t for t in node.input[1:] if t]
        return b.activation(node.input[0], fn, name, out=node.output[0], params=params,
                            attrs={k: v for k, v in attrs.items() if isinstance(v, int | float)},
                            source_op=node.op_type)
    return handler


def _clip(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    b = ctx.builder
    params = [t for t in node.input[1:] if t]
    bounds = [attrs.get("min"), attrs.get("max")]
    for i, t in enumerate(node.input[1:3]):
        if t and t in ctx.values and ctx.values[t].size == 1:
            bounds[i] = float(ctx.values[t].reshape(-1)[0])
    fn = "relu6" if bounds == [0.0, 6.0] else ("relu" if bounds == [0.0, None] else "clip")
    extra = {k: v for k, v in zip(("min", "max"), bounds, strict=True) if v is not None}
    return b.activation(node.input[0], fn, name, out=node.output[0], params=params, attrs=extra,
                        source_op="Clip")


def _elementwise(fn: str) -> _Handler:
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        return ctx.builder.elementwise(fn, [t for t in node.input if t], name, out=node.output[0],
                                       source_op=node.op_type)
    return handler


def _reduce(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    b = ctx.builder
    x = node.input[0]
    xs = b.shape(x)
    out = node.output[0]
    shape = ctx.known_shape(out)
    if shape is None:
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1] in ctx.values:
            axes = [int(a) for a in ctx.values[node.input[1]].reshape(-1)]
        axes = [a % len(xs) for a in (axes if axes is not None else range(len(xs)))]
        keep = attrs.get("keepdims", 1)
        shape = tuple((1 if i in axes else d) for i, d in enumerate(xs) if keep or i not in axes)
    return b.layer(OpKind.ELEMENTWISE, [t for t in node.input if t], [shape], name=name, outs=[out],
                   vector_ops=math.prod(xs), attrs={"fn": node.op_type.lower()}, source_op=node.op_type)[0]


def _norm(kind: str) -> _Handler:
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        return ctx.builder.norm(node.input[0], kind, name, params=[t for t in node.input[1:] if t],
                                out=node.output[0], source_op=node.op_type)
    return handler


def _skip_norm(kind: str) -> _Handler:
    """``com.microsoft.Skip(Simplified)LayerNormalization``: the residual sum ``input + skip (+ bias)`` (its 4th
    output when asked for), then the layer / RMS normalisation of that sum."""
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        b = ctx.builder
        x, skip, gamma = node.input[0], node.input[1], _opt(node, 2)
        beta, bias = (_opt(node, 3), _opt(node, 4)) if kind == "layer" else ("", _opt(node, 3))
        total = node.output[3] if len(node.output) > 3 and node.output[3] else f"{name}/sum"
        b.elementwise("add", [t for t in (x, skip, bias) if t], f"{name}/add", out=total, source_op=node.op_type)
        _label(ctx, node, f"{name}/add", "float")
        return b.norm(total, kind, name, params=[t for t in (gamma, beta) if t], out=node.output[0],
                      source_op=node.op_type)
    return handler


def _softmax(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    return ctx.builder.softmax(node.input[0], attrs.get("axis", -1), name, out=node.output[0],
                               source_op=node.op_type)


def _concat(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    if "axis" not in attrs:
        raise WorkloadError(_where(ctx, node, name) + ": attribute axis is required")
    return ctx.builder.concat([t for t in node.input if t], attrs.get("axis", 1), name, out=node.output[0])


def _reshape(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    b = ctx.builder
    x, target_name = node.input[0], node.input[1]
    xs = b.shape(x)
    out = node.output[0]
    if target_name in ctx.values:
        target = [int(d) for d in ctx.values[target_name].reshape(-1)]
        if not attrs.get("allowzero", 0):
            target = [xs[i] if d == 0 and i < len(xs) else d for i, d in enumerate(target)]
        if ctx.batch is not None and target and target[0] == ctx.file_batch != ctx.batch:
            # a batch size baked into the file (``x.view(1, -1)`` traced at batch 1), rescaled to the requested
            # one: when the fixed target no longer holds the input, or when a -1 would swallow the new batch
            swallowed = -1 in target[1:] and bool(xs) and xs[0] == ctx.batch
            if swallowed or (-1 not in target[1:] and math.prod(target) != math.prod(xs)):
                target[0] = ctx.batch
    else:
        shape = ctx.known_shape(out)
        if shape is None:
            raise WorkloadError(
                f"ONNX file {str(ctx.path)!r}: Reshape node {name!r} has a target shape that is neither"
                " constant nor inferable"
            )
        target = list(shape)
    return b.reshape(x, target, name, out=out)


def _split(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    """``Split`` (and ``torch.chunk``): views of its input, each output its part along ``axis`` (the
    ``split`` input or attribute, else equal parts as ONNX defines them: the last may be smaller)."""
    b = ctx.builder
    x = node.input[0]
    xs = b.shape(x)
    axis = int(attrs.get("axis", 0)) % len(xs)
    outs = list(node.output)
    given = node.input[1] if len(node.input) > 1 and node.input[1] else None
    if given is not None and given in ctx.values:
        sizes = [int(d) for d in ctx.values[given].reshape(-1)]
    elif "split" in attrs:
        sizes = [int(d) for d in attrs["split"]]
    else:
        part = -(-xs[axis] // len(outs))
        sizes = [min(part, xs[axis] - i * part) for i in range(len(outs))]
    if len(sizes) != len(outs) or sum(sizes) != xs[axis] or min(sizes) < 0:
        raise WorkloadError(f"ONNX file {str(ctx.path)!r}: Split node {name!r} splits axis {axis} of {xs} into "
                            f"{sizes}, not {len(outs)} parts that add up to {xs[axis]}")
    shapes = [ctx.known_shape(o) or (*xs[:axis], size, *xs[axis + 1:]) for o, size in zip(outs, sizes, strict=True)]
    return b.layer(OpKind.PASSTHROUGH, [x], shapes, name=name, outs=outs, attrs={"op": "Split", "axis": axis},
                   source_op="Split", dtype=ctx.dtype(outs[0]))[0]


def _slice(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    """``Slice``: a view of its input, shaped by its constant ``starts`` / ``ends`` / ``axes`` / ``steps``
    (inputs, or attributes before opset 10) as ONNX clamps them; ONNX's inferred shape otherwise."""
    b = ctx.builder
    x, out = node.input[0], node.output[0]
    xs = list(b.shape(x))

    def given(i: int, attr: str) -> list[int] | None:
        if attr in attrs:
            return [int(d) for d in attrs[attr]]
        t = node.input[i] if len(node.input) > i and node.input[i] else None
        if t is None:
            return None
        return [int(d) for d in ctx.values[t].reshape(-1)] if t in ctx.values else []

    starts, ends, axes, steps = given(1, "starts"), given(2, "ends"), given(3, "axes"), given(4, "steps")
    shape = ctx.known_shape(out)
    if starts and ends and axes != [] and steps != []:
        axes = axes or list(range(len(starts)))
        steps = steps or [1] * len(starts)
        where = f"ONNX file {str(ctx.path)!r}: node {name!r} (Slice)"
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise WorkloadError(f"{where}: starts, ends, axes and steps must have one value per sliced axis, not "
                                f"{starts}, {ends}, {axes} and {steps}")
        if any(not -len(xs) <= a < len(xs) for a in axes) or len({a % len(xs) for a in axes}) != len(axes):
            raise WorkloadError(f"{where}: axes must be distinct axes of its input of shape {tuple(xs)}, not {axes}")
        if 0 in steps:
            raise WorkloadError(f"{where}: steps must not be 0, not {steps}")
        for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
            dim = xs[axis % len(xs)]
            start, end = start + dim if start < 0 else start, end + dim if end < 0 else end
            if step > 0:
                start, end = min(max(start, 0), dim), min(max(end, 0), dim)
                xs[axis % len(xs)] = max(0, -(-(end - start) // step))
            else:
                start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
                xs[axis % len(xs)] = max(0, -(-(start - end) // -step))
        shape = tuple(xs)
    if shape is None:
        _passthrough(ctx, node, name, warn=False)
        return out
    return b.layer(OpKind.PASSTHROUGH, [x], [shape], name=name, outs=[out], attrs={"op": "Slice"},
                   source_op="Slice", dtype=ctx.dtype(out))[0]


def _resize(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    """``Resize`` / ``Upsample``: a vector layer writing each output element from its input's nearest
    one (1 op), or interpolating ``2`` (linear) or ``4`` (cubic) of them along each resized axis; the
    output's shape is the one its constant ``sizes`` or ``scales`` give (``sizes`` often computed from
    another tensor's ``Shape``), else ONNX's inferred one (a pass-through where neither is known)."""
    b = ctx.builder
    x, out = node.input[0], node.output[0]
    shape = _resized_shape(ctx, node, name, attrs, b.shape(x)) or ctx.known_shape(out)
    if shape is None:
        _passthrough(ctx, node, name, warn=False)
        return out
    mode = _text(attrs.get("mode", b"nearest"))
    resized = sum(a != c for a, c in zip(b.shape(x), shape, strict=True))
    taps = {"linear": 2, "bilinear": 2, "cubic": 4}.get(mode, 1) ** resized
    return b.layer(OpKind.ELEMENTWISE, [x], [shape], name=name, outs=[out], vector_ops=math.prod(shape) * taps,
                   attrs={"fn": "resize", "mode": mode}, source_op=node.op_type, dtype=ctx.dtype(out))[0]


def _resized_shape(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any],
                   xs: tuple[int, ...]) -> tuple[int, ...] | None:
    """ONNX's output shape of a ``Resize`` / ``Upsample`` from its constant ``sizes`` or ``scales``
    (``floor(size x scale)``, only on ``axes`` if given); ``None`` when they are not known constants, or
    for the cases this does not model (``keep_aspect_ratio_policy``, ``tf_crop_and_resize``)."""
    if (_text(attrs.get("keep_aspect_ratio_policy", b"stretch")) != "stretch"
            or _text(attrs.get("coordinate_transformation_mode", b"")) == "tf_crop_and_resize"):
        return None
    if node.op_type == "Upsample" or ctx.opset < 11:  # (X, scales) inputs, or Upsample-7's attribute
        scales_name, sizes_name = _opt(node, 1), ""
    else:  # (X, roi, scales, sizes)
        scales_name, sizes_name = _opt(node, 2), _opt(node, 3)
    axes = [int(a) % len(xs) for a in attrs.get("axes", range(len(xs)))]
    shape = list(xs)
    sizes = ctx.values[sizes_name].reshape(-1) if sizes_name in ctx.values else None
    scales = ctx.values[scales_name].reshape(-1) if scales_name in ctx.values else attrs.get("scales")
    for what, given in (("sizes", sizes), ("scales", scales)):
        if given is not None and len(given) not in (0, len(axes)):  # empty: not given (opset 11's placeholder)
            raise WorkloadError(_where(ctx, node, name) + f": "
                                f"{what} must have one value per resized axis ({len(axes)} for input {xs}), not "
                                f"{len(given)}")
    if sizes is not None and len(sizes):
        for axis, size in zip(axes, sizes, strict=True):
            shape[axis] = int(size)
        return tuple(shape)
    if scales is not None and len(scales):
        for axis, scale in zip(axes, scales, strict=True):
            shape[axis] = math.floor(xs[axis] * float(scale))
        return tuple(shape)
    return None


def _einsum(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    """A two-operand ``Einsum``: the batched product its indices say (indices of the output and both
    operands: ``batch``; of the output and one operand: ``m`` / ``n``; summed: ``k``; an ellipsis stands
    for the broadcast leading dimensions it covers), a GEMM layer when one operand is a constant;
    anything else is a pass-through with a warning."""
    b = ctx.builder
    equation = _text(attrs["equation"]).replace(" ", "")
    inputs = [t for t in node.input if t]
    lhs, arrow, result = equation.partition("->")
    operands = lhs.split(",")
    if len(inputs) != 2 or len(operands) != 2 or any(o.count("...") > 1 or o.count(".") not in (0, 3)
                                                     for o in (*operands, result)):
        _passthrough(ctx, node, name, warn=True)
        return node.output[0]
    implicit = not arrow
    if "..." in lhs:  # spell the ellipsis out: fresh indices, right-aligned across the operands
        ranks = [len(b.shape(t)) - (len(o) - 3) if "..." in o else 0 for t, o in zip(inputs, operands, strict=True)]
        fresh = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in equation][:max(ranks)]
        lead = "".join(fresh)
        operands = [o.replace("...", lead[len(lead) - r:]) for o, r in zip(operands, ranks, strict=True)]
        result = result.replace("...", lead)
        lhs = ",".join(operands)
        if implicit:
            result = lead + "".join(sorted(c for c in set(lhs) - {","} - set(lead) if lhs.count(c) == 1))
    elif implicit:  # implicit output: the indices seen once, in alphabetical order
        result = "".join(sorted(c for c in set(lhs) - {","} if lhs.count(c) == 1))
    sizes: dict[str, int] = {}
    for t, indices in zip(inputs, operands, strict=True):
        shape = b.shape(t)
        if len(shape) != len(indices):
            raise WorkloadError(f"ONNX file {str(ctx.path)!r}: Einsum node {name!r}: operand {t!r} of shape {shape} "
                                f"does not have the {len(indices)} indices of {indices!r}")
        for index, size in zip(indices, shape, strict=True):
            sizes[index] = max(sizes.get(index, 1), size)  # a 1 broadcasts
    first, second = (set(o) for o in operands)
    kept = set(result)

    def extent(indices: set[str]) -> int:
        return math.prod(sizes[i] for i in indices)

    gemm = GemmShape(m=extent((first & kept) - second), k=extent(set(sizes) - kept),
                     n=extent((second & kept) - first), batch=extent(first & second & kept))
    constant = [b.is_constant(t) for t in inputs]
    if constant[0] and not constant[1]:  # the activation first, as GEMM layers take it
        inputs.reverse()
        gemm = GemmShape(m=gemm.n, k=gemm.k, n=gemm.m, batch=gemm.batch)
    shape = ctx.known_shape(node.output[0]) or tuple(sizes[i] for i in result)
    return b.layer(OpKind.GEMM if any(constant) else OpKind.MATMUL, inputs, [shape], name=name,
                   outs=[node.output[0]], gemm=gemm, attrs={"equation": equation}, source_op="Einsum")[0]


def _flatten(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    return ctx.builder.flatten(node.input[0], attrs.get("axis", 1), name, out=node.output[0])


def _transpose(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    return ctx.builder.transpose(node.input[0], attrs.get("perm"), name, out=node.output[0])


def _shape_only(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    """Squeeze / Unsqueeze: a reshape to ONNX's inferred (or computed) shape."""
    b = ctx.builder
    x = node.input[0]
    xs = list(b.shape(x))
    shape = ctx.known_shape(node.output[0])
    if shape is None:
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1] in ctx.values:
            axes = [int(a) for a in ctx.values[node.input[1]].reshape(-1)]
        if node.op_type == "Squeeze":
            if axes is not None and any(not -len(xs) <= a < len(xs) or xs[a] != 1 for a in axes):
                raise WorkloadError(f"ONNX file {str(ctx.path)!r}: node {name!r} (Squeeze): axes must be axes of size"
                                    f" 1 of its input of shape {tuple(xs)}, not {axes}")
            drop = {a % len(xs) for a in axes} if axes is not None else {i for i, d in enumerate(xs) if d == 1}
            shape = tuple(d for i, d in enumerate(xs) if i not in drop)
        elif axes is None:
            raise WorkloadError(f"ONNX file {str(ctx.path)!r}: node {name!r} (Unsqueeze): axes (an attribute before "
                                "opset 13, a constant input since) is required")
        else:
            rank = len(xs) + len(axes or [])
            for a in sorted(a % rank for a in axes or []):
                xs.insert(a, 1)
            shape = tuple(xs)
    return b.reshape(x, shape, name, out=node.output[0], source_op=node.op_type)


# -- quantized ops ---------------------------------------------------------------------------------

#: Ops that make a model quantized.
_QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm",
                        "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool",
                        "QLinearConcat", "ConvInteger", "MatMulInteger", "QLinearSoftmax", "QLinearSigmoid",
                        "QLinearLeakyRelu", "DynamicQuantizeLinear"})
#: Ops that move or select codes without changing them: a quantized input's parameters carry over.
_SAME_SCALE_OPS = frozenset({"MaxPool", "Relu", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
                             "Identity"})


def _label(ctx: _Context, node: onnx.NodeProto, layer_name: str, numerics: str) -> None:
    if ctx.quantized:
        ctx.builder.annotate_layer(layer_name, numerics=numerics)


def _label_by_operands(ctx: _Context, node: onnx.NodeProto, layer_name: str) -> None:
    """A standard op in a quantized model: integer when it only moves quantized codes, else float."""
    b = ctx.builder
    x = node.input[0] if node.input else ""
    source = b.tensor(x) if x and b.has_tensor(x) else None
    if node.op_type in _SAME_SCALE_OPS and source is not None and source.quant is not None:
        for out in node.output:
            if out:
                b.annotate(out, quant=source.quant, dtype=source.dtype)
        _label(ctx, node, layer_name, "integer")
        return
    _label(ctx, node, layer_name, "float")


def _qparams(ctx: _Context, layer: str, scale: str, zero_point: str, axis: int | None) -> tuple[QuantParams, str]:
    """Quantization parameters from constant ``scale``/``zero_point`` inputs, and the codes' dtype."""
    where = f"ONNX file {str(ctx.path)!r}: layer {layer!r}"
    if scale and scale not in ctx.data:
        raise WorkloadError(f"{where}: scale {scale!r} must be a constant the file holds")
    if zero_point and zero_point not in ctx.data:
        raise WorkloadError(f"{where}: zero point {zero_point!r} must be a constant the file holds")
    zp = ctx.data[zero_point] if zero_point else np.zeros(1, dtype=np.uint8)
    dtype = str(zp.dtype)
    if dtype not in ("int8", "uint8", "int16", "uint16", "int32"):
        raise WorkloadError(f"{where}: zero point {zero_point!r} must be an 8-, 16- or 32-bit integer, not {dtype}")
    scales = ctx.data[scale].reshape(-1) if scale else np.zeros(0, dtype=np.float32)
    per_channel = scales.size > 1 or zp.size > 1
    return QuantParams(tuple(scales.tolist()), tuple(zp.reshape(-1).tolist()), axis if per_channel else None), dtype


def _bind(ctx: _Context, layer: str, tensor: str, scale: str, zero_point: str, axis: int | None = None) -> None:
    """Give ``tensor`` the parameters ``scale``/``zero_point`` (and its data, if constant); check a repeat."""
    b = ctx.builder
    quant, dtype = _qparams(ctx, layer, scale, zero_point, axis)
    t = b.tensor(tensor)
    if t.quant is not None and t.quant != quant:
        raise WorkloadError(
            f"ONNX file {str(ctx.path)!r}: layer {layer!r} reads {tensor!r} with scale/zero point "
            f"{quant.scale[:4]}/{quant.zero_point[:4]}, but it was quantized with {t.quant.scale[:4]}/"
            f"{t.quant.zero_point[:4]}"
        )
    value = ctx.data.get(tensor) if t.is_constant else None
    if t.is_constant and value is None:
        raise WorkloadError(f"ONNX file {str(ctx.path)!r}: layer {layer!r}: quantized constant {tensor!r} has no"
                            " data in the file")
    b.annotate(tensor, quant=quant, dtype=dtype, value=value)


def _constant_int(ctx: _Context, layer: str, tensor: str) -> None:
    """An integer constant (an int32 bias): its data and dtype."""
    t = ctx.builder.tensor(tensor)
    value = ctx.data.get(tensor)
    if value is None:
        raise WorkloadError(f"ONNX file {str(ctx.path)!r}: layer {layer!r}: constant {tensor!r} has no data in the"
                            " file")
    ctx.builder.annotate(tensor, value=value, dtype=str(value.dtype) if t.dtype != str(value.dtype) else None)


def _as(node: onnx.NodeProto, op_type: str, inputs: Sequence[str],
        attrs: dict[str, Any] | None = None) -> onnx.NodeProto:
    """The float op a quantized node stands for, for the float handlers."""
    proxy = helper.make_node(op_type, list(inputs), list(node.output), name=node.name)
    if attrs is None:
        proxy.attribute.extend(node.attribute)
    else:
        proxy.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    return proxy


def _opt(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


def _qlinear_conv(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    x, xs, xz, w, ws, wz, ys, yz = (_opt(node, i) for i in range(8))
    bias = _opt(node, 8)
    _bind(ctx, name, x, xs, xz)
    _bind(ctx, name, w, ws, wz, axis=0)
    if bias:
        _constant_int(ctx, name, bias)
    out = _conv(ctx, _as(node, "Conv", [x, w, bias] if bias else [x, w]), name, attrs)
    _bind(ctx, name, out, ys, yz)
    _label(ctx, node, name, "integer")
    return out


def _bind_activation(ctx: _Context, layer: str, x: str, zero_point: str) -> None:
    """An ``*Integer`` op's activation: its constant zero point, or none known before run time (computed by a
    ``DynamicQuantizeLinear``: dynamic quantization has no static parameters to record)."""
    if not zero_point or zero_point in ctx.data or ctx.builder.is_constant(zero_point):
        _bind(ctx, layer, x, "", zero_point)


def _conv_integer(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    x, w, xz, wz = (_opt(node, i) for i in range(4))
    _bind_activation(ctx, name, x, xz)
    _bind(ctx, name, w, "", wz, axis=0)
    out = _conv(ctx, _as(node, "Conv", [x, w]), name, attrs)
    ctx.builder.annotate(out, dtype="int32")
    _label(ctx, node, name, "integer")
    return out


def _weight_axis(ctx: _Context, w: str, layout: str) -> int | None:
    return (0 if layout == "nk" else 1) if ctx.builder.is_constant(w) else None


def _qlinear_matmul(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    a, as_, az, w, ws, wz, ys, yz = (_opt(node, i) for i in range(8))
    _bind(ctx, name, a, as_, az)
    _bind(ctx, name, w, ws, wz, axis=-1 if ctx.builder.is_constant(w) else None)
    out = _matmul(ctx, _as(node, "MatMul", [a, w], {}), name, {})
    _bind(ctx, name, out, ys, yz)
    _label(ctx, node, name, "integer")
    return out


def _matmul_integer(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    a, w, az, wz = (_opt(node, i) for i in range(4))
    _bind_activation(ctx, name, a, az)
    _bind(ctx, name, w, "", wz, axis=-1 if ctx.builder.is_constant(w) else None)
    out = _matmul(ctx, _as(node, "MatMul", [a, w], {}), name, {})
    ctx.builder.annotate(out, dtype="int32")
    _label(ctx, node, name, "integer")
    return out


def _qgemm(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    a, as_, az, w, ws, wz, c, ys, yz = (_opt(node, i) for i in range(9))
    trans_b = int(attrs.get("transB", 0))
    _bind(ctx, name, a, as_, az)
    _bind(ctx, name, w, ws, wz, axis=0 if trans_b else 1)
    if c:
        _constant_int(ctx, name, c)
    gemm_attrs = {k: v for k, v in attrs.items() if k in ("transA", "transB", "alpha")}
    out = _gemm(ctx, _as(node, "Gemm", [a, w, c] if c else [a, w], gemm_attrs), name, gemm_attrs)
    if ys:
        _bind(ctx, name, out, ys, yz)
        _label(ctx, node, name, "integer")
    else:  # float output: the dequantization is fused into the GEMM
        _label(ctx, node, name, "float")
    return out


def _qlinear_binary(op_type: str) -> _Handler:
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        a, as_, az, x, xs, xz, ys, yz = (_opt(node, i) for i in range(8))
        _bind(ctx, name, a, as_, az)
        _bind(ctx, name, x, xs, xz)
        out = _HANDLERS[op_type](ctx, _as(node, op_type, [a, x], {}), name, {})
        _bind(ctx, name, out, ys, yz)
        _label(ctx, node, name, "integer")
        return out
    return handler


def _qlinear_pool(op_type: str) -> _Handler:
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        x, xs, xz, ys, yz = (_opt(node, i) for i in range(5))
        if attrs.get("channels_last", 0):
            raise WorkloadError(f"ONNX file {str(ctx.path)!r}: layer {name!r}: {node.op_type} with channels_last"
                                " is not supported (NCHW only)")
        _bind(ctx, name, x, xs, xz)
        pool_attrs = {k: v for k, v in attrs.items() if k != "channels_last"}
        out = _HANDLERS[op_type](ctx, _as(node, op_type, [x], pool_attrs), name, pool_attrs)
        _bind(ctx, name, out, ys, yz)
        ctx.builder.annotate_layer(name, count_include_pad=int(attrs.get("count_include_pad", 0)))
        _label(ctx, node, name, "integer")
        return out
    return handler


def _qlinear_unary(op_type: str) -> _Handler:
    def handler(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
        x, xs, xz, ys, yz = (_opt(node, i) for i in range(5))
        _bind(ctx, name, x, xs, xz)
        out = _HANDLERS[op_type](ctx, _as(node, op_type, [x], {}), name, {})
        _bind(ctx, name, out, ys, yz)
        _label(ctx, node, name, "integer")
        return out
    return handler


def _qlinear_concat(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    ys, yz = node.input[0], node.input[1]
    triples = list(node.input[2:])
    if len(triples) % 3:
        raise WorkloadError(f"ONNX file {str(ctx.path)!r}: layer {name!r}: QLinearConcat needs (tensor, scale, zero"
                            f" point) triples after the output's scale and zero point, not {len(triples)} inputs")
    xs = triples[0::3]
    for x, s, z in zip(xs, triples[1::3], triples[2::3], strict=True):
        _bind(ctx, name, x, s, z)
    out = _concat(ctx, _as(node, "Concat", xs), name, attrs)
    _bind(ctx, name, out, ys, yz)
    _label(ctx, node, name, "integer")
    return out


def _quantize_linear(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    x, s, z = (_opt(node, i) for i in range(3))
    out = ctx.builder.activation(x, "quantize", name, out=node.output[0], source_op=node.op_type)
    axis = attrs.get("axis", 1)
    _bind(ctx, name, out, s, z, axis=axis)
    _label(ctx, node, name, "quantize")
    return out


def _matmul_nbits(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    """``com.microsoft.MatMulNBits`` (weights block-quantized to 2-8 bits, as LLM exports for onnxruntime
    write every linear layer): the GEMM of ``A`` with its ``N x K`` weight (``m`` = ``A``'s leading
    dimensions, ``k = K``, ``n = N``), whose packed codes, scales, zero points and bias are its constants."""
    b = ctx.builder
    a = node.input[0]
    xs = b.shape(a)
    where = _where(ctx, node, name)
    if "K" not in attrs or "N" not in attrs:
        raise WorkloadError(f"{where}: attributes K and N are required")
    k, n = int(attrs["K"]), int(attrs["N"])
    if not xs or xs[-1] != k:
        raise WorkloadError(f"{where}: input {a!r} must end in K = {k} features, not shape {xs}")
    out = node.output[0]
    b.layer(OpKind.GEMM, [a, *(t for t in node.input[1:] if t)], [(*xs[:-1], n)], name=name, outs=[out],
            gemm=GemmShape(m=math.prod(xs[:-1]), k=k, n=n), source_op=node.op_type, dtype=ctx.dtype(out),
            attrs={"in_features": k, "out_features": n, "weight_layout": "nk", "bits": int(attrs.get("bits", 4)),
                   "block_size": int(attrs.get("block_size", 0))})
    return out


def _dynamic_quantize_linear(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    """``DynamicQuantizeLinear``: float work, one layer per output (as the lowerings make them): ``<name>/scale``
    (the min/max pass over ``x``: one vector op per element), ``<name>/zero_point`` (one op) and the uint8
    codes ``<name>`` (one op per element)."""
    b = ctx.builder
    x = node.input[0]
    xs = b.shape(x)
    y, scale, zero_point = (o or f"{name}:{i}" for i, o in enumerate([*node.output, "", ""][:3]))
    b.layer(OpKind.ELEMENTWISE, [x], [()], name=f"{name}/scale", outs=[scale], vector_ops=math.prod(xs),
            attrs={"fn": "dynamic_quantize_scale"}, source_op=node.op_type)
    b.layer(OpKind.ELEMENTWISE, [scale], [()], name=f"{name}/zero_point", outs=[zero_point], vector_ops=1,
            attrs={"fn": "dynamic_quantize_zero_point"}, source_op=node.op_type, dtype="uint8")
    b.layer(OpKind.ACTIVATION, [x, scale, zero_point], [xs], name=name, outs=[y], vector_ops=math.prod(xs),
            attrs={"fn": "dynamic_quantize"}, source_op=node.op_type, dtype="uint8")
    for layer in (f"{name}/scale", f"{name}/zero_point", name):
        _label(ctx, node, layer, "float")
    return y


def _dequantize_linear(ctx: _Context, node: onnx.NodeProto, name: str, attrs: dict[str, Any]) -> str:
    x, s, z = (_opt(node, i) for i in range(3))
    _bind(ctx, name, x, s, z, axis=attrs.get("axis", 1))
    out = ctx.builder.activation(x, "dequantize", name, out=node.output[0], source_op=node.op_type)
    _label(ctx, node, name, "dequantize")
    return out


_ACTIVATION_OPS = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid", "LeakyRelu": "leaky_relu", "Elu": "elu", "Selu": "selu", "Gelu": "gelu",
    "Erf": "erf", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Neg": "neg",
    "Abs": "abs", "Softplus": "softplus", "Mish": "mish", "PRelu": "prelu", "Floor": "floor",
    "Ceil": "ceil", "Round": "round", "Sign": "sign", "Not": "not", "Sin": "sin", "Cos": "cos",
}
_ELEMENTWISE_OPS = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Max": "max", "Min": "min",
    "Sum": "sum", "Mean": "mean", "And": "and", "Or": "or", "Xor": "xor", "Equal": "equal",
    "Greater": "greater", "Less": "less", "Where": "where", "Mod": "mod",
}
#: Ops whose outputs have their input's shape whatever (possibly stale) inference says.
_ALIAS_OPS = frozenset({"Dropout", "Identity", "Cast", "CastLike"})
#: Ops that do nothing at inference (or nothing the IR models): pass-through without a warning.
_NO_OPS = frozenset({"Dropout", "Identity", "Cast", "CastLike", "Expand", "Gather",
                     "Pad", "Tile", "DepthToSpace", "SpaceToDepth"})

_HANDLERS: dict[str, _Handler] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Einsum": _einsum,
    "Split": _split,
    "Slice": _slice,
    "Resize": _resize,
    "Upsample": _resize,
    "ConvTranspose": _conv_transpose,
    "Attention": _sdpa,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "RNN": _recurrent,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": _global_pool("avg"),
    "GlobalMaxPool": _global_pool("max"),
    "Clip": _clip,
    "BatchNormalization": _norm("batch"),
    "LayerNormalization": _norm("layer"),
    "InstanceNormalization": _norm("instance"),
    "GroupNormalization": _norm("group"),
    "LRN": _norm("lrn"),
    "RMSNormalization": _norm("rms"),
    "SimplifiedLayerNormalization": _norm("rms"),  # onnxruntime's, registered in the ONNX domain
    "Softmax": _softmax,
    "LogSoftmax": _softmax,
    "Concat": _concat,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": _transpose,
    "Squeeze": _shape_only,
    "Unsqueeze": _shape_only,
    "ReduceMean": _reduce,
    "ReduceSum": _reduce,
    "ReduceMax": _reduce,
    "ReduceMin": _reduce,
    **{op: _unary(fn) for op, fn in _ACTIVATION_OPS.items()},
    **{op: _elementwise(fn) for op, fn in _ELEMENTWISE_OPS.items()},
    "QuantizeLinear": _quantize_linear,
    "DequantizeLinear": _dequantize_linear,
    "QLinearConv": _qlinear_conv,
    "QLinearMatMul": _qlinear_matmul,
    "ConvInteger": _conv_integer,
    "DynamicQuantizeLinear": _dynamic_quantize_linear,
    "MatMulInteger": _matmul_integer,
}

#: onnxruntime's contrib ops (domain ``com.microsoft``) that quantize_static writes.
_MS_HANDLERS: dict[str, _Handler] = {
    "Attention": _attention,
    "MatMulNBits": _matmul_nbits,
    "MultiHeadAttention": _multi_head_attention,
    "GroupQueryAttention": _group_query_attention,
    "SimplifiedLayerNormalization": _norm("rms"),
    "SkipLayerNormalization": _skip_norm("layer"),
    "SkipSimplifiedLayerNormalization": _skip_norm("rms"),
    "QLinearConv": _qlinear_conv,
    "QGemm": _qgemm,
    "QLinearAdd": _qlinear_binary("Add"),
    "QLinearMul": _qlinear_binary("Mul"),
    "QLinearGlobalAveragePool": _qlinear_pool("GlobalAveragePool"),
    "QLinearAveragePool": _qlinear_pool("AveragePool"),
    "QLinearConcat": _qlinear_concat,
    "QLinearSigmoid": _qlinear_unary("Sigmoid"),
}
