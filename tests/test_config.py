"""Configuration loading and validation: every message is pinned."""

import pytest

from gen.config import (
    ConfigError,
    FlowConfig,
    GemmConfig,
    config_hash,
    default_config,
    gemm_acc_width_needed,
    load_config,
    parse_config,
)


def test_default_config_is_valid():
    config = default_config()
    # default.toml sets every key to its default, but for a smaller array (see its comment).
    assert config.gemm == GemmConfig(rows=4, cols=4, max_m=64)
    assert config_hash(config) == config_hash(load_config(None))


@pytest.mark.parametrize("data, message", [
    ({"gemm": {"rows": 0}}, "gemm.rows = 0: must be an integer from 1 to 64"),
    ({"gemm": {"cols": -3}}, "gemm.cols = -3: must be an integer from 1 to 64"),
    ({"gemm": {"rows": 65}}, "gemm.rows = 65: must be an integer from 1 to 64"),
    ({"gemm": {"rows": "8"}}, 'gemm.rows = "8": must be an integer from 1 to 64'),
    ({"gemm": {"rows": 8.0}}, "gemm.rows = 8.0: must be an integer from 1 to 64"),
    ({"gemm": {"rows": True}}, "gemm.rows = true: must be an integer from 1 to 64"),
    ({"gemm": {"max_k": 0}}, "gemm.max_k = 0: must be an integer from 1 to 65536"),
    ({"gemm": {"out_fifo_depth": 3}},
     "gemm.out_fifo_depth = 3: must be an integer from 4 to 4096"),
    ({"gemm": {"colls": 8}},
     "gemm.colls = 8: unknown key; allowed keys are top, rows, cols, modes, acc_width, max_m, "
     "max_n, max_k, out_fifo_depth, vsq_vector_sizes, vsq_scale_bits, vsq_post_mult_bits, "
     "vsq_post_row_mult_bits, sparsity"),
    ({"gemm": {"modes": ["int8", "int2"]}},
     'gemm.modes = ["int8", "int2"]: must be a non-empty list of distinct names from: int8, int4, '
     "w4a8, fp8_e4m3, fp8_e5m2"),
    ({"gemm": {"modes": []}},
     "gemm.modes = []: must be a non-empty list of distinct names from: int8, int4, w4a8, "
     "fp8_e4m3, fp8_e5m2"),
    ({"gemm": {"modes": ["int8", "int8"]}},
     'gemm.modes = ["int8", "int8"]: must be a non-empty list of distinct names from: int8, int4, '
     "w4a8, fp8_e4m3, fp8_e5m2"),
    ({"gemm": {"modes": "int8"}},
     'gemm.modes = "int8": must be a non-empty list of distinct names from: int8, int4, w4a8, '
     "fp8_e4m3, fp8_e5m2"),
    ({"gemm": {"top": "9lives"}},
     'gemm.top = "9lives": must be a Verilog identifier: a letter or _, then letters, digits or _'),
    ({"gemm": {"acc_width": 24, "max_k": 1024}},
     "gemm.acc_width = 24: must be at least 26 so that gemm.max_k = 1024 INT8 products cannot "
     "overflow"),
    ({"gemm": {"max_m": 65536, "max_k": 65536, "rows": 1, "acc_width": 33}},
     "gemm.max_m = 65536: max_m * ceil(max_k / rows) must be at most 1048576 activation-buffer "
     "words; it is 4294967296"),
    ({"gemm": {"vsq_post_mult_bits": 16, "modes": ["fp8_e4m3", "fp8_e5m2"]}},
     "gemm.vsq_post_mult_bits = 16: must be 0 when gemm.modes has no integer mode (int8, int4, "
     "w4a8): the post-processing unit scales integer accumulators"),
    ({"gemm": {"vsq_post_mult_bits": 1}},
     "gemm.vsq_post_mult_bits = 1: must be 0 (none) or from 2 to 32"),
    ({"gemm": {"vsq_post_row_mult_bits": 8}},
     "gemm.vsq_post_row_mult_bits = 8: must be 0 unless gemm.vsq_post_mult_bits is set (the "
     "per-row factor is part of the post-processing unit)"),
    ({"gemm": {"vsq_post_mult_bits": 8, "vsq_post_row_mult_bits": 33}},
     "gemm.vsq_post_row_mult_bits = 33: must be an integer from 0 to 32"),
    ({"fft": {}}, "fft = {}: unknown section; allowed sections are gemm, softmax, noc, system, "
     "flow"),
    ({}, "config = {}: must have at least one section of: gemm, softmax, noc, system"),
    ({"flow": {}},
     "config = {flow = {}}: must have at least one section of: gemm, softmax, noc, system"),
    ({"gemm": {}, "flow": {"clock_period_ns": 0}},
     "flow.clock_period_ns = 0: must be a number from 0.5 to 1000"),
    ({"gemm": {}, "flow": {"clock_period_ns": "5"}},
     'flow.clock_period_ns = "5": must be a number from 0.5 to 1000'),
    ({"gemm": {}, "flow": {"clock_period_ns": True}},
     "flow.clock_period_ns = true: must be a number from 0.5 to 1000"),
    ({"gemm": {}, "flow": {"clock_period_ns": float("nan")}},
     "flow.clock_period_ns = nan: must be a number from 0.5 to 1000"),
    ({"gemm": {}, "flow": {"io_delay_fraction": 0.5}},
     "flow.io_delay_fraction = 0.5: must be a number from 0 to 0.45"),
    ({"gemm": {}, "flow": {"io_delay_fraction": -0.1}},
     "flow.io_delay_fraction = -0.1: must be a number from 0 to 0.45"),
    ({"gemm": {}, "flow": {"reset_false_path": 1}},
     "flow.reset_false_path = 1: must be true or false"),
    ({"gemm": {}, "flow": {"sram": "macro"}},
     'flow.sram = "macro": must be one of behavioural, blackbox'),
    ({"gemm": {}, "flow": {"clock": 5}},
     "flow.clock = 5: unknown key; allowed keys are clock_period_ns, io_delay_fraction, "
     "reset_false_path, sram"),
    ({"gemm": {}, "flow": 5}, "flow = 5: must be a table"),
    ({"gemm": 3}, "gemm = 3: must be a table"),
])
def test_bad_values_are_named(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert str(info.value) == message


def test_post_processing_without_vsq():
    """The post-processing unit may be built without VSQ (plain per-channel scaling of INT8 /
    INT4 / W4A8 accumulators), also beside FP8 modes."""
    g = parse_config({"gemm": {"vsq_post_mult_bits": 16}}).gemm
    assert g.vsq_post_mult_bits == 16 and g.vsq_vector_sizes == ()
    parse_config({"gemm": {"vsq_post_mult_bits": 2, "modes": ["fp8_e4m3", "int8"]}})


def test_flow_defaults_and_integers():
    """[flow] is optional (defaults apply); an integer period is taken as a number of nanoseconds."""
    assert parse_config({"gemm": {}}).flow == FlowConfig()
    flow = parse_config({"gemm": {}, "flow": {"clock_period_ns": 4}}).flow
    assert flow.clock_period_ns == 4.0 and isinstance(flow.clock_period_ns, float)
    assert default_config().flow == FlowConfig(clock_period_ns=10.0, io_delay_fraction=0.2,
                                               reset_false_path=True)


def test_acc_width_rule_is_tight():
    """The smallest width allowed holds max_k * 2**14 as a positive two's complement value, and one
    bit less does not."""
    for max_k in (1, 2, 3, 255, 256, 257, 4096):
        width = gemm_acc_width_needed(max_k)
        assert max_k * 2**14 <= 2 ** (width - 1) - 1
        assert max_k * 2**14 > 2 ** (width - 2) - 1
        parse_config({"gemm": {"max_k": max_k, "acc_width": width}})


def test_bad_toml_is_reported(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[gemm\nrows = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"{path}: is not valid TOML (Expected ']' at the end of a table "
                               f"declaration (at line 1, column 6))")


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("DIR", "is a folder, not a configuration file; give a .toml file"),
    (b"[gemm]\ntop = 'caf\xe9'\n", "is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"),
    (b"\xff\xfe[\x00g\x00", "is not UTF-8 text (byte 0xff on line 1); save it as UTF-8"),
    (b"x" * (2**20 + 1), "is 1048577 bytes long; a configuration file is at most 1048576 bytes"),
])
def test_unreadable_configuration_files(tmp_path, content, message):
    path = tmp_path / "c.toml"
    if content == "DIR":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_device_and_empty_path(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config("/dev/null")
    assert str(info.value) == ("/dev/null: is not a regular file (a device, pipe or socket); give "
                               "a .toml file")
    with pytest.raises(ConfigError) as info:
        load_config("")
    assert str(info.value) == '"": the configuration path is empty; give a .toml file'


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[gemm]\nrows = 2\n")
    assert load_config(path).gemm.rows == 2


@pytest.mark.parametrize("data, message", [
    ({"gemm": {"top": "same"}, "softmax": {"top": "same"}},
     'softmax.top = "same": must differ from gemm.top = "same" (each block is a Verilog module '
     "and a set of files of its own)"),
    ({"gemm": {"top": "Blk"}, "noc": {"top": "blk"}},
     'noc.top = "blk": must differ from gemm.top = "Blk" when letter case is ignored (each block '
     "is a Verilog module and a set of files of its own)"),
    ({"noc": {"top": "x"}, "system": {"top": "x"}},
     'system.top = "x": must differ from noc.top = "x" (each block is a Verilog module and a set '
     "of files of its own)"),
    ({"gemm": {"top": "module"}},
     'gemm.top = "module": is a Verilog or SystemVerilog keyword; choose another module name'),
    ({"softmax": {"top": "logic"}},
     'softmax.top = "logic": is a Verilog or SystemVerilog keyword; choose another module name'),
    ({"noc": {"top": "uwire"}},
     'noc.top = "uwire": is a Verilog or SystemVerilog keyword; choose another module name'),
    ({"system": {"top": "interface"}},
     'system.top = "interface": is a Verilog or SystemVerilog keyword; choose another module name'),
    ({"gemm": {"top": "a" * 129}},
     f'gemm.top = "{"a" * 115}...": must be at most 128 characters long'),
    ({"gemm": {"top": "caf\u00e9"}},
     'gemm.top = "caf\\u00e9": must be a Verilog identifier: a letter or _, then letters, digits '
     "or _"),
    ({"gemm": {"rows": list(range(100))}},
     "gemm.rows = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, "
     "22, 23, 24, 25, 26, 27, 28, 29, 30, 3...]: must be an integer from 1 to 64"),
    ({"gemm": {"a b\nc": 1}},
     'gemm."a b\\nc" = 1: unknown key; allowed keys are top, rows, cols, modes, acc_width, max_m, '
     "max_n, max_k, out_fifo_depth, vsq_vector_sizes, vsq_scale_bits, vsq_post_mult_bits, "
     "vsq_post_row_mult_bits, sparsity"),
])
def test_module_names_and_one_line_messages(data, message):
    """Tops are distinct, never keywords; a message is one line of bounded length."""
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert str(info.value) == message
    assert "\n" not in str(info.value)
