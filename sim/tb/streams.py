"""Stream drivers, monitors and a scoreboard shared by every bench.

A stream ``x`` of an emitted top has the ports ``x__valid``, ``x__ready`` and ``x__payload``; the manifest
gives each payload field's offset, width and format, so :class:`Payload` packs and unpacks beats by field
name. :class:`StreamSource` drives a stream with optional random idle cycles (valid low between beats),
:class:`StreamSink` takes one with optional random backpressure (ready low), both from a
``numpy.random.Generator`` so that a run repeats from its seed.
"""

import json
import os
from collections import deque

import cocotb
from cocotb.triggers import Event, RisingEdge

from sim.layout import Layout

__all__ = ["Manifest", "Payload", "StreamSource", "StreamSink", "Scoreboard", "load_manifest",
           "gap_and_stall", "reset", "start_clock"]


class Payload(Layout):
    """Packs and unpacks the payload of one stream from its manifest entry:
    :class:`sim.layout.Layout` with values cut to their fields' widths (``check=False``).
    ``pack(data=[...], last=1)``: lists fill array fields ``data.0``, ``data.1``, ...;
    ``unpack(word)``: a dict of field name -> int, signed fields sign-extended, arrays as lists."""

    def __init__(self, stream_entry, name="payload"):
        super().__init__(stream_entry, name, check=False)


class Manifest:
    """The manifest of an emitted top, as written by ``accelgen emit``."""

    def __init__(self, data):
        self.data = data
        self.top = data["top"]
        self.parameters = data["parameters"]
        self.config = data["config"][data["block"]]
        self.payloads = {name: Payload(entry, name) for name, entry in data["streams"].items()}
        # Memory word layouts (the system's command, header, a, w and o words), where a top has any.
        self.words = {name: Payload(entry, name) for name, entry in data.get("words", {}).items()}


def load_manifest(path=None):
    path = path or os.environ["ACCELGEN_MANIFEST"]
    with open(path, encoding="utf-8") as f:
        return Manifest(json.load(f))


def gap_and_stall():
    """``(gap, stall)`` from ACCELGEN_GAP and ACCELGEN_STALL: the probabilities of an idle input
    cycle and of a stalled output cycle (0 when unset)."""
    return float(os.environ.get("ACCELGEN_GAP", "0")), float(os.environ.get("ACCELGEN_STALL", "0"))


def _value(handle):
    v = handle.value
    if not v.is_resolvable:
        raise ValueError(f"{handle._name} = {v}")
    return v.to_unsigned()


class StreamSource:
    """Drives stream ``name`` of ``dut`` from a queue of packed payload words.

    Parameters
    ----------
    gap : float
        Probability of an idle cycle before each beat (0 for none).
    rng : numpy.random.Generator or None
        Source of the random gaps.
    """

    def __init__(self, dut, name, clk, *, gap=0.0, rng=None):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clk = clk
        self.gap = gap
        self.rng = rng
        self.queue = deque()
        self.sent = 0
        self.first_cycle = None
        self.cycle = 0
        self._idle = Event()
        self._idle.set()
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, words):
        for word in words:
            self.queue.append(word)
        if self.queue:
            self._idle.clear()

    async def wait_idle(self):
        await self._idle.wait()

    async def _run(self):
        edge = RisingEdge(self.clk)
        holding = False
        gap, rng = self.gap, self.rng
        while True:
            await edge
            self.cycle += 1
            if holding and self.ready.value == 1:
                holding = False
                self.sent += 1
                if self.first_cycle is None:
                    self.first_cycle = self.cycle
            if not holding:
                if self.queue and not (gap and rng.random() < gap):
                    self.payload.value = self.queue.popleft()
                    self.valid.value = 1
                    holding = True
                else:
                    self.valid.value = 0
                    if not self.queue:
                        self._idle.set()


class StreamSink:
    """Takes beats of stream ``name`` of ``dut`` into :attr:`received` (packed words).

    Parameters
    ----------
    stall : float
        Probability that ready is low in a cycle (0 for always ready).
    """

    def __init__(self, dut, name, clk, *, stall=0.0, rng=None):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clk = clk
        self.stall = stall
        self.rng = rng
        self.received = []
        self.cycles = []
        self.cycle = 0
        self._want = None
        self._enough = Event()
        self.ready.value = 0 if stall else 1
        self._task = cocotb.start_soon(self._run())

    async def wait_for(self, count):
        """Return once ``count`` beats have been received in all."""
        if len(self.received) >= count:
            return
        self._want = count
        self._enough.clear()
        await self._enough.wait()

    async def _run(self):
        edge = RisingEdge(self.clk)
        stall, rng = self.stall, self.rng
        while True:
            await edge
            self.cycle += 1
            if self.ready.value == 1 and self.valid.value == 1:
                self.received.append(_value(self.payload))
                self.cycles.append(self.cycle)
                if self._want is not None and len(self.received) >= self._want:
                    self._want = None
                    self._enough.set()
            if stall:
                self.ready.value = 0 if rng.random() < stall else 1


class Scoreboard:
    """Compares received items with expected ones, in order, and keeps the first mismatches."""

    def __init__(self, name, log=None, keep=10):
        self.name = name
        self.log = log
        self.keep = keep
        self.compared = 0
        self.failed = 0
        self.mismatches = []

    def compare(self, expected, got, context=""):
        self.compared += 1
        if expected == got:
            return True
        self.failed += 1
        if len(self.mismatches) < self.keep:
            self.mismatches.append((context, expected, got))
        return False

    def check(self):
        """Raise ``AssertionError`` listing the first mismatches, if any."""
        if self.failed:
            lines = [f"{self.name}: {self.failed} mismatches in {self.compared} compared; the first:"]
            for context, expected, got in self.mismatches:
                lines.append(f"  {context}: expected {expected}, got {got}")
            raise AssertionError("\n".join(lines))


async def start_clock(dut, period_ns=10):
    from cocotb.clock import Clock
    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())


async def reset(dut, cycles=3):
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
