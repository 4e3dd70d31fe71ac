"""Figures that say what they mean: dense MACs and the MACs the array performs are apart, every
utilisation lies in [0, 1] (N:M layers too), and a run's energy is given in joules as sweeps give it."""

from __future__ import annotations

import pytest

import mapper
import sim
import workloads
from accel import config
from reports.scalesim import compute_report


@pytest.fixture(scope="module")
def sparse_run():
    graph = workloads.sparsify(workloads.load("resnet18"), "2:4")
    return sim.simulate(mapper.map_graph(graph, config.load("sparse-nm")))


def test_dense_and_performed_macs_are_apart_and_every_utilisation_is_a_fraction(sparse_run):
    summary, layers = sparse_run.summary(), sparse_run.layers()
    assert summary["array_macs"] == layers["array_macs"].sum() < summary["macs"] == layers["macs"].sum()
    conv1 = layers.set_index("layer").loc["conv1"]
    assert conv1["array_macs"] * 2 >= conv1["macs"] > conv1["array_macs"]  # 2:4 halves the reduction (padded)
    for column in ("utilization", "array_busy_utilization"):
        assert layers[column].between(0, 1).all(), column
    assert (layers["utilization"] <= layers["array_busy_utilization"] + 1e-12).all()  # the span holds the busy time
    assert 0 < summary["array_utilization"] <= 1
    peak = sparse_run.arch.peak_macs_per_cycle
    assert summary["effective_macs_per_cycle"] == pytest.approx(summary["macs"] / summary["total_cycles"])
    assert summary["array_utilization"] == pytest.approx(summary["array_macs"] / (summary["total_cycles"] * peak))
    assert compute_report(sparse_run)["Overall Util %"].between(0, 100).all()


def test_a_runs_energy_is_in_joules_as_a_sweeps_is(sparse_run):
    summary = sparse_run.summary()
    assert summary["energy_j"] == pytest.approx(summary["energy_pj"] * 1e-12)
