"""Layer templates: an array layer's commands written once and replayed for every layer emitted alike.

A transformer repeats one block a dozen to a hundred times and a CNN repeats its stages: layers whose
commands are the same but for their ids, names, DRAM addresses and the commands of the layers before
them they wait for. :mod:`mapper.emit` writes the commands of such a layer once, *symbolically*, into
a :class:`Template`, and instantiates it for each layer that matches, which costs a copy per command
instead of the schedule's address and dependency work.

**When two layers emit alike.** :func:`signature` is everything emission reads of a layer: its
decision (the schedule, operands, working space; not the search's estimates), its layer (op, shapes,
attributes) and of each tensor it names the shape, type, kind, whether it is stored channels-last and
its DRAM room, with the layer's and the tensors' *names* replaced by their order of first appearance
(so ``h3.attn.q`` reading ``h3.ln1.out`` matches ``h7.attn.q`` reading ``h7.ln1.out``), and the
emitter's state that reaches the commands: the size of the scratchpad's halves (which half comes
next, and where the halves are, are symbols: see *Turns*). Equal signatures give the same commands up to the
substitutions below; names that play two parts in one layer and one in another give different
signatures (never a wrong match, only a missed one). A string that a command copies from the layer
(a vector op's name, a fused activation) and that is also a tensor's name is seen by the signature
only as a position, so a layer whose commands carry one is emitted directly.

**Symbols.** A template is emitted with every value it reads from outside the layer replaced by a
symbol: the last DRAM writer of each named tensor, the last users of each scratchpad half (and of
its top, where an operand was kept) and of each accumulator half are negative ids, expanded when
the template is instantiated to the ids those lists hold then (a writer that is ``None`` expands to
nothing); a named tensor's DRAM address is ``position << 40`` and the partial-sum scratch area
starts at ``1 << 56``, so each address the template wrote relocates to the same offset from the
instantiating tensor's address or from the scratch area's current end. Ids inside the layer are
relative to its first command. After the layer the emitter's state (each tensor's writer, each
half's users, the scratch area's end, the halves' turns) is the template's final state with the same
substitutions.

**Turns.** Which half of each memory the layer's first tile takes is a symbol too: the template is
emitted with the halves numbered from the one whose turn it is (half 0, then half 1), each half's
on-chip address ``SLOT_BASE + (slot << SLOT_SHIFT)`` (slots 0 and 1 the scratchpad's, 2 and 3 the
accumulator's) and its users' symbols by that numbering. Instantiating at the emitter's turns maps
each slot to the real half (``slot ^ turn``), so every on-chip address field relocates to that
half's address plus the same offset, and the users and the turns after the layer are renumbered
alike: one template serves a signature at every turn. Emission reads nothing else of which half is
which (it takes halves in turn and keeps operands in the half other than the current one), but for
the accumulator half a layer's first step uses before it starts a block; the template makes that an
address no slot has (:data:`UNSET_SLOT`), and a template that writes one is not made.

Instantiating yields exactly the commands a direct emission writes (``tests/test_replay.py``
compares whole programs on the zoo and the shared ONNX graphs).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from functools import cache

import numpy as np

from accel.commands import Command, Load, Move, Store
from mapper.makers import field_getter, field_index, relocator
from workloads.graph import Graph

__all__ = ["ADDRESS_SHIFT", "PSUM_BASE", "SLOT_BASE", "SLOT_SHIFT", "UNSET_SLOT", "Template", "signature",
           "slot_address", "symbolic"]

#: A named tensor's symbolic DRAM address is ``position << ADDRESS_SHIFT`` (its position in the names).
ADDRESS_SHIFT = 40
#: The symbolic start of the partial-sum scratch area (above every symbolic tensor address).
PSUM_BASE = 1 << 56
#: A template's on-chip half ``slot`` starts at ``SLOT_BASE + (slot << SLOT_SHIFT)`` (far above any memory).
SLOT_BASE = 1 << 58
SLOT_SHIFT = 48
#: The slot of the accumulator half a layer's first step would use before it starts a block.
UNSET_SLOT = 4
#: The fields of a command that hold on-chip addresses (relocated by slot).
_ON_CHIP = frozenset({"addr", "src_addr", "input_addr", "weight_addr", "output_addr", "second_addr"})


def slot_address(slot: int) -> int:
    """A template's symbolic on-chip address of half ``slot`` (see the module docstring)."""
    return SLOT_BASE + (slot << SLOT_SHIFT)


def signature(decision: object, layer_name: str, graph: Graph, images: frozenset[str],
              dram_room: Mapping[str, int]) -> tuple[Hashable, tuple[str, ...]]:
    """``(key, names)``: what emission reads of ``decision`` with the layer's and tensors' names replaced
    by their positions in ``names`` (the layer's name first, then each tensor named, in the order first
    read; a tensor may share the layer's name). With the emitter's state it keys a :class:`Template`."""
    naming = _Naming(layer_name, graph.tensors, {})
    key = [_canon(decision, naming), getattr(getattr(decision, "mapping", None), "tiles", None)]
    names = (layer_name, *naming.tokens)
    for name in names[1:]:
        t = graph.tensors[name]
        key.append((t.shape, t.dtype, t.kind, name in images, dram_room[name]))
    return tuple(key), names


class _Naming(typing.NamedTuple):
    """What :func:`_canon` numbers names by: the layer's name, the graph's tensors, and each tensor
    name read so far with its position in a signature's names (from 1, in the order first read)."""

    layer: str
    tensors: Mapping[str, object]
    tokens: dict[str, int]


def _canon(value: object, naming: _Naming) -> Hashable:
    """``value`` as :func:`signature` keys it, the names it reads numbered in ``naming``."""
    kind = type(value)
    if kind is int or value is None:  # most of a decision (fast paths; the same values as below)
        return value
    if kind is tuple:
        return tuple([v if type(v) is int else _canon(v, naming) for v in value])
    how = _CANON.get(kind)
    if how is None:
        how = _CANON[kind] = _canon_kind(kind)
    if how is _TEXT:
        tokens = naming.tokens
        if value in tokens:
            return ("name", tokens[value])
        if value in naming.tensors:
            tokens[value] = len(tokens) + 1
            return ("name", tokens[value])
        return ("layer",) if value == naming.layer else value
    if how is _ATOM:
        return value
    if how is _FRACTION:  # its terms (a Fraction hashes in Python, and keys are hashed a few times)
        return ("fraction", value.numerator, value.denominator)  # type: ignore[attr-defined]
    if type(how) is tuple:  # a dataclass instance: the fields a signature reads
        return (kind.__name__, tuple([_canon(getattr(value, name), naming) for name in how]))
    if how is _SEQUENCE:
        return tuple(_canon(v, naming) for v in value)  # type: ignore[attr-defined]
    if how is _MAPPING:
        return ("map", tuple([(_canon(k, naming), _canon(v, naming)) for k, v in value.items()]))  # type: ignore[attr-defined]
    if how is _SET:
        return ("set", tuple(sorted(_canon(v, naming) for v in value)))  # type: ignore[attr-defined, type-var]
    if how is _ARRAY:
        return ("array", value.shape, str(value.dtype), value.tobytes())  # type: ignore[attr-defined]
    if dataclasses.is_dataclass(value):  # a dataclass itself
        return (kind.__name__, tuple(_canon(getattr(value, f.name), naming) for f in dataclasses.fields(value)
                                     if f.name not in _NOT_SIGNED))
    return (kind.__name__, repr(value))


#: What a signature leaves out of a decision's dataclasses: the search's estimates.
_NOT_SIGNED = ("mapping", "cost", "evaluated", "pareto")


#: How :func:`signature` reads a value of a type other than ``int``, ``None`` and ``tuple``: as a
#: name or text, as it is, by its terms (a fraction), item by item, as a mapping, a set, an array, by the fields of a
#: dataclass instance (a tuple of their names) or otherwise (a dataclass itself, or its repr).
_TEXT, _ATOM, _FRACTION, _SEQUENCE, _MAPPING, _SET, _ARRAY, _OTHER = (
    "text", "atom", "fraction", "sequence", "mapping", "set", "array", "other")
_CANON: dict[type, str | tuple[str, ...]] = {}


def _canon_kind(kind: type) -> str | tuple[str, ...]:
    """How :func:`signature` reads a value of type ``kind``: the first of these that it is (the
    order matters: a ``StrEnum`` is text, a ``bool`` an atom)."""
    if issubclass(kind, str):
        return _TEXT
    if issubclass(kind, Fraction):
        return _FRACTION
    if kind is type(None) or issubclass(kind, bool | int | float | Enum):
        return _ATOM
    if issubclass(kind, tuple | list):
        return _SEQUENCE
    if issubclass(kind, Mapping):
        return _MAPPING
    if issubclass(kind, frozenset | set):
        return _SET
    if issubclass(kind, np.ndarray):
        return _ARRAY
    if dataclasses.is_dataclass(kind):
        return tuple(f.name for f in dataclasses.fields(kind) if f.name not in _NOT_SIGNED)
    return _OTHER


@dataclass
class Template:
    """A layer's commands emitted symbolically (see the module docstring) and its final state.

    ``commands`` have ids from 0 and deps that are such ids or symbols (negative); ``symbols`` says
    what each symbol stands for: ``("ready", i)`` the last DRAM writer of ``names[i]``, or a key of
    the emitter's lists of users by the template's numbering of the halves (e.g. ``("spad", 0,
    "last")``: the half whose turn it was). ``ready`` holds the final writer of each name (an id, a
    symbol, or ``None``), ``users`` the final contents of each list of users, ``psum_bytes`` how far
    the layer moved the scratch area's end, ``computes`` its compute count, ``turns`` which half of
    the scratchpad and of the accumulator comes next after it (by the template's numbering)."""

    names: tuple[str, ...]
    commands: list[Command]
    symbols: dict[int, tuple]
    ready: dict[int, int | None]
    users: dict[tuple, list[int]]
    psum_bytes: int
    computes: int
    turns: tuple[int, int]

    def __post_init__(self) -> None:
        # per command what instantiate passes to its relocator (mapper.makers.relocator), its set of
        # symbols (-1: none; the waits outside the layer, by set of symbols) and the span of its waits
        # within the layer in all of them one after another (an array: shifted at once)
        rows: list[tuple] = []
        inner_all: list[int] = []
        which: dict[tuple[int, ...], int] = {}
        names = self.names
        for c in self.commands:
            relocate, values, halves, inner, symbols, tensor, token, offset = _copy_plan(c, names)
            start = len(inner_all)
            inner_all += inner
            rows.append((relocate, values, values[0], halves, which.setdefault(symbols, len(which))
                         if symbols else -1, slice(start, len(inner_all)), tensor, token, offset))
        self._rows = rows
        self._inner = np.array(inner_all, dtype=np.int64)
        self._symbol_sets = list(which)
        self._turned_at: dict[tuple[int, int], tuple[list[tuple], list[tuple]]] = {}  # by turns (_turned)

    def instantiate(self, names: Sequence[str], base: int, expand: Mapping[int, tuple[int, ...]],
                    dram_addr: Mapping[str, int], psum_end: int, slots: tuple[int, ...]) -> list[Command]:
        """The commands of the layer that ``names`` name, its first command's id ``base``: ``expand``
        (:meth:`expansion`) gives the symbols' ids, ``dram_addr`` and ``psum_end`` relocate the DRAM
        addresses, ``slots`` the on-chip ones (the addresses of the template's halves 0 to 3 there)."""
        starts = [0, *(dram_addr[n] for n in names[1:]), psum_end]  # by DRAM token (-1: the scratch area)
        layer = names[0]
        # a symbol stands for ids before the layer, all below its own: its waits are those, sorted, then its own
        outside = []
        for symbols in self._symbol_sets:
            ids: set[int] = set()
            for symbol in symbols:
                ids.update(expand[symbol])
            outside.append(tuple(sorted(ids)))
        inner = tuple((self._inner + base).tolist())
        bases = (*slots, 0)  # by half; the last for an on-chip address field a command leaves at 0
        commands = []
        append = commands.append
        for relocate, values, ident, halves, symbols, span, tensor, token, offset in self._rows:
            deps = inner[span] if symbols < 0 else outside[symbols] + inner[span]
            append(relocate(values, base + ident, layer, deps, names[tensor], starts[token] + offset, bases, halves))
        return commands

    def final(self, base: int, names: Sequence[str], expand: Mapping[int, tuple[int, ...]],
              turns: tuple[int, int]) -> tuple[dict[str, int | None], dict[tuple, list[int]], tuple[int, int]]:
        """The writers of the layer's names, the lists of users (by the emitter's numbering of the
        halves) and the halves' turns after the layer instantiated at ``turns``."""
        writers: dict[str, int | None] = {}
        for i, ident in self.ready.items():
            if ident is None or ident >= 0:
                writers[names[i]] = None if ident is None else base + ident
                continue
            ids = expand[ident]
            if len(ids) > 1:
                raise AssertionError("a tensor's writer is one command")
            writers[names[i]] = ids[0] if ids else None
        users = {key: [r for ident in ids for r in ((base + ident,) if ident >= 0 else expand[ident])]
                 for key, ids in self._turned(turns)[1]}
        return writers, users, (self.turns[0] ^ turns[0], self.turns[1] ^ turns[1])

    def expansion(self, names: Sequence[str], ready: Mapping[str, int | None],
                  users: Mapping[tuple, Sequence[int]], turns: tuple[int, int]) -> dict[int, tuple[int, ...]]:
        """The ids each symbol stands for where the layer ``names`` names is instantiated: the emitter's
        ``ready`` writers and ``users`` lists then, its halves' turns ``turns`` (scratchpad, accumulator)."""
        expand: dict[int, tuple[int, ...]] = {}
        for symbol, position, key in self._turned(turns)[0]:
            if key is None:
                writer = ready[names[position]]
                expand[symbol] = () if writer is None else (writer,)
            else:
                expand[symbol] = tuple(users[key])
        return expand

    def _turned(self, turns: tuple[int, int]) -> tuple[list[tuple], list[tuple]]:
        """:attr:`symbols` as ``(symbol, position, None)`` (a name's writer) or ``(symbol, None, key)``
        (a list of users, its key by the emitter's numbering at ``turns``), and :attr:`users` as
        ``(key there, ids)``; made once per ``turns``."""
        turned = self._turned_at
        made = turned.get(turns)
        if made is None:
            symbols = [(symbol, what[1], None) if what[0] == "ready" else (symbol, None, _at_turns(what, turns))
                       for symbol, what in self.symbols.items()]
            made = turned[turns] = (symbols, [(_at_turns(key, turns), ids) for key, ids in self.users.items()])
        return made


def _at_turns(key: tuple, turns: tuple[int, int]) -> tuple:
    """A list of users' key by a template's numbering of the halves, ``(kind, half, which)``, by the
    emitter's at ``turns``: the half whose turn it is is the template's half 0."""
    kind, half, which = key
    return kind, half ^ turns[0 if kind == "spad" else 1], which


def _copy_plan(command: Command, names: Sequence[str]) -> tuple:
    """How :meth:`Template.instantiate` copies ``command``: ``(relocate, values, halves, inner deps,
    symbols, tensor position, DRAM token, offset)``: ``relocate`` its class's
    :func:`mapper.makers.relocator` (the tensor's name and the DRAM address given apart, each on-chip
    address field moved by the base of its half in ``halves``: :data:`UNSET_SLOT` for a field at 0),
    ``values`` every field's in order (an on-chip address: its offset in its half), DRAM token ``-1``
    the partial-sum scratch area; ``inner deps`` the command's own deps when it waits for no symbol."""
    kind = type(command)
    at, fields, texts, on_chip, tensor_at, dram_at, relocate = _class_plan(kind)
    if command.layer != names[0]:
        raise ValueError(f"a template command of layer {command.layer!r}, not {names[0]!r}")
    deps = command.deps
    symbols = tuple([d for d in deps if d < 0])
    inner = [d for d in deps if d >= 0] if symbols else deps
    values = list(fields(command))
    tensor = token = offset = 0
    if tensor_at:
        tensor = names.index(values[tensor_at], 1)
    if dram_at:
        addr = values[dram_at]
        if addr >= PSUM_BASE:
            token, offset = -1, addr - PSUM_BASE
        else:
            token, offset = addr >> ADDRESS_SHIFT, addr & ((1 << ADDRESS_SHIFT) - 1)
            if not 1 <= token < len(names):
                raise ValueError(f"DRAM address {addr:#x} of a template command is not a named tensor's")
    for i in texts:
        # a string copied as it is must not be one the signature saw only as a position
        value = values[i]
        if isinstance(value, str) and value in names:
            raise ValueError(f"a template command's {list(at)[i]} {value!r} is also a name of the layer")
    halves = []
    for i in on_chip:
        value = values[i]
        if value >= SLOT_BASE:
            slot, off = (value - SLOT_BASE) >> SLOT_SHIFT, value & ((1 << SLOT_SHIFT) - 1)
            if slot >= UNSET_SLOT or off >= 1 << ADDRESS_SHIFT:
                raise ValueError(f"a template command's {list(at)[i]} {value:#x} is not an address in a half")
            halves.append(slot)
            values[i] = off
        elif value:
            raise ValueError(f"a template command's {list(at)[i]} {value:#x} is not in a half")
        else:
            halves.append(UNSET_SLOT)  # no half: a base of 0
    return relocate, values, tuple(halves), inner, symbols, tensor, token, offset


@cache
def _class_plan(kind: type[Command]) -> tuple:
    """What :func:`_copy_plan` reads of a command class: its field indices
    (:func:`mapper.makers.field_index`), a getter of every field in order, the fields that may hold
    a string but the tensor's name and the on-chip address fields (:func:`_field_kinds`), the
    indices of the tensor's name (a transfer's or move's) and of the DRAM address (a transfer's), 0
    where it has none, and its relocator (:func:`mapper.makers.relocator`: those two given apart,
    the on-chip fields moved)."""
    at = field_index(kind)
    texts, on_chip = _field_kinds(kind)
    tensor_at = at["tensor"] if issubclass(kind, Load | Store | Move) else 0
    dram_at = at["dram_addr"] if issubclass(kind, Load | Store) else 0
    return (at, field_getter(kind), tuple(i for i in texts if i != tensor_at), on_chip, tensor_at, dram_at,
            relocator(kind, tensor_at, dram_at, on_chip))


@cache
def _field_kinds(kind: type[Command]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The indices of ``kind``'s fields but the layer's that may hold a string (annotated ``str``, a
    subclass of it, a union with one, or anything), and of its on-chip address fields."""
    fields = dataclasses.fields(kind)
    hints = typing.get_type_hints(kind)

    def may_be_text(hint: object) -> bool:
        return any(t is object or t is typing.Any or isinstance(t, type) and issubclass(t, str)
                   for t in (typing.get_args(hint) or (hint,)))

    texts = tuple(i for i, f in enumerate(fields) if i != 1 and may_be_text(hints[f.name]))
    on_chip = tuple(i for i, f in enumerate(fields) if f.name in _ON_CHIP)
    return texts, on_chip


def symbolic(names: Iterable[str]) -> dict[str, int]:
    """The symbolic DRAM address of each of ``names`` but the first (the layer's): its position there
    shifted left by :data:`ADDRESS_SHIFT`."""
    return {name: i << ADDRESS_SHIFT for i, name in enumerate(names) if i}
