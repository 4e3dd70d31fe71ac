"""Operator order for graphs with branches: candidate schedules for the allocator to choose among.

The allocation ILP (:mod:`mapper.ilp`) decides residency per gap between a tensor's events, which
needs the steps fixed; putting the order into the same ILP (COSMA's formulation) multiplies its
variables by the number of positions each layer may take. We order in a separate step instead: a
branchy graph (residual adds, inception and DenseNet concatenations) gets a few topological orders,
each is allocated with the fast greedy allocator, and the order with the least non-compulsory DRAM
traffic is the schedule the chosen allocator then solves exactly. A chain has one order.

Candidates (duplicates dropped, the graph's own order first so ties keep it):

``graph``
    the order the importer or builder wrote (usually the framework's execution order);
``min-live``
    list scheduling that, among the layers whose inputs are ready, runs the one that grows the live
    activation bytes least (frees the most), earliest in the graph order on ties;
``depth-first``
    each branch run to its end before the next starts (reverse post-order from the inputs), which
    keeps a branch's intermediates short-lived.
"""

from __future__ import annotations

from collections.abc import Callable

from workloads.graph import Graph, Layer

__all__ = ["candidate_orders", "is_branchy", "graph_order", "min_live_order", "depth_first_order"]



def is_branchy(graph: Graph) -> bool:
    """Whether the candidates differ: some layer could run at another position."""
    return len(candidate_orders(graph)) > 1


def graph_order(graph: Graph) -> tuple[str, ...]:
    return tuple(layer.name for layer in graph.layers)


def candidate_orders(graph: Graph) -> list[tuple[str, ...]]:
    """The orders worth allocating (see the module docstring), the graph's own first."""
    out: list[tuple[str, ...]] = []
    for make in (graph_order, min_live_order, depth_first_order):
        order = make(graph)
        if order not in out:
            out.append(order)
    return out


def _consumers(graph: Graph) -> dict[str, list[Layer]]:
    consumers: dict[str, list[Layer]] = {name: [] for name in graph.tensors}
    for layer in graph.layers:
        for t in layer.inputs:
            consumers[t].append(layer)
    return consumers


def _list_schedule(graph: Graph, pick: Callable[[list[Layer], dict[str, int]], Layer]) -> tuple[str, ...]:
    position = {layer.name: i for i, layer in enumerate(graph.layers)}
    producers = {layer.name: {graph.tensors[t].producer for t in layer.inputs} - {None} for layer in graph.layers}
    waiting = {layer.name: len(producers[layer.name]) for layer in graph.layers}
    dependants: dict[str, list[Layer]] = {layer.name: [] for layer in graph.layers}
    for layer in graph.layers:
        for p in producers[layer.name]:
            dependants[p].append(layer)  # type: ignore[index]
    ready = [layer for layer in graph.layers if waiting[layer.name] == 0]
    order: list[str] = []
    while ready:
        layer = pick(sorted(ready, key=lambda x: position[x.name]), position)
        ready.remove(layer)
        order.append(layer.name)
        for d in dependants[layer.name]:
            waiting[d.name] -= 1
            if waiting[d.name] == 0:
                ready.append(d)
    return tuple(order)


def min_live_order(graph: Graph) -> tuple[str, ...]:
    """List scheduling by least growth of live activation bytes (see the module docstring)."""
    consumers = _consumers(graph)
    left = {name: len(c) for name, c in consumers.items()}

    def size(t: str) -> int:
        tensor = graph.tensors[t]
        return 0 if tensor.is_constant else tensor.elements

    def growth(layer: Layer) -> int:
        made = 0 if layer.op.is_view else sum(size(t) for t in layer.outputs)
        freed = sum(size(t) for t in set(layer.inputs) if left[t] == 1)
        return made - freed

    def pick(ready: list[Layer], position: dict[str, int]) -> Layer:
        best = min(ready, key=lambda x: (growth(x), position[x.name]))
        for t in set(best.inputs):
            left[t] -= 1
        return best

    return _list_schedule(graph, pick)


def depth_first_order(graph: Graph) -> tuple[str, ...]:
    """Run the most recently readied layer first: a branch to its end before the next."""
    stack_time: dict[str, int] = {}
    clock = [0]

    def pick(ready: list[Layer], position: dict[str, int]) -> Layer:
        for layer in reversed([x for x in ready if x.name not in stack_time]):  # earliest newcomer on top
            clock[0] += 1
            stack_time[layer.name] = clock[0]
        return max(ready, key=lambda x: stack_time[x.name])

    return _list_schedule(graph, pick)
