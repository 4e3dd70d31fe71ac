"""Functional execution: the mapper's command programs compute the network, bit for bit against onnxruntime.

Quantized models are built here without downloads (the shared ONNX graphs, seeded weights and
calibration, onnxruntime's quantize_static); sim.execute runs every command of the mapped plan on
byte images of DRAM, scratchpad and accumulator, and the outputs must equal onnxruntime's exactly.
With 2:4 weights (pruned before quantization) on the sparse-nm design the array runs compressed tiles,
and the outputs equal onnxruntime's on the pruned dense model. Mutations of one command of a valid
plan must be caught by the plan checker or by the result.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from accel.commands import Compute, Load, Move, Store, Vector
from accel.config import load
from accel.errors import AccelError
from accel.formats import Requantization
from mapper import MapOptions, map_graph
from mapper.check import check_plan
from sim.execute import ExecutionError, execute, execute_graph
from sim.oracle import onnxruntime_outputs
from sim.reference import run_quantized
from workloads import sparsify
from workloads.host import split_host
from workloads.onnx_import import load_onnx
from workloads.quantize import calibration_inputs, shared_model

ort = pytest.importorskip("onnxruntime")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "onnx"
SMALL = {"input.1": (1, 3, 64, 48)}  # the shared CNNs end in a global pool: any image size works


@cache
def _model(name: str, nm: str | None = None):  # type: ignore[no-untyped-def]
    """(graph, float feed, onnxruntime's outputs) of a shared CNN; with ``nm`` its float weights pruned
    to N:M before quantization and every weight-bearing layer of the graph marked N:M."""
    logging.disable(logging.WARNING)
    try:
        _, quantized = shared_model(SHARED / f"{name}.onnx", input_shapes=SMALL, nm=nm)
    finally:
        logging.disable(logging.NOTSET)
    feed = calibration_inputs(quantized, count=1, seed=7)[0]
    graph = load_onnx(quantized)
    return (sparsify(graph, nm) if nm else graph), feed, onnxruntime_outputs(quantized, feed)


def _arch(preset: str):  # type: ignore[no-untyped-def]
    arch = load(preset)  # onnxruntime's requantization, so the design computes what onnxruntime does
    return dataclasses.replace(arch, array=dataclasses.replace(arch.array, requant=Requantization.FLOAT32_HALF_EVEN))


ALLOCATORS = (("none", None), ("greedy", 32 * 1024), ("firstfit", None), ("ilp", 16 * 1024))
CASES = [(model, preset, allocator, spad)
         for model in ("resnet18", "mobilenetv2")
         for preset in ("gemmini", "fpga-small", "sparse-nm")
         for allocator, spad in ALLOCATORS]


@pytest.mark.parametrize(("model", "preset", "allocator", "spad"), CASES)
def test_mapped_program_equals_onnxruntime_bit_for_bit(model: str, preset: str, allocator: str,
                                                       spad: int | None) -> None:
    graph, feed, expected = _model(model)
    plan = map_graph(graph, _arch(preset), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    ours = execute_graph(graph, plan, feed)
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
        assert np.array_equal(ours[name], value), f"{name}: max difference {np.abs(ours[name] - value).max()}"


@pytest.mark.parametrize(("model", "allocator", "spad"), [(model, allocator, spad)
                                                          for model in ("resnet18", "mobilenetv2")
                                                          for allocator, spad in ALLOCATORS])
def test_two_four_sparse_weights_run_compressed_and_equal_onnxruntime_on_the_pruned_model(
        model: str, allocator: str, spad: int | None) -> None:
    graph, feed, expected = _model(model, "2:4")
    plan = map_graph(graph, _arch("sparse-nm"), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    sparse = [c for c in plan.commands if isinstance(c, Compute) and c.sparsity is not None]
    assert sparse and plan.weight_tiles  # the array runs the layers 2:4 on packed tiles
    assert all(tile.size_bytes < tile.extent[0] * tile.extent[1] * tile.extent[2] * 2
               for tiles in plan.weight_tiles.values() for tile in tiles)  # values and 2-bit indices only
    ours = execute_graph(graph, plan, feed)
    for name, value in expected.items():
        assert np.array_equal(ours[name], value), f"{name}: max difference {np.abs(ours[name] - value).max()}"


@cache
def _inception_cell():  # type: ignore[no-untyped-def]
    """Three branches (1x1, 3x3, 5x5 convolutions) concatenated along channels, mixed by a 3x3 convolution."""
    from workloads.builder import GraphBuilder
    from workloads.onnx_export import export_onnx
    from workloads.quantize import quantize_model

    b = GraphBuilder("inception_cell")
    x = b.input("x", (1, 8, 12, 10))
    branches = [b.activation(b.conv(x, oc, k, 1, k // 2, name=f"b{k}"), "relu", f"b{k}.relu")
                for oc, k in ((16, 1), (8, 3), (24, 5))]
    mixed = b.activation(b.conv(b.concat(branches, 1, "cat"), 16, 3, 1, 1, name="mix"), "relu", "mix.relu")
    b.global_pool(mixed, "avg", "gap")
    logging.disable(logging.WARNING)
    try:
        model = export_onnx(b.build(), seed=3)
        quantized = quantize_model(model, calibration_inputs(model, count=2, seed=1))
    finally:
        logging.disable(logging.NOTSET)
    feed = calibration_inputs(quantized, count=1, seed=9)[0]
    return load_onnx(quantized), feed, onnxruntime_outputs(quantized, feed)


@pytest.mark.parametrize(("allocator", "spad"), [("none", None), ("greedy", 8192), ("ilp", 4096)])
def test_a_channel_concatenation_copies_each_input_into_its_columns(allocator: str, spad: int | None) -> None:
    graph, feed, expected = _inception_cell()
    plan = map_graph(graph, _arch("fpga-small"), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    copies = [c for c in plan.commands if isinstance(c, Vector) and c.layer == "cat"]
    assert {c.part for c in copies} == {0, 1, 2}  # one command per input and chunk of rows
    ours = execute_graph(graph, plan, feed)
    for name, value in expected.items():
        assert np.array_equal(ours[name], value), f"{name}: max difference {np.abs(ours[name] - value).max()}"


@pytest.mark.parametrize("order", ["loads-last", "program"])
def test_every_legal_order_gives_the_same_codes(order: str) -> None:
    graph, feed, _ = _model("resnet18")
    plan = map_graph(graph, _arch("gemmini"), MapOptions(allocator="greedy", scratchpad_bytes=32 * 1024))
    device = split_host(graph).device
    codes = run_quantized(graph, feed, intermediates=True)
    inputs = {t.name: codes[t.name] for t in device.inputs}
    ours = execute(plan, inputs, order=order)
    for name, value in ours.items():
        assert np.array_equal(value, codes[name]), name


def test_the_host_quantizes_and_dequantizes_and_the_accelerator_moves_codes() -> None:
    graph, _, _ = _model("resnet18")
    split = split_host(graph)
    assert [layer.attrs["numerics"] for layer in split.before] == ["quantize"]
    assert [layer.attrs["numerics"] for layer in split.after] == ["dequantize"]
    plan = map_graph(graph, _arch("gemmini"), MapOptions())
    assert plan.graph is not None and not any(layer.attrs.get("numerics") in ("quantize", "dequantize")
                                              for layer in plan.graph.layers)


def test_a_float_layer_is_reported_never_run_in_float() -> None:
    graph, feed, _ = _model("resnet18")
    plan = map_graph(graph, _arch("gemmini"), MapOptions())
    layer = next(lay for lay in plan.graph.layers if lay.op.value == "conv")
    broken = dataclasses.replace(layer, attrs={**layer.attrs, "numerics": "float"})
    graph2 = dataclasses.replace(plan.graph, layers=tuple(broken if lay is layer else lay
                                                          for lay in plan.graph.layers))
    with pytest.raises(ExecutionError, match=layer.name):
        execute(dataclasses.replace(plan, graph=graph2), {})


# -- mutations: one corrupted command in a valid plan -------------------------------------------

def _mutations(plan):  # type: ignore[no-untyped-def]
    """(what, corrupted commands): an address, a size and a dependency of a load, a store, a move, a compute."""
    commands = plan.commands
    first = {kind: next(c for c in commands if type(c) is kind and (kind is not Load or c.size_bytes > 1))
             for kind in (Load, Store, Compute)}
    moves = [c for c in commands if isinstance(c, Move)]
    weights = next(c for c in commands if isinstance(c, Load) and plan.graph.tensors[c.tensor].is_constant
                   and c.size_bytes > 1)
    cases = {
        "load dram_addr": dataclasses.replace(first[Load], dram_addr=first[Load].dram_addr + 1),
        "load addr": dataclasses.replace(first[Load], addr=first[Load].addr + 1),
        # (a weight tile: every byte of it is read, while an input band may end in bytes no output reads)
        "load size": dataclasses.replace(weights, size_bytes=weights.size_bytes - 1),
        "store dram_addr": dataclasses.replace(first[Store], dram_addr=first[Store].dram_addr + 1),
        "compute input_addr": dataclasses.replace(first[Compute], input_addr=first[Compute].input_addr + 1),
        "compute output_addr": dataclasses.replace(first[Compute], output_addr=first[Compute].output_addr + 4),
        "compute dependency": dataclasses.replace(first[Compute], deps=()),
    }
    if moves:
        cases["move addr"] = dataclasses.replace(moves[0], addr=moves[0].addr + 1)
    packed = [c for c in commands if isinstance(c, Load) and c.tensor in plan.weight_tiles and c.size_bytes > 1]
    if packed:  # an N:M weight tile read one byte off: values and indices shift
        cases["N:M weight load dram_addr"] = dataclasses.replace(packed[0], dram_addr=packed[0].dram_addr + 1)
    for what, cmd in cases.items():
        yield what, tuple(cmd if c.id == cmd.id else c for c in commands)


@pytest.mark.parametrize(("preset", "nm"), [("gemmini", None), ("sparse-nm", "2:4")])
def test_one_corrupted_command_is_caught_by_the_checker_or_by_the_result(preset: str, nm: str | None) -> None:
    graph, feed, expected = _model("resnet18", nm)
    plan = map_graph(graph, _arch(preset), MapOptions(allocator="greedy", scratchpad_bytes=32 * 1024))
    (name, good), = expected.items()
    caught = {}
    for what, commands in _mutations(plan):
        bad = dataclasses.replace(plan, commands=commands)
        try:
            check_plan(bad)
        except AccelError:
            caught[what] = "checker"
            continue
        try:
            result = execute_graph(graph, bad, feed)[name]
        except AccelError:
            caught[what] = "executor"
            continue
        caught[what] = "result" if not np.array_equal(result, good) else "missed"
    assert "missed" not in caught.values(), caught
