"""N:M structured sparsity in the graph, the mapper and the simulator."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from accel import config
from accel.cli import main
from accel.commands import Compute, Load, Store
from accel.errors import WorkloadError
from accel.hardware import Sparsity
from mapper import MapOptions, map_graph, map_with_baselines
from mapper.emit import dram_addresses
from sim import simulate
from workloads import sparsify, zoo

SPARSE = config.load("sparse-nm")


def test_the_sparse_preset_runs_dense_and_three_patterns():
    assert set(SPARSE.array.sparsity) == {Sparsity(2, 4), Sparsity(1, 4), Sparsity(2, 8)}
    assert SPARSE.array.rows == SPARSE.array.cols == 16


def test_sparsify_marks_weight_bearing_layers_only():
    bert = sparsify(zoo.build("bert_base_layer"), "2:4")
    marked = {layer.op.value for layer in bert.layers if layer.sparsity is not None}
    assert marked == {"gemm"}  # the attention matmuls multiply two activations: never marked
    assert all(layer.sparsity is None for layer in bert.layers if layer.op.value == "matmul")
    assert bert.total_macs == zoo.build("bert_base_layer").total_macs


def test_sparsify_names_a_missing_or_unfit_layer():
    graph = zoo.build("resnet18")
    with pytest.raises(WorkloadError, match=r"^Graph 'resnet18' has no layer 'conv9' to make N:M$"):
        sparsify(graph, Sparsity(2, 4), layers=["conv9"])
    with pytest.raises(WorkloadError, match=r"^Layer 'maxpool' has no constant weights to make 2:4 sparse$"):
        sparsify(graph, Sparsity(2, 4), layers=["maxpool"])



@pytest.mark.parametrize("pattern", [None, 5, (2, 4)])
def test_sparsify_refuses_a_pattern_that_is_neither_a_sparsity_nor_text(pattern):
    with pytest.raises(WorkloadError, match=r"^N:M pattern must be a Sparsity or a string such as '2:4', not "):
        sparsify(zoo.build("alexnet"), pattern)


def test_a_layer_refuses_a_sparsity_that_is_not_a_pattern():
    layer = zoo.build("alexnet").layer("conv1")
    with pytest.raises(WorkloadError, match=r"^Layer 'conv1': N:M sparsity must be a Sparsity or None, not '2:4'$"):
        replace(layer, sparsity="2:4")

@pytest.mark.parametrize("pattern", [Sparsity(2, 4), Sparsity(1, 4), Sparsity(2, 8)])
def test_array_does_n_of_m_multiplies_and_loads_compressed_weights(pattern):
    dense = zoo.build("bert_base_layer")
    graph = sparsify(dense, pattern)
    plan = map_graph(graph, SPARSE)
    computes = [c for c in plan.commands if isinstance(c, Compute) and c.sparsity is not None]
    assert computes and all(c.sparsity == pattern for c in computes)
    assert plan.macs == dense.total_macs
    sparse_layers = {layer.name for layer in graph.layers if layer.sparsity is not None}
    dense_macs = sum(layer.macs for layer in graph.layers if layer.name in sparse_layers)
    performed = sum(c.macs for c in computes)
    assert performed == dense_macs * pattern.n // pattern.m  # BERT's reductions are multiples of 8
    # Weights travel compressed: n values and n log2(m)-bit indices per group of m.
    layer = graph.layer("attention.q")
    weight = next(t for t in layer.inputs if graph.tensors[t].is_constant)
    k, n = 768, 768
    loaded = sum(c.size_bytes for c in plan.commands if isinstance(c, Load) and c.tensor == weight)
    values = k // pattern.m * pattern.n * n
    assert loaded >= values + values * pattern.index_bits // 8
    assert loaded < k * n  # less than the dense int8 weights


def test_an_array_without_the_pattern_runs_the_layer_dense():
    graph = sparsify(zoo.build("resnet18"), "2:4")
    gemmini = config.load("gemmini")
    dense = map_graph(zoo.build("resnet18"), gemmini)
    assert simulate(map_graph(graph, gemmini)).total_cycles == simulate(dense).total_cycles
    assert all(c.sparsity is None for c in map_graph(graph, gemmini).commands if isinstance(c, Compute))


def test_sparse_runs_are_faster_and_move_less(capsys):
    figures = {}
    for nm in (None, "2:4", "1:4"):
        argv = ["run", "--arch", "sparse-nm", "--workload", "resnet18", "--json"] + (["--nm", nm] if nm else [])
        assert main(argv) == 0
        figures[nm] = json.loads(capsys.readouterr().out)
    assert figures[None]["total_cycles"] > figures["2:4"]["total_cycles"] > figures["1:4"]["total_cycles"]
    assert figures[None]["dram_bytes"] > figures["2:4"]["dram_bytes"] > figures["1:4"]["dram_bytes"]
    assert figures[None]["macs"] == figures["2:4"]["macs"]  # the workload's MACs, dense-equivalent


def test_a_bad_pattern_on_the_command_line_exits_2(capsys):
    assert main(["run", "--arch", "sparse-nm", "--workload", "resnet18", "--nm", "4:2"]) == 2
    assert capsys.readouterr().err == "accel: error: N:M sparsity needs integers 1 <= N < M, not 4:2\n"


@pytest.mark.parametrize(("k", "cols", "pattern"), [(768, 768, "2:4"), (147, 64, "1:4"), (100, 3, "2:8")])
def test_the_mapper_and_the_reference_agree_on_compressed_sizes(k, cols, pattern):
    from sim.numerics import nm_compressed_bytes

    nm = Sparsity.parse(pattern)
    assert nm.compressed_bytes(nm.compressed_k(k) * cols, 8) == nm_compressed_bytes(k, cols, nm.n, nm.m, 8)


def _tensor_dram_bytes_moved(plan) -> int:  # noqa: ANN001
    """DRAM bytes the plan's loads and stores move for tensors (not the partial sums' scratch area)."""
    _, top = dram_addresses(plan.graph, plan.arch)
    return sum(c.size_bytes for c in plan.commands
               if isinstance(c, Load | Store) and c.dram_addr < top and not getattr(c, "raw", False))


#: sparse-nm with one weight buffer more, a slow one-lane vector unit and byte-wide DMA: gpt2_decode's
#: tiles then stream little beyond their compressed weights, so dense-sized weights overshoot them
_TIGHT = replace(SPARSE, array=replace(SPARSE.array, weight_buffers=2),
                 vector=replace(SPARSE.vector, lanes=1, latency_cycles=30),
                 dma=replace(SPARSE.dma, burst_bytes=1, latency_cycles=0))


@pytest.mark.parametrize("allocator", ["none", "greedy", "ilp"])
@pytest.mark.parametrize(("workload", "arch"), [("bert_base_layer", SPARSE), ("gpt2_decode", _TIGHT)],
                         ids=["bert_base_layer", "gpt2_decode"])
def test_tensor_dram_bytes_of_an_n_of_m_model_never_exceed_what_the_plan_moves(workload, arch, allocator):
    kwargs = {"batch": 3} if workload == "gpt2_decode" else {}
    summary = map_with_baselines(sparsify(zoo.build(workload, **kwargs), "2:4"), arch, MapOptions(allocator=allocator))
    moved = _tensor_dram_bytes_moved(summary.plan)
    assert summary.allocation.dram_bytes <= moved, (summary.allocation.dram_bytes, moved)  # the plan's tensors
    assert summary.problem.compulsory_dram_bytes <= moved


def test_the_memory_problem_sizes_an_n_of_m_weight_as_the_program_loads_it():
    graph = sparsify(zoo.build("bert_base_layer"), "2:4")
    problem = map_with_baselines(graph, SPARSE, MapOptions(allocator="greedy")).problem
    weight = next(t for t in graph.layer("attention.q").inputs if graph.tensors[t].is_constant)
    values = 768 // 4 * 2 * 768  # kept values, and a 2-bit index each
    assert problem.tensor(weight).size_bytes == values + values * 2 // 8


def test_a_design_without_the_pattern_sizes_n_of_m_weights_dense():
    gemmini = config.load("gemmini")
    sparse = map_with_baselines(sparsify(zoo.build("bert_base_layer"), "2:4"), gemmini, MapOptions(allocator="greedy"))
    dense = map_with_baselines(zoo.build("bert_base_layer"), gemmini, MapOptions(allocator="greedy"))
    assert [t.size_bytes for t in sparse.problem.tensors] == [t.size_bytes for t in dense.problem.tensors]
