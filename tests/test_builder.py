"""GraphBuilder: shape inference, GEMM shapes, vector-op counts and the errors for bad shapes."""

from __future__ import annotations

import pytest

from accel.errors import WorkloadError
from workloads.builder import SOFTMAX_OPS_PER_ELEMENT, GraphBuilder, pool_output_size
from workloads.graph import GemmShape, OpKind, TensorKind


@pytest.fixture
def b() -> GraphBuilder:
    return GraphBuilder("t")


def test_conv_shape_gemm_and_constants(b: GraphBuilder) -> None:
    x = b.input("x", (2, 3, 224, 224))
    y = b.conv(x, 64, 7, stride=2, padding=3, name="conv1")
    g = b.build()
    assert g.tensors[y].shape == (2, 64, 112, 112)
    layer = g.layer("conv1")
    assert layer.op is OpKind.CONV
    assert layer.gemm == GemmShape(m=2 * 112 * 112, k=3 * 7 * 7, n=64, batch=1)
    assert layer.inputs == ("x", "conv1.weight", "conv1.bias")
    assert g.tensors["conv1.weight"].shape == (64, 3, 7, 7)
    assert g.tensors["conv1.weight"].kind is TensorKind.CONSTANT
    assert g.tensors["conv1.bias"].kind is TensorKind.CONSTANT


def test_conv_padding_forms_and_dilation(b: GraphBuilder) -> None:
    x = b.input("x", (1, 8, 10, 12))
    assert b.shape(b.conv(x, 8, 3, padding=(1, 2))) == (1, 8, 10, 14)
    assert b.shape(b.conv(x, 8, (3, 5), padding=(0, 1, 2, 3))) == (1, 8, 10, 12)  # top, left, bottom, right
    assert b.shape(b.conv(x, 8, 3, dilation=2)) == (1, 8, 6, 8)
    assert b.shape(b.conv(x, 8, 3, stride=(2, 3), padding=1, bias=False)) == (1, 8, 5, 4)


def test_grouped_and_depthwise_conv(b: GraphBuilder) -> None:
    x = b.input("x", (1, 32, 56, 56))
    dw = b.conv(x, 32, 3, padding=1, groups=32, bias=False, name="dw")
    gr = b.conv(x, 64, 3, padding=1, groups=4, bias=False, name="gr")
    g = b.build()
    assert g.layer("dw").gemm == GemmShape(m=56 * 56, k=9, n=1, batch=32)
    assert g.layer("dw").attrs["depthwise"] is True
    assert g.tensors["dw.weight"].shape == (32, 1, 3, 3)
    assert g.layer("gr").gemm == GemmShape(m=56 * 56, k=8 * 9, n=16, batch=4)
    assert g.layer("gr").macs == 56 * 56 * 64 * 8 * 9
    assert g.tensors[dw].shape == g.tensors[gr].shape[:1] + (32, 56, 56)


def test_conv_errors_name_the_layer(b: GraphBuilder) -> None:
    x = b.input("x", (1, 30, 8, 8))
    with pytest.raises(WorkloadError, match=r"^Layer 'c1': groups \(4\) must divide input channels \(30\)"):
        b.conv(x, 64, 3, groups=4, name="c1")
    w = b.constant("w", (16, 3, 3, 3))
    with pytest.raises(WorkloadError, match=r"^Layer 'c2': weight 'w' must have shape \(16, 30, 3, 3\), not "
                                            r"\(16, 3, 3, 3\)$"):
        b.conv(x, 16, 3, name="c2", weight=w)
    with pytest.raises(WorkloadError, match=r"^Layer 'c3': kernel 11x11 does not fit"):
        b.conv(x, 16, 11, name="c3")
    seq = b.input("s", (1, 128, 768))
    with pytest.raises(WorkloadError, match=r"^Layer 'c4': conv input must be NCHW \(4-D\)"):
        b.conv(seq, 16, 3, name="c4")


def test_linear_folds_leading_dims(b: GraphBuilder) -> None:
    x = b.input("x", (2, 128, 768))
    y = b.linear(x, 3072, name="fc")
    g = b.build()
    assert g.tensors[y].shape == (2, 128, 3072)
    assert g.layer("fc").gemm == GemmShape(m=256, k=768, n=3072)
    assert g.tensors["fc.weight"].shape == (3072, 768)


def test_linear_accepts_existing_weight_in_either_layout(b: GraphBuilder) -> None:
    x = b.input("x", (4, 512))
    w1 = b.constant("w1", (1000, 512))
    w2 = b.constant("w2", (512, 1000))
    b.linear(x, 1000, False, "a", weight=w1)
    b.linear(x, 1000, False, "b", weight=w2)
    with pytest.raises(WorkloadError, match=r"^Layer 'c': weight 'w1' must be \(10, 512\) or \(512, 10\)"):
        b.linear(x, 10, False, "c", weight=w1)
    g = b.build()
    assert g.layer("a").gemm == g.layer("b").gemm == GemmShape(m=4, k=512, n=1000)


def test_matmul_broadcasts_leading_dims(b: GraphBuilder) -> None:
    q = b.input("q", (2, 12, 128, 64))
    k = b.input("k", (1, 12, 64, 128))
    s = b.matmul(q, k, "scores")
    w = b.input("w", (64, 32))
    t = b.matmul(q, w, "proj")
    v = b.input("v", (64,))
    u = b.matmul(q, v, "vec")
    g = b.build()
    assert g.tensors[s].shape == (2, 12, 128, 128)
    assert g.layer("scores").gemm == GemmShape(m=128, k=64, n=128, batch=24)
    assert g.layer("scores").op is OpKind.MATMUL
    assert g.tensors[t].shape == (2, 12, 128, 32)
    assert g.layer("proj").gemm == GemmShape(m=128, k=64, n=32, batch=24)
    assert g.tensors[u].shape == (2, 12, 128)
    assert g.layer("vec").gemm == GemmShape(m=128, k=64, n=1, batch=24)


def test_matmul_errors(b: GraphBuilder) -> None:
    a = b.input("a", (3, 8, 16))
    c = b.input("c", (2, 16, 4))
    d = b.input("d", (3, 15, 4))
    with pytest.raises(WorkloadError, match=r"^Layer 'm1': shapes \(3,\), \(2,\) do not broadcast"):
        b.matmul(a, c, "m1")
    with pytest.raises(WorkloadError, match=r"^Layer 'm2': inner dimensions must match, but 'a' is \(3, 8, 16\)"
                                            r" and 'd' is \(3, 15, 4\)$"):
        b.matmul(a, d, "m2")


def test_pool_shapes_and_vector_ops(b: GraphBuilder) -> None:
    x = b.input("x", (1, 64, 112, 112))
    p = b.pool(x, "max", 3, 2, 1, name="p")
    q = b.pool(x, "avg", 2, name="q")  # stride defaults to the kernel
    r = b.pool(x, "max", 3, 2, 0, True, name="r")
    gp = b.global_pool(p, "avg", "gp")
    g = b.build()
    assert g.tensors[p].shape == (1, 64, 56, 56)
    assert g.layer("p").vector_ops == 64 * 56 * 56 * 9
    assert g.tensors[q].shape == (1, 64, 56, 56)
    assert g.tensors[r].shape == (1, 64, 56, 56)  # floor would give 55
    assert g.tensors[gp].shape == (1, 64, 1, 1)
    assert g.layer("gp").vector_ops == 64 * 56 * 56
    with pytest.raises(WorkloadError, match=r"^Layer 'bad': pool kind must be one of"):
        b.pool(x, "median", 2, name="bad")


def test_ceil_mode_drops_a_window_that_starts_in_the_padding() -> None:
    # PyTorch: MaxPool2d(2, 2, padding=1, ceil_mode=True) on 5 gives 3, on 6 gives 4.
    assert pool_output_size(5, 2, 2, 1, 1, ceil_mode=True) == 3
    assert pool_output_size(6, 2, 2, 1, 1, ceil_mode=True) == 4
    assert pool_output_size(5, 2, 2, 1, 1, ceil_mode=False) == 3


def test_vector_layers(b: GraphBuilder) -> None:
    x = b.input("x", (1, 16, 8, 8))
    bias = b.constant("bias", (16, 1, 1))
    a = b.add(bias, x, "add")  # constants are listed after activations
    r = b.activation(a, "relu6", "act")
    n = b.norm(r, "batch", "bn")
    s = b.softmax(b.flatten(n, 1, "flat"), -1, "sm")
    g = b.build()
    assert g.layer("add").inputs == ("x", "bias")
    assert g.tensors[a].shape == (1, 16, 8, 8)
    for name in ("add", "act", "bn"):
        assert g.layer(name).vector_ops == 16 * 64
    assert g.tensors["bn.weight"].shape == (16,)
    assert g.tensors[s].shape == (1, 1024)
    assert g.layer("sm").vector_ops == 1024 * SOFTMAX_OPS_PER_ELEMENT
    assert g.layer("flat").op is OpKind.RESHAPE and g.layer("flat").vector_ops == 0


def test_layer_norm_and_errors(b: GraphBuilder) -> None:
    x = b.input("x", (1, 197, 384))
    b.norm(x, "layer", "ln")
    assert b.shape("ln.weight") == (384,)
    with pytest.raises(WorkloadError, match=r"^Layer 'a': activation must be one of .*, not 'swoosh'$"):
        b.activation(x, "swoosh", "a")
    with pytest.raises(WorkloadError, match=r"^Layer 'n': norm kind must be one of"):
        b.norm(x, "weird", "n")
    y = b.input("y", (1, 196, 384))
    with pytest.raises(WorkloadError, match=r"^Layer 'e': shapes \(1, 197, 384\), \(1, 196, 384\) do not"):
        b.add(x, y, "e")


def test_data_movement(b: GraphBuilder) -> None:
    x = b.input("x", (2, 128, 768))
    r = b.reshape(x, (2, 128, 12, -1), "split")
    t = b.transpose(r, (0, 2, 1, 3), "heads")
    c = b.concat([t, t], 2, "cat")
    p = b.passthrough([c], "Mystery", "m")
    f = b.flatten(p, 2, "f")
    g = b.build()
    assert g.tensors[r].shape == (2, 128, 12, 64)
    assert g.tensors[t].shape == (2, 12, 128, 64)
    assert g.tensors[c].shape == (2, 12, 256, 64)
    assert g.layer("m").op is OpKind.PASSTHROUGH and g.layer("m").source_op == "Mystery"
    assert g.tensors[f].shape == (24, 256 * 64)
    assert g.total_macs == 0
    with pytest.raises(WorkloadError, match=r"^Layer 'bad': reshape must keep 196608 elements"):
        b.reshape(x, (2, 100, 768), "bad")
    with pytest.raises(WorkloadError, match=r"^Layer 'cc': input 'x' has shape \(2, 128, 768\), expected"):
        b.concat([t, x], 2, "cc")
    with pytest.raises(WorkloadError, match=r"^Layer 'tt': perm \(0, 1\) is not a permutation of 3 axes$"):
        b.transpose(x, (0, 1), "tt")


def test_default_names_and_duplicates(b: GraphBuilder) -> None:
    x = b.input("x", (1, 4))
    assert b.activation(x, "relu") == "relu1"
    assert b.activation("relu1", "relu") == "relu2"
    with pytest.raises(WorkloadError, match=r"^Graph 't': layer name 'relu1' is used twice$"):
        b.activation(x, "relu", "relu1")
    with pytest.raises(WorkloadError, match=r"^Graph 't': tensor name 'x' is already used$"):
        b.input("x", (1,))
    with pytest.raises(WorkloadError, match=r"^Graph 't': tensor 'nope' is not defined$"):
        b.activation("nope", "relu")
