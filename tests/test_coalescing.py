"""Coalesced simulation equals the fine, command-by-command one (see ``sim.engine``'s docstring).

Every check compares ``simulate(plan)`` with ``simulate(plan, fine=True)`` exactly: the whole trace
(every command's start, end, stall and stall cause), total cycles, per-layer spans and busy cycles,
per-unit busy and stall cycles, DRAM bytes and energy. The bound is zero: nothing may differ.

Cases, chosen to exercise coalescing (long runs of identical tiles) within about a minute of CI:
every zoo model on the Gemmini-like preset with the baseline allocator ("none"), except the
largest: GPT-2 prefill and the Llama decoder layers run on the TPU-like preset, whose 24 MiB buffer
and 256x256 array make a few thousand commands of them (the whole 32-layer Llama models repeat those
layers and are left to ``benchmarks/sim_speed.py``); every allocator on ResNet-18, BERT-base and
GPT-2 decode; the shared ONNX graphs; and every SCALE-Sim agreement fixture (fold-outer order on
its own configs). Each case also checks that coalescing did record some of its commands where the
program has long runs, so a coalescer that never fires cannot pass unnoticed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import mapper
from accel import config
from accel.scalesim import load_scalesim_config
from mapper import Depthwise, LoopOrder, MapOptions
from sim import simulate
from workloads import load, zoo

FIXTURES = Path(__file__).parent / "fixtures" / "scalesim"
TOPOLOGIES = {"alexnet": "alexnet.csv", "gpt2": "gpt2.csv", "vit_s": "vit_s.csv", "resnet18": "Resnet18.csv",
              "mobilenet": "mobilenet.csv", "yolo_tiny": "yolo_tiny.csv"}
WHOLE_LLMS = ("llama2_7b_prefill", "llama2_7b_decode")  # their layers stand for them (32 copies each)
BIG = ("gpt2_prefill", "llama2_7b_layer_prefill", "llama2_7b_prefill", "llama2_7b_decode", "llama2_7b_layer_decode",
       "llama3_8b_layer_prefill", "llama3_8b_layer_decode")


def assert_same(plan, *, expect_coalescing: bool = True) -> None:
    fine, fast = simulate(plan, fine=True), simulate(plan)
    for name in ("command", "start", "end", "stall", "stall_on"):
        assert np.array_equal(getattr(fine.timing, name), getattr(fast.timing, name)), name
    assert fast.total_cycles == fine.total_cycles
    assert fast.layers().equals(fine.layers())
    assert fast.units().equals(fine.units())
    assert fast.summary() == fine.summary()  # cycles, DRAM bytes, bytes per level, energy
    assert dict(fast.energy.by_component) == dict(fine.energy.by_component)
    assert fast.energy.by_layer.equals(fine.energy.by_layer)
    if expect_coalescing:
        assert fast.coalesced_commands > 0
        assert fast.events < fine.events


@pytest.mark.parametrize("model", [m for m in zoo.names() if m not in BIG])
def test_zoo_models_on_gemmini(model):
    assert_same(mapper.map_graph(zoo.build(model), config.load("gemmini")))


@pytest.mark.parametrize("model", [m for m in zoo.names() if m in BIG and m not in WHOLE_LLMS])
def test_large_models_on_tpu(model):
    assert_same(mapper.map_graph(zoo.build(model), config.load("tpu-v1")), expect_coalescing=False)


@pytest.mark.parametrize("allocator", mapper.ALLOCATORS)
@pytest.mark.parametrize("model", ["resnet18", "bert_base_layer", "gpt2_decode"])
def test_every_allocator(model, allocator):
    options = MapOptions(allocator=allocator, time_limit_s=5.0)
    assert_same(mapper.map_graph(zoo.build(model), config.load("gemmini"), options),
                expect_coalescing=model != "gpt2_decode")


@pytest.mark.parametrize("graph", ["alexnet.onnx", "mobilenetv2.onnx", "resnet18.onnx"])
def test_shared_onnx_graphs(graph, shared_data):
    assert_same(mapper.map_graph(load(str(shared_data / "onnx" / graph)), config.load("gemmini")))


REPORTS = sorted(p for p in FIXTURES.glob("*.csv") if re.fullmatch(r"\w+_(ws|os|is)_\d+x\d+\.csv", p.name))


@pytest.mark.parametrize("report", REPORTS, ids=[p.stem for p in REPORTS])
def test_scalesim_fixtures(report, shared_data, tmp_path):
    """The agreement fixtures' configs and topologies; GPT-2's GEMMs (M, N, K of 1024 and 64) at a
    quarter of each dimension, whose fold-outer programs are otherwise minutes of fine simulation."""
    name, dataflow, size = report.stem.rsplit("_", 2)
    arch = load_scalesim_config(FIXTURES / f"scale_{size}_{dataflow}.cfg")
    topology = shared_data / "scalesim" / TOPOLOGIES[name]
    if name == "gpt2":
        lines = topology.read_text().splitlines()
        rows = [line.split(",") for line in lines[1:] if line.strip()]
        scaled = [",".join([r[0], *(str(max(int(v) // 4, 1)) for v in r[1:4]), ""]) for r in rows]
        topology = tmp_path / "gpt2.csv"
        topology.write_text("\n".join([lines[0], *scaled]) + "\n")
    graph = load(str(topology))
    assert_same(mapper.map_graph(graph, arch, MapOptions(loop_order=LoopOrder.FOLD_OUTER, depthwise=Depthwise.ARRAY)),
                expect_coalescing=False)


def test_fine_is_the_default_semantics_of_a_program_without_runs():
    """A plan too short to hold a run is simulated one by one either way."""
    from test_lower_and_simulate import conv_relu_fc

    plan = mapper.map_graph(conv_relu_fc(), config.load("gemmini"))
    fast = simulate(plan)
    assert fast.trace == simulate(plan, fine=True).trace
