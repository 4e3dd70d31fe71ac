"""rtl.npu without a simulator: what it refuses, how the command line builds it, and that its
golden model keeps the literal semantics (a GEMM tile against a plain integer matrix product)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accel.commands import Block, Buffer, Compute, Load, Move, Store
from accel.config import load
from accel.errors import ConfigError
from accel.hardware import Dataflow
from rtl.fpga.driver import fc_layer, program_tensors
from rtl.npu import NPU, execute
from rtl.units import build_unit


def test_npu_refuses_what_this_version_cannot_build() -> None:
    arch = load("fpga-small")
    two = dataclasses.replace(arch, dma=dataclasses.replace(arch.dma, channels=2))
    with pytest.raises(ConfigError, match="dma.channels must be 1, not 2"):
        NPU(two)
    limited = dataclasses.replace(arch, dma=dataclasses.replace(arch.dma, max_in_flight=4))
    with pytest.raises(ConfigError, match=r"dma.max_in_flight must be 0 \(no request limit\), not 4"):
        NPU(limited)
    with pytest.raises(ConfigError, match="bandwidth_bytes_per_cycle must be 4"):
        NPU(load("gemmini"))
    odd = dataclasses.replace(arch, accumulator=dataclasses.replace(arch.accumulator, size_bytes=768))
    with pytest.raises(ConfigError, match=r"accumulator words must be a power of two, at least 4 \(its banks\), "
                                          r"not 192"):
        NPU(odd)
    from accel.hardware import Sparsity
    narrow = dataclasses.replace(arch, scratchpad=dataclasses.replace(arch.scratchpad, banks=2),
                                 array=dataclasses.replace(arch.array, sparsity=(Sparsity(2, 8),)))
    with pytest.raises(ConfigError, match=r"the scratchpad must read a group of M bytes a cycle \(at most 5\) to run "
                                          r"2:8 sparsity"):
        NPU(narrow)
    quick = dataclasses.replace(arch, dram=dataclasses.replace(arch.dram, latency_cycles=5))
    with pytest.raises(ConfigError, match=r"dma and dram latency_cycles must add up to at least 8 \(the store path's "
                                          r"requantizer pipeline hides behind them\), not 2 \+ 5"):
        NPU(quick)
    odd_path = dataclasses.replace(arch, activation=dataclasses.replace(arch.activation, latency_cycles=5))
    with pytest.raises(ConfigError, match=r"activation.latency_cycles must be 0 \(moves saturate\) or 8 \(moves "
                                          r"requantize through the store path's pipeline\), not 5"):
        NPU(odd_path)
    with pytest.raises(ConfigError, match=r"^NPU requant_channels must be a non-negative integer, not -1$"):
        NPU(arch, requant_channels=-1)
    quick_vector = dataclasses.replace(arch, vector=dataclasses.replace(arch.vector, latency_cycles=3))
    with pytest.raises(ConfigError, match=r"^NPU for 'fpga-small': the vector unit computes 4 lanes \(one scratchpad "
                                          r"beat\) a cycle with 4 cycles from its first read to its first write, so "
                                          r"vector.lanes must be 4 and vector.latency_cycles at least 4, not 4 and 3 "
                                          r"\(requant_channels=0 builds no vector datapath\)$"):
        NPU(quick_vector)
    timed = NPU(quick_vector, requant_channels=0)  # no vector datapath: its commands are timed only
    assert not timed.vector_ops
    timed._MustUse__silence = True


def test_the_command_line_unit_is_the_npu_of_the_arch() -> None:
    unit = build_unit("npu", arch="fpga-small", max_commands=16, program_words=256)
    assert isinstance(unit.component, NPU)
    assert unit.module == "npu"
    assert unit.parameters == {"arch": "fpga-small", "max_commands": 16, "program_words": 256,
                               "requant_channels": 32}
    unit.component._MustUse__silence = True  # built to be inspected, not elaborated


def test_golden_model_is_the_literal_semantics() -> None:
    arch = load("fpga-small")
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (5, 6))
    w = rng.integers(-128, 128, (6, 7))
    dram = bytearray(1024)
    dram[0:30] = x.astype(np.int8).tobytes()
    dram[64:106] = w.astype(np.int8).tobytes()
    program = (
        Load(id=0, layer="t", tensor="x", size_bytes=30, addr=0, dram_addr=0),
        Load(id=1, layer="t", tensor="w", size_bytes=42, addr=64, dram_addr=64),
        Compute(id=2, layer="t", deps=(0, 1), m=5, k=6, n=7, dataflow=Dataflow.OS, input_addr=0, weight_addr=64),
        Compute(id=3, layer="t", deps=(2,), m=5, k=6, n=7, dataflow=Dataflow.WS, input_addr=0, weight_addr=64,
                accumulate=True),
        Move(id=4, layer="t", deps=(3,), tensor="y", size_bytes=35, src_addr=0, addr=512),
        Store(id=5, layer="t", deps=(3,), tensor="y", size_bytes=35, buffer=Buffer.ACCUMULATOR, dram_addr=256),
    )
    mem = execute(arch, program, bytes(dram))
    y = 2 * (x @ w)
    assert np.array_equal(np.frombuffer(bytes(mem.accumulator[:140]), "<i4"), y.reshape(-1))
    saturated = np.clip(y, -128, 127).astype(np.int8).reshape(-1)
    assert np.array_equal(np.frombuffer(bytes(mem.dram[256:291]), np.int8), saturated)
    assert np.array_equal(np.frombuffer(bytes(mem.scratchpad[512:547]), np.int8), saturated)


def test_golden_model_follows_strided_dram_blocks() -> None:
    """The mapper's fc layer (16x32 @ 32x16 on fpga-small) loads weight columns and stores output columns
    as strided DRAM blocks: golden reads and writes those bytes, so the output in DRAM is the layer's
    saturated product (an independent numpy computation: ``sim.execute`` needs a quantized graph)."""
    arch = load("fpga-small")
    plan = fc_layer(arch)
    blocks = [c.dram for c in plan.commands if isinstance(c, Load | Store) and c.dram is not None]
    assert blocks and all(b.rows > 1 and b.row_stride > b.row_bytes for b in blocks), blocks
    inputs, outputs = program_tensors(plan.commands)
    rng = np.random.default_rng(5)
    x, w = rng.integers(-128, 128, (16, 32)), rng.integers(-128, 128, (32, 16))
    (x_at, _), (w_at, _), (y_at, y_size) = inputs["x"], inputs["fc.weight"], outputs["fc"]
    dram = bytearray(y_at + y_size)
    dram[x_at:x_at + x.size] = x.astype(np.int8).tobytes()
    dram[w_at:w_at + w.size] = w.astype(np.int8).tobytes()
    mem = execute(arch, plan.commands, bytes(dram))
    y = np.frombuffer(bytes(mem.dram[y_at:y_at + y_size]), np.int8).reshape(16, 16)
    assert np.array_equal(y, np.clip(x @ w, -128, 127))


def test_golden_model_moves_into_a_scratchpad_block() -> None:
    """A Move's ``dst`` block: result ``i`` goes to the block's byte ``i``, rows apart in the scratchpad."""
    arch = load("fpga-small")
    acc = np.arange(8, dtype="<i4").tobytes() + bytes(arch.accumulator.size_bytes - 32)
    move = Move(id=0, layer="t", tensor="y", size_bytes=8, src_addr=0, addr=100,
                dst=Block(rows=2, row_bytes=4, row_stride=16))
    mem = execute(arch, (move,), b"", accumulator=acc)
    assert bytes(mem.scratchpad[100:104]) == bytes([0, 1, 2, 3])
    assert bytes(mem.scratchpad[116:120]) == bytes([4, 5, 6, 7])
    assert not any(mem.scratchpad[104:116])


def test_refusal_names_what_the_decoder_refuses() -> None:
    """rtl.npu.core.refusal states the decoder's ``supported`` test: split folds, N:M patterns the design
    lacks (or not WS, or not whole groups), operand blocks, a dataflow the design lacks, transfer rows
    that are not whole beats; everything else runs."""
    from accel.hardware import Sparsity
    from rtl.npu.core import refusal

    arch = load("fpga-small")
    tile = Compute(id=0, layer="t", m=4, k=4, n=4, dataflow=Dataflow.WS)
    assert refusal(arch, tile) is None
    assert refusal(arch, dataclasses.replace(tile, fill=False)) == "splits a fold"
    sparse = dataclasses.replace(tile, sparsity=Sparsity(2, 4))
    assert refusal(arch, sparse) == "is 2:4 sparse, a pattern the array does not have"
    nm = dataclasses.replace(arch, array=dataclasses.replace(arch.array, sparsity=(Sparsity(2, 4),)))
    assert refusal(nm, sparse) is None
    assert refusal(nm, dataclasses.replace(sparse, dataflow=Dataflow.OS)) == \
        "is 2:4 sparse on OS (N:M computes are weight-stationary)"
    assert refusal(nm, dataclasses.replace(sparse, k=5)) == "keeps 5 rows, not whole groups of 2"
    assert refusal(nm, dataclasses.replace(sparse, sparsity=Sparsity(1, 4))) == \
        "is 1:4 sparse, a pattern the array does not have"
    assert refusal(arch, dataclasses.replace(tile, input_block=Block(rows=4, row_bytes=4, row_stride=8))) \
        == "reads an operand in place through a block"
    assert refusal(arch, dataclasses.replace(tile, dataflow=Dataflow.IS)) == \
        "computes IS, a dataflow the NPU does not have"
    load_ = Load(id=0, layer="t", tensor="x", size_bytes=12, dram=Block(rows=2, row_bytes=6, row_stride=8))
    assert refusal(arch, load_) == "moves rows of 6 bytes, not whole 4-byte beats"
    whole = dataclasses.replace(load_, size_bytes=16, dram=Block(rows=2, row_bytes=8, row_stride=16))
    assert refusal(arch, whole) is None


def test_golden_model_runs_nm_computes_from_the_compressed_bytes() -> None:
    """An N:M compute (2:4, two products) reads its weights as sim.execute reads a packed tile (the
    values, then the 2-bit indices, column by column) and its input as the dense reduction the groups
    cover: the result is sim.numerics.nm_gemm of each product's compressed weights, which is the
    dense product with the pruned weights; accumulate adds to it."""
    from accel.hardware import Sparsity
    from sim.numerics import nm_compress, nm_gemm, nm_prune, systolic_tile
    from sim.sparsity import pack_entries

    arch = dataclasses.replace(load("fpga-small"), array=dataclasses.replace(
        load("fpga-small").array, sparsity=(Sparsity(2, 4),)))
    nm, batch, m, kd, n = Sparsity(2, 4), 2, 5, 12, 7
    k = nm.compressed_k(kd)  # 6 kept rows of 12
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (batch, m, kd))
    w = rng.integers(-128, 128, (batch, kd, n))
    kept = [nm_compress(w[b], nm.n, nm.m) for b in range(batch)]
    values = np.stack([c.values.reshape(k, n).T for c in kept])  # (batch, n, k): column by column
    indices = np.stack([c.indices.reshape(k, n).T for c in kept])
    packed = pack_entries(values, indices, value_bits=8, index_bits=nm.index_bits)
    assert packed.size == nm.compressed_bytes(batch * k * n, 8) == 84 + 21
    sp = bytearray(arch.scratchpad.size_bytes)
    sp[0:x.size] = x.astype(np.int8).tobytes()
    sp[512:512 + packed.size] = packed.tobytes()
    cmd = Compute(id=0, layer="t", m=m, k=k, n=n, batch=batch, dataflow=Dataflow.WS, input_addr=0,
                  weight_addr=512, output_addr=64, sparsity=nm)
    mem = execute(arch, (cmd, dataclasses.replace(cmd, id=1, accumulate=True)), b"", scratchpad=bytes(sp))
    y = np.frombuffer(bytes(mem.accumulator[64:64 + 4 * batch * m * n]), "<i4").reshape(batch, m, n)
    for b in range(batch):
        assert np.array_equal(y[b], 2 * nm_gemm(x[b], kept[b]))
        assert np.array_equal(y[b], 2 * systolic_tile(x[b], nm_prune(w[b], nm.n, nm.m), dataflow="ws"))
    with pytest.raises(ValueError, match=r"keeps 5 rows, not whole groups of 2 \(2:4 sparsity\)"):
        execute(arch, (dataclasses.replace(cmd, k=5),), b"", scratchpad=bytes(sp))
