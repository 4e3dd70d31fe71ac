"""rtl.npu.scratchpad: the banked scratchpad reads back what was written, a cycle after the address,
from any byte alignment, and says when two writers wanted one bank; for ECP5 it is block RAM."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from accel.errors import ConfigError
from rtl.npu.scratchpad import BankedScratchpad


def _pad() -> BankedScratchpad:
    return BankedScratchpad(size_bytes=256, banks=4, word_bytes=4, read_lanes=(1, 4), writers=2, beat_bytes=4)


def _banks(addr: int) -> set[int]:
    return {(addr + i) // 4 % 4 for i in range(4)}


def test_unaligned_beats_read_back_through_every_window_a_cycle_later() -> None:
    dut = _pad()
    rng = random.Random(7)
    model = bytearray(256)
    seen: list[str] = []

    async def bench(ctx) -> None:  # noqa: ANN001
        # two writers per cycle, never in one bank: loads fill the low half, moves the high half
        for step in range(32):
            a0, a1 = 4 * step + rng.randrange(2), 128 + 4 * ((step + 2) % 32) + rng.randrange(4)
            b0, b1 = rng.randbytes(4), rng.randbytes(4)
            if a1 + 4 > 256 or _banks(a0) & _banks(a1):
                a1 = None
            ctx.set(dut.w_addr[0], a0)
            ctx.set(dut.w_data[0], int.from_bytes(b0, "little"))
            ctx.set(dut.w_en[0], 0b1111)
            model[a0:a0 + 4] = b0
            if a1 is not None:
                ctx.set(dut.w_addr[1], a1)
                ctx.set(dut.w_data[1], int.from_bytes(b1, "little"))
                ctx.set(dut.w_en[1], 0b1111)
                model[a1:a1 + 4] = b1
            else:
                ctx.set(dut.w_en[1], 0)
            assert not ctx.get(dut.conflict)
            await ctx.tick()
        ctx.set(dut.w_en[0], 0)
        ctx.set(dut.w_en[1], 0)
        for addr in range(0, 253):
            ctx.set(dut.r_addr[0], (addr * 37) % 256)
            ctx.set(dut.r_addr[1], addr)
            await ctx.tick()
            one = ctx.get(dut.r_data[0]) & 0xFF
            window = ctx.get(dut.r_data[1]).to_bytes(4, "little")
            if one != model[(addr * 37) % 256] or window != bytes(model[addr:addr + 4]):
                seen.append(f"{addr}: {one:#x} {window.hex()} != {bytes(model[addr:addr + 4]).hex()}")
        # the same bank from both writers in one cycle is a conflict; the first writer's bytes win
        ctx.set(dut.w_addr[0], 16)
        ctx.set(dut.w_addr[1], 32)  # word 8, bank 0, like word 4
        ctx.set(dut.w_data[0], 0x11223344)
        ctx.set(dut.w_data[1], 0x55667788)
        ctx.set(dut.w_en[0], 0b1111)
        ctx.set(dut.w_en[1], 0b1111)
        assert ctx.get(dut.conflict)
        ctx.set(dut.r_addr[1], 16)
        await ctx.tick()
        ctx.set(dut.w_en[0], 0)
        ctx.set(dut.w_en[1], 0)
        # a read addressed in the cycle of a write sees it (transparent)
        assert ctx.get(dut.r_data[1]) == 0x11223344

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not seen, f"{len(seen)} windows read back wrong: {seen[:4]}"


def test_a_window_wider_than_the_banks_can_serve_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^Scratchpad read windows must be 1 to 13 bytes \(4 banks of 4-byte "
                                          r"words\), not \[1, 14\]$"):
        BankedScratchpad(size_bytes=256, banks=4, word_bytes=4, read_lanes=(1, 14))
    with pytest.raises(ConfigError, match=r"^Scratchpad banks must be a power of two, not 3$"):
        BankedScratchpad(size_bytes=256, banks=3, word_bytes=4, read_lanes=(1,))


@pytest.mark.fpga
def test_the_npu_scratchpad_is_block_ram_on_ecp5(tmp_path) -> None:  # noqa: ANN001
    from rtl.fpga.synth import synthesize

    # fpga-small's scratchpad: 16 KiB in 4 banks of 4-byte words, the 4x4 NPU's six read streams
    pad = BankedScratchpad(size_bytes=16384, banks=4, word_bytes=4, read_lanes=(1, 1, 1, 1, 4, 4))
    resources = synthesize(pad, family="ecp5", name="scratchpad", out_dir=tmp_path)
    # 6 copies x 4 banks of 1024 x 32 bits, two DP16KD (1024 x 18) each; the flip-flops left are the
    # read-after-write bypass and the byte selects (measured: 268), not storage (16 KiB is 131,072 bits)
    assert resources.cells.get("DP16KD", 0) == 48, dict(resources.cells)
    assert resources.flip_flops < 400 and "TRELLIS_DPR16X4" not in resources.cells, dict(resources.cells)


def test_with_a_write_port_per_writer_both_writers_write_one_bank_in_one_cycle() -> None:
    """Two beats into bank 0 (words 4 and 8) in one cycle: both land, no conflict, and a read addressed
    in that cycle sees its word (transparent to both ports)."""
    dut = BankedScratchpad(size_bytes=256, banks=4, word_bytes=4, read_lanes=(4, 4), write_ports=True)
    got: dict[str, int] = {}

    async def bench(ctx) -> None:  # noqa: ANN001
        ctx.set(dut.w_addr[0], 16)
        ctx.set(dut.w_addr[1], 33)  # word 8 (bank 0) and one byte of word 9 (bank 1)
        ctx.set(dut.w_data[0], 0x11223344)
        ctx.set(dut.w_data[1], 0x55667788)
        ctx.set(dut.w_en[0], 0b1111)
        ctx.set(dut.w_en[1], 0b1111)
        ctx.set(dut.r_addr[1], 16)
        assert not ctx.get(dut.conflict)
        await ctx.tick()
        ctx.set(dut.w_en[0], 0)
        ctx.set(dut.w_en[1], 0)
        got["transparent"] = ctx.get(dut.r_data[1])
        ctx.set(dut.r_addr[0], 33)
        await ctx.tick()
        got["second"] = ctx.get(dut.r_data[0])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == {"transparent": 0x11223344, "second": 0x55667788}, {k: hex(v) for k, v in got.items()}
