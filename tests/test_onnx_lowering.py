"""ONNX recurrent cells and transposed convolutions become the layers an accelerator runs for them;
``Einsum`` the product its indices say, ``Split`` and ``Slice`` views shaped as ONNX defines them.

MACs are checked against the operators' own definitions (counted here, independently of the
importer) and output shapes against ONNX shape inference; each model is mapped, proven by the plan
checker and simulated. The layers claim no integer semantics: in a quantized model they are float.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import mapper
import sim
from accel.config import load
from workloads.graph import OpKind
from workloads.onnx_import import UnsupportedOpWarning, load_onnx

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _recurrent_model(op: str, *, seq: int, batch: int, features: int, hidden: int, direction: str = "forward",
                     bias: bool = True, initial_h: bool = False, outputs: tuple[str, ...] = ("y", "y_h"),
                     layout: int = 0) -> onnx.ModelProto:
    gates, dirs = GATES[op], 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((dirs, gates * hidden, features)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((dirs, gates * hidden, hidden)).astype(np.float32), "R")]
    inputs = ["x", "W", "R"]
    if bias:
        inits.append(numpy_helper.from_array(np.zeros((dirs, 2 * gates * hidden), np.float32), "B"))
    inputs.append("B" if bias else "")
    x_shape = [batch, seq, features] if layout else [seq, batch, features]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
    if initial_h:
        inputs += ["", "h0"]
        state = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
        graph_inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, state))
    node_outputs = [name if name in outputs else "" for name in ("y", "y_h", "y_c")[:3 if op == "LSTM" else 2]]
    node = helper.make_node(op, inputs, node_outputs, name="cell", hidden_size=hidden, direction=direction,
                            layout=layout)
    graph = helper.make_graph([node], "rnn", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def _recurrent_macs(op: str, seq: int, batch: int, features: int, hidden: int, dirs: int, initial_h: bool) -> int:
    """Per direction and step: x_t W^T and (past the zero initial state) h W_r^T, each gate's."""
    gates = GATES[op]
    recurrent_steps = seq if initial_h else seq - 1
    return dirs * batch * gates * hidden * (seq * features + recurrent_steps * hidden)


@pytest.mark.parametrize(("op", "direction", "initial_h", "layout"), [
    ("LSTM", "forward", False, 0), ("LSTM", "bidirectional", True, 0), ("GRU", "reverse", False, 1),
    ("GRU", "bidirectional", False, 0), ("RNN", "forward", True, 0)])
def test_a_recurrent_cell_is_an_input_projection_and_a_recurrent_gemm_per_step(op, direction, initial_h, layout):
    seq, batch, features, hidden = 6, 2, 24, 16
    dirs = 2 if direction == "bidirectional" else 1
    model = _recurrent_model(op, seq=seq, batch=batch, features=features, hidden=hidden, direction=direction,
                             initial_h=initial_h, layout=layout)
    inferred = onnx.shape_inference.infer_shapes(model)
    expected = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in inferred.graph.output}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)  # modelled, not passed through
        graph = load_onnx(model)
    assert graph.total_macs == _recurrent_macs(op, seq, batch, features, hidden, dirs, initial_h)
    for name, shape in expected.items():
        assert graph.tensors[name].shape == shape
    projection = graph.layer("cell/input")
    assert projection.gemm is not None and (projection.gemm.m, projection.gemm.k, projection.gemm.n) == \
        (seq * batch, features, dirs * GATES[op] * hidden)
    steps = [layer for layer in graph.layers if layer.name.startswith("cell/recurrent")]
    assert len(steps) == (seq if initial_h else seq - 1)
    assert all(s.gemm.batch == dirs and (s.gemm.m, s.gemm.k) == (batch, hidden) for s in steps)
    # every step reads the state the one before wrote: a chain the scheduler cannot reorder
    producers = {t: layer.name for layer in graph.layers for t in layer.outputs}
    for before, after in zip(steps, steps[1:], strict=False):
        assert graph.layers.index(graph.layer(producers[after.inputs[0]])) > graph.layers.index(before)
    plan = mapper.map_graph(graph, load("gemmini"))
    assert sim.simulate(plan).macs == graph.total_macs


def test_an_lstm_counts_its_gates_cell_and_hidden_state_as_vector_work():
    graph = load_onnx(_recurrent_model("LSTM", seq=3, batch=1, features=8, hidden=4, outputs=("y_h", "y_c")))
    units = 4  # hidden units of a step (one direction, one batch row)
    ops = {layer.name: layer.vector_ops for layer in graph.layers if layer.op is OpKind.ELEMENTWISE}
    assert ops["cell/gates0"] == units * (4 * 3 + 4)  # 4 gates: x, h and two bias parts; 4 activations
    assert ops["cell/cell0"] == units * 1 and ops["cell/cell1"] == units * 3  # i g, then f c + i g
    assert ops["cell"] == units * 2  # the last step's h = o tanh(c) is the node's own layer
    assert graph.tensors["y_h"].shape == graph.tensors["y_c"].shape == (1, 1, 4)


def _conv_transpose_model(*, channels: int, out_channels: int, size: int, kernel: int, stride: int, pads: int,
                          output_padding: int, group: int) -> onnx.ModelProto:
    w = np.zeros((channels, out_channels // group, kernel, kernel), np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="up", strides=[stride, stride],
                            pads=[pads] * 4, output_padding=[output_padding] * 2, group=group)
    graph = helper.make_graph(
        [node], "deconv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(out_channels, np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("kernel", "stride", "pads", "output_padding", "group"),
                         [(2, 2, 0, 0, 1), (3, 2, 1, 1, 1), (4, 2, 1, 0, 2), (3, 1, 1, 0, 4)])
def test_a_transposed_convolution_is_a_gemm_and_its_col2im(kernel, stride, pads, output_padding, group):
    channels, out_channels, size = 8, 12, 7
    model = _conv_transpose_model(channels=channels, out_channels=out_channels, size=size, kernel=kernel,
                                  stride=stride, pads=pads, output_padding=output_padding, group=group)
    inferred = onnx.shape_inference.infer_shapes(model)
    y = tuple(d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim)
    assert y == (1, out_channels, *(stride * (size - 1) + output_padding + kernel - 2 * pads,) * 2)
    graph = load_onnx(model)
    # each input pixel's channels times each weight of its group: the direct method, no inserted zeros
    assert graph.total_macs == size * size * channels * (out_channels // group) * kernel * kernel
    assert graph.tensors["y"].shape == y
    col2im = graph.layer("up")
    assert col2im.op is OpKind.ELEMENTWISE and col2im.vector_ops == graph.total_macs // (channels // group)
    plan = mapper.map_graph(graph, load("fpga-small"))
    assert sim.simulate(plan).dram_bytes == plan.dram_bytes


def test_the_lowered_layers_of_a_quantized_model_are_float(tmp_path):
    # a model with any QuantizeLinear is quantized: layers made by a lowering claim no integer semantics
    model = _recurrent_model("GRU", seq=2, batch=1, features=8, hidden=4, outputs=("y",))
    q = helper.make_node("QuantizeLinear", ["y", "s", "z"], ["q"], name="q")
    model.graph.node.append(q)
    model.graph.initializer.extend([numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                                    numpy_helper.from_array(np.array(0, np.int8), "z")])
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("q", TensorProto.INT8, None))
    graph = load_onnx(model)
    lowered = [layer for layer in graph.layers if layer.source_op == "GRU"]
    assert lowered and all(layer.attrs.get("numerics") == "float" for layer in lowered)


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:  # noqa: ANN001
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _inferred(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    out = onnx.shape_inference.infer_shapes(model).graph.output
    return {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in out}


def test_split_and_slice_are_views_shaped_as_onnx_defines_them():
    ints = lambda name, values: numpy_helper.from_array(np.array(values, np.int64), name)  # noqa: E731
    nodes = [helper.make_node("Split", ["x", "parts"], ["a", "b"], name="split", axis=1),
             helper.make_node("Split", ["x"], ["c", "d", "e"], name="thirds", axis=2),
             helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["s"], name="slice")]
    model = _model(nodes, [("x", [2, 12, 9])], ["a", "b", "c", "d", "e", "s"],
                   [ints("parts", [3, 9]), ints("starts", [1, -4]), ints("ends", [2**63 - 1, -1]),
                    ints("axes", [1, 2]), ints("steps", [2, 1])])
    graph = load_onnx(model)
    for name, shape in _inferred(model).items():
        assert graph.tensors[name].shape == shape, name
    assert graph.tensors["s"].shape == (2, 6, 3)
    assert graph.layer("split").op is OpKind.PASSTHROUGH and graph.total_macs == 0


def test_a_two_operand_einsum_is_the_batched_product_its_indices_say():
    w = numpy_helper.from_array(np.zeros((64, 32), np.float32), "w")
    nodes = [helper.make_node("Einsum", ["x", "w"], ["y"], name="proj", equation="btd,de->bte"),
             helper.make_node("Einsum", ["q", "k"], ["scores"], name="scores", equation="bhqd, bhkd -> bhqk")]
    model = _model(nodes, [("x", [2, 8, 64]), ("q", [2, 4, 8, 16]), ("k", [2, 4, 8, 16])], ["y", "scores"], [w])
    graph = load_onnx(model)
    proj, scores = graph.layer("proj"), graph.layer("scores")
    assert proj.op is OpKind.GEMM and (proj.gemm.m, proj.gemm.k, proj.gemm.n, proj.gemm.batch) == (16, 64, 32, 1)
    assert scores.op is OpKind.MATMUL and (scores.gemm.m, scores.gemm.k, scores.gemm.n, scores.gemm.batch) == \
        (8, 16, 8, 8)
    assert proj.macs == 2 * 8 * 64 * 32 and scores.macs == 2 * 4 * 8 * 8 * 16  # every index's extent, multiplied
    for name, shape in _inferred(model).items():
        assert graph.tensors[name].shape == shape
    assert sim.simulate(mapper.map_graph(graph, load("gemmini"))).macs == graph.total_macs


@pytest.mark.parametrize(("mode", "taps"), [("nearest", 1), ("linear", 4), ("cubic", 16)])
def test_resize_is_a_vector_layer_of_its_interpolation_taps(mode, taps):
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode=mode)
    model = _model([node], [("x", [1, 3, 5, 7])], ["y"], [scales])
    graph = load_onnx(model)
    up = graph.layer("up")
    assert graph.tensors["y"].shape == _inferred(model)["y"] == (1, 3, 10, 14)
    assert up.op is OpKind.ELEMENTWISE and up.vector_ops == 3 * 10 * 14 * taps  # per output, per 2 resized axes


def test_resize_to_the_sizes_of_another_tensors_shape_takes_those_sizes():
    # an FPN's top-down path: upsample the coarse map to the skip connection's H x W (Shape -> Slice -> Concat),
    # with the batch left symbolic, so ONNX inference cannot tell the resized shape
    ints = lambda name, values: numpy_helper.from_array(np.array(values, np.int64), name)  # noqa: E731
    weights = [numpy_helper.from_array(np.zeros(shape, np.float32), name)
               for name, shape in (("w1", (4, 3, 3, 3)), ("w2", (4, 4, 3, 3)), ("w3", (2, 4, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["skip"], name="lateral", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["skip", "w2"], ["coarse"], name="down", strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["skip"], ["skip_shape"]),
             helper.make_node("Slice", ["skip_shape", "two", "four"], ["hw"]),
             helper.make_node("Shape", ["coarse"], ["coarse_shape"]),
             helper.make_node("Slice", ["coarse_shape", "zero", "two"], ["nc"]),
             helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
             helper.make_node("Resize", ["coarse", "", "", "sizes"], ["up"], name="up", mode="nearest"),
             helper.make_node("Add", ["up", "skip"], ["merged"], name="merge"),
             helper.make_node("Conv", ["merged", "w3"], ["y"], name="head")]
    model = _model(nodes, [("x", ["N", 3, "H", "W"])], ["y"],
                   [*weights, ints("zero", [0]), ints("two", [2]), ints("four", [4])], opset=13)
    graph = load_onnx(model, dims={"H": 16, "W": 12})
    assert graph.tensors["up"].shape == graph.tensors["skip"].shape == (1, 4, 16, 12)
    assert graph.layer("up").vector_ops == 4 * 16 * 12  # nearest: one op per output element
    assert graph.total_macs == 16 * 12 * 4 * 27 + 8 * 6 * 4 * 36 + 16 * 12 * 2 * 4


def test_onnxruntimes_fused_attention_is_its_qkv_projection_and_each_heads_two_products():
    # com.microsoft.Attention, as onnxruntime's transformer optimizer fuses a BERT layer's self-attention
    batch, seq, hidden, heads = 2, 8, 32, 4
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((hidden, 3 * hidden)).astype(np.float32), "qkv_weight"),
             numpy_helper.from_array(np.zeros(3 * hidden, np.float32), "qkv_bias")]
    node = helper.make_node("Attention", ["x", "qkv_weight", "qkv_bias"], ["y"], name="attn", domain="com.microsoft",
                            num_heads=heads)
    graph = helper.make_graph([node], "bert", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            [batch, seq, hidden])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)  # modelled, not passed through
        result = load_onnx(model)
    head = hidden // heads
    projection = batch * seq * hidden * 3 * hidden
    per_head = batch * heads * seq * seq * head  # Q K^T, and again the probabilities times V
    assert result.total_macs == projection + 2 * per_head
    assert result.layer("attn/qkv").op is OpKind.GEMM and result.layer("attn/softmax").op is OpKind.SOFTMAX
    assert result.tensors["y"].shape == (batch, seq, hidden)
    assert sim.simulate(mapper.map_graph(result, load("gemmini"))).macs == result.total_macs


@pytest.mark.parametrize(("q_shape", "kv_shape", "attrs", "heads", "seq_q", "seq_kv", "head"), [
    ((2, 4, 6, 8), (2, 4, 10, 8), {}, 4, 6, 10, 8),  # (batch, heads, seq, head size)
    ((2, 4, 6, 8), (2, 2, 10, 8), {}, 4, 6, 10, 8),  # grouped-query: two key/value heads
    ((2, 6, 32), (2, 10, 16), {"q_num_heads": 4, "kv_num_heads": 2}, 4, 6, 10, 8),  # 3-D: heads as attributes
], ids=["4-d", "grouped-query", "3-d"])
def test_onnx_attention_is_two_products_and_a_softmax_per_query_head(q_shape, kv_shape, attrs, heads, seq_q, seq_kv,
                                                                      head):
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], name="sdpa", **attrs)
    model = _model([node], [("q", list(q_shape)), ("k", list(kv_shape)), ("v", list(kv_shape))], ["y"], opset=23)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)
        graph = load_onnx(model)
    # Q K^T and the probabilities times V, for each query head (a key/value head serves a group of them)
    assert graph.total_macs == 2 * q_shape[0] * heads * seq_q * seq_kv * head
    assert graph.tensors["y"].shape == _inferred(model)["y"]
    assert graph.layer("sdpa/softmax").op is OpKind.SOFTMAX
    assert sim.simulate(mapper.map_graph(graph, load("gemmini"))).macs == graph.total_macs


@pytest.mark.parametrize(("equation", "a_shape", "b_shape", "contracted"), [
    ("...ij,...jk->...ik", (2, 3, 4, 8), (2, 3, 8, 5), 8),  # batched matmul over any leading dimensions
    ("...ij,...jk->...ik", (2, 1, 4, 8), (3, 8, 5), 8),  # ... broadcasts, right-aligned
    ("...d,de->...e", (2, 7, 16), (16, 4), 16),  # a projection of every position
    ("b...d,b...d", (2, 5, 6), (2, 5, 6), 2 * 6),  # implicit output: the ellipsis kept, b and d summed
], ids=["batched", "broadcast", "projection", "implicit"])
def test_an_einsum_with_an_ellipsis_is_the_product_over_the_dimensions_it_covers(equation, a_shape, b_shape,
                                                                               contracted):
    node = helper.make_node("Einsum", ["a", "b"], ["y"], name="es", equation=equation)
    model = _model([node], [("a", list(a_shape)), ("b", list(b_shape))], ["y"], opset=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)
        graph = load_onnx(model)
    expected = np.einsum(equation, np.zeros(a_shape), np.zeros(b_shape)).shape
    assert graph.tensors["y"].shape == expected
    # every output element sums the products over the contracted indices
    assert graph.total_macs == int(np.prod(expected)) * contracted


def test_onnxruntimes_multi_head_attention_is_two_products_and_a_softmax_per_head():
    batch, seq_q, seq_kv, hidden, heads = 2, 6, 10, 32, 4
    node = helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], name="mha", domain="com.microsoft",
                            num_heads=heads)
    inputs = [helper.make_tensor_value_info(t, TensorProto.FLOAT, [batch, seq_q if t == "q" else seq_kv, hidden])
              for t in "qkv"]
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)
        result = load_onnx(model)
    assert result.total_macs == 2 * batch * heads * seq_q * seq_kv * (hidden // heads)
    assert result.tensors["y"].shape == (batch, seq_q, hidden)
    assert {layer.source_op for layer in result.layers} == {"MultiHeadAttention"}


@pytest.mark.parametrize("packed", [False, True], ids=["separate-qkv", "packed-qkv"])
def test_group_query_attention_attends_to_the_past_and_the_new_keys(packed):
    # com.microsoft.GroupQueryAttention as LLM exports for onnxruntime write it: 8 query heads share 2 key/value
    # heads, and a cache of 7 past positions precedes the 5 new ones
    batch, seq, past, heads, kv_heads, head = 1, 5, 7, 8, 2, 16
    vi = helper.make_tensor_value_info
    inputs = [vi("q", TensorProto.FLOAT, [batch, seq, (heads + 2 * kv_heads * packed) * head])]
    if not packed:
        inputs += [vi(t, TensorProto.FLOAT, [batch, seq, kv_heads * head]) for t in "kv"]
    inputs += [vi(t, TensorProto.FLOAT, [batch, kv_heads, past, head]) for t in ("past_k", "past_v")]
    inputs += [vi("seqlens_k", TensorProto.INT32, [batch]), vi("total_seq", TensorProto.INT32, [])]
    node = helper.make_node("GroupQueryAttention", ["q", *(["", ""] if packed else ["k", "v"]), "past_k", "past_v",
                                                    "seqlens_k", "total_seq"], ["y", "present_k", "present_v"],
                            name="gqa", domain="com.microsoft", num_heads=heads, kv_num_heads=kv_heads)
    graph = helper.make_graph([node], "llm", inputs, [vi("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)
        result = load_onnx(model)
    # per query head: its new positions against every past and new key, then the probabilities times V
    assert result.total_macs == 2 * batch * heads * seq * (past + seq) * head
    assert result.tensors["y"].shape == (batch, seq, heads * head)


def test_onnx_attention_with_a_past_attends_to_the_past_and_the_new_keys():
    batch, heads, seq, past, head = 2, 4, 3, 9, 8
    node = helper.make_node("Attention", ["q", "k", "v", "", "past_k", "past_v"], ["y", "present_k", "present_v"],
                            name="sdpa")
    model = _model([node], [("q", [batch, heads, seq, head]), ("k", [batch, heads, seq, head]),
                            ("v", [batch, heads, seq, head]), ("past_k", [batch, heads, past, head]),
                            ("past_v", [batch, heads, past, head])], ["y"], opset=23)
    graph = load_onnx(model)
    assert graph.total_macs == 2 * batch * heads * seq * (past + seq) * head
    assert graph.tensors["y"].shape == _inferred(model)["y"]
