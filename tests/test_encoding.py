"""The binary program format: every plan the mapper emits survives encode -> decode unchanged, the
decoded program simulates to the same trace, and what the format cannot hold is refused by name."""

from __future__ import annotations

import struct

import pytest

import mapper
import sim
import workloads
from accel import config
from accel.commands import Block, Buffer, Compute, Load, Move, Store, Vector
from accel.encoding import (
    RECORD_BYTES,
    EncodingError,
    FeederStep,
    FeederTable,
    decode_feeder_table,
    decode_program,
    encode_feeder_table,
    encode_program,
)
from accel.hardware import Dataflow, Sparsity


@pytest.mark.parametrize(("preset", "model", "nm", "allocator"), [
    ("gemmini", "resnet18", None, "ilp"),
    ("gemmini", "bert_base_layer", None, "greedy"),
    ("fpga-small", "mobilenet_v2", None, "none"),
    ("sparse-nm", "resnet18", "2:4", "firstfit"),
    ("tpu-v1", "alexnet", None, "greedy"),  # double-buffered weights (follows) and fused ReLUs (activation)
])
def test_every_command_of_a_mapped_network_round_trips(preset, model, nm, allocator):
    graph = workloads.load(model)
    if nm:
        graph = workloads.sparsify(graph, nm)
    plan = mapper.map_graph(graph, config.load(preset), mapper.MapOptions(allocator=allocator))
    image = encode_program(plan.commands)
    assert decode_program(image) == plan.commands
    if preset == "tpu-v1":
        assert any(isinstance(c, Compute) and c.follows for c in plan.commands)
        assert any(isinstance(c, Store | Move) and c.activation == "relu" for c in plan.commands)
    assert len(image) >= 64 + RECORD_BYTES * len(plan.commands)
    assert len(image) % 64 == 0


def test_a_decoded_program_simulates_to_the_same_trace():
    import dataclasses

    plan = mapper.map_graph(workloads.load("resnet18"), config.load("gemmini"), mapper.MapOptions(allocator="greedy"))
    decoded = dataclasses.replace(plan, commands=decode_program(encode_program(plan.commands)))
    assert sim.simulate(decoded).trace == sim.simulate(plan).trace


def test_records_sit_where_the_format_says():
    program = (
        Load(id=0, layer="conv", tensor="x", size_bytes=4096, addr=128, dram_addr=1 << 33),
        Compute(id=1, layer="conv", deps=(0,), m=16, k=32, n=8, batch=2, dataflow=Dataflow.OS, accumulate=True,
                fill=False, input_addr=128, weight_addr=640, output_addr=64, sparsity=Sparsity(2, 4)),
        Store(id=2, layer="conv", deps=(1,), tensor="y", size_bytes=256, buffer=Buffer.ACCUMULATOR, addr=64),
        Move(id=3, layer="relu", deps=(1, 2), tensor="y", size_bytes=256, src_addr=64, addr=0),
        Vector(id=4, layer="relu", deps=(3,), op="relu", elements=256, input_addr=0, output_addr=512),
    )
    image = encode_program(program)
    magic, version, record, count, ndeps, nstrings = struct.unpack_from("<8sHHIII", image)
    assert (magic, version, record, count, ndeps, nstrings) == (b"ACCLPROG", 2, 128, 5, 5, 4)
    deps_at, strings_at, strings_size = struct.unpack_from("<QQQ", image, 24)
    assert image[strings_at:strings_at + strings_size] == b"conv\0x\0y\0relu\0"  # each name once
    compute = image[64 + 128:64 + 256]
    assert compute[0] == 4 and compute[1] == 1 | 4 | 16  # OS, accumulate, drain (fill off)
    assert struct.unpack_from("<IIII", compute, 16) == (16, 32, 8, 2)
    assert compute[44:46] == bytes([2, 4])
    move = image[64 + 3 * 128:64 + 4 * 128]
    first, count = struct.unpack_from("<II", move, 8)
    assert struct.unpack_from(f"<{count}I", image, deps_at + 4 * first) == (1, 2)
    load = image[64:64 + 128]
    assert struct.unpack_from("<Q", load, 32) == (1 << 33,)
    assert decode_program(image) == program


def test_follows_and_fused_activations_have_slots():
    program = (
        Compute(id=0, layer="fc", m=64, k=16, n=16, dataflow=Dataflow.WS, follows=64),
        Store(id=1, layer="fc", deps=(0,), tensor="y", size_bytes=256, activation="relu,clip"),
        Move(id=2, layer="fc", deps=(0,), tensor="y", size_bytes=256, activation="relu,clip"),
    )
    image = encode_program(program)
    assert struct.unpack_from("<I", image, 64 + 48) == (64,)
    assert struct.unpack_from("<I", image, 64 + 128 + 40) == struct.unpack_from("<I", image, 64 + 256 + 40) != (0,)
    assert decode_program(image) == program


def test_blocks_origins_and_chunks_have_slots():
    block = Block(rows=3, row_bytes=16, row_stride=64, planes=2, plane_stride=4096)
    program = (
        Load(id=0, layer="conv", tensor="x", size_bytes=96, dram_addr=128, dram=block),
        Compute(id=1, layer="conv", deps=(0,), m=4, k=8, n=2, dataflow=Dataflow.WS, origin=(1, 2, 3, 4),
                input_block=Block(rows=4, row_bytes=8, row_stride=32), weight_block=block),
        Store(id=2, layer="conv", deps=(1,), tensor="y", size_bytes=32, raw=True, dram=block),
        Move(id=3, layer="conv", deps=(1,), tensor="y", size_bytes=96, dst=block),
        Vector(id=4, layer="add", op="Add", elements=96, second_addr=512, origin=7, extent=96,
               input_block=block, second_block=block, output_block=block),
    )
    image = encode_program(program)
    assert struct.unpack_from("<5I", image, 64 + 44) == (3, 16, 64, 2, 4096)  # the load's DRAM block
    assert struct.unpack_from("<4I", image, 64 + 128 + 52) == (1, 2, 3, 4)  # the compute's origin
    assert image[64 + 2 * 128 + 1] == 1 | 2  # from the accumulator, raw partial sums
    assert decode_program(image) == program


@pytest.mark.parametrize(("program", "message"), [
    ((Load(id=1, layer="a", tensor="x", size_bytes=1),),
     r"^Command ids must number the program 0\.\.N-1 in order; command 0 has id 1$"),
    ((Load(id=0, layer="a", tensor="x", size_bytes=1, deps=(0,)),),
     r"^Command 0 depends on 0, which is not an earlier command$"),
    ((Load(id=0, layer="a", tensor="x", size_bytes=1, addr=2**32),),
     r"^Command 0: Load field 'addr' must be an integer in 0\.\.4294967295, not 4294967296$"),
    ((Compute(id=0, layer="a", m=-1, k=1, n=1, dataflow=Dataflow.WS),),
     r"^Command 0: Compute field 'm' must be an integer in 0\.\.4294967295, not -1$"),
])
def test_what_the_format_cannot_hold_is_refused(program, message):
    with pytest.raises(EncodingError, match=message):
        encode_program(program)


def test_foreign_or_truncated_images_are_refused():
    image = encode_program((Load(id=0, layer="a", tensor="x", size_bytes=8),))
    with pytest.raises(EncodingError, match=r"^Not a program image: magic b'GARBAGE!'"):
        decode_program(b"GARBAGE!" + image[8:])
    with pytest.raises(EncodingError, match=r"^Program image truncated: 100 bytes, its header needs"):
        decode_program(image[:100])
    with pytest.raises(EncodingError, match=r"^A program image needs at least 64 bytes of header, not 3$"):
        decode_program(b"ACC")


def test_a_requantization_table_round_trips_word_by_word():
    """Steps by command id (gaps stay unconfigured) and channels with negative biases and shifts: the
    words sit where the format says and decode to the same table."""
    from accel.encoding import RequantChannel, RequantStep, RequantTable, decode_requant_table, encode_requant_table

    channels = (RequantChannel(bias=-(1 << 31), multiplier=(1 << 31) - 1, shift=-31),
                RequantChannel(bias=1234, multiplier=1 << 30, shift=30), RequantChannel(bias=-5, multiplier=0, shift=0))
    table = RequantTable(steps=(RequantStep(command=3, first_channel=1, columns=2, zero_point=-7, low=-7, high=100),
                                RequantStep(command=0, first_channel=0, columns=3, zero_point=5)), channels=channels)
    steps, words = encode_requant_table(table)
    assert len(steps) == 8 and len(words) == 12
    assert steps[0] == 1 | 5 << 8 | 0x80 << 16 | 0x7F << 24 and steps[1] == 0 | 3 << 16
    assert steps[2:6] == (0, 0, 0, 0)  # commands 1 and 2: unit scale
    assert steps[6] == 1 | 0xF9 << 8 | 0xF9 << 16 | 100 << 24 and steps[7] == 1 | 2 << 16
    assert words[:4] == (1 << 31, (1 << 31) - 1, 0xE1, 0)
    decoded = decode_requant_table(steps, words)
    assert decoded.channels == channels
    assert sorted(decoded.steps, key=lambda s: s.command) == sorted(table.steps, key=lambda s: s.command)
    assert decoded.step(3) == table.step(3) and decoded.step(1) is None


@pytest.mark.parametrize(("build", "message"), [
    (lambda m: m.RequantStep(command=0, first_channel=0, columns=0, zero_point=0),
     r"^Requantization step of command 0: columns must be an integer in 1\.\.65535, not 0$"),
    (lambda m: m.RequantStep(command=2, first_channel=0, columns=1, zero_point=0, low=5, high=4),
     r"^Requantization step of command 2: low must be at most high, not 5 > 4$"),
    (lambda m: m.RequantChannel(bias=0, multiplier=-1, shift=0),
     r"^Requantization channel: multiplier must be an integer in 0\.\.2147483647, not -1$"),
    (lambda m: m.RequantTable(steps=(m.RequantStep(command=1, first_channel=1, columns=2, zero_point=0),),
                              channels=(m.RequantChannel(0, 1, 0),) * 2),
     r"^Requantization step of command 1: channels 1\.\.2 beyond the table's 2$"),
])
def test_what_a_requantization_table_cannot_hold_is_refused(build, message):
    import accel.encoding as m

    with pytest.raises(EncodingError, match=message):
        build(m)


def test_a_vector_table_round_trips_word_by_word():
    """Vector steps by command id (gaps stay timing only), negative codes and shifts: the words sit where
    the format says and decode to the same steps."""
    from accel.encoding import RequantTable, VectorStep, decode_requant_table, decode_vector_table, encode_vector_table

    add = VectorStep(command=2, function="add", low=-128, high=127, a_zero_point=-3, b_zero_point=7, y_zero_point=-128,
                     a_multiplier=1 << 30, a_shift=0, b_multiplier=(1 << 31) - 1, b_shift=-1, y_multiplier=1234567,
                     y_shift=-31)
    relu = VectorStep(command=0, function="clamp", low=-5, high=127)
    table = RequantTable(vector=(add, relu))
    words = encode_vector_table(table)
    assert len(words) == 3 * 32
    assert words[0] == 2 | 0xFB << 8 | 0x7F << 16 and words[1:32] == (0,) * 31
    assert words[32:64] == (0,) * 32  # command 1: timed only
    assert words[64] == 1 | 0x80 << 8 | 0x7F << 16
    assert words[65] == 0xFD | 7 << 8 | 0x80 << 16
    assert words[66:69] == (1 << 30, (1 << 31) - 1, 1234567)
    assert words[69] == 0 | 0xFF << 8 | 0xE1 << 16 and words[70:96] == (0,) * 26
    assert decode_vector_table(words) == (relu, add)
    decoded = decode_requant_table((), (), words)
    assert decoded.vector_step(2) == add and decoded.vector_step(1) is None and decoded.steps == ()
    assert add.multipliers == ((1 << 30, 0), ((1 << 31) - 1, -1), (1234567, -31))


def max_pool_step(**fields):  # noqa: ANN003, ANN201
    """A 3x3 stride-2 max step with padding 1 on 8 x 6 images of 12 channels, from output row 2."""
    from accel.encoding import VectorStep

    geometry = dict(function="max", kernel_h=3, kernel_w=3, stride_h=2, stride_w=2, pad_top=1, pad_left=1,
                    band_row=3, channel_groups=3, out_w=3, in_h=8, in_w=6, out_h=4, first_row=2)
    return VectorStep(command=1, low=-100, **{**geometry, **fields})


def test_a_max_pool_step_round_trips_with_its_derived_words():
    """A max step's geometry sits in words 6..10 and what the NPU adds instead of multiplying in 11..16:
    the strides of its walk and the first window's offset and row."""
    from accel.encoding import RequantTable, decode_vector_table, encode_vector_table

    step = max_pool_step()
    w = encode_vector_table(RequantTable(vector=(step,)))[32:64]
    assert w[0] == 3 | 0x9C << 8 | 0x7F << 16
    assert w[6] == 3 | 3 << 8 | 2 << 16 | 2 << 24 and w[7] == 1 | 1 << 8 | 3 << 16
    assert w[8:11] == (3 | 3 << 16, 8 | 6 << 16, 4 | 2 << 16)
    # 12-byte pixels, 72-byte rows; the first window's top is row 2 * 2 - 1 = 3, the band's first row
    assert step.top == 3 and (step.pixel_bytes, step.row_bytes) == (12, 72)
    assert w[11:17] == ((0 - 12) & 0xFFFFFFFF, 72, 24, 144, 8 * 72 - 3 * 144, 3 | 9 << 16)
    assert w[17:] == (0,) * 15
    assert decode_vector_table((0,) * 32 + tuple(w)) == (step,)
    assert step.taps == 9


def test_an_avg_step_carries_its_bias_and_rescale():
    """A global average pool's step: one window of the whole 5 x 7 image, the output's zero point and
    rescale in words 1, 4 and 5, its bias (minus the input zero point times 35 taps) in word 17."""
    from accel.encoding import RequantTable, VectorStep, decode_vector_table, encode_vector_table

    step = VectorStep(command=0, function="avg", y_zero_point=-7, y_multiplier=1 << 30, y_shift=-6, bias=-35 * 4,
                      kernel_h=5, kernel_w=7, stride_h=1, stride_w=1, channel_groups=2, out_w=1, in_h=5, in_w=7,
                      out_h=1)
    w = encode_vector_table(RequantTable(vector=(step,)))
    assert w[0] == 4 | 0x80 << 8 | 0x7F << 16 and w[1] == 0xF9 << 16 and w[4] == 1 << 30 and w[5] == 0xFA << 16
    assert w[17] == (-140) & 0xFFFFFFFF and w[18:] == (0,) * 14
    assert (step.taps, step.row_bytes, step.image_step) == (35, 56, 5 * 56)
    assert decode_vector_table(w) == (step,)


def test_a_depthwise_step_carries_its_first_channel():
    """A depthwise step: the walk's geometry, the input and output zero points, its chunk's first
    channel-table entry in word 18."""
    from accel.encoding import RequantChannel, RequantTable, decode_vector_table, encode_vector_table

    step = max_pool_step(function="depthwise", first_row=0, band_row=0, a_zero_point=-9, y_zero_point=4,
                         first_channel=300)
    table = RequantTable(vector=(step,), channels=(RequantChannel(0, 1, 0),) * 312)
    w = encode_vector_table(table)[32:]
    assert w[0] == 5 | 0x9C << 8 | 0x7F << 16 and w[1] == 0xF7 | 4 << 16 and w[18] == 300 and w[19:] == (0,) * 13
    assert decode_vector_table((0,) * 32 + w) == (step,)


@pytest.mark.parametrize(("build", "message"), [
    (lambda m: max_pool_step(kernel_h=0),
     r"^Vector step of command 1: kernel_h must be an integer in 1\.\.255, not 0$"),
    (lambda m: max_pool_step(first_row=4),
     r"^Vector step of command 1: first_row must be below out_h, not 4 >= 4$"),
    (lambda m: m.VectorStep(command=3, function="clamp", kernel_w=2, in_h=5),
     r"^Vector step of command 3: only a max, avg or depthwise step has a window geometry; this clamp step "
     r"has kernel_w=2, in_h=5$"),
    (lambda m: max_pool_step(first_channel=2),
     r"^Vector step of command 1: only a depthwise step has a first channel; this max step has 2$"),
    (lambda m: max_pool_step(function="depthwise"),
     r"^Vector step of command 1: a depthwise step's chunk is whole images, not from row 2 \(band row 3\)$"),
    (lambda m: m.RequantTable(vector=(max_pool_step(function="depthwise", first_row=0, band_row=0, first_channel=1),),
                              channels=(m.RequantChannel(0, 1, 0),) * 12),
     r"^Vector step of command 1: channels 1\.\.12 beyond the table's 12$"),
    (lambda m: max_pool_step(bias=-3),
     r"^Vector step of command 1: only an avg step has a bias; this max step has -3$"),
    (lambda m: m.decode_vector_table((6,) + (0,) * 31),
     r"^Vector step of command 0: function code 6 is not one of 1\.\.5$"),
    (lambda m: m.decode_vector_table(m.encode_vector_table(m.RequantTable(vector=(max_pool_step(),)))[:45]
                                     + (73,) + (0,) * 18),
     r"^Vector step of command 1: words 6\.\.31 must be its max step's .*, its bias, first channel and zero, "
     r"not .*$"),
])
def test_what_a_max_pool_step_cannot_hold_is_refused(build, message):
    import accel.encoding as m

    with pytest.raises(EncodingError, match=message):
        build(m)


@pytest.mark.parametrize(("build", "message"), [
    (lambda m: m.VectorStep(command=0, function="mul"),
     r"^Vector step of command 0: function must be one of add, clamp, max, avg, depthwise, not 'mul'$"),
    (lambda m: m.VectorStep(command=1, function="add", a_shift=31),
     r"^Vector step of command 1: a_shift must be an integer in -31\.\.30, not 31$"),
    (lambda m: m.VectorStep(command=1, function="clamp", low=3, high=2),
     r"^Vector step of command 1: low must be at most high, not 3 > 2$"),
    (lambda m: m.RequantTable(vector=(m.VectorStep(command=4, function="clamp"),) * 2),
     r"^Requantization table configures vector command 4 twice$"),
    (lambda m: m.decode_vector_table((1,) * 31),
     r"^Vector table words must be whole entries \(32 per command\), not 31$"),
])
def test_what_a_vector_table_cannot_hold_is_refused(build, message):
    import accel.encoding as m

    with pytest.raises(EncodingError, match=message):
        build(m)


def test_feeder_table_round_trips_through_its_words() -> None:
    """Every field of a feeder step survives encode/decode, a negative base and zero point included; an
    unconfigured id between two steps stays unconfigured."""
    steps = (FeederStep(command=1, zero_point=-5, base=-731, kh=3, kw=5, in_h=17, in_w=300, out_h=9, out_w=150,
                        image_stride=17 * 300 * 6, row_stride=2 * 300 * 6, col_stride=2 * 6, kernel_row_stride=300 * 6,
                        kernel_col_stride=2 * 6, group_stride=3, sh=2, sw=2, dh=1, dw=2, pt=1, pl=2, first_image=4,
                        first_oh=8, first_ow=149, first_c=1000, first_i=2, first_j=4),
             FeederStep(command=3, zero_point=127, base=(1 << 31) - 1, kh=1, kw=1, in_h=1, in_w=1, out_h=1, out_w=1,
                        image_stride=0, row_stride=0, col_stride=0, kernel_row_stride=0, kernel_col_stride=0))
    table = FeederTable(steps)
    words = encode_feeder_table(table)
    assert len(words) == 4 * 32 and not any(words[:32]) and not any(words[64:96])
    assert words[32 + 14:32 + 21] == (1000 + 2 * 1800, 1000 + 2 * 1800 + 4 * 12, 2 | 8 << 16, 4 * 30600,
                                      4 * 30600 + 8 * 3600, 4 * 30600 + 8 * 3600 + 149 * 12, 15 | 296 << 16)
    assert all(0 <= w < 1 << 32 for w in words)
    assert decode_feeder_table(words) == table
    assert table.step(2) is None and table.step(3) == steps[1]


def test_feeder_table_refuses_what_its_words_cannot_hold() -> None:
    fields = dict(command=0, zero_point=0, base=0, kh=3, kw=3, in_h=4, in_w=4, out_h=4, out_w=4, image_stride=16,
                  row_stride=4, col_stride=1, kernel_row_stride=4, kernel_col_stride=1)
    with pytest.raises(EncodingError, match=r"^Feeder step of command 0: kw must be an integer in 1\.\.255, not 256$"):
        FeederStep(**{**fields, "kw": 256})
    with pytest.raises(EncodingError, match=r"^Feeder step of command 0: first_ow must be less than 4, not 4$"):
        FeederStep(**{**fields, "first_ow": 4})
    with pytest.raises(EncodingError, match=r"^Feeder table configures command 0 twice$"):
        FeederTable((FeederStep(**fields), FeederStep(**fields)))
    with pytest.raises(EncodingError, match=r"^Feeder table words must be whole entries \(32 per command\), not 5$"):
        decode_feeder_table([0] * 5)
