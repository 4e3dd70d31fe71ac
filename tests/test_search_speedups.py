"""The mapping search's shared work makes the choices searching every layer on its own makes.

``mapper.search._MEMO`` switches off everything the search shares (the reference): with it, layers
whose operands differ only in what the search does not price (tensor names, a view's source tensor
and batch stride: ``mapper.search._priced``) share one search; within a search the dataflows that
run the same operands share their candidate tiles, bounds, priced transfers and row-count searches,
and tiles are priced one by one in bound order instead of in batches. For zoo models and the shared
ONNX graphs on several presets, :func:`mapper.decide.decide_layers` must return the same decision
for every layer both ways: the chosen loop order, dataflow, tile, plan and cost (with its steps),
the counts of mappings priced and not dominated, and the layer's mapping record.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from accel import config
from mapper import MapOptions, search
from mapper.decide import ArrayDecision, decide_layers
from mapper.plan import Tile
from workloads import load, zoo
from workloads.graph import Graph

QUICK = [("resnet18", "gemmini"), ("mobilenet_v2", "tpu-v1"), ("bert_base_layer", "gemmini"),
         ("gpt2_decode", "tpu-v1"), ("vit_s16_block", "eyeriss"), ("llama3_8b_layer_decode", "sparse-nm"),
         ("alexnet", "gemmini-2021")]  # a DMA with a request structure: transfers priced by their rows
WHOLE_LLMS = ("llama2_7b_prefill", "llama2_7b_decode")  # 32 copies of the layers llama2_7b_layer_* check
# every zoo model on the Gemmini-like preset (the rest of the presets x models grid, 77 more cases, was
# compared once when the sharing was written: minutes of CI for little more coverage than QUICK gives)
SLOW = [(model, "gemmini") for model in zoo.names() if model not in WHOLE_LLMS and (model, "gemmini") not in QUICK]
ONNX = ["alexnet.onnx", "mobilenetv2.onnx", "resnet18.onnx"]


def _decisions(graph: Graph, preset: str, memo: bool, monkeypatch: pytest.MonkeyPatch,
               options: MapOptions | None = None) -> list[tuple]:
    """Every layer's decision, searched with (``memo``) or without the search's shared work."""
    monkeypatch.setattr(search, "_MEMO", memo)
    search.clear_caches()
    decisions = decide_layers(graph, config.load(preset), options or MapOptions())
    out: list[tuple] = []
    for d in decisions:
        if isinstance(d, ArrayDecision):
            c = d.choice
            out.append((d.layer.name, c.order, c.dataflow, c.tile, c.plan, c.cost, c.cost.steps, c.evaluated,
                        c.pareto, d.mapping))
        else:
            out.append((d.layer.name, type(d).__name__, d.mapping))
    return out


def _assert_same(graph: Graph, preset: str, monkeypatch: pytest.MonkeyPatch,
                 options: MapOptions | None = None) -> None:
    reference = _decisions(graph, preset, False, monkeypatch, options)
    fast = _decisions(graph, preset, True, monkeypatch, options)
    assert any(len(d) > 3 for d in reference), f"{graph.name} on {preset}: no array layer searched"
    differ = [(r, f) for r, f in zip(reference, fast, strict=True) if r != f]
    assert not differ, f"{graph.name} on {preset}: {len(differ)} layers differ, first: {differ[0]}"


@pytest.mark.parametrize(("model", "preset"), QUICK)
def test_shared_searches_choose_as_the_reference(model, preset, monkeypatch):
    _assert_same(zoo.build(model), preset, monkeypatch)


@pytest.mark.parametrize("objective", ["energy", "edp"])
def test_shared_searches_choose_as_the_reference_for_other_objectives(objective, monkeypatch):
    _assert_same(zoo.build("resnet18"), "gemmini", monkeypatch, MapOptions(objective=objective))


@pytest.mark.parametrize("preset", ["gemmini", "tpu-v1"])
@pytest.mark.parametrize("graph", ONNX)
def test_shared_onnx_graphs_choose_as_the_reference(graph, preset, shared_data, monkeypatch):
    _assert_same(load(str(shared_data / "onnx" / graph)), preset, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "preset"), SLOW)
def test_every_zoo_model_chooses_as_the_reference(model, preset, monkeypatch):
    _assert_same(zoo.build(model), preset, monkeypatch)


def test_gpt2_blocks_share_their_searches():
    """GPT-2's attention matmuls read views of each block's own tensors: 97 array layers, 6 distinct searches."""
    search.clear_caches()
    decide_layers(zoo.build("gpt2_prefill"), config.load("gemmini"), MapOptions())
    assert search._search.cache_info().misses == 6


def _sweep_designs() -> list:
    """Designs of a sweep around Gemmini: DRAM bandwidth, scratchpad size and dataflows varied."""
    base = config.load("gemmini")
    designs = []
    for bandwidth in (8.0, 32.0):
        for spad in (base.scratchpad.size_bytes, base.scratchpad.size_bytes // 2):
            for dataflows in (base.array.dataflows, base.array.dataflows[:1]):
                designs.append(replace(base, dram=replace(base.dram, bandwidth_bytes_per_cycle=bandwidth),
                                       scratchpad=replace(base.scratchpad, size_bytes=spad),
                                       array=replace(base.array, dataflows=dataflows)))
    return designs


def test_designs_mapped_in_turn_choose_as_each_alone(monkeypatch):
    """A sweep maps design after design in one process: what the searches share across designs (the
    candidate tiles of the same operands and working space, the bytes a schedule moves) must not
    change any design's choices from searching it alone, every memo empty (the reference)."""
    graph = zoo.build("resnet18")
    designs = _sweep_designs()

    def decisions(arch) -> list[tuple]:
        out = []
        for d in decide_layers(graph, arch, MapOptions()):
            if isinstance(d, ArrayDecision):
                c = d.choice
                out.append((d.layer.name, c.order, c.dataflow, c.tile, c.plan, c.cost, c.cost.steps, c.evaluated,
                            c.pareto, d.mapping))
        return out

    monkeypatch.setattr(search, "_MEMO", False)
    reference = []
    for arch in designs:
        search.clear_caches()
        reference.append(decisions(arch))
    monkeypatch.setattr(search, "_MEMO", True)
    search.clear_caches()
    shared = [decisions(arch) for arch in designs]  # nothing cleared between designs
    for i, (r, s) in enumerate(zip(reference, shared, strict=True)):
        assert r == s, f"design {i} differs from its own search"
    assert search._candidates.cache_info().hits > 0


def test_candidates_key_is_every_input():
    """:func:`mapper.search._candidates` is keyed by every argument :class:`mapper.search._Candidates`
    reads (no design in it): a memoised one lists the tiles and bounds a fresh one does, tiles equal to
    those ``Tile(...)`` makes."""
    import inspect

    params = [p for p in inspect.signature(search._Candidates).parameters if p != "memo"]
    assert params == list(inspect.signature(search._candidates).parameters)
    ops = next(d.operands for d in decide_layers(zoo.build("resnet18"), config.load("gemmini"), MapOptions())
               if isinstance(d, ArrayDecision) and d.operands.conv is not None)
    for half_spad, half_acc in ((1 << 16, 1 << 15), (1 << 14, 1 << 13)):
        memo = search._candidates(ops, half_spad, half_acc)
        fresh = search._Candidates(ops, half_spad, half_acc, memo=False)
        for size in ((1, 64, 64), (1, 16, 128), (1, 576, 16)):
            assert memo.plain(*size) == fresh.plain(*size)
            assert memo.kept(*size) == fresh.kept(*size)
            assert [memo.moved(t) for t in memo.plain(*size)] == [fresh.moved(t) for t in fresh.plain(*size)]
            # the memoised bounds are summed as the tiles are made, the fresh ones by _dram_bytes
            assert [memo.moved(t) for t in memo.kept(*size)] == [fresh.moved(t) for t in fresh.kept(*size)]
            for t in memo.plain(*size) + memo.kept(*size):  # made in one step (search._tile), as a Tile is
                made = Tile(t.m, t.k, t.n, t.b, t.keep)
                assert t == made and hash(t) == hash(made) and list(vars(t).items()) == list(vars(made).items())


def test_transfer_energy_is_shared_only_where_it_is_the_same():
    """The search's transfer energy is shared by designs that differ in the DRAM's bandwidth or latency
    (:class:`mapper.search._Pricer`); the datasheet's transfer energy must not read them, and a design's
    shared price must be the one a fresh pricer of that design gives."""
    from accel.commands import Buffer, Load, Store
    from accel.energy import command_energy_pj

    base = config.load("gemmini")
    other = replace(base, dram=replace(base.dram, bandwidth_bytes_per_cycle=3.0, latency_cycles=7))
    for size in (1, 64, 1000, 65536):
        for t in (Load(id=0, layer="", tensor="", size_bytes=size),
                  Store(id=0, layer="", tensor="", size_bytes=size, buffer=Buffer.ACCUMULATOR)):
            assert command_energy_pj(base, t) == command_energy_pj(other, t)
    search.clear_caches()
    warm = [search._pricer(base).transfer(s, b, st) for s in (64, 4096) for b in Buffer for st in (False, True)]
    shared = [search._pricer(other).transfer(s, b, st) for s in (64, 4096) for b in Buffer for st in (False, True)]
    search.clear_caches()
    fresh = [search._pricer(other).transfer(s, b, st) for s in (64, 4096) for b in Buffer for st in (False, True)]
    assert shared == fresh and warm != fresh  # the cycles differ, the energies are the same
    assert [e for _, e in warm] == [e for _, e in fresh]


@pytest.mark.parametrize(("model", "preset"), QUICK + [("resnet50", "gemmini")])
def test_search_prices_are_the_datasheets(model, preset):
    """The search prices a new compute shape or transfer with the datasheet's closed forms for it
    (``accel.timing.steady_compute_cycles`` and ``dma_row_cycles``, ``accel.energy.compute_energy_function``
    and ``transfer_energy_function``) rather than building the command: after searching a model, every
    price it holds is ``command_cycles`` (``dma_cycles``) and ``sum(command_energy_pj(...).values())``
    of that command, exactly."""
    from accel.commands import Block, Compute, Load, Store
    from accel.energy import command_energy_pj
    from accel.timing import command_cycles, dma_cycles, steady_follows

    arch = config.load(preset)
    search.clear_caches()
    decide_layers(zoo.build(model), arch, MapOptions())
    pricer = search._pricer(arch)
    assert pricer._computes and pricer._cycles and pricer._transfers
    for (dataflow, m, k, n, batch, accumulate, fill, drain, sparsity), (cycles, pj) in pricer._computes.items():
        follows = steady_follows(arch.array, dataflow, m, k, n) if fill and drain else 0
        c = Compute(id=0, layer="", m=m, k=k, n=n, batch=batch, dataflow=dataflow, accumulate=accumulate, fill=fill,
                    drain=drain, sparsity=sparsity, follows=follows)
        assert (cycles, pj) == (command_cycles(arch, c), sum(command_energy_pj(arch, c).values())), c
    for (size, buffer, store, row), (cycles, pj) in pricer._transfers.items():
        block = Block(rows=size // row, row_bytes=row, row_stride=row) if row and row < size else None
        t = (Store if store else Load)(id=0, layer="", tensor="", size_bytes=size, buffer=buffer)
        assert (cycles, pj) == (dma_cycles(arch, size, block), sum(command_energy_pj(arch, t).values())), t
    for (dataflow, m, k, n, batch, sparsity), cycles in pricer._cycles.items():
        c = Compute(id=0, layer="", m=m, k=k, n=n, batch=batch, dataflow=dataflow, sparsity=sparsity,
                    follows=steady_follows(arch.array, dataflow, m, k, n))
        assert cycles == command_cycles(arch, c), c
