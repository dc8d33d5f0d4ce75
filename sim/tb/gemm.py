"""cocotb bench of the GEMM engine (:class:`gen.gemm.GemmEngine`) against :mod:`sim.golden.gemm`.

The pytest side (``tests/test_gemm.py``, ``sim/bench/gemm.py``) builds the engine with
:mod:`sim.runner` and passes, in the environment:

ACCELGEN_MANIFEST : the top's manifest (ports, payload fields, parameters).
ACCELGEN_GEMM_CASES : a JSON file with a list of GEMMs: ``{"mode", "m", "n", "k", "kind"}``, where
    ``kind`` is a :func:`sim.golden.gemm.random_operands` kind (FP8 modes have more kinds: NaNs,
    infinities, cancellation; :data:`sim.golden.gemm.FP8_KINDS`). A per-vector scaled (VS-Quant)
    GEMM adds ``"vsq": V`` and ``"scales"``, a :func:`random_scales` kind; its expected result is
    :func:`sim.golden.vsq.vsq_gemm`. A 2:4 GEMM (engines built with ``sparsity = "2:4"``) adds
    ``"sparse"``, a :data:`SPARSE_KINDS` kind of compressed weights; its expected result is
    :func:`sim.golden.sparsity.sparse_gemm` (or ``sparse_vsq_gemm``). Dense commands on such an
    engine fill the activation beat's upper R lanes with random bytes (don't-care).
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
from sim.golden import sparsity
from sim.golden import vsq as golden_vsq
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

SCALE_KINDS = ("uniform", "max", "zero", "one", "mixed")
POST_OUTPUTS = ("acc", "int8", "int4", "fp32")   # values of the command's `out` field
SPARSE_KINDS = ("pruned", "patterns", "kept_zeros", "any_meta")


def sparse_weights(rng, w, mode, kind):
    """Compressed 2:4 weights ``(values, meta)`` from random operands ``w``: ``pruned`` (2:4
    magnitude pruning), ``patterns`` (group g of column n keeps the positions of pattern ``(g +
    n) mod 6``, so every legal metadata pattern occurs), ``kept_zeros`` (pruned, then half of the
    kept values zeroed, whole groups among them), or ``any_meta`` (pruned values with independent
    random positions 0 to 3: all 16 position pairs, equal and decreasing ones too; the engine
    multiplies each kept value by the activation at its position whatever they are)."""
    if kind in ("pruned", "kept_zeros", "any_meta"):
        values, meta = sparsity.compress(sparsity.prune_codes(w, mode))
        if kind == "kept_zeros":
            values = np.where(rng.random(values.shape) < 0.5, 0, values)
            values[:, ::3] = 0
        if kind == "any_meta":
            meta = rng.integers(0, 4, size=meta.shape)
        return values, meta
    if kind == "patterns":
        k, n = w.shape
        k4 = sparsity.padded_k(k)
        meta = np.zeros((k4 // 2, n), np.int64)
        for g in range(k4 // 4):
            for c in range(n):
                meta[2 * g:2 * g + 2, c] = sparsity.META_PATTERNS[(g + c) % 6]
        w4 = np.zeros((k4, n), np.int64)
        w4[:k] = w
        values = np.take_along_axis(w4, 4 * (np.arange(k4 // 2)[:, None] // 2) + meta, axis=0)
        return values, meta
    raise ValueError(f"sparse = {kind!r}: must be one of " + ", ".join(SPARSE_KINDS))


def post_params(rng, acc, output, mult_bits, ties=False):
    """Per-column multipliers (uniform over ``mult_bits`` bits, a quarter of them 1) and shifts:
    mostly near the shift that brings the column's largest ``|acc * mult|`` to the output's range
    (so that rounding, ties and saturation all occur), one column in five a random shift from 0 to 63.
    ``ties``: multipliers 1 to 3 and shifts 1 or 2, so that many products fall halfway."""
    n = acc.shape[1]
    if ties:
        return rng.integers(1, 4, size=n), rng.integers(1, 3, size=n)
    mult = rng.integers(0, 1 << mult_bits, size=n)
    mult[rng.random(n) < 0.25] = 1
    top = np.abs(np.asarray(acc, dtype=np.float64)).max(axis=0) * mult
    fit = np.array([int(t).bit_length() for t in top]) - {"int8": 8, "int4": 4, "fp32": 10}[output]
    shift = np.clip(fit + rng.integers(-2, 3, size=n), 0, 63)
    wild = rng.random(n) < 0.2
    shift[wild] = rng.integers(0, 64, size=int(wild.sum()))
    return mult, shift


def row_params(rng, m, mult_bits):
    """Per-row multipliers (uniform over ``mult_bits`` bits; one in four 1, one in eight the
    largest) and shifts (mostly 0 to 8, one in five up to 63)."""
    mult = rng.integers(0, 1 << mult_bits, size=m)
    mult[rng.random(m) < 0.25] = 1
    mult[rng.random(m) < 0.125] = (1 << mult_bits) - 1
    shift = rng.integers(0, 9, size=m)
    wild = rng.random(m) < 0.2
    shift[wild] = rng.integers(0, 64, size=int(wild.sum()))
    return mult, shift


def random_scales(rng, shape, scale_bits, kind):
    """Integer VSQ scales: ``uniform`` over ``0 .. 2**M - 1``, all ``max`` (``2**M - 1``), all
    ``zero``, all ``one``, or ``mixed`` (each of 0, 1 and the maximum with probability 1/4, else
    uniform)."""
    top = (1 << scale_bits) - 1
    if kind == "uniform":
        return rng.integers(0, top + 1, size=shape)
    if kind == "max":
        return np.full(shape, top, dtype=np.int64)
    if kind == "zero":
        return np.zeros(shape, dtype=np.int64)
    if kind == "one":
        return np.ones(shape, dtype=np.int64)
    if kind == "mixed":
        pick = rng.integers(0, 4, size=shape)
        choices = [np.zeros(shape, np.int64), np.ones(shape, np.int64),
                   np.full(shape, top, np.int64), rng.integers(0, top + 1, size=shape)]
        return np.choose(pick, choices)
    raise ValueError(f"scales = {kind!r}: must be one of " + ", ".join(SCALE_KINDS))


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

    def queue(self, mode, a, w, code=None, vsq=None, post=None, row=None, sparse=None):
        """Queue one GEMM; returns its expected output beats. ``vsq``: ``(V, s_qa, s_qw)`` for a
        per-vector scaled GEMM; ``post``: ``(output, relu, mult, shift)`` (per column) for a
        post-processed one; ``row``: ``(mult_a, shift_a)`` (per row) where the engine has a per-row
        factor (all 1 and 0 when not given); ``sparse``: compressed 2:4 weights ``(values,
        meta)`` for a 2:4 command (``w`` is then ignored)."""
        m, k = a.shape
        n = w.shape[1]
        pay = self.man.payloads
        code = self.codes[mode] if code is None else code
        # FP8 padding lanes (past K or N) carry NaN codes: the engine must ignore them.
        # VSQ: padding lanes (past K, N or a vector's end) carry -3: the engine must ignore them.
        pad = 0x7F if mode in golden.FP_MODES else 0 if vsq is None else -3
        v = None if vsq is None else vsq[0]
        beats = sparsity if sparse is not None else golden
        cmd = dict(m=m, n=n, k=k, mode=code)
        if sparse is None:
            wbeats = golden.weight_beats(w, mode, self.rows, self.cols, pad=pad, vector_size=v)
            abeats = golden.act_beats(a, mode, self.rows, pad=pad, vector_size=v)
            wfields = [dict(data=beat) for beat in wbeats]
            lanes = pay["a"].count("data")
            # A 2:4 engine's beats are 2R bytes: a dense command's upper R are don't-care.
            afields = [dict(data=list(beat) + self.rng.integers(0, 256, lanes - len(beat)).tolist())
                       for beat in abeats]
            if "sparse" in pay["cmd"].fields:
                cmd["sparse"] = 0
        else:
            values, meta = sparse
            wbeats = sparsity.weight_beats(values, mode, self.rows, self.cols, pad=pad,
                                           vector_size=v)
            mbeats = sparsity.meta_beats(meta, mode, self.rows, self.cols, vector_size=v)
            abeats = sparsity.act_beats(a, mode, self.rows, pad=pad, vector_size=v)
            wfields = [dict(data=d, meta=mt) for d, mt in zip(wbeats, mbeats, strict=True)]
            afields = [dict(data=beat) for beat in abeats]
            cmd["sparse"] = 1
        p = self.man.parameters
        if vsq is None:
            y = golden.gemm(a, w, mode) if sparse is None else sparsity.sparse_gemm(a, *sparse, mode)
        else:
            v, s_qa, s_qw = vsq
            cmd.update(vsq=1, vsel=p["vsq_vector_sizes"].index(v))
            wsc = beats.weight_scale_beats(s_qw, mode, self.rows, self.cols, k, v)
            asc = beats.act_scale_beats(s_qa, mode, self.rows, k, v)
            for f, sc in zip(wfields, wsc, strict=True):
                f["scale"] = sc
            for f, sc in zip(afields, asc, strict=True):
                f["scale"] = sc
            if sparse is None:
                y = golden_vsq.vsq_gemm(a, w, s_qa, s_qw, mode=mode, vector_size=v,
                                        scale_bits=p["vsq_scale_bits"])
            else:
                y = sparsity.sparse_vsq_gemm(a, *sparse, s_qa, s_qw, mode=mode, vector_size=v,
                                             scale_bits=p["vsq_scale_bits"])
        if post is not None:
            output, relu, mult, shift = post
            cmd.update(out=POST_OUTPUTS.index(output), relu=int(relu))
            for name, values in (("mult", mult), ("shift", shift)):
                lanes = beats.column_param_beats(values, mode, self.rows, self.cols, k, v)
                for f, lane in zip(wfields, lanes, strict=True):
                    f[name] = lane
            if "mult" in pay["a"].fields:
                mult_a, shift_a = row if row is not None else (np.ones(m, np.int64),
                                                               np.zeros(m, np.int64))
                # the engine reads a row's factor on its beat of the last k tile: the beats of
                # the other k tiles carry junk
                last = len(afields) - m
                for name, values in (("mult", mult_a), ("shift", shift_a)):
                    lanes = beats.act_row_beats(values, mode, self.rows, k, v)
                    bits = pay["a"].fields[name][1]
                    for i, (f, lane) in enumerate(zip(afields, lanes, strict=True)):
                        f[name] = lane if i >= last else int(self.rng.integers(0, 1 << bits))
                y = golden_vsq.postprocess(y, mult, shift, relu=relu, output=output,
                                           mult_a=mult_a, shift_a=shift_a)
            else:
                y = golden_vsq.postprocess(y, mult, shift, relu=relu, output=output)
            if output == "fp32":
                y = y.view(np.uint32).astype(np.int64)
        self.cmd.send([pay["cmd"].pack(**cmd)])
        self.w.send(pay["w"].pack(**f) for f in wfields)
        self.a.send(pay["a"].pack(**f) for f in afields)
        if mode in golden.FP_MODES or (post is not None and post[0] == "fp32"):
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


def _cycle_budget(tb, cases, gap, stall):
    """A generous bound on the cycles ``cases`` take, for the timeout: every tile costs at least its M
    rows and a weight load plus the array's drain."""
    cycles = 1000
    for case in cases:
        tiles = -(-case["n"] // tb.cols) * golden.k_tile_count(case["k"], case["mode"], tb.rows,
                                                                 case.get("vsq"))
        cycles += tiles * (case["m"] + 2 * tb.rows + tb.cols + 8) + case["m"]
    return int(4 * cycles / max(0.05, (1 - gap) * (1 - stall)))


def _queue_cases(tb, cases):
    expected, labels = [], []
    macs = 0
    for i, case in enumerate(cases):
        a, w = golden.random_operands(tb.rng, case["m"], case["n"], case["k"], case["mode"],
                                      case.get("kind", "uniform"))
        sparse = (sparse_weights(tb.rng, w, case["mode"], case["sparse"]) if case.get("sparse")
                  else None)
        if sparse is not None:
            w = sparsity.decompress(*sparse, case["k"]) if case["sparse"] != "any_meta" else w
        vsq = None
        if case.get("vsq"):
            v, bits = case["vsq"], tb.man.parameters["vsq_scale_bits"]
            nvec = -(-case["k"] // v)
            kind = case.get("scales", "uniform")
            vsq = (v, random_scales(tb.rng, (case["m"], nvec), bits, kind),
                   random_scales(tb.rng, (nvec, case["n"]), bits, kind))
        post = row = None
        if case.get("post"):
            exact = (golden.gemm(a, w, case["mode"]) if vsq is None else
                     golden_vsq.vsq_gemm(a, w, vsq[1], vsq[2], mode=case["mode"],
                                         vector_size=vsq[0],
                                         scale_bits=tb.man.parameters["vsq_scale_bits"]))
            if case.get("row"):
                row = row_params(tb.rng, case["m"], tb.man.parameters["vsq_post_row_mult_bits"])
                # the columns' shifts are chosen for the accumulator times the row factors
                exact = exact * (row[0] / np.exp2(row[1]))[:, None]
            mult, shift = post_params(tb.rng, exact, case["post"],
                                      tb.man.parameters["vsq_post_mult_bits"],
                                      ties=case.get("ties", False))
            post = (case["post"], bool(case.get("relu", False)), mult, shift)
        beats = tb.queue(case["mode"], a, w, vsq=vsq, post=post, row=row, sparse=sparse)
        expected += beats
        labels += [f"case {i} {case}"] * len(beats)
        macs += case["m"] * case["n"] * case["k"]
    return expected, labels, macs


@cocotb.test()
async def cases(dut):
    """Every case of ACCELGEN_GEMM_CASES, queued back to back, against the golden model."""
    gap, stall = gap_and_stall()
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
    if "out" in pay.fields:   # post-processing built: post-processed FP8 commands are bad
        bad += [dict(m=1, n=1, k=1, mode=tb.codes[mo], out=1)
                for mo in cfg["modes"] if mo in golden.FP_MODES]
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


@cocotb.test()
async def bad_vsq_commands(dut):
    """VSQ engines: VSQ commands with a V select that was not built, in an FP8 mode, or in a mode
    not built, and (post-processing built) post-processed FP8 commands are dropped and counted;
    a valid VSQ command then runs correctly."""
    tb = GemmTB(dut, seed=seed_from_env())
    await tb.start()
    p = tb.man.parameters
    pay = tb.man.payloads["cmd"]
    sizes = p["vsq_vector_sizes"]
    int_modes = [mo for mo in p["modes"] if mo not in golden.FP_MODES]
    mode = int_modes[0]
    code = tb.codes[mode]
    bad = [dict(m=1, n=1, k=1, mode=code, vsq=1, vsel=sel)
           for sel in range(len(sizes), 1 << pay.fields["vsel"][1])]
    bad += [dict(m=1, n=1, k=1, mode=tb.codes[mo], vsq=1, vsel=0)
            for mo in p["modes"] if mo in golden.FP_MODES]
    built = set(tb.codes.values())
    bad.append(dict(m=1, n=1, k=1, mode=next(c for c in range(8) if c not in built), vsq=1, vsel=0))
    if "out" in pay.fields:   # post-processing built: post-processed FP8 is bad
        bad += [dict(m=1, n=1, k=1, mode=tb.codes[mo], out=1)
                for mo in p["modes"] if mo in golden.FP_MODES]
    tb.cmd.send(pay.pack(**b) for b in bad)
    v = sizes[-1]
    m, n, k = 3, tb.cols + 1, v + tb.rows * 2
    k = min(k, tb.man.config["max_k"])
    a, w = golden.random_operands(tb.rng, m, n, k, mode)
    nvec = -(-k // v)
    bits = p["vsq_scale_bits"]
    vsq = (v, random_scales(tb.rng, (m, nvec), bits, "uniform"),
           random_scales(tb.rng, (nvec, n), bits, "uniform"))
    expected = tb.queue(mode, a, w, vsq=vsq)
    await tb.collect(expected, ["valid VSQ command after bad ones"] * len(expected), 20000)
    assert int(dut.errors.value) == len(bad), \
        f"errors = {int(dut.errors.value)}, expected {len(bad)} dropped commands"
