"""cocotb bench of the softmax unit (:class:`gen.softmax.Softmax`) against :mod:`sim.golden.softmax`.

The pytest side (``tests/test_softmax.py``, ``sim/bench/softmax.py``) builds the unit with
:mod:`sim.runner` and passes, in the environment:

ACCELGEN_MANIFEST : the top's manifest (ports, payload fields, derived widths).
ACCELGEN_SOFTMAX_ROWS : a JSON file with a list of rows ``{"x": [ints], "mask": [0/1, ...]}`` (mask
    optional); each row is sent as ``ceil(L / P)`` beats, the last padded with masked lanes.
ACCELGEN_GAP, ACCELGEN_STALL : probabilities of an idle input cycle and of a stalled output cycle.
ACCELGEN_RESULTS : where ``measure`` writes its cycle counts (JSON).
ACCELGEN_MEASURE_ALONE : "0" makes ``measure`` skip sending each row alone (default "1").
SEED : the seed of the gaps and stalls.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, with_timeout

from sim.golden import softmax as golden
from sim.runner import seed_from_env
from sim.tb.streams import (
    Scoreboard,
    StreamSink,
    StreamSource,
    gap_and_stall,
    load_manifest,
    reset,
    start_clock,
)

PERIOD_NS = 10


def params_of(manifest):
    q = manifest.parameters
    return golden.SoftmaxParams(in_width=q["in_width"], in_frac=q["in_frac"], out_frac=q["out_frac"],
                                max_len=q["max_len"], lanes=q["lanes"], sum_frac=q["sum_frac"],
                                recip_bits=q["recip_bits"])


class Handshakes:
    """Counts cycles and records the cycle of every input and output handshake."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self.inputs = []
        self.outputs = []
        self.input_waits = 0   # cycles with i.valid high and i.ready low
        self.wait_run = 0
        self.longest_wait = 0  # the longest run of such cycles
        cocotb.start_soon(self._run())

    async def _run(self):
        dut = self.dut
        edge = RisingEdge(dut.clk)
        while True:
            await edge
            self.cycle += 1
            if dut.i__valid.value == 1:
                if dut.i__ready.value == 1:
                    self.inputs.append(self.cycle)
                    self.wait_run = 0
                else:
                    self.input_waits += 1
                    self.wait_run += 1
                    self.longest_wait = max(self.longest_wait, self.wait_run)
            if dut.o__valid.value == 1 and dut.o__ready.value == 1:
                self.outputs.append(self.cycle)


class SoftmaxTB:
    """Clock, reset, the input source, the output sink, the model and the scoreboard of one unit."""

    def __init__(self, dut, *, seed, gap=0.0, stall=0.0):
        self.dut = dut
        self.man = load_manifest()
        self.p = params_of(self.man)
        self.table = golden.exp2_table(self.p)
        self.rng = np.random.default_rng(seed)
        self.i = StreamSource(dut, "i", dut.clk, gap=gap, rng=self.rng)
        self.o = StreamSink(dut, "o", dut.clk, stall=stall, rng=self.rng)
        self.hs = Handshakes(dut)
        self.scoreboard = Scoreboard("o", log=dut._log)
        self.expected = []
        self.labels = []
        self.cuts = 0

    async def start(self):
        await start_clock(self.dut, PERIOD_NS)
        await reset(self.dut)

    def queue(self, x, mask, label):
        """Queue one row (as the user sends it); returns its number of beats."""
        p, pay = self.p, self.man.payloads["i"]
        x = np.asarray(x, dtype=np.int64)
        mask = np.zeros(x.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        xb, mb = golden.to_beats(x, mask, p.lanes)
        words = []
        for b in range(xb.shape[0]):
            words.append(pay.pack(data=[int(v) for v in xb[b]],
                                  mask=sum(1 << k for k in range(p.lanes) if mb[b, k]),
                                  last=int(b == xb.shape[0] - 1)))
        self.i.send(words)
        # The model: cut after max_beats beats, as the hardware does.
        for start in range(0, xb.shape[0], p.max_beats):
            part_x, part_m = xb[start:start + p.max_beats], mb[start:start + p.max_beats]
            y, empty = golden.softmax_beats(part_x, part_m, p, self.table)
            for b in range(y.shape[0]):
                self.expected.append(([int(v) for v in y[b]], int(b == y.shape[0] - 1), int(empty)))
                self.labels.append(f"{label}, beat {start + b}")
            if start:
                self.cuts += 1
        return xb.shape[0]

    async def check(self, timeout_cycles):
        await with_timeout(self.o.wait_for(len(self.expected)), timeout_cycles * PERIOD_NS, "ns")
        pay = self.man.payloads["o"]
        for want, word, label in zip(self.expected, self.o.received, self.labels, strict=False):
            got = pay.unpack(word)
            self.scoreboard.compare(want, (got["data"], got["last"], got["all_masked"]), label)
        for _ in range(5):
            await RisingEdge(self.dut.clk)
        extra = len(self.o.received) - len(self.expected)
        assert extra == 0, f"{extra} output beats more than expected"
        self.scoreboard.check()
        assert int(self.dut.cut_rows.value) == self.cuts, \
            f"cut_rows = {int(self.dut.cut_rows.value)}, expected {self.cuts}"


def _rows():
    with open(os.environ["ACCELGEN_SOFTMAX_ROWS"], encoding="utf-8") as f:
        return json.load(f)


@cocotb.test()
async def rows(dut):
    """Every row of ACCELGEN_SOFTMAX_ROWS, back to back, against the bit-exact model."""
    gap, stall = gap_and_stall()
    tb = SoftmaxTB(dut, seed=seed_from_env(), gap=gap, stall=stall)
    await tb.start()
    beats = 0
    for n, row in enumerate(_rows()):
        name = row.get("name", f"L={len(row['x'])}")
        beats += tb.queue(row["x"], row.get("mask"), f"row {n} ({name})")
    rows_n = len(_rows())
    budget = (beats + rows_n * (tb.p.recip_bits + 20) + 200) / max(0.05, (1 - gap) * (1 - stall))
    await tb.check(int(4 * budget))
    dut._log.info("%d output beats matched", tb.scoreboard.compared)


@cocotb.test()
async def measure(dut):
    """Latency of each row sent alone, then the input stalls and output gaps of all rows back to back.

    Writes ACCELGEN_RESULTS: ``{"alone": [{"beats", "latency", "span"}], "stream": {...}}``; the
    stream's ``input_wait_cycles`` are the cycles with the input valid and not ready,
    ``longest_input_wait`` the longest run of them.
    """
    tb = SoftmaxTB(dut, seed=seed_from_env(1))
    await tb.start()
    alone = []
    rows = _rows() if os.environ.get("ACCELGEN_MEASURE_ALONE", "1") != "0" else []
    for n, row in enumerate(rows):
        before_in, before_out = len(tb.hs.inputs), len(tb.hs.outputs)
        beats = tb.queue(row["x"], row.get("mask"), f"alone row {n}")
        while len(tb.hs.outputs) < before_out + beats:
            await RisingEdge(dut.clk)
        first_in = tb.hs.inputs[before_in]
        alone.append({"beats": beats, "latency": tb.hs.outputs[before_out] - first_in,
                      "span": tb.hs.outputs[-1] - first_in})
        for _ in range(3):
            await RisingEdge(dut.clk)
    # Back to back: every row again, queued at once.
    before_in, before_out, waits = len(tb.hs.inputs), len(tb.hs.outputs), tb.hs.input_waits
    tb.hs.longest_wait = 0
    total = sum(tb.queue(row["x"], row.get("mask"), f"stream row {n}")
                for n, row in enumerate(_rows()))
    while len(tb.hs.outputs) < before_out + total:
        await RisingEdge(dut.clk)
    ins, outs = tb.hs.inputs[before_in:], tb.hs.outputs[before_out:]
    stream = {"beats": total, "input_cycles": ins[-1] - ins[0] + 1,
              "input_wait_cycles": tb.hs.input_waits - waits,
              "longest_input_wait": tb.hs.longest_wait,
              "output_cycles": outs[-1] - outs[0] + 1,
              "first_in_to_last_out": outs[-1] - ins[0]}
    await tb.check(1000)
    with open(os.environ["ACCELGEN_RESULTS"], "w", encoding="utf-8") as f:
        json.dump({"alone": alone, "stream": stream}, f)
