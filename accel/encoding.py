"""The binary encoding of a command program: what an accelerator's command fetch reads.

:func:`encode_program` turns a program (the commands of a plan, in issue order) into bytes and
:func:`decode_program` turns those bytes back into the same commands. The image is little-endian
and made of four parts, each starting on a 64-byte boundary:

``header`` (64 bytes)
    ======  ======  ==========================================================================
    offset  type    field
    ======  ======  ==========================================================================
    0       8 B     magic ``b"ACCLPROG"``
    8       u16     format version (:data:`VERSION`)
    10      u16     bytes per command record (:data:`RECORD_BYTES`)
    12      u32     number of commands ``N``
    16      u32     number of dependency entries ``D``
    20      u32     number of strings ``S``
    24      u64     byte offset of the dependency table
    32      u64     byte offset of the string table
    40      u64     byte size of the string table
    48      16 B    zero
    ======  ======  ==========================================================================

``records`` (``N x 128`` bytes, at offset 64)
    One record per command; command ``i`` is record ``i`` (ids are the record index, so a program
    must number its commands ``0..N-1`` in issue order). Every record starts with 16 common bytes:

    ======  ======  ==========================================================================
    0       u8      opcode: 1 ``Load``, 2 ``Store``, 3 ``Move``, 4 ``Compute``, 5 ``Vector``
    1       u8      flags (per opcode, below)
    2       u16     zero
    4       u32     layer: index into the string table
    8       u32     first entry of this command's dependencies in the dependency table
    12      u32     number of dependencies
    ======  ======  ==========================================================================

    then 112 bytes of operands (unused bytes are zero):

    * ``Load`` / ``Store``: flags bit 0 = buffer (0 scratchpad, 1 accumulator), ``Store`` bit 1 =
      ``raw``; at 16 u32 tensor (string index), 20 u32 on-chip byte address, 24 u64 size in bytes,
      32 u64 DRAM byte address; ``Store`` at 40 u32 the activation its store path applies (string
      index + 1; 0: none); at 44 the DRAM block.
    * ``Move``: at 16 u32 tensor, 20 u32 accumulator (source) address, 24 u32 scratchpad
      (destination) address, 32 u64 size in bytes, 40 u32 activation (as ``Store``'s), 44 the
      destination block.
    * ``Compute``: flags bits 0-1 dataflow (0 WS, 1 OS, 2 IS), bit 2 accumulate, bit 3 fill, bit 4
      drain; at 16 u32 ``m``, 20 u32 ``k``, 24 u32 ``n``, 28 u32 ``batch``, 32 u32 input address, 36
      u32 weight address, 40 u32 output (accumulator) address, 44 u8 ``N`` and 45 u8 ``M`` of the
      N:M sparsity (both 0: dense), 48 u32 ``follows`` (the stream length of the fold its first fold
      overlaps with double-buffered weights; 0: none), 52 4 x u32 ``origin`` ``(b0, m0, k0, n0)``, 68
      the input block, 88 the weight block.
    * ``Vector``: at 16 u32 operation (string index), 20 u32 input address, 24 u32 output address,
      32 u64 elements, 40 u64 multiply-accumulates, 48 u32 second input address, 52 u32 ``origin``,
      56 u32 ``extent``, 60 the input block, 80 the second input's, 100 the output's, 120 u32
      ``part`` (the input of a concatenation it copies).

    A block (:class:`~accel.commands.Block`) is 5 x u32: rows, row bytes, row stride, planes, plane
    stride; all zero for none (contiguous, packed).

``dependencies`` (``D`` x u32)
    The ids each command waits for, command after command (a command's entries are ascending).

``strings`` (UTF-8, each string followed by one zero byte)
    Layer, tensor and operation names, in order of first use; index 0 is the first string.

Requantization table
--------------------
:func:`encode_requant_table` turns a :class:`RequantTable` (what the host writes into the NPU
before ``start``, as Gemmini's ``config_mvout`` sets a layer's ``acc_scale`` and activation before
its ``mvout``) into two arrays of u32 words, :func:`encode_vector_table` its vector steps into a
third, and :func:`decode_requant_table` turns them back. The program image does not change: a
Store, Move or Vector record carries no scale (the layer's configuration, not its data), so the
table names them by command id.

``steps`` (2 x u32 per command id ``0..N-1``, ``N`` the highest configured id plus one)
    ======  ==========  ======================================================================
    word    bits        field
    ======  ==========  ======================================================================
    0       0           enable (0: the command's accumulator reads saturate, unit scale)
    0       8..15       ``zero_point``: the output zero point (int8 code, two's complement)
    0       16..23      ``low``: the clamp's lower bound (int8 code; a fused ReLU raises it to
                        the zero point)
    0       24..31      ``high``: the clamp's upper bound (int8 code)
    1       0..15       ``first_channel``: the channel-table entry of the command's result 0
    1       16..31      ``columns``: the tile's columns; result ``i`` takes entry
                        ``first_channel + i % columns`` (per-channel parameters repeat along
                        a row-major ``m x columns`` tile), at least 1
    ======  ==========  ======================================================================

``channels`` (4 x u32 per channel-table entry)
    ======  ==========  ======================================================================
    0       0..31       ``bias`` (int32, two's complement): added to the accumulator (wrapping)
                        before the multiply
    1       0..31       ``multiplier`` (``0 .. 2**31 - 1``; TFLite's quantized multiplier)
    2       0..7        ``shift`` (``-31 .. 30``, two's complement): ``real ~ multiplier *
                        2**(shift - 31)``
    3                   zero
    ======  ==========  ======================================================================

Result ``i`` of an enabled command, channel ``c = first_channel + i % columns``, is
:func:`sim.numerics.requantize` ``(int32(acc + bias[c]), multiplier[c], shift[c], zero_point,
clamp_min=low, clamp_max=high)`` in the design's rounding mode.

``vector`` (:data:`VECTOR_STEP_WORDS` = 32 x u32 per command id ``0..N-1``, ``N`` the highest
configured id plus one; :func:`encode_vector_table`)
    What a Vector command computes (:class:`VectorStep`; a command without one is timed only and
    moves no data). Codes are int8, two's complement:

    ======  ==========  ======================================================================
    word    bits        field
    ======  ==========  ======================================================================
    0       0..3        ``function``: 0 none (timing only), 1 ``add``, 2 ``clamp``, 3 ``max``,
                        4 ``avg``, 5 ``depthwise``
    0       8..15       ``low``: the output clamp's lower bound (a ReLU's: the zero point)
    0       16..23      ``high``: the output clamp's upper bound
    1       0..7        ``a_zero_point``: the first input's zero point (``add``, ``depthwise``)
    1       8..15       ``b_zero_point``: the second input's zero point (``add``)
    1       16..23      ``y_zero_point``: the output zero point (``add``, ``avg``, ``depthwise``)
    2       0..31       ``a_multiplier`` (``0 .. 2**31 - 1``): the first input's rescale
    3       0..31       ``b_multiplier``: the second input's rescale
    4       0..31       ``y_multiplier``: the output's rescale (``add``, ``avg``)
    5       0..7        ``a_shift`` (``-31 .. 30``, two's complement)
    5       8..15       ``b_shift``
    5       16..23      ``y_shift``
    6       0..7        ``kernel_h``: a window's (``max``, ``avg``, ``depthwise``) rows (1..255;
                        others: 0)
    6       8..15       ``kernel_w``: its window columns
    6       16..23      ``stride_h``: its rows between windows
    6       24..31      ``stride_w``: its columns between windows
    7       0..7        ``pad_top``: input rows above the image the first window row starts at
    7       8..15       ``pad_left``: input columns left of the image
    7       16..31      ``band_row``: the row of its first image at ``input_addr`` (the chunk's
                        input band starts there)
    8       0..15       ``channel_groups``: the image's channels over 4 (one beat a pixel's group)
    8       16..31      ``out_w``: output columns
    9       0..15       ``in_h``: input rows of an image
    9       16..31      ``in_w``: input columns
    10      0..15       ``out_h``: output rows of an image
    10      16..31      ``first_row``: the output row of its image the chunk starts at
    11      0..31       ``start_offset`` (int32, derived): ``(top - band_row) row_bytes -
                        pad_left pixel_bytes``, the byte offset of the first window's top left
    12      0..31       ``row_bytes`` (derived): ``in_w pixel_bytes`` (``pixel_bytes = 4
                        channel_groups``)
    13      0..31       ``pixel_step`` (derived): ``stride_w pixel_bytes``
    14      0..31       ``row_step`` (derived): ``stride_h row_bytes``
    15      0..31       ``image_step`` (derived): ``in_h row_bytes - (out_h - 1) row_step``, from
                        an image's last window row to the next image's first
    16      0..15       ``top`` (int16, derived): ``first_row stride_h - pad_top``, the input row
                        of the first window's top
    16      16..31      ``taps`` (derived): ``kernel_h kernel_w``
    17      0..31       ``bias`` (int32): added to an ``avg`` window's sum before its rescale
    18      0..15       ``first_channel``: the channel-table entry of a ``depthwise`` chunk's
                        channel 0
    19..31              zero
    ======  ==========  ======================================================================

    The derived words are what the NPU adds instead of multiplying; :func:`decode_vector_table`
    checks them against the fields.

    Element ``i`` (of the command's ``elements``: byte ``input_addr + i``, for ``add`` also byte
    ``second_addr + i``, into byte ``output_addr + i`` of the scratchpad) of ``add`` is
    :func:`sim.numerics.tflite_add_codes` ``(a, b, a_zero_point, b_zero_point, ((a_multiplier,
    a_shift), (b_multiplier, b_shift), (y_multiplier, y_shift)), y_zero_point)`` clamped to ``[low,
    high]`` (TFLite's quantized ``ADD``, left shift 20, in the design's rounding mode); of ``clamp``
    ``clamp(a, low, high)`` (a ReLU: ``low`` is the zero point; a copy: the whole int8 range).

    ``max`` is a windowed max pool on a chunk of output rows of channels-last int8 images
    (``4 channel_groups`` channels a pixel): beat ``t < elements / 4`` (4 channels of one pixel) is
    tap ``(i, j)`` (``j`` fastest) of channel group ``g`` of output pixel ``(y, x)`` of the chunk, in
    the order ``y, x, g, i, j``; the chunk's rows are output rows ``first_row ..`` of its first image,
    then rows ``0 ..`` of the images after it (a chunk that spans images starts at row 0). The tap's
    input pixel is row ``r stride_h - pad_top + i``, column ``x stride_w - pad_left + j`` of its image
    (``r`` the output row); one outside the ``in_h x in_w`` image is padding and is not read, else its
    4 bytes are those at ``input_addr + (n in_h - band_row + row) row_bytes + column pixel_bytes +
    4 g`` (``n`` the image's index in the chunk). The ``kernel_h kernel_w`` beats of a group write the
    4 lanes' maxima over their read taps, clamped to ``[low, high]``, as word ``t // (kernel_h
    kernel_w)`` at ``output_addr``.

    ``avg`` walks its windows as ``max`` does (a global average pool: one window of ``in_h x in_w``
    a channel group, ``out_h = out_w = 1``, the chunk's images one after another) and writes each
    group's 4 lanes' :func:`sim.numerics.multiply_by_quantized_multiplier` ``(sum + bias,
    y_multiplier, y_shift) + y_zero_point`` (the sum of its read taps' codes; ``bias`` is minus the
    input zero point times the taps), clamped to ``[low, high]``, in the design's rounding mode.

    ``depthwise`` walks its windows as ``max`` does (a depthwise convolution of a chunk of
    ``4 channel_groups`` channels, every image whole: ``first_row = band_row = 0``) and multiplies
    each read tap's codes minus ``a_zero_point`` by the channel's int8 weight of the tap, the
    weights ``kernel_h kernel_w`` bytes a channel from ``second_addr`` (channel ``c``'s tap ``(i,
    j)`` at ``second_addr + (c kernel_h + i) kernel_w + j``); lane ``l`` of group ``g`` is channel
    ``c = 4 g + l`` of the chunk, its sum requantized by channel-table entry ``first_channel + c``
    as a Store's (:func:`sim.numerics.requantize` of ``int32(sum + bias)``, ``multiplier``,
    ``shift``, ``y_zero_point``, clamped to ``[low, high]``: a fused ReLU raises ``low``).

Feeder table
------------
:func:`encode_feeder_table` turns a :class:`FeederTable` into u32 words the host writes with the
requantization table (the NPU's ``rq_*`` port, ``rq_table`` 3), :func:`decode_feeder_table` back. It
tells the array's input feeder how a Compute of a convolution gathers its ``m x k`` im2col rows from
the input band the mapper loaded (:func:`mapper.layout.conv_band`: pixels ``[p0, p1)`` x channels
``[ch0, ch1)``, pixel-major), as ``sim.execute`` does; a Compute without a step reads its input
literally (the row-major ``batch x m x k`` bytes at ``input_addr``).

``feeder`` (:data:`FEEDER_STEP_WORDS` = 32 x u32 per command id ``0..N-1``, ``N`` the highest configured id plus one)
    ======  ==========  ======================================================================
    word    bits        field
    ======  ==========  ======================================================================
    0       0           enable (0: the command reads its input literally)
    0       8..15       ``zero_point``: the input zero point (int8 code), read in the padding
    0       16..23      ``kh``: the kernel's rows (1 .. 255)
    0       24..31      ``kw``: the kernel's columns
    1       0..31       ``base`` (int32, two's complement): the address of image 0, output
                        pixel (0, 0), window element (0, 0, 0), group 0 (may lie outside the
                        scratchpad: addresses are taken modulo its size)
    2       0..15       ``in_h``: the input image's height (the padding test)
    2       16..31      ``in_w``: its width
    3       0..15       ``out_h``: the output image's height (the pixel counters wrap at it)
    3       16..31      ``out_w``: its width
    4       0..7        ``sh``: the vertical stride; 8..15 ``sw`` horizontal; 16..23 ``dh`` the
                        vertical dilation; 24..31 ``dw`` the horizontal one
    5       0..7        ``pt``: the top padding; 8..15 ``pl`` the left padding; 16..23 ``first_i``,
                        24..31 ``first_j``: the kernel row and column of tile column 0
    6       0..15       ``first_image``: the image of tile row 0; 16..31 ``first_c``: the
                        channel (within its group) of tile column 0
    7       0..15       ``first_oh``: the output row of tile row 0; 16..31 ``first_ow`` its column
    8       0..31       ``image_stride``: bytes from an image's pixel to the next image's
    9       0..31       ``row_stride``: bytes per output row (``sh`` input rows)
    10      0..31       ``col_stride``: bytes per output column (``sw`` input pixels)
    11      0..31       ``kernel_row_stride``: bytes per kernel row (``dh`` input rows)
    12      0..31       ``kernel_col_stride``: bytes per kernel column (``dw`` input pixels)
    13      0..31       ``group_stride``: bytes from a group's channels to the next group's
                        (product ``b`` of the batch is the tile's ``b``-th group)
    14      0..31       derived (:attr:`FeederStep.first_terms`, so the hardware multiplies
                        nothing): ``first_c + first_i kernel_row_stride``
    15      0..31       derived: word 14 ``+ first_j kernel_col_stride``
    16      0..15       derived: ``first_i dh``; 16..31 ``first_j dw``
    17      0..31       derived: ``first_image image_stride``
    18      0..31       derived: word 17 ``+ first_oh row_stride``
    19      0..31       derived: word 18 ``+ first_ow col_stride``
    20      0..15       derived: ``first_oh sh - pt`` (int16); 16..31 ``first_ow sw - pl``
    21..31              zero
    ======  ==========  ======================================================================

    Decoding reads words 0..13 (the derived words follow from them).

    Tile row ``r`` is output pixel ``(image, oh, ow)``: ``first + r`` counted in ``out_h x out_w``
    images from ``(first_image, first_oh, first_ow)``; tile column ``q`` is window element ``(c, i,
    j)``: ``first + q`` counted in ``kh x kw`` windows from ``(first_c, first_i, first_j)``. Its input
    row is ``ih = oh sh - pt + i dh`` and column ``iw = ow sw - pl + j dw``; the byte of product ``b``
    is the input zero point unless ``0 <= ih < in_h`` and ``0 <= iw < in_w``, else the scratchpad
    byte at ``base + image image_stride + oh row_stride + ow col_stride + i kernel_row_stride + j
    kernel_col_stride + c + b group_stride`` (:meth:`FeederStep.address`). The address is linear in
    counters, so the hardware steps it with adders only.

Encoding refuses what it cannot represent (a field too wide for its slot, ids out of order, a
dependency on a later command, a command field this format has no slot for) with an
:class:`EncodingError` naming the command and field; decoding refuses a truncated or foreign image.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from accel.commands import Block, Buffer, Command, Compute, Load, Move, Store, Vector
from accel.errors import AccelError
from accel.hardware import Dataflow, Sparsity

__all__ = ["EncodingError", "MAGIC", "RECORD_BYTES", "VECTOR_FUNCTIONS", "VECTOR_STEP_WORDS", "VERSION",
           "RequantChannel", "RequantStep", "RequantTable", "VectorStep", "decode_program", "decode_requant_table",
           "decode_vector_table", "encode_program", "encode_requant_table", "encode_vector_table",
           "FEEDER_STEP_USED", "FEEDER_STEP_WORDS", "FeederStep", "FeederTable", "decode_feeder_table",
           "encode_feeder_table"]

MAGIC = b"ACCLPROG"
VERSION = 2
RECORD_BYTES = 128
_HEADER = struct.Struct("<8sHHIIIQQQ16x")
_COMMON = struct.Struct("<BBxxIII")
_OPCODES: dict[type[Command], int] = {Load: 1, Store: 2, Move: 3, Compute: 4, Vector: 5}
_KINDS = {code: kind for kind, code in _OPCODES.items()}
_DATAFLOWS = (Dataflow.WS, Dataflow.OS, Dataflow.IS)
_BLOCK = "5I"  # rows, row_bytes, row_stride, planes, plane_stride (all zero: none)
_PAYLOAD = {
    Load: struct.Struct("<IIQQ4x" + _BLOCK),
    Store: struct.Struct("<IIQQI" + _BLOCK),
    Move: struct.Struct("<III4xQI" + _BLOCK),
    Compute: struct.Struct("<IIIIIIIBBxxI4I" + _BLOCK + _BLOCK),
    Vector: struct.Struct("<III4xQQIII" + _BLOCK * 3 + "I"),
}
#: The fields each record carries (beyond ``id``, ``layer`` and ``deps``); anything else is refused.
_FIELDS = {
    Load: ("tensor", "buffer", "addr", "size_bytes", "dram_addr", "dram"),
    Store: ("tensor", "buffer", "addr", "size_bytes", "dram_addr", "activation", "dram", "raw"),
    Move: ("tensor", "src_addr", "addr", "size_bytes", "activation", "dst"),
    Compute: ("dataflow", "accumulate", "fill", "drain", "m", "k", "n", "batch", "input_addr", "weight_addr",
              "output_addr", "sparsity", "follows", "origin", "input_block", "weight_block"),
    Vector: ("op", "input_addr", "output_addr", "elements", "macs", "second_addr", "origin", "extent",
             "input_block", "second_block", "output_block", "part"),
}
_U8, _U16, _U32, _U64 = 2**8 - 1, 2**16 - 1, 2**32 - 1, 2**64 - 1


class EncodingError(AccelError):
    """A program cannot be encoded in (or decoded from) the binary format."""


def encode_program(commands: Sequence[Command]) -> bytes:
    """The binary image of ``commands`` (a plan's ``commands``, in issue order)."""
    strings: dict[str, int] = {}
    deps: list[int] = []
    records = bytearray()

    def string(text: str) -> int:
        return strings.setdefault(text, len(strings))

    for index, cmd in enumerate(commands):
        kind = type(cmd)
        if kind not in _OPCODES:
            raise EncodingError(f"Command {index} is a {kind.__name__}, which has no opcode")
        if cmd.id != index:
            raise EncodingError(f"Command ids must number the program 0..N-1 in order; command {index} has id {cmd.id}")
        _check_fields(cmd)
        later = [d for d in cmd.deps if not 0 <= d < index]
        if later:
            raise EncodingError(f"Command {index} depends on {later[0]}, which is not an earlier command")
        layer = string(cmd.layer)
        flags, payload = _operands(cmd, string)
        records += _COMMON.pack(_OPCODES[kind], flags, layer, len(deps), len(cmd.deps))
        records += payload.ljust(RECORD_BYTES - _COMMON.size, b"\0")
        deps.extend(sorted(cmd.deps))
    text = b"".join(s.encode() + b"\0" for s in strings)
    deps_offset = _align(_HEADER.size + len(records))
    strings_offset = _align(deps_offset + 4 * len(deps))
    image = bytearray(_align(strings_offset + len(text)))
    image[:_HEADER.size] = _HEADER.pack(MAGIC, VERSION, RECORD_BYTES, len(commands), len(deps), len(strings),
                                        deps_offset, strings_offset, len(text))
    image[_HEADER.size:_HEADER.size + len(records)] = records
    image[deps_offset:deps_offset + 4 * len(deps)] = struct.pack(f"<{len(deps)}I", *deps)
    image[strings_offset:strings_offset + len(text)] = text
    return bytes(image)


def decode_program(data: bytes) -> tuple[Command, ...]:
    """The commands an image of :func:`encode_program` holds."""
    if len(data) < _HEADER.size:
        raise EncodingError(f"A program image needs at least {_HEADER.size} bytes of header, not {len(data)}")
    magic, version, record_bytes, count, ndeps, nstrings, deps_offset, strings_offset, text_bytes = \
        _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise EncodingError(f"Not a program image: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION or record_bytes != RECORD_BYTES:
        raise EncodingError(f"Program image version {version} with {record_bytes}-byte records; this tool reads "
                            f"version {VERSION} with {RECORD_BYTES}-byte records")
    end = max(_HEADER.size + count * RECORD_BYTES, deps_offset + 4 * ndeps, strings_offset + text_bytes)
    if len(data) < end:
        raise EncodingError(f"Program image truncated: {len(data)} bytes, its header needs {end}")
    deps = struct.unpack_from(f"<{ndeps}I", data, deps_offset)
    names = bytes(data[strings_offset:strings_offset + text_bytes]).split(b"\0")[:-1]
    if len(names) != nstrings:
        raise EncodingError(f"Program image string table holds {len(names)} strings, its header says {nstrings}")
    strings = [n.decode() for n in names]
    commands = []
    for index in range(count):
        at = _HEADER.size + index * RECORD_BYTES
        opcode, flags, layer, first, ndep = _COMMON.unpack_from(data, at)
        if opcode not in _KINDS:
            raise EncodingError(f"Command {index} has opcode {opcode}, not one of {sorted(_KINDS)}")
        kind = _KINDS[opcode]
        values = _PAYLOAD[kind].unpack_from(data, at + _COMMON.size)
        if kind is Compute and flags & 3 == 3:
            raise EncodingError(f"Command {index}: Compute dataflow code 3 is not one of 0 (WS), 1 (OS), 2 (IS)")
        fields = _fields(kind, flags, values, strings)
        commands.append(kind(id=index, layer=strings[layer], deps=tuple(deps[first:first + ndep]), **fields))
    return tuple(commands)


def _operands(cmd: Command, string) -> tuple[int, bytes]:  # noqa: ANN001 - the string-table callback
    """``(flags, payload)`` of one command, every value checked against its slot's width."""
    kind = type(cmd)
    if isinstance(cmd, Load | Store):
        values = (string(cmd.tensor), _fit(cmd, "addr", _U32), _fit(cmd, "size_bytes", _U64),
                  _fit(cmd, "dram_addr", _U64))
        flags = int(cmd.buffer is Buffer.ACCUMULATOR)
        if isinstance(cmd, Store):
            values += (string(cmd.activation) + 1 if cmd.activation else 0,)
            flags |= cmd.raw << 1
        return flags, _PAYLOAD[kind].pack(*values, *_block(cmd, cmd.dram))
    if isinstance(cmd, Move):
        values = (string(cmd.tensor), _fit(cmd, "src_addr", _U32), _fit(cmd, "addr", _U32),
                  _fit(cmd, "size_bytes", _U64), string(cmd.activation) + 1 if cmd.activation else 0)
        return 0, _PAYLOAD[kind].pack(*values, *_block(cmd, cmd.dst))
    if isinstance(cmd, Compute):
        flags = _DATAFLOWS.index(cmd.dataflow) | cmd.accumulate << 2 | cmd.fill << 3 | cmd.drain << 4
        nm = cmd.sparsity
        values = (*(_fit(cmd, f, _U32) for f in ("m", "k", "n", "batch", "input_addr", "weight_addr", "output_addr")),
                  0 if nm is None else _fit(nm, "n", _U8), 0 if nm is None else _fit(nm, "m", _U8),
                  _fit(cmd, "follows", _U32), *(_word(cmd, "origin", v) for v in cmd.origin))
        return flags, _PAYLOAD[kind].pack(*values, *_block(cmd, cmd.input_block), *_block(cmd, cmd.weight_block))
    assert isinstance(cmd, Vector)
    values = (string(cmd.op), _fit(cmd, "input_addr", _U32), _fit(cmd, "output_addr", _U32),
              _fit(cmd, "elements", _U64), _fit(cmd, "macs", _U64), _fit(cmd, "second_addr", _U32),
              _fit(cmd, "origin", _U32), _fit(cmd, "extent", _U32))
    return 0, _PAYLOAD[kind].pack(*values, *_block(cmd, cmd.input_block), *_block(cmd, cmd.second_block),
                                  *_block(cmd, cmd.output_block), _fit(cmd, "part", _U32))


def _block(cmd: Command, block: Block | None) -> tuple[int, ...]:
    if block is None:
        return (0,) * 5
    return tuple(_word(cmd, f"block {f}", getattr(block, f))
                 for f in ("rows", "row_bytes", "row_stride", "planes", "plane_stride"))


def _word(cmd: Command, name: str, value: int) -> int:
    if not (isinstance(value, int) and 0 <= value <= _U32):
        raise EncodingError(f"Command {cmd.id}: {type(cmd).__name__} {name} must be an integer in 0..{_U32}, "
                            f"not {value!r}")
    return value


def _unblock(values: tuple[int, ...]) -> Block | None:
    return None if not any(values) else Block(*values)


def _fields(kind: type[Command], flags: int, values: tuple, strings: list[str]) -> dict[str, object]:
    if kind in (Load, Store):
        tensor, addr, size, dram, *rest = values
        fields = dict(tensor=strings[tensor], addr=addr, size_bytes=size, dram_addr=dram,
                      buffer=Buffer.ACCUMULATOR if flags & 1 else Buffer.SCRATCHPAD, dram=_unblock(tuple(rest[-5:])))
        if kind is Store:
            fields["raw"] = bool(flags & 2)
            if rest[0]:
                fields["activation"] = strings[rest[0] - 1]
        return fields
    if kind is Move:
        tensor, src, addr, size, activation, *dst = values
        return dict(tensor=strings[tensor], src_addr=src, addr=addr, size_bytes=size,
                    activation=strings[activation - 1] if activation else "", dst=_unblock(tuple(dst)))
    if kind is Compute:
        m, k, n, batch, in_addr, w_addr, out_addr, nm_n, nm_m, follows = values[:10]
        return dict(m=m, k=k, n=n, batch=batch, input_addr=in_addr, weight_addr=w_addr, output_addr=out_addr,
                    dataflow=_DATAFLOWS[flags & 3], accumulate=bool(flags & 4), fill=bool(flags & 8),
                    drain=bool(flags & 16), sparsity=Sparsity(nm_n, nm_m) if nm_m else None, follows=follows,
                    origin=tuple(values[10:14]), input_block=_unblock(values[14:19]),
                    weight_block=_unblock(values[19:24]))
    op, in_addr, out_addr, elements, macs, second, origin, extent = values[:8]
    return dict(op=strings[op], input_addr=in_addr, output_addr=out_addr, elements=elements, macs=macs,
                second_addr=second, origin=origin, extent=extent, input_block=_unblock(values[8:13]),
                second_block=_unblock(values[13:18]), output_block=_unblock(values[18:23]), part=values[23])


def _check_fields(cmd: Command) -> None:
    """Refuse a command whose class has gained a field this format has no slot for (unless default)."""
    known = {"id", "layer", "deps", *_FIELDS[type(cmd)]}
    for f in dataclasses.fields(cmd):
        if f.name not in known and getattr(cmd, f.name) != f.default:
            raise EncodingError(f"Command {cmd.id}: {type(cmd).__name__} field {f.name!r} has no slot in "
                                f"program format version {VERSION}")


def _fit(obj: object, name: str, limit: int) -> int:
    value = getattr(obj, name)
    if not (isinstance(value, int) and 0 <= value <= limit):
        ident = getattr(obj, "id", None)
        where = f"Command {ident}: {type(obj).__name__}" if ident is not None else type(obj).__name__
        raise EncodingError(f"{where} field {name!r} must be an integer in 0..{limit}, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class RequantStep:
    """How one Store or Move (by command id) requantizes its accumulator reads (module docstring)."""

    command: int
    first_channel: int
    columns: int
    zero_point: int
    low: int = -128
    high: int = 127

    def __post_init__(self) -> None:
        _check_range(f"Requantization step of command {self.command}", (
            ("command", self.command, 0, _U32 // 2), ("first_channel", self.first_channel, 0, _U16),
            ("columns", self.columns, 1, _U16), ("zero_point", self.zero_point, -128, 127),
            ("low", self.low, -128, 127), ("high", self.high, -128, 127)))
        if self.low > self.high:
            raise EncodingError(f"Requantization step of command {self.command}: low must be at most high, "
                                f"not {self.low} > {self.high}")


@dataclass(frozen=True, slots=True)
class RequantChannel:
    """One channel-table entry: the bias, multiplier and shift of an output channel."""

    bias: int
    multiplier: int
    shift: int

    def __post_init__(self) -> None:
        _check_range("Requantization channel", (
            ("bias", self.bias, -(1 << 31), (1 << 31) - 1), ("multiplier", self.multiplier, 0, (1 << 31) - 1),
            ("shift", self.shift, -31, 30)))


VECTOR_FUNCTIONS = ("add", "clamp", "max", "avg", "depthwise")
"""What a :class:`VectorStep` may compute: its ``function`` code is the index here plus one."""

VECTOR_STEP_WORDS = 32
"""u32 words of one command's vector step in :func:`encode_vector_table`'s table."""

_POOL_FIELDS = (("kernel_h", 1, 255), ("kernel_w", 1, 255), ("stride_h", 1, 255), ("stride_w", 1, 255),
                ("pad_top", 0, 255), ("pad_left", 0, 255), ("band_row", 0, 0xFFFF), ("channel_groups", 1, 0xFFFF),
                ("out_w", 1, 0xFFFF), ("in_h", 1, 0xFFFF), ("in_w", 1, 0xFFFF), ("out_h", 1, 0xFFFF),
                ("first_row", 0, 0xFFFF))
_POOLS = ("max", "avg", "depthwise")  # the functions that walk windows (and have a geometry)


@dataclass(frozen=True, slots=True)
class VectorStep:
    """What one Vector command (by command id) computes on its elements (module docstring): TFLite's
    quantized ``add`` of two int8 operands, a ``clamp`` of one (a ReLU, a copy), a ``max`` pool
    of a chunk of output rows with its geometry (``kernel_h`` .. ``first_row``: all zero but for
    the windowed functions; its derived words are properties), an ``avg`` pool (a global average
    pool: the geometry, ``bias`` and the output's rescale) or a ``depthwise`` convolution of a chunk
    of channels (the geometry, the zero points, ``first_channel`` of its channel-table entries)."""

    command: int
    function: str
    low: int = -128
    high: int = 127
    a_zero_point: int = 0
    b_zero_point: int = 0
    y_zero_point: int = 0
    a_multiplier: int = 0
    a_shift: int = 0
    b_multiplier: int = 0
    b_shift: int = 0
    y_multiplier: int = 0
    y_shift: int = 0
    kernel_h: int = 0
    kernel_w: int = 0
    stride_h: int = 0
    stride_w: int = 0
    pad_top: int = 0
    pad_left: int = 0
    band_row: int = 0
    channel_groups: int = 0
    out_w: int = 0
    in_h: int = 0
    in_w: int = 0
    out_h: int = 0
    first_row: int = 0
    bias: int = 0
    first_channel: int = 0

    def __post_init__(self) -> None:
        what = f"Vector step of command {self.command}"
        if self.function not in VECTOR_FUNCTIONS:
            raise EncodingError(f"{what}: function must be one of {', '.join(VECTOR_FUNCTIONS)}, not "
                                f"{self.function!r}")
        codes = [(f, getattr(self, f), -128, 127) for f in ("low", "high", "a_zero_point", "b_zero_point",
                                                            "y_zero_point")]
        scales = [(f, getattr(self, f), lo, hi) for p in "aby" for f, lo, hi in
                  ((f"{p}_multiplier", 0, (1 << 31) - 1), (f"{p}_shift", -31, 30))]
        _check_range(what, (("command", self.command, 0, _U32 // 2), *codes, *scales,
                            ("bias", self.bias, -(1 << 31), (1 << 31) - 1),
                            ("first_channel", self.first_channel, 0, 0xFFFF)))
        if self.low > self.high:
            raise EncodingError(f"{what}: low must be at most high, not {self.low} > {self.high}")
        if self.function in _POOLS:
            _check_range(what, tuple((f, getattr(self, f), lo, hi) for f, lo, hi in _POOL_FIELDS))
            if self.first_row >= self.out_h:
                raise EncodingError(f"{what}: first_row must be below out_h, not {self.first_row} >= {self.out_h}")
            _check_range(what, (("top", self.top, -(1 << 15), (1 << 15) - 1),
                                *((f, getattr(self, f), -(1 << 31), _U32 // 2) for f in
                                  ("start_offset", "row_bytes", "pixel_step", "row_step", "image_step"))))
        elif any(getattr(self, f) for f, _, _ in _POOL_FIELDS):
            given = ", ".join(f"{f}={getattr(self, f)}" for f, _, _ in _POOL_FIELDS if getattr(self, f))
            raise EncodingError(f"{what}: only a max, avg or depthwise step has a window geometry; this "
                                f"{self.function} step has {given}")
        if self.bias and self.function != "avg":
            raise EncodingError(f"{what}: only an avg step has a bias; this {self.function} step has {self.bias}")
        if self.first_channel and self.function != "depthwise":
            raise EncodingError(f"{what}: only a depthwise step has a first channel; this {self.function} step has "
                                f"{self.first_channel}")
        if self.function == "depthwise" and (self.first_row or self.band_row):
            raise EncodingError(f"{what}: a depthwise step's chunk is whole images, not from row {self.first_row} "
                                f"(band row {self.band_row})")

    @property
    def taps(self) -> int:
        """Beats of one output word of a pool step: its window's ``kernel_h kernel_w`` taps."""
        return self.kernel_h * self.kernel_w

    @property
    def pixel_bytes(self) -> int:
        """Bytes of one input pixel (all its channels, 4 a group) of a pool step."""
        return 4 * self.channel_groups

    @property
    def row_bytes(self) -> int:
        """Bytes of one input row of a pool step's image."""
        return self.in_w * self.pixel_bytes

    @property
    def pixel_step(self) -> int:
        """Bytes from one window to the next along an output row."""
        return self.stride_w * self.pixel_bytes

    @property
    def row_step(self) -> int:
        """Bytes from one output row's first window to the next row's."""
        return self.stride_h * self.row_bytes

    @property
    def image_step(self) -> int:
        """Bytes from an image's last output row's first window to the next image's first."""
        return self.in_h * self.row_bytes - (self.out_h - 1) * self.row_step

    @property
    def top(self) -> int:
        """The input row (of its image) of the chunk's first window's top: ``first_row stride_h - pad_top``."""
        return self.first_row * self.stride_h - self.pad_top

    @property
    def start_offset(self) -> int:
        """Byte offset from ``input_addr`` of the chunk's first window's top left (possibly padding)."""
        return (self.top - self.band_row) * self.row_bytes - self.pad_left * self.pixel_bytes

    @property
    def multipliers(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """The ``(multiplier, shift)`` pairs of the inputs and the output (:func:`sim.numerics.tflite_add_codes`)."""
        return ((self.a_multiplier, self.a_shift), (self.b_multiplier, self.b_shift),
                (self.y_multiplier, self.y_shift))


@dataclass(frozen=True, slots=True)
class RequantTable:
    """The host-written requantization configuration: the steps of the configured commands (one per
    command id at most) and the channel table they index, and what the configured Vector commands
    compute (``vector``, one step per command id at most)."""

    steps: tuple[RequantStep, ...] = ()
    channels: tuple[RequantChannel, ...] = ()
    vector: tuple[VectorStep, ...] = ()

    def __post_init__(self) -> None:
        ids = [s.command for s in self.steps]
        if len(set(ids)) != len(ids):
            raise EncodingError(f"Requantization table configures command {_first_repeat(ids)} twice")
        vector_ids = [s.command for s in self.vector]
        if len(set(vector_ids)) != len(vector_ids):
            raise EncodingError(f"Requantization table configures vector command {_first_repeat(vector_ids)} twice")
        for v in self.vector:
            if v.function == "depthwise" and v.first_channel + v.pixel_bytes > len(self.channels):
                raise EncodingError(f"Vector step of command {v.command}: channels {v.first_channel}.."
                                    f"{v.first_channel + v.pixel_bytes - 1} beyond the table's {len(self.channels)}")
        for s in self.steps:
            if s.first_channel + s.columns > len(self.channels):
                raise EncodingError(f"Requantization step of command {s.command}: channels {s.first_channel}.."
                                    f"{s.first_channel + s.columns - 1} beyond the table's {len(self.channels)}")

    def step(self, command: int) -> RequantStep | None:
        """The step of ``command`` (``None``: not configured, unit scale)."""
        return next((s for s in self.steps if s.command == command), None)

    def vector_step(self, command: int) -> VectorStep | None:
        """The vector step of ``command`` (``None``: not configured, timed only)."""
        return next((s for s in self.vector if s.command == command), None)


def encode_requant_table(table: RequantTable) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ``(steps, channels)`` words the host writes (module docstring)."""
    count = max((s.command + 1 for s in table.steps), default=0)
    steps = [0] * (2 * count)
    for s in table.steps:
        steps[2 * s.command] = 1 | (s.zero_point & 0xFF) << 8 | (s.low & 0xFF) << 16 | (s.high & 0xFF) << 24
        steps[2 * s.command + 1] = s.first_channel | s.columns << 16
    channels: list[int] = []
    for c in table.channels:
        channels += [c.bias & _U32, c.multiplier, c.shift & 0xFF, 0]
    return tuple(steps), tuple(channels)


def decode_requant_table(steps: Sequence[int], channels: Sequence[int], vector: Sequence[int] = ()) -> RequantTable:
    """The table :func:`encode_requant_table` wrote as ``steps`` and ``channels`` (and
    :func:`encode_vector_table` as ``vector``)."""
    if len(steps) % 2 or len(channels) % 4:
        raise EncodingError(f"Requantization table words must be whole entries (2 per step, 4 per channel), "
                            f"not {len(steps)} and {len(channels)}")
    out = []
    for command in range(len(steps) // 2):
        w0, w1 = steps[2 * command], steps[2 * command + 1]
        if w0 & 1:
            out.append(RequantStep(command=command, first_channel=w1 & _U16, columns=w1 >> 16,
                                   zero_point=_s8(w0 >> 8), low=_s8(w0 >> 16), high=_s8(w0 >> 24)))
    table = tuple(RequantChannel(bias=_s32(channels[i]), multiplier=channels[i + 1], shift=_s8(channels[i + 2]))
                  for i in range(0, len(channels), 4))
    return RequantTable(tuple(out), table, decode_vector_table(vector))


def encode_vector_table(table: RequantTable) -> tuple[int, ...]:
    """The ``vector`` words the host writes (module docstring): :data:`VECTOR_STEP_WORDS` per command id
    up to the highest configured."""
    count = max((s.command + 1 for s in table.vector), default=0)
    words = [0] * (VECTOR_STEP_WORDS * count)
    for s in table.vector:
        at = VECTOR_STEP_WORDS * s.command
        words[at] = VECTOR_FUNCTIONS.index(s.function) + 1 | (s.low & 0xFF) << 8 | (s.high & 0xFF) << 16
        words[at + 1] = (s.a_zero_point & 0xFF) | (s.b_zero_point & 0xFF) << 8 | (s.y_zero_point & 0xFF) << 16
        words[at + 2:at + 5] = s.a_multiplier, s.b_multiplier, s.y_multiplier
        words[at + 5] = (s.a_shift & 0xFF) | (s.b_shift & 0xFF) << 8 | (s.y_shift & 0xFF) << 16
        if s.function in _POOLS:
            words[at + 6:at + 17] = _pool_words(s)
        words[at + 17] = s.bias & _U32
        words[at + 18] = s.first_channel
    return tuple(words)


def _pool_words(s: VectorStep) -> tuple[int, ...]:
    """Words 6..16 of a pool step: its geometry, then what the NPU derives from it by adding."""
    return (s.kernel_h | s.kernel_w << 8 | s.stride_h << 16 | s.stride_w << 24,
            s.pad_top | s.pad_left << 8 | s.band_row << 16, s.channel_groups | s.out_w << 16, s.in_h | s.in_w << 16,
            s.out_h | s.first_row << 16, s.start_offset & _U32, s.row_bytes, s.pixel_step, s.row_step & _U32,
            s.image_step & _U32, s.top & 0xFFFF | s.taps << 16)


def decode_vector_table(words: Sequence[int]) -> tuple[VectorStep, ...]:
    """The vector steps :func:`encode_vector_table` wrote as ``words`` (a pool step's derived words
    must be its fields')."""
    n = VECTOR_STEP_WORDS
    if len(words) % n:
        raise EncodingError(f"Vector table words must be whole entries ({n} per command), not {len(words)}")
    out = []
    for command in range(len(words) // n):
        w = words[n * command:n * command + n]
        function = w[0] & 0xF
        if not function:
            continue
        if function > len(VECTOR_FUNCTIONS):
            raise EncodingError(f"Vector step of command {command}: function code {function} is not one of "
                                f"1..{len(VECTOR_FUNCTIONS)}")
        name = VECTOR_FUNCTIONS[function - 1]
        pool = {}
        if name in _POOLS:
            fields = [w[6] >> 8 * i & 0xFF for i in range(4)] + [w[7] & 0xFF, w[7] >> 8 & 0xFF, w[7] >> 16] + \
                [w[k] >> 16 * h & 0xFFFF for k in (8, 9, 10) for h in (0, 1)]
            pool = dict(zip((f for f, _, _ in _POOL_FIELDS), fields, strict=True))
        step = VectorStep(command=command, function=name, low=_s8(w[0] >> 8), high=_s8(w[0] >> 16),
                          a_zero_point=_s8(w[1]), b_zero_point=_s8(w[1] >> 8), y_zero_point=_s8(w[1] >> 16),
                          a_multiplier=w[2], b_multiplier=w[3], y_multiplier=w[4], a_shift=_s8(w[5]),
                          b_shift=_s8(w[5] >> 8), y_shift=_s8(w[5] >> 16), bias=_s32(w[17]),
                          first_channel=w[18] & 0xFFFF, **pool)
        expected = _pool_words(step) if name in _POOLS else (0,) * 11
        if tuple(w[6:17]) != expected or w[18] >> 16 or any(w[19:]):
            raise EncodingError(f"Vector step of command {command}: words 6..{n - 1} must be its {name} step's "
                                f"{', '.join(map(str, expected))}, its bias, first channel and zero, not "
                                f"{', '.join(map(str, w[6:]))}")
        out.append(step)
    return tuple(out)


def _s8(value: int) -> int:
    value &= 0xFF
    return value - 256 if value & 0x80 else value


def _s32(value: int) -> int:
    value &= _U32
    return value - (1 << 32) if value >> 31 else value


def _first_repeat(values: list[int]) -> int:
    seen: set[int] = set()
    return next(v for v in values if v in seen or seen.add(v))  # type: ignore[func-returns-value]


def _check_range(what: str, fields: tuple[tuple[str, int, int, int], ...]) -> None:
    for name, value, low, high in fields:
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            raise EncodingError(f"{what}: {name} must be an integer in {low}..{high}, not {value!r}")


def _align(offset: int) -> int:
    return -(-offset // 64) * 64


FEEDER_STEP_WORDS = 32
"""u32 words per command id of the feeder table (:func:`encode_feeder_table`)."""
FEEDER_STEP_USED = 21
"""... of which the first 21 hold a step (the rest are written zero and the NPU does not store them)."""


@dataclass(frozen=True, slots=True)
class FeederStep:
    """How one Compute (by command id) gathers its input: im2col rows of a convolution's input band
    (module docstring, ``feeder``). Tile row ``r`` is output pixel ``first + r`` of the ``out_h x
    out_w`` images, tile column ``q`` reduction element ``first + q`` of the ``channel x kh x kw``
    window, product ``b`` the ``b``-th group from the tile's first; the byte of a pixel, window
    element and group is at ``base`` plus the strides times their coordinates, or the input zero
    point where the window is in the padding."""

    command: int
    zero_point: int
    base: int
    kh: int
    kw: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    image_stride: int
    row_stride: int
    col_stride: int
    kernel_row_stride: int
    kernel_col_stride: int
    group_stride: int = 0
    sh: int = 1
    sw: int = 1
    dh: int = 1
    dw: int = 1
    pt: int = 0
    pl: int = 0
    first_image: int = 0
    first_oh: int = 0
    first_ow: int = 0
    first_c: int = 0
    first_i: int = 0
    first_j: int = 0

    def __post_init__(self) -> None:
        what = f"Feeder step of command {self.command}"
        strides = ("image_stride", "row_stride", "col_stride", "kernel_row_stride", "kernel_col_stride",
                   "group_stride")
        _check_range(what, (
            ("command", self.command, 0, _U32 // 2), ("zero_point", self.zero_point, -128, 127),
            ("base", self.base, -(1 << 31), (1 << 31) - 1),
            *((f, getattr(self, f), 1, _U8) for f in ("kh", "kw", "sh", "sw", "dh", "dw")),
            *((f, getattr(self, f), 0, _U8) for f in ("pt", "pl", "first_i", "first_j")),
            *((f, getattr(self, f), 1, _U16) for f in ("in_h", "in_w", "out_h", "out_w")),
            *((f, getattr(self, f), 0, _U16) for f in ("first_image", "first_oh", "first_ow", "first_c")),
            *((f, getattr(self, f), 0, _U32 // 2) for f in strides)))
        for name, value, bound in (("first_oh", self.first_oh, self.out_h), ("first_ow", self.first_ow, self.out_w),
                                   ("first_i", self.first_i, self.kh), ("first_j", self.first_j, self.kw)):
            if value >= bound:
                raise EncodingError(f"{what}: {name} must be less than {bound}, not {value}")
        for name, value, bound in (("(out_h - 1) sh", (self.out_h - 1) * self.sh, 1 << 15),
                                   ("(out_w - 1) sw", (self.out_w - 1) * self.sw, 1 << 15)):
            if value >= bound:  # the hardware's input row and column counters start from 16-bit words
                raise EncodingError(f"{what}: {name} must be less than {bound}, not {value}")

    @property
    def first_terms(self) -> tuple[int, int, int, int, int, int, int, int, int]:
        """What the hardware would multiply to start its counters (words 14..20): the first window
        element's address terms ``c``, ``c + i S_i``, ``c + i S_i + j S_j`` (without ``c``: the
        first two words), its padding offsets ``i dh`` and ``j dw``, the first pixel's terms ``image
        S_img``, ``+ oh S_oh``, ``+ ow S_ow`` and its ``ih0 = oh sh - pt``, ``iw0 = ow sw - pl``."""
        row = self.first_c + self.first_i * self.kernel_row_stride
        image = self.first_image * self.image_stride
        pixel_row = image + self.first_oh * self.row_stride
        return (row, row + self.first_j * self.kernel_col_stride, self.first_i * self.dh, self.first_j * self.dw,
                image, pixel_row, pixel_row + self.first_ow * self.col_stride, self.first_oh * self.sh - self.pt,
                self.first_ow * self.sw - self.pl)

    def pixel(self, r: int) -> tuple[int, int, int]:
        """``(image, oh, ow)`` of tile row ``r``."""
        p = (self.first_image * self.out_h + self.first_oh) * self.out_w + self.first_ow + r
        return p // (self.out_h * self.out_w), p // self.out_w % self.out_h, p % self.out_w

    def element(self, q: int) -> tuple[int, int, int]:
        """``(c, i, j)`` (channel in the group, kernel row and column) of tile column ``q``."""
        e = (self.first_c * self.kh + self.first_i) * self.kw + self.first_j + q
        return e // (self.kh * self.kw), e // self.kw % self.kh, e % self.kw

    def address(self, b: int, r: int, q: int) -> int | None:
        """The input byte's address of product ``b``, tile row ``r``, column ``q`` (``None``: padding, the
        zero point)."""
        img, oh, ow = self.pixel(r)
        c, i, j = self.element(q)
        ih, iw = oh * self.sh - self.pt + i * self.dh, ow * self.sw - self.pl + j * self.dw
        if not (0 <= ih < self.in_h and 0 <= iw < self.in_w):
            return None
        return (self.base + img * self.image_stride + oh * self.row_stride + ow * self.col_stride +
                i * self.kernel_row_stride + j * self.kernel_col_stride + c + b * self.group_stride)


@dataclass(frozen=True, slots=True)
class FeederTable:
    """The host-written configuration of the array's input feeder: the steps of the configured Computes
    (one per command id at most); any other Compute reads its input literally."""

    steps: tuple[FeederStep, ...] = ()

    def __post_init__(self) -> None:
        ids = [s.command for s in self.steps]
        if len(set(ids)) != len(ids):
            raise EncodingError(f"Feeder table configures command {_first_repeat(ids)} twice")

    def step(self, command: int) -> FeederStep | None:
        """The step of ``command`` (``None``: not configured, literal input)."""
        return next((s for s in self.steps if s.command == command), None)


def encode_feeder_table(table: FeederTable) -> tuple[int, ...]:
    """The ``feeder`` words the host writes (module docstring): 32 per command id up to the highest configured."""
    count = max((s.command + 1 for s in table.steps), default=0)
    words = [0] * (FEEDER_STEP_WORDS * count)
    for s in table.steps:
        words[FEEDER_STEP_WORDS * s.command:FEEDER_STEP_WORDS * (s.command + 1)] = (
            1 | (s.zero_point & 0xFF) << 8 | s.kh << 16 | s.kw << 24, s.base & _U32,
            s.in_h | s.in_w << 16, s.out_h | s.out_w << 16, s.sh | s.sw << 8 | s.dh << 16 | s.dw << 24,
            s.pt | s.pl << 8 | s.first_i << 16 | s.first_j << 24, s.first_image | s.first_c << 16,
            s.first_oh | s.first_ow << 16, s.image_stride, s.row_stride, s.col_stride, s.kernel_row_stride,
            s.kernel_col_stride, s.group_stride, *_feeder_derived(s), *(0,) * (FEEDER_STEP_WORDS - FEEDER_STEP_USED))
    return tuple(words)


def _feeder_derived(s: FeederStep) -> tuple[int, ...]:
    """Words 14..20 of a feeder step: its :attr:`~FeederStep.first_terms`."""
    k_row, k_off, di, dj, image, row, pixel, ih0, iw0 = s.first_terms
    return (k_row & _U32, k_off & _U32, di | dj << 16, image & _U32, row & _U32, pixel & _U32,
            (ih0 & _U16) | (iw0 & _U16) << 16)


def decode_feeder_table(words: Sequence[int]) -> FeederTable:
    """The table :func:`encode_feeder_table` wrote as ``words``."""
    if len(words) % FEEDER_STEP_WORDS:
        raise EncodingError(f"Feeder table words must be whole entries ({FEEDER_STEP_WORDS} per command), not "
                            f"{len(words)}")
    out = []
    for command in range(len(words) // FEEDER_STEP_WORDS):
        w = words[FEEDER_STEP_WORDS * command:FEEDER_STEP_WORDS * (command + 1)]
        if not w[0] & 1:
            continue
        out.append(FeederStep(command=command, zero_point=_s8(w[0] >> 8), kh=w[0] >> 16 & 0xFF, kw=w[0] >> 24 & 0xFF,
                              base=_s32(w[1]), in_h=w[2] & _U16, in_w=w[2] >> 16, out_h=w[3] & _U16,
                              out_w=w[3] >> 16, sh=w[4] & 0xFF, sw=w[4] >> 8 & 0xFF, dh=w[4] >> 16 & 0xFF,
                              dw=w[4] >> 24 & 0xFF, pt=w[5] & 0xFF, pl=w[5] >> 8 & 0xFF, first_i=w[5] >> 16 & 0xFF,
                              first_j=w[5] >> 24 & 0xFF, first_image=w[6] & _U16, first_c=w[6] >> 16,
                              first_oh=w[7] & _U16, first_ow=w[7] >> 16, image_stride=w[8], row_stride=w[9],
                              col_stride=w[10], kernel_row_stride=w[11], kernel_col_stride=w[12],
                              group_stride=w[13]))
    return FeederTable(tuple(out))
