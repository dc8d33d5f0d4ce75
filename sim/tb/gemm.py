"""cocotb bench of the GEMM engine (:class:`gen.gemm.GemmEngine`) against :mod:`sim.golden.gemm`.

The pytest side (``tests/test_gemm.py``, ``sim/bench/gemm.py``) builds the engine with
:mod:`sim.runner` and passes, in the environment:

ACCELGEN_MANIFEST : the top's manifest (ports, payload fields, parameters).
ACCELGEN_GEMM_CASES : a JSON file with a list of GEMMs: ``{"mode", "m", "n", "k", "kind"}``, where
    ``kind`` is a :func:`sim.golden.gemm.random_operands` kind (FP8 modes have more kinds: NaNs,
    infinities, cancellation; :data:`sim.golden.gemm.FP8_KINDS`).
ACCELGEN_GAP, ACCELGEN_STALL : probabilities of an idle cycle on every input stream and of a stalled
    cycle on the output (0 by default).
ACCELGEN_RESULTS : where ``measure`` writes its cycle counts (JSON).
SEED : the seed of the random operands and of the gaps and stalls.

All the cases' commands, weights and activations are queued at once, so commands follow each other as
fast as the engine takes them; the scoreboard compares every result beat with the golden model's.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from sim.golden import gemm as golden
from sim.runner import seed_from_env
from sim.tb.streams import Scoreboard, StreamSink, StreamSource, load_manifest, reset, start_clock

PERIOD_NS = 10


class GemmTB:
    """Clock, reset, the three input sources and the output sink of one engine."""

    def __init__(self, dut, *, seed, gap=0.0, stall=0.0):
        self.dut = dut
        self.man = load_manifest()
        self.rows = self.man.parameters["rows"]
        self.cols = self.man.parameters["cols"]
        self.codes = self.man.parameters["mode_codes"]
        self.rng = np.random.default_rng(seed)
        self.cmd = StreamSource(dut, "cmd", dut.clk, gap=gap, rng=self.rng)
        self.a = StreamSource(dut, "a", dut.clk, gap=gap, rng=self.rng)
        self.w = StreamSource(dut, "w", dut.clk, gap=gap, rng=self.rng)
        self.o = StreamSink(dut, "o", dut.clk, stall=stall, rng=self.rng)
        self.scoreboard = Scoreboard("o", log=dut._log)

    async def start(self):
        await start_clock(self.dut, PERIOD_NS)
        await reset(self.dut)

    def queue(self, mode, a, w, code=None):
        """Queue one GEMM; returns its expected output beats."""
        m, k = a.shape
        n = w.shape[1]
        pay = self.man.payloads
        code = self.codes[mode] if code is None else code
        self.cmd.send([pay["cmd"].pack(m=m, n=n, k=k, mode=code)])
        # FP8 padding lanes (past K or N) carry NaN codes: the engine must ignore them.
        pad = 0x7F if mode in golden.FP_MODES else 0
        self.w.send(pay["w"].pack(data=beat)
                    for beat in golden.weight_beats(w, mode, self.rows, self.cols, pad=pad))
        self.a.send(pay["a"].pack(data=beat) for beat in golden.act_beats(a, mode, self.rows, pad=pad))
        y = golden.gemm(a, w, mode)
        if mode in golden.FP_MODES:
            # binary32 patterns sit in the low 32 bits of a signed lane: as the sink reads it.
            width = pay["o"].fields["data.0"][1]
            y = np.where(y >> (width - 1) != 0, y - (1 << width), y)
        return golden.output_beats(y, self.cols)

    async def collect(self, expected, labels, timeout_cycles):
        await with_timeout(self.o.wait_for(len(expected)), timeout_cycles * PERIOD_NS, "ns")
        pay = self.man.payloads["o"]
        for i, (want, word, label) in enumerate(zip(expected, self.o.received, labels, strict=True)):
            got = pay.unpack(word)
            self.scoreboard.compare(want, (got["data"], got["last"]), f"beat {i} of {label}")
        for _ in range(5):
            await RisingEdge(self.dut.clk)
        extra = len(self.o.received) - len(expected)
        assert extra == 0, f"{extra} result beats more than expected"
        self.scoreboard.check()


def _cases():
    with open(os.environ["ACCELGEN_GEMM_CASES"], encoding="utf-8") as f:
        return json.load(f)


def _knobs():
    return float(os.environ.get("ACCELGEN_GAP", "0")), float(os.environ.get("ACCELGEN_STALL", "0"))


def _cycle_budget(tb, cases, gap, stall):
    """A generous bound on the cycles ``cases`` take, for the timeout: every tile costs at least its M
    rows and a weight load plus the array's drain."""
    cycles = 1000
    for case in cases:
        tiles = -(-case["n"] // tb.cols) * -(-case["k"] // tb.rows)
        cycles += tiles * (case["m"] + 2 * tb.rows + tb.cols + 8) + case["m"]
    return int(4 * cycles / max(0.05, (1 - gap) * (1 - stall)))


def _queue_cases(tb, cases):
    expected, labels = [], []
    macs = 0
    for i, case in enumerate(cases):
        a, w = golden.random_operands(tb.rng, case["m"], case["n"], case["k"], case["mode"],
                                      case.get("kind", "uniform"))
        beats = tb.queue(case["mode"], a, w)
        expected += beats
        labels += [f"case {i} {case}"] * len(beats)
        macs += case["m"] * case["n"] * case["k"]
    return expected, labels, macs


@cocotb.test()
async def cases(dut):
    """Every case of ACCELGEN_GEMM_CASES, queued back to back, against the golden model."""
    gap, stall = _knobs()
    tb = GemmTB(dut, seed=seed_from_env(), gap=gap, stall=stall)
    await tb.start()
    expected, labels, macs = _queue_cases(tb, _cases())
    budget = _cycle_budget(tb, _cases(), gap, stall)
    await tb.collect(expected, labels, budget)
    assert int(dut.errors.value) == 0, f"errors = {int(dut.errors.value)} on valid commands"
    assert not dut.busy.value, "busy stays high after the last result"
    dut._log.info("%d result beats matched", tb.scoreboard.compared)


@cocotb.test()
async def bad_commands(dut):
    """Commands with a size of 0, a size above its maximum or a mode not built are dropped and counted;
    the engine then runs a valid command correctly."""
    tb = GemmTB(dut, seed=seed_from_env())
    await tb.start()
    cfg = tb.man.config
    pay = tb.man.payloads["cmd"]
    built = set(tb.codes.values())
    unbuilt = next(code for code in range(8) if code not in built)
    bad = [dict(m=0, n=1, k=1, mode=0), dict(m=1, n=0, k=1, mode=0), dict(m=1, n=1, k=0, mode=0),
           dict(m=cfg["max_m"] + 1, n=1, k=1, mode=0), dict(m=1, n=cfg["max_n"] + 1, k=1, mode=0),
           dict(m=1, n=1, k=cfg["max_k"] + 1, mode=0), dict(m=1, n=1, k=1, mode=unbuilt)]
    # A size above its maximum is sent only where the field can hold it.
    fits = [b for b in bad if all(b[f] >> pay.fields[f][1] == 0 for f in b)]
    tb.cmd.send(pay.pack(**b) for b in fits)
    mode = cfg["modes"][0]
    a, w = golden.random_operands(tb.rng, 3, tb.cols + 1, tb.rows + 1, mode)
    expected = tb.queue(mode, a, w)
    await tb.collect(expected, ["valid command after bad ones"] * len(expected), 20000)
    assert int(dut.errors.value) == len(fits), \
        f"errors = {int(dut.errors.value)}, expected {len(fits)} dropped commands"


@cocotb.test()
async def measure(dut):
    """Cycle counts for ACCELGEN_GEMM_CASES, run one at a time without gaps or stalls."""
    results = []
    tb = GemmTB(dut, seed=seed_from_env(1))
    await tb.start()
    for case in _cases():
        before = len(tb.o.received)
        expected, labels, macs = _queue_cases(tb, [case])
        first_in = None
        while len(tb.o.received) < before + len(expected):
            await RisingEdge(dut.clk)
            if first_in is None and dut.cmd__valid.value and dut.cmd__ready.value:
                first_in = get_sim_time("ns") / PERIOD_NS
        last_out = get_sim_time("ns") / PERIOD_NS
        got = [tb.man.payloads["o"].unpack(w) for w in tb.o.received[before:]]
        for i, (want, word) in enumerate(zip(expected, got, strict=True)):
            tb.scoreboard.compare(want, (word["data"], word["last"]), f"beat {i} of {case}")
        cycles = int(last_out - first_in)
        results.append(dict(case, cycles=cycles, macs=macs))
        while dut.busy.value:
            await RisingEdge(dut.clk)
    tb.scoreboard.check()
    with open(os.environ["ACCELGEN_RESULTS"], "w", encoding="utf-8") as f:
        json.dump(results, f)
