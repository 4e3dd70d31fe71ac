"""How many times each layer's tiles read each operand it streams: the ILP's price of a use.

The allocation model (:mod:`mapper.lifetimes`) reads a streamed tensor once per consuming layer, but a
layer's tiling may read an operand several times (an input tile per output-column block, a weight fold
per row chunk). :func:`reread_factors` lowers the graph with every tensor streamed, each layer tiling in
the working space the allocation leaves it, and counts each layer's scratchpad loads of each tensor
(its views included) over the tensor's size. Given to :func:`mapper.lifetimes.problem_from_graph`, the
ILP then prices a use that streams at those reads and a use on chip (or reloaded whole) at none (or
one), so its optimum is the optimum of the lowered program's tensor traffic, up to the layers whose
tiling would change once an operand is resident.
"""

from __future__ import annotations

from collections.abc import Mapping

from accel.commands import Buffer, Load
from accel.hardware import Accelerator
from mapper.lifetimes import loaded_weight_bytes, tensor_bytes, view_roots
from mapper.options import MapOptions
from workloads.graph import Graph

__all__ = ["reread_factors"]


def reread_factors(graph: Graph, arch: Accelerator, working: Mapping[str, int],
                   options: MapOptions) -> dict[tuple[str, str], float]:
    """``{(layer, tensor): loads / size}`` for every operand a layer streams more than once, each layer
    mapped as ``options`` say in its ``working`` bytes with nothing resident."""
    from mapper.pipeline import build_plan

    plan = build_plan(graph, arch, options, working_bytes=dict(working))
    root = view_roots(graph)
    weights = loaded_weight_bytes(graph, arch, plan.layers)  # as the memory problem sizes them
    loaded: dict[tuple[str, str], int] = {}
    for c in plan.commands:
        if isinstance(c, Load) and c.buffer is Buffer.SCRATCHPAD:
            key = (c.layer, root.get(c.tensor, c.tensor))
            loaded[key] = loaded.get(key, 0) + c.size_bytes
    out = {}
    for (layer, name), nbytes in loaded.items():
        size = tensor_bytes(graph.tensors[name], arch, weights.get(name))
        if size and nbytes > size:
            out[(layer, name)] = nbytes / size
    return out
