"""ONNX import: exact MAC totals on reference models, weightless files, unknown ops, bad files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accel.errors import WorkloadError
from workloads.graph import GemmShape, OpKind, TensorKind
from workloads.onnx_import import UnsupportedOpWarning, load_onnx

# Conv + Gemm/MatMul MACs of the three ZigZag reference models (weights stripped) at batch 1.
#   resnet18 and mobilenetv2 are torchvision exports: their totals equal the zoo's torchvision models.
#   alexnet is the ONNX model zoo's (BVLC Caffe) AlexNet: 96/256 filters, grouped conv2/4/5, no padding
#   on conv1 (54x54 output), hence fewer MACs than torchvision's.
REFERENCE_MACS = {
    "resnet18": 1_814_073_344,
    "mobilenetv2": 300_774_272,
    "alexnet": 654_560_384,
}


def _onnx_file(shared_data: Path, name: str) -> Path:
    return shared_data / "onnx" / f"{name}.onnx"


@pytest.mark.parametrize("name", sorted(REFERENCE_MACS))
def test_reference_models_give_exact_macs(shared_data: Path, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)
        graph = load_onnx(_onnx_file(shared_data, name))
    assert graph.total_macs == REFERENCE_MACS[name]
    assert graph.total_macs == sum(lay.macs for lay in graph.layers if lay.op in (OpKind.CONV, OpKind.GEMM))


@pytest.mark.parametrize("name", sorted(REFERENCE_MACS))
def test_batch_override(shared_data: Path, name: str) -> None:
    graph = load_onnx(_onnx_file(shared_data, name), batch=3)
    assert graph.total_macs == 3 * REFERENCE_MACS[name]
    assert graph.inputs[0].shape[0] == 3
    assert all(t.shape[0] == 3 for t in graph.outputs)


def test_resnet18_structure(shared_data: Path) -> None:
    graph = load_onnx(_onnx_file(shared_data, "resnet18"))
    ops = [lay.op for lay in graph.layers]
    assert ops.count(OpKind.CONV) == 20 and ops.count(OpKind.GEMM) == 1
    assert ops.count(OpKind.ELEMENTWISE) == 8 and ops.count(OpKind.POOL) == 2
    conv1 = graph.layer("/conv1/Conv")
    assert conv1.gemm == GemmShape(m=112 * 112, k=3 * 49, n=64)
    assert graph.tensors[conv1.inputs[1]].kind is TensorKind.CONSTANT
    # The export folds each batch norm (2 parameters per channel in torchvision's 11,689,512) into its
    # conv's bias (1 per channel).
    bn_channels = sum(graph.tensors[lay.outputs[0]].shape[1] for lay in graph.layers if lay.op is OpKind.CONV)
    assert graph.weight_bytes == 11_689_512 - bn_channels


def test_mobilenetv2_depthwise_and_relu6(shared_data: Path) -> None:
    graph = load_onnx(_onnx_file(shared_data, "mobilenetv2"))
    depthwise = [lay for lay in graph.layers if lay.op is OpKind.CONV and lay.attrs["depthwise"]]
    assert len(depthwise) == 17
    assert all(lay.gemm.n == 1 and lay.gemm.k == 9 for lay in depthwise)
    clips = [lay for lay in graph.layers if lay.source_op == "Clip"]
    assert len(clips) == 35 and all(lay.attrs["fn"] == "relu6" for lay in clips)


def test_dtype_none_keeps_file_types(shared_data: Path) -> None:
    graph = load_onnx(_onnx_file(shared_data, "resnet18"), dtype=None)
    assert graph.inputs[0].dtype == "float32"
    assert graph.tensors["fc.weight"].dtype == "float32"


def test_truncated_file_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    data = _onnx_file(shared_data, "resnet18").read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*cut\.onnx' cannot be parsed as an ONNX model"):
        load_onnx(bad)


def test_garbage_file_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"this is not a protobuf, just some text\n" * 3)
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*garbage\.onnx' (cannot be parsed|is not an ONNX)"):
        load_onnx(bad)
    rnd = tmp_path / "random.onnx"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*random\.onnx'"):
        load_onnx(rnd)
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*missing\.onnx' does not exist"):
        load_onnx(tmp_path / "missing.onnx")


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_unknown_op_becomes_passthrough_with_warning(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.zeros((8, 4), np.float32), "w")
    nodes = [
        helper.make_node("FancyActivation", ["x"], ["h"], name="fancy", domain="com.example"),
        helper.make_node("MatMul", ["h", "w"], ["y"], name="mm"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    path = _save(model, tmp_path / "custom.onnx")
    with pytest.warns(UnsupportedOpWarning, match=r"op 'FancyActivation' \(node 'fancy'\) is not modelled"):
        result = load_onnx(path)
    fancy = result.layer("fancy")
    assert fancy.op is OpKind.PASSTHROUGH and fancy.macs == 0
    assert result.tensors["h"].shape == (1, 8)  # unknown output shape: the input's
    assert result.layer("mm").op is OpKind.GEMM
    assert result.layer("mm").gemm == GemmShape(m=1, k=8, n=4)


def test_constant_of_shape_and_missing_external_weights(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    # An initializer whose data lives in an external file that does not exist.
    bias = TensorProto(name="b", data_type=TensorProto.FLOAT, dims=[4])
    bias.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "nowhere.bin"), ("offset", "0"), ("length", "16")):
        entry = bias.external_data.add()
        entry.key, entry.value = key, value
    nodes = [
        helper.make_node("Constant", [], ["wshape"], value=numpy_helper.from_array(
            np.array([4, 3, 3, 3], np.int64))),
        helper.make_node("ConstantOfShape", ["wshape"], ["w"],
                         value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Shape", ["r"], ["rs"]),
        helper.make_node("Gather", ["rs", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero1d"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["y"], name="flatten"),
    ]
    inits = [bias, numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "zero1d"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "cos.onnx")
    result = load_onnx(path, batch=2)
    assert [lay.name for lay in result.layers] == ["conv", "relu", "flatten"]  # shape maths folded away
    assert result.tensors["w"].kind is TensorKind.CONSTANT and result.tensors["w"].shape == (4, 3, 3, 3)
    assert result.layer("conv").gemm == GemmShape(m=2 * 64, k=27, n=4)
    assert result.tensors["y"].shape == (2, 256)


def test_undefined_tensor_is_an_error(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")], "g", [x], [y])
    path = _save(helper.make_model(graph), tmp_path / "ghost.onnx")
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*ghost\.onnx': node 'add' \(Add\) reads tensor"
                                            r" 'ghost', which no earlier node, input or initializer defines$"):
        load_onnx(path)


def test_transformer_ops(tmp_path: Path) -> None:
    s, d = 16, 32
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, s, d])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, s, d])
    inits = [numpy_helper.from_array(np.zeros(shape, np.float32), name)
             for name, shape in (("wq", (d, d)), ("wk", (d, d)), ("g", (d,)), ("beta", (d,)))]
    nodes = [
        helper.make_node("LayerNormalization", ["x", "g", "beta"], ["n"], name="ln", axis=-1),
        helper.make_node("MatMul", ["n", "wq"], ["q"], name="q"),
        helper.make_node("MatMul", ["n", "wk"], ["k"], name="k"),
        helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["sc"], name="scores"),
        helper.make_node("Softmax", ["sc"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "q"], ["ctx"], name="context"),
        helper.make_node("Gelu", ["ctx"], ["y"], name="gelu"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), tmp_path / "t.onnx")
    result = load_onnx(path)
    assert result.layer("q").op is OpKind.GEMM
    assert result.layer("scores").op is OpKind.MATMUL
    assert result.layer("scores").gemm == GemmShape(m=s, k=d, n=s)
    assert result.layer("ln").op is OpKind.NORM and result.layer("gelu").attrs["fn"] == "gelu"
    assert result.total_macs == 2 * s * d * d + 2 * s * s * d


def _dynamic_matmul(tmp_path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])
    w = numpy_helper.from_array(np.zeros((8, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g", [x], [y], [w])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "dynamic.onnx")


def test_symbolic_dimensions_take_the_sizes_given_by_name(tmp_path: Path) -> None:
    path = _dynamic_matmul(tmp_path)
    assert load_onnx(path).layer("mm").gemm == GemmShape(m=1, k=8, n=4)  # each left symbolic is 1 (a warning)
    graph = load_onnx(path, dims={"seq": 128, "batch": 2})
    assert graph.tensors["y"].shape == (2, 128, 4) and graph.layer("mm").gemm == GemmShape(m=256, k=8, n=4)
    assert load_onnx(path, batch=3, dims={"seq": 5}).tensors["y"].shape == (3, 5, 4)
    with pytest.raises(WorkloadError, match=r"no input has a symbolic dimension 'tokens' \(its inputs name "
                                            r"'batch', 'seq'\)"):
        load_onnx(path, dims={"tokens": 128})
    with pytest.raises(WorkloadError, match=r"dimension 'seq' must be a positive integer, not 0"):
        load_onnx(path, dims={"seq": 0})


@pytest.mark.parametrize("axis", [-4, -3, -1, 0, 2, 4])
def test_flatten_splits_the_dimensions_at_its_axis_counted_from_the_end_when_negative(axis: int) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Flatten", ["x"], ["y"], name="flatten", axis=axis)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    inferred = onnx.shape_inference.infer_shapes(model).graph.output[0].type.tensor_type.shape
    split = axis % 4 if axis < 0 else axis  # ONNX: a negative axis counts from the back, -r..r are valid
    expected = (int(np.prod([2, 3, 5, 4][:split])), int(np.prod([2, 3, 5, 4][split:])))
    assert tuple(d.dim_value for d in inferred.dim) == expected
    assert load_onnx(model).tensors["y"].shape == expected


def _one_node_model(node: onnx.NodeProto, x_shape: list[int], inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([node], "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


_W = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")


@pytest.mark.parametrize(("node", "x_shape", "inits", "message"), [
    (helper.make_node("MaxPool", ["x"], ["y"], name="pool"), [1, 3, 8, 8], [],
     r"node 'pool' \(MaxPool\): attribute kernel_shape is required"),
    (helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2]), [1, 3, 8, 8], [],
     r"node 'pool' \(AveragePool\): strides must be 2 integers of at least 1 \(the input \(1, 3, 8, 8\) has 2 "
     r"spatial axes\), not \[2\]"),
    (helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1]), [1, 3, 8, 8], [_W],
     r"node 'conv' \(Conv\): pads must be 4 integers of at least 0 \(the input \(1, 3, 8, 8\) has 2 spatial "
     r"axes\), not \[1, 1\]"),
    (helper.make_node("Conv", ["x", "w"], ["y"], name="conv", auto_pad="SAME"), [1, 3, 8, 8], [_W],
     r"node 'conv' \(Conv\): auto_pad must be one of NOTSET, VALID, SAME_UPPER, SAME_LOWER, not 'SAME'"),
    (helper.make_node("Conv", ["x", "w"], ["y"], name="conv"), [3, 8],
     [numpy_helper.from_array(np.zeros((4, 3, 3), np.float32), "w")],
     r"node 'conv' \(Conv\): weight 'w' must have the input's rank 2 \(out channels, in channels / group, "
     r"kernel\), not shape \(4, 3, 3\)"),
    (helper.make_node("Conv", ["x", "w"], ["y"], name="conv"), [3, 8, 8], [_W],
     r"node 'conv' \(Conv\): weight 'w' must have the input's rank 3"),
    (helper.make_node("Gemm", ["x", "w"], ["y"], name="fc"), [8],
     [numpy_helper.from_array(np.zeros((8, 4), np.float32), "w")],
     r"node 'fc' \(Gemm\): A and B must be 2-D matrices, not 'x' of shape \(8,\) and 'w' of shape \(8, 4\)$"),
    (helper.make_node("Slice", ["x", "starts", "ends"], ["y"], name="crop"), [4, 8],
     [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("starts", [0, 0]), ("ends", [2]))],
     r"node 'crop' \(Slice\): starts, ends, axes and steps must have one value per sliced axis, not \[0, 0\], "
     r"\[2\], \[0, 1\] and \[1, 1\]$"),
    (helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"], name="crop"), [4, 8],
     [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("starts", [0]), ("ends", [2]), ("axes", [2]))],
     r"node 'crop' \(Slice\): axes must be distinct axes of its input of shape \(4, 8\), not \[2\]$"),
    (helper.make_node("Concat", ["x", "x"], ["y"], name="cat"), [4, 8], [],
     r"node 'cat' \(Concat\): attribute axis is required$"),
    (helper.make_node("Unsqueeze", ["x"], ["y"], name="expand"), [4, 8], [],
     r"node 'expand' \(Unsqueeze\): axes \(an attribute before opset 13, a constant input since\) is required$"),
    (helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up"), [1, 3, 8, 8],
     [numpy_helper.from_array(np.array([2, 2], np.float32), "scales")],
     r"node 'up' \(Resize\): scales must have one value per resized axis \(4 for input \(1, 3, 8, 8\)\), not 2$"),
    (helper.make_node("Squeeze", ["x", "axes"], ["y"], name="squeeze"), [4, 8],
     [numpy_helper.from_array(np.array([0], np.int64), "axes")],
     r"node 'squeeze' \(Squeeze\): axes must be axes of size 1 of its input of shape \(4, 8\), not \[0\]$"),
], ids=["pool-without-kernel", "strides-too-short", "pads-too-short", "unknown-auto-pad", "input-without-spatial-axes",
        "weight-of-another-rank", "gemm-of-a-vector",
        "slice-of-uneven-lengths", "slice-of-a-missing-axis", "concat-without-axis", "unsqueeze-without-axes",
        "resize-scales-of-another-rank", "squeeze-of-a-long-axis"])
def test_a_node_whose_operands_or_window_do_not_fit_is_an_error_naming_it(
        tmp_path: Path, node: onnx.NodeProto, x_shape: list[int], inits: list[onnx.TensorProto], message: str) -> None:
    path = _save(_one_node_model(node, x_shape, inits), tmp_path / "bad.onnx")
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*bad\.onnx': " + message):
        load_onnx(path)


def test_an_input_without_a_shape_is_an_error_naming_it(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, None)  # no shape at all: not a scalar
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["pixels"], ["y"], name="relu")], "g", [x], [y])
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "noshape.onnx")
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*noshape\.onnx': input 'pixels' declares no shape \(its "
                                            r"rank is unknown\); every graph input must be a tensor whose dimensions"
                                            r" the file gives \(fixed sizes or symbolic names\)$"):
        load_onnx(path)


@pytest.mark.parametrize("target", [[1, -1], [1, 144]])
def test_a_reshape_traced_at_batch_one_follows_a_new_batch(target: list[int]) -> None:
    # torch's x.view(x.size(0), -1) traced at batch 1 is a Reshape to the constant [1, -1]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w"),
             numpy_helper.from_array(np.array(target, np.int64), "target"),
             numpy_helper.from_array(np.zeros((10, 144), np.float32), "fc.weight")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Reshape", ["c", "target"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "fc.weight"], ["y"], name="fc", transB=1)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    graph = load_onnx(model, batch=2)
    assert graph.tensors["flat"].shape == (2, 144)
    assert graph.layer("fc").gemm == GemmShape(m=2, k=144, n=10)
    assert graph.total_macs == 2 * (6 * 6 * 4 * 27 + 144 * 10)


def test_the_layers_inside_a_models_local_function_are_imported() -> None:
    body = [helper.make_node("MatMul", ["a", "w"], ["t"]), helper.make_node("Relu", ["t"], ["o"])]
    proj = helper.make_function("my.fns", "Projection", ["a", "w"], ["o"], body,
                                opset_imports=[helper.make_opsetid("", 17)])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])
    call = helper.make_node("Projection", ["x", "w"], ["y"], name="proj", domain="my.fns")
    graph = helper.make_graph([call], "g", [x], [y], [numpy_helper.from_array(np.zeros((16, 8), np.float32), "w")])
    model = helper.make_model(graph, functions=[proj], opset_imports=[helper.make_opsetid("", 17),
                                                                       helper.make_opsetid("my.fns", 1)])
    onnx.checker.check_model(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)  # the call is not an unknown op
        result = load_onnx(model)
    assert [layer.op for layer in result.layers] == [OpKind.GEMM, OpKind.ACTIVATION]
    assert result.total_macs == 4 * 16 * 8
    assert result.tensors["y"].shape == (4, 8)


def test_a_constant_node_without_a_numeric_value_is_an_error_naming_the_file_and_node(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Constant", [], ["c"], name="", value_strings=[b"a", b"b"]),
             helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [x], [y])
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "strings.onnx")
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*strings\.onnx': Constant node 'Constant_0' must have "
                                            r"one of the attributes value, value_float\(s\) or value_int\(s\), "
                                            r"not value_strings$"):
        load_onnx(path)


def test_a_model_with_an_empty_graph_is_an_error_saying_so(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([], "g", [x], [x])  # a valid model that computes nothing
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "empty.onnx")
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*empty\.onnx' has an empty graph: it must have at least "
                                            r"one node, found none$"):
        load_onnx(path)


def test_a_dynamically_quantized_model_imports_with_its_float_macs_and_maps() -> None:
    # as onnxruntime's quantize_dynamic writes a Linear: codes and their scale/zero point are computed at run time
    import mapper
    import sim
    from accel.config import load

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])
    inits = [numpy_helper.from_array(np.ones((16, 8), np.int8), "w_q"),
             numpy_helper.from_array(np.array(0.02, np.float32), "w_scale"),
             numpy_helper.from_array(np.array(0, np.int8), "w_zero_point")]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["x_q", "x_scale", "x_zero_point"], name="x_quant"),
             helper.make_node("MatMulInteger", ["x_q", "w_q", "x_zero_point", "w_zero_point"], ["acc"], name="fc"),
             helper.make_node("Cast", ["acc"], ["acc_f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x_scale", "w_scale"], ["scale"], name="scales"),
             helper.make_node("Mul", ["acc_f", "scale"], ["y"], name="rescale")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)  # DynamicQuantizeLinear is modelled
        graph = load_onnx(model)
    assert graph.layer("fc").gemm == GemmShape(m=4, k=16, n=8) and graph.total_macs == 4 * 16 * 8
    assert graph.tensors["x_q"].dtype == "uint8" and graph.tensors["x_q"].quant is None  # no static parameters
    assert [graph.layer(n).vector_ops for n in ("x_quant/scale", "x_quant/zero_point", "x_quant")] == [64, 1, 64]
    assert {graph.layer(n).attrs["numerics"] for n in ("x_quant/scale", "x_quant")} == {"float"}
    assert sim.simulate(mapper.map_graph(graph, load("gemmini"))).macs == graph.total_macs


def test_a_symbolic_batch_left_unsized_is_1_for_every_op_shaped_by_onnx_inference() -> None:
    # ZeroPad2d before a conv and a Tile, on a dynamic batch ("N") the user gave no size: both are shaped by
    # ONNX's inference, which must see the 1 the importer uses, or the conv loses the padding's MACs
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
             numpy_helper.from_array(np.array([1, 1, 2, 1], np.int64), "repeats"),
             numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")]
    nodes = [helper.make_node("Pad", ["x", "pads"], ["padded"], name="pad"),
             helper.make_node("Tile", ["padded", "repeats"], ["tiled"], name="tile"),
             helper.make_node("Conv", ["tiled", "w"], ["y"], name="conv")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    graph = load_onnx(model)
    assert graph.tensors["padded"].shape == (1, 3, 10, 10) and graph.tensors["tiled"].shape == (1, 3, 20, 10)
    assert graph.tensors["y"].shape == (1, 4, 18, 8) and graph.total_macs == 18 * 8 * 4 * 27
    assert load_onnx(model, dims={"N": 2}).total_macs == 2 * 18 * 8 * 4 * 27


def test_reading_an_output_the_importer_does_not_model_is_an_error_naming_its_node(tmp_path: Path) -> None:
    # SegNet-style: MaxUnpool reads MaxPool's Indices (the importer models a pool's values only)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("MaxPool", ["x"], ["pooled", "indices"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("MaxUnpool", ["pooled", "indices"], ["y"], name="unpool", kernel_shape=[2, 2],
                              strides=[2, 2])]
    graph = helper.make_graph(nodes, "g", [x], [y])
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "segnet.onnx")
    with pytest.raises(WorkloadError, match=r"^ONNX file '.*segnet\.onnx': node 'unpool' \(MaxUnpool\) reads "
                                            r"'indices', an output of node 'pool' \(MaxPool\) that the importer does "
                                            r"not model$"):
        load_onnx(path)


def test_a_4_bit_matmul_nbits_is_the_gemm_of_its_unpacked_weight() -> None:
    # com.microsoft.MatMulNBits, as LLM exports for onnxruntime write every linear layer: 4-bit codes in
    # blocks of 32 along K, packed two to a byte: (N, K / 32, 16) bytes
    k, n, block = 64, 128, 32
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(np.zeros((n, k // block, block // 2), np.uint8), "w_q"),
             numpy_helper.from_array(np.ones(n * k // block, np.float32), "w_scales")]
    node = helper.make_node("MatMulNBits", ["x", "w_q", "w_scales"], ["y"], name="q_proj", domain="com.microsoft",
                            K=k, N=n, bits=4, block_size=block)
    model = helper.make_model(helper.make_graph([node], "llm", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)  # modelled, not passed through
        graph = load_onnx(model)
    assert graph.layer("q_proj").op is OpKind.GEMM and graph.layer("q_proj").gemm == GemmShape(m=10, k=k, n=n)
    assert graph.tensors["y"].shape == (2, 5, n) and graph.total_macs == 10 * k * n


def test_onnxruntimes_fused_normalisations_are_their_residual_add_and_norm() -> None:
    # a transformer as onnxruntime's optimizer (BERT) and LLM exports (Llama: RMS norms) write it
    s, d = 6, 16
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, s, d])
    skip = helper.make_tensor_value_info("skip", TensorProto.FLOAT, [1, s, d])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(np.ones(d, np.float32), n) for n in ("gamma", "beta", "bias")]
    inits.append(numpy_helper.from_array(np.zeros((d, d), np.float32), "w"))
    nodes = [helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"],
                              ["n1", "", "", "residual"], name="skip_ln", domain="com.microsoft"),
             helper.make_node("MatMul", ["n1", "w"], ["h"], name="proj"),
             helper.make_node("SkipSimplifiedLayerNormalization", ["h", "residual", "gamma"], ["n2"], name="skip_rms",
                              domain="com.microsoft"),
             helper.make_node("SimplifiedLayerNormalization", ["n2", "gamma"], ["y"], name="rms", axis=-1)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x, skip], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)  # modelled, not passed through
        graph = load_onnx(model)
    assert graph.layer("skip_ln/add").vector_ops == 2 * s * d  # input + skip + bias: two adds per element
    assert graph.layer("skip_ln").op is OpKind.NORM and graph.layer("skip_ln").attrs["kind"] == "layer"
    assert graph.layer("skip_rms/add").inputs == ("h", "residual")  # the first norm's residual sum, reused
    assert [graph.layer(n).attrs["kind"] for n in ("skip_rms", "rms")] == ["rms", "rms"]
    assert graph.tensors["y"].shape == (1, s, d) and graph.total_macs == s * d * d
