"""A plan's command program as arrays: the datasheet figures of every command, priced once per kind of command.

:class:`ProgramTable` prices each *distinct* command once (a command's figures depend on its kind and
its :data:`accel.pricing.PRICE_FIELDS`, never on its ``id``, ``layer``, ``deps`` or addresses) with
the same pure datasheet functions the mapper and the simulator use (:func:`accel.pricing.price`: the
cycles, energy and bytes of one command, and :func:`accel.timing.bank_conflict_cycles`), and keeps
per command only small integers: the index of its distinct form (``form``), its layer (``layer``)
and its kind (``kind``). Per-command figures are then numpy gathers (``table.cycles[table.form]``),
and per-layer or per-run totals are ``numpy.bincount`` sums: the same numbers as pricing every
command, without a Python call per command.

A GPT-2 prefill of ~260,000 commands has a few hundred distinct forms, so its summary, energy and per-layer
tables cost milliseconds instead of seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter

import numpy as np

from accel.commands import Command, Compute, Load, Move, Store, Vector
from accel.energy import COMPONENTS
from accel.hardware import Accelerator
from accel.pricing import PRICE_FIELDS, price
from accel.timing import bank_conflict_cycles
from accel.traffic import LEVELS

__all__ = ["KINDS", "QUEUES", "ProgramTable", "program_table"]

# accel.pricing.price_key's fields without the DRAM block (the DMA has no request structure)
_WITHOUT_REQUESTS = {kind: tuple(f for f in fields if f != "dram") for kind, fields in PRICE_FIELDS.items()}

KINDS = ("Load", "Store", "Move", "Compute", "Vector")
# The simulator's queues: DMA loads, DMA stores (stores and on-chip moves), the array and the vector unit.
QUEUES = ("dma.load", "dma.store", "array", "vector")
_KIND = {Load: 0, Store: 1, Move: 2, Compute: 3, Vector: 4}
_QUEUE_OF_KIND = np.array([0, 1, 1, 2, 3], dtype=np.int8)


@dataclass(frozen=True, eq=False)
class ProgramTable:
    """Per-command indices and per-form figures of one plan's commands on one accelerator.

    Per command (arrays of ``len(commands)``): ``form`` (index into the per-form arrays), ``kind``
    (index into :data:`KINDS`), ``layer`` (index into ``layer_names``). Per form: ``cycles``,
    ``bank_conflict_cycles``, ``energy_pj`` (forms x :data:`accel.energy.COMPONENTS`), ``level_bytes``
    (forms x :data:`accel.traffic.LEVELS`), ``dram_read_bytes``, ``dram_write_bytes``, ``macs``.
    """

    layer_names: tuple[str, ...]
    form: np.ndarray
    kind: np.ndarray
    layer: np.ndarray
    forms: tuple[Command, ...]  # one representative command per form
    cycles: np.ndarray
    bank_conflict_cycles: np.ndarray
    energy_pj: np.ndarray
    level_bytes: np.ndarray
    dram_read_bytes: np.ndarray
    dram_write_bytes: np.ndarray

    @property
    def queue(self) -> np.ndarray:
        """Per command, its queue (index into :data:`QUEUES`)."""
        return _QUEUE_OF_KIND[self.kind]

    @cached_property
    def command_cycles(self) -> np.ndarray:
        return self.cycles[self.form]

    def form_counts(self) -> np.ndarray:
        """How many commands have each form."""
        return np.bincount(self.form, minlength=len(self.forms))


def program_table(arch: Accelerator, commands: tuple[Command, ...],
                  layer_names: tuple[str, ...] = ()) -> ProgramTable:
    """Price ``commands`` on ``arch`` once per distinct form (see the module docstring).

    ``layer_names`` fixes the order of layers (a command of a layer not listed is added after them).
    """
    names, form, kind, layer, forms = _forms(commands, layer_names, bool(arch.dma.max_in_flight))
    count = len(forms)
    cycles = np.zeros(count, dtype=np.int64)
    conflicts = np.zeros(count, dtype=np.int64)
    energy = np.zeros((count, len(COMPONENTS)))
    levels = np.zeros((count, len(LEVELS)), dtype=np.int64)
    reads = np.zeros(count, dtype=np.int64)
    writes = np.zeros(count, dtype=np.int64)
    column = {c: i for i, c in enumerate(COMPONENTS)}
    level_column = {lv: i for i, lv in enumerate(LEVELS)}
    for f, command in enumerate(forms):
        priced = price(arch, command)
        cycles[f] = priced.cycles
        if isinstance(command, Compute):
            conflicts[f] = bank_conflict_cycles(arch, command)
        for component, pj in priced.energy_pj.items():
            energy[f, column[component]] = pj
        for level, size in priced.bytes.items():
            levels[f, level_column[level]] = size
        if isinstance(command, Load):
            reads[f] = command.size_bytes
        elif isinstance(command, Store):
            writes[f] = command.size_bytes
    for array in (cycles, conflicts, energy, levels, reads, writes):
        array.setflags(write=False)
    return ProgramTable(names, form, kind, layer, forms, cycles, conflicts, energy, levels, reads, writes)


_FormsOf = tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, tuple[Command, ...]]
# the forms of the programs seen last, by the program object (held, so its id stays its own), at most
# _RECENT_COMMANDS commands of them: a process that times one program on many designs (a sweep over
# DRAM bandwidth, mapper.programs) finds them once
_recent: dict[tuple[int, tuple[str, ...], bool], tuple[tuple[Command, ...], _FormsOf]] = {}
_RECENT_COMMANDS = 200_000


def _forms(commands: tuple[Command, ...], layer_names: tuple[str, ...], requests: bool) -> _FormsOf:
    """``(layer names, form, kind, layer, forms)`` of ``commands``: per command the index of its
    distinct price key (transfers' DRAM blocks in it when the DMA has a request structure,
    ``requests``), its kind and its layer; and one representative command per form."""
    key = (id(commands), layer_names, requests)
    hit = _recent.get(key)
    if hit is not None and hit[0] is commands:
        return hit[1]
    index: dict[tuple, int] = {}
    layer_index = {name: i for i, name in enumerate(layer_names)}
    names = list(layer_names)
    forms: list[Command] = []
    n = len(commands)
    form_of, kind_of, layer_of = [], [], []
    # per command class: its price fields' getter (accel.pricing.price_key's key, as one tuple), its kind,
    # and the fields and form of its last command: a command often prices as the last of its class did,
    # and equal fields are that form, found without hashing them (an enum's or a block's hash is Python)
    classes: dict[type, list] = {}
    unseen = object()
    last_layer, li = None, -1
    for command in commands:
        cls = type(command)
        of = classes.get(cls)
        if of is None:
            k = _KIND.get(cls)
            if k is None:
                raise TypeError(f"unknown command {command!r}")
            of = classes[cls] = [attrgetter(*(PRICE_FIELDS if requests else _WITHOUT_REQUESTS)[cls]), k, unseen, -1]
        fields = of[0](command)
        if fields == of[2]:
            f = of[3]
        else:
            price_of = (cls, fields)
            f = index.get(price_of)
            if f is None:
                f = index[price_of] = len(forms)
                forms.append(command)
            of[2], of[3] = fields, f
        form_of.append(f)
        kind_of.append(of[1])
        if command.layer != last_layer:
            last_layer = command.layer
            li = layer_index.get(last_layer)
            if li is None:
                li = layer_index[last_layer] = len(names)
                names.append(last_layer)
        layer_of.append(li)
    form = np.array(form_of, dtype=np.int64).reshape(n)
    kind = np.array(kind_of, dtype=np.int8).reshape(n)
    layer = np.array(layer_of, dtype=np.int64).reshape(n)
    for array in (form, kind, layer):
        array.setflags(write=False)
    result = (tuple(names), form, kind, layer, tuple(forms))
    if n <= _RECENT_COMMANDS:
        _recent[key] = (commands, result)
        while sum(len(held) for held, _ in _recent.values()) > _RECENT_COMMANDS:
            _recent.pop(next(iter(_recent)))
    return result
