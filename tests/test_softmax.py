"""The softmax unit: configuration messages, and the RTL against the bit-exact model
(bench: ``sim/tb/softmax.py``)."""

import json
import shutil

import numpy as np
import pytest

from gen.config import ConfigError, SoftmaxConfig, parse_config
from gen.emit import render
from sim import runner
from sim.golden import softmax as golden
from tests.conftest import build_block, write_json

# Small units keep the builds short. P3 has 3 lanes (not a power of two) and max_len 64, so every
# length 1..64 fits and longer rows are cut. NARROW has one lane, a 12-bit input with 6 fraction bits
# and narrow overridden widths, where truncations and saturation matter most.
P3 = {"softmax": {"top": "softmax_p3", "lanes": 3, "in_width": 8, "in_frac": 4, "out_frac": 8,
                  "max_len": 64}}
NARROW = {"softmax": {"top": "softmax_narrow", "lanes": 1, "in_width": 12, "in_frac": 6,
                      "out_frac": 10, "max_len": 24, "sum_frac": 13, "recip_bits": 9}}


def params(sections):
    s = parse_config(sections).softmax
    return golden.SoftmaxParams(in_width=s.in_width, in_frac=s.in_frac, out_frac=s.out_frac,
                                max_len=s.max_len, lanes=s.lanes, sum_frac=s.sum_frac,
                                recip_bits=s.recip_bits)


def row(x, mask=None, name=None):
    out = {"x": [int(v) for v in x]}
    if mask is not None:
        out["mask"] = [int(v) for v in mask]
    if name:
        out["name"] = name
    return out


def edge_and_every_length(p, rng):
    """Every length 1..L_max (kind cycling), the edge cases at a few lengths."""
    rows = [row(golden.random_row(rng, L, p, golden.ROW_KINDS[L % 4]), name=f"L={L}")
            for L in range(1, p.max_len + 1)]
    for L in sorted({1, 2, p.lanes, p.lanes + 1, 17, p.max_len}):
        rows += [row(x, m, f"{name} L={L}") for name, (x, m) in golden.edge_rows(p, L).items()]
    return rows


def random_rows(p, rng, count, longest):
    """Random kinds, lengths up to ``longest`` (beyond L_max: cut) and masks (none, sparse, dense)."""
    rows = []
    for n in range(count):
        L = int(rng.integers(1, longest + 1))
        density = (0.0, 0.2, 0.9)[n % 3]
        rows.append(row(golden.random_row(rng, L, p, golden.ROW_KINDS[n % 4]),
                        rng.random(L) < density, f"random {n}"))
    return rows


def run_rows(tmp_path, sections, rows, seed, gap=0.0, stall=0.0):
    sim_build = build_block(sections, "softmax")
    env = {"ACCELGEN_SOFTMAX_ROWS": write_json(tmp_path, "rows.json", rows),
           "ACCELGEN_GAP": str(gap), "ACCELGEN_STALL": str(stall)}
    runner.run(sim_build, "sim.tb.softmax", testcase="rows", extra_env=env, seed=seed)


TRAFFIC = pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["steady", "gaps+stalls"])


@pytest.mark.sim
@TRAFFIC
def test_every_length_and_edge_cases(tmp_path, seed, traffic):
    """Rows of every length 1..64, the documented edge cases, back to back."""
    p = params(P3)
    rows = edge_and_every_length(p, np.random.default_rng(seed))
    run_rows(tmp_path, P3, rows, seed, *traffic)


@pytest.mark.sim
@TRAFFIC
def test_random_rows_masks_and_cuts(tmp_path, seed, traffic):
    """Random rows, lengths and masks, some longer than L_max (cut and counted)."""
    p = params(P3)
    rows = random_rows(p, np.random.default_rng(seed + 1), 60, p.max_len + 40)
    run_rows(tmp_path, P3, rows, seed, *traffic)


@pytest.mark.sim
def test_narrow_overrides(tmp_path, seed):
    """One lane, 12-bit input, overridden narrow widths: still bit-exact, with gaps and stalls."""
    p = params(NARROW)
    rng = np.random.default_rng(seed + 2)
    rows = edge_and_every_length(p, rng) + random_rows(p, rng, 30, p.max_len + 10)
    run_rows(tmp_path, NARROW, rows, seed, 0.25, 0.35)


# P3 with every pipelining knob changed from its default: bit-exact and at full rate too.
P3_FLAT = {"softmax": {**P3["softmax"], "top": "softmax_p3_flat", "table_reg": True,
                       "shift_reg": False, "recip_step_bits": 3, "mult_stages": 1}}
PIPELINES = pytest.mark.parametrize("sections", [P3, P3_FLAT], ids=["pipelined", "flat"])


def adversarial_lengths(p, rng):
    """Row sequences (lengths in elements) that stalled the unit when its reciprocal took one
    quotient bit per cycle and its row-information queue held two rows: rows of one beat, rows
    of one element, the longest row followed by many short ones or by rows of the old divider's
    M + 3 beats, the longest rows back to back, and random mixes of every length."""
    P, longest = p.lanes, p.max_beats * p.lanes
    divider = min((p.recip_bits + 3) * P, longest)
    return {
        "one_beat": [P] * 40,
        "one_element": [1] * 30,
        "longest_then_one_beat": [longest] + [P] * (p.max_beats + 8),
        "longest_then_divider_rows": [longest] + [divider] * 6 + [longest] + [divider] * 8,
        "longest": [longest] * 4,
        "alternating": [P, longest] * 4,
        "mixed": [int(n) for n in rng.integers(1, longest + 1, 40)],
    }


def adversarial_rows(p, rng):
    rows = []
    for name, lengths in adversarial_lengths(p, rng).items():
        rows += [row(golden.random_row(rng, L, p, golden.ROW_KINDS[n % 4]), name=f"{name} {n}")
                 for n, L in enumerate(lengths)]
    return rows


def ideal_output_cycles(beats, constant):
    """First to last output cycle of rows of ``beats`` beats sent back to back without a wait, when
    each row's output starts as soon as both its latency and the previous row's output allow: a
    row's first output cannot come before its last input (pass 2 needs the row's sum)."""
    start = end = None
    first_in = 0
    for b in beats:
        s = first_in + b + constant if end is None else max(end + 1, first_in + b + constant)
        start = s if start is None else start
        end = s + b - 1
        first_in += b
    return end - start + 1


def measure(sim_build, tmp_path, rows, name, alone=True):
    results = tmp_path / f"{name}.json"
    runner.run(sim_build, "sim.tb.softmax", testcase="measure", seed=1,
               extra_env={"ACCELGEN_SOFTMAX_ROWS": write_json(tmp_path, f"{name}-rows.json", rows),
                          "ACCELGEN_RESULTS": str(results),
                          "ACCELGEN_MEASURE_ALONE": "1" if alone else "0"})
    return json.loads(results.read_text())


@pytest.mark.sim
@PIPELINES
def test_latency_is_the_manifest_formula(tmp_path, sections):
    """A row sent alone: first output ``ceil(L / P) + latency_constant`` cycles after its first
    input, its last ``ceil(L / P) - 1`` cycles after that; the constant is the sum of its parts."""
    p = params(sections)
    rng = np.random.default_rng(5)
    sim_build = build_block(sections, "softmax")
    perf = json.loads(sim_build.manifest_path.read_text())["performance"]
    assert perf["latency_cycles"] == f"ceil(L / {p.lanes}) + {perf['latency_constant']}"
    assert perf["latency_constant"] == sum(perf["latency_parts"].values())
    assert perf["min_row_beats_without_bubbles"] == 1
    lengths = [1, p.lanes, p.lanes + 1, 17, p.max_len]
    got = measure(sim_build, tmp_path, [row(golden.random_row(rng, L, p)) for L in lengths], "lat")
    for L, alone in zip(lengths, got["alone"], strict=True):
        beats = -(-L // p.lanes)
        assert alone["latency"] == beats + perf["latency_constant"], (L, alone)
        assert alone["span"] == alone["latency"] + beats - 1, (L, alone)


@pytest.mark.sim
@PIPELINES
def test_full_rate_on_adversarial_sequences(tmp_path, seed, sections):
    """Every adversarial sequence back to back, the output always ready: the input never waits
    (one beat, P elements, per cycle), the output has no gap but those of a two-pass unit (a
    long row after short ones waits for its own last beat), and every beat is bit-exact."""
    p = params(sections)
    rows = adversarial_rows(p, np.random.default_rng(seed + 4))
    sim_build = build_block(sections, "softmax")
    perf = json.loads(sim_build.manifest_path.read_text())["performance"]
    stream = measure(sim_build, tmp_path, rows, "adv", alone=False)["stream"]
    assert stream["input_wait_cycles"] == 0, stream
    assert stream["input_cycles"] == stream["beats"], stream
    beats = [max(1, -(-len(r["x"]) // p.lanes)) for r in rows]
    assert stream["output_cycles"] == ideal_output_cycles(beats, perf["latency_constant"]), stream


@pytest.mark.sim
@PIPELINES
def test_adversarial_sequences_with_gaps_and_stalls(tmp_path, seed, sections):
    """The same sequences with random input gaps and output stalls: still bit-exact."""
    p = params(sections)
    rows = adversarial_rows(p, np.random.default_rng(seed + 5))
    run_rows(tmp_path, sections, rows, seed, 0.3, 0.4)


@pytest.mark.sim
def test_icarus(tmp_path, seed):
    """The same Verilog on Icarus Verilog, when it is installed."""
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed (Debian package iverilog); Verilator covers the rest")
    p = params(NARROW)
    rows = random_rows(p, np.random.default_rng(seed), 12, p.max_len + 5)
    sim_build = runner.emit_and_build(parse_config(NARROW), sim="icarus")["softmax"]
    env = {"ACCELGEN_SOFTMAX_ROWS": write_json(tmp_path, "rows.json", rows),
           "ACCELGEN_GAP": "0.2", "ACCELGEN_STALL": "0.3"}
    runner.run(sim_build, "sim.tb.softmax", testcase="rows", extra_env=env, seed=seed)


# --- Configuration and manifest.

@pytest.mark.parametrize(("section", "message"), [
    ({"lanes": 0}, "softmax.lanes = 0: must be an integer from 1 to 16"),
    ({"lanes": 17}, "softmax.lanes = 17: must be an integer from 1 to 16"),
    ({"in_width": 1}, "softmax.in_width = 1: must be an integer from 2 to 24"),
    ({"in_frac": 11}, "softmax.in_frac = 11: must be an integer from 0 to 10"),
    ({"in_width": 4, "in_frac": 4}, "softmax.in_frac = 4: must be at most softmax.in_width - 1 = 3"),
    ({"out_frac": 0}, "softmax.out_frac = 0: must be an integer from 1 to 16"),
    ({"max_len": 0}, "softmax.max_len = 0: must be an integer from 1 to 16384"),
    ({"max_len": 20000}, "softmax.max_len = 20000: must be an integer from 1 to 16384"),
    ({"sum_frac": 9}, "softmax.sum_frac = 9: must be 0 (derived) or from softmax.out_frac + 2 = 10 "
                      "to 48"),
    ({"sum_frac": 49}, "softmax.sum_frac = 49: must be an integer from 0 to 48"),
    ({"recip_bits": 3}, "softmax.recip_bits = 3: must be 0 (derived) or from 4 to 40"),
    ({"top": "9lives"}, 'softmax.top = "9lives": must be a Verilog identifier: a letter or _, then '
                        'letters, digits or _'),
    ({"lane": 4}, "softmax.lane = 4: unknown key; allowed keys are top, lanes, in_width, in_frac, "
                  "out_frac, max_len, sum_frac, recip_bits, table_reg, shift_reg, "
                  "recip_step_bits, mult_stages"),
    ({"recip_step_bits": 0}, "softmax.recip_step_bits = 0: must be an integer from 1 to 8"),
    ({"mult_stages": 3}, "softmax.mult_stages = 3: must be an integer from 1 to 2"),
])
def test_config_messages(section, message):
    with pytest.raises(ConfigError) as exc:
        parse_config({"softmax": section})
    assert str(exc.value) == message


def test_manifest_reports_derived_widths_and_performance():
    files = render(parse_config({"softmax": {"top": "sm", "lanes": 4, "max_len": 1024,
                                             "out_frac": 8}}))
    man = json.loads(files["sm.json"])
    q, perf = man["parameters"], man["performance"]
    assert (q["sum_frac"], q["recip_bits"]) == golden.derive_widths(8, 1024) == (28, 16)
    assert q["derived"] == {"sum_frac": True, "recip_bits": True}
    assert q["table_entries"] == 16 and q["table_entry_width"] == 29
    assert perf["throughput_elements_per_cycle"] == 4
    assert perf["latency_cycles"] == f"ceil(L / 4) + {perf['latency_constant']}"
    assert perf["min_row_beats_without_bubbles"] == 1
    assert q["pipeline"] == {"table_reg": False, "shift_reg": True, "recip_step_bits": 1,
                             "mult_stages": 2}
    assert q["row_info_entries"] == q["buffer_beats"]
    fields = {f["name"]: f for f in man["streams"]["o"]["fields"]}
    assert fields["o.data.0" if "o.data.0" in fields else "data.0"]["width"] == 9
    over = parse_config({"softmax": {"sum_frac": 15, "recip_bits": 14}}).softmax
    assert over == SoftmaxConfig(sum_frac=15, recip_bits=14)


# --- The benchmark.

def test_bench_accuracy_table():
    """The accuracy sweep of `accelgen bench softmax` on short rows: the derived widths meet the
    0.51 LSB bound and keep every argmax, the narrowest choice does not meet it."""
    from sim.bench.softmax import accuracy
    acc = accuracy(64, reps=1)
    by = {r["widths"]: r for r in acc["results"]}
    assert by["derived"]["meets_0p51"] and by["derived"]["worst_lsb"] <= 0.51
    assert by["derived"]["argmax_agree"] == by["derived"]["argmax_rows"] > 0
    assert by["derived"]["row_sum_worst_over_allowance"] <= 1
    assert not by["S10 M10"]["meets_0p51"]
    assert by["derived"]["sum_frac"] == golden.derive_widths(8, 64)[0]


@pytest.mark.sim
@pytest.mark.slow
def test_bench_softmax_quick(tmp_path, monkeypatch):
    from gen import cli
    monkeypatch.setenv("ACCELGEN_BENCH_OUT", str(tmp_path / "bench_out"))
    out = tmp_path / "softmax.json"
    assert cli.main(["bench", "softmax", "--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for r in result["speed"]["latency"]:
        assert r["measured"] == r["formula"], r
    lanes = result["accuracy"]["format"]["lanes"]
    names = [r["rows"] for r in result["speed"]["throughput"]]
    assert "L=64 x 16" in names and "256, then 76 x 6" in names, names
    for r in result["speed"]["throughput"]:
        assert r["elements_per_cycle"] == lanes and r["input_wait_cycles"] == 0, r
        assert r["output_cycles"] == r["ideal_output_cycles"], r
    try:
        import matplotlib  # noqa: F401 - only whether it is importable
    except ImportError:
        assert "not installed" in result["plot"]
    else:
        assert (tmp_path / "bench_out" / "softmax_error.png").stat().st_size > 1000


# Extremes of the parameter ranges: 16 lanes with a 16-bit input (few fraction bits and a narrow
# output keep the build within a couple of minutes), and the smallest formats (2-bit
# input with no fraction bits, 1 output fraction bit, rows of one element).
WIDE = {"softmax": {"top": "softmax_p16", "lanes": 16, "in_width": 16, "in_frac": 2, "out_frac": 6,
                    "max_len": 40}}
TINY = {"softmax": {"top": "softmax_tiny", "lanes": 1, "in_width": 2, "in_frac": 0, "out_frac": 1,
                    "max_len": 1}}


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sections", [WIDE, TINY], ids=["16-lanes-int16", "tiny"])
def test_parameter_extremes(tmp_path, seed, sections):
    p = params(sections)
    rng = np.random.default_rng(seed + 3)
    rows = edge_and_every_length(p, rng) + random_rows(p, rng, 20, p.max_len + 3 * p.lanes)
    run_rows(tmp_path, sections, rows, seed, 0.2, 0.3)
