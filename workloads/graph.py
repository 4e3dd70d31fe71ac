"""The DNN graph IR that every importer produces and every consumer reads.

A :class:`Graph` is a set of :class:`Tensor` values and a topologically ordered tuple of
:class:`Layer` values. Tensors are NCHW (or [batch, ..., features] for sequence models); a tensor is
a graph input, a constant (weights, biases) or an activation produced by exactly one layer.

Each layer knows the work it represents:

* array layers (conv, GEMM/linear, matmul) carry a :class:`GemmShape`: ``batch`` independent
  ``m x k @ k x n`` products (``batch`` counts convolution groups or attention heads);
* vector layers (pooling, element-wise, activation, softmax, norm) carry ``vector_ops``, the
  number of element operations the vector unit performs;
* data-movement layers (concat, reshape, flatten, transpose) and unknown pass-through ops carry
  neither.

Quantized graphs (from a quantized ONNX model) carry their integer semantics on the tensors: a
:class:`QuantParams` (scales, zero points, the per-channel axis) on every quantized tensor, and the
``value`` (a numpy array: int8 weights, int32 biases, ...) on constants whose data the file holds.
``value`` takes no part in equality or hashing. Each layer of a quantized import states in
``attrs["numerics"]`` how it computes: ``"integer"`` (integer operands and results only),
``"quantize"`` / ``"dequantize"`` (the float <-> integer conversions at the graph's boundary) or
``"float"`` (an op left in floating point, which integer-only hardware cannot run);
:meth:`Graph.float_layers` lists the last.

Build graphs with :class:`workloads.builder.GraphBuilder`; :meth:`Graph.__post_init__` checks that
the result is consistent (every input defined before use, one producer per tensor, no cycles).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np

from accel.errors import WorkloadError
from accel.hardware import Sparsity

__all__ = ["OpKind", "TensorKind", "GemmShape", "QuantParams", "Tensor", "Layer", "Graph", "DTYPE_BYTES",
           "NUMERICS"]

#: The values of ``Layer.attrs["numerics"]`` in a quantized graph.
NUMERICS = ("integer", "quantize", "dequantize", "float")


class OpKind(Enum):
    """The closed set of layer kinds the mapper and simulator understand."""

    __hash__ = object.__hash__  # members are singletons: hash by identity, in C (Enum's hashes the name in Python)

    CONV = "conv"  # 2-D convolution, incl. grouped and depthwise
    GEMM = "gemm"  # fully connected / linear: activation x constant weight
    MATMUL = "matmul"  # activation x activation (attention scores, context)
    POOL = "pool"  # max / average / global pooling
    ELEMENTWISE = "elementwise"  # add, mul, ... of two or more tensors
    ACTIVATION = "activation"  # relu, gelu, sigmoid, clip, ...
    SOFTMAX = "softmax"
    NORM = "norm"  # batch / layer normalisation
    CONCAT = "concat"  # data movement
    RESHAPE = "reshape"  # data movement: reshape, flatten, transpose, squeeze, ...
    PASSTHROUGH = "passthrough"  # an op this IR does not model: output aliases input, no work

    @property
    def uses_array(self) -> bool:
        return self in (OpKind.CONV, OpKind.GEMM, OpKind.MATMUL)

    @property
    def uses_vector_unit(self) -> bool:
        return self in (OpKind.POOL, OpKind.ELEMENTWISE, OpKind.ACTIVATION, OpKind.SOFTMAX, OpKind.NORM)

    @property
    def is_view(self) -> bool:
        """Moves no data: its output shares its input's buffer (reshape, flatten, pass-through)."""
        return self in (OpKind.RESHAPE, OpKind.PASSTHROUGH)


class TensorKind(Enum):
    __hash__ = object.__hash__  # members are singletons: hash by identity, in C (Enum's hashes the name in Python)
    INPUT = "input"  # fed to the graph from outside
    CONSTANT = "constant"  # weights and biases
    ACTIVATION = "activation"  # produced by a layer


DTYPE_BYTES: Mapping[str, int] = MappingProxyType({
    "int4": 1, "uint4": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "float16": 2,
    "bfloat16": 2, "int32": 4, "uint32": 4, "float32": 4, "int64": 8, "float64": 8, "bool": 1,
})


@dataclass(frozen=True)
class GemmShape:
    """``batch`` independent products of an ``m x k`` and a ``k x n`` matrix.

    For a convolution: ``m`` output pixels (batch x height x width), ``k`` = input channels per
    group x kernel height x kernel width, ``n`` output channels per group, ``batch`` groups. This is
    SCALE-Sim's view: ``m`` = Sr (ofmap pixels), ``k`` = T (window size), ``n`` = Sc (filters).
    """

    m: int
    k: int
    n: int
    batch: int = 1

    def __post_init__(self) -> None:
        for name in ("m", "k", "n", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise WorkloadError(f"GEMM dimension {name} must be a positive integer, not {value!r}")

    @property
    def macs(self) -> int:
        return self.batch * self.m * self.k * self.n


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization of a tensor: ``real = scale * (code - zero_point)``.

    ``scale`` and ``zero_point`` hold one value (per tensor) or one per index of ``axis``
    (per channel, e.g. axis 0 of a conv weight); scales are float32 values, as ONNX stores them.
    """

    scale: tuple[float, ...]  # empty: zero points only (the integer ops ConvInteger, MatMulInteger)
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        scale = tuple(float(np.float32(s)) for s in np.asarray(self.scale, dtype=np.float64).reshape(-1))
        zero_point = tuple(int(z) for z in np.asarray(self.zero_point).reshape(-1))
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero_point)
        if not all(math.isfinite(s) and s > 0 for s in scale):
            raise WorkloadError(f"Quantization scales must be positive finite numbers, not {scale!r}")
        if not zero_point or (scale and len(zero_point) not in (1, len(scale))):
            raise WorkloadError(f"Quantization needs one zero point or one per scale ({len(scale)}), "
                                f"not {len(zero_point)}")
        if self.per_channel and self.axis is None:
            raise WorkloadError(f"Per-channel quantization ({max(len(scale), len(zero_point))} values) needs an axis")

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1 or len(self.zero_point) > 1

    @property
    def has_scale(self) -> bool:
        """False for zero points only (``ConvInteger``/``MatMulInteger`` operands: no real scale)."""
        return bool(self.scale)

    def scale_array(self, rank: int) -> np.ndarray:
        """The scales as float32, shaped to broadcast against a tensor of ``rank`` dimensions."""
        return self._shaped(np.asarray(self.scale, dtype=np.float32), rank)

    def zero_point_array(self, rank: int) -> np.ndarray:
        """The zero points as int64, shaped to broadcast against a tensor of ``rank`` dimensions."""
        zp = np.asarray(self.zero_point, dtype=np.int64)
        if zp.size == 1 and len(self.scale) > 1:
            zp = np.repeat(zp, len(self.scale))
        return self._shaped(zp, rank)

    def _shaped(self, values: np.ndarray, rank: int) -> np.ndarray:
        if values.size == 1:
            return values.reshape(())
        axis = self.axis % rank  # type: ignore[operator]
        return values.reshape([-1 if i == axis else 1 for i in range(rank)])


@dataclass(frozen=True)
class Tensor:
    """A named n-dimensional value. ``producer`` and ``consumers`` are filled in by :class:`Graph`."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    kind: TensorKind = TensorKind.ACTIVATION
    producer: str | None = None
    consumers: tuple[str, ...] = ()
    quant: QuantParams | None = None  # set on the tensors of a quantized graph
    value: np.ndarray | None = field(default=None, compare=False, hash=False, repr=False)  # constant data

    def __post_init__(self) -> None:
        if self.quant is not None and not isinstance(self.quant, QuantParams):
            raise WorkloadError(f"Tensor {self.name!r}: quant must be QuantParams, not {self.quant!r}")
        if self.value is not None:
            value = np.asarray(self.value).view()  # a read-only view: the caller's array stays writeable
            if tuple(value.shape) != tuple(self.shape):
                raise WorkloadError(f"Tensor {self.name!r}: value has shape {value.shape}, not {tuple(self.shape)}")
            value.flags.writeable = False
            object.__setattr__(self, "value", value)
        if not isinstance(self.name, str) or not self.name:
            raise WorkloadError(f"Tensor name must be a non-empty string, not {self.name!r}")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in self.shape):
            raise WorkloadError(
                f"Tensor {self.name!r}: shape must be non-negative integers, not {self.shape!r}"
            )
        if self.dtype not in DTYPE_BYTES:
            raise WorkloadError(
                f"Tensor {self.name!r}: dtype must be one of {', '.join(DTYPE_BYTES)}, not {self.dtype!r}"
            )

    @property
    def elements(self) -> int:
        count = 1
        for d in self.shape:
            count *= d
        return count

    @property
    def size_bytes(self) -> int:
        return self.elements * DTYPE_BYTES[self.dtype]

    @property
    def is_constant(self) -> bool:
        return self.kind is TensorKind.CONSTANT


@dataclass(frozen=True)
class Layer:
    """One operation: op kind, named inputs (activations first, then constants) and outputs."""

    name: str
    op: OpKind
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    gemm: GemmShape | None = None  # set for array layers (conv, gemm, matmul)
    vector_ops: int = 0  # element operations on the vector unit
    source_op: str = ""  # the importer's op name (e.g. ONNX 'Conv'), for reports and warnings
    sparsity: Sparsity | None = None  # N:M structured sparsity of the weights along the reduction

    def __post_init__(self) -> None:
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))
        if not isinstance(self.name, str) or not self.name:
            raise WorkloadError(f"Layer name must be a non-empty string, not {self.name!r}")
        if self.op.uses_array and self.gemm is None:
            raise WorkloadError(f"Layer {self.name!r}: a {self.op.value} layer needs its GEMM shape")
        if not self.outputs:
            raise WorkloadError(f"Layer {self.name!r}: needs at least one output")
        if self.sparsity is not None and not isinstance(self.sparsity, Sparsity):
            raise WorkloadError(f"Layer {self.name!r}: N:M sparsity must be a Sparsity or None, not {self.sparsity!r}")
        if self.sparsity is not None and self.gemm is None:
            raise WorkloadError(f"Layer {self.name!r}: only conv, GEMM and matmul layers can be N:M sparse, "
                                f"not a {self.op.value} layer")

    @property
    def macs(self) -> int:
        return self.gemm.macs if self.gemm is not None else 0


@dataclass(frozen=True)
class Graph:
    """A DNN: tensors by name and layers in a valid execution (topological) order."""

    name: str
    tensors: Mapping[str, Tensor]
    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        tensors = dict(self.tensors)
        producer: dict[str, str] = {}
        consumers: dict[str, list[str]] = {name: [] for name in tensors}
        seen_layers: set[str] = set()
        for layer in self.layers:
            if layer.name in seen_layers:
                raise WorkloadError(f"Graph {self.name!r}: layer name {layer.name!r} is used twice")
            seen_layers.add(layer.name)
            for name in layer.inputs:
                if name not in tensors:
                    raise WorkloadError(f"Layer {layer.name!r}: input tensor {name!r} is not defined")
                t = tensors[name]
                if t.kind is TensorKind.ACTIVATION and name not in producer:
                    raise WorkloadError(
                        f"Layer {layer.name!r}: input tensor {name!r} is used before a layer produces it"
                    )
                consumers[name].append(layer.name)
            for name in layer.outputs:
                if name not in tensors:
                    raise WorkloadError(f"Layer {layer.name!r}: output tensor {name!r} is not defined")
                if name in producer or tensors[name].kind is not TensorKind.ACTIVATION:
                    raise WorkloadError(f"Layer {layer.name!r}: tensor {name!r} is written more than once")
                producer[name] = layer.name
        for name, t in tensors.items():
            if t.kind is TensorKind.ACTIVATION and name not in producer:
                raise WorkloadError(f"Graph {self.name!r}: activation tensor {name!r} has no producer")
        filled = {
            name: replace(t, shape=tuple(t.shape), producer=producer.get(name), consumers=tuple(consumers[name]))
            for name, t in tensors.items()
        }
        object.__setattr__(self, "tensors", MappingProxyType(filled))
        object.__setattr__(self, "layers", tuple(self.layers))

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise WorkloadError(f"Graph {self.name!r} has no layer {name!r}")

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        return tuple(t for t in self.tensors.values() if t.kind is TensorKind.INPUT)

    @property
    def outputs(self) -> tuple[Tensor, ...]:
        """Activations nobody consumes: what the graph returns."""
        return tuple(t for t in self.tensors.values() if t.kind is TensorKind.ACTIVATION and not t.consumers)

    @property
    def quantized(self) -> bool:
        """Whether any tensor carries quantization parameters (a quantized import)."""
        return any(t.quant is not None for t in self.tensors.values())

    def layers_feeding(self, tensors: Iterable[str]) -> set[str]:
        """The names of the layers the tensors named depend on (their producers and those before them)."""
        needed: set[str] = set()
        stack = [self.tensors[name].producer for name in tensors]
        while stack:
            name = stack.pop()
            if name is None or name in needed:
                continue
            needed.add(name)
            stack.extend(self.tensors[t].producer for t in self.layer(name).inputs)
        return needed

    def float_layers(self) -> tuple[Layer, ...]:
        """Layers of a quantized graph that compute in floating point (``attrs["numerics"] == "float"``)."""
        return tuple(layer for layer in self.layers if layer.attrs.get("numerics") == "float")

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def weight_bytes(self) -> int:
        return sum(t.size_bytes for t in self.tensors.values() if t.is_constant)
