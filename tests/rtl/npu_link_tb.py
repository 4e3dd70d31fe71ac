"""cocotb testbench of :class:`rtl.fpga.npu_link.NPULink`, run by ``tests/rtl/test_npu_link.py``.

Not a pytest module: cocotb imports it inside the simulator. The host side is the real
:class:`rtl.fpga.driver.NPULinkDriver`, run in a :func:`cocotb.bridge` thread over the UART model and
pin transport of ``uart_host_link_tb.py`` (8N1 frames driven on ``rx``, sampled from ``tx``), so from
the pins inward everything is the RTL: the protocol machine, the DRAM model and the NPU. The tests
share one simulation (each resets the link) and run in order: the quantized convolution (its
requantization and feeder tables written with 'Q'), the quantized fully connected layer (its empty
feeder table clears the convolution's steps), a program with unaligned DRAM addresses (its empty
tables clear the layer's steps), that program with one input byte corrupted on the wire (must fail),
the convolution with its first feeder step's zero point corrupted on the wire (must fail), then
refused commands.
"""

from __future__ import annotations

import dataclasses

import cocotb
from uart_host_link_tb import PinTransport, UartModel

from accel.config import load
from accel.encoding import (
    FEEDER_STEP_WORDS,
    FeederTable,
    decode_feeder_table,
    decode_program,
    decode_requant_table,
    encode_feeder_table,
)
from rtl.cocotb_runner import testbench_parameters
from rtl.fpga import npu_link
from rtl.fpga.driver import LinkError, NPULinkDriver, NPURun, program_tensors

try:
    from cocotb import bridge  # type: ignore[attr-defined]
except ImportError:  # cocotb 2.1 keeps it in a private module
    from cocotb._bridge import bridge


def _arch(p: dict):  # noqa: ANN202 - fpga-small with the bench's array (as npu_tb.py derives it)
    arch = load("fpga-small")
    if (p["rows"], p["cols"]) != (arch.array.rows, arch.array.cols):
        arch = dataclasses.replace(arch, name=f"fpga-small-{p['rows']}x{p['cols']}",
                                   array=dataclasses.replace(arch.array, rows=p["rows"], cols=p["cols"]))
    return arch


async def _link(dut: object) -> tuple[UartModel, NPULinkDriver, dict]:
    """Clock, reset and the UART model for this test (cocotb ends a test's clock with it), and the driver.
    The memories keep what earlier tests wrote: a reset clears only registers."""
    p = testbench_parameters()
    uart = UartModel(dut, p["divisor"])
    await uart.start()
    return uart, NPULinkDriver(PinTransport(uart)), p


class CorruptingTransport:
    """A transport that flips bit 6 of the first payload byte of the first DRAM write ('W'): the board
    gets one wrong input byte, the driver's golden model the right one."""

    def __init__(self, inner: PinTransport) -> None:
        self.inner, self.done = inner, False

    def write(self, data: bytes) -> None:
        if not self.done and data[:1] == bytes([npu_link.OP_WRITE]) and len(data) > 9:
            data = data[:9] + bytes([data[9] ^ 0x40]) + data[10:]
            self.done = True
        self.inner.write(data)

    def read(self, n: int) -> bytes:
        return self.inner.read(n)


def _quantized(p: dict, key: str) -> tuple[bytes, bytes, dict]:
    """Program ``key`` of the parameters: its image, DRAM image and the driver's tables (requant=, feeder=)."""
    spec = p[key]
    words = spec["requant"]
    tables = {"requant": decode_requant_table(words["steps"], words["channels"], words["vector"]),
              "feeder": decode_feeder_table(spec["feeder"])}
    return bytes.fromhex(spec["image"]), bytes.fromhex(spec["dram"]), tables


async def _quantized_run(dut: object, key: str, what: str) -> None:
    """Program ``key`` through the driver, which writes its tables ('Q'), DRAM image and program: outputs ==
    golden with the tables == sim.execute's bytes, cycles and trace == sim.simulate."""
    uart, driver, p = await _link(dut)
    image, dram, tables = _quantized(p, key)

    def host():  # noqa: ANN202
        info = driver.info()
        assert (info.rows, info.cols, info.dram_bytes, info.max_commands, info.program_words) == (
            p["rows"], p["cols"], p["dram_bytes"], p["max_commands"], p["program_words"]), info
        return driver.run_program(image, dram, arch=_arch(p), **tables)

    run = await bridge(host)()
    expected = {name: bytes.fromhex(data) for name, data in p[key]["expected"].items()}
    assert run.outputs == expected, f"outputs differ from sim.execute's: {run.outputs} != {expected}"
    assert run.outputs_match and run.cycles_match and run.trace_match, run.mismatches()
    assert uart.framing_errors == 0
    dut._log.info("%s: %d channels, %d feeder steps written; outputs %s equal sim.execute's (%d bytes); %d cycles "
                  "(sim.simulate %d); trace of %d commands equal", what, len(tables["requant"].channels),
                  len(tables["feeder"].steps), ", ".join(run.outputs), sum(map(len, run.outputs.values())),
                  run.cycles, run.expected_cycles, len(run.trace))


@cocotb.test()
async def quantized_conv_bit_and_cycle_exact(dut: object) -> None:
    """info, then the quantized 3x3 convolution (padding 1): its computes gather im2col rows through the
    feeder steps the driver wrote to table 3."""
    await _quantized_run(dut, "conv", "conv")


@cocotb.test()
async def corrupted_feeder_step_fails(dut: object) -> None:
    """The convolution again (its program, inputs and tables are still on the board: a reset keeps the
    memories) with its first feeder step's zero point one off, rewritten with 'Q': the outputs compared
    with sim.execute's (:meth:`rtl.fpga.driver.NPURun.mismatches`, the driver's comparison) must differ
    (only the padding reads the zero point; the cycles still agree). Runs right after the convolution."""
    uart, driver, p = await _link(dut)
    _, _, tables = _quantized(p, "conv")
    first = tables["feeder"].steps[0]
    word = encode_feeder_table(FeederTable((first,)))[FEEDER_STEP_WORDS * first.command] ^ 0x100
    expected = {name: bytes.fromhex(data) for name, data in p["conv"]["expected"].items()}
    regions = program_tensors(decode_program(bytes.fromhex(p["conv"]["image"])))[1]

    def host() -> NPURun:
        driver.write_table(3, [word], first=FEEDER_STEP_WORDS * first.command)
        driver.start()
        driver.wait()
        outputs = {name: driver.read_dram(*regions[name]) for name in expected}
        return NPURun(outputs, expected, driver.read_cycles(), p["conv"]["cycles"])

    problems = (await bridge(host)()).mismatches()
    if problems:
        raise AssertionError("; ".join(problems))


@cocotb.test()
async def quantized_layer_bit_and_cycle_exact(dut: object) -> None:
    """The quantized fully connected layer (per-channel scales, a fused ReLU)."""
    await _quantized_run(dut, "quantized", "fc")


@cocotb.test()
async def unaligned_beats_bit_and_cycle_exact(dut: object) -> None:
    """A hand-written program whose loads and stores start at DRAM addresses 3, 101, 206 and 301: the DRAM
    model's byte lanes turn every beat to its address, reading and writing."""
    uart, driver, p = await _link(dut)
    spec = p["unaligned"]
    image, inputs = bytes.fromhex(spec["image"]), {k: bytes.fromhex(v) for k, v in spec["inputs"].items()}
    run = await bridge(lambda: driver.run_program(image, inputs, arch=_arch(p)))()
    assert run.outputs_match and run.cycles_match and run.trace_match
    dut._log.info("unaligned: outputs %s bit-exact; %d cycles (sim.simulate %d)", ", ".join(run.outputs),
                  run.cycles, run.expected_cycles)


@cocotb.test()
async def corrupted_input_byte_fails(dut: object) -> None:
    """One input byte flipped on the wire (the unaligned program's, the shorter one): the driver's comparison
    with golden must fail (the cycles still agree)."""
    uart, driver, p = await _link(dut)
    arch = _arch(p)
    spec = p["unaligned"]
    image, inputs = bytes.fromhex(spec["image"]), {k: bytes.fromhex(v) for k, v in spec["inputs"].items()}
    corrupting = NPULinkDriver(CorruptingTransport(driver.transport))  # type: ignore[arg-type]
    await bridge(lambda: corrupting.run_program(image, inputs, arch=arch, trace=False))()


@cocotb.test()
async def refused_commands_answer_error(dut: object) -> None:
    """Unknown opcodes, out-of-range reads, writes and trace ids, and 'G' during a run answer '?'."""
    uart, driver, p = await _link(dut)
    t = driver.transport
    size, commands = p["dram_bytes"], p["max_commands"]

    def host() -> None:
        t.write(b"Z")
        assert t.read(1) == b"?"
        t.write(bytes([npu_link.OP_READ]) + (size - 2).to_bytes(4, "little") + (4).to_bytes(4, "little"))
        assert t.read(1) == b"?"
        t.write(bytes([npu_link.OP_TRACE]) + commands.to_bytes(4, "little"))
        assert t.read(1) == b"?"
        # a refused write's payload is received and dropped: the answer comes after it, and DRAM keeps its bytes
        before = driver.read_dram(size - 4, 4)
        t.write(bytes([npu_link.OP_WRITE]) + (size - 2).to_bytes(4, "little") + (4).to_bytes(4, "little")
                + b"\xaa\xbb\xcc\xdd")
        assert t.read(1) == b"?"
        assert driver.read_dram(size - 4, 4) == before
        t.write(bytes([npu_link.OP_PROGRAM]) + p["program_words"].to_bytes(4, "little") + (1).to_bytes(4, "little")
                + b"\0\0\0\0")
        assert t.read(1) == b"?"
        # 'Q' past the step table (2 words per command), and of a table above 3: refused after the payload
        t.write(bytes([npu_link.OP_TABLE, 0]) + (2 * commands - 1).to_bytes(4, "little") + (2).to_bytes(4, "little")
                + bytes(8))
        assert t.read(1) == b"?"
        t.write(bytes([npu_link.OP_TABLE, 4]) + (0).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(4))
        assert t.read(1) == b"?"
        # the feeder table (3) holds 32 words a command: its last word is taken, one past it refused
        last = FEEDER_STEP_WORDS * commands - 1
        t.write(bytes([npu_link.OP_TABLE, 3]) + last.to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(4))
        assert t.read(1) == b"Q"
        t.write(bytes([npu_link.OP_TABLE, 3]) + last.to_bytes(4, "little") + (2).to_bytes(4, "little") + bytes(8))
        assert t.read(1) == b"?"
        driver.start()  # the program loaded last runs again; a second 'G' while it runs is refused
        t.write(bytes([npu_link.OP_GO]))
        assert t.read(1) == b"?"
        t.write(bytes([npu_link.OP_STATUS]))
        assert t.read(2) == bytes([npu_link.OP_STATUS, npu_link.STATUS_BUSY])
        driver.wait()
        try:
            driver.read_trace(commands)
        except LinkError as error:
            assert "refused" in str(error)
        else:
            raise AssertionError("'T' of an id past max_commands must be refused")

    await bridge(host)()
    assert uart.framing_errors == 0
