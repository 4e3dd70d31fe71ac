"""The whole mapper as one call: schedule, per-layer working space, scratchpad allocation, program.

:func:`map_graph` runs the steps in order and returns a :class:`~mapper.plan.Plan` that
:func:`mapper.check.check_plan` has proven valid:

1. **Working space** per layer (``allocator != "none"``): the fewest scratchpad bytes the layer can
   tile in while its datasheet estimate stays within :data:`KNEE` of its estimate with the whole
   scratchpad (:func:`mapper.lower.working_space`); the rest is offered to resident tensors. With
   ``none`` every layer tiles in all of it, in the graph's order, and nothing is allocated.
2. **Schedule**: the graph's operator order, or for branchy graphs the best of a few candidate
   orders by their greedy allocation (:mod:`mapper.order`).
3. **Allocation**: :func:`mapper.memory.allocate` with the chosen allocator on the problem of that
   schedule, capacity and working space (for ``ilp``, the program with the least DRAM traffic among
   the ILP's allocation and its warm starts', see :func:`_least_plan_traffic`).
4. **Lowering**: :func:`mapper.lower.lower` emits the command program with the residents in place.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from accel.hardware import Accelerator
from mapper.allocate import Allocation
from mapper.lifetimes import MemoryProblem
from mapper.lower import lower, working_space
from mapper.memory import allocate, check_allocation, problem_from_graph
from mapper.options import MapOptions
from mapper.order import candidate_orders
from mapper.plan import Plan
from mapper.residency import Residency
from workloads.graph import Graph

__all__ = ["map_graph", "KNEE"]

_log = logging.getLogger(__name__)

#: How much slower (estimated) a layer may get for the scratchpad bytes it gives to residents.
KNEE = 0.05


def map_graph(graph: Graph, arch: Accelerator, options: MapOptions) -> Plan:
    """Map ``graph`` onto ``arch`` as ``options`` say and return the checked plan."""
    from mapper.check import check_plan

    if options.scratchpad_bytes is not None and options.scratchpad_bytes != arch.scratchpad.size_bytes:
        arch = dataclasses.replace(arch, scratchpad=dataclasses.replace(arch.scratchpad,
                                                                        size_bytes=options.scratchpad_bytes))
    if options.allocator == "none":
        plan = lower(graph, arch, objective=options.objective)
        check_plan(plan)
        return plan
    problem_from_graph(graph, arch)  # names a tensor whose smallest tile cannot fit
    working = working_space(graph, arch, knee=KNEE, objective=options.objective)
    order, problem = _schedule(graph, arch, working)
    allocation = allocate(problem, method=options.allocator, time_limit_s=options.time_limit_s,
                          mip_gap=options.mip_gap)
    check_allocation(problem, allocation)

    def program(chosen: Allocation) -> Plan:
        plan = lower(graph, arch, order=order, working_bytes=working, residency=Residency(problem, chosen),
                     objective=options.objective)
        return dataclasses.replace(plan, allocation=chosen, problem=problem, working_bytes=working)

    plan = program(allocation)
    if options.allocator == "ilp":
        plain = lower(graph, arch, order=order, objective=options.objective)  # the whole scratchpad, nothing kept
        plain = dataclasses.replace(plain, allocation=allocate(problem, method="none"), problem=problem)
        plan = _least_plan_traffic(plan, problem, program, plain)
    check_plan(plan)
    return plan


def _least_plan_traffic(plan: Plan, problem: MemoryProblem, program: Callable[[Allocation], Plan],
                        plain: Plan) -> Plan:
    """The ILP's plan, or a baseline's if its program moves fewer DRAM bytes.

    The ILP is optimal for the allocation's traffic model, which reads a streamed tensor once per
    use; the program's tiles may read it several times, so a warm start that keeps a different tensor
    can win on the commands, and so can keeping nothing (``plain``: every layer tiles in the whole
    scratchpad, which a layer that gave up working space may re-read less). All are lowered and the
    program with the least DRAM traffic is kept, so the ``ilp`` plan is never worse than a
    baseline's; the ILP's objective, bound and gap stay on the allocation and
    ``details["plan_dram_bytes"]`` says what each candidate's program moved.
    """
    ilp = plan.allocation
    assert ilp is not None
    candidates = {"ilp": plan, "none": plain}
    for method in ("greedy", "firstfit"):
        candidates[method] = program(allocate(problem, method=method))
    traffic = {method: p.dram_bytes for method, p in candidates.items()}
    best = min(candidates, key=lambda m: (traffic[m], m != "ilp"))
    chosen = candidates[best].allocation
    assert chosen is not None
    allocation = dataclasses.replace(
        chosen, method="ilp", status=ilp.status, objective=ilp.objective, bound=ilp.bound, gap=ilp.gap,
        solve_time_s=ilp.solve_time_s, windows=ilp.windows,
        details={**ilp.details, "plan_dram_bytes": traffic, "tensors_from": best})
    _log.info("%s: plan DRAM bytes by allocation %s; keeping %s's", problem.name, traffic, best)
    return dataclasses.replace(candidates[best], allocation=allocation)


def _schedule(graph: Graph, arch: Accelerator, working: dict[str, int]) -> tuple[tuple[str, ...], MemoryProblem]:
    """The candidate order (:mod:`mapper.order`) whose greedy allocation leaves the least
    non-compulsory traffic (ties: the earlier candidate, the graph's own order first)."""
    orders = candidate_orders(graph)
    problems = [problem_from_graph(graph, arch, order=order, reserved=working) for order in orders]
    if len(orders) == 1:
        return orders[0], problems[0]
    scores = [allocate(problem, method="greedy").non_compulsory_bytes for problem in problems]
    best = min(range(len(orders)), key=lambda i: (scores[i], i))
    _log.info("%s: %d candidate orders leave %s B non-compulsory (greedy); taking #%d", graph.name, len(orders),
              scores, best)
    return orders[best], problems[best]
