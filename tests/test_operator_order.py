"""Candidate operator orders for branchy graphs: every one is a valid schedule, chains have one,
and the mapper runs the one whose allocation leaves the least traffic."""

from __future__ import annotations

import pytest

from accel import config
from mapper import MapOptions, map_graph
from mapper.memory import allocate, problem_from_graph
from mapper.order import candidate_orders, depth_first_order, is_branchy, min_live_order
from workloads import zoo


def _topological(graph, order) -> bool:
    done: set[str] = set()
    by_name = {layer.name: layer for layer in graph.layers}
    for name in order:
        for t in by_name[name].inputs:
            producer = graph.tensors[t].producer
            if producer is not None and producer not in done:
                return False
        done.add(name)
    return sorted(order) == sorted(by_name)


@pytest.mark.parametrize("model", [m for m in zoo.names() if m not in zoo.LLM_MODELS])  # LLMs: test_zoo
def test_every_candidate_is_a_topological_order_starting_with_the_graphs_own(model):
    graph = zoo.build(model)
    orders = candidate_orders(graph)
    assert orders[0] == tuple(layer.name for layer in graph.layers)
    assert len(set(orders)) == len(orders)
    assert all(_topological(graph, order) for order in orders)


def test_a_chain_has_one_order_and_branches_have_more():
    assert not is_branchy(zoo.build("vgg16"))
    assert is_branchy(zoo.build("vit_s16_block"))
    graph = zoo.build("gpt2_decode")
    assert min_live_order(graph) != depth_first_order(graph) or len(candidate_orders(graph)) >= 2


def test_the_mapper_runs_the_order_with_the_least_greedy_traffic():
    arch = config.load("gemmini")
    graph = zoo.build("vit_s16_block")
    plan = map_graph(graph, arch, MapOptions(allocator="greedy", scratchpad_bytes=166 * 1024))
    chosen = tuple(m.layer for m in plan.layers)
    assert chosen in candidate_orders(graph)
    scores = {order: allocate(problem_from_graph(graph, plan.arch, order=order, reserved=dict(plan.working_bytes)),
                              method="greedy").non_compulsory_bytes for order in candidate_orders(graph)}
    assert scores[chosen] == min(scores.values())
