"""Quantized ONNX test models without downloads: seeded weights, seeded calibration, onnxruntime's quantizer.

* :func:`fill_random_weights` gives a model whose weights were stripped (the shared ONNX graphs'
  initializers point at external files that do not exist) seeded random values of the right shapes:
  He-normal for the weights of ``Conv``, ``Gemm`` and ``MatMul``, ``N(0, 0.01^2)`` for their biases,
  ``N(0, 0.1^2)`` otherwise. Initializers whose data is in the file are kept.
* :func:`calibration_inputs` draws ``count`` seeded ``N(0, 1)`` inputs for every graph input.
* :func:`quantize_model` runs ``onnxruntime.quantization.quantize_static`` on a float model with those
  inputs as calibration data (MinMax), in the ``"qdq"`` or ``"qoperator"`` format, per tensor or per
  channel, with int8 weights and int8 or uint8 activations, and returns the quantized model.
* :func:`prune_nm` prunes the float weights of every ``Conv``, ``Gemm`` and ``MatMul`` to N:M along
  their reduction (before quantization; onnxruntime's symmetric int8 weights keep the zeros).
* :func:`with_input_shape` gives a model new graph-input shapes (e.g. a smaller image for a CNN whose
  head is a global pool), dropping the stale inferred shapes.
* :func:`zoo_model` and :func:`shared_model` put the steps together for a zoo graph
  (:func:`workloads.onnx_export.export_onnx`) or a shared ONNX graph.

onnxruntime is a test dependency (the ``dev`` extra): it is imported only when
:func:`quantize_model` runs, and its absence raises :class:`~accel.errors.WorkloadError`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from accel.errors import WorkloadError

__all__ = ["fill_random_weights", "calibration_inputs", "quantize_model", "zoo_model", "shared_model",
           "with_input_shape", "prune_nm", "FORMATS"]

_log = logging.getLogger(__name__)

#: The two layouts onnxruntime's quantizer writes.
FORMATS = ("qdq", "qoperator")


def fill_random_weights(model: onnx.ModelProto, *, seed: int = 0) -> onnx.ModelProto:
    """A copy of ``model`` whose float initializers without data hold seeded random values."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    rng = np.random.default_rng(seed)
    roles: dict[str, tuple[str, int, dict[str, int]]] = {}
    for node in model.graph.node:
        attrs = {a.name: a.i for a in node.attribute if a.type == onnx.AttributeProto.INT}
        for index, name in enumerate(node.input):
            roles.setdefault(name, (node.op_type, index, attrs))
    filled = []
    for init in model.graph.initializer:
        if init.data_location != TensorProto.EXTERNAL:
            filled.append(init)
            continue
        if init.data_type != TensorProto.FLOAT:
            raise WorkloadError(f"Initializer {init.name!r} has no data and is not float32 (type {init.data_type});"
                                " cannot fill it with random values")
        shape = tuple(int(d) for d in init.dims)
        op, index, attrs = roles.get(init.name, ("", -1, {}))
        if op in ("Conv", "Gemm", "MatMul") and index == 1 and len(shape) >= 2:
            fan_in = shape[0] if op == "MatMul" or (op == "Gemm" and not attrs.get("transB", 0)) \
                else int(np.prod(shape[1:]))
            std = float(np.sqrt(2.0 / fan_in))
        elif op in ("Conv", "Gemm") and index == 2:
            std = 0.01
        else:
            std = 0.1
        value = (std * rng.standard_normal(shape)).astype(np.float32)
        filled.append(numpy_helper.from_array(value, init.name))
    del model.graph.initializer[:]
    model.graph.initializer.extend(filled)
    return model


def prune_nm(model: onnx.ModelProto, pattern: str) -> onnx.ModelProto:
    """A copy of ``model`` whose ``Conv``/``Gemm``/``MatMul`` weight initializers are N:M sparse along the reduction.

    The reduction of a ``Conv`` weight ``(OC, C/g, KH, KW)`` is ``(c, kh, kw)`` per output channel; of a
    ``Gemm`` weight ``K`` (axis 1 with ``transB``, else 0); of a ``MatMul`` weight its axis 0. In every
    group of ``M`` consecutive reduction elements (the last one may be shorter) all but the ``N`` largest
    magnitudes become zero; ties keep the lower index (as ``sim.numerics.nm_prune``).
    """
    parts = str(pattern).split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or not 1 <= int(parts[0]) < int(parts[1]):
        raise WorkloadError(f"N:M pattern must look like '2:4' with 1 <= N < M, not {pattern!r}")
    n, m = int(parts[0]), int(parts[1])
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2 or node.input[1] not in inits:
            continue
        init = inits[node.input[1]]
        w = numpy_helper.to_array(init)
        if node.op_type == "Conv":
            rows = w.reshape(w.shape[0], -1)  # (OC, k)
        elif node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            rows = w
        else:
            rows = w.T
        pruned = _prune_rows(rows, n, m)
        value = pruned.reshape(w.shape) if node.op_type == "Conv" else (pruned if rows is w else pruned.T)
        init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value).astype(w.dtype), init.name))
    return model


def _prune_rows(rows: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the ``n`` largest magnitudes of every ``m`` consecutive values of each row (ties: lower index)."""
    count, k = rows.shape
    padded = np.zeros((count, -(-k // m) * m), dtype=rows.dtype)
    padded[:, :k] = rows
    groups = padded.reshape(count, -1, m)
    order = np.argsort(-np.abs(groups), axis=-1, kind="stable")
    keep = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(keep, order[..., :n], True, axis=-1)
    return np.where(keep, groups, 0).reshape(count, -1)[:, :k]


def with_input_shape(model: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs named in ``shapes`` have those shapes (value infos dropped)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    names = {vi.name for vi in model.graph.input}
    unknown = sorted(set(shapes) - names)
    if unknown:
        raise WorkloadError(f"Model {model.graph.name!r} has no graph input {unknown[0]!r}")
    for vi in model.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[vi.name]:
                dims.add().dim_value = int(d)
    del model.graph.value_info[:]
    for vi in model.graph.output:
        vi.type.tensor_type.ClearField("shape")
    return model


def calibration_inputs(model: onnx.ModelProto, *, count: int = 4, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``count`` feeds of seeded ``N(0, 1)`` float32 values for every (non-initializer) graph input."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    shapes = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        dims = vi.type.tensor_type.shape.dim
        if not all(d.HasField("dim_value") for d in dims):
            raise WorkloadError(f"Graph input {vi.name!r} has a symbolic shape; give the model a fixed one")
        shapes[vi.name] = tuple(d.dim_value for d in dims)
    return [{name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
            for _ in range(count)]


def quantize_model(model: onnx.ModelProto, calibration: list[Mapping[str, np.ndarray]], *, fmt: str = "qdq",
                   per_channel: bool = False, activations: str = "uint8", reduce_range: bool = True) -> onnx.ModelProto:
    """``model`` quantized by ``onnxruntime.quantization.quantize_static`` (MinMax calibration).

    ``fmt`` is ``"qdq"`` or ``"qoperator"``; weights are int8 (symmetric), ``activations`` ``"uint8"``
    (onnxruntime's default) or ``"int8"``. ``reduce_range`` (the default) quantizes weights to 7 bits,
    as onnxruntime advises for x86-64 CPUs without VNNI: their AVX2 u8s8 kernels add pairs of
    products in saturating 16-bit arithmetic (``vpmaddubsw``), so full-range int8 weights make
    onnxruntime's own result depend on the CPU it runs on; 7-bit weights keep every pair in range and
    onnxruntime exact everywhere (the accelerator's arithmetic does not need it).
    """
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise WorkloadError("quantizing a model needs onnxruntime (pip install onnxruntime, or the 'dev'"
                            " extra)") from None
    if fmt not in FORMATS:
        raise WorkloadError(f"Quantization format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if activations not in ("uint8", "int8"):
        raise WorkloadError(f"Activations must be 'uint8' or 'int8', not {activations!r}")
    if not calibration:
        raise WorkloadError("Quantization needs at least one calibration input")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([dict(f) for f in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(prefix="accel-quantize-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "quantized.onnx"
        onnx.save(model, src)
        quantize_static(
            str(src), str(dst), _Reader(),
            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            reduce_range=reduce_range,
        )
        quantized = onnx.load(str(dst))
    _log.info("quantized %s (%s, %s, %s activations): %d nodes", model.graph.name, fmt,
              "per channel" if per_channel else "per tensor", activations, len(quantized.graph.node))
    return quantized


def zoo_model(name: str, *, fmt: str = "qdq", per_channel: bool = False, activations: str = "uint8",
              seed: int = 0, calibration: int = 4, nm: str | None = None) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """``(float model, quantized model)`` of zoo graph ``name`` with seeded weights and calibration;
    ``nm`` prunes the float weights first, as :func:`shared_model` does."""
    from workloads import zoo
    from workloads.onnx_export import export_onnx

    model = export_onnx(zoo.build(name), seed=seed)
    if nm:
        model = prune_nm(model, nm)
    feeds = calibration_inputs(model, count=calibration, seed=seed + 1)
    return model, quantize_model(model, feeds, fmt=fmt, per_channel=per_channel, activations=activations)


def shared_model(path: str | Path, *, fmt: str = "qdq", per_channel: bool = False, activations: str = "uint8",
                 seed: int = 0, calibration: int = 4, input_shapes: Mapping[str, tuple[int, ...]] | None = None,
                 nm: str | None = None) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """``(float model, quantized model)`` of the weight-stripped ONNX file at ``path``.

    ``input_shapes`` replaces graph-input shapes first (:func:`with_input_shape`); ``nm`` (e.g. ``"2:4"``)
    prunes the float weights before quantization (:func:`prune_nm`), so the float model returned is the
    pruned dense one.
    """
    model = fill_random_weights(onnx.load(str(path), load_external_data=False), seed=seed)
    if input_shapes:
        model = with_input_shape(model, input_shapes)
    if nm:
        model = prune_nm(model, nm)
    feeds = calibration_inputs(model, count=calibration, seed=seed + 1)
    return model, quantize_model(model, feeds, fmt=fmt, per_channel=per_channel, activations=activations)
