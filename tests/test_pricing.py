"""A command's price depends on its kind and its PRICE_FIELDS only: moving its bytes elsewhere (other
addresses, blocks, tensors, origins) never changes its cycles, energy or bytes per level, so the
program table may price each distinct key once."""

from __future__ import annotations

import dataclasses

import pytest

from accel import config
from accel.commands import Block, Command, Compute, Load
from accel.pricing import PRICE_FIELDS, price, price_key
from accel.timing import bank_conflict_cycles
from mapper import MapOptions, map_graph
from workloads import sparsify, zoo

ALWAYS_FREE = {"id", "layer", "deps"}


def _moved(value: object) -> object:
    """Another value of the same kind: where the bytes are, not how many."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 4096
    if isinstance(value, str):
        return value + "_elsewhere"
    if isinstance(value, Block) or value is None:
        return Block(rows=3, row_bytes=5, row_stride=7)
    if isinstance(value, tuple):
        return tuple(v + 1 if isinstance(v, int) else v for v in value)
    raise AssertionError(f"no other value for {value!r}")


def _sample(preset: str, nm: bool) -> list[Command]:
    graph = zoo.build("resnet18")
    plan = map_graph(sparsify(graph, "2:4") if nm else graph, config.load(preset),
                     MapOptions(allocator="greedy"))
    first: dict[tuple, Command] = {}
    for cmd in plan.commands:
        first.setdefault((type(cmd), *(bool(getattr(cmd, f, None)) for f in ("activation", "raw", "sparsity"))), cmd)
    return list(first.values())


@pytest.mark.parametrize(("preset", "nm"), [("gemmini", False), ("sparse-nm", True), ("tpu-v1", False)])
def test_only_the_price_fields_change_a_price(preset: str, nm: bool) -> None:
    arch = config.load(preset)
    for cmd in _sample(preset, nm):
        free = [f.name for f in dataclasses.fields(cmd) if f.name not in PRICE_FIELDS[type(cmd)]
                and f.name not in ALWAYS_FREE]
        moved = dataclasses.replace(cmd, **{name: _moved(getattr(cmd, name)) for name in free})
        assert price_key(moved) == price_key(cmd)
        assert price(arch, moved) == price(arch, cmd), (type(cmd).__name__, free)
        if isinstance(cmd, Compute):
            assert bank_conflict_cycles(arch, moved) == bank_conflict_cycles(arch, cmd)


def test_every_command_kind_lists_its_price_fields() -> None:
    for kind, fields in PRICE_FIELDS.items():
        names = {f.name for f in dataclasses.fields(kind)}
        assert set(fields) <= names, kind


def test_a_transfers_rows_are_priced_only_where_the_dma_has_a_request_structure() -> None:
    load = Load(id=0, layer="l", tensor="t", size_bytes=4096, dram=Block(rows=256, row_bytes=16, row_stride=64))
    contiguous = dataclasses.replace(load, dram=None)
    requests = config.load("gemmini")  # Configs.scala: 16 requests of at most 64 B in flight
    plain = dataclasses.replace(requests, dma=dataclasses.replace(requests.dma, max_in_flight=0, max_request_bytes=0))
    assert price_key(load, plain) == price_key(contiguous, plain)
    assert price(plain, load) == price(plain, contiguous)
    assert price_key(load, requests) != price_key(contiguous, requests)
    assert price(requests, load).cycles > price(requests, contiguous).cycles
