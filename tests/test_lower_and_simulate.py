"""The thin end-to-end path: baseline lowering to commands, and the SimPy simulation of them."""

from __future__ import annotations

import dataclasses

import pytest

from accel import config
from accel.commands import Compute, Load, Store, Vector
from accel.errors import MappingError
from accel.hardware import Dataflow
from accel.timing import command_cycles, dma_cycles, gemm_tile_cycles
from mapper import MapOptions, map_graph
from sim import simulate
from workloads.graph import GemmShape, Graph, Layer, OpKind, Tensor, TensorKind


def conv_relu_fc() -> Graph:
    """A 3x3 conv (64 -> 64 channels at 28x28), a ReLU and a 1000-way classifier."""
    tensors = {
        "x": Tensor("x", (1, 64, 28, 28), kind=TensorKind.INPUT),
        "w1": Tensor("w1", (64, 64, 3, 3), kind=TensorKind.CONSTANT),
        "y": Tensor("y", (1, 64, 28, 28)),
        "r": Tensor("r", (1, 64, 28, 28)),
        "flat": Tensor("flat", (1, 64 * 28 * 28)),
        "w2": Tensor("w2", (64 * 28 * 28, 1000), kind=TensorKind.CONSTANT),
        "z": Tensor("z", (1, 1000)),
    }
    layers = (
        Layer("conv", OpKind.CONV, ("x", "w1"), ("y",), gemm=GemmShape(784, 576, 64)),
        Layer("relu", OpKind.ACTIVATION, ("y",), ("r",), vector_ops=64 * 784),
        Layer("flatten", OpKind.RESHAPE, ("r",), ("flat",)),
        Layer("fc", OpKind.GEMM, ("flat", "w2"), ("z",), gemm=GemmShape(1, 64 * 784, 1000)),
    )
    return Graph("conv_relu_fc", tensors, layers)


def single_gemm(m: int, k: int, n: int) -> Graph:
    tensors = {
        "a": Tensor("a", (m, k), kind=TensorKind.INPUT),
        "b": Tensor("b", (k, n), kind=TensorKind.CONSTANT),
        "c": Tensor("c", (m, n)),
    }
    return Graph("gemm", tensors, (Layer("mm", OpKind.GEMM, ("a", "b"), ("c",), gemm=GemmShape(m, k, n)),))


@pytest.mark.parametrize("preset", ["eyeriss", "fpga-small", "gemmini", "tpu-v1"])
def test_every_mac_is_computed_once_and_every_dependency_points_back(preset):
    arch = config.load(preset)
    graph = conv_relu_fc()
    plan = map_graph(graph, arch)
    assert plan.macs == plan.performed_macs == graph.total_macs
    assert plan.vector_ops == 64 * 784
    for command in plan.commands:
        assert all(d < command.id for d in command.deps), command


@pytest.mark.parametrize("preset", ["eyeriss", "fpga-small", "gemmini", "tpu-v1"])
def test_tiles_fit_half_of_each_memory(preset):
    """A compute's operand tiles fit half the scratchpad, with whatever its layer keeps there (the
    loads it reads, by their own sizes: a convolution's input tile is a band of the input, smaller
    than its ``m x k`` view), and its outputs half the accumulator."""
    arch = config.load(preset)
    plan = map_graph(conv_relu_fc(), arch)
    a = arch.array
    half = arch.scratchpad.size_bytes // 2
    for c in plan.commands:
        if isinstance(c, Compute):
            loads = [plan.commands[d] for d in c.deps if isinstance(plan.commands[d], Load)]
            assert all(t.addr + t.size_bytes <= arch.scratchpad.size_bytes for t in loads)
            assert sum(t.size_bytes for t in loads) <= half
            if c.layer == "fc":  # a GEMM's tiles are their m x k and k x n blocks
                assert c.batch * (c.m * c.k * a.input_format.size_bytes
                                  + c.k * c.n * a.weight_format.size_bytes) <= half
            assert c.batch * c.m * c.n * a.accumulator_format.size_bytes <= arch.accumulator.size_bytes // 2


def test_a_gemm_that_fits_moves_each_byte_once():
    arch = config.load("gemmini")
    # mapped for energy: one tile (for latency the mapper splits it so loads overlap compute)
    plan = map_graph(single_gemm(64, 64, 64), arch, MapOptions(objective="energy"))
    assert plan.dram_read_bytes == 64 * 64 + 64 * 64
    assert plan.dram_write_bytes == 64 * 64
    kinds = [type(c).__name__ for c in plan.commands]
    assert kinds == ["Load", "Load", "Compute", "Store"]


def test_simulated_cycles_of_a_lone_tile_are_the_datasheet_sum():
    arch = config.load("gemmini")
    lone = (  # one tile: load both operands, compute, store (the mapper would split it to pipeline)
        Load(id=0, layer="mm", tensor="x", size_bytes=4096),
        Load(id=1, layer="mm", tensor="w", size_bytes=4096),
        Compute(id=2, layer="mm", deps=(0, 1), m=64, k=64, n=64, dataflow=Dataflow.WS),
        Store(id=3, layer="mm", deps=(2,), tensor="y", size_bytes=4096),
    )
    plan = map_graph(single_gemm(64, 64, 64), arch, MapOptions(dataflow=Dataflow.WS))
    result = simulate(dataclasses.replace(plan, commands=lone))
    expected = (dma_cycles(arch, 4096) * 2 + gemm_tile_cycles(arch.array, Dataflow.WS, 64, 64, 64)
                + dma_cycles(arch, 4096))
    assert result.total_cycles == expected
    assert [(e.kind, e.start, e.end) for e in result.trace] == [
        ("Load", 0, dma_cycles(arch, 4096)),
        ("Load", dma_cycles(arch, 4096), 2 * dma_cycles(arch, 4096)),
        ("Compute", 2 * dma_cycles(arch, 4096), expected - dma_cycles(arch, 4096)),
        ("Store", expected - dma_cycles(arch, 4096), expected),
    ]


def test_double_buffering_overlaps_loads_with_compute():
    arch = config.load("gemmini")
    plan = map_graph(conv_relu_fc(), arch)
    result = simulate(plan)
    busy = {row.unit: row.busy_cycles for row in result.units().itertuples()}
    assert busy["array"] == sum(command_cycles(arch, c) for c in plan.commands if isinstance(c, Compute))
    dma = busy["dma.load"] + busy["dma.store"]
    assert dma == sum(command_cycles(arch, c) for c in plan.commands if isinstance(c, Load | Store))
    # Overlap: the run takes less than the units one after another, and no less than the busiest unit.
    assert max(dma, busy["array"], busy["vector"]) <= result.total_cycles < dma + busy["array"] + busy["vector"]


def test_per_layer_table_accounts_for_every_byte_and_mac():
    arch = config.load("gemmini")
    result = simulate(map_graph(conv_relu_fc(), arch))
    layers = result.layers()
    assert list(layers["layer"]) == ["conv", "relu", "flatten", "fc"]
    assert layers["macs"].sum() == result.macs
    assert layers["dram_read_bytes"].sum() + layers["dram_write_bytes"].sum() == result.dram_bytes
    assert (layers["end_cycle"] <= result.total_cycles).all()
    assert layers.set_index("layer").loc["flatten", "cycles"] == 0
    summary = result.summary()
    assert summary["total_cycles"] == result.total_cycles
    assert summary["latency_s"] == pytest.approx(result.total_cycles / 1e9)


def test_layers_run_in_dependency_order():
    result = simulate(map_graph(conv_relu_fc(), config.load("gemmini")))
    # relu reads what conv stored through DRAM.
    first_relu_load = min(e.start for e in result.trace if e.layer == "relu" and e.kind == "Load")
    last_conv_store = max(e.end for e in result.trace if e.layer == "conv" and e.kind == "Store")
    assert first_relu_load >= last_conv_store


def test_vector_layers_run_on_the_vector_unit():
    plan = map_graph(conv_relu_fc(), config.load("gemmini"))
    relu = [c for c in plan.commands if c.layer == "relu"]
    assert {type(c) for c in relu} == {Load, Vector, Store}


def test_byte_shares_of_a_broadcast_vector_layer_fit_the_working_half_after_rounding():
    """Operands of different shapes are chunked in equal shares of their bytes, each rounded up: four
    shares of 8,192 / 2,048 B in 5 chunks are 1,639 + 410 + 410 + 1,639 = 4,098 B, more than the
    4,096 B half that 20,480 / 5 suggests, so the layer takes a sixth chunk (Llama's RoPE on gemmini
    overflowed its scratchpad by 2 B this way)."""
    from workloads.builder import GraphBuilder

    b = GraphBuilder("rope")
    x = b.input("x", (1, 4, 32, 64))
    b.elementwise("rope", [x, b.input("cos", (1, 1, 32, 64)), b.input("sin", (1, 1, 32, 64))], "rope")
    plan = map_graph(b.build(), config.load("gemmini"), MapOptions(scratchpad_bytes=8192))  # checks every address
    assert sum(isinstance(c, Vector) for c in plan.commands) == 6
    for c in plan.commands:  # every chunk's bytes stay in its half
        if isinstance(c, Load | Store):
            assert c.addr // 4096 == (c.addr + c.size_bytes - 1) // 4096, c


def test_dataflow_choice_is_checked():
    with pytest.raises(MappingError, match=r"^tpu-v1 supports dataflows ws, not os$"):
        map_graph(conv_relu_fc(), config.load("tpu-v1"), MapOptions(dataflow=Dataflow.OS))
    plan = map_graph(conv_relu_fc(), config.load("gemmini"), MapOptions(dataflow=Dataflow.OS))
    assert {c.dataflow for c in plan.commands if isinstance(c, Compute)} == {Dataflow.OS}


def test_simulation_is_deterministic():
    arch = config.load("eyeriss")
    a = simulate(map_graph(conv_relu_fc(), arch))
    b = simulate(map_graph(conv_relu_fc(), arch))
    assert a.trace == b.trace


def test_a_results_timing_columns_are_read_only():
    timing = simulate(map_graph(conv_relu_fc(), config.load("gemmini"))).timing
    for field in dataclasses.fields(timing):
        column = getattr(timing, field.name)
        with pytest.raises(ValueError, match="read-only"):
            column[0] = column[0]


@pytest.mark.parametrize("allocator", ["none", "greedy"])
def test_a_reader_of_one_output_of_a_two_output_layer_waits_for_that_outputs_store(allocator):
    from workloads.builder import GraphBuilder

    b = GraphBuilder("two_outputs")
    y, s = b.layer(OpKind.ACTIVATION, [b.input("x", (1, 64))], [(1, 64), ()], outs=["y", "s"], attrs={"fn": "relu"})
    b.elementwise("mul", [s, b.linear(y, 16, False, "fc")])
    plan = map_graph(b.build(), config.load("gemmini"), MapOptions(allocator=allocator))  # checked: no stale read
    stores = {c.tensor: c.id for c in plan.commands if isinstance(c, Store) and c.layer == "activation1"}
    for load in (c for c in plan.commands if isinstance(c, Load) and c.tensor in stores):
        assert stores[load.tensor] in load.deps
    assert simulate(plan).total_cycles > 0


def slow_dram(arch, bytes_per_cycle: float):
    from dataclasses import replace

    return replace(arch, dram=replace(arch.dram, bandwidth_bytes_per_cycle=bytes_per_cycle),
                   dma=replace(arch.dma, bandwidth_bytes_per_cycle=bytes_per_cycle))


@pytest.mark.parametrize(("shape", "dram_bytes_per_cycle", "bound"),
                         [((2048, 1024, 1024), 16.0, "array"), ((16, 8192, 4096), 2.0, "dma")],
                         ids=["compute-bound", "dram-bound"])
def test_time_is_the_roofline_max_not_the_sum(shape, dram_bytes_per_cycle, bound):
    arch = slow_dram(config.load("gemmini"), dram_bytes_per_cycle)
    result = simulate(map_graph(single_gemm(*shape), arch, MapOptions(dataflow=Dataflow.OS)))
    units = result.units().set_index("unit")["busy_cycles"]
    busy = {"array": units["array"], "dma": units["dma.load"] + units["dma.store"]}
    assert max(busy, key=busy.get) == bound
    slowest, other = max(busy.values()), min(busy.values())
    assert slowest <= result.total_cycles
    assert result.total_cycles - slowest <= 0.1 * other  # at least 90% of the other unit's time is hidden


def test_stalls_are_attributed_to_their_cause():
    arch = slow_dram(config.load("gemmini"), 2.0)
    # the array waits for loads
    result = simulate(map_graph(single_gemm(16, 8192, 4096), arch, MapOptions(dataflow=Dataflow.OS)))
    units = result.units().set_index("unit")
    assert units.loc["array", "stall_on_dma"] > 0.5 * result.total_cycles
    for unit in units.index:
        row = units.loc[unit]
        causes = row["stall_on_dma"] + row["stall_on_array"] + row["stall_on_vector"] + row["stall_on_dram"]
        assert causes == row["stall_cycles"]
        assert row["busy_cycles"] + row["stall_cycles"] + row["idle_cycles"] == result.total_cycles  # 1 channel


def test_scratchpad_bank_conflicts_stretch_the_stream():
    from dataclasses import replace

    from accel.hardware import Memory
    from accel.timing import bank_conflict_cycles, scratchpad_stretch

    arch = config.load("gemmini")  # 4 banks x 1 port x 16 B = 64 B/cycle: WS (16 B) and OS (32 B) fit
    assert scratchpad_stretch(arch, Dataflow.WS) == scratchpad_stretch(arch, Dataflow.OS) == 1
    narrow = replace(arch, scratchpad=Memory(size_bytes=256 * 1024, banks=1, ports=1, word_bytes=8))
    assert scratchpad_stretch(narrow, Dataflow.WS) == 2 and scratchpad_stretch(narrow, Dataflow.OS) == 4
    plan = map_graph(single_gemm(64, 64, 64), narrow, MapOptions(dataflow=Dataflow.OS, objective="energy"))
    compute = next(c for c in plan.commands if isinstance(c, Compute))
    assert (compute.m, compute.k, compute.n) == (64, 64, 64)
    plain = gemm_tile_cycles(arch.array, Dataflow.OS, 64, 64, 64)
    assert bank_conflict_cycles(narrow, compute) == 16 * 64 * 3  # 16 folds, 64 streaming cycles, 3 lost each
    assert command_cycles(narrow, compute) == plain + 16 * 64 * 3
    assert simulate(plan).units().set_index("unit").loc["array", "bank_conflict_cycles"] == 16 * 64 * 3


def depthwise_graph() -> Graph:
    """A 3x3 depthwise convolution over 64 channels at 56x56 (MobileNet's shape)."""
    tensors = {
        "x": Tensor("x", (1, 64, 56, 56), kind=TensorKind.INPUT),
        "w": Tensor("w", (64, 1, 3, 3), kind=TensorKind.CONSTANT),
        "y": Tensor("y", (1, 64, 56, 56)),
    }
    layer = Layer("dw", OpKind.CONV, ("x", "w"), ("y",), gemm=GemmShape(3136, 9, 1, batch=64))
    return Graph("dw", tensors, (layer,))


def test_depthwise_runs_on_the_array_or_the_vector_unit():
    from mapper import Depthwise

    arch = config.load("gemmini")
    graph = depthwise_graph()
    on_array = map_graph(graph, arch, MapOptions(depthwise=Depthwise.ARRAY))
    on_vector = map_graph(graph, arch, MapOptions(depthwise=Depthwise.VECTOR))
    assert {type(c) for c in on_array.commands} == {Load, Compute, Store}
    assert {type(c) for c in on_vector.commands} == {Load, Vector, Store}
    assert on_array.performed_macs == on_vector.performed_macs == on_vector.macs == graph.total_macs
    # The vector unit reads the weights as well as the activations.
    assert on_vector.dram_read_bytes == 64 * 56 * 56 + 64 * 9
    # 16 lanes beat 64 groups of one-column folds on a 16x16 array; auto picks the faster.
    array_cycles, vector_cycles = simulate(on_array).total_cycles, simulate(on_vector).total_cycles
    assert vector_cycles < array_cycles
    assert simulate(map_graph(graph, arch)).total_cycles == vector_cycles


def test_each_layer_gets_the_dataflow_with_the_lower_estimate():
    arch = config.load("gemmini")  # WS and OS
    free = map_graph(conv_relu_fc(), arch)
    for layer in ("conv", "fc"):
        chosen = next(m.dataflow for m in free.layers if m.layer == layer)
        assert chosen in arch.array.dataflows
    # Never slower than forcing either dataflow on every layer.
    free_cycles = simulate(free).total_cycles
    for dataflow in arch.array.dataflows:
        fixed = map_graph(conv_relu_fc(), arch, MapOptions(dataflow=dataflow))
        assert free_cycles <= simulate(fixed).total_cycles * 1.02


def test_map_and_simulate_pause_the_garbage_collector_and_leave_it_as_they_found_it(monkeypatch):
    """accel.gcpause: the collector is off while they run, back on after (also after an error), and
    a caller's own pause is not undone."""
    import gc

    import mapper.pipeline
    import sim.engine

    seen: list[bool] = []  # gc.isenabled() inside the mapper's decisions and the simulation's run
    decide, run = mapper.pipeline.decide_layers, sim.engine._Machine.run

    def decide_layers(*args, **kwargs):
        seen.append(gc.isenabled())
        return decide(*args, **kwargs)

    def machine_run(self):
        seen.append(gc.isenabled())
        return run(self)

    monkeypatch.setattr(mapper.pipeline, "decide_layers", decide_layers)
    monkeypatch.setattr(sim.engine._Machine, "run", machine_run)
    arch = config.load("gemmini")
    assert gc.isenabled()
    simulate(map_graph(single_gemm(64, 64, 64), arch))
    assert seen and not any(seen) and gc.isenabled()
    with pytest.raises(MappingError):
        map_graph(single_gemm(64, 64, 64), config.load("tpu-v1"), MapOptions(dataflow=Dataflow.OS))
    assert gc.isenabled()
    gc.disable()
    try:
        simulate(map_graph(single_gemm(32, 32, 32), arch))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_paused_block_that_leaves_many_objects_promotes_them_and_a_small_or_failed_one_does_not():
    """accel.gcpause: what a long paused block leaves goes to the oldest generation at once (no young
    collection traverses it); a short block's objects and a failed block's stay young."""
    import gc

    from accel.gcpause import PROMOTE_AT, gc_paused

    def oldest() -> set[int]:
        return {id(o) for o in gc.get_objects(generation=2)}

    with gc_paused():
        many = [[i] for i in range(2 * PROMOTE_AT)]
    assert gc.get_count()[0] < 100 and gc.isenabled()
    promoted = oldest()
    assert all(id(x) in promoted for x in many[::97])
    with gc_paused():
        few = [[i] for i in range(10)]
    assert id(few[0]) not in oldest()
    with pytest.raises(ValueError), gc_paused():
        failed = [[i] for i in range(2 * PROMOTE_AT)]
        raise ValueError(failed[0])
    assert id(failed[-1]) not in oldest() and gc.isenabled()


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2", "bert_base_layer"])
def test_mapping_makes_no_reference_cycles(model):
    """What the mapper leaves is promoted past the young collections (accel.gcpause), so it must
    leave no garbage that only the cyclic collector could free."""
    import gc

    from workloads import zoo

    arch = config.load("gemmini")
    map_graph(single_gemm(64, 64, 64), arch)  # first uses (imports, generated constructors) done
    graph = zoo.build(model)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        plan = map_graph(graph, arch)
        gc.collect()
        cyclic = [type(o).__qualname__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert plan.commands and cyclic == []


def test_a_paused_block_leaves_a_callers_frozen_objects_frozen():
    """accel.gcpause promotes through gc.freeze() and gc.unfreeze(): not when the caller froze its own."""
    import gc

    from accel.gcpause import PROMOTE_AT, gc_paused

    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        with gc_paused():
            many = [[i] for i in range(2 * PROMOTE_AT)]
        # a promotion (freeze, unfreeze) would have emptied the permanent generation; the count itself
        # may fall a little, as frozen objects are freed by reference counting (another thread's too)
        assert gc.get_freeze_count() > 0 and many
    finally:
        gc.unfreeze()


def test_simulate_names_an_argument_that_is_not_a_plan():
    with pytest.raises(MappingError, match=r"^simulate's plan must be a mapper\.Plan \(see mapper\.map_graph\), "
                                           r"not str 'plan\.json'$"):
        simulate("plan.json")
