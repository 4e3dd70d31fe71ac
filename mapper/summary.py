"""A mapping with the allocators compared: what ``accel map`` prints and writes.

:func:`map_with_baselines` maps a graph (:func:`mapper.map_graph`) and runs the baseline allocators
(``none``, ``firstfit``, ``greedy``) on the same allocation problem, so the chosen allocator's
tensor traffic can be compared with theirs. :meth:`MapSummary.to_dict` is the plan's JSON
(:meth:`mapper.plan.Plan.to_dict`) with the allocation problem's compulsory traffic, the chosen
allocation's figures and solver status, every allocator's tensor traffic (``baselines``), and the
resident tensors' intervals (``tensors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accel.hardware import Accelerator
from mapper.allocate import Allocation
from mapper.lifetimes import MemoryProblem
from mapper.options import Allocator, MapOptions
from mapper.plan import Plan
from workloads.graph import Graph

__all__ = ["BASELINES", "MapSummary", "map_with_baselines"]

#: The allocators every mapping is compared with.
BASELINES = (Allocator.NONE, Allocator.FIRSTFIT, Allocator.GREEDY)


@dataclass(frozen=True)
class MapSummary:
    """A plan, the allocation problem of its schedule, the allocation it runs (``none``'s when the
    plan keeps nothing on chip) and every allocator's answer on that problem (the chosen one last)."""

    plan: Plan
    problem: MemoryProblem
    allocation: Allocation
    baselines: Mapping[str, Allocation]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (see the module docstring)."""
        plan = self.plan.to_dict()
        chosen = self.allocation.to_dict()
        return {
            **{k: plan[k] for k in ("arch", "workload", "allocator", "mapping_objective", "schedule",
                                    "scratchpad_bytes", "dram_bytes", "dram_read_bytes", "dram_write_bytes")},
            "compulsory_dram_bytes": self.problem.compulsory_dram_bytes,
            "tensor_dram_bytes": self.allocation.dram_bytes,
            "non_compulsory_bytes": self.allocation.non_compulsory_bytes,
            **{k: chosen[k] for k in ("status", "objective", "bound", "gap", "solve_time_s")},
            # whose tensors the program runs (a baseline's when its program moved fewer bytes), and why
            "tensors_from": self.allocation.details.get("tensors_from", self.allocation.method),
            "reason": self.allocation.details.get("reason"),
            "estimate_cycles": plan["estimate_cycles"], "roofline_cycles": plan["roofline_cycles"],
            "baselines": {m: {"tensor_dram_bytes": a.dram_bytes, "non_compulsory_bytes": a.non_compulsory_bytes}
                          for m, a in self.baselines.items()},
            "layers": plan["layers"],
            "tensors": chosen.get("tensors", {}),
        }


def map_with_baselines(graph: Graph, arch: Accelerator, options: MapOptions | None = None) -> MapSummary:
    """Map ``graph`` onto ``arch`` as ``options`` say (default: :class:`MapOptions`'s defaults) and
    compare its allocation with the baselines'."""
    from mapper.lifetimes import loaded_weight_bytes
    from mapper.memory import allocate, problem_from_graph
    from mapper.pipeline import map_graph

    options = options or MapOptions()
    plan = map_graph(graph, arch, options)
    problem = plan.problem or problem_from_graph(
        graph, plan.arch, weight_bytes=loaded_weight_bytes(plan.graph or graph, plan.arch, plan.layers))
    chosen = plan.allocation or allocate(problem, method=Allocator.NONE.value)
    baselines = {m.value: allocate(problem, method=m.value) for m in BASELINES if m is not options.allocator}
    baselines[options.allocator.value] = chosen
    return MapSummary(plan, problem, chosen, baselines)
