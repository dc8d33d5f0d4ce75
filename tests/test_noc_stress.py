"""Stress of the mesh network-on-chip at saturation, with the synthesizable traffic
generators, checkers and watchdog of :mod:`gen.noc_stress` around the mesh (bench: ``sim/tb/noc_stress.py``).

Every run: mixed uniform random, transpose and hotspot traffic with 20% multicast (random masks), random
packet lengths, every node injecting at saturation, 30% random ejection backpressure; then injection
stops and the network must drain. Passing means: the watchdog (1000 cycles without a beat taken on any
stream while deliveries are owed) never fired, every owed delivery was made (in-flight count back to 0,
copies received == copies sent), no checker error (payload, destination, per-(source, destination) order,
length), no drop, and every node's sent and received counts equal those the numpy model
(:mod:`sim.golden.noc_stress`) computes from the number of packets each source sent.

The 4 x 4 run for 10**6 cycles is ``slow``; all use Verilator (Icarus runs this top at about 60
cycles/s). The 8 x 8 run for 10**5 cycles is in ``accelgen bench noc-stress`` (:mod:`sim.bench.noc_stress`):
its top is about 370k lines of Verilog, and its emission and Verilator build take about 8 CPU-minutes,
beyond the suite's budget.
"""

import numpy as np
import pytest

from sim.bench import noc_stress as stress
from sim.bench.noc_stress import STRESS_2X2, STRESS_4X4, run_stress
from sim.golden import noc_stress as golden
from sim.tb import noc_stress as bench


def check_passed(result, cycles):
    assert result["problems"] == []
    assert bench.verdict(result) == []
    assert result["injection_cycles"] >= cycles
    assert not result["wd_fired"] and result["wd_max"] < 1000
    assert result["drained"] and result["in_flight"] == 0 and not result["active"]
    assert result["rx_packets_total"] == result["tx_copies_total"] > 0
    # The mix is what it claims to be: every pattern and multicast are present, multicast near 20%.
    patterns = result["expected"]["patterns"]
    assert all(p > 0 for p in patterns), patterns
    assert 0.15 < result["tx_mcast_total"] / result["tx_packets_total"] < 0.25


@pytest.mark.sim
def test_stress_2x2_quick(seed, tmp_path):
    """2 x 2 for 2 * 10**4 cycles at saturation: no watchdog, drained, no error, golden counts."""
    cycles = 20_000
    check_passed(run_stress(STRESS_2X2, cycles, seed, tmp_path), cycles)


@pytest.mark.sim
def test_stress_catches_corruption(seed, tmp_path):
    """Not vacuous: one flipped data bit in one flit of node 0 is reported by a checker."""
    result = run_stress(STRESS_2X2, 4000, seed, tmp_path, fault="corrupt")
    assert result["errors_total"] >= 1 and result["error_any"]
    assert any(k for k in result["err_kinds"])
    assert any("checker errors" in p for p in result["problems"])
    assert not result["wd_fired"] and result["drained"]


@pytest.mark.sim
def test_stress_watchdog_fires_on_stuck_ejection(seed, tmp_path):
    """Not vacuous: when one node's ejection stream stops for good, the network stalls, the watchdog
    fires and the drain does not complete."""
    result = run_stress(STRESS_2X2, 8000, seed, tmp_path, fault="stuck", ACCELGEN_STRESS_DRAIN=3000)
    assert result["wd_fired"]
    assert 2999 <= result["wd_at"] <= 8000 + 3000
    assert not result["drained"] and result["in_flight"] > 0
    assert any("watchdog" in p for p in result["problems"])


@pytest.mark.sim
@pytest.mark.slow
def test_stress_4x4_million_cycles(seed, tmp_path):
    cycles = 1_000_000
    check_passed(run_stress(STRESS_4X4, cycles, seed, tmp_path), cycles)


def test_golden_constants_match_the_generator():
    """The numpy model repeats the generator's constants; they must agree."""
    from gen import noc_stress as hw
    for name in ("SEQ_BITS", "FMIX_C1", "FMIX_C2", "GOLDEN", "MASK_K2", "MASK_K3"):
        assert getattr(golden, name) == getattr(hw, name), name


def test_golden_mix():
    """The model's traffic mix: 51/256 multicast, a third of the rest each pattern, lengths 1 to max,
    masks never empty, transpose an involution."""
    h = golden.packet_hash(12345, 3, np.arange(20000))
    d = golden.decisions(h, kx=4, ky=4, max_packet_flits=4, src=3)
    assert abs(d["mcast"].mean() - 51 / 256) < 0.01
    uni = d["pattern"][~d["mcast"]]
    assert all(abs((uni == k).mean() - 1 / 3) < 0.02 for k in range(3))
    assert set(d["length"]) == {1, 2, 3, 4}
    assert d["dests"].any(axis=1).all()
    assert (d["dests"].sum(axis=1)[~d["mcast"]] == 1).all()
    assert (d["dests"][~d["mcast"] & (d["pattern"] == 1)].argmax(axis=1) == 12).all()
    for kx, ky in ((4, 4), (3, 2), (8, 8)):
        assert [golden.transpose(kx, ky, golden.transpose(kx, ky, n))
                for n in range(kx * ky)] == list(range(kx * ky))


@pytest.mark.sim
def test_bench_quick_reports_a_passing_run():
    """``accelgen bench noc-stress --quick``: one 2 x 2 run that passes, and its table says so."""
    result = stress.run(quick=True)
    (row,) = result["runs"]
    assert row["mesh"] == "2x2" and row["passed"] and row["problems"] == []
    assert row["injection_cycles"] >= 20_000 and row["copies_delivered"] > 0
    table = stress.format_table(result)
    assert "2x2" in table and "pass" in table
