"""Integer-reference speed and agreement: sim.reference.run_quantized against onnxruntime at 224x224.

For ResNet-18 and MobileNetV2 (the shared ONNX graphs with seeded weights) and the zoo's BERT layer
(integer part: Q/K/V projections, attention scores and their scaling), quantized by onnxruntime's quantize_static
(operator form, per channel, uint8 activations), prints the reference's wall time, onnxruntime's,
and the largest difference of every compared tensor (0 expected); writes JSON (``--json``, default
``benchmarks/results/reference_speed.json``).

    python benchmarks/reference_speed.py
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from sim.reference import run_quantized
from workloads.onnx_import import load_onnx
from workloads.quantize import calibration_inputs, shared_model, zoo_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "onnx"


def _ort(model: onnx.ModelProto, feed: dict, names: list[str]) -> tuple[dict, float]:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in known)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    start = time.perf_counter()
    values = session.run(None, feed)
    return dict(zip([o.name for o in session.get_outputs()], values, strict=True)), time.perf_counter() - start


def _case(name: str, float_model: onnx.ModelProto, quantized: onnx.ModelProto, outputs: list[str] | None) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BERT's QLinearSoftmax is imported as a (reported) pass-through
        graph = load_onnx(quantized)
    feed = calibration_inputs(float_model, count=1, seed=123)[0]
    wanted = outputs or [t.name for t in graph.outputs]
    start = time.perf_counter()
    ours = run_quantized(graph, feed, outputs=wanted)
    seconds = time.perf_counter() - start
    theirs, ort_seconds = _ort(quantized, feed, wanted)
    diff = max(float(np.abs(ours[n].astype(np.float64) - theirs[n].astype(np.float64)).max()) for n in wanted)
    return {"model": name, "reference_s": round(seconds, 3), "onnxruntime_s": round(ort_seconds, 4),
            "macs": graph.total_macs, "tensors_compared": len(wanted), "max_abs_diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "reference_speed.json")
    args = parser.parse_args()
    rows = []
    for name in ("resnet18", "mobilenetv2"):
        f, q = shared_model(SHARED / f"{name}.onnx", fmt="qoperator", per_channel=True, calibration=2)
        rows.append(_case(name, f, q, None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f, q = zoo_model("bert_base_layer", fmt="qoperator", per_channel=True, calibration=1)
        graph = load_onnx(q)
    bert = [graph.layer(n).outputs[0] for n in ("attention.q.bias_quant", "attention.k.bias_quant",
                                               "attention.v.bias_quant", "attention.scores_quant",
                                               "attention.scale_mul_quant")]
    rows.append(_case("bert_base_layer (integer part)", f, q, bert))
    print(f"{'model':32} {'MACs':>14} {'reference s':>12} {'onnxruntime s':>14} {'max |diff|':>11}")
    for r in rows:
        print(f"{r['model']:32} {r['macs']:>14,} {r['reference_s']:>12.3f} {r['onnxruntime_s']:>14.4f}"
              f" {r['max_abs_diff']:>11g}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
