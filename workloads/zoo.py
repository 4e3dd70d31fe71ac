"""A model zoo built in code (no downloads): canonical CNNs and transformer layers as :class:`Graph`.

Every model follows its reference architecture exactly, so its MAC total (conv + linear + matmul)
equals the published figure:

=================  ======================================================================  ===============
name               architecture                                                            MACs (batch 1)
=================  ======================================================================  ===============
``alexnet``        torchvision ``alexnet`` (the one-tower variant), 224x224                   714,188,480
``vgg16``          torchvision ``vgg16`` (configuration D, no batch norm), 224x224         15,470,264,320
``resnet18``       torchvision ``resnet18``, 224x224                                        1,814,073,344
``resnet50``       torchvision ``resnet50`` (v1.5: stride in the 3x3 conv), 224x224         4,089,184,256
``mobilenet_v1``   MobileNet 1.0-224 (Howard et al. 2017, Table 1)                            568,740,352
``mobilenet_v2``   torchvision ``mobilenet_v2`` 1.0 (Sandler et al. 2018, Table 2)            300,774,272
``bert_base_layer``  one BERT-base encoder layer, sequence 128                                931,135,488
``vit_s16_block``  one ViT-S/16 encoder block: 197 tokens, dim 384, 6 heads, MLP 1536         378,391,296
``gpt2_prefill``   GPT-2 small, 12 layers + tied LM head, prefill of 1024 tokens           145,824,153,600
``gpt2_decode``    GPT-2 small, one decode step, KV cache of 1023 tokens (attends 1024)         142,406,400
=================  ======================================================================  ===============

LLM decoders (see the block at the end of this module): ``llama2_7b_prefill`` / ``llama2_7b_decode``
(the whole 32-layer Llama-2-7B, prefill of 2,048 tokens / one decode step with a 2,048-token KV
cache), ``llama2_7b_layer_prefill`` / ``llama2_7b_layer_decode`` (one of its decoder layers), and
``llama3_8b_layer_prefill`` / ``llama3_8b_layer_decode`` (one Llama-3-8B decoder layer: grouped-query
attention with 8 K/V heads for 32 query heads).

Conventions: inference graphs (no dropout; batch norm kept as a NORM layer after each conv, as in the
framework graph); CNN inputs are ``batch x 3 x 224 x 224``; transformer inputs are the embedded
tokens ``batch x sequence x hidden`` (GPT-2 starts from token ids and models the embedding gather
as a pass-through that reads the tied ``wte`` table). Attention uses separate Q, K and V projections
(a fused QKV projection does the same MACs) and an explicit ``1/sqrt(d_head)`` scaling; attention
masks are not modelled. torchvision's ``AdaptiveAvgPool2d`` before the AlexNet/VGG classifiers is the
identity at 224x224 and is omitted. All tensors are ``int8`` by default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from accel.errors import WorkloadError
from workloads.builder import GraphBuilder
from workloads.graph import Graph

__all__ = ["names", "benchmark_names", "build", "GPT2_PREFILL_SEQUENCE", "GPT2_DECODE_CACHE", "BERT_SEQUENCE",
           "LLM_PREFILL_SEQUENCE", "LLM_DECODE_CACHE", "LLM_MODELS", "LlamaShape", "LLAMA2_7B", "LLAMA3_8B"]

#: Sequence length of ``bert_base_layer``.
BERT_SEQUENCE = 128
#: Tokens processed by ``gpt2_prefill`` (GPT-2's full context window, n_ctx).
GPT2_PREFILL_SEQUENCE = 1024
#: Tokens already in the KV cache for ``gpt2_decode``; the new token attends to this many plus itself.
GPT2_DECODE_CACHE = 1023


# -- CNN helpers ----------------------------------------------------------------------------------

def _conv_bn(b: GraphBuilder, x: str, oc: int, k: int, stride: int, name: str, *, groups: int = 1,
             act: str | None = "relu") -> str:
    """conv (no bias) -> batch norm -> activation, as torchvision's ResNet/MobileNet blocks."""
    y = b.conv(x, oc, k, stride, (k - 1) // 2, groups=groups, bias=False, name=name)
    y = b.norm(y, "batch", f"{name}.bn")
    if act is not None:
        y = b.activation(y, act, f"{name}.{act}")
    return y


def _alexnet(batch: int) -> Graph:
    b = GraphBuilder("alexnet")
    x = b.input("input", (batch, 3, 224, 224))
    for i, (oc, k, s, p, pool) in enumerate(
        [(64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False), (256, 3, 1, 1, False),
         (256, 3, 1, 1, True)], start=1,
    ):
        x = b.conv(x, oc, k, s, p, name=f"conv{i}")
        x = b.activation(x, "relu", f"conv{i}.relu")
        if pool:
            x = b.pool(x, "max", 3, 2, name=f"pool{i}")
    x = b.flatten(x, 1, "flatten")
    for i, n in enumerate((4096, 4096), start=6):
        x = b.activation(b.linear(x, n, name=f"fc{i}"), "relu", f"fc{i}.relu")
    b.linear(x, 1000, name="fc8")
    return b.build()


def _vgg16(batch: int) -> Graph:
    b = GraphBuilder("vgg16")
    x = b.input("input", (batch, 3, 224, 224))
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    stage, idx = 1, 1
    for v in cfg:
        if v == "M":
            x = b.pool(x, "max", 2, 2, name=f"pool{stage}")
            stage, idx = stage + 1, 1
            continue
        x = b.conv(x, int(v), 3, 1, 1, name=f"conv{stage}_{idx}")
        x = b.activation(x, "relu", f"conv{stage}_{idx}.relu")
        idx += 1
    x = b.flatten(x, 1, "flatten")
    for i, n in enumerate((4096, 4096), start=6):
        x = b.activation(b.linear(x, n, name=f"fc{i}"), "relu", f"fc{i}.relu")
    b.linear(x, 1000, name="fc8")
    return b.build()


def _resnet(name: str, blocks: tuple[int, ...], bottleneck: bool, batch: int) -> Graph:
    b = GraphBuilder(name)
    x = b.input("input", (batch, 3, 224, 224))
    x = _conv_bn(b, x, 64, 7, 2, "conv1")
    x = b.pool(x, "max", 3, 2, 1, name="maxpool")
    in_ch = 64
    expansion = 4 if bottleneck else 1
    for stage, count in enumerate(blocks, start=1):
        width = 64 * 2 ** (stage - 1)
        for i in range(count):
            stride = 2 if stage > 1 and i == 0 else 1
            p = f"layer{stage}.{i}"
            if bottleneck:  # torchvision v1.5: the stride sits on the 3x3 conv
                y = _conv_bn(b, x, width, 1, 1, f"{p}.conv1")
                y = _conv_bn(b, y, width, 3, stride, f"{p}.conv2")
                y = _conv_bn(b, y, width * expansion, 1, 1, f"{p}.conv3", act=None)
            else:
                y = _conv_bn(b, x, width, 3, stride, f"{p}.conv1")
                y = _conv_bn(b, y, width, 3, 1, f"{p}.conv2", act=None)
            shortcut = x
            if stride != 1 or in_ch != width * expansion:
                shortcut = _conv_bn(b, x, width * expansion, 1, stride, f"{p}.downsample", act=None)
            x = b.activation(b.add(y, shortcut, f"{p}.add"), "relu", f"{p}.relu")
            in_ch = width * expansion
    x = b.global_pool(x, "avg", "avgpool")
    x = b.flatten(x, 1, "flatten")
    b.linear(x, 1000, name="fc")
    return b.build()


def _mobilenet_v1(batch: int) -> Graph:
    b = GraphBuilder("mobilenet_v1")
    x = b.input("input", (batch, 3, 224, 224))
    x = _conv_bn(b, x, 32, 3, 2, "conv0")
    ch = 32
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1)]
    for i, (oc, stride) in enumerate(plan, start=1):
        x = _conv_bn(b, x, ch, 3, stride, f"conv{i}.dw", groups=ch)
        x = _conv_bn(b, x, oc, 1, 1, f"conv{i}.pw")
        ch = oc
    x = b.global_pool(x, "avg", "avgpool")
    x = b.flatten(x, 1, "flatten")
    b.linear(x, 1000, name="fc")
    return b.build()


def _mobilenet_v2(batch: int) -> Graph:
    b = GraphBuilder("mobilenet_v2")
    x = b.input("input", (batch, 3, 224, 224))
    x = _conv_bn(b, x, 32, 3, 2, "features.0", act="relu6")
    ch, idx = 32, 1
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{idx}"
            hidden = ch * t
            y = x
            if t != 1:
                y = _conv_bn(b, y, hidden, 1, 1, f"{p}.expand", act="relu6")
            y = _conv_bn(b, y, hidden, 3, stride, f"{p}.dw", groups=hidden, act="relu6")
            y = _conv_bn(b, y, c, 1, 1, f"{p}.project", act=None)
            if stride == 1 and ch == c:
                y = b.add(y, x, f"{p}.add")
            x, ch, idx = y, c, idx + 1
    x = _conv_bn(b, x, 1280, 1, 1, f"features.{idx}", act="relu6")
    x = b.global_pool(x, "avg", "avgpool")
    x = b.flatten(x, 1, "flatten")
    b.linear(x, 1000, name="classifier")
    return b.build()


# -- transformer helpers --------------------------------------------------------------------------

def _split_heads(b: GraphBuilder, x: str, heads: int, name: str) -> str:
    """``B x S x (H*D)`` -> ``B x H x S x D``."""
    bsz, seq, dim = b.shape(x)
    x = b.reshape(x, (bsz, seq, heads, dim // heads), f"{name}.split")
    return b.transpose(x, (0, 2, 1, 3), f"{name}.heads")


def _attention(b: GraphBuilder, x: str, heads: int, p: str, *,
               past: tuple[str, str] | None = None) -> str:
    """Multi-head self-attention on ``B x S x D``; ``past`` = (K, V) caches ``B x H x T x d``."""
    bsz, seq, dim = b.shape(x)
    q = _split_heads(b, b.linear(x, dim, name=f"{p}.q"), heads, f"{p}.q")
    k = _split_heads(b, b.linear(x, dim, name=f"{p}.k"), heads, f"{p}.k")
    v = _split_heads(b, b.linear(x, dim, name=f"{p}.v"), heads, f"{p}.v")
    if past is not None:
        k = b.concat([past[0], k], 2, f"{p}.k_cache")
        v = b.concat([past[1], v], 2, f"{p}.v_cache")
    kt = b.transpose(k, (0, 1, 3, 2), f"{p}.k_t")
    scores = b.matmul(q, kt, f"{p}.scores")
    scale = b.constant(f"{p}.scale", (1,))
    scores = b.mul(scores, scale, f"{p}.scale_mul")
    probs = b.softmax(scores, -1, f"{p}.softmax")
    ctx = b.matmul(probs, v, f"{p}.context")
    ctx = b.transpose(ctx, (0, 2, 1, 3), f"{p}.merge")
    ctx = b.reshape(ctx, (bsz, seq, dim), f"{p}.merge_heads")
    return b.linear(ctx, dim, name=f"{p}.out")


def _mlp(b: GraphBuilder, x: str, hidden: int, p: str) -> str:
    dim = b.shape(x)[-1]
    h = b.activation(b.linear(x, hidden, name=f"{p}.fc1"), "gelu", f"{p}.gelu")
    return b.linear(h, dim, name=f"{p}.fc2")


def _bert_base_layer(batch: int) -> Graph:
    """Post-LN encoder layer: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""
    b = GraphBuilder("bert_base_layer")
    x = b.input("hidden", (batch, BERT_SEQUENCE, 768))
    a = _attention(b, x, 12, "attention")
    x = b.norm(b.add(a, x, "attention.add"), "layer", "attention.ln")
    f = _mlp(b, x, 3072, "ffn")
    b.norm(b.add(f, x, "ffn.add"), "layer", "ffn.ln")
    return b.build()


def _pre_ln_block(b: GraphBuilder, x: str, heads: int, hidden: int, p: str,
                  past: tuple[str, str] | None = None) -> str:
    """Pre-LN block (ViT, GPT-2): x = x + Attn(LN(x)); x = x + MLP(LN(x))."""
    a = _attention(b, b.norm(x, "layer", f"{p}.ln1"), heads, f"{p}.attn", past=past)
    x = b.add(x, a, f"{p}.attn.add")
    m = _mlp(b, b.norm(x, "layer", f"{p}.ln2"), hidden, f"{p}.mlp")
    return b.add(x, m, f"{p}.mlp.add")


def _vit_s16_block(batch: int) -> Graph:
    b = GraphBuilder("vit_s16_block")
    x = b.input("tokens", (batch, 197, 384))  # 14 x 14 patches of 16 x 16 + the class token
    _pre_ln_block(b, x, 6, 1536, "block")
    return b.build()


_GPT2_DIM, _GPT2_HEADS, _GPT2_LAYERS, _GPT2_VOCAB, _GPT2_CTX = 768, 12, 12, 50257, 1024


def _gpt2(batch: int, decode: bool) -> Graph:
    b = GraphBuilder("gpt2_decode" if decode else "gpt2_prefill")
    seq = 1 if decode else GPT2_PREFILL_SEQUENCE
    d, heads = _GPT2_DIM, _GPT2_HEADS
    ids = b.input("input_ids", (batch, seq), dtype="int32")
    wte = b.constant("wte", (_GPT2_VOCAB, d))
    wpe = b.constant("wpe", (seq, d))  # the rows of the position table this step reads
    x = b.passthrough([ids, wte], "Gather", "embed", shape=(batch, seq, d))
    x = b.add(x, wpe, "embed.pos")
    for i in range(_GPT2_LAYERS):
        past = None
        if decode:
            cache = (batch, heads, GPT2_DECODE_CACHE, d // heads)
            past = (b.input(f"h{i}.past_k", cache), b.input(f"h{i}.past_v", cache))
        x = _pre_ln_block(b, x, heads, 4 * d, f"h{i}", past)
    x = b.norm(x, "layer", "ln_f")
    b.linear(x, _GPT2_VOCAB, bias=False, name="lm_head", weight=wte)  # tied to the token embedding
    return b.build()


_MODELS: dict[str, Callable[[int], Graph]] = {
    "alexnet": _alexnet,
    "vgg16": _vgg16,
    "resnet18": lambda n: _resnet("resnet18", (2, 2, 2, 2), False, n),
    "resnet50": lambda n: _resnet("resnet50", (3, 4, 6, 3), True, n),
    "mobilenet_v1": _mobilenet_v1,
    "mobilenet_v2": _mobilenet_v2,
    "bert_base_layer": _bert_base_layer,
    "vit_s16_block": _vit_s16_block,
    "gpt2_prefill": lambda n: _gpt2(n, decode=False),
    "gpt2_decode": lambda n: _gpt2(n, decode=True),
}


def names() -> tuple[str, ...]:
    """The zoo's model names, in a stable order."""
    return tuple(_MODELS)


def build(name: str, *, batch: int = 1) -> Graph:
    """Build zoo model ``name`` for ``batch`` inputs; unknown names raise :class:`WorkloadError`."""
    if name in _benchmark_models():
        return _build_checked(name, batch, _benchmark_models()[name])
    if name not in _MODELS:
        raise WorkloadError(f"Unknown zoo model {name!r}; expected one of: {', '.join(_MODELS)}")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise WorkloadError(f"Zoo model {name!r}: batch must be a positive integer, not {batch!r}")
    return _MODELS[name](batch)


# -- COSMA's benchmark models and the NAS-cell network (workloads.zoo_cosma): built by name, but kept
# -- out of names() so the suites that map every zoo model stay fast ---------------------------------

def benchmark_names() -> tuple[str, ...]:
    """The models of COSMA's benchmark that :func:`build` also knows (:mod:`workloads.zoo_cosma`)."""
    return tuple(_benchmark_models())


def _benchmark_models() -> dict[str, Callable[[int], Graph]]:
    from workloads.zoo_cosma import MODELS

    return MODELS


def _build_checked(name: str, batch: int, make: Callable[[int], Graph]) -> Graph:
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise WorkloadError(f"Zoo model {name!r}: batch must be a positive integer, not {batch!r}")
    return make(batch)


# -- LLM decoders: Llama-2-7B (MHA) and Llama-3-8B (GQA) --------------------------------------------
#
# Shapes from the model cards (Hugging Face config.json of meta-llama/Llama-2-7b-hf and
# meta-llama/Meta-Llama-3-8B): hidden 4096, 32 layers, 32 query heads of 128; Llama-2-7B has 32 K/V
# heads (multi-head attention), FFN 11008, vocabulary 32000; Llama-3-8B has 8 K/V heads (grouped-query
# attention, 4 query heads per K/V head), FFN 14336, vocabulary 128256. A decoder layer is pre-norm:
# x = x + Attn(RMSNorm(x)); x = x + SwiGLU(RMSNorm(x)) with SwiGLU(h) = W_down(silu(W_gate h) * W_up h);
# no biases; rotary position embeddings are element-wise products with per-position cos/sin tables
# (graph inputs, ``B x 1 x S x d``: each sequence's positions, computed per step, not weights).
# Grouped-query attention runs each K/V head once for its group of query heads: the group's queries
# are stacked as rows (``B x KV x (G*S) x d``), which is how GQA kernels share K and V, with the MACs
# of ``H`` heads. The LM head is untied and computes logits for every position; causal masks are not
# modelled (as for GPT-2). Prefill runs LLM_PREFILL_SEQUENCE tokens; decode runs one new token
# against a cache of LLM_DECODE_CACHE past tokens (it attends to LLM_DECODE_CACHE + 1 positions).

#: Tokens processed by the LLM prefill models.
LLM_PREFILL_SEQUENCE = 2048
#: Tokens in the KV cache of the LLM decode models (the new token attends to these and itself).
LLM_DECODE_CACHE = 2048


@dataclass(frozen=True)
class LlamaShape:
    """The architecture numbers of a Llama-family decoder."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


LLAMA2_7B = LlamaShape("llama2_7b", hidden=4096, layers=32, heads=32, kv_heads=32, ffn=11008, vocab=32000)
LLAMA3_8B = LlamaShape("llama3_8b", hidden=4096, layers=32, heads=32, kv_heads=8, ffn=14336, vocab=128256)


def _rms_norm(b: GraphBuilder, x: str, name: str) -> str:
    weight = b.constant(f"{name}.weight", (b.shape(x)[-1],))  # RMSNorm has a scale and no shift
    return b.norm(x, "rms", name, params=[weight], source_op="RMSNormalization")


def _llama_attention(b: GraphBuilder, x: str, shape: LlamaShape, p: str, past: tuple[str, str] | None) -> str:
    bsz, seq, dim = b.shape(x)
    heads, kv, d = shape.heads, shape.kv_heads, shape.head_dim
    group = heads // kv
    # per sequence of the batch (its own positions), shared by the heads
    cos, sin = b.input(f"{p}.rope_cos", (bsz, 1, seq, d)), b.input(f"{p}.rope_sin", (bsz, 1, seq, d))
    q = b.linear(x, heads * d, bias=False, name=f"{p}.q")
    k = b.linear(x, kv * d, bias=False, name=f"{p}.k")
    v = b.linear(x, kv * d, bias=False, name=f"{p}.v")
    q = _split_heads(b, q, heads, f"{p}.q")
    k = _split_heads(b, k, kv, f"{p}.k")
    v = _split_heads(b, v, kv, f"{p}.v")
    q = b.elementwise("rope", [q, cos, sin], f"{p}.q_rope", source_op="RotaryEmbedding")
    k = b.elementwise("rope", [k, cos, sin], f"{p}.k_rope", source_op="RotaryEmbedding")
    if past is not None:
        k = b.concat([past[0], k], 2, f"{p}.k_cache")
        v = b.concat([past[1], v], 2, f"{p}.v_cache")
    if group > 1:  # the query heads of a K/V head, stacked as rows
        q = b.reshape(q, (bsz, kv, group * seq, d), f"{p}.q_groups")
    kt = b.transpose(k, (0, 1, 3, 2), f"{p}.k_t")
    scores = b.matmul(q, kt, f"{p}.scores")
    scale = b.constant(f"{p}.scale", (1,))
    scores = b.mul(scores, scale, f"{p}.scale_mul")
    probs = b.softmax(scores, -1, f"{p}.softmax")
    ctx = b.matmul(probs, v, f"{p}.context")
    if group > 1:
        ctx = b.reshape(ctx, (bsz, heads, seq, d), f"{p}.ungroup")
    ctx = b.transpose(ctx, (0, 2, 1, 3), f"{p}.merge")
    ctx = b.reshape(ctx, (bsz, seq, heads * d), f"{p}.merge_heads")
    return b.linear(ctx, dim, bias=False, name=f"{p}.o")


def _llama_layer(b: GraphBuilder, x: str, shape: LlamaShape, p: str, past: tuple[str, str] | None) -> str:
    a = _llama_attention(b, _rms_norm(b, x, f"{p}.attn_norm"), shape, f"{p}.attn", past)
    x = b.add(x, a, f"{p}.attn.add")
    h = _rms_norm(b, x, f"{p}.mlp_norm")
    gate = b.activation(b.linear(h, shape.ffn, bias=False, name=f"{p}.mlp.gate"), "silu", f"{p}.mlp.silu")
    up = b.linear(h, shape.ffn, bias=False, name=f"{p}.mlp.up")
    down = b.linear(b.mul(gate, up, f"{p}.mlp.mul"), shape.hidden, bias=False, name=f"{p}.mlp.down")
    return b.add(x, down, f"{p}.mlp.add")


def _llama(shape: LlamaShape, batch: int, *, decode: bool, whole: bool) -> Graph:
    """``whole``: embedding, every layer, the final norm and the LM head; else one decoder layer."""
    b = GraphBuilder(f"{shape.name}{'' if whole else '_layer'}_{'decode' if decode else 'prefill'}")
    seq = 1 if decode else LLM_PREFILL_SEQUENCE
    if whole:
        ids = b.input("input_ids", (batch, seq), dtype="int32")
        table = b.constant("embed_tokens", (shape.vocab, shape.hidden))
        x = b.passthrough([ids, table], "Gather", "embed", shape=(batch, seq, shape.hidden))
    else:
        x = b.input("hidden", (batch, seq, shape.hidden))
    for i in range(shape.layers if whole else 1):
        past = None
        if decode:
            cache = (batch, shape.kv_heads, LLM_DECODE_CACHE, shape.head_dim)
            past = (b.input(f"layers.{i}.past_k", cache), b.input(f"layers.{i}.past_v", cache))
        x = _llama_layer(b, x, shape, f"layers.{i}", past)
    if whole:
        x = _rms_norm(b, x, "norm")
        b.linear(x, shape.vocab, bias=False, name="lm_head")
    return b.build()


_LLM_MODELS: dict[str, Callable[[int], Graph]] = {
    "llama2_7b_layer_prefill": lambda n: _llama(LLAMA2_7B, n, decode=False, whole=False),
    "llama2_7b_layer_decode": lambda n: _llama(LLAMA2_7B, n, decode=True, whole=False),
    "llama2_7b_prefill": lambda n: _llama(LLAMA2_7B, n, decode=False, whole=True),
    "llama2_7b_decode": lambda n: _llama(LLAMA2_7B, n, decode=True, whole=True),
    "llama3_8b_layer_prefill": lambda n: _llama(LLAMA3_8B, n, decode=False, whole=False),
    "llama3_8b_layer_decode": lambda n: _llama(LLAMA3_8B, n, decode=True, whole=False),
}
_MODELS.update(_LLM_MODELS)
#: The LLM models' names: whole-zoo sweeps that map on small arrays skip them (a Llama-2-7B layer is
#: ~470,000 commands on a 16x16 Gemmini, the whole model ~15 million).
LLM_MODELS: tuple[str, ...] = tuple(_LLM_MODELS)
