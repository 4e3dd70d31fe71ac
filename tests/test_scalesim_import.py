"""SCALE-Sim topology import: every shared CSV, messy-but-valid files, and errors naming row and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from accel.errors import WorkloadError
from workloads.graph import GemmShape, OpKind, TensorKind
from workloads.scalesim_import import load_scalesim_topology

SCALESIM_FILES = sorted((Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scalesim").glob("*.csv"))


def _independent_count(path: Path) -> tuple[int, int]:
    """Layer count and MACs straight from the raw text, with SCALE-Sim's own formulas.

    Conv: ofmap = ceil((H - FH + S) / S) (topology_utils.topo_calc_hyperparams), MACs = OH*OW*FH*FW*C*NF.
    GEMM (columns M, N, K): MACs = M*N*K.
    """
    lines = [ln for ln in path.read_text().splitlines() if ln.replace(",", "").strip()]
    gemm = lines[0].split(",")[1].strip() == "M"
    layers = macs = 0
    for line in lines[1:]:
        f = [x.strip() for x in line.split(",")]
        if gemm:
            m, n, k = int(f[1]), int(f[2]), int(f[3])
            macs += m * n * k
        else:
            h, w, fh, fw, c, nf, s = (int(x) for x in f[1:8])
            oh, ow = -(-(h - fh + s) // s), -(-(w - fw + s) // s)
            macs += oh * ow * fh * fw * c * nf
        layers += 1
    return layers, macs


def test_shared_files_are_present() -> None:
    assert len(SCALESIM_FILES) >= 6, SCALESIM_FILES


@pytest.mark.parametrize("path", SCALESIM_FILES, ids=lambda p: p.name)
def test_every_shared_topology_imports(path: Path) -> None:
    graph = load_scalesim_topology(path)
    layers, macs = _independent_count(path)
    assert len(graph.layers) == layers
    assert graph.total_macs == macs
    assert all(lay.op in (OpKind.CONV, OpKind.GEMM) for lay in graph.layers)


def test_known_figures(shared_data: Path) -> None:
    resnet = load_scalesim_topology(shared_data / "scalesim" / "Resnet18.csv")
    conv1 = resnet.layer("Conv1")
    # SCALE-Sim adds no padding, but rounds the ofmap up: ceil((224 - 7 + 2) / 2) = 110, not 109.
    assert conv1.gemm == GemmShape(m=110 * 110, k=7 * 7 * 3, n=64)
    assert resnet.tensors["Conv1"].shape == (1, 64, 110, 110)
    assert conv1.attrs["padding"] == (0, 0, 1, 1)  # the last window reads one row/column past the edge
    conv3s = resnet.layer("Conv3_s")  # 56x56, 1x1, stride 2: ceil(57 / 2) = 29
    assert conv3s.gemm == GemmShape(m=29 * 29, k=64, n=128)
    assert resnet.tensors["Conv1.ifmap"].kind is TensorKind.INPUT
    assert resnet.tensors["Conv1.filter"].kind is TensorKind.CONSTANT
    fc = resnet.layer("FC")
    assert fc.gemm == GemmShape(m=1, k=512, n=1000)


def test_gemm_columns_are_m_n_k(shared_data: Path) -> None:
    # SCALE-Sim's load_arrays_gemm: row "name, M, N, K" is an M x K ifmap, N filters of K:
    # Sr = M ofmap pixels, T = K window, Sc = N filters.
    gpt2 = load_scalesim_topology(shared_data / "scalesim" / "gpt2.csv")
    qkt = gpt2.layer("QKT")  # QKT,1024,1024,64
    assert qkt.gemm == GemmShape(m=1024, k=64, n=1024)
    assert gpt2.tensors["QKT.ifmap"].shape == (1024, 64)
    assert gpt2.tensors["QKT.filter"].shape == (64, 1024)
    linear1 = gpt2.layer("Linear1")  # Linear1,1024,4800,1600
    assert linear1.gemm == GemmShape(m=1024, k=1600, n=4800)
    assert gpt2.tensors["Linear1"].shape == (1024, 4800)


def test_messy_but_valid_csv(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    path.write_bytes(
        b"Layer name , IFMAP Height,IFMAP Width ,Filter Height,Filter Width, Channels, Num Filter, Strides\r\n"
        b"\r\n"
        b"  conv_a ,  56 , 56,3 ,3, 64 , 64 , 1 ,  ,\r\n"
        b",,,,,,,,\r\n"
        b"conv_b,56,56,1,1,64,128,2\r\n"
        b"   \r\n"
        b"conv_c,28,28,3,3,128,128,1,2:4,\r\n"
    )
    graph = load_scalesim_topology(path)
    assert [lay.name for lay in graph.layers] == ["conv_a", "conv_b", "conv_c"]
    assert graph.layer("conv_a").gemm == GemmShape(m=54 * 54, k=9 * 64, n=64)
    assert graph.layer("conv_b").gemm == GemmShape(m=29 * 29, k=64, n=128)
    assert graph.layer("conv_c").attrs["sparsity"] == (2, 4)


def test_comments_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "commented.csv"
    path.write_text("# MobileNet, first layers\nLayer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,"
                    " Channels, Num Filter, Strides,\n  # the stem\nConv1, 225, 225, 3, 3, 3, 32, 2,\n"
                    "Conv2_dw, 114, 114, 3, 3, 1, 1, 1,#dw\nConv3, 112, 112, 1, 1, 32, 64, 1, 2:4, # pointwise\n")
    graph = load_scalesim_topology(path)
    assert [lay.name for lay in graph.layers] == ["Conv1", "Conv2_dw", "Conv3"]
    assert graph.layer("Conv2_dw").gemm == GemmShape(m=112 * 112, k=9, n=1)
    assert graph.layer("Conv3").attrs["sparsity"] == (2, 4)
    assert graph.total_macs == 112 * 112 * 27 * 32 + 112 * 112 * 9 + 112 * 112 * 32 * 64


def test_a_repeated_layer_name_is_its_own_layer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # SCALE-Sim's DeepBench GEMM lists and sparsity/gemm.csv repeat names; SCALE-Sim runs every row.
    path = tmp_path / "repeat.csv"
    path.write_text("Layer Name, M, N, K, Sparsity,\nGEMM_1, 3, 5, 16, 3:4,\nGEMM_1, 1, 5, 16, 1:4,\n")
    graph = load_scalesim_topology(path)
    assert [lay.name for lay in graph.layers] == ["GEMM_1", "GEMM_1@3"]
    assert graph.layer("GEMM_1@3").gemm == GemmShape(m=1, k=16, n=5)
    assert graph.total_macs == 3 * 5 * 16 + 1 * 5 * 16
    assert "1 row(s) repeat an earlier layer name; each is imported as NAME@ROW (GEMM_1@3)" in caplog.text


def test_tab_separated_fields(tmp_path: Path) -> None:
    # SCALE-Sim's conv_nets/UNet_maestro.csv, as a spreadsheet saves "tab delimited" text
    path = tmp_path / "tabs.csv"
    path.write_text("Layer name\t IFMAP Height\t IFMAP Width\t Filter Height\t Filter Width\t Channels\t Num Filter\t"
                    " Strides\t \nConv1_1\t572\t572\t3\t3\t1\t64\t1\t\nConv1_2\t570\t570\t3\t3\t64\t64\t1\t\n")
    graph = load_scalesim_topology(path)
    assert graph.layer("Conv1_1").gemm == GemmShape(m=570 * 570, k=9, n=64)
    assert graph.layer("Conv1_2").gemm == GemmShape(m=568 * 568, k=9 * 64, n=64)


def test_gemm_with_sparsity_and_batch_columns(tmp_path: Path) -> None:
    path = tmp_path / "gemm.csv"
    path.write_text("layer, m, n, k,\nA, 64, 32, 16,\nB, 64, 32, 16, 12,\nC, 8, 8, 8, 1:4, 3,\n")
    graph = load_scalesim_topology(path)
    assert graph.layer("A").gemm == GemmShape(m=64, k=16, n=32)
    assert graph.layer("B").gemm == GemmShape(m=64, k=16, n=32, batch=12)
    assert graph.tensors["B.ifmap"].shape == (12, 64, 16)
    assert graph.layer("C").gemm == GemmShape(m=8, k=8, n=8, batch=3)
    assert graph.layer("C").attrs["sparsity"] == (1, 4)


def test_scalesim_depthwise_row(tmp_path: Path) -> None:
    path = tmp_path / "dw.csv"
    path.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,"
                    " Strides,\nConv_DP1, 114, 114, 3, 3, 32, 1, 1,\nConv_pw, 112, 112, 3, 3, 32, 1, 1,\n")
    graph = load_scalesim_topology(path)
    # 'DP' in the name: SCALE-Sim splits it into 32 one-channel layers; here one layer, batch 32.
    assert graph.layer("Conv_DP1").gemm == GemmShape(m=112 * 112, k=9, n=1, batch=32)
    # Without 'DP' a one-filter row is one filter over all channels, as SCALE-Sim computes it.
    assert graph.layer("Conv_pw").gemm == GemmShape(m=110 * 110, k=9 * 32, n=1)


@pytest.mark.parametrize("header", [
    # header rows as SCALE-Sim's own topologies/ write them (deepbench, dlrm, resnet, transformer)
    "Layer, IFMAP Width, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,",
    "Layer name,Ifmap height,ifmap width,filter height,filter width,channels,num filters,strides,",
    "Layer name,Ifmap height,ifmap width,filter height,filter width,channel,num filters,strides,",
    "layer_name, ifmap_height, ifmap_width, filter_height, filter_width, channels, num_filter, stride",
])
def test_conv_headers_as_scalesim_writes_them(tmp_path: Path, header: str) -> None:
    graph = load_scalesim_topology(_write(tmp_path, header + "\nc1, 14, 14, 3, 3, 8, 16, 1,\n", "h.csv"))
    assert graph.layer("c1").gemm == GemmShape(m=12 * 12, k=3 * 3 * 8, n=16)


@pytest.mark.parametrize("header", ["L,M,N,K,", "Layer Name, M, N, K, Sparsity,", "layer,m,n,k"])
def test_gemm_headers_as_scalesim_writes_them(tmp_path: Path, header: str) -> None:
    graph = load_scalesim_topology(_write(tmp_path, header + "\nL0,256,768,64,\n", "g.csv"))
    assert graph.layer("L0").gemm == GemmShape(m=256, k=64, n=768)


def _write(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def test_missing_column_names_row_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, CONV_HEADER + "\nConv1, 224, 224, 7, 7, 3, 64,\n")
    with pytest.raises(WorkloadError, match=r"^SCALE-Sim topology '.*bad\.csv': row 3, field 'Strides': missing"
                                            r" \(expected a positive integer\)$"):
        load_scalesim_topology(path)


def test_non_integer_fields_are_all_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, CONV_HEADER + "Conv1, 224, 22x4, 7, 7, 3, 64, 2,\nConv2, 56, 56, 3, 3, 64, 6.4, 1,\n")
    with pytest.raises(WorkloadError, match=r"^SCALE-Sim topology '.*bad\.csv': row 2, field 'IFMAP Width': "
                                            r"expected a positive integer, not '22x4'; row 3, field 'Num Filter':"
                                            r" expected a positive integer, not '6\.4'$"):
        load_scalesim_topology(path)


def test_unknown_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "name, height, width,\nConv1, 1, 2,\n")
    with pytest.raises(WorkloadError, match=r"^SCALE-Sim topology '.*bad\.csv', row 1: unknown header "
                                            r"'name, height, width'; expected 'Layer name, IFMAP Height"):
        load_scalesim_topology(path)


def test_filter_larger_than_ifmap_and_bad_gemm(tmp_path: Path) -> None:
    path = _write(tmp_path, CONV_HEADER + "Conv1, 5, 5, 7, 7, 3, 64, 1,\n")
    with pytest.raises(WorkloadError, match=r"row 2, field 'Filter Height'/'Filter Width': filter 7x7 is larger"
                                            r" than the ifmap 5x5$"):
        load_scalesim_topology(path)
    path = _write(tmp_path, "Layer, M, N, K,\nL0, 196, 0, 384,\nL1, 1, 2, 3, many,\n", "g.csv")
    with pytest.raises(WorkloadError, match=r"^SCALE-Sim topology '.*g\.csv': row 2, field 'N': expected a "
                                            r"positive integer, not 0; row 3, field 'Batch': expected a positive"
                                            r" integer, not 'many'$"):
        load_scalesim_topology(path)


def test_a_sparsity_ratio_keeps_at_least_one_weight(tmp_path: Path) -> None:
    path = _write(tmp_path, CONV_HEADER + "c1, 8, 8, 3, 3, 4, 8, 1, 0:4,\nc2, 8, 8, 3, 3, 4, 8, 1, 4:4,\n")
    with pytest.raises(WorkloadError, match=r"^SCALE-Sim topology '.*bad\.csv': row 2, field 'Sparsity': expected a "
                                            r"sparsity ratio N:M with 1 <= N <= M, not '0:4'$"):
        load_scalesim_topology(path)
    path = _write(tmp_path, "Layer, M, N, K,\ng1, 8, 8, 8, 0:2,\n", "g.csv")
    with pytest.raises(WorkloadError, match=r"row 2, field 'Sparsity': expected a sparsity ratio N:M with 1 <= N"):
        load_scalesim_topology(path)


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=r"^SCALE-Sim topology '.*e\.csv' is empty"):
        load_scalesim_topology(_write(tmp_path, "\n\n", "e.csv"))
    with pytest.raises(WorkloadError, match=r"^SCALE-Sim topology '.*h\.csv' has a header but no layer rows$"):
        load_scalesim_topology(_write(tmp_path, CONV_HEADER, "h.csv"))
    with pytest.raises(WorkloadError, match=r"^SCALE-Sim topology '.*nope\.csv' cannot be read"):
        load_scalesim_topology(tmp_path / "nope.csv")
