"""Replayed layers (mapper.replay) write exactly the commands a direct emission writes.

Every check emits one program twice from the same decisions, ``emit_program(..., replay=False)``
layer by layer and ``emit_program(...)`` with templates (and the segments an array layer copies
within itself, ``tests/test_segments.py``), and compares the whole programs (every
field of every command, and the packed N:M weight tiles) for equality. Cases: every zoo model on
the Gemmini-like preset but the largest (GPT-2 prefill there too, the benchmark row; the Llama
layers on the TPU-like preset); every dataflow and tile loop order on ResNet-18 and BERT (on the
Eyeriss-like preset; the fold-outer order on the SCALE-Sim fixtures' configs, whose folds make
smaller programs); the shared ONNX graphs on two presets; an N:M graph on the sparse preset. Where
a model repeats its layers the replay must have fired (templates made fewer than the layers they
stood for), so a signature that never matches cannot pass unnoticed. The fast constructors
(mapper.makers) make the dataclasses' own objects. Programs with residents (an
allocation) are emitted directly (``mapper.emit``), so these cases cover every replayed program.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from accel import config
from accel.commands import Block, Buffer, Compute, Load, Move, Store, Vector
from accel.hardware import Dataflow, Sparsity
from accel.scalesim import load_scalesim_config
from mapper import LoopOrder, MapOptions, emit
from mapper.decide import ArrayDecision, decide_layers
from mapper.makers import builder, field_index, maker, rebuilder, relocator, value_maker
from mapper.programs import prepared
from mapper.schedules import ComputeSpec, Operands, Step, Transfer
from workloads import load, sparsify, zoo
from workloads.builder import GraphBuilder

FIXTURES = Path(__file__).parent / "fixtures" / "scalesim"
ON_TPU = ("llama2_7b_layer_prefill", "llama2_7b_layer_decode", "llama3_8b_layer_prefill", "llama3_8b_layer_decode")
WHOLE_LLMS = ("llama2_7b_prefill", "llama2_7b_decode")  # 32 copies of the layers above: benchmarks/


def replayed_layers(graph, arch, options: MapOptions | None = None) -> tuple[int, int]:
    """Emit ``graph``'s program both ways and assert equality; ``(array layers replayed, templates)``."""
    graph = prepared(graph, arch)
    decisions = decide_layers(graph, arch, options or MapOptions())
    direct = emit.emit_program(graph, arch, decisions, replay=False)
    made = []
    original = emit._Emitter._template

    def template(self, decision, names):
        made.append(decision.layer.name)
        return original(self, decision, names)

    emit._Emitter._template = template
    try:
        emitter_replays = emit._Emitter(graph, emit.OnChip.of(arch), None)
        emitter_replays.plan_replays(decisions)
        replayed = emit.emit_program(graph, arch, decisions)
    finally:
        emit._Emitter._template = original
    assert len(replayed[0]) == len(direct[0])
    for a, b in zip(direct[0], replayed[0], strict=True):
        assert a == b, (a, b)
    assert replayed[1] == direct[1]
    return len(emitter_replays.replays), len(made)


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m == "gpt2_prefill" else m
                                   for m in zoo.names() if m not in ON_TPU + WHOLE_LLMS])
def test_zoo_models_on_gemmini(model):
    layers, templates = replayed_layers(zoo.build(model), config.load("gemmini"))
    if model in ("resnet18", "resnet50", "vgg16", "mobilenet_v2", "gpt2_prefill", "gpt2_decode"):
        assert templates < layers


@pytest.mark.parametrize("model", ON_TPU)
def test_llama_layers_on_tpu(model):
    replayed_layers(zoo.build(model), config.load("tpu-v1"))


@pytest.mark.parametrize("dataflow", list(Dataflow))
@pytest.mark.parametrize("order", [o for o in LoopOrder if o is not LoopOrder.FOLD_OUTER])  # that: the configs'
@pytest.mark.parametrize("model", ["resnet18", "bert_base_layer"])
def test_every_dataflow_and_loop_order(model, order, dataflow):
    """On the Eyeriss-like preset, whose array runs all three dataflows."""
    replayed_layers(zoo.build(model), config.load("eyeriss"), MapOptions(dataflow=dataflow, loop_order=order))


@pytest.mark.parametrize("preset", ["gemmini", "eyeriss"])
@pytest.mark.parametrize("graph", ["alexnet.onnx", "mobilenetv2.onnx", "resnet18.onnx"])
def test_shared_onnx_graphs(graph, preset, shared_data):
    replayed_layers(load(str(shared_data / "onnx" / graph)), config.load(preset))


def test_n_of_m_layers_are_emitted_directly_among_replayed_dense_ones():
    graph = sparsify(zoo.build("bert_base_layer"), Sparsity(2, 4))
    arch = config.load("sparse-nm")
    replayed_layers(graph, arch)
    decisions = decide_layers(prepared(graph, arch), arch, MapOptions())
    emitter = emit._Emitter(prepared(graph, arch), emit.OnChip.of(arch), None)
    emitter.plan_replays(decisions)
    sparse = [d for d in decisions if isinstance(d, ArrayDecision) and d.operands.sparsity is not None]
    assert sparse and not any(id(d) in emitter.replays for d in sparse)


@pytest.mark.parametrize("cfg", sorted(FIXTURES.glob("scale_*.cfg")), ids=lambda p: p.stem)
def test_scalesim_configs(cfg, shared_data):
    arch = load_scalesim_config(cfg)
    graph = load(str(shared_data / "scalesim" / "Resnet18.csv"))
    replayed_layers(graph, arch, MapOptions(loop_order=LoopOrder.FOLD_OUTER))


def test_a_tensor_named_like_its_layer_is_a_tensor_in_the_template():
    """GPT-2's layers write tensors with their own names: the template maps both."""
    graph = zoo.build("gpt2_decode")
    assert any(layer.name in layer.outputs for layer in graph.layers)
    layers, templates = replayed_layers(graph, config.load("gemmini"))
    assert templates < layers


def test_fast_constructors_make_the_dataclasses_own_objects():
    block = Block(rows=2, row_bytes=8, row_stride=16)
    cases = [
        Load(id=3, layer="l", deps=(1, 2), tensor="x", size_bytes=16, dram_addr=64, dram=block),
        Store(id=4, layer="l", tensor="y", size_bytes=8, raw=True),
        Move(id=5, layer="l", tensor="y", size_bytes=8, src_addr=4, addr=8, activation="relu"),
        Compute(id=6, layer="l", m=4, k=8, n=4, dataflow=Dataflow.WS, follows=3, input_block=block),
        Vector(id=7, layer="l", op="add", elements=32, second_addr=64),
    ]
    for command in cases:
        kind = type(command)
        given = {f.name: getattr(command, f.name) for f in dataclasses.fields(kind)}
        made = maker(kind)(**given)
        # the class's own instance (not the twin it is filled as), frozen, equal and hashed alike
        assert made == command and type(made) is kind and hash(made) == hash(command) and repr(made) == repr(command)
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.id = 0
        build, at = builder(kind)
        assert build([given[name] for name in at]) == command
        # a rebuilder takes the id, layer, deps and up to two fields apart from the other values
        name, value = next((f, v) for f, v in (("tensor", "z"), ("op", "mul"), ("m", 7)) if f in at)
        values = [given[f] for f in at]
        changed = dataclasses.replace(command, id=9, layer="m", deps=(0,), **{name: value})
        assert rebuilder(kind, at[name])(values, 9, "m", (0,), value, None) == changed
        assert rebuilder(kind)(values, command.id, "l", command.deps, None, None) == command
    with pytest.raises(ValueError):
        rebuilder(Load, 2)
    assert maker(Store)(id=1, layer="l", tensor="t", size_bytes=4) == Store(id=1, layer="l", tensor="t", size_bytes=4)
    with pytest.raises(TypeError):
        maker(Load)(id=1, layer="l", tensor="t")  # size_bytes is required, as the dataclass says
    with pytest.raises(TypeError):
        maker(Load)(id=1, layer="l", tensor="t", size_bytes=4, colour="red")


def test_relocators_move_on_chip_fields_by_a_halfs_base():
    load = Load(id=3, layer="l", deps=(1,), tensor="x", size_bytes=16, addr=32, dram_addr=64)
    at = field_index(Load)
    assert list(at) == [f.name for f in dataclasses.fields(Load)]
    values = [getattr(load, f) for f in at]
    values[at["addr"]] = 32 - 1000  # an offset from the base of half 1
    moved = relocator(Load, at["tensor"], at["dram_addr"], (at["addr"],))
    assert moved(values, 3, "l", (1,), "x", 64, (0, 1000), (1,)) == load
    assert moved(values, 5, "m", (), "y", 128, (0, 2000), (1,)) == dataclasses.replace(
        load, id=5, layer="m", deps=(), tensor="y", dram_addr=128, addr=32 + 1000)
    with pytest.raises(ValueError):
        relocator(Load, at["tensor"], 0, (at["tensor"],))


def test_value_makers_make_the_schedules_own_values():
    transfer = Transfer("x", 16, Buffer.SCRATCHPAD, role="x", origin=(0, 1, 2, 3), extent=(1, 2, 3, 4), stays=True)
    compute = ComputeSpec(m=4, k=8, n=2, batch=1, dataflow=Dataflow.OS, fill=False, acc_offset=3)
    step = Step(compute=compute, loads=(transfer,), new_block=True, reuses=("w",))
    made = [value_maker(Transfer)("x", 16, Buffer.SCRATCHPAD, role="x", origin=(0, 1, 2, 3), extent=(1, 2, 3, 4),
                                  stays=True),
            value_maker(ComputeSpec)(m=4, k=8, n=2, batch=1, dataflow=Dataflow.OS, fill=False, acc_offset=3)]
    made.append(value_maker(Step)(compute=made[1], loads=(made[0],), new_block=True, reuses=("w",)))
    for value, fast in zip((transfer, compute, step), made, strict=True):
        assert type(fast) is type(value) and fast == value and hash(fast) == hash(value)
        assert vars(fast) == vars(value) and dataclasses.replace(fast) == value
    with pytest.raises(dataclasses.FrozenInstanceError):
        made[0].size_bytes = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        value_maker(Operands)  # it has a __post_init__
    with pytest.raises(TypeError):
        value_maker(Load)  # slots: mapper.makers.maker's


def test_an_op_named_like_a_tensor_is_emitted_directly_not_matched_by_position():
    """ReLU layers whose source ops (copied into their Vector commands) are their input tensors' names:
    the signature sees those strings as positions, so the layers match, and the template (which
    would copy the first one's op) is not used."""
    b = GraphBuilder("ops")
    hidden = b.input("x", (8, 64))
    for i in range(4):
        hidden = b.activation(hidden, "relu", name=f"r{i}")
    graph = b.build()
    layers = tuple(dataclasses.replace(layer, source_op=layer.inputs[0]) for layer in graph.layers)
    graph = dataclasses.replace(graph, layers=layers)
    layers, _ = replayed_layers(graph, config.load("gemmini"))
    assert layers == 3  # r1, r2 and r3 share one signature (r0 reads the graph input)
