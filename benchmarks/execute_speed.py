"""Functional-execution speed and agreement: sim.execute runs a mapped command program at 224x224.

For ResNet-18 and MobileNetV2 (the shared ONNX graphs with seeded weights, quantized by onnxruntime's
quantize_static, QDQ form, per tensor, uint8 activations) and the zoo's BERT-base layer (compared where
its integer part ends, before its float softmax: sim.oracle.integer_frontier), mapped onto each preset (requantizing as
onnxruntime does, ``float32-half-even``) with each allocator given (and, on a preset that runs
``--nm`` natively, also pruned to it before quantization), prints per case the mapping time,
the number of commands, the functional execution's wall time (the whole program: every load, store,
move, compute and vector command on byte images of DRAM, scratchpad and accumulator), onnxruntime's
time (session set-up and run) and the largest difference from onnxruntime's outputs (0 expected);
writes JSON (``--json``, default ``benchmarks/results/execute_speed.json``).

    python benchmarks/execute_speed.py --presets gemmini sparse-nm   # sparse-nm also runs them pruned 2:4
    python benchmarks/execute_speed.py --models resnet18 --presets gemmini fpga-small --allocators greedy
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np

from accel.config import load
from accel.formats import Requantization
from mapper import MapOptions, map_graph
from sim.execute import execute_graph
from sim.oracle import integer_frontier, onnxruntime_outputs
from workloads import sparsify
from workloads.onnx_import import load_onnx
from workloads.quantize import calibration_inputs, shared_model, zoo_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "onnx"


def _onnxruntime(model, feed: dict, names: tuple[str, ...] = ()) -> tuple[dict, float]:  # type: ignore[no-untyped-def]
    """onnxruntime's outputs (and the tensors ``names``) and its wall time (session set-up and run)."""
    start = time.perf_counter()
    outputs = onnxruntime_outputs(model, feed, tensors=names)
    return outputs, time.perf_counter() - start


def _quantized(name: str, nm: str | None):  # type: ignore[no-untyped-def]
    """The quantized model of a shared ONNX graph at 224x224, or of a zoo graph (the BERT layer)."""
    path = SHARED / f"{name}.onnx"
    if path.exists():
        return shared_model(path, calibration=2, nm=nm)[1]
    return zoo_model(name, calibration=1, nm=nm)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "mobilenetv2", "bert_base_layer"])
    parser.add_argument("--presets", nargs="+", default=["gemmini"])
    parser.add_argument("--allocators", nargs="+", default=["none", "ilp"])
    parser.add_argument("--nm", default="2:4", help="also run the model pruned to this pattern on presets that run it")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "execute_speed.json")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = []
    for name, preset in itertools.product(args.models, args.presets):
        arch = load(preset)
        ort_requant = dataclasses.replace(arch.array, requant=Requantization.FLOAT32_HALF_EVEN)
        arch = dataclasses.replace(arch, array=ort_requant)
        for nm in [None] + [args.nm] * any(str(s) == args.nm for s in arch.array.sparsity):
            quantized = _quantized(name, nm)
            graph = load_onnx(quantized)
            graph = sparsify(graph, nm) if nm else graph
            feed = calibration_inputs(quantized, count=1, seed=123)[0]
            for allocator in args.allocators:
                start = time.perf_counter()
                plan = map_graph(graph, arch, MapOptions(allocator=allocator))
                map_seconds = time.perf_counter() - start
                # a graph with float layers (the BERT layer's softmax, layer norms, GELU) runs up to them
                names = integer_frontier(graph, plan)
                expected, ort_seconds = _onnxruntime(quantized, feed, names)
                start = time.perf_counter()
                ours = execute_graph(graph, plan, feed, outputs=list(names) or None)
                seconds = time.perf_counter() - start
                diff = max(float(np.abs(value.astype(np.float64) - expected[k].astype(np.float64)).max())
                           for k, value in ours.items())
                row = {"model": name, "preset": preset, "nm": nm or "dense", "allocator": allocator,
                       "macs": graph.total_macs,
                       "commands": len(plan.commands), "map_s": round(map_seconds, 2),
                       "execute_s": round(seconds, 2), "onnxruntime_s": round(ort_seconds, 4),
                       "compared": list(names) or "outputs", "max_abs_diff": diff}
                rows.append(row)
                print(f"{name:12} {preset:10} {row['nm']:6} {allocator:9} {row['commands']:>7,} commands  "
                      f"map {map_seconds:5.1f} s"
                      f"  execute {seconds:6.1f} s  onnxruntime {ort_seconds:.3f} s  max |diff| {diff:g}",
                      flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
