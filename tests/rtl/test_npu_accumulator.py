"""rtl.npu.accumulator: the banked accumulator reads back rows and DMA beats a cycle after the
address as they are after that cycle's writes, lets load words wait for a bank the array row has,
and says when no slot is left; for ECP5 it is block RAM."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from accel.errors import ConfigError
from rtl.npu.accumulator import BankedAccumulator

WORDS, LANES = 64, 4


def test_rows_and_waiting_load_words_read_back_a_cycle_later() -> None:
    dut = BankedAccumulator(words=WORDS, lanes=LANES, dma_lanes=4, pending=4)
    rng = random.Random(17)
    model = [0] * WORDS
    problems: list[str] = []

    async def bench(ctx) -> None:  # noqa: ANN001
        expect_a = expect_d = None
        for step in range(400):
            row = rng.random() < 0.7
            load = rng.random() < 0.5
            w_addr, mask = rng.randrange(WORDS), rng.randrange(1 << LANES) if row else 0
            values = [rng.getrandbits(32) for _ in range(LANES)]
            l_addr, l_en, l_data = rng.randrange(WORDS), rng.randrange(1, 16) if load else 0, rng.getrandbits(32)
            a_addr, d_addr = rng.randrange(WORDS), rng.randrange(WORDS)
            ctx.set(dut.w_addr, w_addr)
            ctx.set(dut.w_mask, mask)
            for j in range(LANES):
                ctx.set(dut.w_data[j], values[j])
            ctx.set(dut.l_addr, l_addr)
            ctx.set(dut.l_en, l_en)
            ctx.set(dut.l_data, l_data)
            ctx.set(dut.a_addr, a_addr)
            ctx.set(dut.d_addr, d_addr)
            # this cycle's data: the reads addressed last cycle, after last cycle's writes (and the DMA
            # read also after this cycle's row)
            row_words = {(w_addr + j) % WORDS: values[j] for j in range(LANES) if mask >> j & 1}
            if expect_a is not None:
                got = [ctx.get(dut.a_data[j]) for j in range(LANES)]
                if got != expect_a:
                    problems.append(f"step {step}: array read {got}, expected {expect_a}")
                got = [ctx.get(dut.d_data[i]) for i in range(4)]
                want = [row_words.get((expect_d[0] + i) % WORDS, expect_d[1][i]) for i in range(4)]
                if got != want:
                    problems.append(f"step {step}: DMA read {got}, expected {want}")
            if ctx.get(dut.conflict):
                l_en = 0  # the word is lost; keep the bench below the slots' capacity
                problems.append(f"step {step}: no slot for a load word")
            if l_en:
                model[l_addr] = int.from_bytes(bytes(
                    (l_data >> 8 * i & 0xFF) if l_en >> i & 1 else (model[l_addr] >> 8 * i & 0xFF) for i in range(4)),
                    "little")
            for word, value in row_words.items():  # in one cycle the row's word, not the load's
                model[word] = value
            expect_a = [model[(a_addr + j) % WORDS] for j in range(LANES)]
            expect_d = (d_addr, [model[(d_addr + i) % WORDS] for i in range(4)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not problems, problems[:5]


def test_a_load_word_without_a_slot_is_a_conflict() -> None:
    dut = BankedAccumulator(words=WORDS, lanes=LANES, dma_lanes=4, pending=2)
    seen = []

    async def bench(ctx) -> None:  # noqa: ANN001
        ctx.set(dut.w_mask, 0b1111)  # the row has every bank, every cycle
        ctx.set(dut.l_en, 0b1111)
        for step in range(3):
            ctx.set(dut.w_addr, 4 * step)
            ctx.set(dut.l_addr, 32 + step)
            seen.append(ctx.get(dut.conflict))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 0, 1], seen


def test_words_must_be_a_power_of_two() -> None:
    with pytest.raises(ConfigError, match=r"^Accumulator words must be a power of two, not 48$"):
        BankedAccumulator(words=48, lanes=4)


@pytest.mark.fpga
def test_the_npu_accumulator_is_block_ram_on_ecp5(tmp_path) -> None:  # noqa: ANN001
    from rtl.fpga.synth import synthesize

    # fpga-small's accumulator: 1 KiB (256 words) in 4 banks, two read groups: 8 memories of 64 x 32
    acc = BankedAccumulator(words=256, lanes=4)
    resources = synthesize(acc, family="ecp5", name="accumulator", out_dir=tmp_path)
    assert resources.flip_flops < 1000, dict(resources.cells)
    assert "TRELLIS_DPR16X4" in resources.cells or resources.cells.get("DP16KD", 0) >= 8, dict(resources.cells)
