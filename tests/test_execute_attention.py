"""Functional execution of attention's integer pieces, bit for bit against onnxruntime.

Small QDQ models are built here (workloads.builder, seeded weights and calibration, onnxruntime's
quantize_static): the scores of attention, a matmul of two activations (``q @ k`` with ``q`` of
``[s, d]`` and ``k`` already ``[d, s]``, and batched over heads, ``[h, s, d] x [h, d, s]``), each
operand computed by a layer with constant weights. Both operands carry zero points, so the int32
product needs the zero-point cross terms (sim.reference.zero_point_terms); the mapped program must
give onnxruntime's codes on every preset and allocator, with the operands streamed, resident or
spilled as partial sums. Then the rest of attention's integer part: bias adds and the scalar scale
(element-wise with a broadcast constant), ``q @ k^T`` with an ONNX Transpose read through by the
matmul, split heads (views that reorder bytes, read through), and the integer prefix of a graph
whose softmax stays float, up to the zoo's BERT-base layer.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import cache

import numpy as np
import pytest

from accel.commands import Compute, Load, Move, Store, Vector
from accel.config import load
from accel.formats import NumberFormat, Requantization
from mapper import MapOptions, map_graph
from mapper.layout import image_tensors
from sim.execute import ExecutionError, execute_graph
from sim.numerics import gemm_array
from sim.oracle import onnxruntime_outputs
from sim.reference import raw_code_matmul, zero_point_terms
from workloads.builder import GraphBuilder
from workloads.graph import Graph
from workloads.onnx_export import export_onnx
from workloads.onnx_import import load_onnx
from workloads.quantize import calibration_inputs, quantize_model, zoo_model
from workloads.sparsity import sparsify

pytest.importorskip("onnxruntime")

SEQ, DIM, HEADS = 20, 40, 3


def _quantized(graph: Graph, names: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """(imported QDQ graph, float feed, onnxruntime's outputs and tensors ``names``) of ``graph`` with
    seeded weights."""
    logging.disable(logging.WARNING)
    try:
        model = export_onnx(graph, seed=3)
        quantized = quantize_model(model, calibration_inputs(model, count=2, seed=1))
    finally:
        logging.disable(logging.NOTSET)
    feed = calibration_inputs(quantized, count=1, seed=9)[0]
    return load_onnx(quantized), feed, onnxruntime_outputs(quantized, feed, tensors=names)


@cache
def _scores(batched: bool):  # type: ignore[no-untyped-def]
    """``q = x W_q``, ``k = y W_k`` (``[d, s]``), ``scores = q @ k``, then a linear layer that reads the scores
    (so that they may stay on chip); batched: ``HEADS`` heads of each."""
    b = GraphBuilder("scores")
    lead = (HEADS,) if batched else ()
    x = b.input("x", (*lead, SEQ, DIM))
    y = b.input("y", (*lead, DIM, 9))
    q = b.linear(x, DIM, not batched, "q")  # 2-D: Gemm with its int32 bias; 3-D: MatMul
    k = b.linear(y, SEQ, not batched, "k")
    scores = b.matmul(q, k, "scores")
    b.linear(scores, 8, not batched, "out")
    return _quantized(b.build())


def _arch(preset: str, accumulator_bytes: int | None = None):  # type: ignore[no-untyped-def]
    arch = load(preset)  # onnxruntime's requantization, so the design computes what onnxruntime does
    arch = dataclasses.replace(arch, array=dataclasses.replace(arch.array, requant=Requantization.FLOAT32_HALF_EVEN))
    if accumulator_bytes is not None:
        arch = dataclasses.replace(arch, accumulator=dataclasses.replace(arch.accumulator,
                                                                          size_bytes=accumulator_bytes))
    return arch


def _assert_equal(ours: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
        assert np.array_equal(ours[name], value), f"{name}: max difference {np.abs(ours[name] - value).max()}"


ALLOCATORS = (("none", None), ("greedy", None), ("greedy", 4096), ("ilp", 2048), ("greedy", 1024))


@pytest.mark.parametrize("batched", [False, True], ids=["2d", "3d"])
@pytest.mark.parametrize("preset", ["gemmini", "fpga-small"])
@pytest.mark.parametrize(("allocator", "spad"), ALLOCATORS)
def test_a_matmul_of_two_activations_equals_onnxruntime_bit_for_bit(batched: bool, preset: str, allocator: str,
                                                                    spad: int | None) -> None:
    graph, feed, expected = _scores(batched)
    scores = graph.layer("scores")
    operands = [graph.tensors[t] for t in scores.inputs]
    assert not any(t.is_constant for t in operands) and all(t.quant.zero_point[0] != 0 for t in operands)
    plan = map_graph(graph, _arch(preset), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    assert any(isinstance(c, Compute) and c.layer == "scores" for c in plan.commands)
    _assert_equal(execute_graph(graph, plan, feed), expected)


def test_the_scores_run_from_resident_operands_and_stay_on_chip() -> None:
    graph, feed, expected = _scores(True)
    plan = map_graph(graph, _arch("fpga-small"), MapOptions(allocator="greedy"))
    computes = [c for c in plan.commands if isinstance(c, Compute) and c.layer == "scores"]
    assert all(c.weight_block is not None for c in computes)  # k read in place, a block of its rows per tile
    assert not any(isinstance(c, Load) and c.layer == "scores" for c in plan.commands)
    assert any(isinstance(c, Move) and c.layer == "scores" for c in plan.commands)
    _assert_equal(execute_graph(graph, plan, feed), expected)


@pytest.mark.parametrize("preset", ["gemmini", "fpga-small"])
def test_partial_sums_of_the_scores_spill_to_dram_and_come_back(preset: str) -> None:
    """Fold-outer with the stream in chunks (whichever array: fpga-small's splits no fold, so it is
    given one that does)."""
    graph, feed, expected = _scores(True)
    arch = _arch(preset, accumulator_bytes=512)
    arch = dataclasses.replace(arch, array=dataclasses.replace(arch.array, split_folds=True))
    plan = map_graph(graph, arch,
                     MapOptions(dataflow="ws", loop_order="fold-outer", scratchpad_bytes=2048))
    assert any(isinstance(c, Store) and c.raw and c.layer == "scores" for c in plan.commands)
    _assert_equal(execute_graph(graph, plan, feed), expected)


def test_a_wrong_address_of_the_second_operand_changes_the_scores() -> None:
    graph, feed, expected = _scores(False)
    plan = map_graph(graph, _arch("gemmini"), MapOptions(allocator="none"))
    load_k = next(c for c in plan.commands if isinstance(c, Load) and c.layer == "scores"
                  and c.tensor == graph.layer("scores").inputs[1])
    bad = dataclasses.replace(load_k, dram_addr=load_k.dram_addr + 1)
    broken = dataclasses.replace(plan, commands=tuple(bad if c.id == bad.id else c for c in plan.commands))
    (name, good), = expected.items()
    assert not np.array_equal(execute_graph(graph, broken, feed)[name], good)


@cache
def _biased_scores():  # type: ignore[no-untyped-def]
    """BERT's attention scores on ``HEADS`` heads: ``q = x W_q + b_q``, ``k = y W_k + b_k`` (each a MatMul and
    an Add of a bias vector over the last axis in ONNX), ``scores = (q @ k) * c`` with a scalar ``c``."""
    b = GraphBuilder("biased_scores")
    x = b.input("x", (HEADS, SEQ, DIM))
    y = b.input("y", (HEADS, DIM, 9))
    scores = b.matmul(b.linear(x, DIM, True, "q"), b.linear(y, SEQ, True, "k"), "scores")
    b.mul(scores, b.constant("scale", ()), "scale_mul")
    return _quantized(b.build())


@pytest.mark.parametrize("preset", ["gemmini", "fpga-small"])
@pytest.mark.parametrize(("allocator", "spad"), ALLOCATORS)
def test_bias_adds_and_a_scalar_multiply_equal_onnxruntime_bit_for_bit(preset: str, allocator: str,
                                                                       spad: int | None) -> None:
    graph, feed, expected = _biased_scores()
    constants = {layer.attrs["fn"]: graph.tensors[layer.inputs[1]] for layer in graph.layers
                 if layer.op.value == "elementwise"}
    assert constants["add"].is_constant and constants["add"].shape in ((DIM,), (SEQ,))  # a bias over the last axis
    assert constants["mul"].is_constant and constants["mul"].shape == ()
    plan = map_graph(graph, _arch(preset), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    _assert_equal(execute_graph(graph, plan, feed), expected)


def test_a_chunk_applies_the_bias_of_its_own_elements() -> None:
    """Chunks of a tight scratchpad start inside rows: each element gets the bias of its column."""
    graph, feed, expected = _biased_scores()
    plan = map_graph(graph, _arch("gemmini"), MapOptions(allocator="none", scratchpad_bytes=896))
    chunks = [c for c in plan.commands if isinstance(c, Vector) and c.layer == "q.bias"]
    assert len(chunks) > 1 and any(c.origin % DIM for c in chunks)
    _assert_equal(execute_graph(graph, plan, feed), expected)


def test_a_multiply_of_two_activations_equals_onnxruntime() -> None:
    b = GraphBuilder("gate")
    x = b.input("x", (SEQ, DIM))
    b.mul(b.linear(x, DIM, True, "a"), b.linear(x, DIM, True, "b"), "gate")
    graph, feed, expected = _quantized(b.build())
    plan = map_graph(graph, _arch("fpga-small"), MapOptions(allocator="greedy", scratchpad_bytes=2048))
    _assert_equal(execute_graph(graph, plan, feed), expected)


def test_a_multiply_in_a_mode_it_is_not_modelled_in_is_refused_by_name() -> None:
    graph, feed, _ = _biased_scores()
    arch = load("fpga-small")  # tflite-double
    plan = map_graph(graph, arch, MapOptions())
    with pytest.raises(ExecutionError, match=r"^Layer 'scale_mul' \(Mul\): a quantized multiply is modelled in "
                                             r"float32-half-even mode only, not the design's tflite-double$"):
        execute_graph(graph, plan, feed)


@cache
def _x_times_y_transposed(batched: bool):  # type: ignore[no-untyped-def]
    """``q @ k^T`` with ``q``, ``k`` of ``[s, d]`` (batched: ``[h, s, d]``), ``k^T`` an ONNX Transpose."""
    b = GraphBuilder("x_yt")
    lead = (HEADS,) if batched else ()
    x = b.input("x", (*lead, SEQ, DIM))
    k = b.linear(x, DIM, True, "k")
    k_t = b.transpose(k, (*range(len(lead)), len(lead) + 1, len(lead)), "k_t")
    b.matmul(b.linear(x, DIM, True, "q"), k_t, "scores")
    return _quantized(b.build())


@pytest.mark.parametrize("batched", [False, True], ids=["2d", "3d"])
@pytest.mark.parametrize("preset", ["gemmini", "fpga-small"])
@pytest.mark.parametrize(("allocator", "spad"), ALLOCATORS)
def test_x_times_y_transposed_equals_onnxruntime_bit_for_bit(batched: bool, preset: str, allocator: str,
                                                            spad: int | None) -> None:
    graph, feed, expected = _x_times_y_transposed(batched)
    assert graph.layer("k_t").attrs["fn"] == "transpose"
    plan = map_graph(graph, _arch(preset), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    _assert_equal(execute_graph(graph, plan, feed), expected)


def test_the_transpose_costs_no_command_the_matmul_loads_rows_of_its_input() -> None:
    """The array takes the second operand's tile transposed: its load is ``tn`` rows of ``tk`` bytes of ``k``."""
    graph, feed, expected = _x_times_y_transposed(False)
    plan = map_graph(graph, _arch("gemmini"), MapOptions(scratchpad_bytes=1024))
    assert not any(c.layer == "k_t" for c in plan.commands)
    loads = [c for c in plan.commands if isinstance(c, Load) and c.tensor == "k_t_QuantizeLinear_Output"]
    computes = {c.id: c for c in plan.commands if isinstance(c, Compute) and c.layer == "scores"}
    for load_k in loads:
        compute = next(c for c in computes.values() if load_k.id in c.deps)
        assert load_k.dram is not None and (load_k.dram.rows, load_k.dram.row_bytes) == (compute.n, compute.k)
        assert load_k.dram.row_stride == DIM  # rows of k, each a token's DIM codes
    _assert_equal(execute_graph(graph, plan, feed), expected)


def test_a_transpose_read_other_than_as_a_matmul_second_operand_is_refused_by_name() -> None:
    b = GraphBuilder("xt_y")
    x = b.input("x", (SEQ, DIM))
    b.linear(b.transpose(b.linear(x, DIM, True, "k"), (1, 0), "k_t"), 8, True, "out")
    graph, feed, _ = _quantized(b.build())
    plan = map_graph(graph, _arch("gemmini"), MapOptions())
    with pytest.raises(ExecutionError, match=r"^Layer 'k_t' \(Transpose\) reorders bytes in storage order"):
        execute_graph(graph, plan, feed)


@cache
def _attention_with_softmax():  # type: ignore[no-untyped-def]
    """Scaled scores ``(q @ k^T) * c``, a float Softmax (between onnxruntime's DequantizeLinear and
    QuantizeLinear), then ``probs @ v``: (graph, feed, onnxruntime's value of every tensor in SOFTMAX_PREFIX)."""
    b = GraphBuilder("attention")
    x = b.input("x", (HEADS, SEQ, DIM))
    k_t = b.transpose(b.linear(x, DIM, True, "k"), (0, 2, 1), "k_t")
    scores = b.mul(b.matmul(b.linear(x, DIM, True, "q"), k_t, "scores"), b.constant("scale", ()), "scale_mul")
    b.matmul(b.softmax(scores, -1, "softmax"), b.linear(x, DIM, True, "v"), "context")
    return _quantized(b.build(), SOFTMAX_PREFIX)


SOFTMAX_PREFIX = ("scale_mul_QuantizeLinear_Output", "v_QuantizeLinear_Output")  # the scaled scores, v's codes


@pytest.mark.parametrize("preset", ["gemmini", "fpga-small"])
@pytest.mark.parametrize(("allocator", "spad"), [("none", None), ("greedy", 4096), ("ilp", 2048)])
def test_the_integer_prefix_before_a_float_softmax_equals_onnxruntime(preset: str, allocator: str,
                                                                      spad: int | None) -> None:
    graph, feed, theirs = _attention_with_softmax()
    assert [layer.name for layer in graph.float_layers()] == ["softmax"]
    plan = map_graph(graph, _arch(preset), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    ours = execute_graph(graph, plan, feed, outputs=SOFTMAX_PREFIX)
    _assert_equal(ours, {name: theirs[name] for name in SOFTMAX_PREFIX})


def test_a_float_layer_the_outputs_depend_on_is_refused_by_name() -> None:
    graph, feed, _ = _attention_with_softmax()
    plan = map_graph(graph, _arch("gemmini"), MapOptions())
    with pytest.raises(ExecutionError, match=r"^Graph 'attention' computes in floating point in 'softmax' \(Softmax\)"):
        execute_graph(graph, plan, feed)  # the graph's output, context, needs the softmax


def test_a_tensor_that_stays_on_chip_cannot_be_read_from_dram() -> None:
    graph, feed, _ = _attention_with_softmax()
    plan = map_graph(graph, _arch("gemmini"), MapOptions(allocator="greedy"))
    with pytest.raises(ExecutionError, match=r"^Tensor 'scale_mul_QuantizeLinear_Output' stays on chip in this plan"):
        execute_graph(graph, plan, feed, outputs=SOFTMAX_PREFIX)


HEAD_PREFIX = ("scale_mul_QuantizeLinear_Output", "v.heads_QuantizeLinear_Output")


@cache
def _multi_head_attention():  # type: ignore[no-untyped-def]
    """BERT's attention at a small size: projections, the head split (a reshape and a transpose of each),
    ``k^T`` (a transpose of k's heads), the scaled scores, a float softmax, the context and the merge."""
    seq, dim, heads = 16, 32, 4
    b = GraphBuilder("multi_head_attention")
    x = b.input("hidden", (1, seq, dim))

    def split(t: str, name: str) -> str:
        return b.transpose(b.reshape(t, (1, seq, heads, dim // heads), f"{name}.split"), (0, 2, 1, 3),
                           f"{name}.heads")

    q, k, v = (split(b.linear(x, dim, name=name), name) for name in "qkv")
    scores = b.mul(b.matmul(q, b.transpose(k, (0, 1, 3, 2), "k_t"), "scores"), b.constant("scale", (1,)),
                   "scale_mul")
    context = b.transpose(b.matmul(b.softmax(scores, -1, "softmax"), v, "context"), (0, 2, 1, 3), "merge")
    b.linear(b.reshape(context, (1, seq, dim), "merge_heads"), dim, name="out")
    return _quantized(b.build(), HEAD_PREFIX)


@pytest.mark.parametrize("preset", ["gemmini", "fpga-small"])
@pytest.mark.parametrize(("allocator", "spad"), [("none", None), ("none", 1024), ("greedy", 4096), ("ilp", 2048)])
def test_the_scores_of_split_heads_equal_onnxruntime(preset: str, allocator: str, spad: int | None) -> None:
    """q's heads and k^T are views of q and k that reorder bytes: the scores' tiles read them through."""
    graph, feed, theirs = _multi_head_attention()
    plan = map_graph(graph, _arch(preset), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    assert not any(c.layer in ("q.heads", "k.heads", "k_t") for c in plan.commands)  # views: no copies
    names = HEAD_PREFIX if allocator == "none" else HEAD_PREFIX[:1]  # (v's heads may stay on chip)
    _assert_equal(execute_graph(graph, plan, feed, outputs=names), {name: theirs[name] for name in names})


def test_reading_the_heads_as_if_they_were_stored_changes_the_scores() -> None:
    """The loads of q's heads name rows of q (a head's columns, a token's row apart): read as a block of
    a stored ``heads x seq x d`` tensor instead, the scores differ."""
    graph, feed, theirs = _multi_head_attention()
    plan = map_graph(graph, _arch("gemmini"), MapOptions(allocator="none"))
    load_q = next(c for c in plan.commands if isinstance(c, Load) and c.tensor == "q.heads_QuantizeLinear_Output")
    assert load_q.dram is not None and load_q.dram.row_stride == 32  # a token's row of q
    flat = dataclasses.replace(load_q, dram=dataclasses.replace(load_q.dram, row_stride=load_q.dram.row_bytes,
                                                                plane_stride=16 * load_q.dram.row_bytes))
    broken = dataclasses.replace(plan, commands=tuple(flat if c.id == flat.id else c for c in plan.commands))
    name = HEAD_PREFIX[0]
    assert np.array_equal(execute_graph(graph, plan, feed, outputs=[name])[name], theirs[name])
    assert not np.array_equal(execute_graph(graph, broken, feed, outputs=[name])[name], theirs[name])


@cache
def _zoo_bert(nm: str | None = None) -> tuple[Graph, dict, object]:
    """The zoo's BERT-base encoder layer (sequence 128, 12 heads) as onnxruntime's QDQ model (with
    ``nm``, its float weights pruned to N:M first and its weight-bearing layers marked N:M), imported,
    with a seeded feed and the model."""
    logging.disable(logging.WARNING)
    try:
        float_model, quantized = zoo_model("bert_base_layer", calibration=1, nm=nm)
    finally:
        logging.disable(logging.NOTSET)
    graph = load_onnx(quantized)
    return (sparsify(graph, nm) if nm else graph), calibration_inputs(float_model, count=1, seed=3)[0], quantized


BERT_PREFIX = ["attention.scale_mul_QuantizeLinear_Output", "attention.v.heads_QuantizeLinear_Output"]


# every preset and allocator, at the whole scratchpad and at sizes that make the layers tile and spill
# (fpga-small's 4x4 array runs ~100,000 commands per plan: one case per allocator)
@pytest.mark.parametrize(("preset", "allocator", "spad"), [
    *[(p, a, s) for p in ("gemmini", "sparse-nm") for a, s in
      (("none", None), ("none", 16384), ("greedy", 32768), ("firstfit", None), ("ilp", 16384))],
    ("fpga-small", "none", None), ("fpga-small", "greedy", 32768), ("fpga-small", "firstfit", None),
    pytest.param("fpga-small", "ilp", 16384, marks=pytest.mark.slow)])
def test_the_zoo_bert_layer_runs_bit_exactly_up_to_its_float_softmax(preset: str, allocator: str,
                                                                     spad: int | None) -> None:
    """Projections, biases, head split, scores and their scale, executed command by command, equal
    onnxruntime's; the softmax after them is float in onnxruntime's model, and refused by name."""
    graph, feed, quantized = _zoo_bert()
    plan = map_graph(graph, _arch(preset), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    stored = {c.tensor for c in plan.commands if isinstance(c, Store)}
    names = [name for name in BERT_PREFIX if name in stored]  # (an allocator may keep v's heads on chip)
    assert BERT_PREFIX[0] in names
    theirs = onnxruntime_outputs(quantized, feed, tensors=names)
    _assert_equal(execute_graph(graph, plan, feed, outputs=names), {name: theirs[name] for name in names})
    if allocator == "none" and spad is None:
        with pytest.raises(ExecutionError, match=r"computes in floating point in 'attention.softmax' \(Softmax\)"):
            execute_graph(graph, plan, feed)


@pytest.mark.parametrize(("allocator", "spad"), [("none", None), ("greedy", 32768), ("ilp", 16384)])
def test_the_zoo_bert_layer_with_two_four_weights_runs_compressed_up_to_its_softmax(allocator: str,
                                                                                    spad: int | None) -> None:
    """Pruned to 2:4 before quantization, on sparse-nm: the projections run on packed tiles and the
    prefix equals onnxruntime's on the pruned dense model."""
    graph, feed, quantized = _zoo_bert("2:4")
    plan = map_graph(graph, _arch("sparse-nm"), MapOptions(allocator=allocator, scratchpad_bytes=spad))
    assert plan.weight_tiles and any(isinstance(c, Compute) and c.sparsity is not None for c in plan.commands)
    stored = {c.tensor for c in plan.commands if isinstance(c, Store)}
    names = [name for name in BERT_PREFIX if name in stored]
    theirs = onnxruntime_outputs(quantized, feed, tensors=names)
    _assert_equal(execute_graph(graph, plan, feed, outputs=names), {name: theirs[name] for name in names})


@pytest.mark.parametrize(("a_format", "b_format"), [(NumberFormat(8, signed=False), NumberFormat(8, signed=False)),
                                                    (NumberFormat(8), NumberFormat(8, signed=False)),
                                                    (NumberFormat(8), NumberFormat(8))])
def test_raw_codes_plus_the_zero_point_terms_are_the_product_of_the_shifted_codes(a_format: NumberFormat,
                                                                                  b_format: NumberFormat) -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(a_format.min_int, a_format.max_int + 1, (2, 5, 33))
    b = rng.integers(b_format.min_int, b_format.max_int + 1, (2, 33, 7))
    za, zb = int(rng.integers(a_format.min_int, a_format.max_int + 1)), int(rng.integers(b_format.min_int,
                                                                                           b_format.max_int + 1))
    shifted = gemm_array(a - za, b - zb, a_format=NumberFormat(16), b_format=NumberFormat(16))
    assert np.array_equal(raw_code_matmul(a, b, za, zb, a_format=a_format, b_format=b_format), shifted)
    # tile by tile along k (what the array accumulates): the terms of each slice add up
    halves = sum(gemm_array(a[..., s], b[..., s, :], a_format=a_format, b_format=b_format) +
                 zero_point_terms(a[..., s], b[..., s, :], za, zb) for s in (np.s_[:16], np.s_[16:]))
    assert np.array_equal(halves, shifted)


def _heads(with_projection: bool) -> Graph:
    """A matmul of rank-4 activations (``[1, 2, s, d] x [1, 2, d, 9]``), with or without a linear layer
    computing the first operand."""
    b = GraphBuilder("heads")
    x = b.input("x", (1, 2, SEQ, DIM))
    y = b.input("y", (1, 2, DIM, 9))
    b.matmul(b.linear(x, DIM, False, "q") if with_projection else x, y, "scores")
    return b.build()


@pytest.mark.parametrize("with_projection", [False, True])
def test_rank_4_tensors_that_are_not_images_are_row_major_matrices(with_projection: bool) -> None:
    """Attention's rank-4 heads and scores touch no convolution or pool: stored row-major (mapper.layout),
    as the matrices a GEMM's and a matmul's tiles read and write."""
    graph, feed, expected = _quantized(_heads(with_projection))
    assert not image_tensors(graph)
    plan = map_graph(graph, _arch("gemmini"), MapOptions(allocator="greedy", scratchpad_bytes=4096))
    _assert_equal(execute_graph(graph, plan, feed), expected)


def test_a_matmul_of_an_image_is_refused_by_name() -> None:
    """An image (a convolution's output) is stored channels-last, not as the row-major matrix a matmul's
    tiles read: refused, never computed on the wrong bytes."""
    b = GraphBuilder("image_matmul")
    x = b.input("x", (1, 2, SEQ, DIM))
    b.matmul(b.conv(x, 2, 1, 1, 0, name="conv"), b.input("y", (1, 2, DIM, 9)), "scores")
    graph, feed, _ = _quantized(b.build())
    assert "conv_QuantizeLinear_Output" in image_tensors(graph)
    plan = map_graph(graph, _arch("gemmini"), MapOptions())
    with pytest.raises(ExecutionError, match=r"^Layer 'scores' \(MatMul\): tensor 'conv_QuantizeLinear_Output' "
                                             r"of shape \(1, 2, 20, 40\) is stored channels-last"):
        execute_graph(graph, plan, feed)
