"""cocotb bench of simulation speed: every input of the top gets a random value every cycle (stream
``valid`` bits one cycle in two, ``ready`` bits always high), for ``ACCELGEN_SCALE_CYCLES`` cycles
after reset; the wall time per cycle goes to ``ACCELGEN_RESULTS`` as JSON. Nothing is checked: the
behaviour of every block is checked by its own bench; this one only keeps the design busy."""

import json
import os
import random
import time

import cocotb
from cocotb.triggers import RisingEdge

from sim.runner import seed_from_env
from sim.tb.streams import load_manifest, reset, start_clock


@cocotb.test()
async def speed(dut):
    man = load_manifest()
    cycles = int(os.environ.get("ACCELGEN_SCALE_CYCLES", "1000"))
    rng = random.Random(seed_from_env())
    inputs = [(getattr(dut, p["name"]), p["name"], p["width"]) for p in man.data["ports"]
              if p["direction"] == "in" and p["name"] not in ("clk", "rst")]
    for handle, _, _ in inputs:
        handle.value = 0
    await start_clock(dut)
    await reset(dut)
    t0 = time.perf_counter()
    for _ in range(cycles):
        for handle, name, width in inputs:
            if name.endswith("__ready"):
                handle.value = 1
            elif name.endswith("__valid"):
                handle.value = rng.getrandbits(1)
            else:
                handle.value = rng.getrandbits(width)
        await RisingEdge(dut.clk)
    seconds = time.perf_counter() - t0
    with open(os.environ["ACCELGEN_RESULTS"], "w", encoding="utf-8") as f:
        json.dump({"cycles": cycles, "seconds": seconds}, f)
