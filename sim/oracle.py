"""onnxruntime as the numeric oracle: a mapped program's outputs against the model's own, per output.

:func:`check_numerics` ``(model, graph, plan)`` runs the quantized ONNX ``model`` (a path or a
``ModelProto``) on onnxruntime's CPU provider and ``plan`` (mapped from ``graph``, the model as
:func:`workloads.load_onnx` reads it) through :func:`sim.execute.execute_graph`, on the same inputs
(unless given, :func:`seeded_inputs`: seeded ``N(0, 1)`` floats of ``graph``'s input shapes), and returns a
:class:`NumericsCheck`: per graph output the number of elements, how many differ and the largest
absolute difference. A design that requantizes as onnxruntime does (``float32-half-even``) must give
zero differences; other modes round some values the other way, which the check shows as such. A
graph with float layers (a transformer's softmax, layer norm and GELU in onnxruntime's QDQ model) is
checked where its integer part ends (:func:`integer_frontier`): the codes of the tensors the float
layers read, against onnxruntime's same tensors; the check names the float layers it did not run.
When the plan keeps every one of those tensors on chip (an allocator), the check says so rather than
run the float layers. A layer the plan runs N:M whose weights are not N:M (a dense model marked
``--nm``) is refused: the array would drop weights the model multiplies.

:func:`onnxruntime_outputs` is the oracle alone: a model's outputs on a feed, by name.

onnxruntime is a test dependency (the ``dev`` extra), imported only here; its absence raises
:class:`~accel.errors.ToolError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accel.commands import Store
from accel.errors import ToolError, WorkloadError
from mapper.layout import weight_matrix
from mapper.plan import Plan
from sim.execute import execute_graph
from workloads.graph import Graph
from workloads.host import split_host

__all__ = ["NumericsCheck", "OutputDifference", "check_numerics", "integer_frontier", "onnxruntime_outputs",
           "seeded_inputs"]


@dataclass(frozen=True)
class OutputDifference:
    """One graph output: ``mismatches`` of its ``elements`` differ from onnxruntime's, by at most ``max_abs_diff``."""

    name: str
    shape: tuple[int, ...]
    elements: int
    mismatches: int
    max_abs_diff: float

    @property
    def equal(self) -> bool:
        return self.mismatches == 0


@dataclass(frozen=True)
class NumericsCheck:
    """Every output of one functional run against onnxruntime, and the requantization mode it ran in."""

    outputs: tuple[OutputDifference, ...]
    requant: str
    float_layers: tuple[str, ...] = ()  # not run (float in onnxruntime): the outputs are where the integer part ends

    @property
    def equal(self) -> bool:
        return all(o.equal for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {"equal": self.equal, "requant": self.requant, "float_layers": list(self.float_layers),
                "outputs": [{"name": o.name, "shape": list(o.shape), "elements": o.elements,
                             "mismatches": o.mismatches, "max_abs_diff": o.max_abs_diff} for o in self.outputs]}


def seeded_inputs(model: str | Path | Any, graph: Graph, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded values for every input of ``graph`` (the shapes) in ``model``'s element types: ``N(0, 1)``
    for float inputs, uniform codes for integer ones."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    proto = onnx.load(str(model), load_external_data=False) if isinstance(model, (str, Path)) else model
    types = {vi.name: vi.type.tensor_type.elem_type for vi in proto.graph.input}
    rng = np.random.default_rng(seed)
    feed = {}
    for t in graph.inputs:
        if t.name not in types:
            raise WorkloadError(f"Graph input {t.name!r} is not an input of the ONNX model")
        dtype = np.dtype(tensor_dtype_to_np_dtype(types[t.name]))
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            feed[t.name] = rng.integers(info.min, info.max, size=t.shape, endpoint=True, dtype=dtype)
        else:
            feed[t.name] = rng.standard_normal(t.shape).astype(dtype)
    return feed


def onnxruntime_outputs(model: str | Path | Any, feed: Mapping[str, np.ndarray], *,
                        tensors: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """``model``'s outputs (by name) on ``feed``, from onnxruntime's CPU provider, and the values of the
    other ``tensors`` named (intermediate tensors, made outputs of a copy of the model)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ToolError("Checking numerics needs onnxruntime (pip install onnxruntime, or the 'dev' extra)") \
            from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if tensors:
        import onnx

        proto = onnx.load(str(model)) if isinstance(model, (str, Path)) else onnx.ModelProto.FromString(
            model.SerializeToString())
        known = {o.name for o in proto.graph.output}
        proto.graph.output.extend(onnx.ValueInfoProto(name=name) for name in tensors if name not in known)
        source = proto.SerializeToString()
    else:
        source = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    try:
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        values = session.run(None, dict(feed))
    except Exception as exc:  # onnxruntime raises its own exception types for bad models and feeds
        where = f"ONNX file {str(model)!r}" if isinstance(model, (str, Path)) else "The ONNX model"
        raise WorkloadError(f"{where}: onnxruntime cannot run it: {str(exc).strip().splitlines()[0]}") from exc
    return dict(zip([o.name for o in session.get_outputs()], values, strict=True))


def integer_frontier(graph: Graph, plan: Plan) -> tuple[str, ...]:
    """Where the integer part of a graph with float layers ends: every tensor an integer layer
    produces and a float layer reads (directly or through views and dequantizations: the codes before
    them), and every graph output, that depends on no float layer and that the program stores to
    DRAM. Empty for a graph without float layers."""
    stored = _stored(plan)
    return tuple(t for t in _frontier(graph) if t in stored)


def _stored(plan: Plan) -> set[str]:
    """The tensors some command of ``plan`` stores to DRAM."""
    return {c.tensor for c in plan.commands if isinstance(c, Store)}


def _frontier(graph: Graph) -> dict[str, list[str]]:
    """:func:`integer_frontier` wherever the plan keeps the tensors: each with the float layers reading it."""
    device = split_host(graph).device
    floats = device.float_layers()
    if not floats:
        return {}
    float_names = {layer.name for layer in floats}

    def root(name: str) -> str:  # through views and dequantizations to the codes they read
        producer = device.tensors[name].producer
        while producer is not None and (device.layer(producer).op.is_view
                                        or device.layer(producer).attrs.get("numerics") == "dequantize"):
            name = device.layer(producer).inputs[0]
            producer = device.tensors[name].producer
        return name

    def integer(name: str) -> bool:
        producer = device.tensors[name].producer
        return producer is not None and producer not in float_names and not device.layers_feeding([name]) & float_names

    frontier: dict[str, list[str]] = {}
    for layer in floats:
        for t in (root(t) for t in layer.inputs if not device.tensors[t].is_constant):
            if integer(t):
                frontier.setdefault(t, []).append(layer.name)
    for t in device.outputs:
        if integer(t.name):
            frontier.setdefault(t.name, [])
    return frontier


def _refuse_frontier_on_chip(graph: Graph, frontier: Mapping[str, list[str]], stored: set[str]) -> None:
    """Raise when every tensor where the integer part ends (``frontier``, :func:`_frontier`) stays on chip
    (is not in ``stored``): nothing in DRAM to compare (when some are stored, those are compared)."""
    on_chip = {t: readers for t, readers in frontier.items() if t not in stored}
    if on_chip and len(on_chip) == len(frontier):
        readers = list(dict.fromkeys(name for names in on_chip.values() for name in names))
        raise WorkloadError(f"Graph {graph.name!r}: its integer part ends at {_some([repr(t) for t in on_chip])}, "
                            f"which float layer(s) {_some(readers)} read, but this plan keeps those codes on chip (no "
                            "store writes them to DRAM), so there is nothing to compare with onnxruntime; check "
                            "numerics with --allocator none")


def check_numerics(model: str | Path | Any, graph: Graph, plan: Plan, *,
                   inputs: Mapping[str, np.ndarray] | None = None, seed: int = 0) -> NumericsCheck:
    """``plan``'s functional outputs against onnxruntime's on ``model`` (see the module docstring). A
    graph with float layers (which this hardware does not run) is checked where its integer part ends
    (:func:`integer_frontier`): those tensors' codes against onnxruntime's same tensors."""
    _refuse_unpruned_weights(plan.graph or graph, plan)
    _refuse_other_shapes(model, graph)
    ends, stored = _frontier(graph), _stored(plan)
    _refuse_frontier_on_chip(graph, ends, stored)
    feed = dict(inputs) if inputs is not None else seeded_inputs(model, graph, seed=seed)
    frontier = tuple(t for t in ends if t in stored)  # integer_frontier(graph, plan)
    floats = tuple(layer.name for layer in split_host(graph).device.float_layers())
    theirs = onnxruntime_outputs(model, feed, tensors=frontier)
    ours = execute_graph(graph, plan, feed, outputs=list(frontier) or None)
    rows = []
    for name, value in ours.items():
        if name not in theirs:
            raise WorkloadError(f"Graph output {name!r} is not an output of the ONNX model "
                                f"(it has {', '.join(sorted(theirs))})")
        expected = theirs[name]
        if value.shape != expected.shape:
            raise WorkloadError(f"Graph output {name!r} has shape {value.shape}; onnxruntime's has {expected.shape}")
        diff = np.abs(value.astype(np.float64) - expected.astype(np.float64))
        rows.append(OutputDifference(name=name, shape=tuple(value.shape), elements=int(value.size),
                                     mismatches=int(np.count_nonzero(diff)),
                                     max_abs_diff=float(diff.max()) if diff.size else 0.0))
    return NumericsCheck(outputs=tuple(rows), requant=plan.arch.array.requant.value,
                         float_layers=floats if frontier else ())


def _refuse_unpruned_weights(graph: Graph, plan: Plan) -> None:
    """Raise when a layer ``plan`` runs N:M on packed tiles has weights that are not N:M along the reduction:
    the array keeps ``N`` of each group of ``M``, dropping weights the model (and onnxruntime) multiplies,
    so a difference would be the marking's (``--nm`` on a dense model), not the design's."""
    for layer in graph.layers:
        nm = layer.sparsity
        if nm is None or len(layer.inputs) < 2 or layer.inputs[1] not in plan.weight_tiles:
            continue
        value = graph.tensors[layer.inputs[1]].value
        if value is None:
            continue
        codes = weight_matrix(graph, layer, value)  # groups x k x n, k in the reduction order
        padded = np.pad(codes, ((0, 0), (0, -codes.shape[1] % nm.m), (0, 0)))
        counts = np.count_nonzero(padded.reshape(codes.shape[0], -1, nm.m, codes.shape[2]), axis=2)
        crowded = int(np.count_nonzero(counts > nm.n))
        if crowded:
            raise WorkloadError(f"Layer {layer.name!r} runs {nm.n}:{nm.m} sparse on {plan.arch.name} but {crowded} "
                                f"of {counts.size} groups of {nm.m} of its weights hold more than {nm.n} non-zeros; "
                                "the array would drop weights onnxruntime multiplies (prune the model before "
                                f"quantizing, as examples/quantize_onnx.py --nm {nm.n}:{nm.m} does, or leave out --nm)")


def _refuse_other_shapes(model: str | Path | Any, graph: Graph) -> None:
    """Raise when ``graph`` (loaded with ``--batch`` or ``--dim``) gives an input another size along a
    dimension the ONNX ``model`` fixes: onnxruntime runs the file as it is."""
    import onnx

    proto = onnx.load(str(model), load_external_data=False) if isinstance(model, (str, Path)) else model
    declared = {vi.name: vi.type.tensor_type.shape.dim for vi in proto.graph.input}
    for t in graph.inputs:
        dims = declared.get(t.name)
        if dims is None or len(dims) != len(t.shape):
            continue
        fixed = tuple(d.dim_value if d.HasField("dim_value") else size for d, size in zip(dims, t.shape, strict=True))
        if fixed != tuple(t.shape):
            where = f"ONNX file {str(model)!r}" if isinstance(model, (str, Path)) else "The ONNX model"
            raise WorkloadError(f"{where}: input {t.name!r} has shape {fixed} in the file, not the {tuple(t.shape)} "
                                "the graph was loaded with (--batch or --dim); onnxruntime runs the file as it is, so "
                                "check numerics at its own shapes")


def _some(names: list[str], shown: int = 3) -> str:
    """The first ``shown`` of ``names``, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
