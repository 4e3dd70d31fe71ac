"""The area model (accel.area): its table, its monotonicity, its breakdown, per-design overrides,
and its agreement with the published figures it is built from (Horowitz's 45 nm arithmetic, CACTI 7)."""

from __future__ import annotations

import csv
import dataclasses
import math
import tomllib
from pathlib import Path

import pytest

from accel import config
from accel.area import AreaTable, area_mm2, area_table, default_area_table, pe_area_um2, sram_area_um2
from accel.errors import ConfigError
from accel.hardware import Memory

CACTI = Path(__file__).resolve().parent / "fixtures" / "area" / "cacti_45nm_sram.csv"
PRESETS = ("tpu-v1", "gemmini", "eyeriss", "fpga-small", "sparse-nm")


def test_the_shipped_table_has_every_field_and_cites_its_sources() -> None:
    path = Path(config.__file__).with_name("tech") / "area_45nm.toml"
    data = tomllib.loads(path.read_text())
    assert set(data) == {f.name for f in dataclasses.fields(AreaTable)}
    text = path.read_text()
    for source in ("Horowitz", "NanGate", "CACTI 7"):
        assert source in text, source


@pytest.mark.parametrize("preset", PRESETS)
def test_the_breakdown_sums_to_the_total(preset: str) -> None:
    breakdown = area_mm2(config.load(preset))
    parts = breakdown.to_dict()
    assert set(parts) == {"pe_array_mm2", "sparse_select_mm2", "scratchpad_mm2", "accumulator_mm2", "vector_mm2",
                          "dma_mm2", "control_mm2"}
    assert all(v > 0 for k, v in parts.items() if k != "sparse_select_mm2")
    assert (parts["sparse_select_mm2"] > 0) == bool(config.load(preset).array.sparsity)
    assert breakdown.total_mm2 == pytest.approx(sum(parts.values()))


def test_sparsity_support_costs_its_select_logic() -> None:
    sparse, dense = config.load("sparse-nm"), config.load("gemmini")
    assert sparse.array.rows == dense.array.rows and sparse.array.input_format == dense.array.input_format
    extra = area_mm2(sparse).sparse_select_mm2
    # 2:4, 1:4 and 2:8 listed: sized for N = 2, M = 8; 8 groups of 2 multipliers per column, 16 columns.
    t = default_area_table()
    per_group = t.mux2_um2 * 2 * 7 * 8 + t.register_um2_per_bit * (6 * 8 + 2 * 3)
    assert extra == pytest.approx(8 * 16 * per_group * 1e-6)
    assert area_mm2(sparse).pe_array_mm2 == area_mm2(dense).pe_array_mm2 and extra > 0


def test_area_grows_with_every_size_and_width() -> None:
    table = default_area_table()
    assert pe_area_um2(8, 8, 32, table) < pe_area_um2(16, 8, 32, table) < pe_area_um2(16, 16, 32, table)
    assert pe_area_um2(8, 8, 24, table) < pe_area_um2(8, 8, 32, table)
    base = Memory(size_bytes=65536, banks=2, ports=1, word_bytes=16)
    for change in ({"size_bytes": 131072}, {"banks": 4}, {"ports": 2}, {"word_bytes": 64}):
        assert sram_area_um2(dataclasses.replace(base, **change), table) > sram_area_um2(base, table), change
    arch = config.load("gemmini")
    bigger = (dataclasses.replace(arch, array=dataclasses.replace(arch.array, rows=32, cols=32)),
              dataclasses.replace(arch, vector=dataclasses.replace(arch.vector, lanes=32)),
              dataclasses.replace(arch, dma=dataclasses.replace(arch.dma, channels=2)),
              dataclasses.replace(arch, scratchpad=dataclasses.replace(arch.scratchpad, size_bytes=512 * 1024)))
    for other in bigger:
        assert area_mm2(other).total_mm2 > area_mm2(arch).total_mm2
    # Four times the PEs is four times the array.
    assert area_mm2(bigger[0]).pe_array_mm2 == pytest.approx(4 * area_mm2(arch).pe_array_mm2)


def test_a_design_overrides_single_fields_in_its_area_section(tmp_path: Path) -> None:
    text = config.dumps(config.load("gemmini")) + "\n[area]\nsram_um2_per_bit = 0.3\n"
    path = tmp_path / "mine.toml"
    path.write_text(text)
    mine = config.load(str(path))
    assert mine.area.sram_um2_per_bit == 0.3
    assert mine.area.adder_um2_per_bit == default_area_table().adder_um2_per_bit
    default, changed = area_mm2(config.load("gemmini")), area_mm2(mine)
    assert changed.scratchpad_mm2 < default.scratchpad_mm2 and changed.pe_array_mm2 == default.pe_array_mm2
    assert "[area]\nsram_um2_per_bit = 0.3" in config.dumps(mine) and "[area]" not in config.dumps(
        config.load("gemmini"))
    assert config.loads(config.dumps(mine)) == mine
    assert area_mm2(config.load("gemmini"), overrides={"sram_um2_per_bit": 0.3}) == changed
    path.write_text(text.replace("sram_um2_per_bit = 0.3", "sram_um2_per_bit = -1\nsram_cells = 2"))
    with pytest.raises(ConfigError, match=rf"^{path}: unknown field area.sram_cells \(expected one of .*\)\n"
                                          rf"{path}: area.sram_um2_per_bit must be a non-negative number, not -1$"):
        config.load(str(path))
    with pytest.raises(ConfigError, match=r"^area.control_register_bits is missing"):
        area_table({f.name: 1.0 for f in dataclasses.fields(AreaTable) if f.name != "control_register_bits"})


def test_arithmetic_matches_horowitz_45nm_areas() -> None:
    # M. Horowitz, ISSCC 2014: 8-bit multiply 282 um2, 32-bit 3495 um2; 8-bit add 36 um2, 32-bit 137 um2.
    t = default_area_table()
    assert t.multiplier_um2_per_bit2 * 8 * 8 == pytest.approx(282, rel=0.01)
    assert t.multiplier_um2_per_bit2 * 32 * 32 == pytest.approx(3495, rel=0.30)
    assert t.adder_um2_per_bit * 8 == pytest.approx(36, rel=0.01)
    assert t.adder_um2_per_bit * 32 == pytest.approx(137, rel=0.06)


def test_sram_area_follows_cacti7_at_45nm() -> None:
    # The 40 CACTI 7 runs the SRAM constants were fitted to (benchmarks/area_cacti.py): the model keeps
    # CACTI's trends within the scatter of CACTI's own organisation search.
    table = default_area_table()
    with CACTI.open(newline="") as handle:
        points = list(csv.DictReader(handle))
    assert len(points) == 40
    errors = []
    for p in points:
        memory = Memory(size_bytes=int(p["size_bytes"]), banks=int(p["banks"]), ports=int(p["ports"]),
                        word_bytes=int(p["word_bytes"]))
        errors.append(sram_area_um2(memory, table) * 1e-6 / float(p["area_mm2"]) - 1)
    assert math.sqrt(sum(e * e for e in errors) / len(errors)) < 0.25
    assert max(abs(e) for e in errors) < 0.60
    big = [e for p, e in zip(points, errors, strict=True) if int(p["size_bytes"]) >= 262144 and p["ports"] == "1"]
    assert max(abs(e) for e in big) < 0.25  # scratchpad-sized single-port SRAMs: within a quarter


def test_accel_info_shows_the_area(capsys: pytest.CaptureFixture[str]) -> None:
    from accel.cli import main

    assert main(["info", "gemmini"]) == 0
    area = area_mm2(config.load("gemmini"))
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("area"))
    assert line.startswith(f"  area (45 nm)   {area.total_mm2:.3g} mm2: PE array {area.pe_array_mm2:.3g}, ")


def test_tpu_v1_floor_plan_bounds_the_model() -> None:
    """A published chip: N. P. Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing
    Unit", ISCA 2017 (arXiv:1704.04760): 28 nm, the die "<= half the Haswell die size" (662 mm2, so
    <= 331 mm2); "The 24 MiB Unified Buffer is almost a third of the die and the Matrix Multiply Unit
    is a quarter". The model counts cells without wiring, clock tree, ECC or test logic, so scaled to
    28 nm by the square of the feature size it must stay below those blocks, and not absurdly far
    (stated tolerance: between a fifth of them and all of them; today 0.38 of the Unified Buffer and
    0.21 of the Matrix Multiply Unit: the PE model counts cells only, no wiring, clock tree or placement)."""
    area = area_mm2(config.load("tpu-v1"))
    scale = (28 / 45) ** 2
    die_mm2 = 662 / 2
    for model_45nm, published_28nm in ((area.scratchpad_mm2, die_mm2 / 3), (area.pe_array_mm2, die_mm2 / 4)):
        ratio = model_45nm * scale / published_28nm
        assert 0.2 <= ratio <= 1.0, (model_45nm, published_28nm, ratio)
