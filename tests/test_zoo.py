"""The model zoo reproduces published MAC counts; ``workloads.load`` and ``layer_table``."""

from __future__ import annotations

import json

import pytest

import workloads
from accel.errors import WorkloadError
from workloads import zoo
from workloads.graph import OpKind

# Exact MAC totals (conv + linear + matmul) at batch 1, and the published figure each must round to.
#   torchvision figures: the "GFLOPS" column of https://pytorch.org/vision/stable/models.html and each
#   weight's model card (torchvision counts multiply-accumulates there, as fvcore does).
#   MobileNets: the papers' "Mult-Adds" column.
PUBLISHED = {
    # torchvision AlexNet_Weights.IMAGENET1K_V1: 0.71 GFLOPS
    "alexnet": (714_188_480, 0.71e9, 0.01e9),
    # torchvision VGG16_Weights.IMAGENET1K_V1: 15.47 GFLOPS
    "vgg16": (15_470_264_320, 15.47e9, 0.01e9),
    # torchvision ResNet18_Weights.IMAGENET1K_V1: 1.81 GFLOPS
    "resnet18": (1_814_073_344, 1.81e9, 0.01e9),
    # torchvision ResNet50_Weights.IMAGENET1K_V1: 4.09 GFLOPS
    "resnet50": (4_089_184_256, 4.09e9, 0.01e9),
    # Howard et al. 2017, "MobileNets", Table 8: 1.0 MobileNet-224, 569 million Mult-Adds
    "mobilenet_v1": (568_740_352, 569e6, 1e6),
    # Sandler et al. 2018, "MobileNetV2", Table 4: 300M MAdds; torchvision
    # MobileNet_V2_Weights.IMAGENET1K_V1: 0.30 GFLOPS (both rounded: 300.77M)
    "mobilenet_v2": (300_774_272, 0.30e9, 0.01e9),
}

# Parameter counts published by torchvision (model cards, "num_params"): our constants are the
# weights, biases and batch-norm scale/shift, so at int8 weight_bytes must equal them exactly.
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_cnn_macs_match_published_figures(name: str) -> None:
    exact, published, tolerance = PUBLISHED[name]
    graph = zoo.build(name)
    assert graph.total_macs == exact
    assert abs(graph.total_macs - published) <= tolerance / 2, f"{name}: {graph.total_macs:,}"


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_cnn_weights_match_torchvision_parameter_counts(name: str) -> None:
    assert zoo.build(name).weight_bytes == TORCHVISION_PARAMS[name]


def _encoder_macs(seq: int, attended: int, d_model: int, d_ff: int) -> int:
    """Independent count for one transformer layer from its architecture.

    Q, K, V and output projections: 4 * seq * d^2. Scores Q K^T and context P V: each
    seq * attended * d (summed over heads, d = heads * d_head). FFN: 2 * seq * d * d_ff.
    """
    return 4 * seq * d_model**2 + 2 * seq * attended * d_model + 2 * seq * d_model * d_ff


def test_bert_base_layer_macs() -> None:
    # BERT-base (Devlin et al. 2019): L=12, H=768, A=12, FFN 4H = 3072; one layer at sequence 128.
    #   QKV 3*128*768*768 = 226,492,416; scores and context 2 * 12*128*64*128 = 25,165,824;
    #   output 75,497,472; FFN 2*128*768*3072 = 603,979,776; total 931,135,488.
    graph = zoo.build("bert_base_layer")
    assert graph.total_macs == 931_135_488 == _encoder_macs(128, 128, 768, 3072)
    assert sum(lay.op is OpKind.MATMUL for lay in graph.layers) == 2
    assert [lay.gemm.batch for lay in graph.layers if lay.op is OpKind.MATMUL] == [12, 12]
    assert sum(lay.op is OpKind.SOFTMAX for lay in graph.layers) == 1
    assert sum(lay.op is OpKind.NORM for lay in graph.layers) == 2
    assert any(lay.attrs.get("fn") == "gelu" for lay in graph.layers)


def test_vit_s16_block_macs() -> None:
    # ViT-S/16 (Touvron et al. 2021, DeiT-S): 197 tokens (14*14 patches + class), dim 384, 6 heads
    # of 64, MLP 1536. QKV 87,146,496 + attention 2*6*197*64*197 = 29,805,312 + proj 29,048,832
    # + MLP 232,390,656 = 378,391,296.
    graph = zoo.build("vit_s16_block")
    assert graph.total_macs == 378_391_296 == _encoder_macs(197, 197, 384, 1536)
    scores = graph.layer("block.attn.scores").gemm
    assert (scores.m, scores.k, scores.n, scores.batch) == (197, 64, 197, 6)


def test_gpt2_prefill_macs() -> None:
    # GPT-2 small (Radford et al. 2019; HF config n_layer=12, n_embd=768, n_head=12, n_ctx=1024,
    # vocab 50257). Prefill of 1024 tokens: 12 layers of (12*S*d^2 + 2*S^2*d) plus the tied LM head
    # S*d*V = 39,523,713,024.
    s, d, vocab = zoo.GPT2_PREFILL_SEQUENCE, 768, 50257
    assert s == 1024
    expected = 12 * _encoder_macs(s, s, d, 4 * d) + s * d * vocab
    graph = zoo.build("gpt2_prefill")
    assert graph.total_macs == expected == 145_824_153_600
    # The LM head reuses the token-embedding table (weight tying).
    assert "wte" in graph.layer("lm_head").inputs and "wte" in graph.layer("embed").inputs


def test_gpt2_decode_macs() -> None:
    # One decode step: 1 new token attending to 1023 cached + itself = 1024 positions.
    d, vocab, attended = 768, 50257, zoo.GPT2_DECODE_CACHE + 1
    expected = 12 * _encoder_macs(1, attended, d, 4 * d) + d * vocab
    graph = zoo.build("gpt2_decode")
    assert graph.total_macs == expected == 142_406_400
    caches = [t for t in graph.inputs if t.name.endswith(("past_k", "past_v"))]
    assert len(caches) == 24 and caches[0].shape == (1, 12, 1023, 64)
    scores = graph.layer("h0.attn.scores").gemm
    assert (scores.m, scores.k, scores.n, scores.batch) == (1, 64, 1024, 12)


@pytest.mark.parametrize("name", zoo.names())
def test_batch_scales_macs_and_graph_is_consistent(name: str) -> None:
    one, two = zoo.build(name), zoo.build(name, batch=2)
    assert two.total_macs == 2 * one.total_macs
    assert two.weight_bytes == one.weight_bytes
    assert all(t.shape[0] == 2 for t in two.inputs)
    assert len(one.outputs) >= 1


def test_names_and_unknown_model() -> None:
    assert zoo.names()[:10] == ("alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v1", "mobilenet_v2",
                                "bert_base_layer", "vit_s16_block", "gpt2_prefill", "gpt2_decode")
    assert set(LLMS) <= set(zoo.names())
    with pytest.raises(WorkloadError, match=r"^Unknown zoo model 'resnet19'; expected one of: alexnet, vgg16,"):
        zoo.build("resnet19")
    with pytest.raises(WorkloadError, match=r"^Zoo model 'alexnet': batch must be a positive integer, not 0$"):
        zoo.build("alexnet", batch=0)


def test_load_dispatches_by_spec(shared_data) -> None:
    assert workloads.load("resnet18", batch=2).total_macs == 2 * 1_814_073_344
    assert workloads.load(shared_data / "onnx" / "resnet18.onnx").total_macs == 1_814_073_344
    assert len(workloads.load(str(shared_data / "scalesim" / "alexnet.csv")).layers) == 5
    with pytest.raises(WorkloadError, match=r"^Workload 'model\.pt' is neither a zoo model nor a \.onnx or "
                                            r"\.csv file; zoo models are: alexnet, vgg16, "):
        workloads.load("model.pt")


def test_layer_table_rows() -> None:
    graph = zoo.build("resnet18")
    rows = workloads.layer_table(graph)
    assert len(rows) == len(graph.layers)
    conv1, bn1 = rows[0], rows[1]
    assert conv1 == {
        "name": "conv1", "op": "conv", "source_op": "Conv", "m": 112 * 112, "k": 147, "n": 64, "batch": 1,
        "macs": 118_013_952, "weight_bytes": 64 * 3 * 49, "input_bytes": 3 * 224 * 224,
        "output_bytes": 64 * 112 * 112, "vector_ops": 0,
    }
    assert bn1["m"] == "" and bn1["macs"] == 0 and bn1["vector_ops"] == 64 * 112 * 112
    assert sum(r["macs"] for r in rows) == graph.total_macs
    json.dumps(rows)  # JSON-ready


# COSMA's benchmark models (workloads.zoo_cosma), against published figures:
#   torchvision model cards ("GFLOPS", multiply-accumulates): densenet121 2.83, resnext50_32x4d 4.23,
#   vit_b_16 17.56, fcn_resnet50 152.72 (at 520x520, with its auxiliary head).
#   DARTS (Liu et al. 2019, Table 3): 574M multiply-adds for the ImageNet DARTS_V2 network; ours
#   counts conv + linear MACs of the DARTS code's NetworkImageNet and comes to 530M, 8% fewer, which is
#   what an independent count from the layer shapes gives too (tests/test_zoo_nas.py): the paper does
#   not say how it counted (e.g. whether batch norm or pooling is included).
COSMA_PUBLISHED = {
    "densenet121": (2_834_161_664, 2.83e9, 0.005e9),
    "resnext50": (4_230_479_872, 4.23e9, 0.005e9),
    "vit_b16": (17_563_828_224, 17.56e9, 0.005e9),
    "fcn_resnet50": (152_716_512_000, 152.72e9, 0.005e9),
    "darts_v2": (529_911_552, 574e6, 0.08 * 574e6),
}


@pytest.mark.parametrize("name", sorted(COSMA_PUBLISHED))
def test_cosma_models_match_published_macs(name: str) -> None:
    exact, published, tolerance = COSMA_PUBLISHED[name]
    graph = zoo.build(name)
    assert graph.total_macs == exact
    assert abs(exact - published) <= tolerance
    assert zoo.build(name, batch=2).total_macs == 2 * exact


def test_transformer_base_macs_in_closed_form() -> None:
    from workloads.zoo_cosma import TRANSFORMER_SEQUENCE as s

    d, f, layers, vocab = 512, 2048, 6, 37000
    attention = 4 * s * d * d + 2 * s * s * d  # q, k, v, out projections; scores and context
    ffn = 2 * s * d * f
    expected = layers * (attention + ffn) + layers * (2 * attention + ffn) + s * d * vocab
    assert zoo.build("transformer_base").total_macs == expected
    assert set(zoo.benchmark_names()) >= {"densenet121", "resnext50", "vit_b16", "fcn_resnet50",
                                          "transformer_base", "darts_v2"}


# -- LLM decoders ---------------------------------------------------------------------------------

LLMS = ("llama2_7b_layer_prefill", "llama2_7b_layer_decode", "llama2_7b_prefill", "llama2_7b_decode",
        "llama3_8b_layer_prefill", "llama3_8b_layer_decode")


def _llama_layer_macs(seq: int, attended: int, hidden: int, heads: int, kv_heads: int, ffn: int) -> int:
    """Independent count of one Llama decoder layer from its architecture (d = hidden / heads).

    Q and output projections: seq * hidden * hidden each; K and V: seq * hidden * kv_heads * d each
    (grouped-query attention shrinks them, not the attention itself); scores Q K^T and context P V:
    each heads * seq * attended * d; SwiGLU gate, up and down: 3 * seq * hidden * ffn.
    """
    d = hidden // heads
    return (2 * seq * hidden * hidden + 2 * seq * hidden * kv_heads * d + 2 * heads * seq * attended * d
            + 3 * seq * hidden * ffn)


def test_llama2_7b_layer_macs() -> None:
    # Llama-2-7B (Touvron et al. 2023; HF config: hidden 4096, 32 heads, 32 K/V heads, FFN 11008).
    # Prefill of 2048: projections 4 * 2048*4096^2 = 137,438,953,472; attention 2 * 32*2048*2048*128
    # = 34,359,738,368; SwiGLU 3 * 2048*4096*11008 = 277,025,390,592; total 448,824,082,432.
    assert zoo.LLM_PREFILL_SEQUENCE == 2048 and zoo.LLM_DECODE_CACHE == 2048
    prefill = zoo.build("llama2_7b_layer_prefill")
    assert prefill.total_macs == _llama_layer_macs(2048, 2048, 4096, 32, 32, 11008) == 448_824_082_432
    scores = prefill.layer("layers.0.attn.scores").gemm
    assert (scores.m, scores.k, scores.n, scores.batch) == (2048, 128, 2048, 32)
    decode = zoo.build("llama2_7b_layer_decode")  # one token attending to 2048 cached + itself
    assert decode.total_macs == _llama_layer_macs(1, 2049, 4096, 32, 32, 11008)
    scores = decode.layer("layers.0.attn.scores").gemm
    assert (scores.m, scores.k, scores.n, scores.batch) == (1, 128, 2049, 32)


def test_llama2_7b_whole_model_macs_and_parameters() -> None:
    # 32 layers plus the untied LM head (seq * 4096 * 32000); parameters: 32 * (4 * 4096^2 + 3 * 4096 *
    # 11008 + 2 * 4096) + 2 * 32000 * 4096 + 4096 = 6,738,415,616, the model card's 6.74B (int8: one
    # byte each), plus the one attention scale constant of each layer.
    layer = _llama_layer_macs(2048, 2048, 4096, 32, 32, 11008)
    prefill = zoo.build("llama2_7b_prefill")
    assert prefill.total_macs == 32 * layer + 2048 * 4096 * 32000 == 14_630_806_093_824
    assert prefill.weight_bytes == 6_738_415_616 + 32
    decode = zoo.build("llama2_7b_decode")
    assert decode.total_macs == 32 * _llama_layer_macs(1, 2049, 4096, 32, 32, 11008) + 4096 * 32000
    assert sum(lay.op is OpKind.NORM for lay in decode.layers) == 65
    assert all(lay.attrs.get("kind") == "rms" for lay in decode.layers if lay.op is OpKind.NORM)


def test_llama3_8b_layer_is_grouped_query_attention() -> None:
    # Llama-3-8B (HF config: hidden 4096, 32 heads, 8 K/V heads, FFN 14336): K and V project to 1024.
    prefill = zoo.build("llama3_8b_layer_prefill")
    assert prefill.total_macs == _llama_layer_macs(2048, 2048, 4096, 32, 8, 14336) == 481_036_337_152
    assert prefill.layer("layers.0.attn.k").gemm.n == 8 * 128
    scores = prefill.layer("layers.0.attn.scores").gemm  # 4 query heads per K/V head share it
    assert (scores.m, scores.k, scores.n, scores.batch) == (4 * 2048, 128, 2048, 8)
    decode = zoo.build("llama3_8b_layer_decode")
    assert decode.total_macs == _llama_layer_macs(1, 2049, 4096, 32, 8, 14336)
    caches = [t for t in decode.inputs if t.name.endswith(("past_k", "past_v"))]
    assert [t.shape for t in caches] == [(1, 8, 2048, 128)] * 2
    # per-layer weights: 2 * 4096^2 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096 = 218,112,000 (+ the scale)
    assert decode.weight_bytes == 218_112_000 + 1
