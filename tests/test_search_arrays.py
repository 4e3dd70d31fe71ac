"""Tile-outer candidates priced as arrays (``mapper.search_arrays``) choose what pricing each in turn does.

For zoo models on two presets, every mapping search the mapper runs is repeated with the array
pricing and with the scalar closed form (``mapper.search._tile_outer_cost``, kept as the reference):
the chosen loop order, dataflow, tile and cost, and the counts of mappings priced and not dominated,
must be equal (costs bit for bit: the array pricing adds in the scalar order).
"""

from __future__ import annotations

import pytest

import mapper
from accel import config
from mapper import search
from workloads import zoo

CASES = [("resnet18", "gemmini"), ("mobilenet_v2", "gemmini"), ("bert_base_layer", "gemmini"),
         ("llama3_8b_layer_decode", "gemmini"), ("resnet50", "tpu-v1"),
         ("vit_s16_block", "eyeriss"), ("llama2_7b_layer_prefill", "tpu-v1"),
         ("resnet18", "gemmini-2021")]  # a DMA with a request structure: transfers priced by their rows


def _searches(model: str, preset: str, monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    original = search._search

    def record(*args):  # noqa: ANN002, ANN202
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(search, "_search", record)
    mapper.map_graph(zoo.build(model), config.load(preset))
    monkeypatch.setattr(search, "_search", original)
    return list(dict.fromkeys(calls))


@pytest.mark.parametrize(("model", "preset"), CASES)
def test_array_pricing_makes_the_same_choices(model, preset, monkeypatch):
    searches = _searches(model, preset, monkeypatch)
    assert searches
    chosen = {}
    for vectorized in (False, True):
        monkeypatch.setattr(search, "_VECTORIZED", vectorized)
        chosen[vectorized] = [search._search.__wrapped__(*args) for args in searches]
    assert chosen[True] == chosen[False]
    assert any(c.order == "tile-outer" for c in chosen[True])
