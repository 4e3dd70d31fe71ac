"""The memory-allocation problem of a scheduled graph: tensors, their uses per step, and capacity.

A :class:`MemoryProblem` is everything a scratchpad allocator needs and nothing more: the schedule
(``steps``: layer names, step ``i`` runs layer ``steps[i]``), the bytes of scratchpad available to
resident tensors at each step (``capacity_bytes - reserved_bytes[i]``; ``reserved_bytes[i]`` is the
working space of the layer's own tile buffers), and per tensor its size in the accelerator's number
format, the step that produces it and the steps that read it. :func:`problem_from_graph` builds one
from a :class:`~workloads.graph.Graph` and an :class:`~accel.hardware.Accelerator`.

**Events and gaps.** A tensor's *events* are its producer step (activations) and its consumer steps
(sorted, unique). Its *gaps* are the step intervals ``[e_j, e_j+1]`` between consecutive events. The
allocators decide, per gap, whether the tensor stays on chip for the whole gap (at one byte offset).
This loses nothing against a per-step residency model: within a gap the tensor is never used, so
being resident for only part of it costs the same DRAM traffic as not at all (evict + reload, or
stream) while taking more space; and loading it early costs the same as loading at the use.

**Which tensors are candidates.** Only tensors with at least one gap can gain from residency:
activations with a consumer, and graph inputs or weights read by two or more layers. A gap is
*allowed* when the tensor fits the available bytes at every step of the gap; a tensor with no
allowed gap is streamed by the layers' tiling (forced to DRAM), which is not an error.

**Views.** Reshape / flatten / transpose and pass-through layers (:class:`~workloads.graph.OpKind`
``RESHAPE`` and ``PASSTHROUGH``) move no data: their outputs are views of their (first activation)
input and share its buffer. The buffer carries the root tensor's name and lists its views in
``aliases``; consumers of any view are consumers of the buffer. Their steps keep their place in the
schedule with nothing reserved. ``CONCAT`` is a copy: it reads its inputs and produces its output.

**Errors** (:class:`~accel.errors.MappingError`): a capacity that is not positive; a layer whose
reserved working space exceeds the capacity (with the default reservation this names the tensor whose
minimal tile does not fit: one fold of weights plus one input row for array layers, one row of the
reduced axis for softmax and layer norm, one vector of ``lanes`` elements otherwise, all double-buffered);
an ``order`` that is not a topological order of the graph's layers.

**N:M weights.** A weight an N:M layer runs sparse is loaded compressed (its kept values and their
indices, :meth:`~accel.hardware.Sparsity.compressed_bytes`), so the problem sizes it at those bytes
(``weight_bytes``, from the layers' mappings by :func:`loaded_weight_bytes`); a design without the
pattern runs the layer dense, and its weight keeps its dense size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from accel.errors import MappingError
from accel.hardware import Accelerator
from workloads.graph import Graph, Layer, OpKind, Tensor, TensorKind

if TYPE_CHECKING:
    from mapper.plan import LayerMapping

__all__ = ["Gap", "MemoryTensor", "MemoryProblem", "problem_from_graph", "default_reserved_bytes", "view_roots",
           "loaded_weight_bytes", "tensor_bytes"]



@dataclass(frozen=True)
class MemoryTensor:
    """One buffer: a tensor (with its views) as the allocator sees it.

    ``kind`` is the root tensor's kind: inputs and constants must be read from DRAM once
    (compulsory); an activation that is a graph output must be written to DRAM once (compulsory).
    """

    name: str
    size_bytes: int
    kind: TensorKind
    producer_step: int | None  # None for graph inputs and constants
    use_steps: tuple[int, ...]  # steps that read it, sorted and unique
    graph_output: bool = False
    aliases: tuple[str, ...] = ()
    #: per use step, how many times the consuming layer's tiles read the tensor when it streams it
    #: from DRAM (its loads over its size; empty: once each)
    reread: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.reread and (len(self.reread) != len(self.use_steps) or min(self.reread) < 1):
            raise MappingError(f"Tensor {self.name!r}: reread must give a factor >= 1 per use step "
                               f"({len(self.use_steps)}), not {self.reread}")
        if not isinstance(self.size_bytes, int) or self.size_bytes < 0:
            raise MappingError(f"Tensor {self.name!r}: size_bytes must be a non-negative integer, "
                               f"not {self.size_bytes!r}")
        if tuple(sorted(set(self.use_steps))) != tuple(self.use_steps):
            raise MappingError(f"Tensor {self.name!r}: use_steps must be sorted and unique, not {self.use_steps}")
        if (self.kind is TensorKind.ACTIVATION) != (self.producer_step is not None):
            raise MappingError(f"Tensor {self.name!r}: an activation needs a producer step and only it, "
                               f"not {self.producer_step!r}")
        if self.producer_step is not None and self.use_steps and self.use_steps[0] <= self.producer_step:
            raise MappingError(f"Tensor {self.name!r}: used at step {self.use_steps[0]}, not after its "
                               f"producer step {self.producer_step}")

    def reread_at(self, step: int) -> float:
        """The re-read factor of the use at ``step`` (1 where none was given)."""
        if not self.reread or step not in self.use_steps:
            return 1.0
        return self.reread[self.use_steps.index(step)]

    @property
    def events(self) -> tuple[int, ...]:
        """Producer step (if any) then use steps."""
        head = () if self.producer_step is None else (self.producer_step,)
        return head + self.use_steps

    @property
    def is_activation(self) -> bool:
        return self.kind is TensorKind.ACTIVATION

    @property
    def compulsory_bytes(self) -> int:
        """One read of an input or weight that is used; one write of an activation graph output."""
        if self.is_activation:
            return self.size_bytes if self.graph_output else 0
        return self.size_bytes if self.use_steps else 0

    @property
    def unreused_bytes(self) -> int:
        """DRAM bytes with nothing resident: written once (activations), read at every consuming step."""
        write = self.size_bytes if self.is_activation else 0
        return write + self.size_bytes * len(self.use_steps)


@dataclass(frozen=True)
class Gap:
    """The interval ``[start, end]`` between two consecutive events of tensor ``tensor`` (an index)."""

    id: int
    tensor: int
    index: int  # j: the gap between events j and j + 1 of its tensor
    start: int
    end: int
    size_bytes: int
    limit_bytes: int  # the fewest bytes available at any step of the gap: the tensor's top must stay below

    @property
    def allowed(self) -> bool:
        return self.size_bytes <= self.limit_bytes


@dataclass(frozen=True)
class MemoryProblem:
    """A scheduled graph's scratchpad allocation problem (see the module docstring for the model)."""

    name: str
    capacity_bytes: int
    steps: tuple[str, ...]
    reserved_bytes: tuple[int, ...]
    tensors: tuple[MemoryTensor, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.capacity_bytes, int) or self.capacity_bytes <= 0:
            raise MappingError(f"Scratchpad capacity for resident tensors must be a positive integer, "
                               f"not {self.capacity_bytes!r}")
        if len(self.reserved_bytes) != len(self.steps):
            raise MappingError(f"reserved_bytes must have one entry per step ({len(self.steps)}), "
                               f"not {len(self.reserved_bytes)}")
        for i, reserved in enumerate(self.reserved_bytes):
            if reserved < 0 or reserved > self.capacity_bytes:
                raise MappingError(f"Layer {self.steps[i]!r} (step {i}) reserves {reserved} B for its tile "
                                   f"buffers; that must be between 0 and the capacity {self.capacity_bytes} B")
        names = set()
        for t in self.tensors:
            if t.name in names:
                raise MappingError(f"Tensor {t.name!r} appears twice in the memory problem")
            names.add(t.name)
            if any(not 0 <= s < len(self.steps) for s in t.events):
                raise MappingError(f"Tensor {t.name!r}: steps {t.events} must lie in 0..{len(self.steps) - 1}")

    def available_bytes(self, step: int) -> int:
        """Bytes resident tensors may use at ``step``."""
        return self.capacity_bytes - self.reserved_bytes[step]

    @cached_property
    def gaps(self) -> tuple[Gap, ...]:
        """Every gap of every tensor, ordered by tensor then event (ids are positions)."""
        available = [self.available_bytes(i) for i in range(len(self.steps))]
        gaps: list[Gap] = []
        for ti, t in enumerate(self.tensors):
            ev = t.events
            for j in range(len(ev) - 1):
                limit = min(available[ev[j]:ev[j + 1] + 1])
                gaps.append(Gap(len(gaps), ti, j, ev[j], ev[j + 1], t.size_bytes, limit))
        return tuple(gaps)

    @cached_property
    def tensor_gaps(self) -> tuple[tuple[int, ...], ...]:
        """For each tensor, the ids of its gaps in order."""
        out: list[list[int]] = [[] for _ in self.tensors]
        for g in self.gaps:
            out[g.tensor].append(g.id)
        return tuple(tuple(ids) for ids in out)

    @property
    def compulsory_dram_bytes(self) -> int:
        return sum(t.compulsory_bytes for t in self.tensors)

    @property
    def unreused_dram_bytes(self) -> int:
        """DRAM bytes of the no-reuse baseline."""
        return sum(t.unreused_bytes for t in self.tensors)

    def tensor(self, name: str) -> MemoryTensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise MappingError(f"Memory problem {self.name!r} has no tensor {name!r}")


# -- building the problem from a graph ------------------------------------------------------------

def default_reserved_bytes(layer: Layer, graph: Graph, arch: Accelerator) -> dict[str, int]:
    """The smallest double-buffered working set of ``layer``, per tensor it streams (bytes).

    Array layers: one fold of the second operand (``min(rows, k) x min(cols, n)``) and one row of
    ``min(rows, k)`` inputs; softmax and layer norm: one row of the last axis of each input and output;
    other vector layers and concat: ``lanes`` elements of each; views: nothing. Everything doubled
    for double buffering.
    """
    if layer.op.is_view:
        return {}
    in_b, w_b = arch.array.input_format.size_bytes, arch.array.weight_format.size_bytes
    work: dict[str, int] = {}
    if layer.gemm is not None:
        kt, nt = min(arch.array.rows, layer.gemm.k), min(arch.array.cols, layer.gemm.n)
        acts = [t for t in layer.inputs if not graph.tensors[t].is_constant]
        consts = [t for t in layer.inputs if graph.tensors[t].is_constant]
        if acts:
            work[acts[0]] = kt * in_b
        second = acts[1] if len(acts) > 1 else (consts[0] if consts else None)
        if second is not None:
            work[second] = kt * nt * (in_b if len(acts) > 1 else w_b)
    else:
        row_wise = layer.op is OpKind.SOFTMAX or (layer.op is OpKind.NORM and layer.attrs.get("kind") == "layer")
        for name in (*layer.inputs, *layer.outputs):
            t = graph.tensors[name]
            if t.is_constant and layer.op is not OpKind.CONCAT:
                continue
            elements = (t.shape[-1] if t.shape else 1) if row_wise else min(arch.vector.lanes, t.elements)
            work[name] = work.get(name, 0) + elements * in_b
    return {name: 2 * size for name, size in work.items()}


def _loaded_constants(graph: Graph, layer: Layer) -> set[str]:
    """The constant inputs of ``layer`` its commands surely load (:mod:`mapper.decide`): an array layer's
    weight operand, every input of a concat. The other constants (biases, scales, norm parameters) are the
    layer's configuration, never loaded, except the bias of a depthwise convolution the vector unit runs,
    which this leaves out so that the compulsory traffic stays a lower bound wherever it runs."""
    consts = [t for t in layer.inputs if graph.tensors[t].is_constant]
    if layer.op is OpKind.CONCAT:
        return set(consts)
    if layer.gemm is None or not consts:
        return set()
    acts = [t for t in layer.inputs if not graph.tensors[t].is_constant]
    return {consts[0]} if len(acts) < 2 else set()


def loaded_weight_bytes(graph: Graph, arch: Accelerator, mappings: Iterable[LayerMapping]) -> dict[str, int]:
    """``{weight: bytes}`` of every constant weight its layers all run N:M sparse (``mappings``: the
    layers' decisions, :attr:`~mapper.plan.LayerMapping.sparsity`): its kept values and their indices,
    the bytes the program loads for the whole of it (:meth:`mapper.schedules.Operands.w_size`). A
    weight some layer runs dense is left out (it keeps its dense size)."""
    value_bits = 8 * arch.array.weight_format.size_bytes
    root = view_roots(graph)
    sizes: dict[str, int] = {}
    dense: set[str] = set()
    for mapping in mappings:
        layer = graph.layer(mapping.layer)
        for w in _loaded_constants(graph, layer):
            name = root.get(w, w)
            nm, g = mapping.sparsity, mapping.gemm
            if nm is None or g is None:  # (a concat's inputs: no GEMM)
                dense.add(name)
                continue
            size = nm.compressed_bytes(g.batch * nm.compressed_k(g.k) * g.n, value_bits)
            sizes[name] = max(size, sizes.get(name, 0))
    return {name: size for name, size in sizes.items() if name not in dense}


def _schedule(graph: Graph, order: Sequence[str] | None) -> tuple[Layer, ...]:
    if order is None:
        return graph.layers
    by_name = {layer.name: layer for layer in graph.layers}
    if sorted(order) != sorted(by_name):
        missing = sorted(set(by_name) - set(order))
        extra = sorted(set(order) - set(by_name))
        raise MappingError(f"Schedule of {graph.name!r} must list every layer once; missing {missing}, "
                           f"unknown or repeated {extra or [n for n in set(order) if list(order).count(n) > 1]}")
    done: set[str] = set()
    for name in order:
        for t in by_name[name].inputs:
            producer = graph.tensors[t].producer
            if producer is not None and producer not in done:
                raise MappingError(f"Schedule of {graph.name!r}: layer {name!r} runs before {producer!r}, "
                                   f"which produces its input {t!r}")
        done.add(name)
    return tuple(by_name[name] for name in order)


def view_roots(graph: Graph, layers: Sequence[Layer] | None = None) -> dict[str, str]:
    """The buffer each view tensor shares: ``{view: root}`` (tensors that are no view are absent)."""
    root: dict[str, str] = {}
    for layer in graph.layers if layers is None else layers:
        if layer.op.is_view:
            acts = [t for t in layer.inputs if not graph.tensors[t].is_constant] or list(layer.inputs)
            if acts:
                for out in layer.outputs:
                    root[out] = root.get(acts[0], acts[0])
    return root


def problem_from_graph(
    graph: Graph,
    arch: Accelerator,
    *,
    order: Sequence[str] | None = None,
    capacity_bytes: int | None = None,
    reserved: int | Mapping[str, int] | Callable[[Layer], int] | None = None,
    reread: Mapping[tuple[str, str], float] | None = None,
    weight_bytes: Mapping[str, int] | None = None,
) -> MemoryProblem:
    """The memory problem of ``graph`` run on ``arch`` in ``order`` (default: the graph's own order).

    ``capacity_bytes`` defaults to the scratchpad size. ``reserved`` is the tile working space per
    layer: ``None`` for :func:`default_reserved_bytes`; an int for the same bytes at every non-view
    step; a mapping from layer name to bytes (missing layers get the default); or a function of the
    layer. Sizes are element counts times the array's input format (activations, inputs) or weight
    format (constants) in bytes. ``reread`` maps ``(layer, tensor)`` to how many times that layer's
    tiles read the tensor (or a view of it) when it is streamed (:func:`mapper.traffic.reread_factors`);
    the ILP then prices a use by the plan's reads (:attr:`MemoryTensor.reread`). ``weight_bytes`` gives
    constants the bytes the program loads for them instead (N:M weights, :func:`loaded_weight_bytes`).
    """
    capacity = arch.scratchpad.size_bytes if capacity_bytes is None else capacity_bytes
    if not isinstance(capacity, int) or capacity <= 0:
        raise MappingError(f"Scratchpad capacity for resident tensors must be a positive integer, not {capacity!r}")
    layers = _schedule(graph, order)
    step_of = {layer.name: i for i, layer in enumerate(layers)}

    reserved_bytes = []
    for i, layer in enumerate(layers):
        if layer.op.is_view:
            reserved_bytes.append(0)
            continue
        if reserved is None or (isinstance(reserved, Mapping) and layer.name not in reserved):
            work = default_reserved_bytes(layer, graph, arch)
            need = sum(work.values())
            if need > capacity:
                worst = max(work, key=lambda n: work[n])
                raise MappingError(
                    f"Tensor {worst!r}: layer {layer.name!r} (step {i}) needs {work[worst]} B of it on chip "
                    f"(its smallest double-buffered tile) and {need - work[worst]} B for its other operands, "
                    f"but the scratchpad has {capacity} B")
            reserved_bytes.append(need)
            continue
        if isinstance(reserved, int):
            value = reserved
        elif isinstance(reserved, Mapping):
            value = reserved[layer.name]
        else:
            value = reserved(layer)
        if not isinstance(value, int) or not 0 <= value <= capacity:
            raise MappingError(f"Layer {layer.name!r} (step {i}): reserved working space must be 0.."
                               f"{capacity} B (the capacity), not {value!r}")
        reserved_bytes.append(value)

    root = view_roots(graph, layers)

    def find(name: str) -> str:
        return root.get(name, name)

    uses: dict[str, set[int]] = {}
    aliases: dict[str, list[str]] = {}
    outputs: set[str] = set()
    for name in graph.tensors:
        r = find(name)
        aliases.setdefault(r, [])
        if r != name:
            aliases[r].append(name)
    for i, layer in enumerate(layers):
        if layer.op.is_view:
            continue
        kept = _loaded_constants(graph, layer)
        for t in layer.inputs:
            if graph.tensors[t].is_constant and t not in kept:
                continue  # the layer's configuration (a bias, a scale, norm parameters): never loaded
            uses.setdefault(find(t), set()).add(i)
    for t in graph.outputs:
        outputs.add(find(t.name))

    loaded = weight_bytes or {}
    tensors = []
    for name, members in aliases.items():
        t = graph.tensors[name]
        steps = tuple(sorted(uses.get(name, ())))
        producer = step_of[t.producer] if t.producer is not None else None
        if not steps and name not in outputs:
            continue  # never read and not returned: nothing to allocate or move
        factors: tuple[float, ...] = ()
        if reread:
            factors = tuple(max(1.0, reread.get((layers[u].name, name), 1.0)) for u in steps)
            factors = () if all(f == 1.0 for f in factors) else factors
        tensors.append(MemoryTensor(
            name=name, size_bytes=tensor_bytes(t, arch, loaded.get(name)), kind=t.kind,
            producer_step=producer, use_steps=steps,
            graph_output=name in outputs and t.kind is TensorKind.ACTIVATION, aliases=tuple(members),
            reread=factors,
        ))
    return MemoryProblem(name=graph.name, capacity_bytes=capacity, steps=tuple(layer.name for layer in layers),
                         reserved_bytes=tuple(reserved_bytes), tensors=tuple(tensors))


def tensor_bytes(tensor: Tensor, arch: Accelerator, loaded: int | None = None) -> int:
    """A tensor's bytes in the memory problem: its elements in the array's input format (activations) or
    weight format (constants), or ``loaded`` for a constant the program loads compressed."""
    if tensor.is_constant:
        return tensor.elements * arch.array.weight_format.size_bytes if loaded is None else loaded
    return tensor.elements * arch.array.input_format.size_bytes
