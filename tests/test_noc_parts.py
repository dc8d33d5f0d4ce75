"""The mesh router's parts (arbiter, route computation, in-order rule, output VC state, VC and switch
allocation, input buffer): each one's behaviour and stated latency against its RTL in Amaranth's
simulator, and the router's zero-load latency as the sum of its parts'."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.arbiter import RoundRobinArbiter
from gen.lib.noc import EAST, LOCAL, PORTS, SOUTH, WEST, NocParams, can_turn, region_mask
from gen.order_rule import InOrderRule
from gen.output_vcs import OutputVcState
from gen.route_compute import RouteCompute
from gen.router import Router
from gen.switch_allocator import SwitchAllocator
from gen.vc_allocator import VcAllocator
from gen.vc_buffer import VcBuffer


def params(**kw):
    base = dict(kx=3, ky=3, flit_width=8, vcs=2, vc_depth=4, max_packet_flits=4, routing="xy")
    base.update(kw)
    return NocParams(**base)


def run(dut, bench, clock=True):
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_arbiter_grants_in_the_request_cycle_round_robin():
    dut = RoundRobinArbiter(4)
    assert dut.latency == 0
    grants = []

    async def bench(ctx):
        ctx.set(dut.advance, 1)
        ctx.set(dut.request, 0b1011)
        for _ in range(6):
            grants.append(ctx.get(dut.grant))      # same cycle as the request: latency 0
            await ctx.tick()
        ctx.set(dut.advance, 0)                     # not used: the same requester keeps priority
        held = [ctx.get(dut.grant)]
        await ctx.tick()
        held.append(ctx.get(dut.grant))
        grants.append(held)
        ctx.set(dut.request, 0)
        grants.append(ctx.get(dut.grant))

    run(dut, bench)
    assert grants[:6] == [0b0001, 0b0010, 0b1000, 0b0001, 0b0010, 0b1000]
    assert grants[6][0] == grants[6][1] == 0b0001
    assert grants[7] == 0


def test_arbiter_waits_at_most_width_minus_one_grants():
    rng = np.random.default_rng(3)
    dut = RoundRobinArbiter(5)
    worst = []

    async def bench(ctx):
        ctx.set(dut.advance, 1)
        waited = [0] * 5
        for _ in range(300):
            request = int(rng.integers(0, 32)) | 1        # requester 0 always requests
            ctx.set(dut.request, request)
            grant = ctx.get(dut.grant)
            assert grant and grant & (grant - 1) == 0 and grant & request
            for k in range(5):
                if request >> k & 1:
                    waited[k] = 0 if grant >> k & 1 else waited[k] + 1
            worst.append(waited[0])
            await ctx.tick()

    run(dut, bench)
    assert max(worst) <= 4


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8])
def test_arbiter_matches_the_round_robin_model(width):
    """Against the model: the lowest request at or above the position after the last used grant,
    else the lowest request; the position moves only on a used grant."""
    rng = np.random.default_rng(width)
    dut = RoundRobinArbiter(width)
    steps = [(int(rng.integers(0, 1 << width)), int(rng.integers(0, 2))) for _ in range(200)]

    async def bench(ctx):
        above = (1 << width) - 1
        for request, advance in steps:
            ctx.set(dut.request, request)
            ctx.set(dut.advance, advance)
            pool = request & above or request
            want = pool & -pool
            assert ctx.get(dut.grant) == want, (request, above)
            if want and advance:
                above = ~(want | (want - 1)) & ((1 << width) - 1)
            await ctx.tick()

    run(dut, bench)


@pytest.mark.parametrize("routing", ["xy", "yx"])
def test_route_compute_is_dimension_order_and_combinational(routing):
    p = params(routing=routing)
    dut = RouteCompute(p)
    assert dut.latency == 0
    rng = np.random.default_rng(5)
    cases = [(x, y, int(rng.integers(1, 1 << p.nodes))) for x in range(3) for y in range(3)
             for _ in range(4)]

    async def bench(ctx):
        for x, y, mask in cases:
            ctx.set(dut.x, x)
            ctx.set(dut.y, y)
            for i in range(5):
                ctx.set(dut.mask[i][1], mask)
            for o in range(5):
                assert ctx.get(dut.region[o]) == region_mask(p, x, y, o)
            for i in range(5):
                want = sum(1 << o for o in range(5)
                           if can_turn(routing, i, o) and mask & region_mask(p, x, y, o))
                assert ctx.get(dut.want[i][1]) == want, (x, y, mask, PORTS[i])

    run(dut, bench, clock=False)


def test_in_order_rule_blocks_only_behind_an_older_head_of_the_same_input():
    p = params()
    dut = InOrderRule(p)
    assert dut.latency == 0

    async def bench(ctx):
        i = WEST
        # VC 0's head is older than VC 1's and wants east, not sent yet: VC 1 may not take east.
        ctx.set(dut.older[i], 0b0010)       # older[0 * 2 + 1]: VC 0 before VC 1
        ctx.set(dut.pending[i], 0b11)
        ctx.set(dut.want[i][0], 1 << EAST)
        ctx.set(dut.want[i][1], (1 << EAST) | (1 << SOUTH))
        assert ctx.get(dut.blocked[i][1]) == 1 << EAST
        assert ctx.get(dut.blocked[i][0]) == 0
        ctx.set(dut.sent[i][0], 1 << EAST)
        assert ctx.get(dut.blocked[i][1]) == 0
        # An older head still behind a packet body: route unknown, every reachable output blocked.
        ctx.set(dut.behind[i], 0b01)
        assert ctx.get(dut.blocked[i][1]) == sum(1 << o for o in range(5) if can_turn("xy", i, o))
        assert ctx.get(dut.blocked[LOCAL][1]) == 0

    run(dut, bench, clock=False)


def test_output_vc_state_free_after_its_latency():
    p = params(vcs=2, vc_depth=4, max_packet_flits=2)
    dut = OutputVcState(p)
    assert dut.latency == 1
    seen = {}

    async def bench(ctx):
        assert ctx.get(dut.free) == 0b11 and ctx.get(dut.low) == 0
        ctx.set(dut.alloc, 1)                      # a head takes VC 0 ...
        ctx.set(dut.send, 1)
        ctx.set(dut.send_head, 1)
        await ctx.tick()
        ctx.set(dut.alloc, 0)
        ctx.set(dut.send_head, 0)
        seen["after_alloc"] = (ctx.get(dut.free), ctx.get(dut.low))
        ctx.set(dut.send_tail, 1)                  # ... and its tail leaves the next cycle
        await ctx.tick()
        ctx.set(dut.send, 0)
        ctx.set(dut.send_tail, 0)
        # 2 credits out of 4, both flits still downstream: the head has not left, VC 0 not free.
        seen["after_tail"] = ctx.get(dut.free)
        ctx.set(dut.credit, 0b01)
        await ctx.tick()
        ctx.set(dut.credit, 0)
        seen["after_credit"] = ctx.get(dut.free)
        # A one-flit packet allocated and sent in one cycle leaves its VC unheld.
        ctx.set(dut.alloc, 1)
        ctx.set(dut.send, 1)
        ctx.set(dut.send_head, 1)
        ctx.set(dut.send_tail, 1)
        await ctx.tick()
        for s in (dut.alloc, dut.send, dut.send_head, dut.send_tail):
            ctx.set(s, 0)
        seen["one_flit"] = ctx.get(dut.free)

    run(dut, bench)
    assert seen["after_alloc"] == (0b10, 1)
    assert seen["after_tail"] == 0b10
    assert seen["after_credit"] == 0b11
    assert seen["one_flit"] == 0b10          # VC 0: 2 of 4 credits back with the head still there


def _unicast_head(ctx, va, i, a, want):
    ctx.set(va.valid[i][a], 1)
    ctx.set(va.head[i][a], 1)
    ctx.set(va.want[i][a], want)


def test_vc_allocator_grants_in_the_head_cycle_and_keeps_the_route():
    p = params()
    dut = VcAllocator(p)
    assert dut.latency == 0
    seen = {}

    async def bench(ctx):
        for o in range(5):
            ctx.set(dut.any_free[o], 1)
            ctx.set(dut.low[o], 1)
        _unicast_head(ctx, dut, LOCAL, 0, 1 << EAST)
        seen["now"] = (ctx.get(dut.routed[LOCAL][0]), ctx.get(dut.route[LOCAL][0]),
                       ctx.get(dut.ovc[LOCAL][0][EAST]), ctx.get(dut.alloc[EAST]))
        await ctx.tick()
        ctx.set(dut.low[EAST], 0)
        ctx.set(dut.head[LOCAL][0], 0)             # a body flit now
        seen["kept"] = (ctx.get(dut.routed[LOCAL][0]), ctx.get(dut.route[LOCAL][0]),
                        ctx.get(dut.ovc[LOCAL][0][EAST]), ctx.get(dut.alloc[EAST]))
        ctx.set(dut.release[LOCAL][0], 1)
        await ctx.tick()
        ctx.set(dut.release[LOCAL][0], 0)
        seen["released"] = ctx.get(dut.routed[LOCAL][0])
        # A multicast head gets both outputs at once, or none while one has no free VC.
        _unicast_head(ctx, dut, WEST, 1, (1 << EAST) | (1 << LOCAL))
        ctx.set(dut.any_free[EAST], 0)
        seen["mc_wait"] = ctx.get(dut.routed[WEST][1])
        ctx.set(dut.any_free[EAST], 1)
        seen["mc_go"] = (ctx.get(dut.routed[WEST][1]), ctx.get(dut.alloc[EAST]),
                         ctx.get(dut.alloc[LOCAL]))

    run(dut, bench)
    assert seen["now"] == (1, 1 << EAST, 1, 1)
    assert seen["kept"] == (1, 1 << EAST, 1, 0)
    assert seen["released"] == 0
    assert seen["mc_wait"] == 0
    assert seen["mc_go"] == (1, 1, 1)


def test_pipelined_vc_allocator_shows_the_allocation_a_cycle_later():
    p = params(vcs=4, vc_depth=2, max_packet_flits=2, pipelined=True)
    dut = VcAllocator(p)
    assert dut.latency == 1
    seen = {}

    async def bench(ctx):
        for o in range(5):
            ctx.set(dut.any_free[o], 1)
            ctx.set(dut.low[o], 2)
        _unicast_head(ctx, dut, LOCAL, 3, 1 << EAST)
        seen["now"] = (ctx.get(dut.routed[LOCAL][3]), ctx.get(dut.alloc[EAST]))
        cycles = 0
        while not ctx.get(dut.routed[LOCAL][3]):
            await ctx.tick()
            cycles += 1
        seen["cycles"] = cycles
        seen["after"] = (ctx.get(dut.route[LOCAL][3]), ctx.get(dut.ovc[LOCAL][3][EAST]))

    run(dut, bench)
    assert seen == {"now": (0, 1), "cycles": dut.latency, "after": (1 << EAST, 2)}


def test_pipelined_in_order_rule_moves_to_the_switch():
    p = params(vcs=2, pipelined=True)
    dut = InOrderRule(p)

    async def bench(ctx):
        i = WEST
        ctx.set(dut.older[i], 0b0010)       # VC 0's head is older than VC 1's
        ctx.set(dut.pending[i], 0b11)
        ctx.set(dut.want[i][0], 1 << EAST)
        ctx.set(dut.want[i][1], 1 << EAST)
        assert ctx.get(dut.blocked[i][1]) == 1 << EAST and ctx.get(dut.sw_blocked[i][1]) == 0
        # Once the older head holds its VCs, the younger may be allocated, not switched before it.
        ctx.set(dut.routed[i][0], 1)
        ctx.set(dut.route[i][0], 1 << EAST)
        assert ctx.get(dut.blocked[i][1]) == 0 and ctx.get(dut.sw_blocked[i][1]) == 1 << EAST
        ctx.set(dut.sent[i][0], 1 << EAST)
        assert ctx.get(dut.sw_blocked[i][1]) == 0

    run(dut, bench, clock=False)


def test_switch_allocator_grants_in_the_flit_cycle_and_keeps_the_packet_together():
    p = params(vcs=1)
    dut = SwitchAllocator(p)
    assert dut.latency == 0
    reqs = dut.requesters(EAST)
    k_local, k_west = reqs.index((LOCAL, 0)), reqs.index((WEST, 0))
    seen = []

    async def bench(ctx):
        for i in (LOCAL, WEST):
            ctx.set(dut.valid[i][0], 1)
            ctx.set(dut.routed[i][0], 1)
            ctx.set(dut.route[i][0], 1 << EAST)
        for _ in range(3):
            seen.append((ctx.get(dut.grant_e), ctx.get(dut.pop[LOCAL][0]),
                         ctx.get(dut.pop[WEST][0])))
            await ctx.tick()
        ctx.set(dut.tail[LOCAL][0], 1)              # the local packet's tail: the output moves on
        seen.append(ctx.get(dut.grant_e))
        await ctx.tick()
        seen.append(ctx.get(dut.grant_e))

    run(dut, bench)
    assert seen[0] == (1 << k_local, 1, 0)          # granted and popped in the cycle it is there
    assert seen[1] == seen[2] == (1 << k_local, 1, 0)   # held while the packet has flits
    assert seen[3] == 1 << k_local
    assert seen[4] == 1 << k_west


def test_switch_allocator_multicast_flit_pops_after_every_output():
    p = params(vcs=1)
    dut = SwitchAllocator(p)
    seen = []

    async def bench(ctx):
        # West wants east; local (a multicast) wants east and south: east goes to one of them.
        ctx.set(dut.valid[WEST][0], 1)
        ctx.set(dut.routed[WEST][0], 1)
        ctx.set(dut.route[WEST][0], 1 << EAST)
        ctx.set(dut.tail[WEST][0], 1)
        ctx.set(dut.valid[LOCAL][0], 1)
        ctx.set(dut.routed[LOCAL][0], 1)
        ctx.set(dut.route[LOCAL][0], (1 << EAST) | (1 << SOUTH))
        ctx.set(dut.tail[LOCAL][0], 1)
        for _ in range(2):
            seen.append((ctx.get(dut.pop[LOCAL][0]), ctx.get(dut.sent[LOCAL][0])))
            await ctx.tick()

    run(dut, bench)
    # Cycle 0: local gets east and south (round robin starts at the lowest): popped at once.
    assert seen[0] == (1, 0)


@pytest.mark.parametrize("bypass", [True, False])
def test_vc_buffer_latency(bypass):
    p = params()
    dut = VcBuffer(p, bypass=bypass)
    assert dut.latency == (0 if bypass else 1)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.vc, 1)
        ctx.set(dut.i.flit.head, 1)
        ctx.set(dut.i.flit.data, 0x5A)
        cycles = 0
        while not ctx.get(dut.valid[1]):
            await ctx.tick()
            ctx.set(dut.i.valid, 0)
            cycles += 1
        seen["cycles"], seen["data"] = cycles, ctx.get(dut.flit[1].data)

    run(dut, bench)
    assert seen == {"cycles": dut.latency, "data": 0x5A}


@pytest.mark.parametrize("router_cycles, pipelined", [(1, False), (2, False), (1, True)],
                         ids=["bypassed", "registered", "pipelined"])
def test_router_latency_is_the_sum_of_its_parts_and_its_rtl(router_cycles, pipelined):
    p = params(router_cycles=router_cycles, pipelined=pipelined)
    dut = Router(p)
    parts = dut.latency_parts
    assert dut.latency == sum(parts.values()) == router_cycles + pipelined == p.hop_cycles
    assert parts["route"] == RouteCompute.latency
    assert parts["vc_allocation"] == VcAllocator.latency_of(p) == int(pipelined)
    assert parts["switch_allocation"] == SwitchAllocator.latency
    assert parts["input_buffer"] == VcBuffer.latency_of(router_cycles == 1)
    seen = {}

    async def bench(ctx):
        # Router (1, 1) of the 3 x 3 mesh; a one-flit head from the west for node (2, 1): east.
        ctx.set(dut.x, 1)
        ctx.set(dut.y, 1)
        ctx.set(dut.i_w.valid, 1)
        ctx.set(dut.i_w.flit.head, 1)
        ctx.set(dut.i_w.flit.tail, 1)
        ctx.set(dut.i_w.flit.mask, 1 << (1 * 3 + 2))
        ctx.set(dut.i_w.flit.data, 0x3C)
        cycles = 0
        while not ctx.get(dut.o_e.valid):
            await ctx.tick()
            ctx.set(dut.i_w.valid, 0)
            cycles += 1
            assert cycles < 10
        seen["cycles"], seen["data"] = cycles, ctx.get(dut.o_e.flit.data)
        seen["mask"] = ctx.get(dut.o_e.flit.mask)

    run(dut, bench)
    assert seen == {"cycles": dut.latency, "data": 0x3C, "mask": 1 << 5}
