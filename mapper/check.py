"""Prove a plan valid from its command program, without trusting the mapper that made it.

:func:`check_plan` raises :class:`~accel.errors.MappingError` naming the first command, layer or
tensor that breaks one of these:

* **program**: command ids are their positions and every dependency names an earlier command;
* **schedule**: the layers run in an order in which every producer comes before its consumers;
* **capacity**: every transfer lies inside its on-chip buffer; with an allocation, the allocation
  itself is valid (:func:`mapper.memory.check_allocation`: residents fit next to each layer's
  working space and never overlap), every tile transfer of a layer stays in that layer's working
  region, and on-chip moves and reloads land exactly on their tensor's place;
* **overlap**: no tile transfer touches a tensor that is resident at that step;
* **operands**: every compute (array or vector) of a layer reads each of its operands either from
  a load of that tensor earlier in the layer (directly or through the commands it waits for) or
  from the tensor's resident copy, waiting for a command that wrote that copy (directly, or through
  an earlier compute of the layer: one that continues a fold uses the stationary operand the fold's
  first compute brought into the array); a layer never
  reads from DRAM a tensor that is resident at its step, except to reload it whole;
* **dependencies**: every DRAM read of an activation waits for the latest store of that tensor
  (or a view of it) before it, and no DRAM read comes before the tensor was stored.

The rules are checked in this order (program, buffer bounds, schedule, allocation, transfers, operands,
dependencies), and within a rule in program order (operands: layer by layer in schedule order), so
the error is the same whichever way the checks find it. They read the commands' fields once into
arrays (kinds, layers, tensors, addresses, sizes, and every dependency as an edge) and check each
rule over all commands at once; what a command has loaded before it in its layer is one sweep over
the layer's dependencies in program order, carrying a bit mask of the layer's operands per command.
Only the first command that breaks a rule is looked at again, to word the error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter, is_

import numpy as np

from accel.commands import Buffer, Command, Compute, Load, Move, Store, Vector
from accel.errors import MappingError
from mapper.lifetimes import view_roots
from mapper.memory import check_allocation
from mapper.plan import Plan
from mapper.residency import Residency
from workloads.graph import Layer

__all__ = ["check_plan"]


def check_plan(plan: Plan) -> None:
    """Raise :class:`MappingError` on the first violation (see the module docstring)."""
    program = _Program.of(plan.commands)
    _check_ids_and_deps(plan.commands, program)
    _check_buffers(plan, program)
    graph = plan.graph
    if graph is None:
        return
    order = [m.layer for m in plan.layers]
    layers = {layer.name: layer for layer in graph.layers}
    if sorted(order) != sorted(layers):
        raise MappingError(f"Plan of {graph.name!r} must map each layer of the graph once")
    _check_schedule(graph, order, layers)
    roots = view_roots(graph)
    step_of = {name: i for i, name in enumerate(order)}
    resident: Residency | _NoResidents = _NoResidents()
    if plan.problem is not None and plan.allocation is not None:
        if tuple(plan.problem.steps) != tuple(order):
            raise MappingError("The plan's allocation was made for another schedule than its layers'")
        check_allocation(plan.problem, plan.allocation)
        resident = Residency(plan.problem, plan.allocation)
    _check_transfers(plan, program, step_of, resident)
    _check_operands(plan, program, layers, step_of, roots, resident)
    _check_dram_order(plan, program, graph, roots)


_LOAD, _STORE, _MOVE, _COMPUTE, _VECTOR, _OTHER = range(6)
_KINDS = ((_LOAD, Load), (_STORE, Store), (_MOVE, Move), (_COMPUTE, Compute), (_VECTOR, Vector))


class _KindCodes(dict[type, int]):
    """Command class -> its kind code, found on first use."""

    def __missing__(self, cls: type) -> int:
        self[cls] = code = next((code for code, kind in _KINDS if issubclass(cls, kind)), _OTHER)
        return code


def _runs(values: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct values (in order of first appearance) and each value's index among them, found per
    run of equal neighbours (a layer's commands come together)."""
    array = np.array(values, dtype=object)
    starts = np.flatnonzero(np.concatenate(([True], array[1:] != array[:-1]))) if values else np.zeros(0, np.int64)
    index: dict[str, int] = {}
    run_index = _indices(array[starts].tolist(), index)
    return list(index), np.repeat(run_index, np.diff(np.append(starts, len(values))))


def _indices(values: list[str], index: dict[str, int]) -> np.ndarray:
    """Each value's position in ``index``, adding the values it lacks (in order of first appearance)."""
    for value in dict.fromkeys(values):
        index.setdefault(value, len(index))
    return np.fromiter(map(index.__getitem__, values), np.int64, len(values))


@dataclass(frozen=True, eq=False)
class _Program:
    """The fields every check reads, one array element per command (or per dependency), read from the
    commands once; the checks work on these arrays, and go back to a command only to word an error."""

    ids: list[int]  # each command's id
    kind: np.ndarray  # _LOAD, _STORE, _MOVE, _COMPUTE, _VECTOR or _OTHER
    layer: np.ndarray  # index into layer_names
    layer_names: list[str]
    tensor: np.ndarray  # of a transfer (Load, Store, Move), index into tensor_names; -1 for other commands
    tensor_names: list[str]
    on_scratchpad: np.ndarray  # a transfer whose on-chip side is the scratchpad (a Move's destination)
    addr: np.ndarray  # a transfer's on-chip first byte (0 for other commands)
    size_bytes: np.ndarray  # a transfer's bytes (0 for other commands)
    owner: np.ndarray  # dependency e: command owner[e] waits for command dep[e]; owners in program order
    dep: np.ndarray

    @classmethod
    def of(cls, commands: Sequence[Command]) -> _Program:
        n = len(commands)
        kind = np.frombuffer(bytes(map(_KindCodes().__getitem__, map(type, commands))), np.int8)
        layer_names, layer = _runs(list(map(attrgetter("layer"), commands)))
        moved = np.flatnonzero(kind <= _MOVE)
        transfers = [commands[i] for i in moved.tolist()]
        count = len(transfers)
        tensor_index: dict[str, int] = {}
        tensor = np.full(n, -1, np.int64)
        tensor[moved] = _indices(list(map(attrgetter("tensor"), transfers)), tensor_index)
        on_scratchpad = np.zeros(n, bool)
        buffers = map(getattr, transfers, repeat("buffer"), repeat(Buffer.SCRATCHPAD))  # a Move's is the scratchpad
        on_scratchpad[moved] = np.fromiter(map(is_, buffers, repeat(Buffer.SCRATCHPAD)), bool, count)
        addr = np.zeros(n, np.int64)
        addr[moved] = np.fromiter(map(attrgetter("addr"), transfers), np.int64, count)
        size_bytes = np.zeros(n, np.int64)
        size_bytes[moved] = np.fromiter(map(attrgetter("size_bytes"), transfers), np.int64, count)
        deps = list(map(attrgetter("deps"), commands))
        counts = np.fromiter(map(len, deps), np.int64, n)
        dep = np.fromiter(chain.from_iterable(deps), np.int64, int(counts.sum()))
        return cls(ids=list(map(attrgetter("id"), commands)), kind=kind, layer=layer, layer_names=layer_names,
                   tensor=tensor, tensor_names=list(tensor_index), on_scratchpad=on_scratchpad, addr=addr,
                   size_bytes=size_bytes, owner=np.repeat(np.arange(n), counts), dep=dep)


def _first(mask: np.ndarray) -> int | None:
    """The first index where ``mask`` holds, if any."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _check_ids_and_deps(commands: Sequence[Command], program: _Program) -> None:
    n = len(commands)
    wrong_id = None if program.ids == list(range(n)) else _first(np.array(program.ids, object) != np.arange(n))
    bad_dep = _first((program.dep < 0) | (program.dep >= program.owner))
    waits = n if bad_dep is None else int(program.owner[bad_dep])
    if wrong_id is not None and wrong_id <= waits:
        raise MappingError(f"Command {wrong_id} has id {commands[wrong_id].id}; ids must be program positions")
    if bad_dep is not None:
        cmd = commands[waits]
        raise MappingError(f"Command {waits} ({type(cmd).__name__}, layer {cmd.layer!r}) waits for "
                           f"{program.dep[bad_dep]}, which is not an earlier command")


class _NoResidents:
    """A plan without an allocation: nothing is ever on chip between layers."""

    def place(self, tensor: str, step: int) -> None:
        return None

    def at(self, step: int) -> list[tuple[str, int, int]]:
        return []


def _check_buffers(plan: Plan, program: _Program) -> None:
    sizes = {Buffer.SCRATCHPAD: plan.arch.scratchpad.size_bytes, Buffer.ACCUMULATOR: plan.arch.accumulator.size_bytes}
    capacity = np.where(program.on_scratchpad, sizes[Buffer.SCRATCHPAD], sizes[Buffer.ACCUMULATOR])
    addr, size = program.addr, program.size_bytes
    outside = _first((program.kind <= _MOVE) & ((addr < 0) | (size < 0) | (addr + size > capacity)))
    if outside is not None:
        cmd = plan.commands[outside]
        buffer = Buffer.SCRATCHPAD if isinstance(cmd, Move) else cmd.buffer  # type: ignore[attr-defined]
        lo, hi = int(addr[outside]), int(addr[outside] + size[outside])
        raise MappingError(f"Command {cmd.id} ({type(cmd).__name__} of {getattr(cmd, 'tensor', '?')!r}, "
                           f"layer {cmd.layer!r}) uses {buffer.value} bytes [{lo}, {hi}), "
                           f"outside its {sizes[buffer]} B")


def _check_schedule(graph: object, order: list[str], layers: dict[str, Layer]) -> None:
    done: set[str] = set()
    tensors = graph.tensors  # type: ignore[attr-defined]
    for name in order:
        for t in layers[name].inputs:
            producer = tensors[t].producer
            if producer is not None and producer not in done:
                raise MappingError(f"Layer {name!r} runs before {producer!r}, which produces its input {t!r}")
        done.add(name)


def _check_transfers(plan: Plan, program: _Program, step_of: dict[str, int],
                     resident: Residency | _NoResidents) -> None:
    if plan.allocation is None:
        return
    size = plan.arch.scratchpad.size_bytes
    working = plan.working_bytes or {}
    moved = np.flatnonzero(program.on_scratchpad)  # loads and stores of the scratchpad, moves into it
    layer_of = program.layer[moved]
    step_at = np.array([step_of.get(name, -1) for name in program.layer_names], np.int64)[layer_of]
    # each (tensor, step)'s place, once: [offset, end) where the tensor is on chip
    rows = int(step_at.max(initial=0)) + 1
    pairs, pair_of = np.unique(program.tensor[moved] * rows + np.maximum(step_at, 0), return_inverse=True)
    kept, offset, end = np.zeros(len(pairs), bool), np.zeros(len(pairs), np.int64), np.zeros(len(pairs), np.int64)
    for k, pair in enumerate(pairs.tolist()):
        tensor, step = divmod(pair, rows)
        place = resident.place(program.tensor_names[tensor], step)
        if place is not None:
            kept[k], offset[k], end[k] = True, place[0], place[0] + place[1]
    kept, offset, end = kept[pair_of], offset[pair_of], end[pair_of]
    lo = program.addr[moved]
    hi = lo + program.size_bytes[moved]
    is_move = program.kind[moved] == _MOVE
    # a reload or a write-back moves all of its tensor; an on-chip move lands inside it
    wrong = kept & np.where(is_move, ~((offset <= lo) & (lo <= hi) & (hi <= end)), (lo != offset) | (hi != end))
    base = np.array([size - working.get(name, size) for name in program.layer_names], np.int64)
    wrong |= ~kept & (is_move | (lo < base[layer_of]))
    wrong |= step_at < 0  # a layer the plan does not run: looking its step up fails, as it should
    tiles = np.flatnonzero(~kept & (step_at >= 0))
    for step in np.unique(step_at[tiles]).tolist():  # tile transfers against the residents of their step
        residents = resident.at(step)
        if not residents:
            continue
        here = tiles[step_at[tiles] == step]
        a = np.array([r[1] for r in residents], np.int64)
        b = np.array([r[2] for r in residents], np.int64)
        wrong[here] |= ((a[None, :] < hi[here, None]) & (lo[here, None] < b[None, :])).any(axis=1)
    for i in moved[wrong].tolist():  # word the first error (each flagged transfer breaks a rule)
        _check_transfer(plan.commands[i], step_of, resident, size, working)


def _check_transfer(cmd: Command, step_of: dict[str, int], resident: Residency | _NoResidents, size: int,
                    working: dict[str, int]) -> None:
    assert isinstance(cmd, Load | Store | Move)
    step = step_of[cmd.layer]
    lo, hi = cmd.addr, cmd.addr + cmd.size_bytes
    place = resident.place(cmd.tensor, step)
    if place is not None:  # a reload, a write-back or an on-chip move of a resident tensor
        offset, nbytes = place
        whole = isinstance(cmd, Load | Store)  # reloads and write-backs move all of it
        if (lo, hi) != (offset, offset + nbytes) if whole else not offset <= lo <= hi <= offset + nbytes:
            raise MappingError(f"Command {cmd.id} ({type(cmd).__name__} of {cmd.tensor!r}, layer {cmd.layer!r}) "
                               f"uses [{lo}, {hi}) but the tensor sits at [{offset}, {offset + nbytes})")
        return
    if isinstance(cmd, Move):
        raise MappingError(f"Command {cmd.id} moves {cmd.tensor!r} on chip in layer {cmd.layer!r}, "
                           f"where the allocation does not keep it")
    base = size - working.get(cmd.layer, size)
    if lo < base:
        raise MappingError(f"Command {cmd.id} ({type(cmd).__name__} of {cmd.tensor!r}, layer {cmd.layer!r}) "
                           f"uses [{lo}, {hi}), below the layer's working region [{base}, {size})")
    for name, a, b in resident.at(step):
        if a < hi and lo < b:
            raise MappingError(f"Command {cmd.id} ({type(cmd).__name__} of {cmd.tensor!r}, layer "
                               f"{cmd.layer!r}) overwrites [{max(a, lo)}, {min(b, hi)}) of {name!r}, which "
                               f"is resident at that step")


def _operands(layer: Layer, tensors: object) -> list[str]:
    """The tensors every array compute of ``layer`` needs: its activation and its second operand (a
    second activation, else its first constant, the weights), as :func:`mapper.decide.operands` reads them."""
    acts = [t for t in layer.inputs if not tensors[t].is_constant]  # type: ignore[index]
    consts = [t for t in layer.inputs if tensors[t].is_constant]  # type: ignore[index]
    return acts[:2] if len(acts) > 1 else acts + consts[:1]


def _check_operands(plan: Plan, program: _Program, layers: dict[str, Layer], step_of: dict[str, int],
                    roots: dict[str, str], resident: Residency | _NoResidents) -> None:
    graph = plan.graph
    assert graph is not None
    commands = plan.commands
    kind, layer_of = program.kind, program.layer
    layer_index = {name: i for i, name in enumerate(program.layer_names)}
    root_index: dict[str, int] = {}
    root_of = _indices([roots.get(t, t) for t in program.tensor_names], root_index)
    places: dict[tuple[str, int], tuple[int, int] | None] = {}

    def place(tensor: str, step: int) -> tuple[int, int] | None:
        key = (tensor, step)
        if key not in places:
            places[key] = resident.place(tensor, step)
        return places[key]

    # each layer's operands, in plan order; bit j of a command's mask: operand j loaded before it in the layer
    is_compute = (kind == _COMPUTE) | (kind == _VECTOR)
    computed = np.flatnonzero(is_compute)
    computing, first = np.unique(layer_of[computed], return_index=True)
    firsts = dict(zip(computing.tolist(), computed[first].tolist(), strict=True))  # layer -> its first compute
    operands: list[tuple[str, int, Layer, int, list[str], dict[str, str]]] = []
    needs = np.zeros(len(program.layer_names) + 1, bool)  # a layer whose computes need some operand loaded
    bits: dict[tuple[int, int], int] = {}  # (layer, root) -> bits of the operands a scratchpad load of root brings
    required: dict[int, int] = {}  # layer -> bits of its operands that must be loaded (the ones not resident)
    any_resident = False
    for name in (m.layer for m in plan.layers):
        li = layer_index.get(name)
        if li is None or li not in firsts:
            continue
        layer, step = layers[name], step_of[name]
        needed = [t for t in layer.inputs if not graph.tensors[t].is_constant] if kind[firsts[li]] == _VECTOR \
            else _operands(layer, graph.tensors)
        groups = {t: roots.get(t, t) for t in needed}
        operands.append((name, li, layer, step, needed, groups))
        for j, t in enumerate(needed):
            if place(t, step) is not None:
                any_resident = True
                continue
            required[li] = required.get(li, 0) | 1 << j
            needs[li] = True
            if groups[t] in root_index:
                key = (li, root_index[groups[t]])
                bits[key] = bits.get(key, 0) | 1 << j
    # what each command has loaded before it in its layer: its own scratchpad load and its waits' (one sweep
    # over the dependencies within a layer, in program order: a command's waits come before it)
    for li in np.unique(layer_of[((kind == _LOAD) & program.on_scratchpad) | (kind == _VECTOR)]).tolist():
        step_of[program.layer_names[li]]  # noqa: B018 - raises KeyError for a layer the plan does not run
    scratch_loads = np.flatnonzero((kind == _LOAD) & program.on_scratchpad & needs[layer_of])
    keys = np.array(sorted(li * len(root_index) + r for li, r in bits), np.int64)
    wide = max(required.values(), default=0).bit_length() > 62  # Python ints beyond an int64's bits
    brings = np.array([bits[divmod(int(k), len(root_index))] for k in keys], object if wide else np.int64)
    seeds = np.zeros(len(kind), brings.dtype)
    load_keys = layer_of[scratch_loads] * len(root_index) + root_of[program.tensor[scratch_loads]]
    at = np.minimum(np.searchsorted(keys, load_keys), max(len(keys) - 1, 0))
    hit = keys[at] == load_keys if len(keys) else np.zeros(len(load_keys), bool)
    seeds[scratch_loads[hit]] = brings[at[hit]]
    loaded = seeds.tolist()
    owner, dep = program.owner, program.dep
    within = (layer_of[owner] == layer_of[dep]) & needs[layer_of[owner]]
    for i, d in zip(owner[within].tolist(), dep[within].tolist(), strict=True):
        loaded[i] |= loaded[d]
    wanted = np.zeros(len(program.layer_names) + 1, brings.dtype)
    for li, need in required.items():
        wanted[li] = need
    wanted = wanted[layer_of[computed]]
    got = np.array([loaded[i] for i in computed.tolist()], brings.dtype)
    short = set(layer_of[computed[(got & wanted) != wanted]].tolist())
    if not short and not any_resident:
        return
    writers = _writers(plan, program, layers, step_of, roots, place) if any_resident else {}
    members = np.argsort(layer_of, kind="stable")
    starts = np.searchsorted(layer_of[members], np.arange(len(program.layer_names) + 1))
    for name, li, _, step, needed, groups in operands:
        resident_needed = [t for t in needed if place(t, step) is not None]
        if li not in short and not resident_needed:
            continue
        ids = members[starts[li]:starts[li + 1]].tolist()
        computes = [i for i in ids if is_compute[i]]
        for j, t in enumerate(needed):
            root = groups[t]
            if place(t, step) is None:
                missing = next((i for i in computes if not loaded[i] >> j & 1), None)
                if missing is not None:
                    raise MappingError(f"Command {missing} (layer {name!r}) computes without its operand {t!r}: it "
                                       f"is neither resident nor loaded before it in the layer")
                continue
            # compute -> it waits for a writer of root, directly or through an earlier compute of the layer
            waited: dict[int, bool] = {}
            for i in computes:
                waited[i] = any(d in writers[root] or waited.get(d, False) for d in commands[i].deps)
                if not waited[i]:
                    raise MappingError(f"Command {i} (layer {name!r}) reads {t!r} from its resident copy "
                                       f"without waiting for a command that wrote it")
        if resident_needed:
            resident_roots = {groups[t] for t in resident_needed}
            for i in ids:
                cmd = commands[i]
                if isinstance(cmd, Load) and cmd.buffer is Buffer.SCRATCHPAD \
                        and roots.get(cmd.tensor, cmd.tensor) in resident_roots \
                        and i not in writers[roots.get(cmd.tensor, cmd.tensor)]:
                    raise MappingError(f"Command {i} (layer {name!r}) reads {cmd.tensor!r} from DRAM, but it is "
                                       f"resident at that step")


def _writers(plan: Plan, program: _Program, layers: dict[str, Layer], step_of: dict[str, int],
             roots: dict[str, str], place: Callable[[str, int], tuple[int, int] | None]) -> dict[str, set[int]]:
    """Resident buffer -> the commands that wrote its on-chip copy (moves, reloads, vector results)."""
    writers: dict[str, set[int]] = defaultdict(set)
    kind = program.kind
    for i in np.flatnonzero((kind == _MOVE) | (kind == _VECTOR) | ((kind == _LOAD) & program.on_scratchpad)).tolist():
        cmd = plan.commands[i]
        if isinstance(cmd, Move) or (isinstance(cmd, Load) and place(cmd.tensor, step_of[cmd.layer]) is not None):
            writers[roots.get(cmd.tensor, cmd.tensor)].add(cmd.id)
        elif isinstance(cmd, Vector):
            step = step_of[cmd.layer]
            for out in layers[cmd.layer].outputs:
                if place(out, step) is not None:
                    writers[roots.get(out, out)].add(cmd.id)
    return writers


def _check_dram_order(plan: Plan, program: _Program, graph: object, roots: dict[str, str]) -> None:
    tensors = graph.tensors  # type: ignore[attr-defined]
    root_index: dict[str, int] = {}
    root_of = _indices([roots.get(t, t) for t in program.tensor_names], root_index)
    root_names = list(root_index)
    kind = program.kind
    dram = np.flatnonzero((kind == _LOAD) | (kind == _STORE))  # in program order
    root = np.full(len(kind), -1, np.int64)
    root[dram] = root_of[program.tensor[dram]]
    # the latest store of each transfer's root before it: sweep the transfers by root, then program order
    by_root = dram[np.argsort(root[dram], kind="stable")]  # dram is in program order
    position = np.arange(by_root.size)
    latest = np.maximum.accumulate(np.where(kind[by_root] == _STORE, position, -1))
    stored = (latest >= 0) & (root[by_root[np.maximum(latest, 0)]] == root[by_root])
    last_store = np.full(len(kind), -1, np.int64)
    last_store[by_root[stored]] = by_root[np.maximum(latest, 0)][stored]
    last_store[kind == _STORE] = -1  # a store's own latest store is no concern
    # which loads wait for their latest store, and which for some earlier store of their root
    of_loads = kind[program.owner] == _LOAD  # the dependencies of loads
    owner, dep = program.owner[of_loads], program.dep[of_loads]
    waits_latest = np.zeros(len(kind), bool)
    waits_latest[owner[dep == last_store[owner]]] = True
    waits_a_store = np.zeros(len(kind), bool)
    waits_a_store[owner[(kind[dep] == _STORE) & (root[dep] == root[owner])]] = True
    loads = np.flatnonzero(kind == _LOAD)
    produced = np.zeros(len(root_names), bool)
    unknown = np.zeros(len(root_names), bool)  # not a tensor of the graph: looking it up fails, as it should
    for r in np.unique(root[loads]).tolist():
        if root_names[r] in tensors:
            produced[r] = tensors[root_names[r]].producer is not None
        else:
            unknown[r] = True
    loads = loads[produced[root[loads]] | unknown[root[loads]]]  # graph inputs and weights are in DRAM from the start
    accumulator = ~program.on_scratchpad[loads]
    wrong = unknown[root[loads]] | (last_store[loads] < 0) | np.where(accumulator, ~waits_a_store[loads],
                                                                       ~waits_latest[loads])
    first = _first(wrong)
    if first is None:
        return
    i = int(loads[first])
    cmd = plan.commands[i]
    tensors[root_names[root[i]]]  # noqa: B018 - raises KeyError for a tensor the graph lacks
    if last_store[i] < 0:
        raise MappingError(f"Command {cmd.id} (layer {cmd.layer!r}) reads {cmd.tensor!r} from DRAM before "  # type: ignore[attr-defined]
                           f"any command stored it there")
    if accumulator[first]:  # a partial-sum reload waits for its own spill
        raise MappingError(f"Command {cmd.id} (layer {cmd.layer!r}) reloads partial sums of "
                           f"{cmd.tensor!r} without waiting for their store")  # type: ignore[attr-defined]
    raise MappingError(f"Command {cmd.id} (layer {cmd.layer!r}) reads {cmd.tensor!r} from DRAM without "  # type: ignore[attr-defined]
                       f"waiting for its latest store (command {last_store[i]})")
