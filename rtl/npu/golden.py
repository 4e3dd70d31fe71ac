"""The literal semantics of a command program, on bytes: the NPU's functional reference.

:func:`execute` runs a program (:mod:`accel.commands`) on three byte images, DRAM, scratchpad and
accumulator, with the arithmetic of :mod:`sim.numerics` (never re-implemented here). It is what
:class:`rtl.npu.NPU` must produce bit for bit; the command-level functional executor
(``sim.execute``) is to use the same semantics:

``Load``     copies ``size_bytes`` bytes from DRAM to the buffer at ``addr`` (packed): the bytes of
             its DRAM block from ``dram_addr`` (:class:`~accel.commands.Block`: row ``r`` of plane
             ``p`` is the ``row_bytes`` at ``dram_addr + p plane_stride + r row_stride``, rows in
             that order; ``None``: ``size_bytes`` contiguous bytes), as ``sim.execute`` reads them
             (:func:`sim.execute.block_offsets`).
``Store``    from the scratchpad: copies ``size_bytes`` bytes (packed, from ``addr``) to the DRAM
             block at ``dram_addr``; from the accumulator: ``size_bytes`` results in the input format,
             result ``i`` being the int32 accumulator element at byte ``addr + 4 i`` requantized with
             unit scale (saturated to the input format), written as byte ``i`` of the DRAM block.
``Move``     the same requantizing read: ``size_bytes`` results from the accumulator at
             ``src_addr`` to the scratchpad block ``dst`` at ``addr`` (``None``: contiguous).
``Compute``  for each product ``b < batch``: ``x`` is the row-major ``m x k`` input at
             ``input_addr + b m k``, ``w`` the row-major ``k x n`` weights at ``weight_addr + b k n``
             (input and weight format codes, one byte each; with ``input_block`` / ``weight_block``
             the ``batch x m x k`` / ``batch x k x n`` operand is that block's bytes instead), ``y = x @ w``
             (:func:`sim.numerics.systolic_tile`) is written to (``accumulate``: added to, with the
             accumulator format's overflow) the row-major ``m x n`` int32 elements at accumulator
             byte ``output_addr + 4 b m n``.
``Compute``  N:M (``sparsity`` set; ``k`` is the compressed reduction, whole groups of ``N``): the
  (N:M)      weights are the ``compressed_bytes(batch k n)`` bytes at ``weight_addr`` (or its block)
             as :func:`sim.numerics.pack_entries` stores them and ``sim.execute`` reads a packed tile:
             the value stream, then the index stream, entries product by product, column by column,
             kept row by kept row; kept row ``r`` of column ``j`` is slot ``r % N`` of group ``r // N``,
             its value weighting dense row ``(r // N) M + index``. The input is the row-major
             ``m x (k / N) M`` dense reduction the groups cover, at ``input_addr + b m (k / N) M``;
             ``y = x @ w`` is :func:`sim.numerics.nm_gemm` of the compressed operand (indices must be
             strictly increasing within a group, as :class:`sim.numerics.NMCompressed` requires).
``Vector``   timing only in this version: its data is not modelled (and the NPU moves none).

Accumulator elements are little-endian 4-byte words at 4-byte aligned byte addresses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from accel.commands import Block, Buffer, Command, Compute, Load, Move, Store, Vector
from accel.hardware import Accelerator
from sim.execute import block_offsets
from sim.numerics import NMCompressed, apply_overflow, nm_gemm, saturate, systolic_tile
from sim.sparsity import unpack_entries

__all__ = ["Memories", "execute"]


@dataclass
class Memories:
    """The three byte images a program reads and writes."""

    dram: bytearray
    scratchpad: bytearray
    accumulator: bytearray


def _codes(raw: bytes, signed: bool) -> np.ndarray:
    return np.frombuffer(bytes(raw), dtype=np.int8 if signed else np.uint8).astype(np.int64)


def _elements(acc: bytearray, addr: int, count: int) -> np.ndarray:
    return np.frombuffer(bytes(acc[addr:addr + 4 * count]), dtype="<i4").astype(np.int64)


def _dense_k(cmd: Compute) -> int:
    """The dense reduction an N:M compute's ``k`` kept rows cover: ``(k / N) M``."""
    nm = cmd.sparsity
    assert nm is not None
    if cmd.k % nm.n:
        raise ValueError(f"execute: command {cmd.id} keeps {cmd.k} rows, not whole groups of {nm.n} ({nm} sparsity)")
    return cmd.k // nm.n * nm.m


def execute(arch: Accelerator, commands: Sequence[Command], dram: bytes, *, scratchpad: bytes | None = None,
            accumulator: bytes | None = None) -> Memories:
    """Run ``commands`` in program order (the order every dependency-respecting schedule agrees with).

    The on-chip memories start as ``scratchpad`` and ``accumulator`` (what an earlier program left;
    default zero, the NPU's state after configuration), so a program that reads bytes it never
    wrote (a convolution's computes reading their GEMM operands as laid out) is still defined.
    """
    sp = bytearray(arch.scratchpad.size_bytes) if scratchpad is None else bytearray(scratchpad)
    acc_image = bytearray(arch.accumulator.size_bytes) if accumulator is None else bytearray(accumulator)
    if len(sp) != arch.scratchpad.size_bytes or len(acc_image) != arch.accumulator.size_bytes:
        raise ValueError("execute: the scratchpad and accumulator images must have the arch's sizes")
    mem = Memories(bytearray(dram), sp, acc_image)
    a = arch.array
    out_format = a.input_format

    def buffer(kind: Buffer) -> bytearray:
        return mem.accumulator if kind is Buffer.ACCUMULATOR else mem.scratchpad

    def requantized(addr: int, count: int) -> bytes:
        values = [saturate(int(v), out_format) for v in _elements(mem.accumulator, addr, count)]
        return bytes(v & 0xFF for v in values)

    def at(image: bytearray, addr: int, block: Block | None, size: int) -> list[int]:
        """The addresses of a block's bytes in ``image`` (all of them inside it)."""
        addrs = (addr + block_offsets(block, size)).tolist()
        if addrs and (min(addrs) < 0 or max(addrs) >= len(image)):
            raise ValueError(f"execute: bytes {min(addrs)}..{max(addrs)} are outside a memory of {len(image)} B")
        return addrs

    def read(image: bytearray, addr: int, block: Block | None, size: int) -> bytes:
        return bytes(image[i] for i in at(image, addr, block, size))

    def write(image: bytearray, addr: int, block: Block | None, data: bytes) -> None:
        for i, v in zip(at(image, addr, block, len(data)), data, strict=True):
            image[i] = v

    for cmd in commands:
        if isinstance(cmd, Load):
            data = read(mem.dram, cmd.dram_addr, cmd.dram, cmd.size_bytes)
            buffer(cmd.buffer)[cmd.addr:cmd.addr + cmd.size_bytes] = data
        elif isinstance(cmd, Store):
            if cmd.buffer is Buffer.ACCUMULATOR:
                data = requantized(cmd.addr, cmd.size_bytes)
            else:
                data = bytes(mem.scratchpad[cmd.addr:cmd.addr + cmd.size_bytes])
            write(mem.dram, cmd.dram_addr, cmd.dram, data)
        elif isinstance(cmd, Move):
            write(mem.scratchpad, cmd.addr, cmd.dst, requantized(cmd.src_addr, cmd.size_bytes))
        elif isinstance(cmd, Compute):
            m, k, n, nm = cmd.m, cmd.k, cmd.n, cmd.sparsity
            kd = k if nm is None else _dense_k(cmd)
            xs = read(mem.scratchpad, cmd.input_addr, cmd.input_block, cmd.batch * m * kd)
            if nm is None:
                ws = read(mem.scratchpad, cmd.weight_addr, cmd.weight_block, cmd.batch * k * n)
            else:
                count = cmd.batch * k * n
                raw = read(mem.scratchpad, cmd.weight_addr, cmd.weight_block, nm.compressed_bytes(count, 8))
                values, indices = unpack_entries(np.frombuffer(raw, dtype=np.uint8), count, value_bits=8,
                                                 index_bits=nm.index_bits, signed=a.weight_format.signed)
            for b in range(cmd.batch):
                oa = cmd.output_addr + 4 * b * m * n
                x = _codes(xs[b * m * kd:(b + 1) * m * kd], a.input_format.signed).reshape(m, kd)
                if nm is None:
                    w = _codes(ws[b * k * n:(b + 1) * k * n], a.weight_format.signed).reshape(k, n)
                    y = systolic_tile(x, w, dataflow=cmd.dataflow, a_format=a.input_format,
                                      b_format=a.weight_format, acc_format=a.accumulator_format).reshape(-1)
                else:
                    # entries of product b: (n, k) column by column; kept row r is (group r // N, slot r % N)
                    grouped = [v[b * k * n:(b + 1) * k * n].reshape(n, k).T.reshape(k // nm.n, nm.n, n)
                               for v in (values, indices)]
                    c = NMCompressed(*grouped, nm.n, nm.m, kd, a.weight_format)
                    y = nm_gemm(x, c, a_format=a.input_format, acc_format=a.accumulator_format).reshape(-1)
                if cmd.accumulate:
                    old = _elements(mem.accumulator, oa, m * n)
                    y = np.array([apply_overflow(int(o) + int(v), a.accumulator_format)
                                  for o, v in zip(old, y, strict=True)])
                mem.accumulator[oa:oa + 4 * m * n] = np.asarray(y, dtype=np.int64).astype("<i4").tobytes()
        elif not isinstance(cmd, Vector):
            raise TypeError(f"unknown command {cmd!r}")
    return mem
