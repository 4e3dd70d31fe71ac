"""`accel run --check-numerics`: a user's quantized ONNX model on a user's design, against onnxruntime.

The model is written to a file as a user would have it (the shared ResNet-18 graph at 32x32, seeded
weights, onnxruntime's quantize_static); the design is a TOML file. Requantizing as onnxruntime does,
every output is equal; the TFLite mode rounds some values the other way, which the check reports
(and exits 1). Bad combinations exit 2 with one line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

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



def test_a_failed_check_leaves_no_report_behind(capsys, tmp_path, model_file):
    np.savez(tmp_path / "wrong.npz", image=np.zeros((1, 3, 32, 32), dtype=np.float32))
    out = tmp_path / "report"
    code, stdout, err = run(capsys, "run", "--workload", str(model_file), "--check-numerics", "--json",
                            "--inputs", str(tmp_path / "wrong.npz"), "--out", str(out))
    assert code == 2 and "no array for graph input 'input.1' (the file has image)" in err
    assert stdout == ""
    assert not out.exists()

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
