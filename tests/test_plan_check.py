"""Plans with resident tensors: the command program follows the allocation, the simulator moves the
plan's DRAM bytes, and ``check_plan`` proves it, catching deliberately corrupted plans."""

from __future__ import annotations

import dataclasses
import re

import pytest

import workloads
from accel import config
from accel.commands import Buffer, Compute, Load, Move, Store
from accel.errors import MappingError
from mapper import MapOptions, map_graph
from mapper.check import check_plan
from mapper.ilp import weighted_non_compulsory
from mapper.memory import allocate
from mapper.pipeline import build_plan
from sim import simulate
from workloads import zoo

KIB = 1024


@pytest.fixture(scope="module")
def gemmini():
    return config.load("gemmini")


@pytest.fixture(scope="module")
def plain_plan(gemmini):
    """ResNet-18 without an allocator: every operand goes through DRAM."""
    return map_graph(zoo.build("resnet18"), gemmini, MapOptions())


@pytest.fixture(scope="module")
def resident_plan(gemmini):
    """ResNet-18 on a 512 KiB scratchpad with greedy residency: many tensors stay on chip."""
    return map_graph(zoo.build("resnet18"), gemmini, MapOptions(allocator="greedy", scratchpad_bytes=512 * KIB))


def _replace(plan, index: int, **changes):
    commands = list(plan.commands)
    commands[index] = dataclasses.replace(commands[index], **changes)
    return dataclasses.replace(plan, commands=tuple(commands))


def _q(value) -> str:
    """``value``'s repr, as a regular expression matching it exactly."""
    return re.escape(repr(value))


def _resident_reads(plan):
    """(step, tensor) of every operand a layer reads from its resident copy."""
    order = [m.layer for m in plan.layers]
    out = []
    for step, name in enumerate(order):
        layer = next(layer for layer in plan.graph.layers if layer.name == name)
        for t in layer.inputs:
            ta = plan.allocation.tensors.get(t)
            if ta is not None and ta.offset_at(step) is not None and step in plan.problem.tensor(t).use_steps:
                out.append((step, name, t))
    return out


# -- what residency does to the program ------------------------------------------------------------

def test_resident_tensors_cut_dram_traffic_and_time(gemmini, resident_plan):
    baseline = map_graph(zoo.build("resnet18"), gemmini, MapOptions(scratchpad_bytes=512 * KIB))
    assert resident_plan.dram_bytes < 0.9 * baseline.dram_bytes
    assert simulate(resident_plan).total_cycles < simulate(baseline).total_cycles


def test_a_resident_operand_is_never_loaded_in_its_layer(resident_plan):
    reads = _resident_reads(resident_plan)
    assert len(reads) > 10
    for step, layer, tensor in reads:
        if step in resident_plan.allocation.tensors[tensor].read_steps:
            continue  # reloaded whole at this step, once
        loads = [c for c in resident_plan.commands if isinstance(c, Load) and c.layer == layer and c.tensor == tensor]
        assert loads == [], f"{layer} loads resident {tensor}"


def test_results_that_stay_on_chip_move_there_instead_of_going_to_dram(resident_plan):
    moves = [c for c in resident_plan.commands if isinstance(c, Move)]
    assert moves
    for move in moves:
        stores = [c for c in resident_plan.commands
                  if isinstance(c, Store) and c.layer == move.layer and c.tensor == move.tensor
                  and c.buffer.value == "accumulator"]
        assert stores == [], f"{move.layer} both moves and stores {move.tensor}"


def test_the_simulator_moves_exactly_the_plans_dram_bytes_and_moves_cost_no_dram(resident_plan):
    result = simulate(resident_plan)
    assert result.dram_bytes == resident_plan.dram_bytes
    layers = result.layers()
    assert int(layers["dram_read_bytes"].sum()) == resident_plan.dram_read_bytes
    assert int(layers["dram_write_bytes"].sum()) == resident_plan.dram_write_bytes
    assert result.energy.by_component["dram"] > 0


def test_no_allocator_gives_the_plain_lowering(gemmini):
    graph = zoo.build("mobilenet_v2")
    plan = map_graph(graph, gemmini, MapOptions())
    assert plan.allocation is None and plan.working_bytes is None
    assert plan.commands == build_plan(graph, gemmini, MapOptions()).commands
    assert not any(isinstance(c, Move) for c in plan.commands)


@pytest.mark.parametrize("objective", ["latency", "energy", "edp"])
def test_each_objective_wins_on_its_own_measure(gemmini, objective):
    graph = zoo.build("bert_base_layer")
    plans = {o: map_graph(graph, gemmini, MapOptions(objective=o)) for o in ("latency", "energy", "edp")}
    estimate = {o: (sum(m.estimate_cycles for m in p.layers), sum(m.estimate_energy_pj for m in p.layers))
                for o, p in plans.items()}
    cycles, energy = estimate[objective]
    if objective == "latency":
        assert all(cycles <= c for c, _ in estimate.values())
    elif objective == "energy":
        assert all(energy <= e for _, e in estimate.values())
    else:
        assert all(cycles * energy <= c * e * (1 + 1e-9) for c, e in estimate.values())


def test_every_array_layer_reports_its_roofline_bound(gemmini):
    plan = map_graph(zoo.build("resnet18"), gemmini, MapOptions())
    array_layers = [m for m in plan.layers if m.dataflow is not None]
    assert array_layers
    for m in array_layers:
        assert m.roofline_cycles >= m.macs / gemmini.peak_macs_per_cycle
        assert 0 < m.roofline_fraction <= 1.0
        assert m.candidates >= m.pareto >= 1


# -- every model, every allocator: valid, never worse, agreed by the simulator ----------------------

MODELS = [*(m for m in zoo.names() if m not in zoo.LLM_MODELS),  # LLMs: too big for every allocator here
          "onnx:resnet18.onnx", "onnx:mobilenetv2.onnx", "onnx:alexnet.onnx"]


def _load(model: str, shared_data):
    if model.startswith("onnx:"):
        return workloads.load(shared_data / "onnx" / model.removeprefix("onnx:"))
    return zoo.build(model)


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_every_allocator_gives_a_checked_plan_the_simulator_agrees_with(model, gemmini, shared_data):
    graph = _load(model, shared_data)
    plans = {method: map_graph(graph, gemmini, MapOptions(allocator=method, scratchpad_bytes=512 * KIB,
                                                          time_limit_s=20.0))
             for method in ("none", "greedy", "firstfit", "ilp")}
    for method, plan in plans.items():
        check_plan(plan)  # map_graph checked it too; this says so in the test
        assert simulate(plan).dram_bytes == plan.dram_bytes, method
    ilp = plans["ilp"].allocation
    for method in ("none", "greedy", "firstfit"):
        assert plans["ilp"].dram_bytes <= plans[method].dram_bytes, method  # the program: never worse
    # the ILP's optimum of its model (each use priced at its layer's reads), its own figures apart when
    # the program runs a baseline's tensors
    own = ilp.details["tensors_from"] == "ilp"
    figures = {"objective": ilp.objective, "bound": ilp.bound} if own else ilp.details["ilp"]
    assert own or ilp.method == ilp.details["tensors_from"]
    for method in ("greedy", "firstfit"):
        assert figures["objective"] <= weighted_non_compulsory(plans["ilp"].problem, plans[method].allocation), method
    assert figures["bound"] <= figures["objective"]


# -- the checker catches corrupted plans -----------------------------------------------------------

def test_the_uncorrupted_plan_checks(resident_plan):
    check_plan(resident_plan)


def test_checker_catches_a_transfer_outside_the_scratchpad(resident_plan):
    i = next(c.id for c in resident_plan.commands if isinstance(c, Load))
    bad = _replace(resident_plan, i, addr=resident_plan.arch.scratchpad.size_bytes - 1)
    with pytest.raises(MappingError, match=r"outside its 524288 B$"):
        check_plan(bad)


def test_checker_catches_a_tile_load_over_a_resident_tensor(resident_plan):
    step, layer, tensor, i = next(
        (step, layer, tensor, c.id) for step, layer, tensor in _resident_reads(resident_plan)
        for c in resident_plan.commands if isinstance(c, Load) and c.layer == layer and c.tensor != tensor)
    offset = resident_plan.allocation.tensors[tensor].offset_at(step)
    bad = _replace(resident_plan, i, addr=offset)
    with pytest.raises(MappingError, match=r"(overwrites .* which is resident at that step|below the layer's working)"):
        check_plan(bad)


def test_checker_catches_overlapping_residents(resident_plan):
    allocation = resident_plan.allocation
    live = [(name, ta) for name, ta in allocation.tensors.items() if ta.intervals]
    (a, ta), (b, tb) = next((x, y) for x in live for y in live if x[0] != y[0] and any(
        i[0] <= j[1] and j[0] <= i[1] for i in x[1].intervals for j in y[1].intervals))
    moved = dataclasses.replace(tb, intervals=tuple((f, la, ta.intervals[0][2]) for f, la, _ in tb.intervals))
    tensors = dict(allocation.tensors)
    tensors[b] = moved
    bad = dataclasses.replace(resident_plan, allocation=dataclasses.replace(allocation, tensors=tensors))
    with pytest.raises(MappingError, match=r"overlap|offset|sits at"):
        check_plan(bad)


def test_checker_catches_a_missing_operand(resident_plan):
    compute = next(c for c in resident_plan.commands if isinstance(c, Compute) and any(
        isinstance(resident_plan.commands[d], Load) for d in c.deps))
    load = next(resident_plan.commands[d] for d in compute.deps if isinstance(resident_plan.commands[d], Load))
    bad = _replace(resident_plan, load.id, tensor=resident_plan.graph.outputs[0].name)
    with pytest.raises(MappingError, match=r"computes without its operand|reads .* from DRAM"):
        check_plan(bad)


def test_checker_catches_a_read_of_a_resident_copy_nobody_waited_for(resident_plan):
    array_layers = {c.layer for c in resident_plan.commands if isinstance(c, Compute)}
    step, layer, tensor = next(r for r in _resident_reads(resident_plan) if r[1] in array_layers
                               and r[0] not in resident_plan.allocation.tensors[r[2]].read_steps)
    compute = next(c for c in resident_plan.commands if isinstance(c, Compute) and c.layer == layer)
    # keep only its waits on its own layer: the command that wrote the resident copy ran earlier
    own = tuple(d for d in compute.deps if resident_plan.commands[d].layer == layer)
    bad = _replace(resident_plan, compute.id, deps=own)
    with pytest.raises(MappingError, match=r"reads .* from its resident copy without waiting"):
        check_plan(bad)


def test_checker_catches_a_dram_read_before_the_store(gemmini):
    plan = map_graph(zoo.build("resnet18"), gemmini, MapOptions())
    load = next(c for c in plan.commands if isinstance(c, Load) and c.layer == "layer1.0.conv2")
    bad = _replace(plan, load.id, deps=())
    with pytest.raises(MappingError, match=r"without waiting for its latest store"):
        check_plan(bad)


def test_checker_catches_an_id_that_is_not_its_position(plain_plan):
    with pytest.raises(MappingError, match=r"^Command 5 has id 6; ids must be program positions$"):
        check_plan(_replace(plain_plan, 5, id=6))


@pytest.mark.parametrize("wait", ["itself", "later", "negative"])
def test_checker_catches_a_wait_for_a_command_that_is_not_earlier(plain_plan, wait):
    cmd = plain_plan.commands[100]
    target = {"itself": 100, "later": 101, "negative": -1}[wait]
    with pytest.raises(MappingError, match=rf"^Command 100 \({type(cmd).__name__}, layer {_q(cmd.layer)}\) "
                                           rf"waits for {target}, which is not an earlier command$"):
        check_plan(_replace(plain_plan, 100, deps=(*cmd.deps, target)))


@pytest.mark.parametrize("where", ["below", "beyond"])
def test_checker_catches_a_transfer_outside_its_buffer(plain_plan, where):
    load = next(c for c in plain_plan.commands if isinstance(c, Load) and c.size_bytes > 1)
    store = next(c for c in plain_plan.commands if isinstance(c, Store) and c.buffer is Buffer.ACCUMULATOR)
    if where == "below":  # a scratchpad load starting before the buffer
        cmd, buffer, capacity = load, "scratchpad", plain_plan.arch.scratchpad.size_bytes
        bad = _replace(plain_plan, load.id, addr=-1)
        lo, hi = -1, load.size_bytes - 1
    else:  # an accumulator store one byte longer than the buffer
        cmd, buffer, capacity = store, "accumulator", plain_plan.arch.accumulator.size_bytes
        bad = _replace(plain_plan, store.id, addr=0, size_bytes=capacity + 1)
        lo, hi = 0, capacity + 1
    with pytest.raises(MappingError, match=rf"^Command {cmd.id} \({type(cmd).__name__} of {_q(cmd.tensor)}, "
                                           rf"layer {_q(cmd.layer)}\) uses {buffer} bytes "
                                           rf"\[{lo}, {hi}\), outside its {capacity} B$"):
        check_plan(bad)


def test_checker_catches_a_compute_that_reads_its_operands_before_they_are_loaded(plain_plan):
    layer = next(layer for layer in plain_plan.graph.layers if layer.name == "layer1.0.conv2")
    compute = next(c for c in plain_plan.commands if isinstance(c, Compute) and c.layer == layer.name)
    own_loads = {c.id for c in plain_plan.commands if isinstance(c, Load) and c.layer == layer.name}
    bad = _replace(plain_plan, compute.id, deps=tuple(d for d in compute.deps if d not in own_loads))
    activation = next(t for t in layer.inputs if not plain_plan.graph.tensors[t].is_constant)
    with pytest.raises(MappingError, match=rf"^Command {compute.id} \(layer 'layer1\.0\.conv2'\) computes without its "
                                           rf"operand {_q(activation)}: it is neither resident nor "
                                           rf"loaded before it in the layer$"):
        check_plan(bad)


def test_checker_catches_a_dram_read_of_a_tensor_nobody_stored(plain_plan):
    stores = {c.id for c in plain_plan.commands if isinstance(c, Store) and c.tensor == "conv1"}
    commands = tuple(dataclasses.replace(c, tensor="nowhere") if c.id in stores else c for c in plain_plan.commands)
    load = next(c for c in plain_plan.commands if isinstance(c, Load) and c.tensor == "conv1")
    with pytest.raises(MappingError, match=rf"^Command {load.id} \(layer {_q(load.layer)}\) reads 'conv1' "
                                           rf"from DRAM before any command stored it there$"):
        check_plan(dataclasses.replace(plain_plan, commands=commands))


def test_checker_catches_a_move_beside_its_tensors_place(resident_plan):
    from mapper.residency import Residency

    residency = Residency(resident_plan.problem, resident_plan.allocation)
    step_of = {m.layer: i for i, m in enumerate(resident_plan.layers)}
    size = resident_plan.arch.scratchpad.size_bytes
    move, (offset, nbytes) = next((c, p) for c in resident_plan.commands if isinstance(c, Move) and c.size_bytes
                                  and (p := residency.place(c.tensor, step_of[c.layer])) is not None
                                  and p[0] + p[1] + c.size_bytes <= size)
    end = offset + nbytes
    with pytest.raises(MappingError, match=rf"^Command {move.id} \(Move of {_q(move.tensor)}, layer "
                                           rf"{_q(move.layer)}\) uses \[{end}, {end + move.size_bytes}\) "
                                           rf"but the tensor sits at \[{offset}, {end}\)$"):
        check_plan(_replace(resident_plan, move.id, addr=end))


def test_checker_catches_a_move_of_a_tensor_the_allocation_does_not_keep(resident_plan):
    from mapper.residency import Residency

    residency = Residency(resident_plan.problem, resident_plan.allocation)
    step_of = {m.layer: i for i, m in enumerate(resident_plan.layers)}
    move = next(c for c in resident_plan.commands if isinstance(c, Move))
    other = next(t for t in resident_plan.graph.tensors if residency.place(t, step_of[move.layer]) is None)
    with pytest.raises(MappingError, match=rf"^Command {move.id} moves {_q(other)} on chip in layer "
                                           rf"{_q(move.layer)}, where the allocation does not keep it$"):
        check_plan(_replace(resident_plan, move.id, tensor=other))


def test_checker_catches_a_schedule_that_runs_a_consumer_first(gemmini):
    plan = map_graph(zoo.build("resnet18"), gemmini, MapOptions())
    layers = list(plan.layers)
    layers[1], layers[2] = layers[2], layers[1]
    with pytest.raises(MappingError, match=r"runs before"):
        check_plan(dataclasses.replace(plan, layers=tuple(layers)))


def test_a_plan_made_for_another_schedule_is_refused(gemmini, resident_plan):
    from mapper.residency import Residency

    problem = dataclasses.replace(resident_plan.problem, steps=tuple(reversed(resident_plan.problem.steps)))
    with pytest.raises(MappingError, match=r"^The allocation of 'resnet18' was made for another schedule"):
        build_plan(resident_plan.graph, gemmini, MapOptions(), residency=Residency(problem, resident_plan.allocation))


def test_zero_scratchpad_is_refused_with_its_reason(gemmini):
    with pytest.raises(MappingError, match=r"^Scratchpad size must be a positive number of bytes, not 0$"):
        MapOptions(allocator="ilp", scratchpad_bytes=0)


def test_a_scratchpad_too_small_for_any_tile_names_the_tensor(gemmini):
    with pytest.raises(MappingError, match=r"^Tensor '.*': layer '.*' \(step \d+\) needs \d+ B of it on chip"):
        map_graph(zoo.build("resnet18"), gemmini, MapOptions(allocator="greedy", scratchpad_bytes=64))


def test_allocations_from_every_method_feed_the_same_program_builder(gemmini):
    # the emission takes any allocator's answer, including one made outside map_graph
    graph = zoo.build("bert_base_layer")
    plan = map_graph(graph, gemmini, MapOptions(allocator="firstfit", scratchpad_bytes=1024 * KIB))
    again = allocate(plan.problem, method="firstfit")
    assert again.tensors == plan.allocation.tensors
