"""Plots stay readable on a 150-layer model: bounded size, legends that match the data, engineering
units, an effective roof for N:M layers, and no pyplot state (the library never switches the caller's
matplotlib backend nor keeps figures alive)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from PIL import Image

import mapper
import sim
import workloads
from accel import config
from mapper.memory import allocate, problem_from_graph
from reports import sweep_plots
from reports.run import plot_layer_cycles
from reports.units import bytes_text, si_text, top_rows, value_text

#: The largest PNG (pixels, at the dpi ``accel run`` saves with) a plot may be.
MAX_WIDTH, MAX_HEIGHT = 2000, 1400


@pytest.fixture(scope="module")
def sparse_run():
    """MobileNetV2 (152 layers) with 2:4 weights on the sparse-nm preset, greedy allocation."""
    arch = config.load("sparse-nm")
    graph = workloads.sparsify(workloads.load("mobilenet_v2"), "2:4")
    assert len(graph.layers) >= 150
    plan = mapper.map_graph(graph, arch, mapper.MapOptions(allocator="greedy"))
    return sim.simulate(plan)


def _pixels(fig, dpi: int = 120) -> tuple[int, int]:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return Image.open(io.BytesIO(buffer.getvalue())).size


def test_every_run_plot_of_a_150_layer_model_has_a_readable_size(sparse_run):
    problem = problem_from_graph(sparse_run.plan.graph, sparse_run.arch)
    figures = {
        "layer_cycles": plot_layer_cycles(sparse_run.layers()),
        "roofline": sweep_plots.plot_roofline(sparse_run),
        "latency": sweep_plots.plot_layer_latency(sparse_run),
        "energy": sweep_plots.plot_layer_energy(sparse_run),
        "units": sweep_plots.plot_unit_utilization(sparse_run),
        "power": sweep_plots.plot_power_timeline(sparse_run),
        "memory": sweep_plots.plot_memory_map(problem, allocate(problem, method="greedy")),
    }
    for name, fig in figures.items():
        width, height = _pixels(fig)
        assert 400 <= width <= MAX_WIDTH and 300 <= height <= MAX_HEIGHT, f"{name}: {width}x{height} px"
        for ax in fig.axes:
            labels = [t.get_text() for t in ax.get_yticklabels()]
            assert len(labels) <= 40, f"{name}: {len(labels)} tick labels"


def test_per_layer_bars_show_the_top_layers_and_sum_the_rest(sparse_run):
    layers = sparse_run.layers()
    fig = plot_layer_cycles(layers, top=30)
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    ran = layers[layers["cycles"] > 0]
    assert len(names) == 31 and names[-1] == f"other {len(ran) - 30} layers"
    widths = [bar.get_width() for bar in ax.patches]
    assert sum(widths) == pytest.approx(ran["cycles"].sum())  # nothing lost, nothing counted twice
    assert widths[:30] == sorted(widths[:30], reverse=True)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["array", "vector", "other layers (sum)"]  # only what the data holds


def test_legends_list_only_parts_present(sparse_run):
    fig = sweep_plots.plot_layer_energy(sparse_run)
    legend = {t.get_text() for t in fig.axes[0].get_legend().get_texts()}
    by_layer = sparse_run.energy.by_layer
    present = {c.removesuffix("_pj") for c in by_layer.columns
               if c.endswith("_pj") and c != "dynamic_pj" and by_layer[c].any()}
    assert legend == present
    assert fig.axes[0].get_xlabel() == "dynamic energy"
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert any(t.endswith("J") for t in ticks), ticks  # engineering units, not pJ with a x1e9 offset


def test_sparse_layers_sit_under_their_effective_roof(sparse_run):
    fig = sweep_plots.plot_roofline(sparse_run)
    ax = fig.axes[0]
    peak = sparse_run.arch.peak_macs_per_cycle
    roofs = {line.get_label(): max(line.get_ydata()) for line in ax.lines}
    assert roofs[next(k for k in roofs if k.startswith("roofline"))] == peak
    assert roofs["2:4 sparse roof: %g dense MAC/cycle" % (2 * peak)] == 2 * peak
    attained = [y for c in ax.collections for _, y in c.get_offsets()]
    assert max(attained) > peak  # 2:4 layers do more dense MACs per cycle than the dense roof...
    assert max(attained) <= 2 * peak * (1 + 1e-9)  # ...but never more than their own roof
    assert len([t for t in ax.get_xticklabels() if t.get_text()]) >= 3


def test_power_plot_is_in_time_and_watts(sparse_run):
    ax = sweep_plots.plot_power_timeline(sparse_run).axes[0]
    assert ax.get_xlabel() == "time"
    assert ax.get_xlim()[1] == pytest.approx(sparse_run.latency_s)
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert any(t.endswith("ms") or t.endswith("µs") for t in ticks), ticks


def test_memory_map_explains_its_working_space_band(sparse_run):
    problem = problem_from_graph(sparse_run.plan.graph, sparse_run.arch)
    ax = sweep_plots.plot_memory_map(problem, allocate(problem, method="greedy")).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "layer's working space (its tiles)"
    ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert all(t.endswith("B") for t in ticks) and "64 KiB" in ticks, ticks


def test_units_read_as_an_engineer_writes_them():
    assert [bytes_text(n) for n in (512, 131072, 1536, 24 * 2**20)] == ["512 B", "128 KiB", "1.5 KiB", "24 MiB"]
    assert si_text(4.2e-3, "s") == "4.2 ms" and si_text(7e8, "Hz") == "700 MHz"
    assert value_text("scratchpad.size_bytes", 131072) == "128 KiB"
    assert value_text("array.dataflows", ["ws", "os"]) == "ws+os"
    import pandas as pd

    frame = pd.DataFrame({"layer": list("abcde"), "cycles": [5, 1, 4, 2, 3]})
    assert top_rows(frame, "cycles", 2).to_dict("list") == {"layer": ["a", "c", "other 3 layers"],
                                                             "cycles": [5, 4, 6]}
    assert top_rows(frame, "cycles", 4)["layer"].tolist() == ["a", "c", "e", "d", "b"]  # 5 rows fit: none summed


def test_the_library_never_switches_the_callers_backend():
    code = ("import matplotlib; matplotlib.use('svg'); import reports, reports.run, reports.sweep_plots, "
            "reports.memory_map; import matplotlib.pyplot as plt; "
            "from reports.run import plot_power; import pandas as pd; "
            "plot_power(pd.DataFrame({'start_cycle': [0], 'end_cycle': [10], 'power_w': [1.0]})); "
            "print(matplotlib.get_backend(), len(plt.get_fignums()))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["svg", "0"]
