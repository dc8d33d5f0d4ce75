"""End to end: real models on a system of tiles through the RTL (``sim/bench/demo.py``,
``sim/tb/system.py``), every result bit for bit against :mod:`sim.golden.system`.

The tests use a small tile (2 x 2 engines, ``max_m`` 8) so that one build of a 2 x 2 system serves
them all (Icarus when present); ``accelgen demo`` runs the 4 x 4-engine tile at full size."""

import shutil

import pytest

from gen import cli
from sim.bench import demo as D

pytest.importorskip("sklearn", reason="the digits MLP needs scikit-learn (extra: bench)")

SMALL_TILE = D.tile_config(2, 8, 128, 128)
SMALL_SOFTMAX = {"lanes": 2, "in_width": 8, "in_frac": 4, "out_frac": 7, "max_len": 32}
# Icarus builds a system in seconds where Verilator needs minutes (tests/test_system.py builds one
# with Verilator); without Icarus the tests run on Verilator.
SIM = "icarus" if shutil.which("iverilog") else None
SMALL = {"tile": SMALL_TILE, "softmax": SMALL_SOFTMAX, "spad_words": 4096, "sim": SIM}


@pytest.mark.slow
def test_mlp_on_2x2_tiles_is_bit_exact_with_stalls(seed):
    """W4A4 and W4A8 logits of 12 images (two batches of max_m = 8 and 4) equal the golden
    model's, with random gaps on the host port's input and backpressure on its output."""
    r = D.demo_mlp(images=12, gap=0.2, stall=0.3, seed=seed, **SMALL)
    assert r["passed"]
    for row in r["results"]:
        assert row["logits"] == 12 * 10
        assert row["mismatches"] == 0 and row["logits_equal"], row
        assert row["accumulators"] == 12 * (128 + 10) and row["acc_mismatches"] == 0, row
        # the weights once, then each batch's two layers
        assert [p["name"] for p in row["phases"]][0] == "weights" and len(row["phases"]) == 5
        # every tile with columns computed; the 2 x 2 split leaves none idle for 128 columns
        assert all(b > 0 for b in row["gemm_busy"])


def test_attention_on_2x2_tiles_is_bit_exact_with_stalls(seed):
    """BMM1 -> softmax -> BMM2 with L = 32, d = 8 (8 rows of Q per tile): the accumulators equal
    the golden model's, and the result is close to float64 attention. (The quick subset's end-to-end
    check of the system; the MLP test, about 100 s, is slow.)"""
    r = D.demo_attention(seq=32, d=8, gap=0.2, stall=0.3, seed=seed, **SMALL)
    assert r["mismatches"] == 0 and r["bit_exact"], r
    assert r["error_vs_float64"]["rel_rms"] < 0.25
    assert all(b > 0 for b in r["gemm_busy"])


@pytest.mark.slow
def test_one_layer_on_1x1_and_2x2_gives_the_same_accumulators(seed):
    """Strong scaling's workload: the layer's accumulators are the golden model's on both systems,
    and four tiles take fewer cycles than one."""
    r = D.demo_scaling(systems=((1, 1), (2, 2)), images=8, seed=seed, **SMALL)
    assert r["passed"]
    one, four = r["rows"]
    assert one["bit_exact"] and four["bit_exact"]
    assert four["cycles"] < one["cycles"]
    assert 0 <= four["communication_fraction"] < 1


def test_demo_command_lists_the_demos(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    out = capsys.readouterr().out
    for name in ("mlp", "attention", "scaling"):
        assert name in out


def test_system_sections_are_a_valid_configuration():
    from gen.config import parse_config
    cfg = parse_config(D.system_sections(2, 2))
    assert cfg.system.kx == 2 and cfg.system.gemm.rows == 4
    assert {"int4", "w4a8", "int8"} <= set(cfg.system.gemm.modes)


def test_demo_command_writes_json_and_fails_on_a_mismatch(tmp_path, monkeypatch, capsys, seed):
    """`accelgen demo attention --json F` on the small tile: the table, the JSON, exit status 0;
    and exit status 1 once a result is made to differ from the golden model."""
    import json

    from sim.golden import system as GS
    small = {k: v for k, v in SMALL.items() if k != "sim"}
    monkeypatch.setitem(D.DEMOS, "attention", lambda quick, sim: D.demo_attention(
        seq=32, d=8, seed=seed, sim=sim, **small))
    argv = ["demo", "attention", "--json", str(tmp_path / "a.json")] + (["--sim", SIM] if SIM
                                                                          else [])
    assert cli.main(argv) == 0
    assert "bit-exact" in capsys.readouterr().out
    assert json.loads((tmp_path / "a.json").read_text())["bit_exact"] is True
    real = GS.attention

    def off_by_one(*args, **kwargs):
        out = real(*args, **kwargs)
        out["acc"] = out["acc"].copy()
        out["acc"][0, 0] += 1
        return out
    monkeypatch.setattr(GS, "attention", off_by_one)
    assert cli.main(argv) == 1
    assert "MISMATCH (1 of 256 outputs differ)" in capsys.readouterr().out
