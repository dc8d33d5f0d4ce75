"""cocotb bench: a multi-tile system (:class:`gen.system.System`) driven through its host port.

The bench runs a host program of :mod:`sim.host` (a :class:`sim.host.Plan`) phase by phase: it
injects a phase's packets into ``host_i``, in order, collects the HOST packets that come back on
``host_o`` until the phase's ``host_words`` payload words are in, and hands them to the plan, which
gives the next phase (the MLP's later layers depend on what came back) and, at the end, the result.
What the result must be is :mod:`sim.golden.system`'s business; ``sim/bench/demo.py`` compares.

The pytest side (:func:`sim.bench.demo.run_plan`) passes, in the environment:

ACCELGEN_PLAN : a JSON file ``{"kind": "mlp" | "layer" | "attention", ...}``: the arguments of
    :func:`sim.host.mlp_plan` (``setting``, ``batch``), :func:`sim.host.layer_plan` (``setting``,
    ``layer``) or :func:`sim.host.attention_plan`, and ``timeout_cycles``.
ACCELGEN_DATA : an ``.npz`` file with the arrays: ``w0``, ``b0``, ``w1``, ``b1``, ... and ``x`` (MLP
    and layer plans), or ``q``, ``k``, ``v`` (attention).
ACCELGEN_GAP, ACCELGEN_STALL : probabilities of an idle cycle before each beat on ``host_i`` and of
    a stalled cycle on ``host_o`` (0 by default; cycle counts are the system's only without them).
ACCELGEN_RESULTS : where the bench writes the plan's result (arrays as lists) and, per phase, its
    name, the cycle its first beat was offered, the cycle it ended (its last expected word arrived,
    or its last beat was taken when it expects none), the words injected and received, the ideal
    GEMM cycles and the GEMM-busy cycles of every tile; and the system's error count.

A phase that makes no progress for ``timeout_cycles`` cycles fails the test, naming the busy tiles.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from sim import host as H
from sim.runner import seed_from_env
from sim.tb.streams import (
    StreamSink,
    StreamSource,
    gap_and_stall,
    load_manifest,
    reset,
    start_clock,
)


def load_plan(manifest, spec, arrays):
    """The :class:`sim.host.Plan` that ``spec`` (the ACCELGEN_PLAN dict) and ``arrays`` describe."""
    if spec["kind"] == "attention":
        return H.attention_plan(manifest, arrays["q"], arrays["k"], arrays["v"])
    layers = len([name for name in arrays if name.startswith("w")])
    model = {"weights": [arrays[f"w{i}"] for i in range(layers)],
             "biases": [arrays[f"b{i}"] for i in range(layers)]}
    if spec["kind"] == "mlp":
        return H.mlp_plan(manifest, model, arrays["x"], spec["setting"], batch=spec.get("batch"))
    if spec["kind"] == "layer":
        return H.layer_plan(manifest, model, arrays["x"], spec["setting"],
                            layer=spec.get("layer", 0))
    raise ValueError(f"kind = {spec['kind']!r}: must be mlp, layer or attention")


def packet_beats(payload, kx, packet):
    """The packed ``host_i`` beats of a :class:`sim.host.Packet`."""
    if packet.mask is not None:
        dest = {"mcast": 1, "mask": int(packet.mask)}
    else:
        dest = {"dest_x": packet.node % kx, "dest_y": packet.node // kx}
    beats = []
    for i, word in enumerate(packet.words):
        fields = {"data": int(word), "last": int(i == len(packet.words) - 1)}
        if i == 0:
            fields.update(dest)
        beats.append(payload.pack(**fields))
    return beats


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class SystemTB:
    """The host port's driver and monitor, and the tiles' counters."""

    def __init__(self, dut, seed, gap, stall):
        self.dut = dut
        self.man = load_manifest()
        p = self.man.parameters
        self.kx, self.nodes = p["kx"], p["kx"] * p["ky"]
        self.rng = np.random.default_rng(seed)
        self.gap, self.stall = gap, stall
        self.taken = 0              # host_o beats already handed to a phase

    async def start(self):
        await start_clock(self.dut)
        self.src = StreamSource(self.dut, "host_i", self.dut.clk, gap=self.gap, rng=self.rng)
        self.sink = StreamSink(self.dut, "host_o", self.dut.clk, stall=self.stall, rng=self.rng)
        await reset(self.dut)

    def busy(self):
        return [int(getattr(self.dut, f"busy{n}").value) for n in range(self.nodes)]

    async def run_phase(self, phase, timeout):
        """Inject ``phase``; the HOST packets (dicts ``src``, ``header``, ``words`` without the
        header) and the phase's record."""
        dut, src, sink = self.dut, self.src, self.sink
        pay_i, pay_o = self.man.payloads["host_i"], self.man.payloads["host_o"]
        start = src.cycle + 1
        beats = 0
        for packet in phase.packets:
            words = packet_beats(pay_i, self.kx, packet)
            beats += len(words)
            src.send(words)
        target = src.sent + beats
        packets, current, got = [], [], 0
        idle_for, progress = 0, None
        while got < phase.host_words or src.sent < target:
            await RisingEdge(dut.clk)
            while self.taken < len(sink.received):
                beat = pay_o.unpack(sink.received[self.taken])
                self.taken += 1
                current.append(beat["data"])
                if beat["last"]:
                    packets.append({"src": beat["src"], "header": current[0],
                                    "words": current[1:]})
                    got += len(current) - 1
                    current = []
            now = (self.taken, src.sent)
            idle_for = 0 if now != progress else idle_for + 1
            progress = now
            if idle_for > timeout:
                idle = int(dut.idle.value)
                raise AssertionError(
                    f"phase {phase.name!r}: no progress for {timeout} cycles; {got} of "
                    f"{phase.host_words} words back, {target - src.sent} beats not injected; "
                    f"busy tiles: {[n for n in range(self.nodes) if not idle >> n & 1]}; "
                    f"errors = {int(dut.errors.value)}")
        assert not current, f"phase {phase.name!r}: a packet is still arriving"
        assert got == phase.host_words, (f"phase {phase.name!r}: {got} words back, "
                                         f"{phase.host_words} expected")
        end = sink.cycles[self.taken - 1] if phase.host_words else src.cycle
        record = {"name": phase.name, "start": start, "end": end, "injected": beats,
                  "received": got, "ideal_cycles": list(phase.ideal_cycles), "busy": self.busy()}
        return packets, record


@cocotb.test()
async def plan(dut):
    """Runs the plan of ACCELGEN_PLAN on ACCELGEN_DATA; writes ACCELGEN_RESULTS."""
    with open(os.environ["ACCELGEN_PLAN"], encoding="utf-8") as f:
        spec = json.load(f)
    arrays = dict(np.load(os.environ["ACCELGEN_DATA"]))
    gap, stall = gap_and_stall()
    seed = seed_from_env(1)
    dut._log.info(f"plan {spec['kind']}: seed {seed}, gap {gap}, stall {stall}")
    tb = SystemTB(dut, seed, gap, stall)
    program = load_plan(tb.man.data, spec, arrays)
    await tb.start()
    timeout = int(spec.get("timeout_cycles", 100_000))
    records = []
    phase = program.start()
    while phase is not None:
        received, record = await tb.run_phase(phase, timeout)
        records.append(record)
        phase = program.step(received)
    for _ in range(8):
        await RisingEdge(dut.clk)
    idle = int(dut.idle.value)
    out = {"result": _jsonable(program.result), "phases": records, "busy": tb.busy(),
           "gemms": [int(getattr(dut, f"gemms{n}").value) for n in range(tb.nodes)],
           "errors": int(dut.errors.value), "idle": idle, "ideal_cycles": program.ideal_cycles,
           "info": _jsonable(program.info), "gap": gap, "stall": stall, "seed": seed}
    with open(os.environ["ACCELGEN_RESULTS"], "w", encoding="utf-8") as f:
        json.dump(out, f)
    assert out["errors"] == 0, f"the system counted {out['errors']} errors"
    assert idle == (1 << tb.nodes) - 1, f"tiles still busy at the end: idle = {idle:b}"
