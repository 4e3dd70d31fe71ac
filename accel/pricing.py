"""One pricing of a command: what each command kind costs, from one table.

:data:`PRICING` maps every command kind of :mod:`accel.commands` to its :class:`KindPricing`: the
datasheet functions giving one command of that kind its cycles (:mod:`accel.timing`), its dynamic
energy by component (:mod:`accel.energy`) and its bytes per memory level (:mod:`accel.traffic`).
:func:`accel.timing.command_cycles`, :func:`accel.energy.command_energy_pj` and
:func:`accel.traffic.command_bytes` all dispatch through it, so a new command kind is one entry here
(and its three functions), never a branch in three places. :func:`price` gives all three at once.

:data:`PRICE_FIELDS` names, per kind, the fields those functions read: two commands of a kind that
agree on them have the same price, whatever their addresses, blocks, tensors or origins
(:func:`price_key`; a test changes every other field and checks the price stays).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from accel import energy, timing, traffic
from accel.commands import Command, Compute, Load, Move, Store, Vector
from accel.hardware import Accelerator

__all__ = ["KindPricing", "PRICE_FIELDS", "PRICING", "Price", "price", "price_key", "pricing"]


@dataclass(frozen=True)
class KindPricing:
    """The datasheet functions of one command kind, each ``(arch, command) -> figure``."""

    cycles: Callable[[Accelerator, Any], int]
    energy_pj: Callable[[Accelerator, Any], dict[str, float]]
    bytes: Callable[[Accelerator, Any], dict[str, int]]


_TRANSFER = KindPricing(timing.transfer_command_cycles, energy.transfer_energy_pj, traffic.transfer_bytes)

PRICING: Mapping[type[Command], KindPricing] = {
    Load: _TRANSFER,
    Store: _TRANSFER,
    Move: KindPricing(timing.move_command_cycles, energy.move_energy_pj, traffic.move_bytes),
    Compute: KindPricing(timing.compute_command_cycles, energy.compute_energy_pj, traffic.compute_bytes),
    Vector: KindPricing(timing.vector_command_cycles, energy.vector_energy_pj, traffic.vector_bytes),
}


#: The fields of each kind that its price depends on (the others say where its bytes are).
PRICE_FIELDS: Mapping[type[Command], tuple[str, ...]] = {
    Load: ("size_bytes", "buffer", "dram"),  # the DRAM block: its rows are the DMA's requests
    Store: ("size_bytes", "buffer", "activation", "dram"),
    Move: ("size_bytes", "activation"),
    Compute: ("m", "k", "n", "batch", "dataflow", "accumulate", "fill", "drain", "sparsity", "follows"),
    Vector: ("op", "elements", "macs"),
}


def price_key(command: Command, arch: Accelerator | None = None, *, requests: bool | None = None) -> tuple[Any, ...]:
    """What ``command``'s price depends on: its kind and its :data:`PRICE_FIELDS`, a transfer's DRAM
    block only where the DMA has a request structure (``requests``; default: ``arch``'s DMA has one,
    and true without a design)."""
    cls = type(command)
    try:
        fields = PRICE_FIELDS[cls]
    except KeyError:
        raise TypeError(f"unknown command {command!r}") from None
    if requests is None:
        requests = arch is None or bool(arch.dma.max_in_flight)
    if not requests:
        fields = _WITHOUT_REQUESTS[cls]
    return (cls, *(getattr(command, f) for f in fields))


_WITHOUT_REQUESTS = {kind: tuple(f for f in fields if f != "dram") for kind, fields in PRICE_FIELDS.items()}


@dataclass(frozen=True)
class Price:
    """Everything the datasheet says about one command."""

    cycles: int
    energy_pj: dict[str, float]
    bytes: dict[str, int]


def pricing(command: Command) -> KindPricing:
    """The pricing of ``command``'s kind; ``TypeError`` for an object that is no command kind."""
    try:
        return PRICING[type(command)]
    except KeyError:
        raise TypeError(f"unknown command {command!r}") from None


def price(arch: Accelerator, command: Command) -> Price:
    """``command``'s cycles, dynamic energy by component and bytes per level on ``arch``."""
    kind = pricing(command)
    return Price(kind.cycles(arch, command), kind.energy_pj(arch, command), kind.bytes(arch, command))
