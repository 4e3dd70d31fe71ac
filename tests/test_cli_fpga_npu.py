"""``accel fpga run --design npu`` and :class:`rtl.fpga.driver.NPULinkDriver` against a Python model of the
NPU host link's protocol (no RTL: ``tests/rtl/test_npu_link.py`` runs the driver on the real pins).

The model answers as :mod:`rtl.fpga.npu_link` documents, and "runs" a program with the references the
driver compares with (golden data, the simulator's cycles and trace), so these tests check the
protocol's host side, the command's output and its failures, not the NPU."""

from __future__ import annotations

from collections import deque

import pytest

from accel.cli import main
from accel.config import load
from accel.encoding import (
    FEEDER_STEP_WORDS,
    VECTOR_STEP_WORDS,
    RequantChannel,
    RequantStep,
    RequantTable,
    decode_feeder_table,
    decode_program,
    decode_requant_table,
    encode_feeder_table,
)
from accel.hardware import Dataflow
from mapper.plan import Plan
from rtl.fpga import driver as driver_module
from rtl.fpga import npu_link
from rtl.fpga.driver import LinkError, NPULinkDriver, fc_layer, program_tensors, random_inputs
from rtl.npu.golden import execute, feeder_table
from sim.engine import simulate


class FakeNPULink:
    """The protocol of :mod:`rtl.fpga.npu_link` in Python, as a :class:`~rtl.fpga.driver.Transport`."""

    def __init__(self, arch, *, dram_bytes: int = 8192, program_words: int = 512, max_commands: int = 16,
                 requant_channels: int = 32, flip_output: bool = False, extra_cycle: bool = False) -> None:  # noqa: ANN001
        self.arch, self.dram_bytes, self.requant_channels = arch, dram_bytes, requant_channels
        feeder = Dataflow.OS in arch.array.dataflows
        self.tables = [[0] * n for n in npu_link.table_words(max_commands, requant_channels, feeder)]
        self.program_words, self.max_commands = program_words, max_commands
        self.flip_output, self.extra_cycle = flip_output, extra_cycle
        self.program, self.dram = bytearray(4 * program_words), bytearray(dram_bytes)
        self.inbox, self.outbox = bytearray(), deque()
        self.cycles, self.trace, self.finished, self.closed = 0, {}, False, False

    def write(self, data: bytes) -> None:
        self.inbox += data
        while self.inbox and self._command():
            pass

    def read(self, n: int) -> bytes:
        assert len(self.outbox) >= n, f"the host waits for {n} bytes, the board sent {len(self.outbox)}"
        return bytes(self.outbox.popleft() for _ in range(n))

    def close(self) -> None:
        self.closed = True

    def _answer(self, *parts: bytes) -> None:
        self.outbox.extend(b"".join(parts))

    def _command(self) -> bool:  # noqa: C901 - one protocol, command by command
        op, box = self.inbox[0], self.inbox
        u32 = lambda at: int.from_bytes(box[at:at + 4], "little")  # noqa: E731
        if op in (npu_link.OP_PROGRAM, npu_link.OP_WRITE, npu_link.OP_READ):
            if len(box) < 9:
                return False
            addr, n = u32(1), u32(5)
            payload = 4 * n if op == npu_link.OP_PROGRAM else n if op == npu_link.OP_WRITE else 0
            if len(box) < 9 + payload:
                return False
            data = bytes(box[9:9 + payload])
            del box[:9 + payload]
            limit = self.program_words if op == npu_link.OP_PROGRAM else self.dram_bytes
            if n == 0 or addr + n > limit:
                self._answer(b"?")
            elif op == npu_link.OP_PROGRAM:
                self.program[4 * addr:4 * (addr + n)] = data
                self._answer(b"P")
            elif op == npu_link.OP_WRITE:
                self.dram[addr:addr + n] = data
                self._answer(b"W")
            else:
                self._answer(b"R", bytes(self.dram[addr:addr + n]))
            return True
        if op == npu_link.OP_TABLE:
            if len(box) < 10 or len(box) < 10 + 4 * u32(6):
                return False
            table, addr, n = box[1], u32(2), u32(6)
            words = [int.from_bytes(box[10 + 4 * i:14 + 4 * i], "little") for i in range(n)]
            del box[:10 + 4 * n]
            if table > 3 or n == 0 or addr + n > len(self.tables[table]):
                self._answer(b"?")
            else:
                self.tables[table][addr:addr + n] = words
                self._answer(b"Q")
            return True
        if op == npu_link.OP_TRACE:
            if len(box) < 5:
                return False
            command = u32(1)
            del box[:5]
            if command >= self.max_commands:
                self._answer(b"?")
            else:
                start, end = self.trace.get(command, (0, 0))
                self._answer(b"T", start.to_bytes(4, "little"), end.to_bytes(4, "little"))
            return True
        del box[:1]
        if op == npu_link.OP_INFO:
            a = self.arch.array
            self._answer(b"I", self.program_words.to_bytes(4, "little"), self.dram_bytes.to_bytes(4, "little"),
                         self.max_commands.to_bytes(2, "little"), bytes([a.rows, a.cols]),
                         self.arch.dram.latency_cycles.to_bytes(2, "little"),
                         self.requant_channels.to_bytes(2, "little"))
        elif op == npu_link.OP_GO:
            commands = decode_program(bytes(self.program))
            table = decode_requant_table(*self.tables[:3])  # the whole tables, as the NPU holds them
            feeder = decode_feeder_table(self.tables[3]) if self.tables[3] else None
            self.dram[:] = execute(self.arch, commands, bytes(self.dram), requant=table, feeder=feeder).dram
            result = simulate(Plan(arch=self.arch, graph_name="fake", layers=(), commands=commands))
            self.cycles = result.total_cycles + self.extra_cycle
            self.trace = {event.command: (event.start, event.end) for event in result.trace}
            if self.flip_output:
                store = max((c for c in commands if type(c).__name__ == "Store"), key=lambda c: c.id)
                self.dram[store.dram_addr] ^= 0x01
            self.finished = True
            self._answer(b"G")
        elif op == npu_link.OP_STATUS:
            self._answer(b"S", bytes([npu_link.STATUS_FINISHED if self.finished else 0]))
        elif op == npu_link.OP_CYCLES:
            self._answer(b"C", self.cycles.to_bytes(4, "little"))
        else:
            self._answer(b"?")
        return True


def _board(monkeypatch: pytest.MonkeyPatch, **options: object) -> list[FakeNPULink]:
    boards: list[FakeNPULink] = []

    def open_port(port: str, baud: int = 115200, **_: object) -> FakeNPULink:
        boards.append(FakeNPULink(load("fpga-small"), **options))  # type: ignore[arg-type]
        return boards[-1]

    monkeypatch.setattr(driver_module, "SerialTransport", open_port)
    return boards


def test_run_program_reads_outputs_cycles_and_trace_back() -> None:
    arch = load("fpga-small")
    plan = fc_layer(arch)
    run = NPULinkDriver(FakeNPULink(arch)).run_program(plan, random_inputs(plan.commands, seed=1))
    assert run.outputs_match and run.cycles_match and run.trace_match and not run.mismatches()
    assert set(run.outputs) == {"fc"} and len(run.outputs["fc"]) == 256 and run.cycles == 850
    assert len(run.trace) == len(plan.commands)


def test_run_program_refuses_what_the_board_cannot_hold() -> None:
    arch = load("fpga-small")
    plan = fc_layer(arch)
    inputs = random_inputs(plan.commands)
    with pytest.raises(LinkError, match=r"uses 4352 bytes of DRAM, the board has 4096"):
        NPULinkDriver(FakeNPULink(arch, dram_bytes=4096)).run_program(plan, inputs)
    with pytest.raises(LinkError, match=r"missing fc.weight"):
        NPULinkDriver(FakeNPULink(arch)).run_program(plan, {"x": inputs["x"]})
    with pytest.raises(LinkError, match=r"input 'x' has 3 bytes; the program reads 512"):
        NPULinkDriver(FakeNPULink(arch)).run_program(plan, {**inputs, "x": b"abc"})


def test_the_driver_writes_the_table_and_clears_every_step_it_does_not_configure() -> None:
    """A table configures command 3 only: the board's step words of every other id of the program are
    written cleared (an earlier program's step must not stay), its channels and the vector steps too."""
    arch = load("fpga-small")
    board = FakeNPULink(arch, requant_channels=4)
    board.tables[0][:] = [1, 0] * 16  # an earlier program configured every id
    board.tables[2][::VECTOR_STEP_WORDS] = [2] * 16  # ... and a clamp on each
    table = RequantTable(steps=(RequantStep(command=3, first_channel=1, columns=2, zero_point=-5, low=-5),),
                         channels=(RequantChannel(0, 1 << 30, -3), RequantChannel(7, 1 << 29, -2),
                                   RequantChannel(-9, 1 << 30, 1)))
    NPULinkDriver(board).write_requant(table, commands=6)
    assert decode_requant_table(board.tables[0][:12], board.tables[1][:12]) == table
    assert board.tables[0][12:] == [1, 0] * 10  # ids past the program's are not written
    assert board.tables[2][:6 * VECTOR_STEP_WORDS:VECTOR_STEP_WORDS] == [0] * 6  # no function: timed only
    assert board.tables[2][6 * VECTOR_STEP_WORDS::VECTOR_STEP_WORDS] == [2] * 10
    with pytest.raises(LinkError, match=r"^the requantization table has 3 channels, the board's NPU 2$"):
        NPULinkDriver(FakeNPULink(arch, requant_channels=2)).write_requant(table, commands=6)
    with pytest.raises(LinkError, match=r"no requantizer \(requant_channels = 0\)"):
        NPULinkDriver(FakeNPULink(arch, requant_channels=0)).write_requant(table, commands=6)


def test_the_driver_writes_a_convolutions_feeder_steps_and_clears_every_other_id() -> None:
    """A padded 3x3 convolution: the driver writes rtl.npu.golden.feeder_table(plan)'s steps to table 3
    (an earlier program's enable bits of the other ids cleared), and the board's outputs with that
    table are golden's; the same program with a table missing a step is not."""
    from mapper import map_graph
    from workloads.builder import GraphBuilder

    arch = load("fpga-small")
    graph = GraphBuilder("conv")
    graph.conv(graph.input("x", (1, 4, 6, 6)), 8, 3, padding=1, bias=False, name="conv")
    plan = map_graph(graph.build(), arch)
    table = feeder_table(plan)
    board = FakeNPULink(arch, max_commands=32)
    step = encode_feeder_table(table)[-FEEDER_STEP_WORDS:]  # an earlier program configured every id alike
    board.tables[3][:] = list(step) * 32
    run = NPULinkDriver(board).run_program(plan, random_inputs(plan.commands, seed=2))
    assert run.outputs_match and run.cycles_match and table.steps
    assert decode_feeder_table(board.tables[3][:FEEDER_STEP_WORDS * len(plan.commands)]) == table
    assert board.tables[3][FEEDER_STEP_WORDS * len(plan.commands):] == \
        list(step) * (32 - len(plan.commands))  # ids past the program's are not written
    board.tables[3][FEEDER_STEP_WORDS * table.steps[0].command] = 0  # the board loses the first step
    board.write(bytes([npu_link.OP_GO]))
    assert board.read(1) == b"G"
    (addr, size), = program_tensors(plan.commands)[1].values()
    assert bytes(board.dram[addr:addr + size]) != next(iter(run.expected.values()))
    with pytest.raises(LinkError, match=r"^the feeder table configures command \d+, beyond the program's 3$"):
        NPULinkDriver(board).write_feeder(table, commands=3)


def test_the_links_tables_are_what_the_npu_stores() -> None:
    """'Q' may write 2 step words, 32 vector words and 32 feeder words a command and 4 words a channel;
    without a requantizer only the feeder's table, without OS (no feeder) not that one."""
    assert npu_link.table_words(16, 256, True) == (32, 1024, 512, 512)
    assert npu_link.table_words(16, 0, True) == (0, 0, 0, 512)
    assert npu_link.table_words(16, 4, False) == (32, 16, 512, 0)


def test_cli_run_npu_prints_the_comparison(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    boards = _board(monkeypatch)
    assert main(["fpga", "run", "--design", "npu", "--port", "/dev/fake"]) == 0
    out = capsys.readouterr().out
    assert "fc 16x32 @ 32x16 (13 commands) on the NPU at /dev/fake" in out
    assert "output fc: 256 bytes, equal to rtl.npu.golden.execute" in out
    assert "cycles: 850 (sim.simulate: 850, equal)" in out
    assert "trace: 13 commands, equal to sim.simulate's" in out
    assert boards[0].closed


def test_cli_run_npu_runs_a_convolution_through_the_feeder(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """--conv maps a padded 3x3 convolution; the driver writes its feeder steps (table 3) and the outputs
    the board computes with them are golden's; a malformed shape is one error line."""
    boards = _board(monkeypatch)
    assert main(["fpga", "run", "--design", "npu", "--port", "/dev/fake", "--conv", "4x6x6x8"]) == 0
    out = capsys.readouterr().out
    assert "fpga-small: 3x3 conv 4x6x6 -> 8 channels (" in out and "equal to rtl.npu.golden.execute" in out
    assert "DIFFERENT" not in out and any(w & 1 for w in boards[0].tables[3][::FEEDER_STEP_WORDS])
    assert main(["fpga", "run", "--design", "npu", "--port", "/dev/fake", "--conv", "4x6x6"]) == 2
    assert capsys.readouterr().err == ("accel: error: --conv must be CxHxWxO with positive integers, e.g. 4x6x6x8, "
                                       "not '4x6x6'\n")


@pytest.mark.parametrize(("options", "message"), [
    ({"flip_output": True}, r"output 'fc' differs from rtl.npu.golden.execute in 1 of 256 bytes"),
    ({"extra_cycle": True}, r"the board took 851 cycles, sim.simulate 850"),
])
def test_cli_run_npu_fails_in_one_line_when_the_board_disagrees(capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                options: dict, message: str) -> None:
    _board(monkeypatch, **options)
    assert main(["fpga", "run", "--design", "npu", "--port", "/dev/fake"]) == 2
    captured = capsys.readouterr()
    assert "DIFFERENT" in captured.out
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith("accel: error: ")
    import re

    assert re.search(message, captured.err), captured.err


def test_cli_run_npu_names_a_port_it_cannot_open(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # noqa: ANN001
    missing = tmp_path / "ttyNOPE"
    assert main(["fpga", "run", "--design", "npu", "--port", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith(f"accel: error: cannot open serial port '{missing}': ") or "pyserial" in captured.err


def test_fc_layer_runs_the_default_plan_and_refuses_rows_of_partial_beats() -> None:
    """The default plan moves strided DRAM blocks (the NPU's DMA walks them); a layer whose blocks have
    rows that are not whole 4-byte beats is refused, naming the command."""
    from accel.commands import Load, Store

    arch = load("fpga-small")
    plan = fc_layer(arch)
    assert plan.layers[0].loop_order != "fold-outer"
    assert any(isinstance(c, Load | Store) and c.dram is not None and c.dram.rows > 1 for c in plan.commands)
    with pytest.raises(LinkError, match=r"^the fc layer 16x32 @ 32x18 on fpga-small: command 8 moves rows of 6 "
                                        r"bytes, not whole 4-byte beats, which the NPU refuses; try another --layer$"):
        fc_layer(arch, 16, 32, 18)
