"""Energy and power of simulated runs: conservation, the timeline, and where the energy goes."""

from __future__ import annotations

import math

import pytest
from test_lower_and_simulate import conv_relu_fc, single_gemm

from accel import config
from accel.commands import Compute, Load, Store, Vector
from accel.energy import COMPONENTS, STATIC_COMPONENTS, command_energy_pj, static_power_mw
from accel.errors import AccelError
from accel.hardware import Dataflow
from mapper import LayerMapping, MapOptions, Plan, map_graph
from sim import Result, TraceEvent, simulate
from sim.power import energy
from workloads.graph import OpKind


@pytest.fixture(scope="module")
def gemmini_run() -> Result:
    return simulate(map_graph(conv_relu_fc(), config.load("gemmini")))


@pytest.fixture
def hand_run() -> Result:
    """Two commands placed by hand: a load over cycles [0, 10) and a compute over [10, 30)."""
    arch = config.load("gemmini")
    load = Load(id=0, layer="mm", tensor="a", size_bytes=640)
    compute = Compute(id=1, layer="mm", m=16, k=16, n=16, dataflow=Dataflow.WS, deps=(0,))
    plan = Plan(arch=arch, graph_name="hand", layers=(LayerMapping("mm", OpKind.GEMM, 4096),),
                commands=(load, compute))
    trace = (TraceEvent(0, "dma", "mm", "Load", 0, 10), TraceEvent(1, "array", "mm", "Compute", 10, 30))
    return Result(arch, plan, 30, trace)


def test_components_sum_to_the_total(gemmini_run):
    report = energy(gemmini_run)
    assert list(report.dynamic_by_component) == list(COMPONENTS)
    assert list(report.static_by_component) == list(STATIC_COMPONENTS)
    assert sum(report.by_component.values()) == report.total_pj
    assert report.dynamic_pj + report.static_pj == pytest.approx(report.total_pj, rel=1e-12)
    assert all(value >= 0 for value in report.by_component.values())


def test_every_executed_command_is_charged_its_datasheet_energy_once(gemmini_run):
    report = energy(gemmini_run)
    arch = gemmini_run.arch
    expected = {c: 0.0 for c in COMPONENTS}
    for command in gemmini_run.plan.commands:
        for component, pj in command_energy_pj(arch, command).items():
            expected[component] += pj
    assert dict(report.dynamic_by_component) == pytest.approx(expected, rel=1e-12)
    assert len(report.command_energy_pj) == len(gemmini_run.plan.commands)


def test_static_energy_is_static_power_times_time(gemmini_run):
    report = energy(gemmini_run)
    seconds = gemmini_run.total_cycles / gemmini_run.arch.clock_hz
    for component, mw in static_power_mw(gemmini_run.arch).items():
        assert report.static_by_component[component] == pytest.approx(mw * 1e-3 * seconds * 1e12, rel=1e-12)


def test_average_power_is_total_energy_over_time(gemmini_run):
    report = energy(gemmini_run)
    assert report.average_power_w == pytest.approx(report.total_pj * 1e-12 / gemmini_run.latency_s, rel=1e-12)
    assert report.summary()["average_power_w"] == report.average_power_w


def test_per_layer_table_holds_the_dynamic_energy(gemmini_run):
    report = energy(gemmini_run)
    layers = report.by_layer.set_index("layer")
    assert list(layers.index) == ["conv", "relu", "flatten", "fc"]
    assert layers["dynamic_pj"].sum() == pytest.approx(report.dynamic_pj, rel=1e-12)
    assert layers.loc["flatten", "dynamic_pj"] == 0.0
    assert layers.loc["relu", "vector_pj"] > 0 and layers.loc["relu", "array_pj"] == 0.0
    for component in COMPONENTS:
        assert layers[f"{component}_pj"].sum() == pytest.approx(report.dynamic_by_component[component], rel=1e-12)


@pytest.fixture(scope="module")
def gemm_run() -> Result:
    """A run short enough (about 120k cycles) for one-cycle windows."""
    return simulate(map_graph(single_gemm(256, 256, 256), config.load("gemmini")))


@pytest.mark.parametrize("window", [1, 7, 1000, "total", "total+1", "10*total"])
def test_the_timeline_integrates_to_the_total(gemm_run, window):
    total = gemm_run.total_cycles
    window_cycles = {"total": total, "total+1": total + 1, "10*total": 10 * total}.get(window, window)
    report = energy(gemm_run)
    timeline = report.timeline(window_cycles)
    assert len(timeline) == math.ceil(total / window_cycles)
    assert timeline["start_cycle"].iloc[0] == 0 and timeline["end_cycle"].iloc[-1] == total
    assert (timeline["start_cycle"].iloc[1:].to_numpy() == timeline["end_cycle"].iloc[:-1].to_numpy()).all()
    assert timeline["energy_pj"].sum() == pytest.approx(report.total_pj, rel=1e-9)
    assert timeline["static_pj"].sum() == pytest.approx(report.static_pj, rel=1e-9)
    assert (timeline["energy_pj"] >= -1e-6).all()


def test_the_timeline_spreads_each_command_uniformly_over_its_cycles(hand_run):
    report = energy(hand_run)
    load_pj, compute_pj = report.command_energy_pj
    static_per_cycle = report.static_pj / 30
    timeline = report.timeline(4)  # windows [0,4) [4,8) [8,12) ... [28,30)
    assert list(timeline["end_cycle"]) == [4, 8, 12, 16, 20, 24, 28, 30]
    expected_dynamic = [0.4 * load_pj, 0.4 * load_pj, 0.2 * load_pj + compute_pj * 2 / 20,
                        *(compute_pj * 4 / 20 for _ in range(4)), compute_pj * 2 / 20]
    assert list(timeline["dynamic_pj"]) == pytest.approx(expected_dynamic)
    assert list(timeline["static_pj"]) == pytest.approx([static_per_cycle * n for n in (4, 4, 4, 4, 4, 4, 4, 2)])
    # Power over a window is its energy over its own length (the last window is 2 cycles long).
    last = timeline.iloc[-1]
    assert last["power_w"] == pytest.approx(last["energy_pj"] * 1e-12 / (2 / hand_run.arch.clock_hz))


def test_the_window_must_be_a_positive_integer(hand_run):
    report = energy(hand_run)
    with pytest.raises(AccelError, match=r"^window_cycles must be a positive integer, not 0$"):
        report.timeline(0)
    with pytest.raises(AccelError, match=r"^window_cycles must be a positive integer, not 2\.5$"):
        report.timeline(2.5)


def test_an_empty_run_has_no_energy():
    arch = config.load("gemmini")
    result = Result(arch, Plan(arch=arch, graph_name="empty", layers=(), commands=()), 0, ())
    report = energy(result)
    assert report.total_pj == 0.0 and report.average_power_w == 0.0
    assert list(report.timeline(10)["energy_pj"]) == [0.0]


def test_dram_heavy_and_compute_heavy_graphs_put_their_energy_where_expected():
    arch = config.load("gemmini")
    # Mapped for least energy (a latency mapping may trade DRAM traffic for overlap).
    # A matrix-vector product reads every weight once and reuses none: DRAM energy dominates.
    options = MapOptions(dataflow=Dataflow.WS, objective="energy")
    streaming = energy(simulate(map_graph(single_gemm(1, 4096, 1024), arch, options)))
    # A 1024^3 GEMM reuses every operand hundreds of times: the array and its memories matter.
    dense = energy(simulate(map_graph(single_gemm(1024, 1024, 1024), arch, options)))

    def share(report, *components):
        return sum(report.by_component[c] for c in components) / report.total_pj

    assert share(streaming, "dram") > 0.9
    on_chip = ("array", "scratchpad", "accumulator")
    assert share(dense, *on_chip) > 5 * share(streaming, *on_chip)
    assert share(dense, "array") > 10 * share(streaming, "array")
    assert dense.dynamic_by_component["vector"] == 0.0


def test_dram_energy_is_bytes_in_whole_bursts_times_the_dram_energy(gemmini_run):
    arch = gemmini_run.arch
    burst = arch.dma.burst_bytes
    moved = sum(math.ceil(c.size_bytes / burst) * burst for c in gemmini_run.plan.commands
                if isinstance(c, Load | Store))
    report = energy(gemmini_run)
    assert report.dynamic_by_component["dram"] == pytest.approx(moved * arch.dram.energy_pj_per_byte, rel=1e-12)
    vector_elements = sum(c.elements for c in gemmini_run.plan.commands if isinstance(c, Vector))
    assert report.dynamic_by_component["vector"] == pytest.approx(vector_elements * arch.energy.vector_op_pj)


def test_a_cheaper_technology_table_lowers_only_its_components():
    base = config.load("gemmini")
    cheap = config.loads(config.dumps(base) + "\n[energy]\nvector_op_pj = 0.1\n")
    graph = conv_relu_fc()
    a, b = energy(simulate(map_graph(graph, base))), energy(simulate(map_graph(graph, cheap)))
    assert b.dynamic_by_component["vector"] == pytest.approx(a.dynamic_by_component["vector"] / 10)
    for component in ("array", "scratchpad", "accumulator", "dram", "dma"):
        assert b.dynamic_by_component[component] == pytest.approx(a.dynamic_by_component[component])
