"""The whole mapper as one call: per-layer mapping search, scratchpad allocation, command program."""

from __future__ import annotations

from accel.hardware import Accelerator
from mapper.lower import lower
from mapper.options import MapOptions
from mapper.plan import Plan
from workloads.graph import Graph

__all__ = ["map_graph"]


def map_graph(graph: Graph, arch: Accelerator, options: MapOptions) -> Plan:
    """Map ``graph`` onto ``arch`` as ``options`` say and return the checked plan."""
    return lower(graph, arch)
