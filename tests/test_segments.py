"""Segments of an array layer copied from an earlier one (``mapper.emit._Emitter._emit_segments``)
give exactly the commands the layer's direct emission writes.

Each check emits one program twice from the same decisions: ``emit_program(..., replay=False)``
(every step emitted) and ``emit_program(...)`` with the layer templates off, so that every array
layer goes through its segments, and compares the whole programs. Cases: an ``lm_head``-shaped
GEMM (a few rows of tiles, thousands of columns, a last column narrower than the rest), where the
copies must have fired for most of the layer; and every zoo model on the Gemmini-like preset but
the largest, and the Llama layers on the TPU-like one (GPT-2 prefill, 40 s without its templates,
is marked slow; ``tests/test_replay.py`` emits it with templates and segments in the fast suite).
"""

from __future__ import annotations

import pytest

from accel import config
from mapper import MapOptions, emit
from mapper.decide import decide_layers
from mapper.programs import prepared
from workloads import zoo
from workloads.builder import GraphBuilder

ON_TPU = ("llama2_7b_layer_prefill", "llama2_7b_layer_decode", "llama3_8b_layer_prefill", "llama3_8b_layer_decode")
LARGEST = ("llama2_7b_prefill", "llama2_7b_decode")  # 32 copies of the layers ON_TPU has


def copied_segments(graph, arch, monkeypatch) -> tuple[int, int]:
    """Emit ``graph``'s program with segments (no layer templates) and directly, assert they are
    equal; ``(segments copied, steps emitted)``."""
    graph = prepared(graph, arch)
    decisions = decide_layers(graph, arch, MapOptions())
    direct = emit.emit_program(graph, arch, decisions, replay=False)
    copies, steps = [], []
    copy, step = emit._Emitter._copy_segment, emit._Emitter._emit_step

    def counted_copy(self, *args):
        done = copy(self, *args)
        copies.append(done)
        return done

    def counted_step(self, *args):
        steps.append(1)
        return step(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(emit._Emitter, "plan_replays", lambda self, decisions: None)
        patch.setattr(emit._Emitter, "_copy_segment", counted_copy)
        patch.setattr(emit._Emitter, "_emit_step", counted_step)
        segmented = emit.emit_program(graph, arch, decisions)
    assert len(segmented[0]) == len(direct[0])
    for a, b in zip(direct[0], segmented[0], strict=True):
        assert a == b, (a, b)
    assert segmented[1] == direct[1]
    return sum(copies), len(steps)


def test_lm_head_shaped_layer_is_copied_segment_by_segment(monkeypatch):
    arch = config.load("gemmini")
    b = GraphBuilder("head")
    x = b.input("x", (1, 1024, 768))
    b.linear(x, 8017, bias=False, name="head")
    copied, stepped = copied_segments(b.build(), arch, monkeypatch)
    assert copied > 0
    assert stepped < 0.25 * (copied * emit.SEGMENT_TILES + stepped)


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m == "gpt2_prefill" else m
                                   for m in zoo.names() if m not in LARGEST])
def test_every_zoo_model_segments_equal_direct(model, monkeypatch):
    arch = config.load("tpu-v1" if model in ON_TPU else "gemmini")
    copied_segments(zoo.build(model), arch, monkeypatch)
