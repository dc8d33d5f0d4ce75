"""The GEMM engine's parts (gen/gemm/): each one's stated latency against its RTL, in Amaranth's
simulator, and the engine's pipeline depth as the sum of its parts'."""

import pytest
from amaranth.sim import Simulator

from gen.gemm import GemmEngine, GemmParams
from gen.gemm.accumulator import Accumulator
from gen.gemm.banks import WeightBanks
from gen.gemm.command import CommandCheck
from gen.gemm.feeder import ActivationFeeder
from gen.gemm.output import OutputQueue
from gen.gemm.scaler import VsqScaler
from gen.lib.formats import mode_by_name

INT = GemmParams(rows=2, cols=2, modes=("int8", "int4"), acc_width=24, max_m=8, max_n=8, max_k=16,
                 out_fifo_depth=4)
FP = GemmParams(rows=2, cols=2, modes=("int8", "fp8_e4m3"), acc_width=24, max_m=8, max_n=8,
                max_k=16, out_fifo_depth=4)
VSQ = GemmParams(rows=2, cols=2, modes=("int8",), acc_width=32, max_m=8, max_n=8, max_k=32,
                 out_fifo_depth=4, vsq_vector_sizes=(16,), post_mult_bits=8)


def run(dut, bench, clock=True):
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def first_high(ctx, signal, limit=40):
    """Cycles until ``signal`` reads 1 (0: it already does)."""
    async def count():
        for n in range(limit):
            if ctx.get(signal):
                return n
            await ctx.tick()
        raise AssertionError(f"{signal} never went high")
    return count()


def test_command_check_is_combinational_and_names_every_bad_field():
    dut = CommandCheck(INT)
    assert CommandCheck.latency == 0
    seen = {}

    async def bench(ctx):
        good = dict(m=3, n=2, k=5, mode=mode_by_name("int4").code)
        for name, change in [("good", {}), ("m = 0", {"m": 0}), ("m > max", {"m": 9}),
                             ("n = 0", {"n": 0}), ("k > max", {"k": 17}),
                             ("mode not built", {"mode": mode_by_name("w4a8").code})]:
            for field, value in {**good, **change}.items():
                ctx.set(getattr(dut.cmd, field), value)
            seen[name] = (ctx.get(dut.ok), ctx.get(dut.desc.mode))

    run(dut, bench, clock=False)
    assert seen["good"] == (1, 1)       # int4 is the second mode built
    assert all(ok == 0 for name, (ok, _) in seen.items() if name != "good")


def test_weight_banks_full_after_set_and_free_after_the_drain():
    dut = WeightBanks(drain=5)
    assert WeightBanks.latency == 1
    out = {}

    async def bench(ctx):
        ctx.set(dut.set, 0b01)
        await ctx.tick()
        ctx.set(dut.set, 0)
        out["full"] = ctx.get(dut.full)
        ctx.set(dut.clr, 0b01)
        await ctx.tick()
        ctx.set(dut.clr, 0)
        out["drain"] = await first_high(ctx, dut.free[0])

    run(dut, bench)
    assert out["full"] == 0b01
    assert out["drain"] == 5


def test_output_queue_latency_and_credits():
    dut = OutputQueue(INT)
    out = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        for _ in range(INT.out_fifo_depth):
            ctx.set(dut.booked, 1)
            await ctx.tick()
        ctx.set(dut.booked, 0)
        out["room_when_booked_full"] = ctx.get(dut.room)
        ctx.set(dut.w_data, 0x5A)
        ctx.set(dut.w_en, 1)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        out["latency"] = 1 + await first_high(ctx, dut.o.valid)
        out["data"] = ctx.get(dut.o.payload.as_value())
        ctx.set(dut.o.ready, 1)
        await ctx.tick()
        ctx.set(dut.o.ready, 0)
        out["room_after_one_taken"] = ctx.get(dut.room)

    run(dut, bench)
    assert out["latency"] == OutputQueue.latency
    assert out["data"] == 0x5A
    assert (out["room_when_booked_full"], out["room_after_one_taken"]) == (0, 1)


@pytest.mark.parametrize("params", [INT, FP, VSQ], ids=["int", "fp8", "vsq+post"])
def test_accumulator_latency(params):
    dut = Accumulator(params, ps_width=params.psum_width)
    out = {}

    async def bench(ctx):
        ctx.set(dut.ctl.valid, 1)
        ctx.set(dut.ctl.first_k, 1)
        ctx.set(dut.ctl.last_k, 1)
        ctx.set(dut.ctl.m, 2)
        ctx.set(dut.ps[0], 7)
        if params.post:
            ctx.set(dut.mult[0], 1)
        await ctx.tick()
        ctx.set(dut.ctl.valid, 0)
        out["latency"] = 1 + await first_high(ctx, dut.w_en)
        out["lane0"] = ctx.get(dut.w_data) & ((1 << params.out_width) - 1)

    run(dut, bench)
    assert out["latency"] == dut.latency == Accumulator.latency_for(params)
    assert out["lane0"] == 7


def test_vsq_scaler_latency_and_the_scaled_vector_sum():
    dut = VsqScaler(VSQ)
    out = {}

    async def bench(ctx):
        for field, value in dict(valid=1, vsq=1, first_kv=1, last_kv=1, sa=3, bank=1, m=1).items():
            ctx.set(getattr(dut.ctl_i, field), value)
        ctx.set(dut.wscale[1][0], 5)
        ctx.set(dut.ps[0], -4)
        await ctx.tick()
        ctx.set(dut.ctl_i.valid, 0)
        out["latency"] = 1 + await first_high(ctx, dut.ctl_o.valid)
        out["lane0"] = ctx.get(dut.lanes[0])

    run(dut, bench)
    assert out["latency"] == VsqScaler.latency
    assert out["lane0"] == -4 * 5 * 3


def test_feeder_issues_a_taken_beat_one_cycle_later():
    dut = ActivationFeeder(INT)
    out = {}

    async def bench(ctx):
        ctx.set(dut.queue_data.m, 1)
        ctx.set(dut.queue_data.n, 1)
        ctx.set(dut.queue_data.k, 1)
        ctx.set(dut.queue_valid, 1)
        ctx.set(dut.bank_full, 0b01)
        ctx.set(dut.room, 1)
        ctx.set(dut.a.valid, 1)
        ctx.set(dut.a.payload.data[0], 0x12)
        ctx.set(dut.a.payload.data[1], 0x34)
        await first_high(ctx, dut.a.ready)
        out["booked"] = ctx.get(dut.booked)
        await ctx.tick()
        ctx.set(dut.a.valid, 0)
        out["wavefront"] = (ctx.get(dut.array_a[0]), ctx.get(dut.array_a[1]),
                            ctx.get(dut.ctl.valid), ctx.get(dut.ctl.last))

    run(dut, bench)
    assert ActivationFeeder.latency == 1
    assert out["booked"] == 1
    assert out["wavefront"] == (0x12, 0x34, 1, 1)


@pytest.mark.parametrize("params", [INT, FP, VSQ], ids=["int", "fp8", "vsq+post"])
def test_pipeline_depth_is_the_sum_of_the_parts(params):
    kwargs = {k: getattr(params, k) for k in (
        "rows", "cols", "modes", "acc_width", "max_m", "max_n", "max_k", "out_fifo_depth",
        "vsq_vector_sizes", "vsq_scale_bits", "post_mult_bits", "post_row_mult_bits")}
    engine = GemmEngine(**kwargs)
    engine._MustUse__silence = True   # only its figures are read here
    parts = (ActivationFeeder.latency + params.array_latency
             + (VsqScaler.latency if params.vsq else 0) + Accumulator.latency_for(params)
             + OutputQueue.latency)
    # The figure the engine has always stated: 1 + (R + C - 1) + 2 + 1, + 1 for binary32 or
    # post-processing, + 2 for VSQ.
    stated = (1 + params.array_latency + 3 + (1 if params.fp or params.post else 0)
              + (2 if params.vsq else 0))
    assert engine.pipeline_depth == parts == stated


def test_parameter_errors_name_the_field():
    with pytest.raises(ValueError, match="post_row_mult_bits needs post_mult_bits"):
        GemmParams(rows=2, cols=2, modes=("int8",), acc_width=24, max_m=8, max_n=8, max_k=16,
                   out_fifo_depth=4, post_row_mult_bits=4)
    with pytest.raises(ValueError, match="vsq_vector_sizes needs an integer mode"):
        GemmParams(rows=2, cols=2, modes=("fp8_e4m3",), acc_width=24, max_m=8, max_n=8,
                   max_k=16, out_fifo_depth=4, vsq_vector_sizes=(16,))
