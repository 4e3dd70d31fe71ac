"""mapper.fuse: activations the accumulator's read path applies fold into the array layer before them."""

from __future__ import annotations

import dataclasses
import re

import pytest

import mapper
import sim
from accel import config
from accel.commands import Move, Store, Vector
from accel.errors import ConfigError
from accel.hardware import ActivationPath
from mapper.fuse import fuse_activations
from workloads.builder import GraphBuilder


def _graph():
    b = GraphBuilder("fusable")
    x = b.input("x", (1, 16, 12, 12))
    y = b.activation(b.conv(x, 32, 3, 1, 1, name="conv1"), "relu", "conv1.relu")
    y = b.activation(y, "clip", "conv1.clip")  # a chain: fuses too
    z = b.conv(y, 32, 3, 1, 1, name="conv2")
    s = b.activation(z, "relu", "conv2.relu")
    b.add(s, z, "residual")  # conv2's output has a second consumer: its relu stays a vector layer
    w = b.activation(b.conv(s, 16, 1, name="conv3"), "gelu", "conv3.gelu")  # not on the store path
    b.flatten(w, 1, "flatten")
    return b.build()


def _design(functions=("relu", "clip")):
    base = config.load("fpga-small")
    return dataclasses.replace(base, activation=ActivationPath(tuple(functions)))


def test_fusable_activations_join_their_array_layer():
    graph = fuse_activations(_graph(), _design())
    names = [layer.name for layer in graph.layers]
    assert "conv1.relu" not in names and "conv1.clip" not in names
    assert graph.layer("conv1").attrs["fused"] == ("relu", "clip")
    assert graph.layer("conv1").outputs == ("conv1.clip",) and "conv1" not in graph.tensors
    assert "conv2.relu" in names and "fused" not in graph.layer("conv2").attrs
    assert "conv3.gelu" in names
    assert fuse_activations(_graph(), config.load("fpga-small")) == _graph()  # no functions: unchanged


def test_a_fused_layer_skips_the_vector_pass_and_its_dram_round_trip():
    plain = sim.simulate(mapper.map_graph(_graph(), config.load("fpga-small")))
    fused_plan = mapper.map_graph(_graph(), _design())
    fused = sim.simulate(fused_plan)
    assert not any(isinstance(c, Vector) and c.layer.startswith("conv1") for c in fused_plan.commands)
    stores = [c for c in fused_plan.commands if isinstance(c, Store | Move) and c.layer == "conv1"]
    assert stores and all(c.activation == "relu,clip" for c in stores)
    assert fused.dram_bytes < plain.dram_bytes and fused.total_cycles < plain.total_cycles
    assert fused.dram_bytes == fused_plan.dram_bytes
    # the activation's energy is charged on the store path: two functions per value
    table = fused_plan.arch.energy
    vector_on_stores = sum(c.size_bytes * 2 * table.vector_op_pj for c in stores)  # int8: a value a byte
    by_layer = fused.energy.by_layer.set_index("layer")
    assert by_layer.loc["conv1", "vector_pj"] == pytest.approx(vector_on_stores) and vector_on_stores > 0


def test_functions_come_from_toml_and_are_checked():
    text = config.dumps(config.load("fpga-small")) + '\n[activation]\nfunctions = ["relu", "sigmoid"]\n'
    text = re.sub(r"\n\[activation\]\n(?:[a-z_]+ = [^\n]*\n)+", "\n", text, count=1)  # the dumped (empty) one
    assert config.loads(text).activation.functions == ("relu", "sigmoid")
    assert config.loads(config.dumps(config.loads(text))) == config.loads(text)
    with pytest.raises(ConfigError, match="activation.functions"):
        config.loads(text.replace('["relu", "sigmoid"]', '"relu"'))
    with pytest.raises(ConfigError, match="functions must be a list of lower-case"):
        ActivationPath(("ReLU",))
