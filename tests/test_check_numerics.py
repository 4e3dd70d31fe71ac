"""`accel run --check-numerics`: a user's quantized ONNX model on a user's design, against onnxruntime.

The model is written to a file as a user would have it (the shared ResNet-18 graph at 32x32, seeded
weights, onnxruntime's quantize_static); the design is a TOML file. Requantizing as onnxruntime does,
every output is equal; the TFLite mode rounds some values the other way, which the check reports
(and exits 1). Bad combinations exit 2 with one line.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accel import config
from accel.cli import main
from mapper import MapOptions, map_graph
from sim.oracle import check_numerics, seeded_inputs
from workloads import load_onnx
from workloads.quantize import shared_model

pytest.importorskip("onnxruntime")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "onnx"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    logging.disable(logging.WARNING)
    try:
        _, quantized = shared_model(SHARED / "resnet18.onnx", input_shapes={"input.1": (1, 3, 32, 32)}, calibration=2)
    finally:
        logging.disable(logging.NOTSET)
    path = tmp_path_factory.mktemp("model") / "resnet18_int8.onnx"
    onnx.save(quantized, str(path))
    return path


@pytest.fixture(scope="module")
def onnxruntime_design(tmp_path_factory) -> Path:
    text = config.dumps(config.load("fpga-small")).replace('requant = "tflite-double"',
                                                            'requant = "float32-half-even"')
    assert 'requant = "float32-half-even"' in text
    path = tmp_path_factory.mktemp("design") / "fpga_small_ort.toml"
    path.write_text(text)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_design_that_requantizes_as_onnxruntime_computes_every_output_exactly(capsys, model_file,
                                                                                 onnxruntime_design):
    code, out, _ = run(capsys, "run", "--workload", str(model_file), "--arch", str(onnxruntime_design),
                       "--allocator", "greedy", "--check-numerics", "--json")
    summary = json.loads(out)
    assert code == 0, summary["numerics"]
    check = summary["numerics"]
    assert check["equal"] and check["requant"] == "float32-half-even"
    (output,) = check["outputs"]
    assert output["elements"] == 1000 and output["mismatches"] == 0 and output["max_abs_diff"] == 0.0
    assert summary["total_cycles"] > 0  # the timing run is there too


def test_another_rounding_mode_is_reported_as_a_difference_with_exit_status_1_until_overridden(capsys,
                                                                                                 model_file):
    code, out, _ = run(capsys, "run", "--workload", str(model_file), "--arch", "fpga-small", "--check-numerics")
    assert "the design requantizes in tflite-double mode" in out
    assert code == 1 and "DIFFERENT" in out
    code, out, _ = run(capsys, "run", "--workload", str(model_file), "--arch", "fpga-small", "--check-numerics",
                       "--requant", "float32-half-even")
    assert code == 0 and "numerics           equal" in out


def test_given_inputs_are_used_and_checked(capsys, tmp_path, model_file, onnxruntime_design):
    graph = load_onnx(model_file)
    feed = seeded_inputs(model_file, graph, seed=5)
    np.savez(tmp_path / "inputs.npz", **feed)
    plan = map_graph(graph, config.load(onnxruntime_design), MapOptions())
    assert check_numerics(model_file, graph, plan, inputs=feed).equal
    code, out, _ = run(capsys, "run", "--workload", str(model_file), "--arch", str(onnxruntime_design),
                       "--check-numerics", "--inputs", str(tmp_path / "inputs.npz"), "--json")
    assert code == 0 and json.loads(out)["numerics"]["equal"]

    np.savez(tmp_path / "wrong.npz", image=feed["input.1"])
    code, _, err = run(capsys, "run", "--workload", str(model_file), "--check-numerics",
                       "--inputs", str(tmp_path / "wrong.npz"))
    assert code == 2 and "no array for graph input 'input.1' (the file has image)" in err


@pytest.mark.parametrize(("write", "message"), [
    (lambda path, x: np.save(path, x), r"not a readable \.npz file of arrays \(it holds one unnamed array; save one "
                                       r"array per graph input with numpy\.savez\(FILE, NAME=array, \.\.\.\)\)"),
    (lambda path, x: np.savez(path, **{"input.1": x.astype(np.float64)}),
     r"array 'input\.1' holds float64 values; the graph input takes float32 \(convert it with "
     r"\.astype\(numpy\.float32\)\)"),
    (lambda path, x: np.savez(path, **{"input.1": np.where(x > 2, np.nan, x)}),
     r"array 'input\.1' holds \d+ NaN or infinite value\(s\); the inputs must be finite"),
], ids=["npy-file", "float64-array", "nan-values"])
def test_inputs_a_user_writes_wrongly_exit_2_with_one_line_naming_the_file(capsys, tmp_path, model_file, write,
                                                                          message):
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    path = tmp_path / "inputs.npz"
    write(path, x)
    path = next(tmp_path.iterdir())  # numpy.save names the file .npz.npy
    code, _, err = run(capsys, "run", "--workload", str(model_file), "--check-numerics", "--inputs", str(path))
    assert code == 2 and err.count("\n") == 1, err
    assert re.fullmatch(rf"accel: error: --inputs {re.escape(str(path))}: {message}\n", err), err


@pytest.mark.parametrize(("argv", "message"), [
    (["--workload", "resnet18", "--check-numerics"], "give --workload FILE.onnx, not 'resnet18'"),
    (["--seed", "3"], "--seed concerns --check-numerics, which is not given"),
    (["--inputs", "x.npz"], "--inputs concerns --check-numerics, which is not given"),
])
def test_check_numerics_needs_an_onnx_model(capsys, argv, message):
    code, _, err = run(capsys, "run", *argv)
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def transformer_file(tmp_path_factory) -> Path:
    """The zoo's BERT layer as onnxruntime's QDQ model: softmax, layer norms and GELU stay float."""
    from workloads.quantize import zoo_model

    logging.disable(logging.WARNING)
    try:
        _, quantized = zoo_model("bert_base_layer", calibration=1)
    finally:
        logging.disable(logging.NOTSET)
    path = tmp_path_factory.mktemp("model") / "bert_int8.onnx"
    onnx.save(quantized, str(path))
    return path


def test_a_model_with_float_layers_is_checked_where_its_integer_part_ends(capsys, transformer_file):
    code, out, err = run(capsys, "run", "--workload", str(transformer_file), "--arch", "gemmini", "--check-numerics",
                         "--requant", "float32-half-even", "--json")
    assert code == 0, err
    numerics = json.loads(out)["numerics"]
    assert numerics["equal"] and numerics["float_layers"] == ["attention.softmax", "attention.ln", "ffn.gelu",
                                                              "ffn.ln"]
    # the scaled scores, which the float softmax reads; what follows the softmax depends on float results
    assert [o["name"] for o in numerics["outputs"]] == ["attention.scale_mul_QuantizeLinear_Output"]
    assert numerics["outputs"][0]["elements"] == 12 * 128 * 128 and numerics["outputs"][0]["mismatches"] == 0
    code, out, _ = run(capsys, "run", "--workload", str(transformer_file), "--arch", "gemmini", "--check-numerics",
                       "--requant", "float32-half-even")
    assert code == 0 and "compared where the integer part ends: onnxruntime computes attention.softmax" in out


def _quantized_file(path: Path, model: onnx.ModelProto, **options) -> Path:
    """``model`` quantized by onnxruntime's quantize_static with ``options``, calibrated on seeded inputs."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    from workloads.quantize import calibration_inputs

    feeds = iter(calibration_inputs(model, count=3, seed=1))

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    source = path.with_name("float_" + path.name)
    onnx.save(model, str(source))
    logging.disable(logging.WARNING)
    try:
        quantize_static(str(source), str(path), Reader(), **options)
    finally:
        logging.disable(logging.NOTSET)
    return path


def _float_model(name: str, nodes: list, inputs: dict[str, tuple[int, ...]], output: str,
                 weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                            for n, s in inputs.items()],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _residual_model() -> onnx.ModelProto:
    """conv + relu, added to the graph input, relu."""
    rng = np.random.default_rng(3)
    return _float_model("residual", [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "x"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["y"], name="relu2")], {"x": (1, 8, 16, 16)}, "y",
        {"w": (0.3 * rng.standard_normal((8, 8, 3, 3))).astype(np.float32),
         "b": (0.3 * rng.standard_normal(8)).astype(np.float32)})


def test_a_float_island_reading_a_graph_input_is_checked_where_the_integer_part_ends(capsys, tmp_path):
    """Only the convolution quantized (QOperator): the float add reads the float graph input itself,
    which the integer part does not need."""
    from onnxruntime.quantization import QuantFormat

    path = _quantized_file(tmp_path / "residual_conv_only.onnx", _residual_model(),
                           quant_format=QuantFormat.QOperator, op_types_to_quantize=["Conv"])
    for arch in ("gemmini", "sparse-nm"):
        code, out, err = run(capsys, "run", "--workload", str(path), "--arch", arch, "--check-numerics",
                             "--requant", "float32-half-even", "--json")
        assert code == 0, err
        numerics = json.loads(out)["numerics"]
        assert numerics["equal"] and numerics["float_layers"] == ["relu", "add", "relu2"]
        (output,) = numerics["outputs"]
        assert output["name"] == "c_quantized" and output["elements"] == 8 * 16 * 16


def test_dense_weights_marked_n_m_on_a_design_that_runs_n_m_are_refused_naming_the_layer(capsys, tmp_path):
    """``--nm 2:4`` on a model whose weights are dense: the sparse array would drop weights onnxruntime
    multiplies, so the comparison would blame the design for the marking; on a dense design it runs dense."""
    from onnxruntime.quantization import QuantFormat

    rng = np.random.default_rng(5)
    model = _float_model("conv", [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])],
                         {"x": (1, 8, 8, 8)}, "y", {"w": (0.3 * rng.standard_normal((8, 8, 3, 3))).astype(np.float32),
                                                    "b": (0.3 * rng.standard_normal(8)).astype(np.float32)})
    path = _quantized_file(tmp_path / "dense_conv.onnx", model, quant_format=QuantFormat.QOperator)
    argv = ("run", "--workload", str(path), "--check-numerics", "--requant", "float32-half-even", "--nm", "2:4")
    code, _, err = run(capsys, *argv, "--arch", "sparse-nm")
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(r"Layer 'conv_quant' runs 2:4 sparse on sparse-nm but \d+ of \d+ groups of 4 of its weights hold "
                     r"more than 2 non-zeros; the array would drop weights onnxruntime multiplies \(prune the model "
                     r"before quantizing, as examples/quantize_onnx\.py --nm 2:4 does, or leave out --nm\)$", err), err
    code, out, err = run(capsys, *argv, "--arch", "gemmini")  # no 2:4 on this array: the layer runs dense
    assert code == 0 and "numerics           equal" in out, err


def test_a_batch_size_the_model_does_not_have_is_refused_naming_the_input(capsys, model_file):
    code, _, err = run(capsys, "run", "--workload", str(model_file), "--check-numerics", "--batch", "2")
    assert code == 2 and err.count("\n") == 1, err
    assert err == (f"accel: error: ONNX file {str(model_file)!r}: input 'input.1' has shape (1, 3, 32, 32) in the "
                   "file, not the (2, 3, 32, 32) the graph was loaded with (--batch or --dim); onnxruntime runs the "
                   "file as it is, so check numerics at its own shapes\n")


@pytest.mark.parametrize(("options", "message"), [
    ({"weight_type": "QInt16"}, "its weights 'w_quantized' are int16 codes"),
    ({"activation_type": "QInt16"}, "its input 'x_QuantizeLinear_Output' holds int16 codes"),
    ({"activation_type": "QUInt16"}, "its input 'x_QuantizeLinear_Output' holds uint16 codes"),
], ids=["int16-weights", "int16-activations", "uint16-activations"])
def test_codes_wider_than_8_bits_are_refused_naming_the_layer_and_tensor(capsys, tmp_path, options, message):
    """onnxruntime's 16-bit quantization: the array and the vector unit compute on 8-bit codes (the
    16-bit weights were truncated to bytes, a silent wrong answer)."""
    from onnxruntime.quantization import QuantFormat, QuantType

    rng = np.random.default_rng(2)
    model = _float_model("conv", [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])],
                         {"x": (1, 3, 8, 8)}, "y", {"w": (0.3 * rng.standard_normal((8, 3, 3, 3))).astype(np.float32),
                                                    "b": (0.3 * rng.standard_normal(8)).astype(np.float32)})
    path = _quantized_file(tmp_path / "conv16.onnx", model, quant_format=QuantFormat.QDQ,
                           **{key: getattr(QuantType, value) for key, value in options.items()})
    code, _, err = run(capsys, "run", "--workload", str(path), "--check-numerics", "--requant", "float32-half-even")
    assert code == 2 and err.count("\n") == 1, err
    assert err == (f"accel: error: Layer 'conv' (Conv): {message}; functional execution models 8-bit codes "
                   "(int8, uint8) in and out of every layer and 8-bit weights\n")


def test_integer_ops_with_int32_outputs_are_refused_naming_the_layer(capsys, tmp_path):
    """ConvInteger's int32 accumulators are not the 8-bit codes a store writes (they were reported as
    differences of tens of thousands)."""
    w = np.random.default_rng(4).integers(-64, 64, (4, 3, 3, 3)).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], name="conv", pads=[1, 1, 1, 1])], "integer",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, (1, 3, 6, 6))],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(7, np.uint8), "xz"),
         numpy_helper.from_array(np.array(0, np.int8), "wz")])
    path = tmp_path / "conv_integer.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    code, _, err = run(capsys, "run", "--workload", str(path), "--check-numerics", "--requant", "float32-half-even")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("accel: error: Layer 'conv' (Conv): its output 'y' holds int32 codes; "), err


def test_a_check_that_cannot_run_leaves_no_report_behind(capsys, tmp_path, model_file):
    out = tmp_path / "report"
    np.savez(tmp_path / "inputs.npz", **{"input.1": np.zeros((1, 3, 32, 32))})  # float64: refused
    code, _, err = run(capsys, "run", "--workload", str(model_file), "--check-numerics", "--out", str(out),
                       "--inputs", str(tmp_path / "inputs.npz"))
    assert code == 2 and "holds float64 values" in err
    assert not out.exists() or not any(out.iterdir())


def test_where_the_integer_part_ends_on_chip_the_check_says_so_instead_of_running_the_float_layers(capsys, tmp_path):
    """With an allocator the codes a float layer reads may stay in the scratchpad: there is nothing in
    DRAM to compare, which the check says (it used to run the whole graph and refuse the float layer)."""
    from onnxruntime.quantization import QuantFormat

    rng = np.random.default_rng(6)
    model = _float_model("tanh", [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["c"], ["s"], name="tanh"),
        helper.make_node("Conv", ["s", "w2", "b2"], ["y"], name="conv2")], {"x": (1, 3, 8, 8)}, "y",
        {"w": (0.3 * rng.standard_normal((8, 3, 3, 3))).astype(np.float32),
         "b": (0.3 * rng.standard_normal(8)).astype(np.float32),
         "w2": (0.3 * rng.standard_normal((4, 8, 1, 1))).astype(np.float32),
         "b2": (0.3 * rng.standard_normal(4)).astype(np.float32)})
    path = _quantized_file(tmp_path / "tanh.onnx", model, quant_format=QuantFormat.QDQ)
    argv = ("run", "--workload", str(path), "--check-numerics", "--requant", "float32-half-even", "--json")
    code, out, err = run(capsys, *argv, "--allocator", "none")
    assert code == 0, err
    assert json.loads(out)["numerics"]["float_layers"] == ["tanh"]
    code, _, err = run(capsys, *argv, "--allocator", "greedy")
    assert code == 2 and err.count("\n") == 1, err
    assert err == ("accel: error: Graph 'tanh': its integer part ends at 'c_QuantizeLinear_Output', which float "
                   "layer(s) tanh read, but this plan keeps those codes on chip (no store writes them to DRAM), so "
                   "there is nothing to compare with onnxruntime; check numerics with --allocator none\n")


def test_a_concatenation_along_image_rows_is_refused_before_it_runs(capsys, tmp_path):
    """Images are stored channels-last: a concatenation along their height is not runs of rows the
    vector unit copies (it failed mid-run on 'byte shares')."""
    from onnxruntime.quantization import QuantFormat

    rng = np.random.default_rng(7)
    model = _float_model("concat_h", [
        helper.make_node("Conv", ["x", "w", "b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Concat", ["c1", "c2"], ["cc"], name="concat", axis=2),
        helper.make_node("Conv", ["cc", "w3", "b3"], ["y"], name="conv3")], {"x": (1, 4, 8, 8)}, "y",
        {name: (0.3 * rng.standard_normal(shape)).astype(np.float32) for name, shape in [
            ("w", (6, 4, 3, 3)), ("b", (6,)), ("w2", (6, 4, 1, 1)), ("b2", (6,)), ("w3", (5, 6, 1, 1)), ("b3", (5,))]})
    path = _quantized_file(tmp_path / "concat_h.onnx", model, quant_format=QuantFormat.QOperator)
    code, _, err = run(capsys, "run", "--workload", str(path), "--check-numerics", "--requant", "float32-half-even")
    assert code == 2 and err.count("\n") == 1, err
    assert err == ("accel: error: Layer 'concat_quant' (Concat): a concatenation along axis 2 of (1, 6, 16, 8) is not "
                   "modelled (only along an image's channels, or the last axis of another tensor)\n"), err
