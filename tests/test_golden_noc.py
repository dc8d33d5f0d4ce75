"""The NoC golden model on its own, and against the routing constants of the generator."""

import numpy as np
import pytest

from gen.lib.noc import EAST, LOCAL, NORTH, SOUTH, WEST, NocParams, region_mask
from gen.router import can_turn, present_ports
from sim.golden import noc as golden

SIZES = [(1, 1), (2, 2), (3, 3), (4, 4), (3, 2), (1, 5), (8, 8)]


def _step(kx, a, b):
    (ax, ay), (bx, by) = golden.coords(kx, a), golden.coords(kx, b)
    return {(1, 0): EAST, (-1, 0): WEST, (0, 1): SOUTH, (0, -1): NORTH}[(bx - ax, by - ay)]


@pytest.mark.parametrize("kx, ky", SIZES)
@pytest.mark.parametrize("routing", ["xy", "yx"])
def test_routes_are_dimension_order_and_minimal(kx, ky, routing):
    first = "x" if routing == "xy" else "y"
    for s in range(kx * ky):
        for d in range(kx * ky):
            path = golden.route(kx, ky, s, d, routing)
            assert path[0] == s and path[-1] == d
            assert len(path) == golden.hops(kx, s, d) + 1
            dims = ["x" if _step(kx, a, b) in (EAST, WEST) else "y"
                    for a, b in zip(path, path[1:], strict=False)]
            # All moves of the first dimension come before any of the second.
            if first in dims:
                assert dims == sorted(dims, key=lambda v: v != first)


def test_routes_by_hand():
    # 4 x 4: node 1 = (1, 0) to node 14 = (2, 3).
    assert golden.route(4, 4, 1, 14, "xy") == [1, 2, 6, 10, 14]
    assert golden.route(4, 4, 1, 14, "yx") == [1, 5, 9, 13, 14]
    assert golden.route(3, 2, 5, 0, "xy") == [5, 4, 3, 0]
    with pytest.raises(ValueError, match="node 9 is outside the 3 x 3 mesh"):
        golden.route(3, 3, 0, 9)
    with pytest.raises(ValueError, match="routing = 'zz': must be xy or yx"):
        golden.route(3, 3, 0, 1, "zz")


@pytest.mark.parametrize("kx, ky", [(2, 2), (3, 3), (4, 4), (5, 3)])
@pytest.mark.parametrize("routing", ["xy", "yx"])
def test_multicast_tree_is_a_tree_reaching_every_destination(kx, ky, routing, seed):
    rng = np.random.default_rng(seed)
    n = kx * ky
    for _ in range(50):
        src = int(rng.integers(n))
        dests = {int(d) for d in rng.choice(n, int(rng.integers(1, n + 1)), replace=False)}
        links = golden.multicast_tree(kx, ky, src, dests, routing)
        incoming = {}
        for a, b in links:
            assert b not in incoming, f"node {b} reached twice"
            incoming[b] = a
            assert golden.hops(kx, a, b) == 1
        assert src not in incoming
        for d in dests:  # walk back from each destination to the source
            node, steps = d, 0
            while node != src:
                node = incoming[node]
                steps += 1
            assert steps == golden.hops(kx, src, d)
        # Fewer links than separate unicasts whenever paths share a prefix; never more.
        assert len(links) <= sum(golden.hops(kx, src, d) for d in dests)


def test_multicast_tree_by_hand():
    # 3 x 3, from the corner 0 to the far row (6, 7, 8) under XY: along row 0, then down each column.
    links = golden.multicast_tree(3, 3, 0, {6, 7, 8}, "xy")
    assert links == {(0, 1), (1, 2), (0, 3), (3, 6), (1, 4), (4, 7), (2, 5), (5, 8)}
    links = golden.multicast_tree(3, 3, 0, {6, 7, 8}, "yx")
    assert links == {(0, 3), (3, 6), (6, 7), (7, 8)}


@pytest.mark.parametrize("kx, ky", SIZES)
@pytest.mark.parametrize("routing", ["xy", "yx"])
def test_router_regions_and_turns_follow_the_golden_routes(kx, ky, routing):
    """The generator's per-router constants (output regions, allowed turns, present ports) send every
    packet along the golden model's route."""
    p = NocParams(kx=kx, ky=ky, flit_width=8, vcs=1, vc_depth=1, max_packet_flits=1, routing=routing)
    regions = {(x, y, port): region_mask(p, x, y, port)
               for x in range(kx) for y in range(ky) for port in range(5)}
    ports = {(x, y): present_ports(p, x, y) for x in range(kx) for y in range(ky)}
    for s in range(p.nodes):
        for d in range(p.nodes):
            path = golden.route(kx, ky, s, d, routing)
            came_in = LOCAL
            for k, here in enumerate(path):
                x, y = golden.coords(kx, here)
                out = LOCAL if k == len(path) - 1 else _step(kx, here, path[k + 1])
                assert regions[x, y, out] >> d & 1
                assert out in ports[x, y]
                assert can_turn(routing, came_in, out)
                came_in = {EAST: WEST, WEST: EAST, NORTH: SOUTH, SOUTH: NORTH, LOCAL: LOCAL}[out]
    for y in range(ky):
        for x in range(kx):  # the regions of one router split the mesh
            masks = [regions[x, y, port] for port in range(5)]
            assert sum(masks) == (1 << p.nodes) - 1
            assert all(a & b == 0 for i, a in enumerate(masks) for b in masks[i + 1:])


def test_zero_load_latency_formula():
    assert golden.zero_load_latency(0, 1) == 2
    assert golden.zero_load_latency(6, 4) == 6 + 4 + 1
    for h in range(15):
        for length in range(1, 9):
            assert golden.zero_load_latency(h, length) == h + length + 1
    with pytest.raises(ValueError, match="at least one flit"):
        golden.zero_load_latency(1, 0)


def test_deliveries_order_drops_and_cuts():
    P = golden.Packet
    packets = [
        P(0, [1, 2], dest_x=1, dest_y=0),                  # 0 -> 1
        P(0, [3], mcast=True, mask=0b1011),                # 0 -> 0, 1, 3
        P(2, [4, 5, 6], dest_x=2, dest_y=0),               # bad: x outside a 2 x 2 mesh
        P(2, [7], mcast=True, mask=0),                     # bad: empty mask
        P(3, [8, 9, 10, 11], dest_x=0, dest_y=0),          # cut to 3 flits, counted
        P(0, [12], dest_x=1, dest_y=0),                    # 0 -> 1 again, after the first two
    ]
    expected, drops = golden.deliveries(2, 2, packets, max_packet_flits=3)
    assert expected == {
        (0, 1): [[1, 2], [3], [12]],
        (0, 0): [[3]],
        (0, 3): [[3]],
        (3, 0): [[8, 9, 10]],
    }
    assert drops == [0, 0, 2, 1]


def test_random_traffic_shape(seed):
    rng = np.random.default_rng(seed)
    packets = golden.random_traffic(rng, 3, 3, 40, max_packet_flits=5, flit_width=70,
                                    mcast_fraction=0.3, bad_fraction=0.1)
    assert len(packets) == 9 * 40
    assert all(1 <= len(p.payload) <= 5 for p in packets)
    assert all(0 <= v < 1 << 70 for p in packets for v in p.payload)
    kinds = [golden.classify(3, 3, p, 5)[2] for p in packets]
    assert 0 < sum(kinds) < len(packets)
    assert any(p.mcast and p.mask for p in packets)


@pytest.mark.parametrize("k", [4, 8])
def test_pattern_bounds(k):
    """The channel-load bound of uniform traffic is the bisection bound the goals quote; the other
    patterns' bounds by hand (4 x 4: transpose loads the links next to the diagonal with 3 flows)."""
    n = k * k
    # Bisection: k links each way; half the nodes send (n / 2) / (n - 1) of their traffic across.
    bisection = 4 * k * (n - 1) / n ** 2
    assert bisection == {4: 0.9375, 8: 0.4921875}[k]
    assert golden.ideal_throughput("uniform", k, k) == pytest.approx(bisection)
    assert golden.ideal_throughput("bitcomp", k, k) == pytest.approx(2 / k)
    if k == 4:
        assert golden.ideal_throughput("transpose", 4, 4) == pytest.approx(1 / 3)


@pytest.mark.parametrize("pattern", golden.PATTERNS)
def test_pattern_destinations_follow_their_weights(pattern):
    rng = np.random.default_rng(5)
    kx = ky = 4
    for s in range(kx * ky):
        weights = golden.destination_weights(pattern, kx, ky, s)
        if weights:
            assert sum(weights.values()) == pytest.approx(1)
        assert s not in weights
        draws = [golden.pattern_destination(pattern, kx, ky, s, rng) for _ in range(3000)]
        if not weights:
            assert set(draws) == {None}
            continue
        for d, w in weights.items():
            assert abs(draws.count(d) / len(draws) - w) < 0.03
        assert set(draws) <= set(weights)
    with pytest.raises(ValueError, match="transpose needs a square mesh"):
        golden.destination_weights("transpose", 3, 2, 0)
    with pytest.raises(ValueError, match="pattern = 'zigzag'"):
        golden.destination_weights("zigzag", 2, 2, 0)
