"""Hardware descriptions: presets load and round-trip; bad TOML gives one error naming file and field."""

from __future__ import annotations

import pytest

from accel import config
from accel.errors import ConfigError
from accel.formats import NumberFormat, Overflow, Rounding
from accel.hardware import DRAM, Dataflow, Memory, Sparsity, SystolicArray

PRESETS = ("eyeriss", "fpga-small", "gemmini", "gemmini-2021", "sparse-nm", "tpu-v1")


def test_the_four_presets_ship():
    assert set(PRESETS) <= set(config.preset_names())


@pytest.mark.parametrize("name", PRESETS)
def test_preset_round_trips_through_toml(name, tmp_path):
    arch = config.load(name)
    path = tmp_path / f"{name}.toml"
    config.save(arch, path)
    assert config.load(path) == arch
    assert config.loads(config.dumps(arch)) == arch


def test_tpu_v1_matches_the_paper():
    tpu = config.load("tpu-v1")
    assert (tpu.array.rows, tpu.array.cols, tpu.array.dataflows) == (256, 256, (Dataflow.WS,))
    assert tpu.clock_hz == 700e6
    assert tpu.scratchpad.size_bytes == 24 * 2**20
    assert tpu.accumulator.size_bytes == 4 * 2**20
    assert tpu.dram.bandwidth_bytes_per_cycle * tpu.clock_hz == pytest.approx(34e9, rel=0.01)
    assert tpu.peak_macs_per_s == pytest.approx(45.9e12, rel=0.01)  # 92 TOPS = 2 ops per MAC


def test_gemmini_eyeriss_and_fpga_small_sizes():
    gemmini, eyeriss, small = config.load("gemmini"), config.load("eyeriss"), config.load("fpga-small")
    assert (gemmini.array.rows, gemmini.array.cols) == (16, 16)
    assert set(gemmini.array.dataflows) == {Dataflow.WS, Dataflow.OS}
    assert (gemmini.scratchpad.size_bytes, gemmini.accumulator.size_bytes) == (256 * 1024, 64 * 1024)
    assert (eyeriss.array.rows, eyeriss.array.cols, eyeriss.clock_hz) == (12, 14, 200e6)
    assert eyeriss.scratchpad.size_bytes == 108 * 1024
    assert small.array.pes <= 64 and small.array.input_format == NumberFormat(8)


def test_a_path_loads_like_a_preset(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(config.dumps(config.load("gemmini")).replace('name = "gemmini"', 'name = "mine"'))
    assert config.load(path).name == "mine"
    assert config.load(str(path)).array == config.load("gemmini").array


GOOD = config.dumps(config.load("fpga-small"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # 1. not TOML at all
        (lambda t: t.replace("[array]", "[array"), r"^.*bad\.toml: not valid TOML \(.*\)$"),
        # 2. a misspelt field
        (lambda t: t.replace("rows = 4", "rowz = 4"),
         r"^.*bad\.toml: unknown field array\.rowz \(did you mean rows\? expected one of rows, cols, .*\)\n"
         r".*bad\.toml: array\.rows is missing$"),
        # 3. a value out of range
        (lambda t: t.replace("rows = 4", "rows = -4"),
         r"^.*bad\.toml: array\.rows must be a positive integer, not -4$"),
        # 4. a value of the wrong type
        (lambda t: t.replace("clock_hz = 25000000.0", 'clock_hz = "fast"'),
         r"^.*bad\.toml: clock_hz must be a positive number, not 'fast'$"),
        # 5. an unknown dataflow
        (lambda t: t.replace('dataflows = ["ws", "os"]', 'dataflows = ["ws", "rs"]'),
         r"^.*bad\.toml: array\.dataflows: Dataflow must be one of 'ws', 'os', 'is', not 'rs'$"),
        # 6. a missing section
        (lambda t: t.split("[dram]")[0], r"^.*bad\.toml: section \[dram\] is missing$"),
        # 7. a bad number format
        (lambda t: t.replace('input_format = "int8"', 'input_format = "float8"'),
         r"^.*bad\.toml: array\.input_format: Number format must look like 'int8', 'uint16', 'q1\.6' or "
         r"'uq4\.4', not 'float8'$"),
        # 8. a size that does not fill whole words
        (lambda t: t.replace("size_bytes = 16384", "size_bytes = 16385"),
         r"^.*bad\.toml: scratchpad\.size_bytes must be a multiple of banks \* word_bytes = 16, not 16385$"),
        # 9. a yes/no capability written as a word
        (lambda t: t.replace("split_folds = false", 'split_folds = "no"'),
         r"^.*bad\.toml: array\.split_folds must be true or false, not 'no'$"),
        # 10. a description that is not text (info and dumps would print the number)
        (lambda t: t.replace('description = "', 'description = 5 #'),
         r"^.*bad\.toml: description must be a string, not 5$"),
        # 11. a sparsity pattern listed twice (a copy-paste slip)
        (lambda t: t.replace("sparsity = []", 'sparsity = ["2:4", "2:4"]'),
         r"^.*bad\.toml: array\.sparsity must not repeat a pattern, not \['2:4', '2:4'\]$"),
    ],
    ids=["syntax", "unknown-field", "out-of-range", "wrong-type", "bad-dataflow", "missing-section",
         "bad-format", "size-not-whole-words", "capability-not-bool", "description-not-text", "repeated-pattern"],
)
def test_bad_toml_names_file_and_field(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    text = edit(GOOD)
    assert text != GOOD
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        config.load(path)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("clock_hz =", "clock_Hz ="),
     r"unknown field clock_Hz \(did you mean clock_hz\? expected one of "),
    (lambda t: t.replace("[scratchpad]", "[scratchpd]"), r"unknown field scratchpd \(did you mean scratchpad\? "),
    (lambda t: t.replace("burst_bytes =", "burst_byte ="),
     r"unknown field dma\.burst_byte \(did you mean burst_bytes\? "),
    (lambda t: t + "\n[area]\nsram_um2_per_bt = 0.3\n",
     r"unknown field area\.sram_um2_per_bt \(did you mean sram_um2_per_bit\? "),
    (lambda t: t + "\n[energy]\nvector_op_pj_ = 0.3\n",
     r"unknown field energy\.vector_op_pj_ \(did you mean vector_op_pj\? "),
    (lambda t: t.replace("rows = 4", "zzz = 4"), r"unknown field array\.zzz \(expected one of rows, cols, "),
], ids=["top-level-case", "section", "field", "area", "energy", "nothing-close"])
def test_a_misspelt_field_names_the_closest_one(tmp_path, edit, message):
    path = tmp_path / "typo.toml"
    path.write_text(edit(GOOD))
    with pytest.raises(ConfigError, match=rf"^{path}: {message}"):
        config.load(path)


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace("rows = 4", "rows = 0").replace("lanes = 4", "lanes = -1"))
    with pytest.raises(ConfigError) as info:
        config.load(path)
    lines = str(info.value).splitlines()
    assert lines == [f"{path}: array.rows must be a positive integer, not 0",
                     f"{path}: vector.lanes must be a positive integer, not -1"]


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match=r"^tpu-v9: not a preset \(eyeriss, fpga-small, gemmini, gemmini-2021, "
                                          r"sparse-nm, tpu-v1\) and no such TOML file$"):
        config.load("tpu-v9")


def test_a_folder_is_not_mistaken_for_a_missing_file(tmp_path):
    folder = tmp_path / "design.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=rf"^{folder}: is a folder, not a TOML file \(or a preset: eyeriss, "):
        config.load(folder)


def test_sizes_accept_units():
    assert config.parse_size("256 KiB") == 262144
    assert config.parse_size("24MiB") == 24 * 2**20
    assert config.parse_size(4096) == 4096
    with pytest.raises(ConfigError, match=r"^size must be a byte count such as 262144 or '256 KiB', not '12 parsecs'$"):
        config.parse_size("12 parsecs")


def test_number_formats_parse_and_print():
    assert NumberFormat.parse("int8") == NumberFormat(8)
    assert NumberFormat.parse("UINT16") == NumberFormat(16, signed=False)
    q = NumberFormat.parse("q1.6")
    assert (q.bits, q.frac_bits, q.name, q.min_int, q.max_int) == (8, 6, "q1.6", -128, 127)
    assert NumberFormat.parse("uq4.4").bits == 8
    assert NumberFormat(32, overflow=Overflow.WRAP, rounding=Rounding.TRUNCATE).size_bytes == 4


def test_formats_with_rounding_round_trip(tmp_path):
    text = GOOD.replace('input_format = "int8"',
                        'input_format = { format = "q1.6", rounding = "truncate", overflow = "wrap" }')
    arch = config.loads(text)
    assert arch.array.input_format == NumberFormat(8, frac_bits=6, rounding=Rounding.TRUNCATE,
                                                   overflow=Overflow.WRAP)
    assert config.loads(config.dumps(arch)) == arch


def test_dataclasses_validate_on_construction():
    with pytest.raises(ConfigError, match=r"^rows must be a positive integer, not 0; cols must be a positive "
                                          r"integer, not -1$"):
        SystolicArray(rows=0, cols=-1)
    with pytest.raises(ConfigError, match=r"^N:M sparsity needs integers 1 <= N < M, not 4:4$"):
        Sparsity(4, 4)
    with pytest.raises(ConfigError, match=r"^bandwidth_bytes_per_cycle must be a positive number, not 0$"):
        DRAM(bandwidth_bytes_per_cycle=0)
    with pytest.raises(ConfigError, match=r"^size_bytes must be a positive integer, not True$"):
        Memory(size_bytes=True)
    assert Sparsity.parse("2:4") == Sparsity(2, 4) and str(Sparsity(1, 4)) == "1:4"


def test_an_n_m_array_needs_rows_in_multiples_of_n():
    with pytest.raises(ConfigError, match=r"^rows must be a multiple of N to run 2:4 sparsity, not 3$"):
        SystolicArray(rows=3, cols=4, sparsity=(Sparsity(2, 4),))
    assert SystolicArray(rows=3, cols=4, sparsity=(Sparsity(1, 4),)).rows == 3
