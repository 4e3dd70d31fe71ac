"""The models of COSMA's benchmark (Li, Gupta, Malik 2023) that the base zoo lacks, and a NAS-cell network.

Registered in :mod:`workloads.zoo` (``zoo.build(name)``); conventions as there (inference graphs, batch
norm kept as a NORM layer after each conv, int8, ``batch x 3 x H x W`` inputs). MAC totals (conv +
linear + matmul, batch 1), checked in ``tests/test_zoo.py``:

======================  ==================================================================  ===============
name                    architecture                                                        MACs
======================  ==================================================================  ===============
``densenet121``         torchvision ``densenet121`` (growth 32, blocks 6/12/24/16), 224x224   2,865,672,192
``resnext50``           torchvision ``resnext50_32x4d``, 224x224                              4,230,201,344
``vit_b16``             torchvision ``vit_b_16``: 12 blocks, dim 768, 12 heads, MLP 3072     17,563,067,904
``fcn_resnet50``        torchvision ``fcn_resnet50`` (dilated ResNet-50, FCN head + aux), 520  see the test
``transformer_base``    Vaswani et al. base: 6 + 6 layers, d 512, 8 heads, FFN 2048, 128 tokens  see the test
``darts_v2``            DARTS (Liu et al. 2019) ``DARTS_V2`` genotype, ImageNet network, C 48,  529,911,552
                        14 cells
``nasnet_a``            NASNet-A (Zoph et al. 2018) cells, the same network                   604,031,616
``amoebanet_a``         AmoebaNet-A (Real et al. 2019) cells, the same network                526,746,624
======================  ==================================================================  ===============

``fcn_resnet50`` upsamples with a pass-through ``Resize`` (bilinear, no MACs); ``transformer_base``'s
decoder attends to the encoder output (cross-attention) and ends in the 37,000-token shared-vocabulary
projection; attention masks are not modelled. The NAS-cell networks follow the DARTS code's
``NetworkImageNet`` (``model.py``, ``operations.py``, genotypes from its ``genotypes.py``; C 48, 14 cells
as its ``train_imagenet.py``): three-conv stem, reduction cells at 1/3 and 2/3 of the depth, separable
convs as two ReLU-depthwise-pointwise-BN stacks, ``conv_7x1_1x7`` as ReLU, 1x7, 7x1, BN,
``FactorizedReduce`` (two stride-2 1x1 convs, one on the input shifted by a pixel, concatenated) where a
cell's inputs differ in resolution, no auxiliary head. Their MACs are checked against a count from the
layer shapes written independently of this module (``tests/test_zoo_nas.py``). The papers' own figures
(DARTS 574M, NASNet-A 564M, AmoebaNet-A 555M multiply-adds) are for other networks or counting rules:
NASNet-A's and AmoebaNet-A's are their own papers' networks (other stems, cell counts and widths), and
DARTS's 574M is 8% above what the DARTS code's network computes in convolutions and the classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from accel.errors import WorkloadError
from workloads.builder import GraphBuilder
from workloads.graph import Graph

__all__ = ["MODELS", "TRANSFORMER_SEQUENCE", "FCN_SIZE", "Genotype", "DARTS_V2", "NASNET_A", "AMOEBANET_A",
           "NAS_CHANNELS", "NAS_CELLS"]

#: Source and target length of ``transformer_base``.
TRANSFORMER_SEQUENCE = 128
#: Input height and width of ``fcn_resnet50`` (torchvision's evaluation size).
FCN_SIZE = 520


def _cbr(b: GraphBuilder, x: str, oc: int, k: int, stride: int, name: str, *, groups: int = 1,
         dilation: int = 1, act: str | None = "relu") -> str:
    y = b.conv(x, oc, k, stride, dilation * (k - 1) // 2, dilation=dilation, groups=groups, bias=False, name=name)
    y = b.norm(y, "batch", f"{name}.bn")
    return y if act is None else b.activation(y, act, f"{name}.{act}")


def _densenet121(batch: int) -> Graph:
    b = GraphBuilder("densenet121")
    x = b.input("input", (batch, 3, 224, 224))
    x = b.conv(x, 64, 7, 2, 3, bias=False, name="conv0")
    x = b.activation(b.norm(x, "batch", "norm0"), "relu", "relu0")
    x = b.pool(x, "max", 3, 2, 1, name="pool0")
    channels = 64
    for i, layers in enumerate((6, 12, 24, 16), start=1):
        features = [x]
        for j in range(1, layers + 1):
            name = f"block{i}.layer{j}"
            h = features[0] if len(features) == 1 else b.concat(features, 1, f"{name}.cat")
            h = b.activation(b.norm(h, "batch", f"{name}.norm1"), "relu", f"{name}.relu1")
            h = b.conv(h, 128, 1, 1, 0, bias=False, name=f"{name}.conv1")
            h = b.activation(b.norm(h, "batch", f"{name}.norm2"), "relu", f"{name}.relu2")
            features.append(b.conv(h, 32, 3, 1, 1, bias=False, name=f"{name}.conv2"))
        x = b.concat(features, 1, f"block{i}.cat")
        channels += 32 * layers
        if i < 4:
            x = b.activation(b.norm(x, "batch", f"transition{i}.norm"), "relu", f"transition{i}.relu")
            channels //= 2
            x = b.conv(x, channels, 1, 1, 0, bias=False, name=f"transition{i}.conv")
            x = b.pool(x, "avg", 2, 2, name=f"transition{i}.pool")
    x = b.activation(b.norm(x, "batch", "norm5"), "relu", "relu5")
    x = b.flatten(b.global_pool(x, "avg", "pool5"), 1, "flatten")
    b.linear(x, 1000, name="classifier")
    return b.build()


def _bottlenecks(b: GraphBuilder, x: str, *, groups: int, base_width: int, dilate: tuple[bool, bool, bool],
                 taps: dict[int, str] | None = None) -> str:
    """torchvision's ResNet-50 stages (v1.5), optionally grouped (ResNeXt) or dilated (segmentation)."""
    in_ch, dilation = 64, 1
    for stage, count in enumerate((3, 4, 6, 3), start=1):
        planes = 64 * 2 ** (stage - 1)
        width = int(planes * base_width / 64) * groups
        stride = 2 if stage > 1 else 1
        previous = dilation
        if stage > 1 and dilate[stage - 2]:
            dilation *= stride
            stride = 1
        for i in range(count):
            s = stride if i == 0 else 1
            d = previous if i == 0 else dilation
            p = f"layer{stage}.{i}"
            y = _cbr(b, x, width, 1, 1, f"{p}.conv1")
            y = _cbr(b, y, width, 3, s, f"{p}.conv2", groups=groups, dilation=d)
            y = _cbr(b, y, planes * 4, 1, 1, f"{p}.conv3", act=None)
            shortcut = x
            if i == 0 and (s != 1 or in_ch != planes * 4):
                shortcut = _cbr(b, x, planes * 4, 1, s, f"{p}.downsample", act=None)
            x = b.activation(b.add(y, shortcut, f"{p}.add"), "relu", f"{p}.relu")
            in_ch = planes * 4
        if taps is not None:
            taps[stage] = x
    return x


def _resnext50(batch: int) -> Graph:
    b = GraphBuilder("resnext50")
    x = b.input("input", (batch, 3, 224, 224))
    x = _cbr(b, x, 64, 7, 2, "conv1")
    x = b.pool(x, "max", 3, 2, 1, name="maxpool")
    x = _bottlenecks(b, x, groups=32, base_width=4, dilate=(False, False, False))
    x = b.flatten(b.global_pool(x, "avg", "avgpool"), 1, "flatten")
    b.linear(x, 1000, name="fc")
    return b.build()


def _fcn_resnet50(batch: int) -> Graph:
    b = GraphBuilder("fcn_resnet50")
    x = b.input("input", (batch, 3, FCN_SIZE, FCN_SIZE))
    x = _cbr(b, x, 64, 7, 2, "backbone.conv1")
    x = b.pool(x, "max", 3, 2, 1, name="backbone.maxpool")
    taps: dict[int, str] = {}
    x = _bottlenecks(b, x, groups=1, base_width=64, dilate=(False, True, True), taps=taps)
    for head, source, channels in (("classifier", x, 2048), ("aux_classifier", taps[3], 1024)):
        h = _cbr(b, source, channels // 4, 3, 1, f"{head}.0")
        h = b.conv(h, 21, 1, 1, 0, name=f"{head}.4")
        b.passthrough([h], "Resize", f"{head}.upsample", shape=(batch, 21, FCN_SIZE, FCN_SIZE))
    return b.build()


def _heads(b: GraphBuilder, x: str, heads: int, name: str) -> str:
    bsz, seq, dim = b.shape(x)
    x = b.reshape(x, (bsz, seq, heads, dim // heads), f"{name}.split")
    return b.transpose(x, (0, 2, 1, 3), f"{name}.heads")


def _mha(b: GraphBuilder, x: str, memory: str, heads: int, p: str) -> str:
    """Multi-head attention of queries from ``x`` over keys and values from ``memory``."""
    bsz, seq, dim = b.shape(x)
    q = _heads(b, b.linear(x, dim, name=f"{p}.q"), heads, f"{p}.q")
    k = _heads(b, b.linear(memory, dim, name=f"{p}.k"), heads, f"{p}.k")
    v = _heads(b, b.linear(memory, dim, name=f"{p}.v"), heads, f"{p}.v")
    scores = b.matmul(q, b.transpose(k, (0, 1, 3, 2), f"{p}.k_t"), f"{p}.scores")
    scores = b.mul(scores, b.constant(f"{p}.scale", (1,)), f"{p}.scale_mul")
    ctx = b.matmul(b.softmax(scores, -1, f"{p}.softmax"), v, f"{p}.context")
    ctx = b.reshape(b.transpose(ctx, (0, 2, 1, 3), f"{p}.merge"), (bsz, seq, dim), f"{p}.merge_heads")
    return b.linear(ctx, dim, name=f"{p}.out")


def _ffn(b: GraphBuilder, x: str, hidden: int, p: str, act: str = "relu") -> str:
    h = b.activation(b.linear(x, hidden, name=f"{p}.fc1"), act, f"{p}.{act}")
    return b.linear(h, b.shape(x)[-1], name=f"{p}.fc2")


def _transformer_base(batch: int) -> Graph:
    b = GraphBuilder("transformer_base")
    d, heads, ffn, layers, seq = 512, 8, 2048, 6, TRANSFORMER_SEQUENCE
    x = b.input("source", (batch, seq, d))
    for i in range(layers):
        p = f"encoder.{i}"
        x = b.norm(b.add(x, _mha(b, x, x, heads, f"{p}.self"), f"{p}.self.add"), "layer", f"{p}.ln1")
        x = b.norm(b.add(x, _ffn(b, x, ffn, f"{p}.ffn"), f"{p}.ffn.add"), "layer", f"{p}.ln2")
    memory = x
    y = b.input("target", (batch, seq, d))
    for i in range(layers):
        p = f"decoder.{i}"
        y = b.norm(b.add(y, _mha(b, y, y, heads, f"{p}.self"), f"{p}.self.add"), "layer", f"{p}.ln1")
        y = b.norm(b.add(y, _mha(b, y, memory, heads, f"{p}.cross"), f"{p}.cross.add"), "layer", f"{p}.ln2")
        y = b.norm(b.add(y, _ffn(b, y, ffn, f"{p}.ffn"), f"{p}.ffn.add"), "layer", f"{p}.ln3")
    b.linear(y, 37000, bias=False, name="generator")
    return b.build()


def _vit_b16(batch: int) -> Graph:
    b = GraphBuilder("vit_b16")
    d, heads, mlp = 768, 12, 3072
    x = b.input("input", (batch, 3, 224, 224))
    x = b.conv(x, d, 16, 16, 0, name="conv_proj")
    x = b.transpose(b.reshape(x, (batch, d, 196), "patches"), (0, 2, 1), "tokens")
    x = b.concat([b.constant("class_token", (batch, 1, d)), x], 1, "with_class")
    x = b.add(x, b.constant("pos_embedding", (1, 197, d)), "pos")
    for i in range(12):
        p = f"encoder.{i}"
        h = b.norm(x, "layer", f"{p}.ln1")
        x = b.add(x, _mha(b, h, h, heads, f"{p}.attn"), f"{p}.attn.add")
        x = b.add(x, _ffn(b, b.norm(x, "layer", f"{p}.ln2"), mlp, f"{p}.mlp", "gelu"), f"{p}.mlp.add")
    x = b.norm(x, "layer", "ln")
    cls = b.passthrough([x], "Slice", "class_out", shape=(batch, d))
    b.linear(cls, 1000, name="head")
    return b.build()


# -- NAS-cell networks (DARTS's NetworkImageNet) -------------------------------------------------------


@dataclass(frozen=True)
class Genotype:
    """A NAS cell as the DARTS code writes it: per node two ``(op, input)`` pairs (inputs 0 and 1 are
    the cell's two inputs, ``k >= 2`` the node ``k - 2``), and the states concatenated as the output."""

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]


#: ``DARTS_V2`` (Liu et al. 2019), from the DARTS code's ``genotypes.py``.
DARTS_V2 = Genotype(
    normal=(("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)),
    normal_concat=(2, 3, 4, 5),
    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)),
    reduce_concat=(2, 3, 4, 5))
#: NASNet-A (Zoph et al. 2018) as the DARTS code's ``genotypes.NASNet`` writes it.
NASNET_A = Genotype(
    normal=(("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 1), ("skip_connect", 1)),
    normal_concat=(2, 3, 4, 5, 6),
    reduce=(("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
            ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
            ("sep_conv_3x3", 2), ("max_pool_3x3", 1)),
    reduce_concat=(4, 5, 6))
#: AmoebaNet-A (Real et al. 2019) as the DARTS code's ``genotypes.AmoebaNet`` writes it.
AMOEBANET_A = Genotype(
    normal=(("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
            ("skip_connect", 0), ("avg_pool_3x3", 1)),
    normal_concat=(4, 5, 6),
    reduce=(("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
            ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
            ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)),
    reduce_concat=(3, 4, 6))

#: Initial channels and cells of the DARTS code's ImageNet network (``train_imagenet.py``).
NAS_CHANNELS, NAS_CELLS = 48, 14


class _Cells:
    """The DARTS code's ``operations.py`` and ``model.py`` ``Cell`` on a :class:`GraphBuilder`."""

    def __init__(self, b: GraphBuilder) -> None:
        self.b = b

    def relu_conv_bn(self, x: str, c: int, name: str) -> str:
        return _cbr(self.b, self.b.activation(x, "relu", f"{name}.relu"), c, 1, 1, name, act=None)

    def factorized_reduce(self, x: str, c: int, name: str) -> str:
        b = self.b
        x = b.activation(x, "relu", f"{name}.relu")
        n, ch, h, w = b.shape(x)
        a = b.conv(x, c // 2, 1, 2, 0, bias=False, name=f"{name}.conv_1")
        shifted = b.passthrough([x], "Slice", f"{name}.shift", shape=(n, ch, h - 1, w - 1))
        s = b.conv(shifted, c // 2, 1, 2, 0, bias=False, name=f"{name}.conv_2")
        return b.norm(b.concat([a, s], 1, f"{name}.cat"), "batch", f"{name}.bn")

    def sep_conv(self, x: str, c: int, k: int, stride: int, name: str) -> str:
        b = self.b
        for i, s in enumerate((stride, 1)):
            x = b.activation(x, "relu", f"{name}.{i}.relu")
            x = b.conv(x, c, k, s, k // 2, groups=c, bias=False, name=f"{name}.{i}.dw")
            x = b.norm(b.conv(x, c, 1, 1, 0, bias=False, name=f"{name}.{i}.pw"), "batch", f"{name}.{i}.bn")
        return x

    def dil_conv(self, x: str, c: int, k: int, stride: int, name: str) -> str:
        b = self.b
        x = b.activation(x, "relu", f"{name}.relu")
        x = b.conv(x, c, k, stride, k - 1, dilation=2, groups=c, bias=False, name=f"{name}.dw")
        return b.norm(b.conv(x, c, 1, 1, 0, bias=False, name=f"{name}.pw"), "batch", f"{name}.bn")

    def conv_7x1_1x7(self, x: str, c: int, stride: int, name: str) -> str:
        b = self.b
        x = b.activation(x, "relu", f"{name}.relu")
        x = b.conv(x, c, (1, 7), (1, stride), (0, 3), bias=False, name=f"{name}.1x7")
        x = b.conv(x, c, (7, 1), (stride, 1), (3, 0), bias=False, name=f"{name}.7x1")
        return b.norm(x, "batch", f"{name}.bn")

    def op(self, kind: str, x: str, c: int, stride: int, name: str) -> str:
        if kind in ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"):
            return self.sep_conv(x, c, int(kind[-1]), stride, name)
        if kind in ("dil_conv_3x3", "dil_conv_5x5"):
            return self.dil_conv(x, c, int(kind[-1]), stride, name)
        if kind in ("max_pool_3x3", "avg_pool_3x3"):
            return self.b.pool(x, kind[:3], 3, stride, 1, name=name)
        if kind == "conv_7x1_1x7":
            return self.conv_7x1_1x7(x, c, stride, name)
        if kind == "skip_connect":
            return x if stride == 1 else self.factorized_reduce(x, c, name)
        raise WorkloadError(f"NAS cell op {name!r}: unknown operation {kind!r}")

    def cell(self, genotype: Genotype, s0: str, s1: str, c: int, reduction: bool, reduction_prev: bool,
             name: str) -> str:
        s0 = (self.factorized_reduce(s0, c, f"{name}.pre0") if reduction_prev
              else self.relu_conv_bn(s0, c, f"{name}.pre0"))
        s1 = self.relu_conv_bn(s1, c, f"{name}.pre1")
        states = [s0, s1]
        ops, concat = (genotype.reduce, genotype.reduce_concat) if reduction else \
            (genotype.normal, genotype.normal_concat)
        for i in range(len(ops) // 2):
            hs = []
            for j in (2 * i, 2 * i + 1):
                kind, source = ops[j]
                stride = 2 if reduction and source < 2 else 1
                hs.append(self.op(kind, states[source], c, stride, f"{name}.node{i}.{j % 2}"))
            states.append(self.b.add(hs[0], hs[1], f"{name}.node{i}"))
        return self.b.concat([states[k] for k in concat], 1, f"{name}.out")


def _nas_network(name: str, genotype: Genotype, batch: int) -> Graph:
    """The DARTS code's ``NetworkImageNet`` (no auxiliary head) with ``genotype``'s cells, 224x224."""
    b = GraphBuilder(name)
    d = _Cells(b)
    c, cells = NAS_CHANNELS, NAS_CELLS
    x = b.input("input", (batch, 3, 224, 224))
    s0 = _cbr(b, x, c // 2, 3, 2, "stem0.0")
    s0 = _cbr(b, s0, c, 3, 2, "stem0.1", act=None)
    s1 = _cbr(b, b.activation(s0, "relu", "stem1.relu"), c, 3, 2, "stem1", act=None)
    reduction_prev, current = True, c
    for i in range(cells):
        reduction = i in (cells // 3, 2 * cells // 3)
        if reduction:
            current *= 2
        s0, s1 = s1, d.cell(genotype, s0, s1, current, reduction, reduction_prev, f"cell{i}")
        reduction_prev = reduction
    x = b.flatten(b.global_pool(s1, "avg", "global_pooling"), 1, "flatten")
    b.linear(x, 1000, name="classifier")
    return b.build()


def _darts_v2(batch: int) -> Graph:
    return _nas_network("darts_v2", DARTS_V2, batch)


def _nasnet_a(batch: int) -> Graph:
    return _nas_network("nasnet_a", NASNET_A, batch)


def _amoebanet_a(batch: int) -> Graph:
    return _nas_network("amoebanet_a", AMOEBANET_A, batch)


MODELS: dict[str, Callable[[int], Graph]] = {
    "densenet121": _densenet121,
    "resnext50": _resnext50,
    "vit_b16": _vit_b16,
    "fcn_resnet50": _fcn_resnet50,
    "transformer_base": _transformer_base,
    "darts_v2": _darts_v2,
    "nasnet_a": _nasnet_a,
    "amoebanet_a": _amoebanet_a,
}
