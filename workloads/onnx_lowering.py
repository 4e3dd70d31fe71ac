"""ONNX operators that are several layers of the IR: recurrent cells and transposed convolutions.

``LSTM``, ``GRU`` and ``RNN`` (opset 7 and later, any ``direction`` and ``layout``) become what an
accelerator runs for them: one GEMM that projects the whole input sequence (``X @ W^T``, ``m =
seq x batch``, ``n = directions x gates x hidden``: the input is known up front), then, step by step,
the recurrent GEMM of the previous hidden state (``h @ R^T``, one product per direction: ``batch =
directions``) and the vector layers of the cell. The first step's recurrent product is of the zero
initial state when the node has no ``initial_h``, so it is not computed. Per step and hidden unit
(of each direction and batch row) the vector layers count:

* ``LSTM``: ``gates`` 4 gates x (one add of the input and recurrent parts, two more with a bias
  ``B``) plus their 4 activations, plus 6 with peepholes ``P``; ``cell`` ``c = f c' + i g`` (3; 1
  without a previous cell state); ``hidden`` ``h = o tanh(c)`` (2);
* ``GRU``: ``gates`` 3 gates x (1 add, 2 more with ``B``), 3 activations and the reset gate's
  product (1); ``hidden`` ``h = (1 - z) n + z h'`` (4; 2 without a previous state). The recurrent
  GEMM covers all three gates (``n = 3 hidden``): with ``linear_before_reset = 0`` the candidate's
  product is of ``r * h'`` and so runs after the reset gate, which the one GEMM does not order;
* ``RNN``: ``hidden`` 1 add, 2 more with ``B``, and the activation.

The per-step hidden states are concatenated into ``Y`` when the node asks for it; ``Y_h`` (and
``Y_c``) are the last step's. MACs are ``seq x batch x directions x gates x hidden x input`` plus
``(seq - 1 or seq) x batch x directions x gates x hidden x hidden``.

``ConvTranspose`` becomes the GEMM of each input pixel's channels with the weights (``m = batch x
input pixels``, ``k = in channels / group``, ``n = out channels / group x kernel``, ``batch =
group``), whose columns a ``col2im`` vector layer adds into the output (one add per product
element, the bias with the first): the direct method's ``input pixels x in channels x out channels
x kernel / group`` MACs, without the inserted zeros a convolution of the upsampled input would
multiply.

``com.microsoft.Attention`` (the fused self-attention onnxruntime's transformer optimizer writes for
BERT-like models, with its QKV weights as an input) becomes the projection GEMM of the input with
the weights (``m = batch x seq``, ``k = hidden``, ``n = q + k + v hidden sizes``), views of its Q, K
and V parts, and per head (``batch = batch x heads``) the ``Q K^T`` product (``m = n = seq``, ``k =
head size``), its softmax and the product of the probabilities with ``V`` (``k = seq``, ``n = V's
head size``). A ``past`` state, a mask or a relative position bias add no GEMM and are not modelled.
ONNX's own ``Attention`` (opset 23: ``Q``, ``K``, ``V`` inputs, 4-D ``(batch, heads, seq, head size)``
or 3-D with ``q_num_heads`` / ``kv_num_heads``; grouped-query when K and V have fewer heads) is the
same two products and softmax per query head, without a projection; a ``past_key`` adds its sequence
to the keys attended to. ``com.microsoft.GroupQueryAttention`` (LLM exports for onnxruntime: 3-D
query, key and value, or one packed QKV input split into views) is that too, over ``past + seq``
keys; its ``present`` outputs are not modelled.

Every layer made here is labelled ``float`` in a quantized model (no integer semantics are claimed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import onnx

from accel.errors import WorkloadError
from workloads.builder import GraphBuilder
from workloads.graph import GemmShape, OpKind

__all__ = ["attention", "conv_transpose", "group_query_attention", "recurrent", "scaled_dot_product_attention"]

#: op type -> gates of its cell
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _input(node: onnx.NodeProto, i: int) -> str | None:
    return node.input[i] if len(node.input) > i and node.input[i] else None


def _output(node: onnx.NodeProto, i: int) -> str | None:
    return node.output[i] if len(node.output) > i and node.output[i] else None


def recurrent(b: GraphBuilder, node: onnx.NodeProto, name: str, attrs: dict[str, Any],
              known_shape: Callable[[str], tuple[int, ...] | None], label: Callable[[str], None]) -> str:
    """Lower an ``LSTM`` / ``GRU`` / ``RNN`` node (see the module docstring); returns its first output."""
    op = node.op_type
    gates = GATES[op]
    x, w, r = node.input[0], node.input[1], node.input[2]
    bias, initial_h = _input(node, 3), _input(node, 5)
    initial_c, peepholes = (_input(node, 6), _input(node, 7)) if op == "LSTM" else (None, None)
    xs, ws = b.shape(x), b.shape(w)
    layout = int(attrs.get("layout", 0))
    if len(xs) != 3 or len(ws) != 3:
        raise WorkloadError(f"Layer {name!r}: {op} needs a 3-D input and weights, not {xs} and {ws}")
    seq, batch, features = (xs[1], xs[0], xs[2]) if layout else xs
    dirs, hidden = ws[0], int(attrs.get("hidden_size", ws[1] // gates))
    if ws[1] != gates * hidden or ws[2] != features or b.shape(r) != (dirs, gates * hidden, hidden):
        raise WorkloadError(f"Layer {name!r}: {op} weights {ws} and recurrence {b.shape(r)} do not match "
                            f"{gates} gates of hidden size {hidden} over {features} input features")
    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    unit = dirs * batch * hidden  # hidden units of one step
    made: list[str] = []

    def layer(kind: OpKind, inputs: list[str | None], shape: tuple[int, ...], suffix: str, *,
              out: str | None = None, gemm: GemmShape | None = None, ops: int = 0, last: bool = False) -> str:
        lname = name if last else f"{name}/{suffix}"  # the node's name: its last layer's
        made.append(lname)
        return b.layer(kind, [t for t in inputs if t], [shape], name=lname, outs=[out or lname], gemm=gemm,
                       vector_ops=ops, attrs={"fn": f"{op.lower()}_{suffix.rstrip('0123456789')}"},
                       source_op=op)[0]

    projected = layer(OpKind.GEMM, [x, w], (seq, batch, dirs * gates * hidden), "input",
                      gemm=GemmShape(m=seq * batch, k=features, n=dirs * gates * hidden))
    step_shape = (batch, dirs * gates * hidden)
    steps = b.layer(OpKind.PASSTHROUGH, [projected], [step_shape] * seq, name=f"{name}/steps",
                    outs=[f"{name}/input{t}" for t in range(seq)], attrs={"op": "Split"}, source_op=op)
    made.append(f"{name}/steps")
    bias_adds = 2 if bias else 0
    # a constant initial state's recurrent product is a constant: folded, as the zero state's is
    h = initial_h if initial_h is not None and not b.is_constant(initial_h) else None
    c = initial_c
    last = seq - 1
    y = _output(node, 0)
    hiddens: list[str] = []
    for t in range(seq):
        parts: list[str | None] = [steps[t], bias]
        if h is not None:
            parts.insert(1, layer(OpKind.GEMM, [h, r], (dirs, batch, gates * hidden), f"recurrent{t}",
                                  gemm=GemmShape(m=batch, k=hidden, n=gates * hidden, batch=dirs)))
        final_h = _output(node, 1) if t == last else None
        ends = t == last and y is None  # the node's last layer
        if op == "RNN":
            h = layer(OpKind.ELEMENTWISE, parts, state, f"hidden{t}", out=final_h, ops=unit * (2 + bias_adds),
                      last=ends)
        elif op == "GRU":
            g = layer(OpKind.ELEMENTWISE, parts, (dirs, batch, gates * hidden), f"gates{t}",
                      ops=unit * (gates * (1 + bias_adds) + gates + 1))
            h = layer(OpKind.ELEMENTWISE, [g, h], state, f"hidden{t}", out=final_h, ops=unit * (4 if h else 2),
                      last=ends)
        else:
            g = layer(OpKind.ELEMENTWISE, [*parts, peepholes], (dirs, batch, gates * hidden), f"gates{t}",
                      ops=unit * (gates * (1 + bias_adds) + gates + (6 if peepholes else 0)))
            c = layer(OpKind.ELEMENTWISE, [g, c], state, f"cell{t}", out=_output(node, 2) if t == last else None,
                      ops=unit * (3 if c else 1))
            h = layer(OpKind.ELEMENTWISE, [g, c], state, f"hidden{t}", out=final_h, ops=unit * 2, last=ends)
        hiddens.append(h)
    first = h
    if y is not None:
        shape = known_shape(y) or ((batch, seq, dirs, hidden) if layout else (seq, dirs, batch, hidden))
        first = b.layer(OpKind.CONCAT, hiddens, [shape], name=name, outs=[y], attrs={"axis": 1 if layout else 0},
                        source_op=op)[0]
        made.append(name)
    for lname in made:
        label(lname)
    return first


def conv_transpose(b: GraphBuilder, node: onnx.NodeProto, name: str, attrs: dict[str, Any],
                   known_shape: Callable[[str], tuple[int, ...] | None], label: Callable[[str], None]) -> str:
    """Lower a ``ConvTranspose`` node to its GEMM and ``col2im`` (see the module docstring)."""
    x, w = node.input[0], node.input[1]
    bias = _input(node, 2)
    xs, ws = b.shape(x), b.shape(w)
    rank = len(xs) - 2
    group = int(attrs.get("group", 1))
    if rank < 1 or len(ws) != rank + 2 or ws[0] != xs[1] or xs[1] % group:
        raise WorkloadError(f"Layer {name!r}: ConvTranspose weights {ws} do not fit input {xs} with group {group}")
    kernel = list(attrs.get("kernel_shape", ws[2:]))
    out_channels = ws[1] * group
    shape = known_shape(node.output[0]) or _transposed_shape(xs, out_channels, kernel, attrs)
    pixels = math.prod(xs[2:])
    columns = ws[1] * math.prod(kernel)  # of one group
    gemm = GemmShape(m=xs[0] * pixels, k=xs[1] // group, n=columns, batch=group)
    cols = b.layer(OpKind.GEMM, [x, w], [(group, xs[0] * pixels, columns)], name=f"{name}/gemm",
                   outs=[f"{name}/gemm"], gemm=gemm, attrs={"fn": "conv_transpose", "kernel": tuple(kernel),
                                                            "group": group}, source_op="ConvTranspose")[0]
    out = b.layer(OpKind.ELEMENTWISE, [cols, *([bias] if bias else [])], [shape], name=name,
                  outs=[node.output[0]], vector_ops=group * xs[0] * pixels * columns,
                  attrs={"fn": "col2im"}, source_op="ConvTranspose")[0]
    label(f"{name}/gemm")
    label(name)
    return out


def _transposed_shape(xs: tuple[int, ...], out_channels: int, kernel: list[int],
                      attrs: dict[str, Any]) -> tuple[int, ...]:
    """ONNX's output shape of a transposed convolution (``output_shape`` if given, else from pads)."""
    rank = len(kernel)
    if "output_shape" in attrs:
        return (xs[0], out_channels, *(int(s) for s in list(attrs["output_shape"])[-rank:]))
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    pads = list(attrs.get("pads", [0] * (2 * rank)))
    extra = list(attrs.get("output_padding", [0] * rank))
    return (xs[0], out_channels, *(strides[i] * (xs[2 + i] - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1
                                   - pads[i] - pads[i + rank] for i in range(rank)))


def attention(b: GraphBuilder, node: onnx.NodeProto, name: str, attrs: dict[str, Any],
              known_shape: Callable[[str], tuple[int, ...] | None], label: Callable[[str], None]) -> str:
    """Lower a ``com.microsoft.Attention`` node (see the module docstring); returns its output."""
    x, w = node.input[0], node.input[1]
    bias = _input(node, 2)
    xs, ws = b.shape(x), b.shape(w)
    heads = int(attrs.get("num_heads", 0))
    sizes = [int(v) for v in attrs.get("qkv_hidden_sizes", [])] or ([ws[1] // 3] * 3 if len(ws) == 2 else [])
    if (len(xs) != 3 or len(ws) != 2 or ws[0] != xs[2] or len(sizes) != 3 or sum(sizes) != ws[1] or heads < 1
            or sizes[0] != sizes[1] or any(size % heads for size in sizes)):
        raise WorkloadError(f"Layer {name!r}: Attention needs a (batch, seq, hidden) input, (hidden, q + k + v) "
                            f"weights and num_heads dividing each hidden size, not input {xs}, weights {ws}, "
                            f"qkv_hidden_sizes {sizes} and num_heads {heads}")
    batch, seq, hidden = xs
    qkv = b.layer(OpKind.GEMM, [x, w, *([bias] if bias else [])], [(batch, seq, ws[1])], name=f"{name}/qkv",
                  outs=[f"{name}/qkv"], gemm=GemmShape(m=batch * seq, k=hidden, n=ws[1]),
                  attrs={"in_features": hidden, "out_features": ws[1], "weight_layout": "kn"},
                  source_op=node.op_type)[0]
    q, k, v = b.layer(OpKind.PASSTHROUGH, [qkv], [(batch, seq, size) for size in sizes], name=f"{name}/split",
                      outs=[f"{name}/{part}" for part in "qkv"], attrs={"op": "Split", "axis": 2},
                      source_op=node.op_type)
    label(f"{name}/qkv")
    label(f"{name}/split")
    return _attention_products(b, node, name, q, k, v, batch=batch, heads=heads, seq_q=seq, seq_kv=seq,
                               head=sizes[0] // heads, head_v=sizes[2] // heads,
                               shape=known_shape(node.output[0]) or (batch, seq, sizes[2]), label=label)


def scaled_dot_product_attention(b: GraphBuilder, node: onnx.NodeProto, name: str, attrs: dict[str, Any],
                                 known_shape: Callable[[str], tuple[int, ...] | None],
                                 label: Callable[[str], None]) -> str:
    """Lower an ONNX ``Attention`` node (opset 23, see the module docstring); returns its output ``Y``."""
    q, k, v = node.input[0], node.input[1], node.input[2]
    shapes = [b.shape(t) for t in (q, k, v)]
    rank = len(shapes[0])
    if rank == 4 and all(len(s) == 4 for s in shapes):
        batch, heads, seq_q, head = shapes[0]
        kv_heads, seq_kv, head_v = shapes[2][1], shapes[1][2], shapes[2][3]
        fits = shapes[1][0] == shapes[2][0] == batch and shapes[1][1] == kv_heads and shapes[1][3] == head
        y_shape: tuple[int, ...] = (batch, heads, seq_q, head_v)
    else:
        heads, kv_heads = int(attrs.get("q_num_heads", 0)), int(attrs.get("kv_num_heads", 0))
        fits = (rank == 3 and all(len(s) == 3 for s in shapes) and heads > 0 and kv_heads > 0
                and shapes[0][2] % heads == 0 and shapes[1][2] % kv_heads == 0 and shapes[2][2] % kv_heads == 0)
        batch, seq_q = shapes[0][:2]
        seq_kv = shapes[1][1]
        head = shapes[0][2] // max(heads, 1)
        head_v = shapes[2][2] // max(kv_heads, 1)
        fits = fits and shapes[1][2] // kv_heads == head
        y_shape = (batch, seq_q, heads * head_v)
    if not fits or heads % max(kv_heads, 1):
        raise WorkloadError(f"Layer {name!r}: Attention needs Q, K and V of (batch, heads, seq, head size), or 3-D "
                            "with q_num_heads and kv_num_heads dividing their hidden sizes (query heads a multiple "
                            f"of the key/value heads), not {shapes[0]}, {shapes[1]} and {shapes[2]}")
    past = _input(node, 4)  # past_key (batch, kv heads, past seq, head size): the keys attended to grow by it
    if past is not None and len(b.shape(past)) == 4:
        seq_kv += b.shape(past)[2]
    return _attention_products(b, node, name, q, k, v, batch=batch, heads=heads, seq_q=seq_q, seq_kv=seq_kv,
                               head=head, head_v=head_v, shape=known_shape(node.output[0]) or y_shape, label=label)


def group_query_attention(b: GraphBuilder, node: onnx.NodeProto, name: str, attrs: dict[str, Any],
                          known_shape: Callable[[str], tuple[int, ...] | None], label: Callable[[str], None]) -> str:
    """Lower a ``com.microsoft.GroupQueryAttention`` node (see the module docstring); returns its output."""
    q, k, v, past = node.input[0], _input(node, 1), _input(node, 2), _input(node, 3)
    heads, kv_heads = int(attrs.get("num_heads", 0)), int(attrs.get("kv_num_heads", 0))
    qs = b.shape(q)
    packed = k is None and v is None
    width = heads + 2 * kv_heads if packed else heads
    fits = len(qs) == 3 and heads > 0 and kv_heads > 0 and heads % kv_heads == 0 and qs[2] % width == 0
    head = qs[2] // width if fits else 0
    kv_shape = (qs[0], qs[1], kv_heads * head) if fits else ()
    if not fits or (not packed and (k is None or v is None or b.shape(k) != kv_shape or b.shape(v) != kv_shape)):
        raise WorkloadError(f"Layer {name!r}: GroupQueryAttention needs a (batch, seq, hidden) query (with packed "
                            "keys and values, or 3-D key and value) and num_heads a multiple of kv_num_heads "
                            f"dividing it, not query {qs}, num_heads {heads} and kv_num_heads {kv_heads}")
    batch, seq = qs[:2]
    if packed:
        q, k, v = b.layer(OpKind.PASSTHROUGH, [q], [(batch, seq, heads * head), kv_shape, kv_shape],
                          name=f"{name}/split", outs=[f"{name}/{part}" for part in "qkv"],
                          attrs={"op": "Split", "axis": 2}, source_op=node.op_type)
        label(f"{name}/split")
    assert k is not None and v is not None
    seq_kv = seq + (b.shape(past)[2] if past is not None and len(b.shape(past)) == 4 else 0)
    return _attention_products(b, node, name, q, k, v, batch=batch, heads=heads, seq_q=seq, seq_kv=seq_kv,
                               head=head, head_v=head, shape=known_shape(node.output[0]) or (batch, seq, heads * head),
                               label=label)


def _attention_products(b: GraphBuilder, node: onnx.NodeProto, name: str, q: str, k: str, v: str, *, batch: int,
                        heads: int, seq_q: int, seq_kv: int, head: int, head_v: int, shape: tuple[int, ...],
                        label: Callable[[str], None]) -> str:
    """Per query head, ``Q K^T``, its softmax and the product with ``V``: the node's last layer is its own."""
    made = [f"{name}/scores", f"{name}/softmax", name]
    scores = b.layer(OpKind.MATMUL, [q, k], [(batch, heads, seq_q, seq_kv)], name=made[0], outs=[made[0]],
                     gemm=GemmShape(m=seq_q, k=head, n=seq_kv, batch=batch * heads),
                     attrs={"fn": "attention_scores"}, source_op=node.op_type)[0]
    probs = b.softmax(scores, -1, made[1], out=made[1], source_op=node.op_type)
    out = b.layer(OpKind.MATMUL, [probs, v], [shape], name=name, outs=[node.output[0]],
                  gemm=GemmShape(m=seq_q, k=seq_kv, n=head_v, batch=batch * heads),
                  attrs={"fn": "attention_context"}, source_op=node.op_type)[0]
    for lname in made:
        label(lname)
    return out
