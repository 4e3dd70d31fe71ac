"""The array's input feeder: with the host's feeder table, rtl.npu.golden computes a convolution's
tiles on the im2col rows sim.execute computes on, from the input band the mapper loaded.

Quantized convolutions (built, exported to ONNX, quantized by onnxruntime's quantize_static with
int8 activations, imported) are mapped by the real mapper onto fpga-small (4x4 and 8x8): a 3x3
convolution with padding 1, one of stride 2, a depthwise one and a grouped one (4 channels a group)
on the array (``MapOptions(depthwise="array")``: product ``b`` of a compute is group ``b0 + b``).
Golden and sim.execute run each program command by command in program order from the same DRAM
image; after every Compute both accumulators hold the same words (without the table golden's
differ); for the single-group layers (the requantization table refuses grouped ones) golden with
the requantization table also ends with sim.execute's DRAM image.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import pytest
from npu_bench import quantized_graph

from accel.commands import Block, Compute
from accel.config import load
from accel.encoding import FeederTable
from accel.errors import ConfigError
from mapper import MapOptions, map_graph
from mapper.plan import Plan
from rtl.npu.golden import Memories, execute, feeder_table, requant_table
from sim.execute import _Machine, dram_images
from workloads.builder import GraphBuilder

pytest.importorskip("onnxruntime")


def design(rows: int):  # noqa: ANN201
    """fpga-small with a ``rows x rows`` array."""
    arch = load("fpga-small")
    if rows == arch.array.rows:
        return arch
    return dataclasses.replace(arch, name=f"fpga-small-{rows}x{rows}",
                               array=dataclasses.replace(arch.array, rows=rows, cols=rows))


LAYERS = {
    "conv3x3": (dict(shape=(1, 4, 6, 6), out=8), dict(padding=1)),
    "conv3x3_stride2": (dict(shape=(1, 4, 7, 7), out=8), dict(padding=1, stride=2)),
    "depthwise3x3": (dict(shape=(1, 8, 6, 6), out=8), dict(padding=1, groups=8)),
    "grouped3x3": (dict(shape=(1, 16, 4, 4), out=16), dict(padding=1, groups=4)),
}
"""The convolutions: input shape and output channels, and the conv's other arguments (3x3 kernels)."""


@cache
def quantized_plan(name: str, rows: int) -> tuple[Plan, dict]:
    """The mapper's plan of layer ``name`` (quantized) on fpga-small ``rows x rows``, and its input codes."""
    shapes, conv = LAYERS[name]
    b = GraphBuilder(name)
    b.conv(b.input("x", shapes["shape"]), shapes["out"], 3, name="conv", **conv)
    graph, inputs = quantized_graph(b)
    options = MapOptions(allocator="none", depthwise="array")
    return map_graph(graph, design(rows), options), inputs


def _lockstep(plan: Plan, inputs: dict, feeder: FeederTable | None) -> tuple[int, int]:
    """Run ``plan`` on golden (with ``feeder``) and sim.execute command by command in program order:
    (Computes whose output words agreed, Computes run)."""
    machine = _Machine(plan)
    machine.load_inputs(inputs)
    mem = Memories(bytearray(machine.dram.tobytes()), bytearray(plan.arch.scratchpad.size_bytes),
                   bytearray(plan.arch.accumulator.size_bytes))
    agreed = computes = 0
    for cmd in plan.commands:
        machine._execute(cmd)
        mem = execute(plan.arch, [cmd], bytes(mem.dram), scratchpad=bytes(mem.scratchpad),
                      accumulator=bytes(mem.accumulator), feeder=feeder)
        if isinstance(cmd, Compute):
            words = slice(cmd.output_addr, cmd.output_addr + 4 * cmd.batch * cmd.m * cmd.n)
            computes += 1
            agreed += bytes(mem.accumulator[words]) == machine.acc[words].tobytes()
    return agreed, computes


CASES = [(name, rows) for rows in (4, 8) for name in LAYERS]


@pytest.mark.parametrize(("name", "rows"), CASES)
def test_golden_with_the_feeder_table_computes_what_sim_execute_computes(name: str, rows: int) -> None:
    """Every Compute of the mapper's convolution is configured, and its accumulator words are
    sim.execute's with the table; without it (literal m x k reads) most are not."""
    plan, inputs = quantized_plan(name, rows)
    table = feeder_table(plan)
    computes = [c for c in plan.commands if isinstance(c, Compute)]
    assert sorted(s.command for s in table.steps) == [c.id for c in computes]
    if name.startswith(("depthwise", "grouped")):
        groups = {c.origin[0] + b for c in computes for b in range(c.batch)}
        per_group = 1 if name.startswith("depthwise") else 4
        assert groups == set(range(8 if per_group == 1 else 4)), groups
        assert all(s.group_stride == per_group for s in table.steps)
    if "stride2" in name:
        assert {s.sh for s in table.steps} == {2}
    assert any(s.zero_point != 0 for s in table.steps)  # the padding reads the input's zero point
    agreed, count = _lockstep(plan, inputs, table)
    assert agreed == count, f"{name} on {rows}x{rows}: {count - agreed} of {count} computes differ"
    assert _lockstep(plan, inputs, None)[0] < count


@pytest.mark.parametrize(("name", "rows"), [c for c in CASES if not c[0].startswith(("depthwise", "grouped"))])
def test_golden_with_both_tables_ends_with_sim_executes_dram(name: str, rows: int) -> None:
    """A single-group convolution through golden with the feeder and requantization tables ends with
    the DRAM image sim.execute ends with, every byte."""
    plan, inputs = quantized_plan(name, rows)
    before, after = dram_images(plan, inputs)
    mem = execute(plan.arch, plan.commands, before, requant=requant_table(plan), feeder=feeder_table(plan))
    assert mem.dram == bytearray(after)


def test_a_step_carries_the_convolutions_geometry() -> None:
    """The first compute of the stride-2 convolution on 4x4 (the tile at the origin): the band's
    strides (its channels a pixel: the band is packed), and the base that puts output pixel (0, 0)'s
    window element (0, 0, 0) one padded row and column before the band: it reads the padding, its
    element (0, 1, 1) the band's first byte, (1, 1, 1) its second."""
    plan, _ = quantized_plan("conv3x3_stride2", 4)
    first = next(c for c in plan.commands if isinstance(c, Compute))
    step = feeder_table(plan).step(first.id)
    assert step is not None and first.origin == (0, 0, 0, 0)
    assert (step.kh, step.kw, step.sh, step.sw, step.pt, step.pl, step.in_h, step.in_w, step.out_h, step.out_w) == \
        (3, 3, 2, 2, 1, 1, 7, 7, 4, 4)
    assert (step.first_image, step.first_oh, step.first_ow, step.first_c, step.first_i, step.first_j) == (0,) * 6
    channels = step.col_stride // 2
    assert channels == len({step.element(q)[0] for q in range(first.k)})  # the channels the tile's window covers
    assert (step.kernel_col_stride, step.kernel_row_stride, step.row_stride, step.image_stride) == \
        (channels, 7 * channels, 14 * channels, 49 * channels)
    assert step.base == first.input_addr - 7 * channels - channels
    assert step.address(0, 0, 0) is None
    assert (step.address(0, 0, 4), step.address(0, 0, 13)) == (first.input_addr, first.input_addr + 1)


def test_the_table_refuses_what_its_fields_cannot_hold() -> None:
    plan, _ = quantized_plan("conv3x3", 4)
    first = next(c for c in plan.commands if isinstance(c, Compute))
    bad = dataclasses.replace(first, input_block=Block(rows=2, row_bytes=3, row_stride=8, planes=2, plane_stride=64))
    commands = tuple(bad if c is first else c for c in plan.commands)
    with pytest.raises(ConfigError, match=rf"^Command {first.id} \(Compute, layer 'conv'\): input_block must be one "
                                          r"plane of rows of \d+ channels, not "):
        feeder_table(dataclasses.replace(plan, commands=commands))
