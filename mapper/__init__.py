"""mapper: tiles and schedules DNN layers onto the hardware and emits the command program."""

from mapper.lower import Depthwise, LoopOrder, lower
from mapper.options import ALLOCATORS, OBJECTIVES, MapOptions
from mapper.plan import LayerMapping, Plan, Tile

__all__ = ["ALLOCATORS", "OBJECTIVES", "Depthwise", "LayerMapping", "LoopOrder", "MapOptions", "Plan", "Tile",
           "lower", "map_graph"]


def map_graph(graph, arch, options: MapOptions | None = None) -> Plan:  # noqa: ANN001 - typed in mapper.pipeline
    """Map ``graph`` onto ``arch``: per-layer mappings, scratchpad allocation, the command program."""
    from mapper.pipeline import map_graph as _map_graph

    return _map_graph(graph, arch, options or MapOptions())
