"""Graph-level scratchpad allocation: which tensors stay on chip, where, and when they spill.

The contract: :func:`problem_from_graph` turns a scheduled graph and an accelerator into a
:class:`MemoryProblem` (see :mod:`mapper.lifetimes` for the model: events, gaps, views, errors);
:func:`allocate` solves it with one of four allocators and returns an :class:`Allocation` (see
:mod:`mapper.allocate` for the traffic model), which :func:`check_allocation` proves valid: no two
residents overlap, capacity minus the layer's reserved working space holds at every step, every use
finds its tensor on chip or read from DRAM, and the DRAM totals add up.

Allocators: ``none`` (nothing resident), ``greedy`` (greedy-by-size with LRU eviction), ``firstfit``
(first fit in schedule order) and ``ilp`` (HiGHS; :mod:`mapper.ilp`), which is warm-started from the
baselines and so is never worse than any of them.

Example::

    problem = problem_from_graph(zoo.build("resnet18"), arch, capacity_bytes=512 * 1024)
    allocation = allocate(problem, method="ilp", time_limit_s=10.0)
    check_allocation(problem, allocation)
    print(allocation.dram_bytes, allocation.gap)
"""

from __future__ import annotations

import logging

from accel.errors import MappingError
from mapper.allocate import (
    Allocation,
    TensorAllocation,
    allocate_firstfit,
    allocate_greedy,
    allocate_none,
    check_allocation,
)
from mapper.ilp import WINDOW_GAPS, solve_ilp
from mapper.lifetimes import Gap, MemoryProblem, MemoryTensor, default_reserved_bytes, problem_from_graph
from mapper.options import ALLOCATORS, MapOptions

__all__ = [
    "METHODS", "Gap", "MemoryTensor", "MemoryProblem", "TensorAllocation", "Allocation",
    "problem_from_graph", "default_reserved_bytes", "allocate", "check_allocation",
]

_log = logging.getLogger(__name__)

#: The allocators :func:`allocate` knows (one list: :data:`mapper.ALLOCATORS`).
METHODS = ALLOCATORS


def allocate(problem: MemoryProblem, *, method: str = "ilp", time_limit_s: float = 10.0, mip_gap: float = 0.01,
             window_gaps: int = WINDOW_GAPS) -> Allocation:
    """Allocate ``problem``'s tensors with ``method``; ``time_limit_s``, ``mip_gap`` and ``window_gaps``
    (above this many candidate gaps the ILP is solved in windows) concern ``ilp`` only."""
    if method == "none":
        return allocate_none(problem)
    if method == "greedy":
        return allocate_greedy(problem)
    if method == "firstfit":
        return allocate_firstfit(problem)
    if method == "ilp":
        MapOptions(allocator="ilp", time_limit_s=time_limit_s, mip_gap=mip_gap)  # the one check of the limits
        warm = (allocate_greedy(problem), allocate_firstfit(problem))
        result = solve_ilp(problem, time_limit_s=time_limit_s, mip_gap=mip_gap, warm=warm, window_gaps=window_gaps)
        _log.info("%s: ilp %s, %d B non-compulsory (bound %.0f, gap %.4f) in %.2fs", problem.name, result.status,
                  result.non_compulsory_bytes, result.bound or 0.0, result.gap or 0.0, result.solve_time_s or 0.0)
        return result
    raise MappingError(f"Allocator must be one of {', '.join(METHODS)}, not {method!r}")
