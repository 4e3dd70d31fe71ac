"""The NAS-cell networks of COSMA's benchmark (``workloads.zoo_cosma``): genotypes as the DARTS code
writes them, and MAC totals against a count from layer shapes written here, independently of the zoo.

The count follows the DARTS code's ``NetworkImageNet`` (``model.py``, ``operations.py``): it tracks
only (channels, height, width) per state and adds ``out_h * out_w * out_c * in_c / groups * k_h * k_w``
per convolution and ``in * out`` for the classifier; pooling, batch norm, ReLU, sums and concatenation
have no multiply-accumulates.
"""

from __future__ import annotations

import pytest

from workloads import zoo, zoo_cosma

# The DARTS code's genotypes.py (quark0/darts, cnn/genotypes.py), copied as written there.
GENOTYPES = {
    "darts_v2": (
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1),
         ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)], [2, 3, 4, 5],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1), ("max_pool_3x3", 0),
         ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)], [2, 3, 4, 5]),
    "nasnet_a": (
        [("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0), ("avg_pool_3x3", 1),
         ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 1)],
        [2, 3, 4, 5, 6],
        [("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0), ("avg_pool_3x3", 1),
         ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2), ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
        [4, 5, 6]),
    "amoebanet_a": (
        [("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2), ("sep_conv_3x3", 0),
         ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1), ("skip_connect", 0), ("avg_pool_3x3", 1)],
        [4, 5, 6],
        [("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2), ("sep_conv_7x7", 0),
         ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
        [3, 4, 6]),
}


def _out(size: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def network_macs(normal, normal_concat, reduce, reduce_concat, *, c: int = 48, cells: int = 14) -> int:
    """Multiply-accumulates of the DARTS code's NetworkImageNet (224x224, batch 1) with these cells."""
    macs = 0

    def conv(cin, cout, hw, kh, kw, sh, sw, ph, pw, groups=1, dilation=1):
        nonlocal macs
        oh, ow = _out(hw[0], kh, sh, ph, dilation), _out(hw[1], kw, sw, pw, dilation)
        macs += oh * ow * cout * (cin // groups) * kh * kw
        return oh, ow

    def square(cin, cout, hw, k, s, p, **kw):
        return conv(cin, cout, hw, k, k, s, s, p, p, **kw)

    def factorized_reduce(cin, cout, hw):
        a = square(cin, cout // 2, hw, 1, 2, 0)
        b = square(cin, cout // 2, (hw[0] - 1, hw[1] - 1), 1, 2, 0)  # x[:, :, 1:, 1:]
        assert a == b
        return a

    def op(kind, ch, stride, hw):
        if kind.startswith("sep_conv"):  # ReLU, dw k, pw, BN, ReLU, dw k, pw, BN
            k = int(kind[-1])
            hw = square(ch, ch, hw, k, stride, k // 2, groups=ch)
            hw = square(ch, ch, hw, 1, 1, 0)
            hw = square(ch, ch, hw, k, 1, k // 2, groups=ch)
            return square(ch, ch, hw, 1, 1, 0)
        if kind.startswith("dil_conv"):  # ReLU, dw k dilated 2, pw, BN
            k = int(kind[-1])
            return square(ch, ch, square(ch, ch, hw, k, stride, k - 1, groups=ch, dilation=2), 1, 1, 0)
        if kind.endswith("pool_3x3"):
            return _out(hw[0], 3, stride, 1), _out(hw[1], 3, stride, 1)
        if kind == "conv_7x1_1x7":
            hw = conv(ch, ch, hw, 1, 7, 1, stride, 0, 3)
            return conv(ch, ch, hw, 7, 1, stride, 1, 3, 0)
        assert kind == "skip_connect"
        return hw if stride == 1 else factorized_reduce(ch, ch, hw)

    hw = square(3, c // 2, (224, 224), 3, 2, 1)
    hw = square(c // 2, c, hw, 3, 2, 1)
    s0 = (c, hw)
    s1 = (c, square(c, c, hw, 3, 2, 1))
    current, reduction_prev = c, True
    for i in range(cells):
        reduction = i in (cells // 3, 2 * cells // 3)
        current *= 2 if reduction else 1
        (c0, h0), (c1, h1) = s0, s1
        states = [factorized_reduce(c0, current, h0) if reduction_prev else square(c0, current, h0, 1, 1, 0),
                  square(c1, current, h1, 1, 1, 0)]
        ops, concat = (reduce, reduce_concat) if reduction else (normal, normal_concat)
        for j in range(0, len(ops), 2):
            outs = [op(kind, current, 2 if reduction and src < 2 else 1, states[src]) for kind, src in ops[j:j + 2]]
            assert outs[0] == outs[1]
            states.append(outs[0])
        s0, s1 = s1, (current * len(concat), states[concat[0]])
        reduction_prev = reduction
    return macs + s1[0] * 1000


@pytest.mark.parametrize("name", sorted(GENOTYPES))
def test_genotype_is_the_darts_codes(name: str) -> None:
    genotype = {"darts_v2": zoo_cosma.DARTS_V2, "nasnet_a": zoo_cosma.NASNET_A,
                "amoebanet_a": zoo_cosma.AMOEBANET_A}[name]
    normal, normal_concat, reduce, reduce_concat = GENOTYPES[name]
    assert genotype == zoo_cosma.Genotype(tuple(normal), tuple(normal_concat), tuple(reduce), tuple(reduce_concat))


@pytest.mark.parametrize(("name", "macs"), [("darts_v2", 529_911_552), ("nasnet_a", 604_031_616),
                                            ("amoebanet_a", 526_746_624)])
def test_nas_network_macs_match_an_independent_count(name: str, macs: int) -> None:
    assert network_macs(*GENOTYPES[name]) == macs
    graph = zoo.build(name)
    assert graph.total_macs == macs
    assert zoo.build(name, batch=2).total_macs == 2 * macs
    assert graph.outputs[0].shape == (1, 1000)
    assert name in zoo.benchmark_names()


def test_unknown_cell_op_is_named() -> None:
    from accel.errors import WorkloadError
    from workloads.builder import GraphBuilder

    b = GraphBuilder("bad")
    x = b.input("input", (1, 8, 8, 8))
    with pytest.raises(WorkloadError, match=r"^NAS cell op 'n0': unknown operation 'sep_conv_9x9x'$"):
        zoo_cosma._Cells(b).op("sep_conv_9x9x", x, 8, 1, "n0")
