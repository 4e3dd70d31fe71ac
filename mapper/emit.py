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

**Replay.** Layers that emit alike (a transformer's blocks) are written once as a template and
instantiated for the others (:mod:`mapper.replay`), which gives the same commands as emitting each.
Within an array layer of the tile-outer order, segments of output tiles that emit alike (the rows
of tiles of GPT-2's ``lm_head``, a column's tiles) are written once and copied for the others
(:meth:`_Emitter._emit_segments`), again the same commands. ``replay=False`` does neither.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from accel.commands import Block, Buffer, Command, Compute, Load, Move, Store, Vector
from accel.errors import MappingError
from accel.gcpause import gc_paused
from accel.hardware import Accelerator, Memory, SystolicArray
from accel.timing import ceil_div, fold_count, steady_follows
from mapper.decide import ArrayDecision, LayerDecision, VectorDecision, ViewDecision, band_span
from mapper.layout import (
    PackedTile,
    broadcast_span,
    image_tensors,
    make_block,
    out_block,
    storage_shape,
    view_block,
    w_block,
    x_block,
)
from mapper.makers import field_getter, field_index, maker, rebuilder, value_maker
from mapper.plan import Tile
from mapper.replay import PSUM_BASE, UNSET_SLOT, Template, signature, slot_address, symbolic
from mapper.residency import AddressBook, Residency
from mapper.schedules import Operands, Step, Transfer, share, tile_segments
from workloads.graph import GemmShape, Graph, Layer, OpKind

__all__ = ["OnChip", "Checkpoint", "emit_program", "emit_resumable", "dram_addresses", "dram_room"]


@dataclass(frozen=True)
class OnChip:
    """The parts of a design emission reads: the array (its formats and fold geometry) and the two
    on-chip memories (their sizes). Emission sees only these, so its program is a function of them
    (:mod:`mapper.programs` memoises it by them)."""

    array: SystolicArray
    scratchpad: Memory
    accumulator: Memory

    @classmethod
    def of(cls, arch: Accelerator) -> OnChip:
        return cls(arch.array, arch.scratchpad, arch.accumulator)


@gc_paused()  # emission builds many objects and no cycles: collections would find nothing (accel.gcpause)
def emit_program(graph: Graph, arch: Accelerator, decisions: Sequence[LayerDecision],
                 residency: Residency | None = None, *,
                 replay: bool = True) -> tuple[tuple[Command, ...], dict[str, tuple[PackedTile, ...]]]:
    """The commands of ``decisions`` (one per layer, in schedule order) with the residents of ``residency``,
    and the tiles of every N:M weight tensor as they are packed in DRAM. With ``replay`` (the default)
    and no residents, an array or vector layer that emits like another is instantiated from a template
    (:mod:`mapper.replay`): the same commands, written faster."""
    emitter = _Emitter(graph, OnChip.of(arch), residency)
    emitter.segments = replay and residency is None
    if replay and residency is None:
        emitter.plan_replays(decisions)
    for step, decision in enumerate(decisions):
        emitter.layer(step, decision)
    return tuple(emitter.commands), emitter.packed()


@dataclass(frozen=True)
class Checkpoint:
    """The emitter's state before layer ``step`` of a program without residents (its first ``commands``
    commands written): emission is a function of the decisions before a layer up to there, so a
    program whose decisions before ``step`` emit alike (:func:`mapper.programs.decision_key`) resumes
    from it (:func:`emit_resumable`)."""

    step: int
    commands: int
    state: tuple = field(repr=False, compare=False)


@gc_paused()  # emission builds many objects and no cycles: collections would find nothing (accel.gcpause)
def emit_resumable(graph: Graph, arch: Accelerator, decisions: Sequence[LayerDecision], *,
                   start: tuple[Sequence[Command], Checkpoint] | None = None,
                   every: int = 8) -> tuple[tuple[Command, ...], dict[str, tuple[PackedTile, ...]],
                                            tuple[Checkpoint, ...]]:
    """:func:`emit_program` of ``decisions`` without residents (the same commands and packed tiles),
    and a :class:`Checkpoint` before every ``every``-th layer (after the first). With ``start``
    (an earlier program's commands and one of its checkpoints, whose decisions before the
    checkpoint's layer emit as these do), the commands before that layer are that program's and
    emission resumes there; the checkpoints returned then begin with the ones the caller holds of
    that program up to it (not repeated here: only those after it)."""
    emitter = _Emitter(graph, OnChip.of(arch), None)
    emitter.segments = True
    first = 0
    if start is not None:
        commands, checkpoint = start
        emitter.restore(checkpoint, commands)
        first = checkpoint.step
    emitter.plan_replays(decisions)
    checkpoints = []
    for step in range(first, len(decisions)):
        if step > first and every and step % every == 0:
            checkpoints.append(emitter.checkpoint(step))
        emitter.layer(step, decisions[step])
    return tuple(emitter.commands), emitter.packed(), tuple(checkpoints)


def dram_addresses(graph: Graph, arch: Accelerator | OnChip) -> tuple[dict[str, int], int]:
    """Every tensor's DRAM address (in graph order, 64-byte aligned, :func:`dram_room` bytes each; a
    view's output at its input's: the same bytes) and the first address above them all."""
    addr: dict[str, int] = {}
    next_addr = 0
    for name, room in dram_room(graph, arch).items():
        addr[name] = next_addr
        next_addr += room
    for layer in graph.layers:
        sources = [t for t in layer.inputs if not graph.tensors[t].is_constant]
        if layer.op.is_view and sources:
            for out in layer.outputs:
                addr[out] = addr[sources[0]]
    return addr, next_addr


def dram_room(graph: Graph, arch: Accelerator | OnChip) -> dict[str, int]:
    """The bytes of every tensor's DRAM region: an accumulator word per element, 64-byte aligned."""
    word = max(arch.array.input_format.size_bytes, arch.array.accumulator_format.size_bytes)
    return {name: ceil_div(tensor.elements * word, 64) * 64 for name, tensor in graph.tensors.items()}


@dataclass
class _Slot:
    """One half of a double-buffered memory: its base address and the commands that last used it."""

    addr: int
    last_users: list[int] = field(default_factory=list)
    top_users: list[int] = field(default_factory=list)  # the last reader of an operand kept at its top (Transfer.stays)


class _Hashed:
    """A signature's key (:func:`mapper.replay.signature`) with its hash taken once: a key is a deep
    tuple, and hashing it, or comparing it with an equal copy, walks all of it."""

    __slots__ = ("key", "hash")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.hash = hash(key)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return other is self or type(other) is _Hashed and other.hash == self.hash and other.key == self.key


#: What :attr:`_Emitter.templates` holds for a key whose template is not made yet.
_UNMADE = object()


#: Output tiles per segment of an array layer's schedule (:meth:`_Emitter._emit_segments`), and how
#: many segments before one its state counts ids from (older ones are compared as they are).
SEGMENT_TILES = 16
SEGMENTS_BACK = 3


@dataclass
class _Segment:
    """A segment of an array layer's commands, ``commands[base:end]``, as
    :meth:`_Emitter._copy_segment` copies it: ids before ``low`` kept as they are, the transfer each
    load and store moved (``record``), the segment's origin, the state after it
    (:meth:`_Emitter._run_state`) and its computes."""

    commands: list[Command]
    base: int
    end: int
    low: int
    record: dict[int, Transfer]
    origin: tuple[int, int, int, int]
    after: tuple
    computes: int

    @cached_property
    def copies(self) -> tuple[list[tuple], dict[str, tuple[Transfer, int, Block | None]]]:
        """Per command ``(rebuild, values, id, waits kept as they are, waits moved, transfer role,
        field)`` (ids and moved waits counted from the segment's first command;
        :func:`mapper.makers.rebuilder` of the field that moves: a transfer's DRAM address, a
        compute's origin (role ``""``)), and the first transfer of each role with its DRAM address
        and block. Made when the segment is first copied (most segments of a layer of its own never are)."""
        plans, transfers = [], {}
        low, base = self.low, self.base
        for c in self.commands[base:self.end]:
            at = field_index(type(c))
            values = list(field_getter(type(c))(c))
            outside = tuple(d for d in c.deps if d < low)
            inside = tuple(d - base for d in c.deps if d >= low)
            if isinstance(c, Load | Store):
                t = self.record[c.id]
                field, role = at["dram_addr"], t.role
                transfers.setdefault(role, (t, c.dram_addr, c.dram))
            elif isinstance(c, Compute):
                field, role = at["origin"], ""
            else:
                raise AssertionError(f"a segment's {type(c).__name__} command")
            plans.append((rebuilder(type(c), field), values, c.id - base, outside, inside, role, field))
        return plans, transfers


class _Run:
    """What the emission of an array layer's schedule carries from step to step (besides the
    emitter's halves and writers): the last compute, the accumulator half in use, partial-sum stores
    by key, the operands the last compute read, the kept operands (the half whose top holds each, by
    role; where each k tile of it is, by ``(role, k0)``, and the resident tensor it is read from in
    place; the loads of the column being kept and the bytes it fills), the halves' users when the
    layer began (``entry``, by ``id`` of the half) and the computes so far; and the layer's
    constants its commands copy (its name, its fused activations, the bytes of an accumulator word)."""

    __slots__ = ("previous", "acc_slot", "stored", "held", "kept", "kept_at", "kept_from", "column", "entry",
                 "count", "layer_name", "activation", "acc_word")

    def __init__(self, emitter: _Emitter, layer: Layer) -> None:
        self.layer_name = layer.name
        self.activation = _activation(layer)
        self.acc_word = emitter.arch.array.accumulator_format.size_bytes
        self.previous: int | None = None
        # a template's first step starts a block, or its accumulator half is none a template has
        self.acc_slot = emitter.acc_slots[0] if not emitter.symbolic else _Slot(slot_address(UNSET_SLOT))
        self.stored: dict[tuple[int, ...], int] = {}
        self.held: dict[str, tuple[int, Block | None]] = {}
        self.kept: dict[str, _Slot] = {}
        self.kept_at: dict[tuple[str, int], tuple[int, Block | None]] = {}
        self.kept_from: dict[tuple[str, int], str] = {}
        self.column: dict[str, tuple[list[int], int]] = {}
        self.entry = {id(slot): list(slot.last_users) for slot in emitter.spad_slots}
        self.count = 0


class _Emitter:
    """The program so far and what the next command must know: addresses, and who last used what."""

    def __init__(self, graph: Graph, arch: OnChip, residency: Residency | None) -> None:
        self.graph = graph
        self.arch = arch
        self.residency = residency
        self.commands: list[Command] = []
        self.dram_addr, self.dram_end = dram_addresses(graph, arch)  # partial sums spill above the tensors
        self.dram_room = dram_room(graph, arch)
        self.images = image_tensors(graph)  # the rank-4 tensors stored channels-last
        self.weight_tiles: dict[str, dict[tuple[tuple[int, ...], tuple[int, ...]], PackedTile]] = {}
        self.ready: dict[str, int | None] = {name: None for name in graph.tensors}  # tensor -> its last DRAM writer
        self.psum: dict[tuple[str, tuple[int, ...]], int] = {}
        self.half_spad = arch.scratchpad.size_bytes // 2  # of the current working region
        half_acc = arch.accumulator.size_bytes // 2
        self.spad_slots = [_Slot(0), _Slot(self.half_spad)]
        self.acc_slots = [_Slot(0), _Slot(half_acc)]
        self.spad_next = self.acc_next = 0  # which half of each memory the next tile takes
        self.book = AddressBook()  # scratchpad ranges and the commands that last used them
        self.step = 0
        self.onchip: dict[str, list[int]] = {}  # resident buffer -> the commands that wrote its on-chip copy
        self.claims: dict[str, list[int]] = {}  # buffer placed this step -> commands its first writer waits for
        self.users: dict[str, list[int]] = {}  # resident buffer -> commands of this layer that used it
        self.moved: dict[str, int] = {}  # resident buffer -> bytes of it moved on chip so far
        # the signatures of the array and vector layers that emit like another (mapper.replay), by
        # decision id, and their templates by signature and emitter state (None: emitted directly)
        self.replays: dict[int, tuple[_Hashed, tuple[str, ...]]] = {}
        self.templates: dict[Hashable, Template | None] = {}
        # whether an array layer's segments that emit alike are copied (_emit_segments), and while one
        # is emitted, the transfer each of its loads and stores moves
        self.segments = False
        self._record: dict[int, Transfer] | None = None
        self.symbolic = False  # while a template is emitted (_template): its halves are symbols

    # -- layers in the schedule ------------------------------------------------------------------
    def layer(self, step: int, decision: LayerDecision) -> None:
        """Emit layer ``step`` of the schedule, ``decision``."""
        self.begin_layer(step, decision.working_bytes)
        if isinstance(decision, ArrayDecision | VectorDecision):
            self.compute_layer(decision)
        else:
            self.view_layer(decision)
        self.end_layer()

    def packed(self) -> dict[str, tuple[PackedTile, ...]]:
        """The tiles of every N:M weight tensor, as packed in DRAM."""
        return {name: tuple(tiles.values()) for name, tiles in self.weight_tiles.items()}

    def checkpoint(self, step: int) -> Checkpoint:
        """The state before layer ``step`` (no residents): copies of everything emission changes
        (templates are shared: they are not changed once made; commands are counted, not copied)."""
        assert self.residency is None and self._record is None
        slots = tuple((s.addr, tuple(s.last_users), tuple(s.top_users)) for s in (*self.spad_slots, *self.acc_slots))
        state = (self.dram_end, {name: dict(tiles) for name, tiles in self.weight_tiles.items()}, dict(self.ready),
                 dict(self.psum), self.half_spad, slots, self.spad_next, self.acc_next, self.book.copy(),
                 dict(self.templates))
        return Checkpoint(step, len(self.commands), state)

    def restore(self, checkpoint: Checkpoint, commands: Sequence[Command]) -> None:
        """Set the state to ``checkpoint``'s (copied again: a checkpoint serves many resumptions), the
        commands before it ``commands[:checkpoint.commands]``."""
        dram_end, weight_tiles, ready, psum, half_spad, slots, spad_next, acc_next, book, templates = checkpoint.state
        self.commands = list(commands[:checkpoint.commands])
        self.dram_end, self.half_spad, self.spad_next, self.acc_next = dram_end, half_spad, spad_next, acc_next
        self.weight_tiles = {name: dict(tiles) for name, tiles in weight_tiles.items()}
        self.ready, self.psum, self.templates = dict(ready), dict(psum), dict(templates)
        made = [_Slot(addr, list(last), list(top)) for addr, last, top in slots]
        self.spad_slots, self.acc_slots = made[:2], made[2:]
        self.book = book.copy()
        self.step = checkpoint.step

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
            slot.last_users, slot.top_users = [*slot.last_users, *slot.top_users], []  # the kept operand is done
            self.book.claim(slot.addr, slot.addr + self.half_spad)
            self.book.touch(slot.addr, slot.addr + self.half_spad, slot.last_users)

    def view_layer(self, decision: ViewDecision) -> None:
        """A view: its outputs are ready when its inputs are."""
        layer = decision.layer
        latest = max((self.ready[t] for t in layer.inputs if self.ready[t] is not None), default=None)
        for out in layer.outputs:
            self.ready[out] = latest

    def compute_layer(self, decision: ArrayDecision | VectorDecision) -> None:
        """The commands of an array or vector layer (or of its template, replayed)."""
        count = self._replayed(decision) if id(decision) in self.replays else self._direct(decision)
        if isinstance(decision, ArrayDecision) and count != decision.mapping.tiles:
            raise AssertionError(f"Layer {decision.layer.name!r}: its schedule ran {count} computes, "
                                 f"its mapping search counted {decision.mapping.tiles}")

    def _direct(self, decision: ArrayDecision | VectorDecision) -> int:
        """Emit the layer's commands; an array layer's compute count."""
        if isinstance(decision, VectorDecision):
            self.vector_layer(decision)
            return 0
        ops, plan = decision.operands, decision.choice.plan
        if self.segments and isinstance(plan, Tile) and ops.sparsity is None:
            return self._emit_segments(decision.layer, ops,
                                       tile_segments(ops, plan, decision.choice.dataflow, SEGMENT_TILES))
        return self._emit_steps(decision.layer, ops, decision.choice.steps(ops, self.arch))

    def plan_replays(self, decisions: Sequence[LayerDecision]) -> None:
        """Mark the array and vector layers whose signature another layer shares for replay (a layer
        of its own is emitted directly: its template would cost more than it saves). Not N:M layers:
        their packed weight tiles are the emitter's state."""
        signatures = {id(d): signature(d, d.layer.name, self.graph, self.images, self.dram_room)
                      for d in decisions if isinstance(d, VectorDecision)
                      or isinstance(d, ArrayDecision) and d.operands.sparsity is None}
        groups: dict[Hashable, list[int]] = {}
        for ident, (key, _) in signatures.items():
            groups.setdefault(key, []).append(ident)
        self.replays = {}
        for key, idents in groups.items():
            if len(idents) > 1:
                hashed = _Hashed(key)  # one object per key, hashed once: the templates' lookups are cheap
                for ident in idents:
                    self.replays[ident] = (hashed, signatures[ident][1])

    def _replayed(self, decision: ArrayDecision | VectorDecision) -> int:
        """Emit a layer from the template of its signature and the emitter's state (made now
        if it is the first)."""
        layer_key, names = self.replays[id(decision)]
        key = (layer_key, self.half_spad)  # the halves' turns and places are the template's symbols
        template = self.templates.get(key, _UNMADE)
        if template is _UNMADE:
            template = self.templates[key] = self._template(decision, names)
        if template is None:  # the layer reads something a template cannot stand for
            return self._direct(decision)
        turns = (self.spad_next, self.acc_next)
        spad, acc = self.spad_slots, self.acc_slots
        slots = (spad[turns[0]].addr, spad[turns[0] ^ 1].addr, acc[turns[1]].addr, acc[turns[1] ^ 1].addr)
        expand = template.expansion(names, self.ready, self._users(), turns)
        base = len(self.commands)
        self.commands.extend(template.instantiate(names, base, expand, self.dram_addr, self.dram_end, slots))
        writers, final, (self.spad_next, self.acc_next) = template.final(base, names, expand, turns)
        self.ready.update(writers)
        self._set_users(final)
        self.dram_end += template.psum_bytes
        return template.computes

    def _users(self) -> dict[tuple, list[int]]:
        """The lists of commands the next layer's commands may wait for, by half (mapper.replay)."""
        (s0, s1), (a0, a1) = self.spad_slots, self.acc_slots
        return {("spad", 0, "last"): s0.last_users, ("spad", 0, "top"): s0.top_users,
                ("spad", 1, "last"): s1.last_users, ("spad", 1, "top"): s1.top_users,
                ("acc", 0, "last"): a0.last_users, ("acc", 0, "top"): a0.top_users,
                ("acc", 1, "last"): a1.last_users, ("acc", 1, "top"): a1.top_users}

    def _set_users(self, users: Mapping[tuple, list[int]]) -> None:
        (s0, s1), (a0, a1) = self.spad_slots, self.acc_slots
        s0.last_users, s0.top_users = users["spad", 0, "last"], users["spad", 0, "top"]
        s1.last_users, s1.top_users = users["spad", 1, "last"], users["spad", 1, "top"]
        a0.last_users, a0.top_users = users["acc", 0, "last"], users["acc", 0, "top"]
        a1.last_users, a1.top_users = users["acc", 1, "last"], users["acc", 1, "top"]

    def _template(self, decision: ArrayDecision | VectorDecision, names: tuple[str, ...]) -> Template | None:
        """The layer's commands emitted with symbols for everything outside it (:mod:`mapper.replay`),
        the halves numbered from the one whose turn it is, or ``None`` if its emission reads a tensor
        it does not name or an address a template cannot relocate. The emitter's state is unchanged."""
        saved = (self.commands, self.ready, self.dram_addr, self.dram_end, self.psum, self.spad_slots,
                 self.acc_slots, self.spad_next, self.acc_next)
        symbols: dict[int, tuple] = {}

        def symbol(what: tuple) -> int:
            symbols[-1 - len(symbols)] = what
            return -len(symbols)

        self.commands, self.psum, self.dram_end = [], {}, PSUM_BASE
        self.ready = {name: symbol(("ready", i)) for i, name in enumerate(names) if i}
        self.dram_addr = symbolic(names)
        self.spad_slots, self.acc_slots = (
            [_Slot(slot_address(first + i), [symbol((kind, i, "last"))], [symbol((kind, i, "top"))]) for i in (0, 1)]
            for kind, first in (("spad", 0), ("acc", 2)))
        self.spad_next = self.acc_next = 0
        self.symbolic = True
        try:
            computes = self._direct(decision)
            return Template(names=names, commands=self.commands, symbols=symbols,
                            ready={i: self.ready[name] for i, name in enumerate(names) if i},
                            users={key: list(ids) for key, ids in self._users().items()},
                            psum_bytes=self.dram_end - PSUM_BASE, computes=computes,
                            turns=(self.spad_next, self.acc_next))
        except (KeyError, ValueError):
            return None
        finally:
            (self.commands, self.ready, self.dram_addr, self.dram_end, self.psum, self.spad_slots,
             self.acc_slots, self.spad_next, self.acc_next) = saved
            self.symbolic = False

    def vector_layer(self, decision: VectorDecision) -> None:
        """Element-wise work on the vector unit in the decision's chunks. Resident operands are read
        and written in place; the streamed ones go through the working region.

        A chunk of an element-wise layer is a run of elements of its tensors in storage order; of a
        windowed pool a run of output rows (whole images, or rows of one), with the input rows their
        windows read; of a per-channel layer (a global pool, a depthwise convolution) a run of
        channels, all pixels of each (:func:`mapper.decide.chunking`). Inputs of a chunk are loaded one
        after another into a working half; the output follows them there, or goes to its resident place."""
        layer, size, chunks, macs = decision.layer, decision.size_bytes, decision.chunks, decision.macs
        place = {t: self._place(t) for t in size}
        onchip_in = [d for t in decision.inputs if place[t] is not None for d in self.onchip.get(place[t][0], [])]
        out_claims = [d for t in layer.outputs if place[t] is not None for d in self.claims.pop(place[t][0], [])]
        outputs_onchip = [place[t][0] for t in layer.outputs if place[t] is not None]
        for i in range(chunks):
            slot = self._take_spad()
            lo, hi = decision.piece(i)
            loads, addrs, blocks, offset = [], {}, {}, 0
            for t in decision.inputs:
                at, block, nbytes = self._vector_piece(decision, t, lo, hi, i)
                if place[t] is not None:
                    addrs[t], blocks[t] = place[t][1] + at, block
                    continue
                loads.append(self._add(_make_load(
                    id=len(self.commands), layer=layer.name, deps=_waits([self.ready[t], *slot.last_users]), tensor=t,
                    size_bytes=nbytes, buffer=Buffer.SCRATCHPAD, addr=slot.addr + offset,
                    dram_addr=self.dram_addr[t] + at, dram=block)))
                addrs[t], blocks[t] = slot.addr + offset, None
                offset += nbytes
            out = layer.outputs[0]
            out_at, out_block, out_bytes = self._vector_piece(decision, out, lo, hi, i)
            if place[out] is not None:
                out_addr, out_pattern = place[out][1] + out_at, out_block
            else:
                out_addr, out_pattern = slot.addr + offset, None
            ins = list(decision.inputs)
            deps = [*loads, *slot.last_users, *onchip_in, *out_claims]
            if decision.chunk_axis == "rows" and layer.op is OpKind.CONCAT:
                vecs = self._concat_chunk(decision, ins, addrs, blocks, out_addr, lo, hi, deps)
            else:
                second = ins[1] if len(ins) > 1 else None
                vecs = [self._add(_make_vector(
                    id=len(self.commands), layer=layer.name, deps=_waits(deps), op=layer.source_op or layer.op.value,
                    elements=_vector_share(decision.ops, decision, i), macs=_vector_share(macs, decision, i),
                    input_addr=addrs[ins[0]] if ins else slot.addr, output_addr=out_addr,
                    second_addr=addrs[second] if second else 0, origin=lo, extent=hi - lo,
                    input_block=blocks.get(ins[0]) if ins else None,
                    second_block=blocks.get(second) if second else None, output_block=out_pattern))]
            for t in decision.inputs:
                if place[t] is not None:
                    self.users.setdefault(place[t][0], []).extend(vecs)
            for name in outputs_onchip:
                for vec in vecs:
                    self._produce_onchip(name, vec)
            stores = [
                self._add(_make_store(id=len(self.commands), layer=layer.name, deps=_waits(vecs), tensor=t,
                                      size_bytes=out_bytes, buffer=Buffer.SCRATCHPAD, addr=out_addr,
                                      dram_addr=self.dram_addr[t] + out_at, dram=out_block))
                for t in decision.streamed_out
            ]
            slot.last_users = stores or vecs
            for t, store in zip(decision.streamed_out, stores, strict=True):  # each output its own store
                self.ready[t] = store

    def _concat_chunk(self, decision: VectorDecision, inputs: list[str], addrs: dict[str, int],
                      blocks: dict[str, Block | None], out_addr: int, lo: int, hi: int, deps: list[int]) -> list[int]:
        """Rows ``[lo, hi)`` of a concatenation along the storage's columns: one vector command per input
        (its :attr:`~accel.commands.Vector.part`), copying its rows into its columns of the output rows."""
        layer = decision.layer
        out = self.graph.tensors[layer.outputs[0]]
        word = decision.size_bytes[out.name] // max(out.elements, 1)
        _, out_cols = storage_shape(out.shape, image=out.name in self.images)
        vecs, column = [], 0
        for part, t in enumerate(inputs):
            _, cols = storage_shape(self.graph.tensors[t].shape, image=t in self.images)
            vecs.append(self._emit(Vector, layer=layer.name, op=layer.source_op or layer.op.value,
                                   elements=(hi - lo) * cols, input_addr=addrs[t], output_addr=out_addr + word * column,
                                   origin=lo, extent=hi - lo, input_block=blocks.get(t), part=part,
                                   output_block=make_block(word * cols, hi - lo, word * out_cols), deps=deps))
            column += cols
        return vecs

    def _vector_piece(self, decision: VectorDecision, tensor: str, lo: int, hi: int,
                      i: int) -> tuple[int, Block | None, int]:
        """``(offset, block, size_bytes)`` of chunk ``i`` (elements, rows, channels or a pool's output rows
        ``[lo, hi)``: :func:`mapper.decide.chunking`) of ``tensor``."""
        total = decision.size_bytes[tensor]
        if hi <= lo:  # not chunked along the data (see _chunks): an equal share of the bytes
            return total * i // decision.chunks, None, share(total, i, decision.chunks)
        t = self.graph.tensors[tensor]
        word = total // max(t.elements, 1)
        if decision.chunk_axis == "elements":
            out = self.graph.tensors[decision.layer.outputs[0]]
            if t.shape != out.shape:  # a broadcast operand: the run of it the chunk's elements read
                start, end = broadcast_span(t.shape, out.shape, lo, hi, image=tensor in self.images,
                                            out_image=out.name in self.images)
                return word * start, None, word * (end - start)
            return word * lo, None, word * (hi - lo)
        if decision.chunk_axis == "rows":
            _, cols = storage_shape(t.shape, image=tensor in self.images)
            return word * lo * cols, None, word * (hi - lo) * cols
        if decision.chunk_axis == "bands":  # output rows [lo, hi) of the images, the input rows they read
            out = self.graph.tensors[decision.layer.outputs[0]]
            x = self.graph.tensors[decision.inputs[0]]
            start, end = band_span(decision.layer, x.shape, out.shape[2], lo, hi,
                                   output=tensor in decision.layer.outputs)
            row = total // (t.shape[0] * t.shape[2])  # one image row: all its pixels' channels
            return row * start, None, row * (end - start)
        if decision.macs and t.is_constant:  # depthwise weights: (channels, kernel)
            per = total // t.shape[0]
            return lo * per, None, (hi - lo) * per
        rows, cols = storage_shape(t.shape, image=tensor in self.images)
        return word * lo, make_block(word * (hi - lo), rows, word * cols), word * rows * (hi - lo)
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
    def _take_spad(self) -> _Slot:
        """The scratchpad half whose turn it is; the other one's next."""
        slot = self.spad_slots[self.spad_next]
        self.spad_next ^= 1
        return slot

    def _add(self, command: Command) -> int:
        """Append ``command`` (its id the program's length) and return its id."""
        self.commands.append(command)
        return command.id

    def _emit(self, cls: type[Command], deps: Iterable[int | None] = (), **fields: object) -> int:
        ident = len(self.commands)
        self.commands.append(maker(cls)(id=ident, deps=_waits(deps), **fields))
        return ident

    def _transfer(self, cls: type[Load] | type[Store], run: _Run, layer: Layer, ops: Operands, t: Transfer,
                  addr: int, deps: list[int | None]) -> int:
        dram_addr, block = self._dram_place(layer, ops, t)
        ident = len(self.commands)
        if cls is Load:
            command = _make_load(id=ident, layer=run.layer_name, deps=_waits(deps), tensor=t.tensor,
                                 size_bytes=t.size_bytes, buffer=t.buffer, addr=addr, dram_addr=dram_addr, dram=block)
        else:  # partial sums are stored raw, results through the layer's fused activations
            raw = t.key is not None
            command = _make_store(id=ident, layer=run.layer_name, deps=_waits(deps), tensor=t.tensor,
                                  size_bytes=t.size_bytes, buffer=t.buffer, addr=addr, dram_addr=dram_addr,
                                  activation="" if raw else run.activation, dram=block, raw=raw)
        self.commands.append(command)
        if self._record is not None:
            self._record[ident] = t
        return ident

    def _tile_place(self, layer: Layer, ops: Operands, t: Transfer) -> tuple[int, Block | None]:
        """``(offset, block)`` of the bytes of transfer ``t`` in its tensor's storage (:mod:`mapper.layout`)."""
        (b0, m0, k0, n0), (tb, tm, tk, tn) = t.origin, t.extent
        if t.role == "x":
            nm = None if ops.sparsity is None else (ops.sparsity.n, ops.sparsity.m)
            if ops.x_view is not None:  # the tile's bytes in the stored tensor the operand views
                return view_block(ops.x_view, (b0, m0, k0), (tb, tm, tk), ops.x_word)
            offset, block, size = x_block(self.graph, layer, ops.conv, (b0, m0, k0), (tb, tm, tk), nm, ops.x_word)
            g = layer.gemm
            assert g is not None
            if ops.conv is None and (layer.op is OpKind.CONV or
                                     self.graph.tensors[ops.x].elements != g.batch * g.m * g.k):
                return 0, None  # an input priced as a share of its bytes (a conv given as a GEMM): no block
            assert size == t.size_bytes, (layer.name, size, t.size_bytes)
            return offset, block
        if t.role == "w":
            if ops.sparsity is not None:
                return self._packed_tile(t, (b0, k0, n0), (tb, tk, tn)), None
            if ops.w is not None and not self.graph.tensors[ops.w].is_constant:
                if ops.w_view is not None:  # the tile's bytes in the stored tensor the operand views
                    return view_block(ops.w_view, (b0, k0, n0), (tb, tk, tn), ops.x_word)
                return x_block(self.graph, _as_gemm(layer), None, (b0, k0, n0), (tb, tk, tn), word=ops.x_word)[:2]
            return w_block(layer, (b0, k0, n0), (tb, tk, tn), ops.w_value_bytes)
        if t.role == "out":
            return out_block(layer, (b0, m0, n0), (tb, tm, tn), ops.out_bytes)
        return 0, None

    def _packed_tile(self, t: Transfer, origin: tuple[int, int, int], extent: tuple[int, int, int]) -> int:
        """The offset of an N:M weight tile in its tensor's DRAM bytes: each distinct tile packed once,
        in the order first loaded (:class:`mapper.layout.PackedTile`)."""
        tiles = self.weight_tiles.setdefault(t.tensor, {})
        if (origin, extent) not in tiles:
            offset = sum(p.size_bytes for p in tiles.values())
            room = self.dram_room[t.tensor]
            if offset + t.size_bytes > room:
                raise MappingError(f"Tensor {t.tensor!r}: its packed N:M weight tiles need more than the "
                                   f"{room} B its DRAM region has")
            tiles[origin, extent] = PackedTile(origin, extent, offset, t.size_bytes)
        return tiles[origin, extent].offset

    def _dram_place(self, layer: Layer, ops: Operands, t: Transfer) -> tuple[int, Block | None]:
        """The DRAM address of the first byte of ``t`` and its block; partial sums go to a scratch
        area per output block, above the tensors."""
        if t.key is not None:
            where = (layer.name, t.key)
            if where not in self.psum:
                self.psum[where] = self.dram_end
                self.dram_end += ceil_div(t.size_bytes, 64) * 64
            return self.psum[where], None
        offset, block = self._tile_place(layer, ops, t)
        return self.dram_addr[t.tensor] + offset, block

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

    def _kept_place(self, current: _Slot | None, slot: _Slot, entry: dict[int, list[int]]) -> tuple[_Slot, list[int]]:
        """The half whose top takes an operand later steps keep (:attr:`Transfer.stays`), and what its
        load waits for. The first of a layer goes to the step's half; each next one to the other half
        from the one kept now, so it loads while the current one is still read, after the readers of
        the one before it. The first use of a half's top in a layer also waits for whoever used that
        half when the layer began (``entry``: the layer before may have left anything there).
        Streamed operands sit below the top and never overlap it (a tile's input and weights fit half
        the working space together)."""
        target = slot if current is None else self.spad_slots[1] if current is self.spad_slots[0] \
            else self.spad_slots[0]
        return target, [*entry.pop(id(target), []), *target.top_users]

    def _emit_steps(self, layer: Layer, ops: Operands, steps: Iterable[Step]) -> int:
        """Turn the abstract schedule into commands with addresses and dependencies; count computes."""
        run = _Run(self, layer)
        for step in steps:
            self._emit_step(run, layer, ops, step)
        return run.count

    def _emit_segments(self, layer: Layer, ops: Operands, segments: Iterable[
            tuple[Hashable, tuple[int, int, int, int], Callable[[], Iterable[Step]]]]) -> int:
        """:meth:`_emit_steps` over a schedule cut into segments (:func:`mapper.schedules.tile_segments`),
        copying a segment from an earlier one of the layer that emits alike; count computes.

        Emission is a function of a segment's steps and the state before it (the emitter's halves,
        the layer's tensors' writers, the :class:`_Run`), and reads ids only to wait for them. So a
        segment whose key (its steps but for a shift of their origins) and state (its ids counted
        from the segment's first command, the layer's from before it as they are) equal an earlier
        one's gives that one's commands with ids and waits within the layer moved by the distance
        between the two segments, the same shift of the computes' origins and of each transfer's
        DRAM address (a tile's DRAM place is affine in its origin, and its block the same: checked on
        the first transfer of each role), and leaves that one's state after it, shifted alike."""
        run = _Run(self, layer)
        start = len(self.commands)
        names = tuple(dict.fromkeys(t for t in (ops.x, ops.w, ops.out) if t is not None))
        seen: dict[Hashable, _Segment] = {}
        bases = [start] * SEGMENTS_BACK  # the first commands of the segments before
        for key, origin, steps in segments:
            run.column = {}  # read only within the output tile that keeps a column: dead between tiles
            # ids from a few segments before on are counted from this one's first, earlier ones are as they are
            base, low = len(self.commands), bases[0]
            bases = [*bases[1:], base]
            state = self._run_state(run, low, base, names)
            done = seen.get((key, state)) if state is not None else None
            if done is not None and self._copy_segment(done, run, layer, ops, origin, names):
                continue
            computes, self._record = run.count, {}
            try:
                for step in steps():
                    self._emit_step(run, layer, ops, step)
                record = self._record
            finally:
                self._record = None
            after = self._run_state(run, low, base, names)
            if state is not None and after is not None:
                seen[key, state] = _Segment(self.commands, base, len(self.commands), low, record, origin, after,
                                            run.count - computes)
        return run.count

    def _run_state(self, run: _Run, low: int, base: int, names: Sequence[str]) -> Hashable | None:
        """What the next segment reads of the emitter and ``run``: its ids from ``low`` on counted from
        ``base``, those before ``low`` as 1-tuples, as they are; ``None`` if it reads partial sums or
        resident tensors (not copied)."""
        if run.stored or run.kept_from:
            return None

        def ids(idents: Iterable[int]) -> tuple:
            return tuple([i - base if i >= low else (i,) for i in idents])

        previous = run.previous
        before = None
        if previous is not None:
            c = self.commands[previous]
            assert isinstance(c, Compute)
            # what _follows reads of it
            before = ((previous - base if previous >= low else (previous,),), c.dataflow, c.drain, c.m, c.k, c.n)
        s0, s1 = spad = self.spad_slots
        a0, a1 = acc = self.acc_slots
        ready = []
        for name in names:
            writer = self.ready[name]
            ready.append(None if writer is None else (writer - base if writer >= low else (writer,),))
        entry = run.entry
        return (self.spad_next, self.acc_next,
                ((ids(s0.last_users), ids(s0.top_users)), (ids(s1.last_users), ids(s1.top_users)),
                 (ids(a0.last_users), ids(a0.top_users)), (ids(a1.last_users), ids(a1.top_users))),
                tuple(ready), before, 0 if run.acc_slot is acc[0] else 1, tuple(sorted(run.held.items())),
                tuple(sorted([(role, 0 if slot is spad[0] else 1) for role, slot in run.kept.items()])),
                tuple(sorted(run.kept_at.items())), (ids(entry.get(id(s0), ())), ids(entry.get(id(s1), ()))))

    def _set_run_state(self, run: _Run, state: tuple, base: int, names: Sequence[str]) -> None:
        """Set the emitter and ``run`` to ``state`` (:meth:`_run_state`) with its ids counted from ``base``."""
        def ids(idents: tuple) -> list[int]:
            return [i[0] if type(i) is tuple else i + base for i in idents]

        spad_next, acc_next, users, ready, before, acc, held, kept, kept_at, entry = state
        self.spad_next, self.acc_next = spad_next, acc_next
        for slot, (last, top) in zip((*self.spad_slots, *self.acc_slots), users, strict=True):
            slot.last_users, slot.top_users = ids(last), ids(top)
        for name, writer in zip(names, ready, strict=True):
            self.ready[name] = None if writer is None else ids(writer)[0]
        run.previous = None if before is None else ids(before[0])[0]
        run.acc_slot = self.acc_slots[acc]
        run.held, run.kept_at = dict(held), dict(kept_at)
        run.kept = {role: self.spad_slots[i] for role, i in kept}
        run.entry = {id(slot): ids(e) for slot, e in zip(self.spad_slots, entry, strict=True) if e}

    def _copy_segment(self, done: _Segment, run: _Run, layer: Layer, ops: Operands,
                      origin: tuple[int, int, int, int], names: Sequence[str]) -> bool:
        """Append the commands of segment ``done`` moved to the segment at ``origin`` and set the state
        after it; ``False`` (nothing appended) if a transfer's block there is not the same."""
        shift = tuple(a - b for a, b in zip(origin, done.origin, strict=True))
        moved: dict[str, int] = {}
        plans, transfers = done.copies
        for role, (t, addr, block) in transfers.items():
            b0, m0, k0, n0 = t.origin
            there = _new_transfer(t.tensor, t.size_bytes, t.buffer, t.key, t.role,
                                  (b0 + shift[0], m0 + shift[1], k0 + shift[2], n0 + shift[3]), t.extent, t.stays)
            addr_there, block_there = self._dram_place(layer, ops, there)
            if block_there != block:
                return False
            moved[role] = addr_there - addr
        base = len(self.commands)
        sb, sm, _, sn = shift
        layer_name = layer.name
        append = self.commands.append
        for rebuild, values, ident, outside, inside, role, at in plans:
            deps = (*outside, *[base + d for d in inside]) if inside else outside
            if role:  # a transfer: its DRAM address moves
                append(rebuild(values, base + ident, layer_name, deps, values[at] + moved[role], None))
            else:  # a compute: its origin moves
                b0, m0, k0, n0 = values[at]
                append(rebuild(values, base + ident, layer_name, deps, (b0 + sb, m0 + sm, k0, n0 + sn), None))
        self._set_run_state(run, done.after, base, names)
        run.count += done.computes
        return True

    def _emit_step(self, run: _Run, layer: Layer, ops: Operands, step: Step) -> None:
        """The commands of one step of an array layer's schedule, after the steps ``run`` has seen."""
        resident = self.residency is not None
        if step.new_block:
            acc_slot = run.acc_slot = self.acc_slots[self.acc_next]
            self.acc_next ^= 1
            block_free = list(acc_slot.last_users)
        else:
            acc_slot, block_free = run.acc_slot, []
        scratchpad = Buffer.SCRATCHPAD
        if resident:
            streamed = [t for t in step.loads if t.buffer is scratchpad and self._place(t.tensor) is None]
        else:
            streamed = [t for t in step.loads if t.buffer is scratchpad]
        spad_slot = self._take_spad() if streamed else None
        c = step.compute
        k0 = c.origin[2]
        out_addr = acc_slot.addr + run.acc_word * c.acc_offset
        loads: list[int] = []
        offset = 0
        onchip: list[str] = []
        operand: dict[str, tuple[int, Block | None]] = {}
        ready = self.ready
        for t in step.loads:
            if t.buffer is scratchpad:
                place = self._place(t.tensor) if resident else None
                if place is not None:  # resident: read in place
                    at, block = self._tile_place(layer, ops, t)
                    operand[t.role] = (place[1] + at, block)
                    if t.stays:  # the column's later output tiles read it in place too
                        run.kept_at[t.role, t.origin[2]] = operand[t.role]
                        run.kept_from[t.role, t.origin[2]] = place[0]
                    onchip.append(place[0])
                    continue
                assert spad_slot is not None
                if t.stays:  # at the top of a half, clear of the streamed operands below it
                    t_k0 = t.origin[2]
                    if t_k0 == 0:  # a column's first tile: the other half's top from the last column's
                        target, deps = self._kept_place(run.kept.get(t.role), spad_slot, run.entry)
                        target.top_users, run.kept[t.role] = [], target
                        run.column[t.role] = (deps, 0)
                    target, (deps, filled) = run.kept[t.role], run.column[t.role]
                    at = target.addr + self.half_spad - filled - t.size_bytes
                    run.column[t.role] = (deps, filled + t.size_bytes)
                    loads.append(self._transfer(Load, run, layer, ops, t, at, [ready[t.tensor], *deps]))
                    operand[t.role] = run.kept_at[t.role, t_k0] = (at, None)
                    if run.kept_from:
                        run.kept_from.pop((t.role, t_k0), None)
                    continue
                at = spad_slot.addr + offset
                loads.append(self._transfer(Load, run, layer, ops, t, at, [ready[t.tensor], *spad_slot.last_users]))
                operand[t.role] = (at, None)
                offset += t.size_bytes
            else:
                written = run.stored[t.key] if t.key is not None else ready[t.tensor]
                loads.append(self._transfer(Load, run, layer, ops, t, out_addr, [written, *block_free]))
        reuses = step.reuses
        if not c.fill:
            held = {**run.held, **operand} if operand else run.held
        elif reuses:
            kept_at = run.kept_at
            held = {role: kept_at[role, k0] for role in reuses}
            held.update(operand)
        else:
            held = operand
        if reuses and run.kept_from:
            # a kept operand read in place is read by every step that reuses it: they wait for its
            # producer and whatever later takes its space waits for them
            onchip += [run.kept_from[role, k0] for role in reuses if (role, k0) in run.kept_from]
        run.held = held
        addr = spad_slot.addr if spad_slot is not None else 0
        in_addr, in_block = held.get("x", (addr, None))
        w_addr, w_block_ = held.get("w", (addr, None))
        previous = run.previous
        waits = {*loads, *block_free}
        if previous is not None:
            waits.add(previous)
        if onchip:
            waits.update(d for name in onchip for d in self.onchip.get(name, []))
        waits.discard(None)  # type: ignore[arg-type]
        compute = len(self.commands)
        follows = self._follows(previous, c)
        self.commands.append(_make_compute(
            id=compute, layer=run.layer_name, deps=tuple(sorted(waits)), m=c.m, k=c.k, n=c.n, dataflow=c.dataflow,
            batch=c.batch, input_addr=in_addr, weight_addr=w_addr, output_addr=out_addr, accumulate=c.accumulate,
            fill=c.fill, drain=c.drain, sparsity=c.sparsity, follows=follows, origin=c.origin,
            input_block=in_block, weight_block=w_block_))
        for name in onchip:
            self.users.setdefault(name, []).append(compute)
        if run.kept:
            for role, slot in run.kept.items():  # the array runs its computes in order: the last reader is enough
                if role in reuses or role in operand:
                    slot.top_users = [compute]
        if spad_slot is not None:
            early = follows and self._weights_shift_early(streamed, compute)
            spad_slot.last_users = [previous] if early else [compute]  # type: ignore[list-item]
        stores = []
        for t in step.stores:
            place = self._place(t.tensor) if resident and t.key is None else None
            if place is None:
                stores.append(self._transfer(Store, run, layer, ops, t, out_addr, [compute]))
                continue
            name, base = place
            at, block = self._tile_place(layer, ops, t)
            move = self._emit(Move, layer=layer.name, tensor=name, size_bytes=t.size_bytes,
                              src_addr=out_addr, addr=base + at, dst=block,
                              deps=[compute, *self.claims.pop(name, [])], activation=run.activation)
            self._produce_onchip(name, move)
            stores.append(move)
        if step.new_block:
            acc_slot.last_users = stores
        else:
            acc_slot.last_users.extend(stores)
        for t, ident in zip(step.stores, stores, strict=True):
            if t.key is not None:
                run.stored[t.key] = ident
            elif not resident or not isinstance(self.commands[ident], Move):
                ready[t.tensor] = ident
        run.previous = compute
        run.count += 1


def _waits(deps: Sequence[int | None] | Iterable[int | None]) -> tuple[int, ...]:
    """A command's ``deps`` from the ids it waits for: distinct, sorted, without ``None`` (one or two
    of them, most of a transfer's, without a set)."""
    if type(deps) is list:
        size = len(deps)
        if size == 1:
            first = deps[0]
            return () if first is None else (first,)
        if size == 2:
            first, second = deps
            if first is None or first == second:
                return () if second is None else (second,)
            if second is None:
                return (first,)
            return (first, second) if first < second else (second, first)
    waits = set(deps)
    waits.discard(None)
    return tuple(sorted(waits))  # type: ignore[type-var]


_make_load, _make_store, _make_compute, _make_vector = maker(Load), maker(Store), maker(Compute), maker(Vector)
_new_transfer = value_maker(Transfer)


def _activation(layer: Layer) -> str:
    """The functions fused into ``layer``'s store path (:mod:`mapper.fuse`), as Store.activation gives them."""
    return ",".join(layer.attrs.get("fused", ()))


def _as_gemm(layer: Layer) -> Layer:
    """A matmul's second activation ``k x n`` read as an input matrix (its tiles are ``tk x tn`` blocks)."""
    assert layer.gemm is not None
    g = layer.gemm
    return Layer(layer.name, OpKind.GEMM, layer.inputs, layer.outputs,
                 gemm=GemmShape(m=g.k, k=g.n, n=g.n, batch=g.batch))


def _vector_share(total: int, decision: VectorDecision, i: int) -> int:
    """Chunk ``i``'s share of ``total`` work: in proportion to its elements or channels."""
    if not decision.chunk_total:
        return share(total, i, decision.chunks)
    lo, hi = decision.piece(i)
    whole = decision.chunk_total
    return total * hi // whole - total * lo // whole
