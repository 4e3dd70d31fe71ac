"""Functional execution of quantized CNN blocks beyond plain convolutions, against onnxruntime.

Models are written with onnx.helper (seeded weights) and quantized by onnxruntime's quantize_static on
a seeded calibration reader. A windowed average pool (``QLinearAveragePool``, or the QDQ form that
onnxruntime fuses into it) runs on the vector unit in bands of output rows, each command reading the
input rows its windows cover; its codes must equal onnxruntime's bit for bit, with the padding counted
(``count_include_pad=1``) or not, on designs and allocators that chunk the pool differently. A
squeeze-excite block's add or multiply by a ``1 x C x 1 x 1`` operand reads the run of that operand
each chunk of output elements combines with, and its sigmoid gate (``QLinearSigmoid``) looks codes up
in onnxruntime's table; both equal onnxruntime, dense and pruned 2:4 on sparse-nm's packed tiles.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import cache

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accel.commands import Compute, Vector
from accel.config import load
from accel.formats import Requantization
from mapper import MapOptions, map_graph
from mapper.layout import broadcast_positions, broadcast_span, to_storage
from sim.execute import ExecutionError, execute_graph
from sim.oracle import check_numerics, onnxruntime_outputs
from sim.reference import run_quantized
from workloads import load_onnx, sparsify
from workloads.quantize import calibration_inputs, prune_nm, quantize_model

pytest.importorskip("onnxruntime")


def _arch(preset: str, requant: Requantization = Requantization.FLOAT32_HALF_EVEN):  # type: ignore[no-untyped-def]
    arch = load(preset)
    return dataclasses.replace(arch, array=dataclasses.replace(arch.array, requant=requant))


def _model(nodes: list, weights: dict[str, np.ndarray], shape: tuple[int, ...]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _quantized(model: onnx.ModelProto, nm: str | None = None, **options):  # type: ignore[no-untyped-def]
    """(quantized model, its graph, a seeded float feed); with ``nm`` the float weights pruned to N:M first
    and the graph's weight layers marked N:M."""
    logging.disable(logging.WARNING)
    try:
        model = prune_nm(model, nm) if nm else model
        quantized = quantize_model(model, calibration_inputs(model, count=2, seed=1), **options)
    finally:
        logging.disable(logging.NOTSET)
    graph = load_onnx(quantized)
    return quantized, sparsify(graph, nm) if nm else graph, calibration_inputs(quantized, count=1, seed=7)[0]


# -- windowed average pools ------------------------------------------------------------------------

POOLS = {  # kernel, stride, pad, count_include_pad
    "3x3-s2-pad1-exclude": (3, 2, 1, 0),
    "3x3-s2-pad1-include": (3, 2, 1, 1),
    "3x3-s1-pad1-include": (3, 1, 1, 1),
    "3x3-s1-pad1-exclude": (3, 1, 1, 0),
    "2x2-s2": (2, 2, 0, 0),
    "2x2-s1-pad1-include": (2, 1, 1, 1),
}


@cache
def _pool_block(name: str, fmt: str = "qdq", activations: str = "uint8",  # type: ignore[no-untyped-def]
                nm: str | None = None):
    """conv 3x3 -> relu -> average pool -> conv 1x1 on two 30x21 images."""
    kernel, stride, pad, include = POOLS[name]
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("AveragePool", ["r"], ["a"], name="pool", kernel_shape=[kernel, kernel],
                              strides=[stride, stride], pads=[pad] * 4, count_include_pad=include),
             helper.make_node("Conv", ["a", "w2"], ["y"])]
    weights = {"w": 0.3 * rng.standard_normal((16, 3, 3, 3)).astype(np.float32),
               "w2": 0.3 * rng.standard_normal((4, 16, 1, 1)).astype(np.float32)}
    return _quantized(_model(nodes, weights, (2, 3, 30, 21)), nm, fmt=fmt, activations=activations)


def _pool_output(graph) -> str:  # type: ignore[no-untyped-def]
    (layer,) = [layer for layer in graph.layers if layer.op.value == "pool"]
    return layer.outputs[0]


@pytest.mark.parametrize("name", list(POOLS))
def test_the_integer_reference_averages_as_onnxruntime(name: str) -> None:
    quantized, graph, feed = _pool_block(name)
    pooled = _pool_output(graph)
    expected = onnxruntime_outputs(quantized, feed, tensors=[pooled])
    ours = run_quantized(graph, feed, outputs=[pooled, "y"])
    assert np.array_equal(ours[pooled], expected[pooled]), name
    assert np.array_equal(ours["y"], expected["y"])


@pytest.mark.parametrize("preset", ["gemmini", "sparse-nm"])
@pytest.mark.parametrize(("allocator", "spad"), [("none", None), ("none", 4096), ("greedy", None), ("greedy", 8192)])
@pytest.mark.parametrize("name", ["3x3-s2-pad1-exclude", "3x3-s1-pad1-include", "2x2-s2"])
def test_a_banded_average_pool_equals_onnxruntime(name: str, preset: str, allocator: str, spad: int | None) -> None:
    quantized, graph, feed = _pool_block(name)
    plan = map_graph(graph, _arch(preset), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    assert {m.layer: m.loop_order for m in plan.layers}["pool"] == "bands"
    check = check_numerics(quantized, graph, plan, inputs=feed)
    assert check.equal and check.requant == "float32-half-even", check.outputs
    if spad is not None:  # chunks of output rows, each with the input rows it reads
        assert sum(isinstance(c, Vector) and c.layer == "pool" for c in plan.commands) > 2


@pytest.mark.parametrize(("fmt", "activations"), [("qoperator", "uint8"), ("qdq", "int8")])
def test_qlinear_average_pool_and_signed_codes_equal_onnxruntime(fmt: str, activations: str) -> None:
    quantized, graph, feed = _pool_block("3x3-s2-pad1-include", fmt, activations)
    pooled = _pool_output(graph)
    plan = map_graph(graph, _arch("gemmini"), MapOptions(allocator="none", scratchpad_bytes=4096))
    expected = onnxruntime_outputs(quantized, feed, tensors=[pooled])
    ours = execute_graph(graph, plan, feed, outputs=[pooled, "y"])
    assert np.array_equal(ours[pooled], expected[pooled])
    assert np.array_equal(ours["y"], expected["y"])


def test_a_windowed_average_pool_in_another_rounding_mode_is_refused_by_name() -> None:
    _, graph, feed = _pool_block("2x2-s2")
    plan = map_graph(graph, _arch("gemmini", Requantization.TFLITE_DOUBLE), MapOptions())
    with pytest.raises(ExecutionError, match=r"^Layer 'pool' \(AveragePool\): a windowed average pool is modelled "
                                             r"in float32-half-even mode only, not the design's tflite-double$"):
        execute_graph(graph, plan, feed)


# -- element-wise layers with a broadcast operand (squeeze-excite) ---------------------------------

@cache
def _se_block(kind: str, scale_first: bool, nm: str | None = None):  # type: ignore[no-untyped-def]
    """conv 3x3 -> relu = r; s = GAP(r) (``add``), relu(conv 1x1(GAP(r))) (``mul``) or
    sigmoid(conv 1x1(GAP(r))) (``sigmoid``, a squeeze-excite gate); r + s or r * s (``scale_first``:
    the 1 x C x 1 x 1 operand first) -> conv 1x1."""
    rng = np.random.default_rng(0)
    weights = {"w": 0.3 * rng.standard_normal((16, 3, 3, 3)).astype(np.float32),
               "w2": 0.3 * rng.standard_normal((4, 16, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"])]
    if kind != "add":
        weights |= {"w1": 0.3 * rng.standard_normal((16, 16, 1, 1)).astype(np.float32),
                    "b1": 0.1 * rng.standard_normal(16).astype(np.float32)}
        nodes += [helper.make_node("Conv", ["g", "w1", "b1"], ["s0"]),
                  helper.make_node("Relu" if kind == "mul" else "Sigmoid", ["s0"], ["s"], name="gate")]
    scale = "g" if kind == "add" else "s"
    op = "Add" if kind == "add" else "Mul"
    nodes += [helper.make_node(op, [scale, "r"] if scale_first else ["r", scale], ["m"], name="se"),
              helper.make_node("Conv", ["m", "w2"], ["y"])]
    return _quantized(_model(nodes, weights, (1, 3, 20, 14)), nm)


@pytest.mark.parametrize("scale_first", [False, True], ids=["x-op-s", "s-op-x"])
@pytest.mark.parametrize("kind", ["add", "mul", "sigmoid"])
@pytest.mark.parametrize("preset", ["gemmini", "sparse-nm"])
@pytest.mark.parametrize(("allocator", "spad"), [("none", None), ("none", 4096), ("greedy", None), ("greedy", 8192)])
def test_an_add_or_multiply_by_a_per_channel_operand_equals_onnxruntime(kind: str, scale_first: bool, preset: str,
                                                                       allocator: str, spad: int | None) -> None:
    quantized, graph, feed = _se_block(kind, scale_first)
    assert sorted(graph.tensors[t].shape for t in graph.layer("se").inputs) == [(1, 16, 1, 1), (1, 16, 20, 14)]
    plan = map_graph(graph, _arch(preset), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    chunks = [c for c in plan.commands if isinstance(c, Vector) and c.layer == "se"]
    assert all(c.extent > 0 for c in chunks)  # runs of output elements, not byte shares
    if spad is not None:
        assert len(chunks) > 1
    check = check_numerics(quantized, graph, plan, inputs=feed)
    assert check.equal and not check.float_layers, check  # the whole block, the sigmoid gate too
    if allocator == "none":  # the layer's own codes, too
        expected = onnxruntime_outputs(quantized, feed, tensors=["m_QuantizeLinear_Output"])
        ours = execute_graph(graph, plan, feed, outputs=["m_QuantizeLinear_Output"])
        assert np.array_equal(ours["m_QuantizeLinear_Output"], expected["m_QuantizeLinear_Output"])



@pytest.mark.parametrize("seed", range(3))
def test_the_run_a_chunk_of_a_broadcast_operand_reads_is_what_numpy_broadcasts_onto_it(seed: int) -> None:
    """broadcast_positions / broadcast_span (found digit by digit, never listing the whole tensor) against
    numpy's broadcast of the operand's storage positions, over random shapes, storage orders and chunks."""
    rng = np.random.default_rng(seed)
    for _ in range(100):
        out = tuple(int(d) for d in rng.integers(1, 6, 4))
        shape = tuple(d if rng.random() < 0.5 else 1 for d in out)[int(rng.integers(0, 3)):]
        image, out_image = len(shape) == 4 and rng.random() < 0.5, bool(rng.random() < 0.5)
        count = int(np.prod(shape))
        position = np.empty(count, dtype=np.int64)
        position[to_storage(np.arange(count).reshape(shape), image=image)] = np.arange(count)
        expected = to_storage(np.broadcast_to(position.reshape(shape), out), image=out_image)
        lo = int(rng.integers(0, expected.size))
        hi = int(rng.integers(lo + 1, expected.size + 1))
        where = {"image": image, "out_image": out_image}
        assert np.array_equal(broadcast_positions(shape, out, lo, hi, **where), expected[lo:hi])
        assert broadcast_span(shape, out, lo, hi, **where) == (expected[lo:hi].min(), expected[lo:hi].max() + 1)

def _microsoft_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    """A model of ``graph`` using onnxruntime's ``com.microsoft`` operators (IR 8, as onnxruntime reads)."""
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def _qlinear_binary(op: str, scale_first: bool, small: tuple[int, ...], scales: np.ndarray,
                    zero_points: np.ndarray) -> onnx.ModelProto:
    """``QLinearAdd``/``QLinearMul`` of ``x`` (1 x 256 x 16 x 16 uint8 codes) and ``s`` (``small``)."""
    shapes = {"x": (1, 256, 16, 16), "s": small}
    first, second = ("s", "x") if scale_first else ("x", "s")
    inits = [numpy_helper.from_array(np.float32(v), n) for n, v in zip(("sa", "sb", "sy"), scales, strict=True)]
    inits += [numpy_helper.from_array(np.uint8(v), n) for n, v in zip(("za", "zb", "zy"), zero_points, strict=True)]
    node = helper.make_node(op, [first, "sa", "za", second, "sb", "zb", "sy", "zy"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "binary", [helper.make_tensor_value_info(n, TensorProto.UINT8, shapes[n])
                                                 for n in (first, second)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    return _microsoft_model(graph)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale_first", [False, True], ids=["x-op-s", "s-op-x"])
@pytest.mark.parametrize("small", [(1, 256, 1, 1), (1, 1, 16, 16)], ids=["per-channel", "per-pixel"])
@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_every_pair_of_codes_with_a_broadcast_operand_equals_onnxruntime(op: str, small: tuple[int, ...],
                                                                        scale_first: bool, seed: int) -> None:
    """``x`` and ``s`` pair every code with every other once (65,536 pairs), through the vector unit's
    broadcast read, in chunks. onnxruntime's broadcaster hands its kernel a per-channel ``s`` as one
    scalar per span of pixels, as the kernel's second operand (``fixed + b * rb``, not ``fma(b, rb,
    fixed)``; with ``s`` first the two swap roles: seed 2's scales round one pair differently if not),
    and a per-pixel ``s`` as spans like ``x``'s."""
    rng = np.random.default_rng(seed)
    model = _qlinear_binary(op, scale_first, small, rng.uniform(0.005, 0.05, 3), rng.integers(0, 256, 3))
    codes = np.arange(256, dtype=np.uint8)
    if small[1] == 256:  # channel c: every code against s[c]
        feed = {"x": np.tile(codes, (256, 1)).reshape(1, 256, 16, 16), "s": codes.reshape(small)}
    else:  # channel c: code c against every s
        feed = {"x": np.repeat(codes, 256).reshape(1, 256, 16, 16), "s": codes.reshape(small)}
    graph = load_onnx(model)
    plan = map_graph(graph, _arch("gemmini"), MapOptions(scratchpad_bytes=16384))
    assert sum(isinstance(c, Vector) for c in plan.commands) > 1
    assert np.array_equal(execute_graph(graph, plan, feed)["y"], onnxruntime_outputs(model, feed)["y"])


# -- quantized sigmoid (QLinearSigmoid) ------------------------------------------------------------

def _qlinear_sigmoid(signed: bool, scales: np.ndarray, zero_points: np.ndarray) -> onnx.ModelProto:
    """``QLinearSigmoid`` of ``x`` (1 x 256 codes, int8 or uint8)."""
    dtype, codes = (TensorProto.INT8, np.int8) if signed else (TensorProto.UINT8, np.uint8)
    inits = [numpy_helper.from_array(np.float32(scales[0]), "xs"), numpy_helper.from_array(codes(zero_points[0]), "xz"),
             numpy_helper.from_array(np.float32(scales[1]), "ys"), numpy_helper.from_array(codes(zero_points[1]), "yz")]
    node = helper.make_node("QLinearSigmoid", ["x", "xs", "xz", "ys", "yz"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "sigmoid", [helper.make_tensor_value_info("x", dtype, (1, 256))],
                              [helper.make_tensor_value_info("y", dtype, None)], inits)
    return _microsoft_model(graph)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("signed", [False, True], ids=["uint8", "int8"])
def test_every_code_through_a_quantized_sigmoid_equals_onnxruntime(signed: bool, seed: int) -> None:
    """The vector unit looks each code up in the layer's table, which the host builds as onnxruntime
    does (every code dequantized, through MLAS's FMA3 logistic, quantized): all 256 codes, in chunks."""
    rng = np.random.default_rng(seed)
    low = -128 if signed else 0
    model = _qlinear_sigmoid(signed, [rng.uniform(0.01, 0.2), rng.uniform(0.002, 0.01)],
                             rng.integers(low, low + 256, 2))
    feed = {"x": np.arange(low, low + 256).astype(np.int8 if signed else np.uint8).reshape(1, 256)}
    graph = load_onnx(model)
    plan = map_graph(graph, _arch("gemmini"), MapOptions(scratchpad_bytes=256))
    assert sum(isinstance(c, Vector) for c in plan.commands) > 1
    assert np.array_equal(execute_graph(graph, plan, feed)["y"], onnxruntime_outputs(model, feed)["y"])


def test_a_quantized_sigmoid_in_another_rounding_mode_is_refused_by_name() -> None:
    _, graph, feed = _se_block("sigmoid", False)
    assert graph.layer("gate").attrs["numerics"] == "integer"  # onnxruntime's QDQ fusion: QLinearSigmoid
    plan = map_graph(graph, _arch("gemmini", Requantization.TFLITE_DOUBLE), MapOptions())
    with pytest.raises(ExecutionError, match=r"^Layer 'gate' \(Sigmoid\): a quantized sigmoid is modelled in "
                                             r"float32-half-even mode only, not the design's tflite-double$"):
        execute_graph(graph, plan, feed)


# -- pruned 2:4 on sparse-nm -----------------------------------------------------------------------

@pytest.mark.parametrize(("allocator", "spad"), [("none", None), ("greedy", 8192)])
@pytest.mark.parametrize("block", ["avgpool", "se-add", "se-sigmoid"])
def test_two_four_pruned_blocks_run_on_packed_tiles_and_equal_onnxruntime(block: str, allocator: str,
                                                                         spad: int | None) -> None:
    quantized, graph, feed = (_pool_block("3x3-s2-pad1-include", nm="2:4") if block == "avgpool" else
                              _se_block(block.removeprefix("se-"), block == "se-add", nm="2:4"))
    plan = map_graph(graph, _arch("sparse-nm"), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    assert any(isinstance(c, Compute) and c.sparsity is not None for c in plan.commands)
    check = check_numerics(quantized, graph, plan, inputs=feed)
    assert check.equal and not check.float_layers, check
