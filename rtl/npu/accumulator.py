"""The NPU's accumulator as banked block RAM: rows of consecutive words, one port pair per bank.

:class:`BankedAccumulator` holds ``words`` 32-bit words in ``banks`` word-interleaved banks (word
``a`` lives in bank ``a % banks`` at row ``a // banks``). Each bank is stored once per read group,
and each copy is one :class:`~amaranth.lib.memory.Memory` with one write port (byte enables) and one
synchronous read port, the two ports of a block RAM (ECP5 DP16KD), so synthesis never builds the
accumulator from flip-flops. ``banks`` is at least the widest access, so ``lanes`` consecutive words
(any start) touch each bank at most once: an array row (the ``C`` results of a WS output row, or one
row of an OS tile) is written and read in one cycle, and so is a DMA beat of 4 words.

Writes: ``w_mask[j]`` writes ``w_data[j]`` to word ``w_addr + j`` (the array's row), and ``l_en``'s
bytes write ``l_data`` to word ``l_addr`` (a DMA load beat). The row is written on the edge that ends
the cycle. A bank has one write port, and the row has it first: a load word whose bank the row
writes waits in one of ``pending`` slots (merged into a slot of the same word) and is written in a
later cycle in which its bank is free, oldest slots first; reads see it while it waits, so to a reader
every load word is written on the edge that ends its cycle (and the row, newer, replaces a waiting
word it writes; in one cycle the row's word is written, not the load's). When no slot is free, the
word is lost and ``conflict`` is high in that cycle.

Reads (data in the cycle after the address):

* ``a_addr`` -> ``a_data``: ``lanes`` words from ``a_addr`` (the array's read-modify-write), as
  they are after the writes of the cycle of the address.
* ``d_addr`` -> ``d_data``: ``dma_lanes`` words from ``d_addr`` (stores and moves), as they are after
  the writes of the cycle of the address and the array row written in the cycle of the data
  (forwarded), so a reader gets a result the array writes in the reader's first cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from rtl.npu.scratchpad import log2_exact

__all__ = ["BankedAccumulator"]


class BankedAccumulator(wiring.Component):
    """``words`` 32-bit words in ``banks`` word-interleaved banks, a copy per read group (module docstring).

    Parameters
    ----------
    words:
        Accumulator words (a power of two; addresses are taken modulo ``words``).
    lanes:
        Words of the array's row (its columns).
    dma_lanes:
        Words of a DMA read.
    pending:
        Load words that can wait for their bank.
    """

    def __init__(self, *, words: int, lanes: int, dma_lanes: int = 4, pending: int = 4) -> None:
        try:
            self.addr_bits = log2_exact(words, "Accumulator words")
            banks = 1 << max(lanes - 1, dma_lanes - 1, 0).bit_length()
            if banks > words:
                raise ConfigError(f"Accumulator words must be at least {banks} (the banks), not {words}")
        except ConfigError:
            self._MustUse__silence = True  # never built, so do not also warn "created but never used"
            raise
        self.words, self.lanes, self.dma_lanes, self.banks, self.pending = words, lanes, dma_lanes, banks, pending
        self.bank_bits = log2_exact(banks, "Accumulator banks")
        super().__init__({
            "w_addr": In(range(words)), "w_mask": In(lanes), "w_data": In(data.ArrayLayout(32, lanes)),
            "l_addr": In(range(words)), "l_en": In(4), "l_data": In(32),
            "a_addr": In(range(words)), "a_data": Out(data.ArrayLayout(32, lanes)),
            "d_addr": In(range(words)), "d_data": Out(data.ArrayLayout(32, dma_lanes)),
            "conflict": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        nb, lg, ab = self.banks, self.bank_bits, self.addr_bits
        rows = self.words // nb

        def lane_of(bank: int, base):  # noqa: ANN001, ANN202 - the lane of a row from base in bank
            return (bank - base[:lg])[:lg] if lg else base[:0]

        def row_of(bank: int, base):  # noqa: ANN001, ANN202 - the bank row of that lane's word
            return ((base + lane_of(bank, base))[:ab] >> lg)[:max(ab - lg, 0)]

        # the load words waiting for their banks
        np_ = self.pending
        p_valid = [Signal(name=f"pending_{p}_valid") for p in range(np_)]
        p_addr = [Signal(range(self.words), name=f"pending_{p}_addr") for p in range(np_)]
        p_en = [Signal(4, name=f"pending_{p}_en") for p in range(np_)]
        p_data = [Signal(32, name=f"pending_{p}_data") for p in range(np_)]
        p_drain = [Signal(name=f"pending_{p}_drain") for p in range(np_)]

        # this cycle's write to each bank: the array row's lane there, else the oldest waiting load
        # word of the bank, else the incoming load word
        w_en = [Signal(4, name=f"bank_{b}_w_en") for b in range(nb)]
        w_row = [Signal(range(rows), name=f"bank_{b}_w_row") for b in range(nb)]
        w_data = [Signal(32, name=f"bank_{b}_w_data") for b in range(nb)]
        arr_en = [Signal(name=f"bank_{b}_row_en") for b in range(nb)]
        waits = [Signal(name=f"bank_{b}_has_pending") for b in range(nb)]
        incoming = Signal()
        kills = [[] for _ in range(np_)]  # the row writes a waiting word: the row is newer
        merge = [Signal(name=f"pending_{p}_merge") for p in range(np_)]
        for p in range(np_):
            m.d.comb += merge[p].eq(incoming & p_valid[p] & ~p_drain[p] & (p_addr[p] == self.l_addr))
        direct, direct_write = Signal(), Signal()
        drains = [[] for _ in range(np_)]
        for b in range(nb):
            j = lane_of(b, self.w_addr)
            m.d.comb += arr_en[b].eq((j < self.lanes) & self.w_mask.bit_select(j, 1))
            load_here = (self.l_addr[:lg] == b) if lg else 1
            mine = [p_valid[p] & (p_addr[p][:lg] == b) for p in range(np_)]
            row_b = row_of(b, self.w_addr)
            for p in range(np_):
                kills[p].append(arr_en[b] & mine[p] & (p_addr[p][lg:ab] == row_b))
            with m.If(load_here & ~(arr_en[b] & (self.l_addr[lg:ab] == row_b))):
                m.d.comb += incoming.eq(self.l_en.any())
            m.d.comb += waits[b].eq(Cat(*mine).any())
            for p in range(np_):
                drains[p].append(~arr_en[b] & mine[p] & ~Cat(*mine[:p]).any())
            with m.If(load_here):
                m.d.comb += direct.eq(incoming & ~arr_en[b] & ~waits[b])
            with m.If(arr_en[b]):
                m.d.comb += [w_en[b].eq(0b1111), w_row[b].eq(row_of(b, self.w_addr)),
                             w_data[b].eq(self.w_data[j])]
            with m.Elif(waits[b]):
                for p in reversed(range(np_)):  # the last assignment wins: the oldest slot
                    with m.If(mine[p]):
                        m.d.comb += [w_en[b].eq(p_en[p]), w_row[b].eq(p_addr[p][lg:ab]), w_data[b].eq(p_data[p])]
            with m.Elif(load_here & direct & ~Cat(*merge).any()):
                m.d.comb += [w_en[b].eq(self.l_en), w_row[b].eq(self.l_addr[lg:ab]), w_data[b].eq(self.l_data)]
        for p in range(np_):
            m.d.comb += p_drain[p].eq(Cat(*drains[p]).any())
        m.d.comb += direct_write.eq(direct & ~Cat(*merge).any())
        for p in range(np_):
            with m.If(p_drain[p] | Cat(*kills[p]).any()):
                m.d.sync += p_valid[p].eq(0)
            with m.If(merge[p]):
                for i in range(4):
                    with m.If(self.l_en[i]):
                        m.d.sync += [p_en[p][i].eq(1), p_data[p].word_select(i, 8).eq(self.l_data.word_select(i, 8))]
        # a word that is neither written nor merged takes the first free slot
        placed = Cat(*merge).any() | direct_write | ~incoming
        chain = m.If
        for p in range(np_):
            with chain(~placed & ~p_valid[p]):
                m.d.sync += [p_valid[p].eq(1), p_addr[p].eq(self.l_addr), p_en[p].eq(self.l_en),
                             p_data[p].eq(self.l_data)]
            chain = m.Elif
        with chain(~placed):
            m.d.comb += self.conflict.eq(1)

        def overlay(value, bank: int, row, name: str):  # noqa: ANN001, ANN202 - the waiting load words of a word
            # each slot's result is a signal: an expression would repeat the one before once per byte,
            # 4 ** pending copies in the netlist (892,000 lines of RTLIL for fpga-small's 4 slots)
            for p in range(np_):
                hit = p_valid[p] & (p_addr[p][:lg] == bank) & (p_addr[p][lg:ab] == row)
                step = Signal(32, name=f"{name}_overlay_{p}")
                m.d.comb += step.eq(Cat(*(Mux(hit & p_en[p][i], p_data[p].word_select(i, 8), value.word_select(i, 8))
                                          for i in range(4))))
                value = step
            return value

        # one copy of the banks per read group
        for group, (addr, out, n, forward) in enumerate(((self.a_addr, self.a_data, self.lanes, False),
                                                        (self.d_addr, self.d_data, self.dma_lanes, True))):
            base_r = Signal(range(self.words), name=f"group_{group}_addr_r")
            m.d.sync += base_r.eq(addr)
            got = []
            for b in range(nb):
                mem = Memory(shape=32, depth=rows, init=[])
                m.submodules[f"group_{group}_bank_{b}"] = mem
                wp = mem.write_port(granularity=8)
                rp = mem.read_port(domain="sync", transparent_for=(wp,))
                m.d.comb += [wp.en.eq(w_en[b]), wp.addr.eq(w_row[b]), wp.data.eq(w_data[b]),
                             rp.addr.eq(row_of(b, addr))]
                row_r = Signal(range(rows), name=f"group_{group}_bank_{b}_row_r")
                m.d.sync += row_r.eq(row_of(b, addr))
                # load words still waiting in the cycle of the data
                got.append(overlay(rp.data, b, row_r, f"group_{group}_bank_{b}"))
            for i in range(n):
                bank = (base_r[:lg] + i)[:lg] if lg else base_r[:0]
                value = Signal(32, name=f"group_{group}_word_{i}")
                with m.Switch(bank):
                    for b in range(nb):
                        with m.Case(b):
                            m.d.comb += value.eq(got[b])
                if forward:
                    # the array's row written in the cycle of the data: word base_r + i is its lane
                    # (base_r + i - w_addr) mod words, if that is a lane it writes
                    lane = Signal(ab, name=f"group_{group}_word_{i}_row_lane")
                    m.d.comb += lane.eq(base_r + i - self.w_addr)
                    hit = (lane < self.lanes) & self.w_mask.bit_select(lane[:max(self.lanes - 1, 1).bit_length()], 1)
                    value = Mux(hit, self.w_data[lane[:max(self.lanes - 1, 1).bit_length()]], value)
                m.d.comb += out[i].eq(value)
        return m
