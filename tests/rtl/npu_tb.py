"""cocotb testbench of :class:`rtl.npu.NPU`, run on its Verilog by ``test_npu_cocotb.py``.

Not a pytest module: cocotb imports it inside the simulator. Each cocotb test runs one program of
the parameters dict (``programs[name]``: the encoded image the NPU runs, the DRAM image it starts
from, and the reference image the expectations come from, normally the same program). The host
writes the image into program memory and pulses ``start``; a DRAM model with the design's latency
and bandwidth answers the DMA's bus. Expected data are :func:`rtl.npu.golden.execute` of the
reference program (the arithmetic is :mod:`sim.numerics`'), expected cycles
:func:`sim.engine.simulate`'s trace of it: the total and every command's start and end. The tests
share one simulation, so each program starts from the on-chip state the previous one left (the
reference carries it along); the corrupted programs run last.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from accel.config import load
from accel.encoding import VECTOR_STEP_WORDS, decode_feeder_table, decode_program, decode_requant_table
from accel.hardware import Sparsity
from mapper.plan import Plan
from rtl.cocotb_runner import testbench_parameters
from rtl.npu.golden import execute
from sim.engine import simulate

_log = logging.getLogger("cocotb.npu_tb")
CLOCK_PERIOD_NS = 10
MAX_REPORTED = 6
_ON_CHIP: dict[str, bytes] = {}  # the reference's scratchpad and accumulator after the last program run
_FEEDER_WORDS = 32  # accel.encoding's feeder words per command id
_FEEDER: dict[str, bool] = {"written": False}  # whether an earlier program wrote a feeder table


class DramModel:
    """A byte-addressed memory on the NPU's bus: a read beat answered ``latency`` cycles later, in
    order; writes with byte strobes; never more than ``bandwidth`` bytes per cycle (checked)."""

    def __init__(self, dut: object, image: bytearray, *, latency: int, bandwidth: float) -> None:
        self.dut, self.mem, self.latency, self.bandwidth = dut, image, latency, bandwidth
        self.reads = self.writes = 0

    def _word(self, addr: int) -> int:
        if addr + 4 > len(self.mem):
            raise AssertionError(f"DMA read beyond DRAM at byte {addr}")
        return int.from_bytes(self.mem[addr:addr + 4], "little")

    async def run(self) -> None:
        dut = self.dut
        pending: deque[tuple[int, int]] = deque()
        while True:
            await FallingEdge(dut.clk)
            if not pending and not int(dut.rd_valid.value) and not int(dut.wr_valid.value):
                # nothing on the bus: sleep until a request (the cycle count is the simulation time)
                dut.rd_resp_valid.value = 0
                await First(RisingEdge(dut.rd_valid), RisingEdge(dut.wr_valid))
                await FallingEdge(dut.clk)
            cycle = int(get_sim_time("ns") // CLOCK_PERIOD_NS)
            if pending and pending[0][0] == cycle:
                dut.rd_resp_valid.value = 1
                dut.rd_resp_data.value = pending.popleft()[1]
            else:
                dut.rd_resp_valid.value = 0
            await ReadOnly()
            moved = 0
            if int(dut.rd_valid.value):
                pending.append((cycle + self.latency, self._word(int(dut.rd_addr.value))))
                self.reads += 1
                moved += 4
            if int(dut.wr_valid.value):
                addr, word, strobe = int(dut.wr_addr.value), int(dut.wr_data.value), int(dut.wr_strb.value)
                for i in range(4):
                    if strobe >> i & 1:
                        if addr + i >= len(self.mem):
                            raise AssertionError(f"DMA write beyond DRAM at byte {addr + i}")
                        self.mem[addr + i] = word >> (8 * i) & 0xFF
                self.writes += 1
                moved += 4
            if moved > self.bandwidth:
                raise AssertionError(f"{moved} bytes on the DRAM bus in one cycle, more than {self.bandwidth}")


async def _run_program(dut: object, name: str) -> None:
    parameters = testbench_parameters()
    if name not in parameters["programs"]:
        return  # this design does not run that program (the pytest side checks which ran)
    arch = load("fpga-small")
    if (parameters["rows"], parameters["cols"]) != (arch.array.rows, arch.array.cols):
        arch = dataclasses.replace(arch, name=f"fpga-small-{parameters['rows']}x{parameters['cols']}",
                                   array=dataclasses.replace(arch.array, rows=parameters["rows"],
                                                             cols=parameters["cols"]))
    if parameters.get("activation_latency"):  # Moves through the store path's requantizer
        arch = dataclasses.replace(arch, activation=dataclasses.replace(
            arch.activation, latency_cycles=parameters["activation_latency"]))
    if parameters.get("sparsity"):  # the N:M patterns the design runs
        arch = dataclasses.replace(arch, array=dataclasses.replace(
            arch.array, sparsity=tuple(Sparsity.parse(p) for p in parameters["sparsity"])))
    if parameters.get("scratchpad_bytes", arch.scratchpad.size_bytes) != arch.scratchpad.size_bytes:
        arch = dataclasses.replace(arch, scratchpad=dataclasses.replace(
            arch.scratchpad, size_bytes=parameters["scratchpad_bytes"]))
    spec = parameters["programs"][name]
    image = bytes.fromhex(spec["image"])
    reference = decode_program(bytes.fromhex(spec.get("reference_image", spec["image"])))
    dram_in = bytes.fromhex(spec["dram"])

    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
    for port in ("prog_we", "prog_addr", "prog_data", "start", "rd_resp_valid", "rd_resp_data", "trace_addr",
                 "rq_we", "rq_table", "rq_addr", "rq_data"):
        getattr(dut, port).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    words = [int.from_bytes(image[i:i + 4].ljust(4, b"\0"), "little") for i in range(0, len(image), 4)]
    assert len(words) <= parameters["program_words"], f"image of {len(words)} words, memory of fewer"
    for addr, word in enumerate(words):
        dut.prog_we.value, dut.prog_addr.value, dut.prog_data.value = 1, addr, word
        await FallingEdge(dut.clk)
    dut.prog_we.value = 0
    requant = None
    if "requant" in spec:  # the host's requantization table: every step (unconfigured ids cleared), the
        # channels, every vector step (unconfigured ids cleared: timed only)
        steps, channels = spec["requant"]["steps"], spec["requant"]["channels"]
        steps = steps + [0] * (2 * parameters["max_commands"] - len(steps))
        vector = spec["requant"].get("vector", [])
        vector = vector + [0] * (VECTOR_STEP_WORDS * parameters["max_commands"] - len(vector))
        for table, table_words in ((0, steps), (1, channels), (2, vector)):
            for addr, word in enumerate(table_words):
                dut.rq_we.value, dut.rq_table.value, dut.rq_addr.value, dut.rq_data.value = 1, table, addr, word
                await FallingEdge(dut.clk)
        dut.rq_we.value = 0
        reference_table = spec.get("reference_requant", spec["requant"])
        requant = decode_requant_table(reference_table["steps"], reference_table["channels"],
                                       reference_table.get("vector", ()))
    feeder = None
    if "feeder" in spec or _FEEDER["written"]:  # the array's input feeder table (rq_table 3): the program's
        # steps, every other id's enable word cleared (a step an earlier program configured stays off)
        words = {addr: word for addr, word in enumerate(spec.get("feeder", ()))}
        for command in range(parameters["max_commands"]):
            words.setdefault(_FEEDER_WORDS * command, 0)
        for addr, word in sorted(words.items()):
            dut.rq_we.value, dut.rq_table.value, dut.rq_addr.value, dut.rq_data.value = 1, 3, addr, word
            await FallingEdge(dut.clk)
        dut.rq_we.value = 0
        _FEEDER["written"] = "feeder" in spec
        feeder = decode_feeder_table(spec.get("reference_feeder", spec["feeder"])) if "feeder" in spec else None
    dram = DramModel(dut, bytearray(dram_in), latency=arch.dram.latency_cycles,
                     bandwidth=arch.dram.bandwidth_bytes_per_cycle)
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    cocotb.start_soon(dram.run())

    expected = simulate(Plan(arch=arch, graph_name=name, layers=(), commands=reference))
    limit = expected.total_cycles + 64 * (len(reference) + 2) + 1000
    await First(RisingEdge(dut.finished), RisingEdge(dut.error), Timer(limit * CLOCK_PERIOD_NS, "ns"))
    await FallingEdge(dut.clk)
    assert not int(dut.error.value), "the NPU refused the program (decoder or run-time error)"
    assert int(dut.finished.value), f"the NPU did not finish within {limit} cycles"

    problems = []
    total = int(dut.cycles.value)
    if total != expected.total_cycles:
        problems.append(f"total cycles {total}, simulator {expected.total_cycles}")
    for event in sorted(expected.trace, key=lambda ev: ev.command):
        dut.trace_addr.value = event.command
        await FallingEdge(dut.clk)
        start, end = int(dut.trace_start.value), int(dut.trace_end.value)
        if (start, end) != (event.start, event.end):
            problems.append(f"command {event.command} ({event.kind}) ran [{start}, {end}), "
                            f"simulator [{event.start}, {event.end})")
    # The NPU's SRAMs keep what the previous program left (a reset does not clear them), and so does
    # the reference: every program starts from the previous one's on-chip state.
    state = execute(arch, reference, dram_in, requant=requant, feeder=feeder, **_ON_CHIP)
    _ON_CHIP.update(scratchpad=bytes(state.scratchpad), accumulator=bytes(state.accumulator))
    golden = state.dram
    written = sum(x != y for x, y in zip(golden, dram_in, strict=True))
    assert written, f"{name}: the reference program changes no DRAM byte, so the data check would be empty"
    diff = [i for i, (x, y) in enumerate(zip(dram.mem, golden, strict=True)) if x != y]
    if diff:
        shown = ", ".join(f"byte {i}: {dram.mem[i]:#04x} != {golden[i]:#04x}" for i in diff[:MAX_REPORTED])
        problems.append(f"DRAM differed from rtl.npu.golden.execute in {len(diff)} bytes ({shown})")
    _log.info("%s: %d commands, %d cycles, %d read and %d write beats, %d DRAM bytes written", name,
              len(reference), total, dram.reads, dram.writes, written)
    assert not problems, f"{name}: " + "; ".join(problems[:MAX_REPORTED])


@cocotb.test()
async def gemm_tile(dut: object) -> None:
    """Load, compute (WS and OS, overwrite and accumulate), move and store one GEMM tile."""
    await _run_program(dut, "gemm_tile")


@cocotb.test()
async def dependency_chain(dut: object) -> None:
    """Every unit waits on another: loads after stores, vector after compute, moves in between."""
    await _run_program(dut, "dependency_chain")


@cocotb.test()
async def mapper_gemm(dut: object) -> None:
    """The program mapper.map_graph emits for a small GEMM layer."""
    await _run_program(dut, "mapper_gemm")


@cocotb.test()
async def mapper_gemm_large(dut: object) -> None:
    """The program the mapper emits for a 32x64 @ 64x32 layer (32 commands, loads and stores contending)."""
    await _run_program(dut, "mapper_gemm_large")


@cocotb.test()
async def mapper_mlp(dut: object) -> None:
    """The mapper's program for two fully connected layers with a ReLU (vector) between them."""
    await _run_program(dut, "mapper_mlp")


@cocotb.test()
async def mapper_conv(dut: object) -> None:
    """The mapper's program for a 3x3 convolution (padding 1), its im2col rows gathered by the feeder."""
    await _run_program(dut, "mapper_conv")


@cocotb.test()
async def mapper_conv_stride2(dut: object) -> None:
    """The mapper's program for a 3x3 convolution of stride 2, its im2col rows gathered by the feeder."""
    await _run_program(dut, "mapper_conv_stride2")


@cocotb.test()
async def mapper_grouped(dut: object) -> None:
    """The mapper's program for a grouped 3x3 convolution (4 groups) on the array (a product per group)."""
    await _run_program(dut, "mapper_grouped")


@cocotb.test()
async def mapper_mlp3_resident(dut: object) -> None:
    """Three fully connected layers whose intermediates the ILP allocator keeps in the scratchpad."""
    await _run_program(dut, "mapper_mlp3_resident")


@cocotb.test()
async def nm_tile(dut: object) -> None:
    """2:4 computes (two products, partial folds) back to back with dense WS computes on the same bytes."""
    await _run_program(dut, "nm_tile")


@cocotb.test()
async def mapper_gemm_2of4(dut: object) -> None:
    """The mapper's program for a 16x32 @ 32x16 layer sparsified 2:4 (N:M computes on packed weights)."""
    await _run_program(dut, "mapper_gemm_2of4")


@cocotb.test()
async def corrupted_command(dut: object) -> None:
    """The NPU runs a program with one command changed; the expectations are the original's."""
    await _run_program(dut, "corrupted_command")


@cocotb.test()
async def corrupted_feeder(dut: object) -> None:
    """The 3x3 convolution with a feeder table whose zero point is one off: only the padding differs."""
    await _run_program(dut, "corrupted_feeder")


@cocotb.test()
async def corrupted_timing(dut: object) -> None:
    """The same with a load 4 bytes longer: the data agree, the cycles must not."""
    await _run_program(dut, "corrupted_timing")


@cocotb.test()
async def corrupted_nm_command(dut: object) -> None:
    """The 2:4 GEMM with its last compute reading its packed weights a byte off."""
    await _run_program(dut, "corrupted_nm_command")


@cocotb.test()
async def refused_nm_pattern(dut: object) -> None:
    """The 2:4 GEMM with a compute claiming 1:4, which the design does not have (last: it stops in error)."""
    await _run_program(dut, "refused_nm_pattern")


@cocotb.test()
async def quantized_gemm(dut: object) -> None:
    """The mapper's program for a quantized fully connected layer, requantized by the host's table."""
    await _run_program(dut, "quantized_gemm")


@cocotb.test()
async def quantized_gemm_relu(dut: object) -> None:
    """The same with a ReLU fused into its stores (the table's clamp at the zero point)."""
    await _run_program(dut, "quantized_gemm_relu")


@cocotb.test()
async def quantized_mlp(dut: object) -> None:
    """The mapper's program for a quantized three-layer MLP (layers through DRAM)."""
    await _run_program(dut, "quantized_mlp")


@cocotb.test()
async def quantized_mlp_resident(dut: object) -> None:
    """The quantized three-layer MLP whose intermediates the ILP keeps on chip: requantizing Moves."""
    await _run_program(dut, "quantized_mlp_resident")


@cocotb.test()
async def raw_partial_sums(dut: object) -> None:
    """Raw stores copy int32 partial sums unchanged; a configured store beside them requantizes."""
    await _run_program(dut, "raw_partial_sums")


@cocotb.test()
async def wrong_multiplier(dut: object) -> None:
    """The quantized GEMM with one channel's multiplier changed in the table the NPU gets."""
    await _run_program(dut, "wrong_multiplier")



@cocotb.test()
async def configured_move(dut: object) -> None:
    """A Move the table configures on a design whose Moves cannot requantize (last: it stops in error)."""
    await _run_program(dut, "configured_move")


@cocotb.test()
async def residual_block(dut: object) -> None:
    """The mapper's program for a quantized residual block: its add on the vector unit, through DRAM."""
    await _run_program(dut, "residual_block")


@cocotb.test()
async def residual_block_resident(dut: object) -> None:
    """The residual block with the ILP keeping its tensors on chip (requantizing Moves, the add's output stored)."""
    await _run_program(dut, "residual_block_resident")


@cocotb.test()
async def vector_ops(dut: object) -> None:
    """Hand-written vector commands: a ReLU and a copy (clamps), an add of 23 elements, one timed only."""
    await _run_program(dut, "vector_ops")


@cocotb.test()
async def wrong_rescale(dut: object) -> None:
    """The residual block with its add's output multiplier changed in the table the NPU gets."""
    await _run_program(dut, "wrong_rescale")


@cocotb.test()
async def max_pool(dut: object) -> None:
    """The mapper's program for a quantized conv -> two max pools -> global average pool, on the vector unit."""
    await _run_program(dut, "max_pool")


@cocotb.test()
async def max_pool_resident(dut: object) -> None:
    """The max-pool network with the ILP keeping its tensors on chip."""
    await _run_program(dut, "max_pool_resident")


@cocotb.test()
async def depthwise(dut: object) -> None:
    """The mapper's program for a quantized conv -> depthwise convolution, the latter on the vector unit."""
    await _run_program(dut, "depthwise")


@cocotb.test()
async def wrong_pool_step(dut: object) -> None:
    """The max-pool network with its first pool step's left padding changed in the table the NPU gets."""
    await _run_program(dut, "wrong_pool_step")


@cocotb.test()
async def wrong_depthwise_channels(dut: object) -> None:
    """The depthwise network with its step's first channel-table entry one off in the table the NPU gets."""
    await _run_program(dut, "wrong_depthwise_channels")
