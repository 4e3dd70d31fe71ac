"""Emission: the command program of a schedule of layer decisions, with addresses and dependencies.

:func:`emit_program` writes, in issue order, the commands that the decisions of
:func:`mapper.decide.decide_layers` say, and decides nothing itself: an array layer's commands
follow its chosen schedule (:mod:`mapper.schedules`) step by step, a vector layer's its chunks.
What emission adds is where things are and what waits for what:

**Addresses.** Every tensor has a DRAM address (in graph order, 64-byte aligned). Layer ``i`` tiles
in its working region, the top ``working_bytes`` of the scratchpad, split into two halves that take
turns (double buffering: the loads of tile ``i + 1`` overlap the compute of tile ``i``); the
accumulator's two halves take turns the same way for output blocks.

**Resident tensors.** Given a :class:`~mapper.residency.Residency` (a scratchpad allocation over the
same schedule), a layer reads an operand that is on chip from its resident place (no load); writes an
output that stays on chip with on-chip :class:`~accel.commands.Move` commands from the accumulator
(array layers) or directly (vector layers) instead of stores; loads a buffer whose on-chip interval
starts here with a read (a reload) whole into its place before the layer; and stores a buffer
written back here whole after the layer.

**Dependencies.** A load waits for the store of the tensor it reads (through DRAM) and for the
compute that last used its buffer half; a compute waits for its loads and for the previous compute;
a store waits for the compute that finished its tile; a tile that starts a new accumulator block
waits for the stores that emptied that half. Any command that writes a scratchpad range waits for
every earlier command that used part of it (:class:`~mapper.residency.AddressBook`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from accel.commands import Buffer, Command, Compute, Load, Move, Store, Vector
from accel.hardware import Accelerator
from accel.timing import ceil_div, fold_count, steady_follows
from mapper.decide import ArrayDecision, LayerDecision, VectorDecision, ViewDecision
from mapper.residency import AddressBook, Residency
from mapper.schedules import Step, Transfer, share
from workloads.graph import Graph, Layer

__all__ = ["emit_program"]


def emit_program(graph: Graph, arch: Accelerator, decisions: Sequence[LayerDecision],
                 residency: Residency | None = None) -> tuple[Command, ...]:
    """The commands of ``decisions`` (one per layer, in schedule order) with the residents of ``residency``."""
    emitter = _Emitter(graph, arch, residency)
    for step, decision in enumerate(decisions):
        emitter.begin_layer(step, decision.working_bytes)
        if isinstance(decision, ArrayDecision):
            emitter.array_layer(decision)
        elif isinstance(decision, VectorDecision):
            emitter.vector_layer(decision)
        else:
            emitter.view_layer(decision)
        emitter.end_layer()
    return tuple(emitter.commands)


@dataclass
class _Slot:
    """One half of a double-buffered memory: its base address and the commands that last used it."""

    addr: int
    last_users: list[int] = field(default_factory=list)


class _Emitter:
    """The program so far and what the next command must know: addresses, and who last used what."""

    def __init__(self, graph: Graph, arch: Accelerator, residency: Residency | None) -> None:
        self.graph = graph
        self.arch = arch
        self.residency = residency
        self.commands: list[Command] = []
        word = max(arch.array.input_format.size_bytes, arch.array.accumulator_format.size_bytes)
        self.dram_addr: dict[str, int] = {}
        self.ready: dict[str, int | None] = {}  # tensor -> id of the command that last wrote it to DRAM
        next_addr = 0
        for name, tensor in graph.tensors.items():
            self.dram_addr[name] = next_addr
            next_addr += ceil_div(tensor.elements * word, 64) * 64
            self.ready[name] = None
        self.half_spad = arch.scratchpad.size_bytes // 2  # of the current working region
        half_acc = arch.accumulator.size_bytes // 2
        self.spad_slots = [_Slot(0), _Slot(self.half_spad)]
        self.acc_slots = [_Slot(0), _Slot(half_acc)]
        self.spad_turn = itertools.cycle((0, 1))
        self.acc_turn = itertools.cycle((0, 1))
        self.book = AddressBook()  # scratchpad ranges and the commands that last used them
        self.step = 0
        self.onchip: dict[str, list[int]] = {}  # resident buffer -> the commands that wrote its on-chip copy
        self.claims: dict[str, list[int]] = {}  # buffer placed this step -> commands its first writer waits for
        self.users: dict[str, list[int]] = {}  # resident buffer -> commands of this layer that used it
        self.moved: dict[str, int] = {}  # resident buffer -> bytes of it moved on chip so far

    # -- layers in the schedule ------------------------------------------------------------------
    def begin_layer(self, step: int, working_bytes: int | None) -> None:
        """Set up layer ``step``: its working region (the top ``working_bytes`` of the scratchpad;
        ``None``: as the layer before), and the residents placed here (claimed; reloads loaded whole)."""
        self.step = step
        half = self.half_spad if working_bytes is None else working_bytes // 2
        base = self.arch.scratchpad.size_bytes - 2 * half
        if half != self.half_spad or self.spad_slots[0].addr != base:
            self.half_spad = half
            self.spad_slots = [_Slot(lo, self.book.claim(lo, lo + half)) for lo in (base, base + half)]
        self.users = {}
        if self.residency is None:
            return
        layer = self.residency.problem.steps[step]
        for name in self.residency.starting(step):
            offset, nbytes = self._resident(name)
            self.claims[name] = self.book.claim(offset, offset + nbytes)
            self.onchip[name] = []
        for name in self.residency.reloads(step):
            offset, nbytes = self._resident(name)
            load = self._emit(Load, layer=layer, tensor=name, size_bytes=nbytes, buffer=Buffer.SCRATCHPAD,
                              addr=offset, dram_addr=self.dram_addr[name],
                              deps=[self.ready[name], *self.claims.pop(name, [])])
            self.onchip[name] = [load]
            self.users.setdefault(name, []).append(load)

    def end_layer(self) -> None:
        """Store the buffers written back after this step and record who used which addresses."""
        if self.residency is not None:
            layer = self.residency.problem.steps[self.step]
            for name in self.residency.written_back(self.step):
                offset, nbytes = self._resident(name)
                store = self._emit(Store, layer=layer, tensor=name, size_bytes=nbytes, buffer=Buffer.SCRATCHPAD,
                                   addr=offset, dram_addr=self.dram_addr[name],
                                   deps=[*self.onchip.get(name, []), *self.users.get(name, [])])
                self.users.setdefault(name, []).append(store)
                self.ready[name] = store
                for alias in self._aliases(name):
                    self.ready[alias] = store
            for name, used in self.users.items():
                offset, nbytes = self._resident(name)
                self.book.touch(offset, offset + nbytes, used)
        for slot in self.spad_slots:
            self.book.claim(slot.addr, slot.addr + self.half_spad)
            self.book.touch(slot.addr, slot.addr + self.half_spad, slot.last_users)

    def view_layer(self, decision: ViewDecision) -> None:
        """A view: its outputs are ready when its inputs are."""
        layer = decision.layer
        latest = max((self.ready[t] for t in layer.inputs if self.ready[t] is not None), default=None)
        for out in layer.outputs:
            self.ready[out] = latest

    def array_layer(self, decision: ArrayDecision) -> None:
        """The commands of the decision's schedule, step by step."""
        count = self._emit_steps(decision.layer, decision.choice.steps(decision.operands, self.arch))
        if count != decision.mapping.tiles:
            raise AssertionError(f"Layer {decision.layer.name!r}: its schedule ran {count} computes, "
                                 f"its mapping search counted {decision.mapping.tiles}")

    def vector_layer(self, decision: VectorDecision) -> None:
        """Element-wise work on the vector unit in the decision's chunks. Resident operands are read
        and written in place; the streamed ones go through the working region."""
        layer, size, chunks, macs = decision.layer, decision.size_bytes, decision.chunks, decision.macs
        place = {t: self._place(t) for t in size}
        in_bytes = sum(size[t] for t in decision.streamed_in)
        onchip_in = [d for t in decision.inputs if place[t] is not None for d in self.onchip.get(place[t][0], [])]
        out_claims = [d for t in layer.outputs if place[t] is not None for d in self.claims.pop(place[t][0], [])]
        outputs_onchip = [place[t][0] for t in layer.outputs if place[t] is not None]
        out_addr = next((place[t][1] for t in layer.outputs if place[t] is not None), None)
        for i in range(chunks):
            slot = self.spad_slots[next(self.spad_turn)]
            loads = [
                self._emit(Load, layer=layer.name, tensor=t, buffer=Buffer.SCRATCHPAD, addr=slot.addr,
                           size_bytes=share(size[t], i, chunks), dram_addr=self.dram_addr[t],
                           deps=[self.ready[t], *slot.last_users])
                for t in decision.streamed_in
            ]
            vec = self._emit(Vector, layer=layer.name, op=layer.source_op or layer.op.value,
                             elements=share(decision.ops, i, chunks), macs=share(macs, i, chunks),
                             input_addr=slot.addr,
                             output_addr=out_addr if out_addr is not None else slot.addr + share(in_bytes, i, chunks),
                             deps=[*loads, *slot.last_users, *onchip_in, *out_claims])
            for t in decision.inputs:
                if place[t] is not None:
                    self.users.setdefault(place[t][0], []).append(vec)
            for name in outputs_onchip:
                self._produce_onchip(name, vec)
            stores = [
                self._emit(Store, layer=layer.name, tensor=t, buffer=Buffer.SCRATCHPAD,
                           size_bytes=share(size[t], i, chunks), addr=slot.addr, dram_addr=self.dram_addr[t],
                           deps=[vec])
                for t in decision.streamed_out
            ]
            slot.last_users = stores or [vec]
            for t in decision.streamed_out:
                self.ready[t] = stores[-1]

    # -- residents -------------------------------------------------------------------------------
    def _resident(self, name: str) -> tuple[int, int]:
        """``(offset, size_bytes)`` of resident buffer ``name`` at the current step."""
        assert self.residency is not None
        place = self.residency.place(name, self.step)
        assert place is not None, name
        return place

    def _aliases(self, root: str) -> tuple[str, ...]:
        assert self.residency is not None
        for t in self.residency.problem.tensors:
            if t.name == root:
                return t.aliases
        return ()

    def _place(self, tensor: str) -> tuple[str, int] | None:
        """``(buffer, offset)`` if ``tensor`` is on chip at the current step."""
        if self.residency is None:
            return None
        place = self.residency.place(tensor, self.step)
        return None if place is None else (self.residency.root(tensor), place[0])

    def _produce_onchip(self, name: str, ident: int) -> None:
        """Record ``ident`` as a writer of resident buffer ``name``'s on-chip copy at this step."""
        self.onchip.setdefault(name, []).append(ident)
        self.users.setdefault(name, []).append(ident)

    # -- commands --------------------------------------------------------------------------------
    def _emit(self, cls: type[Command], deps: Iterable[int | None] = (), **fields: object) -> int:
        ident = len(self.commands)
        self.commands.append(cls(id=ident, deps=tuple(sorted({d for d in deps if d is not None})), **fields))
        return ident

    def _transfer(self, cls: type[Load] | type[Store], layer: Layer, t: Transfer, addr: int,
                  deps: list[int | None]) -> int:
        extra = {"activation": _activation(layer)} if cls is Store and t.key is None and _activation(layer) else {}
        return self._emit(cls, layer=layer.name, tensor=t.tensor, size_bytes=t.size_bytes, buffer=t.buffer,
                          addr=addr, dram_addr=self.dram_addr[t.tensor], deps=deps, **extra)

    def _follows(self, previous: int | None, c: object) -> int:
        """:attr:`~accel.commands.Compute.follows` of a compute after ``previous`` (this layer's last):
        the previous fold's stream length when the array double-buffers its weights and both
        commands run whole folds in the same dataflow (:func:`accel.timing.gemm_tile_cycles`)."""
        if previous is None or not c.fill or not c.drain:  # type: ignore[attr-defined]
            return 0
        before = self.commands[previous]
        assert isinstance(before, Compute)
        if before.dataflow is not c.dataflow or not before.drain:  # type: ignore[attr-defined]
            return 0
        return steady_follows(self.arch.array, before.dataflow, before.m, before.k, before.n)

    def _weights_shift_early(self, streamed: list[Transfer], compute: int) -> bool:
        """Whether the slot of a compute that loaded only weights is free once the compute before it
        ends: with double-buffered weights a one-fold compute's weights shift into the array while
        the previous compute runs (:func:`accel.timing.gemm_tile_cycles`), so its slot can take the
        next load while it computes."""
        cmd = self.commands[compute]
        assert isinstance(cmd, Compute)
        return bool(cmd.follows) and cmd.batch == 1 and \
            fold_count(self.arch.array, cmd.dataflow, cmd.m, cmd.k, cmd.n)[0] == 1 and \
            all(self.graph.tensors[t.tensor].is_constant for t in streamed)

    def _emit_steps(self, layer: Layer, steps: Iterable[Step]) -> int:
        """Turn the abstract schedule into commands with addresses and dependencies; count computes."""
        previous: int | None = None
        acc_slot = self.acc_slots[0]
        stored: dict[tuple[int, ...], int] = {}  # partial-sum stores by key
        count = 0
        for step in steps:
            if step.new_block:
                acc_slot = self.acc_slots[next(self.acc_turn)]
            block_free = list(acc_slot.last_users) if step.new_block else []
            streamed = [t for t in step.loads if t.buffer is Buffer.SCRATCHPAD and self._place(t.tensor) is None]
            spad_slot = self.spad_slots[next(self.spad_turn)] if streamed else None
            loads, offset, operand_addr, onchip = [], 0, [], []
            for t in step.loads:
                if t.buffer is Buffer.SCRATCHPAD:
                    place = self._place(t.tensor)
                    if place is not None:  # resident: read in place
                        operand_addr.append(place[1])
                        onchip.append(place[0])
                        continue
                    assert spad_slot is not None
                    deps = [self.ready[t.tensor], *spad_slot.last_users]
                    loads.append(self._transfer(Load, layer, t, spad_slot.addr + offset, deps))
                    operand_addr.append(spad_slot.addr + offset)
                    offset += t.size_bytes
                else:
                    written = stored[t.key] if t.key is not None else self.ready[t.tensor]
                    loads.append(self._transfer(Load, layer, t, acc_slot.addr, [written, *block_free]))
            addr = spad_slot.addr if spad_slot is not None else 0
            in_addr, w_addr = (operand_addr + [addr, addr])[:2]
            resident_deps = [d for name in onchip for d in self.onchip.get(name, [])]
            c = step.compute
            compute = self._emit(Compute, layer=layer.name, input_addr=in_addr, weight_addr=w_addr,
                                 output_addr=acc_slot.addr, deps=[*loads, previous, *block_free, *resident_deps],
                                 m=c.m, k=c.k, n=c.n, batch=c.batch, dataflow=c.dataflow, accumulate=c.accumulate,
                                 fill=c.fill, drain=c.drain, sparsity=c.sparsity, follows=self._follows(previous, c))
            for name in onchip:
                self.users.setdefault(name, []).append(compute)
            if spad_slot is not None:
                early = previous is not None and self._weights_shift_early(streamed, compute)
                spad_slot.last_users = [previous] if early else [compute]
            stores = []
            for t in step.stores:
                place = self._place(t.tensor) if t.key is None else None
                if place is None:
                    stores.append(self._transfer(Store, layer, t, acc_slot.addr, [compute]))
                    continue
                name, base = place
                nbytes = self._resident(name)[1]
                written = self.moved.get(name, 0)
                at = written if written + t.size_bytes <= nbytes else max(nbytes - t.size_bytes, 0)
                self.moved[name] = written + t.size_bytes
                move = self._emit(Move, layer=layer.name, tensor=name, size_bytes=t.size_bytes,
                                  src_addr=acc_slot.addr, addr=base + at, deps=[compute, *self.claims.pop(name, [])],
                                  activation=_activation(layer))
                self._produce_onchip(name, move)
                stores.append(move)
            if step.new_block:
                acc_slot.last_users = []
            acc_slot.last_users.extend(stores)
            for t, ident in zip(step.stores, stores, strict=True):
                if t.key is not None:
                    stored[t.key] = ident
                elif not isinstance(self.commands[ident], Move):
                    self.ready[t.tensor] = ident
            previous = compute
            count += 1
        return count


def _activation(layer: Layer) -> str:
    """The functions fused into ``layer``'s store path (:mod:`mapper.fuse`), as Store.activation gives them."""
    return ",".join(layer.attrs.get("fused", ()))
