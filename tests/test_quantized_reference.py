"""Quantized ONNX import and the integer reference, bit for bit against onnxruntime.

Models are built here, without downloads: the shared ONNX graphs (weights stripped) and zoo graphs
(exported by workloads.onnx_export) get seeded random weights and are quantized by onnxruntime's own
quantize_static with seeded calibration data. onnxruntime then runs them and sim.reference must give
the same integer codes for every tensor and the same float32 output.
"""

from __future__ import annotations

import warnings
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accel.errors import WorkloadError
from accel.formats import NumberFormat, Requantization
from sim.numerics import gemm_array
from sim.reference import (
    ReferenceError,
    accumulators,
    gemm_operands,
    im2col,
    requantize_accumulators,
    run_layer,
    run_quantized,
)
from workloads.graph import OpKind, QuantParams, Tensor, TensorKind
from workloads.onnx_import import UnsupportedOpWarning, load_onnx
from workloads.onnx_qdq import fold_qdq
from workloads.quantize import calibration_inputs, shared_model, zoo_model

ort = pytest.importorskip("onnxruntime")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "onnx"
SMALL = {"input.1": (2, 3, 56, 40)}  # the shared CNNs end in a global pool: any batch and image size work


def _session(model: onnx.ModelProto, extra_outputs: list[str] = ()):  # type: ignore[assignment]
    model = onnx.ModelProto.FromString(model.SerializeToString())
    known = {o.name for o in model.graph.output}
    for name in extra_outputs:
        if name not in known:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _ort(model: onnx.ModelProto, feed: dict[str, np.ndarray], extra_outputs: list[str] = ()) -> dict[str, np.ndarray]:
    session = _session(model, extra_outputs)
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True))


@cache
def _shared(name: str, fmt: str, per_channel: bool, activations: str, small: bool):
    float_model, quantized = shared_model(SHARED / f"{name}.onnx", fmt=fmt, per_channel=per_channel,
                                          activations=activations, calibration=2,
                                          input_shapes=SMALL if small else None)
    return float_model, quantized, load_onnx(quantized)


def _assert_every_tensor_equal(quantized: onnx.ModelProto, graph, feed) -> None:
    """Every layer output of the reference equals onnxruntime's, codes and final float output."""
    ours = run_quantized(graph, feed, intermediates=True)
    operator_form = fold_qdq(quantized)  # its tensors are the graph's; for QDQ, onnxruntime fuses the same way
    names = [layer.outputs[0] for layer in graph.layers]
    theirs = _ort(operator_form, feed, names)
    for layer in graph.layers:
        name = layer.outputs[0]
        assert ours[name].shape == theirs[name].shape, layer.name
        diff = np.abs(ours[name].astype(np.float64) - theirs[name].astype(np.float64))
        assert diff.max() == 0, f"{layer.name} ({layer.source_op}): {int((diff > 0).sum())} elements differ"
    # And the model as written (QDQ: after onnxruntime's own graph optimizations), output for output.
    direct = _ort(quantized, feed)
    for out in graph.outputs:
        assert np.array_equal(ours[out.name], direct[out.name]), out.name


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ONNX graphs not found")
@pytest.mark.parametrize(("name", "fmt", "per_channel", "activations"), [
    ("resnet18", "qdq", False, "uint8"),
    ("mobilenetv2", "qdq", True, "uint8"),
    ("mobilenetv2", "qoperator", True, "int8"),
])
def test_shared_cnns_small_images_bit_exact(name: str, fmt: str, per_channel: bool, activations: str) -> None:
    float_model, quantized, graph = _shared(name, fmt, per_channel, activations, True)
    assert not graph.float_layers()
    feed = calibration_inputs(float_model, count=1, seed=99)[0]
    _assert_every_tensor_equal(quantized, graph, feed)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ONNX graphs not found")
def test_resnet18_224_per_channel_bit_exact() -> None:
    float_model, quantized, graph = _shared("resnet18", "qoperator", True, "uint8", False)
    feed = calibration_inputs(float_model, count=1, seed=5)[0]
    _assert_every_tensor_equal(quantized, graph, feed)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ONNX graphs not found")
@pytest.mark.parametrize(("name", "fmt", "per_channel"),
                         [("resnet18", "qdq", False), ("mobilenetv2", "qdq", True)])
def test_quantized_import_keeps_float_macs_and_shapes(name: str, fmt: str, per_channel: bool) -> None:
    float_model, quantized, graph = _shared(name, fmt, per_channel, "uint8", True)
    reference = load_onnx(float_model)
    assert graph.total_macs == reference.total_macs
    def shapes(g):  # the quantizer may list independent nodes in another order
        return sorted((lay.gemm.m, lay.gemm.k, lay.gemm.n, lay.gemm.batch, g.tensors[lay.outputs[0]].shape)
                      for lay in g.layers if lay.gemm)

    assert shapes(graph) == shapes(reference)
    conv = next(lay for lay in graph.layers if lay.op is OpKind.CONV)
    weight = graph.tensors[conv.inputs[1]]
    assert weight.dtype == "int8" and weight.value is not None and weight.value.dtype == np.int8
    assert weight.quant is not None and weight.quant.per_channel == per_channel
    assert graph.tensors[conv.inputs[2]].dtype == "int32"
    assert graph.tensors[conv.outputs[0]].dtype == "uint8"
    ops = gemm_operands(graph, conv)
    assert ops.weight.shape == (conv.gemm.batch, conv.gemm.k, conv.gemm.n)
    assert ops.scale.dtype == np.float32 and ops.scale.shape == (conv.gemm.batch, conv.gemm.n)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ONNX graphs not found")
def test_raw_codes_with_folded_bias_give_the_same_accumulators() -> None:
    """The array's form: raw input codes (padding = x_zp) times shifted weights plus the folded bias."""
    float_model, quantized, graph = _shared("mobilenetv2", "qoperator", True, "int8", True)
    feed = calibration_inputs(float_model, count=1, seed=99)[0]
    values = run_quantized(graph, feed, intermediates=True)
    convs = [lay for lay in graph.layers if lay.op is OpKind.CONV]
    for layer in (convs[0], next(lay for lay in convs if lay.attrs["depthwise"]), convs[-1]):
        ops = gemm_operands(graph, layer)
        x = values[layer.inputs[0]]
        cols = im2col(graph, layer, x.astype(np.int64), ops.x_zero_point)
        raw = gemm_array(cols, ops.weight - ops.w_zero_point[:, None, :], a_format=NumberFormat(16),
                         b_format=NumberFormat(16)) + ops.folded_bias[:, None, :]
        acc = accumulators(graph, layer, x)
        assert np.array_equal(raw, acc), layer.name
        n, oc, oh, ow = graph.tensors[layer.outputs[0]].shape
        codes = requantize_accumulators(ops, acc)
        nchw = codes.reshape(ops.groups, n, oh, ow, -1).transpose(1, 0, 4, 2, 3).reshape(n, oc, oh, ow)
        assert np.array_equal(nchw, values[layer.outputs[0]]), layer.name


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ONNX graphs not found")
@pytest.mark.parametrize("mode", [Requantization.TFLITE_DOUBLE, Requantization.TFLITE_SINGLE])
def test_resnet_adds_in_tflite_modes_within_one_code_of_onnxruntime(mode: Requantization) -> None:
    float_model, quantized, graph = _shared("resnet18", "qdq", False, "uint8", True)
    feed = calibration_inputs(float_model, count=1, seed=99)[0]
    values = run_quantized(graph, feed, intermediates=True)  # onnxruntime's codes (float32 mode)
    adds = [lay for lay in graph.layers if lay.op is OpKind.ELEMENTWISE]
    assert len(adds) == 8
    for layer in adds:
        ours = run_layer(graph, layer, values, requant=mode)[layer.outputs[0]]
        assert np.abs(ours - values[layer.outputs[0]]).max() <= 1, layer.name
    if mode is Requantization.TFLITE_DOUBLE:  # the whole network runs integer-only in this mode
        assert run_quantized(graph, feed, requant=mode)[graph.outputs[0].name].shape == (2, 1000)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ONNX graphs not found")
def test_weights_pruned_2_4_before_quantization_stay_2_4_and_bit_exact() -> None:
    from sim.numerics import nm_check
    from workloads import sparsify

    float_model, quantized = shared_model(SHARED / "resnet18.onnx", fmt="qoperator", per_channel=True, calibration=1,
                                          input_shapes={"input.1": (1, 3, 32, 32)}, nm="2:4")
    graph = sparsify(load_onnx(quantized), "2:4")
    array = [lay for lay in graph.layers if lay.gemm is not None]
    assert len(array) == 21 and all(lay.sparsity is not None for lay in array)
    for layer in array:
        weight = gemm_operands(graph, layer).weight  # groups x k x n, k in the reduction order
        assert all(nm_check(w, 2, 4, axis=0) for w in weight), layer.name
        assert np.count_nonzero(weight) <= weight.size // 2 + weight.shape[0] * weight.shape[2], layer.name
    feed = calibration_inputs(float_model, count=1, seed=4)[0]
    ours = run_quantized(graph, feed)
    theirs = _ort(quantized, feed)
    assert all(np.array_equal(ours[t.name], theirs[t.name]) for t in graph.outputs)


def test_zoo_resnet18_export_quantizes_to_the_zoo_macs() -> None:
    from workloads import zoo

    float_model, quantized = zoo_model("resnet18", fmt="qoperator", calibration=1)
    graph = load_onnx(quantized)
    assert graph.total_macs == load_onnx(float_model).total_macs == zoo.build("resnet18").total_macs
    assert not graph.float_layers()
    assert sum(lay.op is OpKind.CONV for lay in graph.layers) == 20


@cache
def _bert():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsupportedOpWarning)  # QLinearSoftmax: imported as a pass-through
        float_model, quantized = zoo_model("bert_base_layer", fmt="qoperator", calibration=1)
        return float_model, quantized, load_onnx(quantized)


def test_bert_layer_float_ops_are_reported_never_run() -> None:
    float_model, quantized, graph = _bert()
    assert graph.total_macs == load_onnx(float_model).total_macs
    assert sorted(lay.source_op for lay in graph.float_layers()) == [
        "Gelu", "LayerNormalization", "LayerNormalization", "QLinearSoftmax"]
    feed = calibration_inputs(float_model, count=1, seed=3)[0]
    with pytest.raises(ReferenceError, match=r"layer\(s\) cannot run integer-only: .*QLinearSoftmax"):
        run_quantized(graph, feed)


def test_bert_layer_integer_part_bit_exact() -> None:
    """Q, K, V projections (QLinearMatMul, QLinearAdd of the bias), head split (reshape, transpose), the
    attention scores (QLinearMatMul of two activations) and their scaling (QLinearMul) equal onnxruntime."""
    float_model, quantized, graph = _bert()
    wanted = [graph.layer(name).outputs[0] for name in (  # quantize_static's node names
        "attention.q.bias_quant", "attention.k.bias_quant", "attention.v.bias_quant", "attention.scores_quant",
        "attention.scale_mul_quant")]
    feed = calibration_inputs(float_model, count=1, seed=3)[0]
    ours = run_quantized(graph, feed, outputs=wanted)
    theirs = _ort(quantized, feed, wanted)
    for name in wanted:
        assert np.array_equal(ours[name], theirs[name]), name


def _integer_ops_model() -> onnx.ModelProto:
    """uint8 input -> ConvInteger (int32) and MatMulInteger (int32): the accumulators themselves."""
    rng = np.random.default_rng(4)
    # 7-bit weights: onnxruntime's AVX2 u8s8 kernels saturate pairs of full-range int8 products (see
    # workloads.quantize.quantize_model); the reference is exact either way
    w = rng.integers(-64, 64, (4, 3, 3, 3)).astype(np.int8)
    m = rng.integers(-64, 64, (8, 5)).astype(np.int8)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(7, np.uint8), "xz"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"), numpy_helper.from_array(m, "m"),
             numpy_helper.from_array(np.array(130, np.uint8), "az"),
             numpy_helper.from_array(np.array(3, np.int8), "mz")]
    nodes = [helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("MatMulInteger", ["a", "m", "az", "mz"], ["z"], name="mm")]
    graph = helper.make_graph(nodes, "integer_ops",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, (1, 3, 6, 6)),
                               helper.make_tensor_value_info("a", TensorProto.UINT8, (2, 8))],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, None),
                               helper.make_tensor_value_info("z", TensorProto.INT32, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_conv_integer_and_matmul_integer_accumulators_bit_exact() -> None:
    model = _integer_ops_model()
    graph = load_onnx(model)
    assert [lay.attrs["numerics"] for lay in graph.layers] == ["integer", "integer"]
    assert graph.tensors["x"].quant == QuantParams((), (7,))
    rng = np.random.default_rng(8)
    feed = {"x": rng.integers(0, 256, (1, 3, 6, 6)).astype(np.uint8),
            "a": rng.integers(0, 256, (2, 8)).astype(np.uint8)}
    ours = run_quantized(graph, feed)
    theirs = _ort(model, feed)
    assert ours["y"].shape == (1, 4, 6, 6)
    assert np.array_equal(ours["y"], theirs["y"]) and np.array_equal(ours["z"], theirs["z"])


@pytest.mark.parametrize("mode", [Requantization.TFLITE_DOUBLE, Requantization.TFLITE_SINGLE,
                                  Requantization.DYADIC])
def test_other_requant_modes_differ_from_onnxruntime_by_rounding_only(mode: Requantization) -> None:
    model = _tiny_conv_model()
    graph = load_onnx(model)
    feed = calibration_inputs(model, count=1, seed=2)[0]
    exact = run_quantized(graph, feed)["y_q"]
    assert np.array_equal(exact, _ort(model, feed)["y_q"])
    other = run_quantized(graph, feed, requant=mode)["y_q"]
    assert np.abs(other - exact).max() <= 1


def _tiny_conv_model() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    q = lambda name, v, dt: numpy_helper.from_array(np.asarray(v, dtype=dt), name)  # noqa: E731
    inits = [q("w", rng.integers(-64, 64, (8, 4, 3, 3)), np.int8), q("ws", rng.uniform(0.001, 0.01, 8), np.float32),
             q("wz", np.zeros(8), np.int8), q("xs", 0.02, np.float32), q("xz", 128, np.uint8),
             q("ys", 0.05, np.float32), q("yz", 100, np.uint8), q("b", rng.integers(-5000, 5000, 8), np.int32)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["x_q"], name="quant"),
             helper.make_node("QLinearConv", ["x_q", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y_q"],
                              name="conv", pads=[1, 1, 1, 1], strides=[2, 2])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4, 9, 9))],
                              [helper.make_tensor_value_info("y_q", TensorProto.UINT8, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_tiny_qlinear_conv_with_odd_stride_padding_bit_exact() -> None:
    model = _tiny_conv_model()
    graph = load_onnx(model)
    assert graph.tensors["w"].quant.axis == 0 and graph.tensors["w"].quant.per_channel
    for seed in range(3):
        feed = calibration_inputs(model, count=1, seed=seed)[0]
        assert np.array_equal(run_quantized(graph, feed)["y_q"], _ort(model, feed)["y_q"])


def test_reference_errors_name_what_is_wrong() -> None:
    graph = load_onnx(_tiny_conv_model())
    with pytest.raises(ReferenceError, match=r"^Graph 'tiny': no value given for input 'x' \(shape \(1, 4, 9, 9\)\)$"):
        run_quantized(graph, {})
    with pytest.raises(ReferenceError, match=r"input 'x' must have shape \(1, 4, 9, 9\), not \(1, 4, 8, 8\)"):
        run_quantized(graph, {"x": np.zeros((1, 4, 8, 8), np.float32)})
    with pytest.raises(ReferenceError, match=r"^Graph 'tiny' has no tensor 'nope'$"):
        run_quantized(graph, {"x": np.zeros((1, 4, 9, 9), np.float32)}, outputs=["nope"])


def test_qdq_around_a_float_op_keeps_it_float_and_reports_it() -> None:
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "s")
    zero = numpy_helper.from_array(np.array(128, np.uint8), "z")
    other = numpy_helper.from_array(np.array(0.004, np.float32), "s2")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_in"),
             helper.make_node("Tanh", ["xd"], ["y"], name="tanh"),
             helper.make_node("QuantizeLinear", ["y", "s2", "z"], ["yq"], name="q_out"),
             helper.make_node("DequantizeLinear", ["yq", "s2", "z"], ["out"], name="dq_out")]
    graph = helper.make_graph(nodes, "qdq_tanh", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 8))],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, (1, 8))], [scale, zero, other])
    imported = load_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    assert [(lay.name, lay.attrs["numerics"]) for lay in imported.layers] == [
        ("q_in", "quantize"), ("dq_in", "dequantize"), ("tanh", "float"), ("q_out", "quantize"),
        ("dq_out", "dequantize")]
    assert [lay.name for lay in imported.float_layers()] == ["tanh"]
    assert imported.tensors["yq"].quant == QuantParams((0.004,), (128,)) and imported.tensors["yq"].dtype == "uint8"
    with pytest.raises(ReferenceError, match=r"^Graph 'qdq_tanh': 1 layer\(s\) cannot run integer-only: tanh "
                                             r"\(Tanh computes in floating point\)$"):
        run_quantized(imported, {"x": np.zeros((1, 8), np.float32)})
    assert run_quantized(imported, {"x": np.full((1, 8), 0.12, np.float32)}, outputs=["xq"])["xq"].tolist() == \
        [[130] * 8]  # 0.12 / 0.05 = 2.4 -> 2, + 128


def test_a_tensor_quantized_twice_differently_is_an_error() -> None:
    model = _tiny_conv_model()
    conv = model.graph.node[1]
    conv.input[1] = "ys"  # the conv claims its input has the output's scale
    with pytest.raises(WorkloadError, match=r"layer 'conv' reads 'x_q' with scale/zero point .* but it was quantized"):
        load_onnx(model)


def test_tensor_value_is_not_part_of_equality() -> None:
    a = Tensor("w", (2,), "int8", TensorKind.CONSTANT, value=np.array([1, 2], np.int8))
    b = Tensor("w", (2,), "int8", TensorKind.CONSTANT, value=np.array([3, 4], np.int8))
    assert a == b and hash(a) == hash(b)
    assert not a.value.flags.writeable
    assert Tensor("w", (2,), quant=QuantParams((0.5,), (3,))) != Tensor("w", (2,), quant=QuantParams((0.5,), (4,)))
