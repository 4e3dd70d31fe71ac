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
             result ``i`` being the int32 accumulator element at byte ``addr + 4 i`` requantized,
             written as byte ``i`` of the DRAM block. The requantization is the command's step of
             the host-written :class:`~accel.encoding.RequantTable` (channel ``c = first_channel +
             i % columns``: :func:`sim.numerics.requantize` of ``int32(acc + bias[c])`` by
             ``multiplier[c]``, ``shift[c]``, the zero point and the clamp, which carries the fused
             ReLU; the design's TFLite rounding, ``tflite-single`` or else ``tflite-double``), or for a
             command the table does not configure unit scale (saturation to the input format). A
             ``raw`` store copies the ``size_bytes`` accumulator bytes from ``addr`` unchanged (32-bit
             partial sums).
``Move``     the same requantizing read: ``size_bytes`` results from the accumulator at
             ``src_addr`` to the scratchpad block ``dst`` at ``addr`` (``None``: contiguous).
``Compute``  for each product ``b < batch``: ``x`` is the row-major ``m x k`` input at
             ``input_addr + b m k``, ``w`` the row-major ``k x n`` weights at ``weight_addr + b k n``
             (input and weight format codes, one byte each; with ``input_block`` / ``weight_block``
             the ``batch x m x k`` / ``batch x k x n`` operand is that block's bytes instead), ``y = x @ w``
             (:func:`sim.numerics.systolic_tile`) is written to (``accumulate``: added to, with the
             accumulator format's overflow) the row-major ``m x n`` int32 elements at accumulator
             byte ``output_addr + 4 b m n``. A Compute the host's feeder table configures
             (:class:`~accel.encoding.FeederStep`, a convolution's) gathers its ``x`` instead: byte
             ``(r, q)`` of product ``b`` is the scratchpad byte at the step's im2col address of tile
             row ``r`` (an output pixel), column ``q`` (a window element) and group ``b``, or the
             step's input zero point where the window lies in the padding
             (:meth:`~accel.encoding.FeederStep.address`), as ``sim.execute`` reads its input band.
``Compute``  N:M (``sparsity`` set; ``k`` is the compressed reduction, whole groups of ``N``): the
  (N:M)      weights are the ``compressed_bytes(batch k n)`` bytes at ``weight_addr`` (or its block)
             as :func:`sim.numerics.pack_entries` stores them and ``sim.execute`` reads a packed tile:
             the value stream, then the index stream, entries product by product, column by column,
             kept row by kept row; kept row ``r`` of column ``j`` is slot ``r % N`` of group ``r // N``,
             its value weighting dense row ``(r // N) M + index``. The input is the row-major
             ``m x (k / N) M`` dense reduction the groups cover, at ``input_addr + b m (k / N) M``;
             ``y = x @ w`` is :func:`sim.numerics.nm_gemm` of the compressed operand (indices must be
             strictly increasing within a group, as :class:`sim.numerics.NMCompressed` requires).
``Vector``   what the host's table configures for it (:class:`~accel.encoding.VectorStep`; a command
             it does not configure is timed only and moves no data): ``add``, byte ``i <
             elements`` of the output (from ``output_addr``, through ``output_block`` if any) is
             :func:`sim.numerics.tflite_add_codes` of input bytes ``i`` at ``input_addr`` and
             ``second_addr`` (or their blocks; int8 codes) with the step's zero points and
             ``(multiplier, shift)`` pairs, in the design's TFLite rounding (``tflite-single``, else
             ``tflite-double``), clamped to ``[low, high]``; ``clamp``, input byte ``i`` clamped to
             ``[low, high]`` (a ReLU: ``low`` the zero point; a copy: the int8 range); ``max``, a max
             pool of a band of output rows of channels-last int8 images, beat by beat as
             :class:`~accel.encoding.VectorStep` walks its windows (padding taps not read), each
             4-channel group's maxima clamped to ``[low, high]``, from ``output_addr``; ``avg``, a
             global average pool walked the same way, each group's sums plus the step's bias
             rescaled (:func:`sim.numerics.multiply_by_quantized_multiplier`, the design's
             rounding) plus the output zero point, clamped; ``depthwise``, a depthwise convolution
             of a chunk of channels walked the same way, each tap's codes less the input zero point
             times its channel's weight (channel-major from ``second_addr``), each channel's sum
             requantized by its channel-table entry as a Store's.

Accumulator elements are little-endian 4-byte words at 4-byte aligned byte addresses.

:func:`requant_table` is the host's side: the table that makes a mapped plan of a quantized graph
store what ``sim.execute`` stores (each layer's per-channel folded bias, multiplier and shift, its
output zero point and fused ReLU; each store's first channel from the tile the array last wrote at
its address, as ``sim.execute`` finds it), and for every Vector command of an integer element-wise
layer the vector step that computes ``sim.execute``'s codes: a quantized add's zero points and
rescales (:func:`sim.reference.tflite_add_parameters`), a ReLU's clamp at its input's zero point,
a windowed max pool's window and image geometry with where its chunk's rows and input band start,
a global average pool's image, bias and TFLite rescale, a depthwise convolution's window, zero points
and channel-table entries (its per-channel bias, multiplier and shift).
:func:`feeder_table` is the host's feeder table of a plan: a step for every Compute of a convolution
that is not pointwise, so golden computes on the im2col rows ``sim.execute`` computes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from accel.commands import Block, Buffer, Command, Compute, Load, Move, Store, Vector
from accel.encoding import (
    EncodingError,
    FeederStep,
    FeederTable,
    RequantChannel,
    RequantStep,
    RequantTable,
    VectorStep,
)
from accel.errors import ConfigError
from accel.formats import INT8, INT32, Requantization
from accel.hardware import Accelerator
from mapper.decide import band_images, band_span
from mapper.layout import conv_band, conv_geometry
from mapper.plan import Plan
from sim.execute import block_offsets
from sim.numerics import (
    NMCompressed,
    apply_overflow,
    multiply_by_quantized_multiplier,
    nm_gemm,
    quantize_multiplier,
    requantize,
    saturate,
    systolic_tile,
    tflite_add_codes,
    wrap,
)
from sim.reference import ReferenceError, code_format, gemm_operands, tflite_add_parameters
from sim.sparsity import unpack_entries
from workloads.graph import OpKind

__all__ = ["Memories", "execute", "feeder_table", "requant_mode", "requant_table"]


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


def _gathered(sp: bytearray, step: FeederStep, cmd: Compute) -> bytes:
    """The ``batch x m x k`` input bytes the feeder gathers for ``cmd`` by ``step``
    (:meth:`accel.encoding.FeederStep.address`; the zero point in the padding)."""
    r, q = np.arange(cmd.m), np.arange(cmd.k)
    p = (step.first_image * step.out_h + step.first_oh) * step.out_w + step.first_ow + r
    img, oh, ow = p // (step.out_h * step.out_w), p // step.out_w % step.out_h, p % step.out_w
    e = (step.first_c * step.kh + step.first_i) * step.kw + step.first_j + q
    c, i, j = e // (step.kh * step.kw), e // step.kw % step.kh, e % step.kw
    ih = (oh * step.sh - step.pt)[:, None] + (i * step.dh)[None, :]
    iw = (ow * step.sw - step.pl)[:, None] + (j * step.dw)[None, :]
    inside = (ih >= 0) & (ih < step.in_h) & (iw >= 0) & (iw < step.in_w)
    addr = (step.base + img * step.image_stride + oh * step.row_stride + ow * step.col_stride)[:, None] + \
        (i * step.kernel_row_stride + j * step.kernel_col_stride + c)[None, :]
    addr = addr[None] + (np.arange(cmd.batch) * step.group_stride)[:, None, None]
    read = np.broadcast_to(inside[None], addr.shape)
    if read.any() and (addr[read].min() < 0 or addr[read].max() >= len(sp)):
        raise ValueError(f"execute: command {cmd.id}'s feeder reads bytes {addr[read].min()}..{addr[read].max()}, "
                         f"outside a scratchpad of {len(sp)} B")
    image = np.frombuffer(bytes(sp), dtype=np.uint8)
    values = np.where(read, image[np.where(read, addr, 0)], step.zero_point & 0xFF)
    return values.astype(np.uint8).tobytes()


def requant_mode(arch: Accelerator) -> str:
    """The rounding of the NPU's requantizer (:class:`rtl.requant.Requantizer`'s ``mode``) for ``arch``."""
    return "single" if arch.array.requant is Requantization.TFLITE_SINGLE else "double"


def execute(arch: Accelerator, commands: Sequence[Command], dram: bytes, *, scratchpad: bytes | None = None,
            accumulator: bytes | None = None, requant: RequantTable | None = None,
            feeder: FeederTable | None = None) -> Memories:
    """Run ``commands`` in program order (the order every dependency-respecting schedule agrees with).

    The on-chip memories start as ``scratchpad`` and ``accumulator`` (what an earlier program left;
    default zero, the NPU's state after configuration), so a program that reads bytes it never
    wrote (a hand-written compute reading bytes no load wrote) is still defined.
    ``requant`` is the host-written requantization table (``None``: every read unit scale), ``feeder``
    the array's input feeder table (``None``: every Compute reads its input literally).
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

    mode = requant_mode(arch)

    def requantized(cmd: Command, addr: int, count: int) -> bytes:
        step = None if requant is None else requant.step(cmd.id)
        elements = _elements(mem.accumulator, addr, count)
        if step is None:
            return bytes(saturate(int(v), out_format) & 0xFF for v in elements)
        assert requant is not None
        values = []
        for i, v in enumerate(elements):
            ch = requant.channels[step.first_channel + i % step.columns]
            values.append(requantize(wrap(int(v) + ch.bias, INT32), ch.multiplier, ch.shift, step.zero_point,
                                     out_format=out_format, mode=mode, clamp_min=step.low, clamp_max=step.high))
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
            if cmd.buffer is Buffer.ACCUMULATOR and cmd.raw:
                data = bytes(mem.accumulator[cmd.addr:cmd.addr + cmd.size_bytes])
            elif cmd.buffer is Buffer.ACCUMULATOR:
                data = requantized(cmd, cmd.addr, cmd.size_bytes)
            else:
                data = bytes(mem.scratchpad[cmd.addr:cmd.addr + cmd.size_bytes])
            write(mem.dram, cmd.dram_addr, cmd.dram, data)
        elif isinstance(cmd, Move):
            write(mem.scratchpad, cmd.addr, cmd.dst, requantized(cmd, cmd.src_addr, cmd.size_bytes))
        elif isinstance(cmd, Compute):
            m, k, n, nm = cmd.m, cmd.k, cmd.n, cmd.sparsity
            kd = k if nm is None else _dense_k(cmd)
            fstep = None if feeder is None else feeder.step(cmd.id)
            if fstep is not None and nm is not None:
                raise ValueError(f"execute: command {cmd.id} is N:M sparse; the feeder gathers dense inputs only")
            xs = read(mem.scratchpad, cmd.input_addr, cmd.input_block, cmd.batch * m * kd) if fstep is None \
                else _gathered(mem.scratchpad, fstep, cmd)
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
        elif isinstance(cmd, Vector):
            vstep = None if requant is None else requant.vector_step(cmd.id)
            if vstep is None:
                continue  # timed only
            if vstep.function in ("max", "avg", "depthwise"):
                codes = _pool(cmd, vstep, mem.scratchpad, mode, requant.channels)
                write(mem.scratchpad, cmd.output_addr, cmd.output_block, codes.astype(np.int8).tobytes())
                continue
            x = _codes(read(mem.scratchpad, cmd.input_addr, cmd.input_block, cmd.elements), True)
            if vstep.function == "add":
                y = _codes(read(mem.scratchpad, cmd.second_addr, cmd.second_block, cmd.elements), True)
                x = tflite_add_codes(x, y, vstep.a_zero_point, vstep.b_zero_point, vstep.multipliers,
                                     vstep.y_zero_point, mode=_tflite_mode(arch), out_format=INT8)
            codes = np.clip(x, vstep.low, vstep.high)
            write(mem.scratchpad, cmd.output_addr, cmd.output_block, codes.astype(np.int8).tobytes())
        else:
            raise TypeError(f"unknown command {cmd!r}")
    return mem


def _pool(cmd: Vector, step: VectorStep, spad: bytearray, mode: str,
          channels: Sequence[RequantChannel]) -> np.ndarray:
    """The output codes of a windowed step's command (:class:`~accel.encoding.VectorStep`'s walk: beat by
    beat, taps of one 4-channel group of one output pixel after another), 4 a group, in order: the
    maxima of the read taps (``max``), the rescaled sums plus the bias (``avg``), or the sums of the
    taps' codes less the zero point times their channels' weights, requantized by the channels'
    entries of ``channels`` (``depthwise``)."""
    if cmd.elements % 4 or (cmd.elements // 4) % step.taps:
        raise ValueError(f"execute: command {cmd.id}'s {cmd.elements} elements are not whole output words of "
                         f"{step.taps} beats of 4")
    words = cmd.elements // 4 // step.taps
    groups, per_row = step.channel_groups, step.channel_groups * step.out_w
    out = np.empty((words, 4), dtype=np.int64)
    for o in range(words):
        g, x, y = o % groups, o // groups % step.out_w, o // per_row
        image, row = 0, step.first_row + y  # output row of the image
        if row >= step.out_h:
            if step.first_row:
                raise ValueError(f"execute: command {cmd.id}'s chunk spans images from output row {step.first_row}")
            image, row = divmod(row, step.out_h)
        best, total = np.full(4, INT8.min_int, dtype=np.int64), np.zeros(4, dtype=np.int64)
        lanes = 4 * g + np.arange(4)  # the chunk's channels of the group
        for i in range(step.kernel_h):
            for j in range(step.kernel_w):
                ih, iw = row * step.stride_h - step.pad_top + i, x * step.stride_w - step.pad_left + j
                if not (0 <= ih < step.in_h and 0 <= iw < step.in_w):
                    continue  # padding: not read
                at = (cmd.input_addr + (image * step.in_h - step.band_row + ih) * step.row_bytes
                      + iw * step.pixel_bytes + 4 * g)
                if at < 0 or at + 4 > len(spad):
                    raise ValueError(f"execute: command {cmd.id} reads bytes {at}..{at + 3} outside the scratchpad")
                tap = _codes(spad[at:at + 4], True)
                if step.function == "depthwise":
                    weights = [cmd.second_addr + c * step.taps + i * step.kernel_w + j for c in lanes]
                    if min(weights) < 0 or max(weights) >= len(spad):
                        raise ValueError(f"execute: command {cmd.id} reads weights outside the scratchpad")
                    tap = (tap - step.a_zero_point) * _codes(bytes(spad[a] for a in weights), True)
                best, total = np.maximum(best, tap), total + tap
        if step.function == "avg":
            best = np.array([multiply_by_quantized_multiplier(wrap(int(v) + step.bias, INT32), step.y_multiplier,
                                                              step.y_shift, mode=mode) + step.y_zero_point
                             for v in total])
        elif step.function == "depthwise":
            entries = [channels[step.first_channel + int(c)] for c in lanes]
            best = np.array([requantize(wrap(int(v) + ch.bias, INT32), ch.multiplier, ch.shift, step.y_zero_point,
                                        out_format=INT8, mode=mode, clamp_min=step.low, clamp_max=step.high)
                             for v, ch in zip(total, entries, strict=True)])
        out[o] = np.clip(best, step.low, step.high)
    return out.reshape(-1)


def _tflite_mode(arch: Accelerator) -> Requantization:
    """The TFLite rounding the NPU computes in for ``arch`` (as :func:`requant_mode`)."""
    single = arch.array.requant is Requantization.TFLITE_SINGLE
    return Requantization.TFLITE_SINGLE if single else Requantization.TFLITE_DOUBLE


def requant_table(plan: Plan) -> RequantTable:
    """The requantization table the host writes for ``plan`` (of a quantized graph): for every store and
    move of a layer's results from the accumulator, the step that computes ``sim.execute``'s codes.

    Each GEMM layer a configured command stores gets ``n`` consecutive channel entries (its folded bias,
    and the multiplier and shift of its per-channel scale in the design's TFLite rounding); a command's
    first channel is its layer's entry of the first column of the tile the array last wrote at the
    command's accumulator address.

    Every Vector command of a quantized add (two int8 activations of the output's shape, per-tensor
    scales) gets an ``add`` step (:func:`sim.reference.tflite_add_parameters`: the zero points and the
    TFLite rescales in the design's rounding), of a ReLU a ``clamp`` from its input's zero point, of
    an identity or passthrough a ``clamp`` to the int8 range, of a windowed max pool chunked in bands
    of output rows (int8 codes of one scale, whole groups of 4 channels, no dilation) a ``max`` step,
    of a global average pool (int8 images, chunks of whole groups of 4 channels) an ``avg`` step, of a
    depthwise convolution on the vector unit (int8 codes, symmetric weights, no dilation, chunks of
    whole groups of 4 channels) a ``depthwise`` step and its layer's channel entries (its bias, not
    folded: the step subtracts the input zero point).

    Raises :class:`~accel.errors.ConfigError` for what the NPU's requantizer and vector unit cannot
    compute: a design in a requantization mode other than ``tflite-double`` or ``tflite-single`` (the
    float32 one rounds floats: not integer arithmetic), grouped layers (convolution groups), int32 or
    non-int8 outputs, a fused activation other than ReLU, a store of an address no tile of its layer
    wrote, a Vector command of any other layer (a multiply, a windowed average pool, a global or
    channel-chunked max pool, an add of a constant or of broadcast operands), one
    whose elements are not its chunk's (``elements != extent``; a pool's: its rows' outputs times its
    taps), a chunk of a pool that spans images from a row other than their first, or one that reads
    or writes through a block.
    """
    graph, arch = plan.graph, plan.arch
    if graph is None:
        raise ConfigError(f"Plan of {plan.graph_name!r} carries no graph to configure the requantizer from")
    if arch.array.requant not in (Requantization.TFLITE_DOUBLE, Requantization.TFLITE_SINGLE):
        raise ConfigError(f"{arch.name}: the NPU's requantizer rounds as tflite-double or tflite-single, not "
                          f"the design's {arch.array.requant.value}")
    out_format = arch.array.input_format
    mode = requant_mode(arch)
    tags: dict[int, tuple[str, int, int]] = {}  # accumulator address -> (layer, n0, tile columns)
    bases: dict[str, int] = {}
    channels: list[RequantChannel] = []
    steps: list[RequantStep] = []
    vector: list[VectorStep] = []
    for cmd in plan.commands:
        if isinstance(cmd, Compute):
            tags[cmd.output_addr] = (cmd.layer, cmd.origin[3], cmd.n)
            continue
        if isinstance(cmd, Vector) and any(b is not None for b in (cmd.input_block, cmd.second_block,
                                                                      cmd.output_block)):
            raise ConfigError(f"Command {cmd.id} (Vector, layer {cmd.layer!r}): the NPU's vector unit reads and "
                              f"writes packed runs, not blocks")
        if isinstance(cmd, Vector) and graph.layer(cmd.layer).gemm is not None:  # a depthwise convolution
            layer = graph.layer(cmd.layer)
            ops = gemm_operands(graph, layer)
            if cmd.layer not in bases and ops.scale is not None:
                bases[cmd.layer] = len(channels)
                channels.extend(_channel_entries(ops.bias, ops.scale, mode))
            vector.append(_depthwise_step(plan, cmd, bases.get(cmd.layer, 0)))
            continue
        if isinstance(cmd, Vector):
            vector.append(_vector_step(plan, cmd))
            continue
        if isinstance(cmd, Store) and (cmd.buffer is Buffer.ACCUMULATOR and not cmd.raw):
            addr = cmd.addr
        elif isinstance(cmd, Move):
            addr = cmd.src_addr
        else:
            continue
        where = f"Command {cmd.id} ({type(cmd).__name__}, layer {cmd.layer!r})"
        layer_name, n0, columns = tags.get(addr, ("", 0, 0))
        if layer_name != cmd.layer:
            raise ConfigError(f"{where}: no tile of its layer was written at accumulator byte {addr}")
        layer = graph.layer(cmd.layer)
        ops = gemm_operands(graph, layer)
        if ops.groups != 1 or ops.scale is None or code_format(graph.tensors[layer.outputs[0]]) != out_format:
            raise ConfigError(f"{where}: the NPU requantizes single-group layers to {out_format.name} codes; "
                              f"this layer has {ops.groups} groups and {ops.out_format.name} outputs")
        if cmd.layer not in bases:
            bases[cmd.layer] = len(channels)
            channels.extend(_channel_entries(ops.bias if ops.weight is None else ops.folded_bias, ops.scale, mode))
        low, high = out_format.min_int, out_format.max_int
        for fn in filter(None, cmd.activation.split(",")):
            if fn != "relu":
                raise ConfigError(f"{where}: the NPU's store path fuses ReLU only, not {fn!r}")
            low = max(low, int(ops.y_zero_point))
        steps.append(RequantStep(command=cmd.id, first_channel=bases[cmd.layer] + n0, columns=columns,
                                 zero_point=int(ops.y_zero_point), low=low, high=high))
    return RequantTable(tuple(steps), tuple(channels), tuple(vector))


def _channel_entries(bias: np.ndarray, scale: np.ndarray, mode: str) -> list[RequantChannel]:
    """A layer's channel-table entries: per output channel its int32 ``bias`` and the multiplier and
    shift of its ``scale`` in the TFLite rounding ``mode``."""
    entries = []
    for b, s in zip(bias.reshape(-1), scale.reshape(-1), strict=True):
        multiplier, shift = quantize_multiplier(float(s), mode=mode)
        entries.append(RequantChannel(bias=wrap(int(b), INT32), multiplier=multiplier, shift=shift))
    return entries


def _vector_step(plan: Plan, cmd: Vector) -> VectorStep:
    """The vector step that makes ``cmd`` compute what ``sim.execute`` computes (see :func:`requant_table`)."""
    graph = plan.graph
    assert graph is not None
    layer = graph.layer(cmd.layer)
    fn = layer.attrs.get("fn")
    where = f"Command {cmd.id} (Vector, layer {cmd.layer!r})"
    streamed = [graph.tensors[t] for t in layer.inputs if not graph.tensors[t].is_constant]
    out = graph.tensors[layer.outputs[0]]
    tensors = [*streamed, out]
    what = layer.source_op or layer.op.value
    if layer.op is OpKind.POOL:
        return _pool_step(plan, cmd, where, what)
    elementwise = layer.op in (OpKind.ELEMENTWISE, OpKind.ACTIVATION) and fn in ("add", "relu", "identity",
                                                                                 "passthrough")
    if not elementwise or (fn == "add") != (len(layer.inputs) == 2) or len(streamed) != len(layer.inputs):
        raise ConfigError(f"{where}: the NPU's vector unit computes quantized adds of two activations, ReLUs and "
                          f"copies, not {what}")
    if any(t.shape != out.shape or code_format(t) != INT8 for t in tensors):
        raise ConfigError(f"{where}: the NPU's vector unit takes int8 operands of the output's shape; this layer "
                          f"has {', '.join(f'{code_format(t).name} {t.shape}' for t in tensors)}")
    if cmd.elements != cmd.extent:
        raise ConfigError(f"{where}: the NPU's vector unit computes a chunk's elements, {cmd.extent}, not "
                          f"{cmd.elements}")
    if fn == "add":
        try:
            a_zp, b_zp, ((ma, sa), (mb, sb), (my, sy)), y_zp = tflite_add_parameters(
                graph, layer, requant=plan.arch.array.requant)
        except ReferenceError as e:
            raise ConfigError(f"{where}: {e}") from None
        return VectorStep(command=cmd.id, function="add", a_zero_point=a_zp, b_zero_point=b_zp, y_zero_point=y_zp,
                          a_multiplier=ma, a_shift=sa, b_multiplier=mb, b_shift=sb, y_multiplier=my, y_shift=sy)
    q = streamed[0].quant
    low = int(q.zero_point[0]) if fn == "relu" and q is not None else INT8.min_int
    return VectorStep(command=cmd.id, function="clamp", low=low)


def feeder_table(plan: Plan) -> FeederTable:
    """The feeder table the host writes for ``plan``: for every dense Compute of a convolution that is
    not pointwise (grouped and depthwise ones too: product ``b`` is group ``b0 + b``), the step that
    gathers the im2col rows ``sim.execute`` computes from the input band the command names
    (:func:`mapper.layout.conv_band`, packed at ``input_addr`` or through a one-plane ``input_block``),
    the input zero point in the padding (0 for a graph without quantization).

    Raises :class:`~accel.errors.ConfigError` for a compute whose geometry the table cannot hold
    (a dimension beyond its field, an input block of more than one plane, an N:M convolution).
    """
    graph = plan.graph
    if graph is None:
        raise ConfigError(f"Plan of {plan.graph_name!r} carries no graph to configure the feeder from")
    steps = []
    for cmd in plan.commands:
        if not isinstance(cmd, Compute):
            continue
        layer = graph.layer(cmd.layer)
        conv = conv_geometry(graph, layer)
        if conv is None or conv.pointwise:
            continue
        where = f"Command {cmd.id} (Compute, layer {cmd.layer!r})"
        if cmd.sparsity is not None:
            raise ConfigError(f"{where}: the feeder gathers dense convolutions, not {cmd.sparsity} sparse ones")
        b0, m0, k0, _ = cmd.origin
        p0, _, ch0, ch1 = conv_band(conv, b0, cmd.batch, m0, cmd.m, k0, k0 + cmd.k)
        block = cmd.input_block
        if block is None:
            pixel = ch1 - ch0
        elif block.planes == 1 and block.row_bytes == ch1 - ch0:
            pixel = block.row_stride
        else:
            raise ConfigError(f"{where}: input_block must be one plane of rows of {ch1 - ch0} channels, not {block}")
        q = graph.tensors[layer.inputs[0]].quant
        kk, per_image = conv.kh * conv.kw, conv.oh * conv.ow
        row = conv.w * pixel
        try:
            steps.append(FeederStep(
                command=cmd.id, zero_point=0 if q is None else int(q.zero_point[0]),
                base=cmd.input_addr - p0 * pixel - ch0 + b0 * conv.group_channels - conv.pt * row - conv.pl * pixel,
                kh=conv.kh, kw=conv.kw, in_h=conv.h, in_w=conv.w, out_h=conv.oh, out_w=conv.ow,
                image_stride=conv.h * row, row_stride=conv.sh * row, col_stride=conv.sw * pixel,
                kernel_row_stride=conv.dh * row, kernel_col_stride=conv.dw * pixel,
                group_stride=conv.group_channels, sh=conv.sh, sw=conv.sw, dh=conv.dh, dw=conv.dw, pt=conv.pt,
                pl=conv.pl, first_image=m0 // per_image, first_oh=m0 % per_image // conv.ow, first_ow=m0 % conv.ow,
                first_c=k0 // kk, first_i=k0 % kk // conv.kw, first_j=k0 % conv.kw))
        except EncodingError as e:
            raise ConfigError(f"{where}: {e}") from None
    return FeederTable(tuple(steps))


def _pool_step(plan: Plan, cmd: Vector, where: str, what: str) -> VectorStep:
    """The ``max`` step of a Vector command of a windowed max pool the mapper chunked in bands of output
    rows (:func:`mapper.decide.chunking`'s ``"bands"``): the window, the images' geometry and where
    the chunk's rows and its input band start (:func:`mapper.decide.band_span`)."""
    graph = plan.graph
    assert graph is not None
    layer = graph.layer(cmd.layer)
    x, out = graph.tensors[layer.inputs[0]], graph.tensors[layer.outputs[0]]
    loop_order = next((m.loop_order for m in plan.layers if m.layer == layer.name), "")
    if layer.attrs.get("kind") == "avg" and layer.attrs.get("global"):
        return _global_avg_step(plan, cmd, where)
    if layer.attrs.get("kind") != "max" or layer.attrs.get("global") or loop_order != "bands":
        raise ConfigError(f"{where}: the NPU's vector unit pools windowed max pools chunked in bands of output "
                          f"rows and global average pools, not {what} ({'global ' if layer.attrs.get('global') else ''}"
                          f"{layer.attrs.get('kind')} pool, {loop_order or 'no'} chunks)")
    if code_format(x) != INT8 or code_format(out) != INT8 or x.quant != out.quant:
        raise ConfigError(f"{where}: the NPU's vector unit max-pools int8 codes of one scale and zero point; this "
                          f"layer maps {code_format(x).name} to {code_format(out).name} codes")
    n, c, h, w = x.shape
    _, _, oh, ow = out.shape
    (kh, kw), (sh, sw), (pt, pl, _, _) = layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["padding"]
    if tuple(layer.attrs.get("dilation", (1, 1))) != (1, 1) or c % 4:
        raise ConfigError(f"{where}: the NPU's vector unit pools undilated windows over whole groups of 4 "
                          f"channels; this layer has {c} channels, dilation {layer.attrs.get('dilation', (1, 1))}")
    lo, hi = cmd.origin, cmd.origin + cmd.extent
    if cmd.elements != (hi - lo) * ow * c * kh * kw:
        raise ConfigError(f"{where}: the NPU's vector unit computes a chunk's {hi - lo} output rows of {ow} x {c} "
                          f"codes, {kh * kw} taps each ({(hi - lo) * ow * c * kh * kw} elements), not {cmd.elements}")
    images = band_images(layer, x.shape, oh, lo, hi)
    first_image, first_row = images[0][0], images[0][1]
    if len(images) > 1 and first_row:
        raise ConfigError(f"{where}: a chunk that spans images must start at their first output row, not {first_row}")
    start, _ = band_span(layer, x.shape, oh, lo, hi, output=False)
    try:
        return VectorStep(command=cmd.id, function="max", kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw,
                          pad_top=pt, pad_left=pl, band_row=start - first_image * h, channel_groups=c // 4, out_w=ow,
                          in_h=h, in_w=w, out_h=oh, first_row=first_row)
    except EncodingError as e:
        raise ConfigError(f"{where}: {e}") from None


def _global_avg_step(plan: Plan, cmd: Vector, where: str) -> VectorStep:
    """The ``avg`` step of a Vector command of a global average pool chunked by channels (all pixels of
    each of its images): one window of the whole image, the sum's bias (minus the input zero point
    times the pixels) and the output's rescale, as :func:`sim.reference.global_avg_codes` computes it
    (its float32 scale, :func:`sim.numerics.quantize_multiplier` in the design's rounding)."""
    graph = plan.graph
    assert graph is not None
    layer = graph.layer(cmd.layer)
    x, out = graph.tensors[layer.inputs[0]], graph.tensors[layer.outputs[0]]
    if len(x.shape) != 4 or code_format(x) != INT8 or code_format(out) != INT8 or x.quant is None \
            or out.quant is None:
        raise ConfigError(f"{where}: the NPU's vector unit average-pools quantized int8 N x C x H x W images; this "
                          f"layer maps {code_format(x).name} {x.shape} to {code_format(out).name} codes")
    n, _, h, w = x.shape
    channels = cmd.extent
    if channels % 4:
        raise ConfigError(f"{where}: the NPU's vector unit average-pools whole groups of 4 channels, not a chunk of "
                          f"{channels}")
    if cmd.elements != channels * n * h * w:
        raise ConfigError(f"{where}: the NPU's vector unit computes a chunk's {channels} channels of {n} images of "
                          f"{h} x {w} ({channels * n * h * w} elements), not {cmd.elements}")
    size = h * w
    scale = np.float32(x.quant.scale[0]) / (np.float32(out.quant.scale[0]) * np.float32(size))
    multiplier, shift = quantize_multiplier(float(scale), mode=requant_mode(plan.arch))
    try:
        return VectorStep(command=cmd.id, function="avg", y_zero_point=int(out.quant.zero_point[0]),
                          y_multiplier=multiplier, y_shift=shift, bias=-int(x.quant.zero_point[0]) * size,
                          kernel_h=h, kernel_w=w, stride_h=1, stride_w=1, channel_groups=channels // 4, out_w=1,
                          in_h=h, in_w=w, out_h=1)
    except EncodingError as e:
        raise ConfigError(f"{where}: {e}") from None


def _depthwise_step(plan: Plan, cmd: Vector, base: int) -> VectorStep:
    """The ``depthwise`` step of a Vector command of a depthwise convolution on the vector unit (a chunk
    of channels, every pixel of each): its window geometry, the input and output zero points, the
    fused ReLU's clamp and the channel-table entry of its first channel (its layer's entries from
    ``base``: bias, multiplier and shift of each output channel)."""
    graph = plan.graph
    assert graph is not None
    layer = graph.layer(cmd.layer)
    where = f"Command {cmd.id} (Vector, layer {cmd.layer!r})"
    conv = conv_geometry(graph, layer)
    ops = gemm_operands(graph, layer)
    x, out = graph.tensors[layer.inputs[0]], graph.tensors[layer.outputs[0]]
    if conv is None or ops.scale is None or code_format(x) != INT8 or code_format(out) != INT8 \
            or np.any(ops.w_zero_point != 0):
        raise ConfigError(f"{where}: the NPU's vector unit convolves int8 images with symmetric int8 weights to "
                          f"requantized int8 codes; this layer is {layer.source_op or layer.op.value} of "
                          f"{code_format(x).name} to {code_format(out).name} codes")
    if (conv.dh, conv.dw) != (1, 1):
        raise ConfigError(f"{where}: the NPU's vector unit convolves undilated windows, not dilation "
                          f"{(conv.dh, conv.dw)}")
    channels, kk = cmd.extent, conv.kh * conv.kw
    n = x.shape[0]
    if channels % 4:
        raise ConfigError(f"{where}: the NPU's vector unit convolves whole groups of 4 channels, not a chunk of "
                          f"{channels}")
    if cmd.elements != channels * n * conv.oh * conv.ow * kk:
        raise ConfigError(f"{where}: the NPU's vector unit computes a chunk's {channels} channels of {n} images of "
                          f"{conv.oh} x {conv.ow} outputs, {kk} taps each ({channels * n * conv.oh * conv.ow * kk} "
                          f"elements), not {cmd.elements}")
    low = INT8.min_int
    for fn in layer.attrs.get("fused", ()):
        if fn != "relu":
            raise ConfigError(f"{where}: the NPU's vector unit fuses ReLU only, not {fn!r}")
        low = max(low, int(ops.y_zero_point))
    try:
        return VectorStep(command=cmd.id, function="depthwise", low=low, a_zero_point=int(ops.x_zero_point),
                          y_zero_point=int(ops.y_zero_point), kernel_h=conv.kh, kernel_w=conv.kw, stride_h=conv.sh,
                          stride_w=conv.sw, pad_top=conv.pt, pad_left=conv.pl, channel_groups=channels // 4,
                          out_w=conv.ow, in_h=conv.h, in_w=conv.w, out_h=conv.oh, first_channel=base + cmd.origin)
    except EncodingError as e:
        raise ConfigError(f"{where}: {e}") from None
