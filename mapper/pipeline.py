"""The whole mapper as one call: working space, schedule, allocation, layer decisions, program.

:func:`map_graph` (the mapper's one entry point, also :func:`mapper.map_graph`) makes every decision
before any command is written and returns a :class:`~mapper.plan.Plan` that
:func:`mapper.check.check_plan` has proven valid:

0. **Fusion** (:mod:`mapper.fuse`): activations the design's store path applies join the array
   layer before them (none unless the design lists ``[activation] functions``).

1. **Working space** per layer (``allocator != "none"``): the fewest scratchpad bytes the layer can
   tile in while its datasheet estimate stays within :data:`KNEE` of its estimate with the whole
   scratchpad (:func:`mapper.decide.working_space`); the rest is offered to resident tensors. With
   ``none`` every layer tiles in all of it, in the graph's order, and nothing is allocated.
2. **Schedule**: the graph's operator order, or for branchy graphs the best of a few candidate
   orders by their greedy allocation (:mod:`mapper.order`); with ``schedule="joint"`` the order the
   joint order-and-allocation ILP picks (:func:`mapper.joint.schedule`).
3. **Allocation**: :func:`mapper.memory.allocate` with the chosen allocator on the problem of that
   schedule, capacity and working space, each use priced at the reads its layer's tiles make when it
   streams (:func:`mapper.rereads.reread_factors`, so the ILP's optimum is the program's); for
   ``ilp``, as a safety net, the program with the least DRAM traffic among the ILP's allocation and
   its warm starts' (see :func:`_least_plan_traffic`; the plan says whose tensors it runs).
4. **Layer decisions** (:func:`mapper.decide.decide_layers`): each layer's mapping in its working
   space, with the residents of the allocation; then **emission**
   (:func:`mapper.emit.emit_program`) writes the command program those decisions say, once per
   distinct program in a process (:mod:`mapper.programs`: designs that differ only off chip and
   map alike share it).

:func:`build_plan` is steps 4 alone, for a given schedule, working space and allocation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence

from accel.errors import ConfigError, MappingError
from accel.gcpause import gc_paused
from accel.hardware import Accelerator
from mapper.allocate import Allocation
from mapper.decide import check_command_count, decide_layers, working_space
from mapper.lifetimes import MemoryProblem, loaded_weight_bytes
from mapper.memory import allocate, check_allocation, problem_from_graph
from mapper.options import Allocator, MapOptions
from mapper.order import candidate_orders
from mapper.plan import Plan
from mapper.programs import checked, emitted, prepared
from mapper.rereads import reread_factors
from mapper.residency import Residency
from workloads.graph import Graph

__all__ = ["map_graph", "build_plan", "KNEE"]

_log = logging.getLogger(__name__)

#: How much slower (estimated) a layer may get for the scratchpad bytes it gives to residents.
KNEE = 0.05


@gc_paused()  # it builds many objects and no cycles: collections would find nothing (accel.gcpause)
def map_graph(graph: Graph, arch: Accelerator, options: MapOptions) -> Plan:
    """Map ``graph`` onto ``arch`` as ``options`` say and return the checked plan."""
    # the float conversions at a quantized graph's boundary are the host's; activations the store
    # path applies join their array layer
    graph = prepared(graph, arch)
    if options.scratchpad_bytes is not None and options.scratchpad_bytes != arch.scratchpad.size_bytes:
        arch = _with_scratchpad(arch, options.scratchpad_bytes)
    if options.allocator is Allocator.NONE:
        plan = build_plan(graph, arch, options)
        checked(plan)
        return plan
    problem_from_graph(graph, arch)  # names a tensor whose smallest tile cannot fit
    decisions = decide_layers(graph, arch, options)
    check_command_count(graph, arch, decisions)  # before searches that scale with it
    # N:M weights the layers run sparse are loaded compressed: sized so in the memory problem
    weights = loaded_weight_bytes(graph, arch, [d.mapping for d in decisions])
    working = working_space(graph, arch, options, knee=KNEE)
    # the ILP prices uses at the plan's reads; the heuristics do not look at prices
    reread = reread_factors(graph, arch, working, options) if options.allocator is Allocator.ILP else None
    if options.schedule == "joint":
        from mapper.joint import schedule

        order, problem, _ = schedule(graph, arch, working, time_limit_s=options.time_limit_s, reread=reread,
                                     weight_bytes=weights)
    else:
        order, problem = _schedule(graph, arch, working, reread, weights)
    allocation = allocate(problem, method=options.allocator.value, time_limit_s=options.time_limit_s,
                          mip_gap=options.mip_gap)
    check_allocation(problem, allocation)

    def program(chosen: Allocation) -> Plan:
        plan = build_plan(graph, arch, options, order=order, working_bytes=working,
                          residency=Residency(problem, chosen))
        return dataclasses.replace(plan, allocation=chosen, problem=problem, working_bytes=working)

    plan = program(allocation)
    if options.allocator is Allocator.ILP:
        plain = build_plan(graph, arch, options, order=order)  # the whole scratchpad, nothing kept
        plain = dataclasses.replace(plain, allocation=allocate(problem, method="none"), problem=problem)
        plan = _least_plan_traffic(plan, problem, program, plain)
    checked(plan)
    return plan


def build_plan(graph: Graph, arch: Accelerator, options: MapOptions, *, order: Sequence[str] | None = None,
               working_bytes: Mapping[str, int] | None = None, residency: Residency | None = None) -> Plan:
    """The plan of ``graph`` in schedule ``order`` (default: the graph's), each layer tiling in its
    ``working_bytes`` (default: the whole scratchpad), with the residents of ``residency`` (default:
    none): the decisions of :func:`mapper.decide.decide_layers`, emitted. Not checked, and without
    the allocation attached (:func:`map_graph` does both)."""
    decisions = decide_layers(graph, arch, options, order=order, working_bytes=working_bytes, residency=residency)
    check_command_count(graph, arch, decisions)  # before any command is written
    commands, weight_tiles = emitted(graph, arch, decisions, residency)
    return Plan(arch=arch, graph_name=graph.name, layers=tuple(d.mapping for d in decisions), commands=commands,
                graph=graph, options=options, weight_tiles=weight_tiles)


def _least_plan_traffic(plan: Plan, problem: MemoryProblem, program: Callable[[Allocation], Plan],
                        plain: Plan) -> Plan:
    """The ILP's plan, or a baseline's if its program moves fewer DRAM bytes.

    The ILP is optimal for the allocation's traffic model, which reads a streamed tensor once per
    use; the program's tiles may read it several times, so a warm start that keeps a different tensor
    can win on the commands, and so can keeping nothing (``plain``: every layer tiles in the whole
    scratchpad, which a layer that gave up working space may re-read less). All are lowered and the
    program with the least DRAM traffic is kept, so the ``ilp`` plan is never worse than a
    baseline's. The plan's allocation is the one its program runs, under its own method name (with
    ``status``, ``bound`` and ``gap`` only where that is the ILP's); ``details`` says what each
    candidate's program moved (``plan_dram_bytes``), whose tensors won (``tensors_from``), why
    (``reason``) and the ILP's own figures (``ilp``) when it lost.
    """
    ilp = plan.allocation
    assert ilp is not None
    candidates = {"ilp": plan, "none": plain}
    for method in ("greedy", "firstfit"):
        candidates[method] = program(allocate(problem, method=method))
    traffic = {method: p.dram_bytes for method, p in candidates.items()}
    best = min(candidates, key=lambda m: (traffic[m], m != "ilp"))
    if best == "ilp":
        allocation = dataclasses.replace(ilp, details={**ilp.details, "plan_dram_bytes": traffic, "tensors_from": best})
        return dataclasses.replace(plan, allocation=allocation)
    chosen = candidates[best].allocation
    assert chosen is not None
    # the program runs another allocator's tensors: say so, and keep the ILP's own figures apart
    reason = (f"its program moves {traffic['ilp'] - traffic[best]:,} fewer DRAM bytes than the ILP allocation's "
              f"(the ILP prices a streamed tensor once per use; the tiles re-read some operands)")
    allocation = dataclasses.replace(
        chosen, details={**chosen.details, "plan_dram_bytes": traffic, "tensors_from": best, "reason": reason,
                         "ilp": {"status": ilp.status, "objective": ilp.objective, "bound": ilp.bound, "gap": ilp.gap,
                                 "solve_time_s": ilp.solve_time_s, "non_compulsory_bytes": ilp.non_compulsory_bytes}})
    _log.info("%s: plan DRAM bytes by allocation %s; keeping %s's: %s", problem.name, traffic, best, reason)
    return dataclasses.replace(candidates[best], allocation=allocation)


def _schedule(graph: Graph, arch: Accelerator, working: dict[str, int],
              reread: dict[tuple[str, str], float] | None = None,
              weight_bytes: Mapping[str, int] | None = None) -> tuple[tuple[str, ...], MemoryProblem]:
    """The candidate order (:mod:`mapper.order`) whose greedy allocation leaves the least
    non-compulsory traffic (ties: the earlier candidate, the graph's own order first)."""
    orders = candidate_orders(graph)
    problems = [problem_from_graph(graph, arch, order=order, reserved=working, reread=reread,
                                   weight_bytes=weight_bytes) for order in orders]
    if len(orders) == 1:
        return orders[0], problems[0]
    scores = [allocate(problem, method="greedy").non_compulsory_bytes for problem in problems]
    best = min(range(len(orders)), key=lambda i: (scores[i], i))
    _log.info("%s: %d candidate orders leave %s B non-compulsory (greedy); taking #%d", graph.name, len(orders),
              scores, best)
    return orders[best], problems[best]


def _with_scratchpad(arch: Accelerator, size_bytes: int) -> Accelerator:
    """``arch`` with a scratchpad of ``size_bytes`` (the options' override), or a :class:`MappingError`
    naming the override when the scratchpad cannot have that size."""
    try:
        return dataclasses.replace(arch, scratchpad=dataclasses.replace(arch.scratchpad, size_bytes=size_bytes))
    except ConfigError as exc:
        raise MappingError(f"Scratchpad size {size_bytes} B (scratchpad_bytes) does not suit {arch.name}'s "
                           f"scratchpad: {exc}") from None
