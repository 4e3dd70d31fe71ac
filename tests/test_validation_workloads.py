"""The published workloads of benchmarks/validation.py match what their papers state (Jouppi et al.,
ISCA 2017, Table 1: layers, weights, batch, MACs per weight byte; AlexNet's and ResNet-50's MACs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from workloads.graph import OpKind

_SPEC = importlib.util.spec_from_file_location("validation", Path(__file__).parents[1] / "benchmarks" / "validation.py")
validation = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("validation", validation)  # its dataclasses look their module up
_SPEC.loader.exec_module(validation)


@pytest.mark.parametrize(("build", "layers", "weights", "batch", "macs_per_weight_byte"), [
    (validation.tpu_mlp0, {OpKind.GEMM: 5}, 20e6, 200, 200),
    (validation.tpu_lstm0, {OpKind.GEMM: 24}, 52e6, 64, 64),
    (validation.tpu_cnn0, {OpKind.CONV: 16}, 8e6, 8, 2888),
])
def test_tpu_workloads_have_table_1s_figures(build, layers, weights, batch, macs_per_weight_byte):
    graph = build()
    for op, count in layers.items():
        assert sum(layer.op is op for layer in graph.layers) == count
    assert graph.weight_bytes == pytest.approx(weights, rel=0.05)  # int8: a weight a byte
    assert graph.inputs[0].shape[0] == batch
    assert graph.total_macs / graph.weight_bytes == pytest.approx(macs_per_weight_byte, rel=0.001)


def test_cnn_anchors_have_their_networks_macs():
    # Eyeriss: AlexNet CONV1-5 at 227 x 227, 666 M MACs per image (Chen et al., ISSCC 2016)
    alexnet = validation.eyeriss_alexnet_conv()
    assert alexnet.total_macs / 4 == pytest.approx(666e6, rel=0.01)
    # Gemmini's ResNet-50: torchvision's 4.09 GMACs per image, no batch-norm layers
    resnet = validation.gemmini_resnet50()
    assert resnet.total_macs / 4 == pytest.approx(4.09e9, rel=0.01)
    assert not any(layer.op is OpKind.NORM for layer in resnet.layers)
