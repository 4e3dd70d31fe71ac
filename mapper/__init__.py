"""mapper: tiles and schedules DNN layers onto the hardware and emits the command program.

One entry point: ``map_graph(graph, arch, MapOptions(...)) -> Plan``, a checked command program
(:mod:`mapper.pipeline`). :class:`MapOptions` holds every choice (allocator, objective, dataflow,
loop order, depthwise placement, scratchpad size, ILP limits; :mod:`mapper.options`).
:func:`map_with_baselines` also compares the allocation with the baseline allocators'
(:mod:`mapper.summary`; what ``accel map`` prints).

The rooms, in the order a mapping passes through them:

=======================  =================================================================
:mod:`mapper.options`    the choices, as enums, validated
:mod:`mapper.search`     one array layer's best mapping, priced by the datasheet (bounded caches:
                         :mod:`mapper.caches`)
:mod:`mapper.schedules`  an array layer's schedule of computes and transfers (loop orders)
:mod:`mapper.decide`     per-layer decisions (search, N:M operands, working space) before emission
:mod:`mapper.order`      candidate operator orders (schedules) of branchy graphs
:mod:`mapper.memory`     scratchpad allocation (``lifetimes``, ``allocate``, ``ilp``)
:mod:`mapper.residency`  an allocation as per-step questions; scratchpad address bookkeeping
:mod:`mapper.emit`       the command program written from the decisions
:mod:`mapper.check`      proves a plan valid from its commands
:mod:`mapper.plan`       the plan (the seam to the simulator) and its JSON
:mod:`mapper.summary`    a plan with the allocators compared (``accel map``'s JSON)
:mod:`mapper.pipeline`   all of the above in order: :func:`map_graph`
=======================  =================================================================
"""

from mapper.options import ALLOCATORS, OBJECTIVES, Allocator, Depthwise, LoopOrder, MapOptions, Objective
from mapper.plan import LayerMapping, Plan, Tile
from mapper.summary import MapSummary, map_with_baselines

__all__ = ["ALLOCATORS", "OBJECTIVES", "Allocator", "Depthwise", "LayerMapping", "LoopOrder", "MapOptions",
           "MapSummary", "Objective", "Plan", "Tile", "map_graph", "map_with_baselines"]


def map_graph(graph, arch, options: MapOptions | None = None) -> Plan:  # noqa: ANN001 - typed in mapper.pipeline
    """Map ``graph`` onto ``arch`` as ``options`` say (default: :class:`MapOptions`'s defaults) and
    return the checked plan (see :mod:`mapper.pipeline`)."""
    from accel.errors import MappingError
    from accel.hardware import Accelerator
    from mapper.pipeline import map_graph as _map_graph
    from workloads.graph import Graph

    for name, value, kind, what in (("graph", graph, Graph, "a workloads.Graph (see workloads.load)"),
                                    ("arch", arch, Accelerator, "an accel.Accelerator (see accel.config.load)"),
                                    ("options", options, MapOptions | None, "a MapOptions or None")):
        if not isinstance(value, kind):
            raise MappingError(f"map_graph's {name} must be {what}, not {type(value).__name__} {value!r:.60}")
    return _map_graph(graph, arch, options or MapOptions())
