"""The NPU's scratchpad as banked block RAM: byte windows read synchronously, each stream its own copy.

:class:`BankedScratchpad` holds ``size_bytes`` bytes in ``banks`` banks of ``word_bytes``-byte words,
word-interleaved (byte ``a`` is lane ``a % word_bytes`` of word ``a // word_bytes``, which lives in
bank ``word % banks`` at row ``word // banks``). Each bank is one :class:`~amaranth.lib.memory.Memory`
with one write port (byte enables) and one synchronous read port: the two ports of a block RAM
(ECP5 DP16KD, iCE40 SB_RAM40_4K), so synthesis infers block RAM and never flip-flops.

Reads come in *groups*: group ``g`` reads a window of ``read_lanes[g]`` consecutive bytes per cycle
from its own copy of the banks (every copy takes every write), so groups never contend. A window
touches at most ``banks`` consecutive words, each in a different bank, so one read port per bank
serves it. ``r_addr[g]`` is the window's first byte; its bytes are on ``r_data[g]`` in the next
cycle. A read sees the writes of the cycle it is addressed in (the read ports are transparent to
the write ports), so a reader addressing in the cycle of a writer's last beat gets that beat.

Writes come from ``writers`` beats of ``beat_bytes`` bytes at any byte address, each byte enabled on
its own (``w_en``). A beat touches at most two words, in two banks; each bank takes one beat per
cycle. When two writers enable bytes in one bank in the same cycle, the first writer's bytes are
written, the others' are lost and ``conflict`` is high in that cycle. With ``write_ports`` (one
write port per writer on every bank: a true dual-port block RAM for two writers, ECP5 DP16KD's
second port) every writer writes its bank in every cycle and ``conflict`` stays low; two writers
writing one byte in one cycle leave either's (a program that does so races).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError

__all__ = ["BankedScratchpad", "log2_exact"]


def log2_exact(value: int, what: str) -> int:
    """``log2(value)`` of a power of two; else a :class:`ConfigError` naming ``what`` it is."""
    if value < 1 or value & (value - 1):
        raise ConfigError(f"{what} must be a power of two, not {value}")
    return value.bit_length() - 1


def _and_or(terms, width: int):  # noqa: ANN001, ANN202 - OR of the values whose one-hot select is high
    value = Const(0, width)
    for sel, data_ in terms:
        value = value | Mux(sel, data_, 0)
    return value


class BankedScratchpad(wiring.Component):
    """``size_bytes`` bytes in ``banks`` word-interleaved banks, one copy per read group (module docstring).

    Parameters
    ----------
    size_bytes, banks, word_bytes:
        The scratchpad of the hardware description (``arch.scratchpad``); all powers of two.
    read_lanes:
        Bytes each read group reads per cycle (a window of consecutive bytes); at most
        ``word_bytes * (banks - 1) + 1`` so that a window never needs two words of one bank.
    writers, beat_bytes:
        Write beats per cycle and the bytes of each (at most ``word_bytes + 1``: two words).
    write_ports:
        Give every writer its own write port on every bank (default: one shared port per bank).
    """

    def __init__(self, *, size_bytes: int, banks: int, word_bytes: int, read_lanes: tuple[int, ...],
                 writers: int = 2, beat_bytes: int = 4, write_ports: bool = False) -> None:
        try:
            self._check(size_bytes, banks, word_bytes, tuple(read_lanes), beat_bytes)
        except ConfigError:
            self._MustUse__silence = True  # never built, so do not also warn "created but never used"
            raise
        self.word_bits = log2_exact(word_bytes, "Scratchpad word_bytes")
        self.bank_bits = log2_exact(banks, "Scratchpad banks")
        self.size_bytes, self.banks, self.word_bytes = size_bytes, banks, word_bytes
        self.read_lanes, self.writers, self.beat_bytes = tuple(read_lanes), writers, beat_bytes
        self.write_ports = write_ports
        self.rows = size_bytes // (banks * word_bytes)
        addr = range(size_bytes)
        super().__init__({
            "w_addr": In(data.ArrayLayout(addr, writers)),
            "w_data": In(data.ArrayLayout(8 * beat_bytes, writers)),
            "w_en": In(data.ArrayLayout(beat_bytes, writers)),
            "r_addr": In(data.ArrayLayout(addr, len(read_lanes))),
            "r_data": Out(data.ArrayLayout(8 * max(read_lanes), len(read_lanes))),
            "conflict": Out(1),
        })

    @staticmethod
    def _check(size_bytes: int, banks: int, word_bytes: int, read_lanes: tuple[int, ...], beat_bytes: int) -> None:
        log2_exact(word_bytes, "Scratchpad word_bytes")
        log2_exact(banks, "Scratchpad banks")
        log2_exact(size_bytes, "Scratchpad size_bytes")
        if banks < 2:
            raise ConfigError(f"Scratchpad banks must be at least 2 (a window spans two words), not {banks}")
        if size_bytes < banks * word_bytes:
            raise ConfigError(f"Scratchpad of {size_bytes} bytes cannot hold {banks} banks of {word_bytes}-byte words")
        widest = word_bytes * (banks - 1) + 1
        if not read_lanes or any(not 1 <= n <= widest for n in read_lanes):
            raise ConfigError(f"Scratchpad read windows must be 1 to {widest} bytes ({banks} banks of "
                              f"{word_bytes}-byte words), not {list(read_lanes)}")
        if not 1 <= beat_bytes <= word_bytes + 1:
            raise ConfigError(f"Scratchpad write beats must be 1 to {word_bytes + 1} bytes, not {beat_bytes}")

    def elaborate(self, platform: object) -> Module:
        m = Module()
        wb, bb, W, B = self.word_bits, self.bank_bits, self.word_bytes, self.banks

        # -- the writes each bank's port(s) take this cycle (shared by every copy) ------------------
        ports = self.writers if self.write_ports else 1
        port_w = [[(Signal(range(self.rows), name=f"bank{b}_p{p}_waddr"), Signal(8 * W, name=f"bank{b}_p{p}_wdata"),
                    Signal(W, name=f"bank{b}_p{p}_wen")) for b in range(B)] for p in range(ports)]
        for p in range(ports):
            writers = range(self.writers) if ports == 1 else (p,)
            self._merge(m, port_w[p], writers, conflict=ports == 1)

        # -- one copy of the banks per read group -----------------------------------------------------
        for g, lanes in enumerate(self.read_lanes):
            base = self.r_addr[g]
            w0 = base[wb:]

            out_lane = []
            bank_data = []
            for b in range(B):
                mem = Memory(shape=8 * W, depth=self.rows, init=[])
                m.submodules[f"copy{g}_bank{b}"] = mem
                wps = []
                for p in range(ports):
                    waddr, wdata, wen = port_w[p][b]
                    wp = mem.write_port(granularity=8)
                    m.d.comb += [wp.addr.eq(waddr), wp.data.eq(wdata), wp.en.eq(wen)]
                    wps.append(wp)
                rp = mem.read_port(domain="sync", transparent_for=tuple(wps))
                # the window's word in bank b: w0 + ((b - w0) mod B)
                offset = (b - w0[:bb])[:bb]
                m.d.comb += rp.addr.eq(((w0 + offset) >> bb)[:len(rp.addr)])
                bank_data.append(rp.data)
            # which bank and lane each byte of the window comes from, a cycle later
            for i in range(lanes):
                a = (base + i)[:len(base)]
                sel = Signal(bb + wb, name=f"r{g}_sel{i}")
                m.d.sync += sel.eq(a[:bb + wb])
                word = Signal(8 * W, name=f"r{g}_word{i}")
                with m.Switch(sel[wb:]):
                    for b in range(B):
                        with m.Case(b):
                            m.d.comb += word.eq(bank_data[b])
                out_lane.append(word.word_select(sel[:wb], 8) if wb else word)
            m.d.comb += self.r_data[g].eq(Cat(*out_lane))
        return m

    def _merge(self, m: Module, bank_w, writers, *, conflict: bool) -> None:  # noqa: ANN001
        """Drive each bank's write port ``bank_w[b]`` from ``writers`` (in priority order); with
        ``conflict``, raise ``conflict`` when two of them hit one bank."""
        wb, bb, W, B = self.word_bits, self.bank_bits, self.word_bytes, self.banks
        taken = [Signal(name=f"bank{b}_taken_w{writers[0]}") for b in range(B)]
        conflicts = []
        # per bank: (select, row) of each writer that writes it, and per lane (select, byte) of each
        # byte; a bank takes one writer's beat and a beat puts one byte in a lane, so the selects are
        # one-hot and each write is an AND-OR of the data (the selects come from the addresses)
        rows = [[] for _ in range(B)]
        bytes_ = [[[] for _ in range(W)] for _ in range(B)]
        for k in writers:
            base = self.w_addr[k]
            hits = []
            for b in range(B):
                lanes = []
                row = Signal(range(self.rows), name=f"w{k}_bank{b}_row")
                for i in range(self.beat_bytes):
                    a = (base + i)[:len(base)]
                    word = a[wb:]
                    here = Signal(name=f"w{k}_b{i}_bank{b}")
                    m.d.comb += here.eq(self.w_en[k][i] & (word[:bb] == b))
                    with m.If(here):
                        m.d.comb += row.eq(word[bb:])
                    lanes.append((here, a[:wb], self.w_data[k].word_select(i, 8)))
                hit = Signal(name=f"w{k}_bank{b}")
                m.d.comb += hit.eq(Cat(h for h, _, _ in lanes).any())
                hits.append(hit)
                writes = Signal(name=f"w{k}_bank{b}_writes")
                m.d.comb += writes.eq(hit & ~taken[b])
                rows[b].append((writes, row))
                for i, (here, lane, byte) in enumerate(lanes):
                    for j in range(W):
                        sel = Signal(name=f"w{k}_bank{b}_lane{j}_from_{i}")
                        m.d.comb += sel.eq(writes & here & (lane == j))
                        bytes_[b][j].append((sel, byte))
            for b in range(B):
                conflicts.append(hits[b] & taken[b])
            # the next writer sees this one's banks as taken
            nxt = [Signal(name=f"bank{b}_taken_{k}") for b in range(B)]
            m.d.comb += [n.eq(t | h) for n, t, h in zip(nxt, taken, hits, strict=True)]
            taken = nxt
        for b, (waddr, wdata, wen) in enumerate(bank_w):
            m.d.comb += waddr.eq(_and_or(rows[b], len(waddr)))
            for j in range(W):
                m.d.comb += [wen[j].eq(Cat(sel for sel, _ in bytes_[b][j]).any()),
                             wdata.word_select(j, 8).eq(_and_or(bytes_[b][j], 8))]
        if conflict:
            m.d.comb += self.conflict.eq(Cat(*conflicts).any() if conflicts else 0)
