"""The mapper's one entry point: MapOptions as enums, every choice with every allocator, the plan's JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest

import mapper
from accel import config
from accel.commands import Compute, Vector
from accel.errors import MappingError
from accel.hardware import Dataflow
from mapper import Allocator, Depthwise, LoopOrder, MapOptions, Objective, map_graph, map_with_baselines
from mapper.caches import PriceTables
from mapper.schedules import ComputeSpec
from mapper.search import INFEASIBLE, Cost, clear_caches
from workloads import zoo


def test_strings_become_enums_that_still_compare_as_strings():
    options = MapOptions(allocator="ilp", objective="edp", dataflow="os", loop_order="fold-outer", depthwise="vector")
    assert options.allocator is Allocator.ILP and options.allocator == "ilp"
    assert options.objective is Objective.EDP and options.dataflow is Dataflow.OS
    assert options.loop_order is LoopOrder.FOLD_OUTER and options.depthwise is Depthwise.VECTOR
    assert options == MapOptions(allocator=Allocator.ILP, objective=Objective.EDP, dataflow=Dataflow.OS,
                                 loop_order=LoopOrder.FOLD_OUTER, depthwise=Depthwise.VECTOR)
    assert options.to_dict() == {"allocator": "ilp", "objective": "edp", "dataflow": "os", "loop_order": "fold-outer",
                                 "depthwise": "vector", "keep_operands": True, "schedule": "candidates",
                                 "scratchpad_bytes": None, "time_limit_s": 10.0, "mip_gap": 0.01}
    assert mapper.ALLOCATORS == ("none", "greedy", "firstfit", "ilp")


def test_keep_operands_must_be_true_or_false():
    with pytest.raises(MappingError, match=r"^keep_operands must be true or false, not 'no'$"):
        MapOptions(keep_operands="no")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("time_limit_s", "10", r"^ILP time limit must be a positive number of seconds, not '10'$"),
    ("time_limit_s", None, r"^ILP time limit must be a positive number of seconds, not None$"),
    ("mip_gap", "0.1", r"^ILP MIP gap must be in \[0, 1\), not '0.1'$"),
    ("mip_gap", None, r"^ILP MIP gap must be in \[0, 1\), not None$"),
    ("scratchpad_bytes", True, r"^Scratchpad size must be a positive number of bytes, not True$"),
    ("scratchpad_bytes", "256 KiB", r"^Scratchpad size must be a positive number of bytes, not '256 KiB'$"),
])
def test_a_number_of_the_wrong_type_is_a_mapping_error_not_a_type_error(field, value, message):
    with pytest.raises(MappingError, match=message):
        MapOptions(**{field: value})


@pytest.mark.parametrize(("field", "message"), [
    ("allocator", r"^Allocator must be one of none, greedy, firstfit, ilp, not 'best'$"),
    ("objective", r"^Mapping objective must be one of latency, energy, edp, not 'best'$"),
    ("loop_order", r"^Loop order must be one of auto, tile-outer, fold-outer, not 'best'$"),
    ("depthwise", r"^Depthwise placement must be one of auto, array, vector, not 'best'$"),
    ("dataflow", r"^Dataflow must be one of ws, os, is, not 'best'$"),
])
def test_an_unknown_choice_names_its_field_and_the_allowed_values(field, message):
    with pytest.raises(MappingError, match=message):
        MapOptions(**{field: "best"})


def test_an_unknown_objective_is_an_error_not_edp():
    cost = Cost(10.0, 20.0, 30.0)
    assert cost.key("edp") == (200.0, 10.0, 30.0)
    with pytest.raises(MappingError, match=r"^Mapping objective must be one of latency, energy, edp, not 'speed'$"):
        cost.key("speed")


def test_every_mapping_choice_holds_with_an_allocator():
    arch, graph = config.load("gemmini"), zoo.build("mobilenet_v1")
    plan = map_graph(graph, arch, MapOptions(allocator="greedy", dataflow="os", loop_order="tile-outer",
                                             depthwise="vector"))
    array = [m for m in plan.layers if m.dataflow is not None]
    assert array and all(m.dataflow is Dataflow.OS and m.loop_order == "tile-outer" for m in array)
    depthwise = [m for m in plan.layers if m.loop_order == "vector"]
    assert depthwise
    on_vector = [c for c in plan.commands if c.layer == depthwise[0].layer and isinstance(c, Compute | Vector)]
    assert on_vector and all(isinstance(c, Vector) for c in on_vector)
    assert plan.allocation is not None and plan.options.allocator is Allocator.GREEDY


def test_the_plan_json_and_the_comparison_with_the_baselines():
    arch, graph = config.load("gemmini"), zoo.build("bert_base_layer")
    mapped = map_with_baselines(graph, arch, MapOptions(allocator="firstfit", objective="energy"))
    plan = mapped.plan.to_dict()
    assert (plan["allocator"], plan["mapping_objective"]) == ("firstfit", "energy")
    assert plan["dram_bytes"] == mapped.plan.dram_bytes and len(plan["layers"]) == len(graph.layers)
    assert plan["allocation"]["method"] == "firstfit"
    document = json.loads(json.dumps(mapped.to_dict()))
    assert list(document["baselines"]) == ["none", "greedy", "firstfit"]  # the chosen allocator last
    assert document["tensor_dram_bytes"] == document["baselines"]["firstfit"]["tensor_dram_bytes"]
    assert document["compulsory_dram_bytes"] <= document["tensor_dram_bytes"] <= document["dram_bytes"]
    assert document["layers"] == plan["layers"] and document["tensors"] == plan["allocation"]["tensors"]
    plain = map_with_baselines(graph, arch).to_dict()
    assert plain["allocator"] == "none" and plain["status"] == "heuristic"
    assert plain["tensors"] and not any(t["intervals"] for t in plain["tensors"].values())


def test_a_schedule_step_is_a_typed_value():
    step = ComputeSpec(m=4, k=8, n=16, batch=1, dataflow=Dataflow.WS)
    assert (step.accumulate, step.fill, step.drain, step.sparsity) == (False, True, True, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.m = 5  # type: ignore[misc]


def test_price_tables_stay_bounded():
    tables = PriceTables(designs=2, entries=3)
    for design in range(5):
        table = tables.table(design)
        for key in range(7):
            table[key] = key
        assert len(table) <= 3
    assert len(tables) == 2 and 4 in tables._tables and 0 not in tables._tables
    clear_caches()  # and the search gives the same answer from empty caches
    arch, graph = config.load("tpu-v1"), zoo.build("resnet18")
    before = map_graph(graph, arch).layers
    clear_caches()
    assert map_graph(graph, arch).layers == before
    assert INFEASIBLE.cycles == float("inf")


def test_a_scratchpad_override_the_design_cannot_have_names_the_override():
    arch = config.load("tpu-v1")  # 96 banks of 256 B words: sizes are multiples of 24576 B
    with pytest.raises(MappingError, match=r"^Scratchpad size 1000 B \(scratchpad_bytes\) does not suit tpu-v1's "
                                           r"scratchpad: size_bytes must be a multiple of banks \* word_bytes = "
                                           r"24576, not 1000$"):
        mapper.map_graph(zoo.build("alexnet"), arch, MapOptions(scratchpad_bytes=1000))


@pytest.mark.parametrize(("args", "message"), [
    (("alexnet", "gemmini"),
     r"^map_graph's graph must be a workloads\.Graph \(see workloads\.load\), not str 'alexnet'$"),
    ((None, "gemmini"), r"^map_graph's graph must be a workloads\.Graph \(see workloads\.load\), not NoneType None$"),
    ((zoo.build("alexnet"), "gemmini"),
     r"^map_graph's arch must be an accel\.Accelerator \(see accel\.config\.load\), not str 'gemmini'$"),
    ((zoo.build("alexnet"), config.load("gemmini"), {"allocator": "ilp"}),
     r"^map_graph's options must be a MapOptions or None, not dict \{'allocator': 'ilp'\}$"),
])
def test_map_graph_names_an_argument_of_the_wrong_kind(args, message):
    with pytest.raises(MappingError, match=message):
        mapper.map_graph(*args)
