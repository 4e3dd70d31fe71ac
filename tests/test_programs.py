"""One program per distinct emission input (mapper.programs): designs that differ only off chip and map
alike share the program object, which equals a fresh emission; anything emission reads makes a new one."""

from __future__ import annotations

import dataclasses

import pytest

import mapper
import sim
import workloads
from accel import config
from accel.hardware import Dataflow
from mapper import programs
from mapper.decide import decide_layers
from mapper.search import clear_caches
from workloads.builder import GraphBuilder


@pytest.fixture(autouse=True)
def empty_memos():
    clear_caches()
    yield
    clear_caches()


def with_dram(arch, bandwidth: float, latency: int | None = None):
    dram = dataclasses.replace(arch.dram, bandwidth_bytes_per_cycle=bandwidth,
                               latency_cycles=arch.dram.latency_cycles if latency is None else latency)
    return dataclasses.replace(arch, dram=dram)


def fresh(graph, arch, options=None):
    """The plan as a process that never mapped anything before would make it."""
    clear_caches()
    return mapper.map_graph(graph, arch, options)


def test_designs_that_differ_off_chip_and_map_alike_share_one_program():
    graph, base = workloads.load("resnet18"), config.load("gemmini")
    fast, slow = with_dram(base, 32.0), with_dram(base, 64.0)
    first, second = mapper.map_graph(graph, fast), mapper.map_graph(graph, slow)
    assert [m.tile for m in first.layers] == [m.tile for m in second.layers]  # the searches chose alike
    assert second.commands is first.commands
    assert second.arch is slow  # the plan is the new design's: only the program is shared
    # and the shared program is exactly what emission writes for the second design from nothing
    assert fresh(graph, slow).commands == second.commands


def test_a_program_that_begins_as_a_memoised_one_resumes_from_its_checkpoint(monkeypatch):
    """ResNet-18 on a 128 KiB, output-stationary Gemmini: at 8 and 48 B/cycle of DRAM the searches
    choose alike up to layer 21; the second program resumes from the first's state before layer 16
    and equals emitting its decisions afresh."""
    graph, base = workloads.load("resnet18"), config.load("gemmini")
    arch = dataclasses.replace(base, scratchpad=dataclasses.replace(base.scratchpad, size_bytes=128 * 1024),
                               array=dataclasses.replace(base.array, dataflows=(Dataflow.OS,)))
    calls = []
    emit = programs.emit_resumable

    def recorded(*args, start=None, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append((args, None if start is None else start[1].step))
        return emit(*args, start=start, **kwargs)

    monkeypatch.setattr(programs, "emit_resumable", recorded)
    first, second = mapper.map_graph(graph, with_dram(arch, 8.0)), mapper.map_graph(graph, with_dram(arch, 48.0))
    assert [step for _, step in calls] == [None, 16]
    assert second.commands is not first.commands and second.commands[:100] == first.commands[:100]
    assert (second.commands, second.weight_tiles) == programs.emit_program(*calls[1][0])


def test_the_simulator_times_a_shared_program_on_each_design_as_on_a_fresh_one():
    graph, base = workloads.load("resnet18"), config.load("gemmini")
    designs = [with_dram(base, 16.0), dataclasses.replace(with_dram(base, 32.0), clock_hz=2 * base.clock_hz),
               dataclasses.replace(base, dram=dataclasses.replace(base.dram, energy_pj_per_byte=240.0))]
    plans = [mapper.map_graph(graph, arch) for arch in designs]
    assert all(p.commands is plans[0].commands for p in plans)
    shared = [sim.simulate(plan).summary() for plan in plans]
    assert shared == [sim.simulate(fresh(graph, arch)).summary() for arch in designs]
    assert len({(s["latency_s"], s["energy_j"]) for s in shared}) == 3  # each timed and priced on its own design


def test_anything_emission_reads_gives_a_new_program():
    graph, base = workloads.load("resnet18"), config.load("gemmini")
    plan = mapper.map_graph(graph, base)
    smaller = dataclasses.replace(base, scratchpad=dataclasses.replace(base.scratchpad, size_bytes=128 * 1024))
    other = mapper.map_graph(graph, smaller)
    assert other.commands is not plan.commands and other.commands == fresh(graph, smaller).commands
    # the same design asked for another objective, whose searches choose other tiles
    energy = mapper.map_graph(graph, base, mapper.MapOptions(objective="energy"))
    assert energy.commands == fresh(graph, base, mapper.MapOptions(objective="energy")).commands


def test_plans_with_residents_are_emitted_afresh():
    graph, arch = workloads.load("resnet18"), config.load("gemmini")
    options = mapper.MapOptions(allocator="greedy")
    first, second = mapper.map_graph(graph, arch, options), mapper.map_graph(graph, arch, options)
    assert second.commands is not first.commands and second.commands == first.commands


def test_a_decision_key_is_what_emission_reads_and_not_the_estimates():
    graph, arch = workloads.load("resnet18"), config.load("gemmini")
    graph = programs.prepared(graph, arch)
    decisions = decide_layers(graph, arch, mapper.MapOptions())
    array = next(d for d in decisions if hasattr(d, "choice"))
    estimates = dataclasses.replace(array.mapping, estimate_cycles=1.0, estimate_energy_pj=2.0)
    cost = dataclasses.replace(array.choice, cost=dataclasses.replace(array.choice.cost, cycles=3.0))
    key = programs.decision_key(array)
    assert programs.decision_key(dataclasses.replace(array, mapping=estimates, choice=cost)) == key
    assert programs.decision_key(dataclasses.replace(array, working_bytes=array.working_bytes // 2)) != key
    tile = dataclasses.replace(array.choice.plan, m=array.choice.plan.m // 2 or 1)
    assert programs.decision_key(dataclasses.replace(array, choice=dataclasses.replace(array.choice, plan=tile))) != key
    vector = next(d for d in decisions if hasattr(d, "chunks"))
    assert programs.decision_key(dataclasses.replace(vector, chunks=vector.chunks + 1)) != programs.decision_key(vector)


def test_one_input_graph_is_prepared_once_per_activation_path():
    b = GraphBuilder("conv_relu")
    b.activation(b.conv(b.input("x", (1, 8, 16, 16)), 16, 3, 1, 1, name="conv"), "relu", "relu")
    graph, arch = b.build(), config.load("tpu-v1")  # tpu-v1's store path applies the ReLU
    assert programs.prepared(graph, arch) is programs.prepared(graph, with_dram(arch, 64.0))
    assert len(programs.prepared(graph, arch).layers) < len(graph.layers)
    plain = dataclasses.replace(arch, activation=dataclasses.replace(arch.activation, functions=()))
    assert programs.prepared(graph, plain) is not programs.prepared(graph, arch)
    assert len(programs.prepared(graph, plain).layers) == len(graph.layers)


def test_the_memo_keeps_at_most_its_budget_of_commands(monkeypatch):
    graph, base = workloads.load("resnet18"), config.load("gemmini")
    smaller = dataclasses.replace(base, scratchpad=dataclasses.replace(base.scratchpad, size_bytes=128 * 1024))
    sizes = [len(mapper.map_graph(graph, arch).commands) for arch in (base, smaller)]
    programs.clear()  # the programs only: the searches' choices stay memoised (this is about the program memo)
    monkeypatch.setattr(programs, "COMMANDS", max(sizes))  # room for either program, not for both
    first = mapper.map_graph(graph, base)
    assert mapper.map_graph(graph, with_dram(base, 32.0)).commands is first.commands
    mapper.map_graph(graph, smaller)  # the second program pushes the first out
    assert mapper.map_graph(graph, with_dram(base, 48.0)).commands is not first.commands
    monkeypatch.setattr(programs, "COMMANDS", min(sizes) - 1)  # a program bigger than the budget is never kept
    programs.clear()
    assert mapper.map_graph(graph, base).commands is not mapper.map_graph(graph, with_dram(base, 32.0)).commands
