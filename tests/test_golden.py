"""Golden figures of the whole flow: every zoo model, mapped and simulated, gives the pinned numbers.

For each case the plan's total cycles, DRAM bytes, energy and command count are compared with
``tests/fixtures/golden.json``. The cases:

* every zoo model on ``gemmini`` and ``tpu-v1`` with each allocator (``none``, ``greedy``,
  ``firstfit``, ``ilp``), except ``gpt2_prefill`` on ``gemmini`` (it alone would cost tens of
  seconds: hundreds of thousands of commands per allocator; on ``tpu-v1`` it is cheap);
* the other mapping choices, with the ``none`` allocator: SCALE-Sim's loop order with depthwise
  convolutions on the array (``accel run --scalesim-config``'s defaults), the ``energy`` and ``edp``
  objectives, one dataflow, depthwise convolutions on the vector unit, on a few models;
* N:M sparse weights on ``sparse-nm``.

A case that the mapper rejects pins its error message instead.

The fixture was written by the code before the mapper's redesign (issue 12) and must not change with
a refactoring. When behaviour is meant to change, regenerate it and say why in the commit::

    PYTHONPATH=. python tests/test_golden.py --update
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

import mapper
import workloads
from accel import config
from accel.errors import MappingError
from sim import simulate
from workloads import zoo

FIXTURE = Path(__file__).parent / "fixtures" / "golden.json"
PRESETS = ("gemmini", "tpu-v1")
ALLOCATORS = ("none", "greedy", "firstfit", "ilp")
#: (preset, model) pairs left out as too slow for the test suite
EXPENSIVE = {("gemmini", "gpt2_prefill")}
#: mapping choices other than the default, with the ``none`` allocator: name -> (MapOptions fields)
VARIANTS: dict[str, dict[str, str]] = {
    "scalesim": {"loop_order": "fold-outer", "depthwise": "array"},
    "energy": {"objective": "energy"},
    "edp": {"objective": "edp"},
    "tile-outer": {"loop_order": "tile-outer"},
    "os": {"dataflow": "os"},
    "dw-vector": {"depthwise": "vector"},
}
#: The zoo without its LLMs (checked in test_zoo, test_coalescing and benchmarks/sim_speed.py).
MODELS = tuple(m for m in zoo.names() if m not in zoo.LLM_MODELS)
VARIANT_CASES = [(p, m, v) for p, models, variants in (
    ("tpu-v1", MODELS, ("scalesim", "energy", "edp")),
    ("gemmini", ("resnet18", "mobilenet_v2", "bert_base_layer"), ("scalesim", "energy", "edp", "tile-outer", "os",
                                                                   "dw-vector")),
) for m in models for v in variants if (p, m) not in EXPENSIVE]
#: N:M cases: (preset, model, pattern, allocator)
NM_CASES = [("sparse-nm", "resnet18", "2:4", "none"), ("sparse-nm", "resnet18", "2:4", "greedy"),
            ("sparse-nm", "bert_base_layer", "1:4", "none"), ("sparse-nm", "bert_base_layer", "1:4", "ilp")]


def _plan(graph: workloads.Graph, arch, **choices: str) -> mapper.Plan:  # noqa: ANN001
    """The plan of one case (the fixture was made with ``accel run``'s path for ``none``, ``map_graph``
    for the others, before the two were one)."""
    return mapper.map_graph(graph, arch, mapper.MapOptions(**choices))


def figures(graph: workloads.Graph, arch, **choices: str) -> dict[str, object]:  # noqa: ANN001
    """Total cycles, DRAM bytes, energy and command count of ``graph`` on ``arch`` (or the error)."""
    try:
        plan = _plan(graph, arch, **choices)
    except MappingError as exc:
        return {"error": str(exc)}
    result = simulate(plan)
    return {"total_cycles": result.total_cycles, "dram_bytes": result.dram_bytes,
            "energy_pj": result.energy.total_pj, "commands": len(plan.commands)}


def cases() -> dict[str, tuple[str, str, str | None, dict[str, str]]]:
    """Every case: key -> (preset, model, N:M pattern, choices)."""
    out: dict[str, tuple[str, str, str | None, dict[str, str]]] = {}
    for preset in PRESETS:
        for model in MODELS:
            if (preset, model) not in EXPENSIVE:
                for allocator in ALLOCATORS:
                    out[f"{preset}/{model}/{allocator}"] = (preset, model, None, {"allocator": allocator})
    for preset, model, variant in VARIANT_CASES:
        out[f"{preset}/{model}/{variant}"] = (preset, model, None, VARIANTS[variant])
    for preset, model, pattern, allocator in NM_CASES:
        out[f"{preset}/{model}/{pattern}/{allocator}"] = (preset, model, pattern, {"allocator": allocator})
    return out


def _groups() -> dict[tuple[str, str, str | None], list[str]]:
    """Case keys grouped by (preset, model, pattern), so each graph is built once per test."""
    groups: dict[tuple[str, str, str | None], list[str]] = {}
    for key, (preset, model, pattern, _) in cases().items():
        groups.setdefault((preset, model, pattern), []).append(key)
    return groups


def measure(group: tuple[str, str, str | None]) -> dict[str, dict[str, object]]:
    preset, model, pattern = group
    arch = config.load(preset)
    graph = zoo.build(model)
    if pattern is not None:
        graph = workloads.sparsify(graph, pattern)
    return {key: figures(graph, arch, **cases()[key][3]) for key in _groups()[group]}


GROUPS = list(_groups())


@pytest.mark.parametrize("group", GROUPS, ids=["-".join(filter(None, g)) for g in GROUPS])
def test_golden_figures(group):
    golden = json.loads(FIXTURE.read_text())
    for key, ours in measure(group).items():
        assert key in golden, f"{key}: no golden figures (regenerate the fixture, see the module docstring)"
        expected = golden[key]
        if "error" in expected or "error" in ours:
            assert ours == expected, key
            continue
        assert ours["total_cycles"] == expected["total_cycles"], key
        assert ours["dram_bytes"] == expected["dram_bytes"], key
        assert ours["commands"] == expected["commands"], key
        assert ours["energy_pj"] == pytest.approx(expected["energy_pj"], rel=1e-9), key


def test_the_fixture_covers_every_case():
    assert set(json.loads(FIXTURE.read_text())) == set(cases())


def _update() -> None:
    golden = {}
    for group in GROUPS:
        golden.update(measure(group))
        print("measured", *filter(None, group), file=sys.stderr)
    FIXTURE.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE} ({len(golden)} cases)", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Regenerate the golden figures (tests/fixtures/golden.json).")
    parser.add_argument("--update", action="store_true", help="measure every case and rewrite the fixture")
    if parser.parse_args().update:
        _update()
    else:
        parser.print_help()
