"""Network-level model of the mesh network-on-chip (:mod:`gen.mesh`): routes, trees, deliveries, latency.

Pure Python (no Amaranth, no simulator). Nodes of a ``kx`` x ``ky`` mesh are numbered ``n = y * kx + x``;
x grows to the east, y to the south. Dimension-order routing (Dally and Towles, *Principles and Practices
of Interconnection Networks*, 2004, ch. 14) sends a packet first along x then along y (``xy``), or first
along y then along x (``yx``). A multicast packet follows the union of the dimension-order paths to its
destinations, a tree: it is replicated where the paths part, so each link carries it at most once (the
"XY tree" of Simba-style meshes, Shao et al., MICRO 2019).

What the network promises, and what :func:`deliveries` computes for a sequence of injected packets:

- every packet reaches each of its destinations exactly once, with its payload intact;
- packets from one source to one destination arrive in injection order;
- a bad packet (unicast destination outside the mesh, empty multicast mask) is dropped at the injecting
  interface and counted; a packet longer than ``max_packet_flits`` is cut to its first
  ``max_packet_flits`` flits, delivered so, and counted as bad too.

Zero-load latency (:func:`zero_load_latency`), in cycles from the handshake of a packet's first flit on
the source's injection stream to the handshake of its last flit on a destination's ejection stream, when
nothing else is in the network and the ejection stream is always ready::

    latency = INJECT + (hops + 1) * ROUTER + (length - 1) = hops + length + 1

with INJECT = 1 (the interface's link register), ROUTER = 1 (every router on the path, the source's and
the destination's included, is one cycle of router plus link) and the ejection interface passing an
arriving flit straight to its stream (0 cycles). In the registered mode every router costs 2 cycles:
``2 * hops + length + 2``.
"""

from dataclasses import dataclass, field

__all__ = ["INJECT", "ROUTER", "Packet", "node", "coords", "hops", "route", "multicast_tree",
           "zero_load_latency", "classify", "deliveries", "dest_mask", "random_traffic", "PATTERNS",
           "HOTSPOT_FRACTION", "hotspot_node", "destination_weights", "pattern_destination",
           "ideal_throughput", "CREDIT_LOOP", "stream_cycles", "stream_full_rate"]

INJECT = 1
ROUTER = 1
CREDIT_LOOP = {1: 1, 2: 3}
"""Flits on their way back as credits on a link at zero load, by ``router_cycles``: a flit sent in
cycle t is taken by the next buffer in t + 1 and its credit counts in t + 2 (1 cycle of flits
outstanding), or, with registered inputs, taken in t + 2, credited from a register in t + 3, counted
in t + 4 (3)."""


def node(kx, x, y):
    return y * kx + x


def coords(kx, n):
    return n % kx, n // kx


def hops(kx, src, dst):
    """Links between routers on the dimension-order path (the Manhattan distance)."""
    (sx, sy), (dx, dy) = coords(kx, src), coords(kx, dst)
    return abs(sx - dx) + abs(sy - dy)


def route(kx, ky, src, dst, routing="xy"):
    """Nodes visited from ``src`` to ``dst``, both included."""
    if routing not in ("xy", "yx"):
        raise ValueError(f"routing = {routing!r}: must be xy or yx")
    for n in (src, dst):
        if not 0 <= n < kx * ky:
            raise ValueError(f"node {n} is outside the {kx} x {ky} mesh")
    x, y = coords(kx, src)
    dx, dy = coords(kx, dst)
    path = [src]
    order = ("x", "y") if routing == "xy" else ("y", "x")
    for dim in order:
        if dim == "x":
            while x != dx:
                x += 1 if dx > x else -1
                path.append(node(kx, x, y))
        else:
            while y != dy:
                y += 1 if dy > y else -1
                path.append(node(kx, x, y))
    return path


def multicast_tree(kx, ky, src, dests, routing="xy"):
    """The links (``(a, b)`` node pairs) a packet from ``src`` to the set ``dests`` crosses: the union of
    the dimension-order paths. Each link appears once; the packet is copied at the nodes where the set
    has more than one outgoing link (or an outgoing link and a local delivery)."""
    links = set()
    for d in sorted(dests):
        path = route(kx, ky, src, d, routing)
        links.update(zip(path, path[1:], strict=False))
    return links


def zero_load_latency(hop_count, length, router_cycles=ROUTER):
    """Cycles from the first flit's injection handshake to the last flit's ejection handshake;
    ``router_cycles`` is 2 in the registered mode."""
    if length < 1:
        raise ValueError("a packet has at least one flit")
    return INJECT + (hop_count + 1) * router_cycles + (length - 1)


def dest_mask(kx, ky, dests):
    mask = 0
    for d in dests:
        if not 0 <= d < kx * ky:
            raise ValueError(f"node {d} is outside the {kx} x {ky} mesh")
        mask |= 1 << d
    return mask


@dataclass
class Packet:
    """One injected packet as the local side of an interface sends it.

    ``mcast`` selects the destination: the set of bit positions of ``mask`` (multicast) or the single
    node at ``(dest_x, dest_y)`` (unicast, which may lie outside the mesh: then the packet is bad).
    ``payload`` is the list of flit data words (one per flit).
    """

    src: int
    payload: list
    mcast: bool = False
    mask: int = 0
    dest_x: int = 0
    dest_y: int = 0
    tag: object = field(default=None, compare=False)


def classify(kx, ky, packet, max_packet_flits):
    """``(destinations, delivered payload, bad)`` of ``packet`` as the injecting interface treats it."""
    if packet.mcast:
        dests = [n for n in range(kx * ky) if packet.mask >> n & 1]
        bad = not dests
    else:
        bad = not (0 <= packet.dest_x < kx and 0 <= packet.dest_y < ky)
        dests = [] if bad else [node(kx, packet.dest_x, packet.dest_y)]
    if bad:
        return [], [], True
    payload = list(packet.payload[:max_packet_flits])
    return dests, payload, len(packet.payload) > max_packet_flits


def deliveries(kx, ky, packets, max_packet_flits):
    """What the destinations must see for ``packets`` (in injection order per source).

    Returns ``(expected, drops)``: ``expected[(src, dst)]`` is the list of payloads (lists of words) that
    ``dst`` receives from ``src``, in order; ``drops[src]`` counts the packets ``src``'s interface flags as
    bad (dropped, or cut to ``max_packet_flits``).
    """
    expected = {}
    drops = [0] * (kx * ky)
    for p in packets:
        dests, payload, bad = classify(kx, ky, p, max_packet_flits)
        drops[p.src] += bad
        for d in dests:
            expected.setdefault((p.src, d), []).append(payload)
    return expected, drops


def random_traffic(rng, kx, ky, count, *, max_packet_flits, flit_width, mcast_fraction=0.2,
                   bad_fraction=0.0):
    """``count`` random packets per source: uniform destinations, random lengths 1 to the maximum,
    a fraction multicast (random non-empty masks), optionally a fraction bad."""
    n = kx * ky
    packets = []
    for src in range(n):
        for _ in range(count):
            length = int(rng.integers(1, max_packet_flits + 1))
            payload = [int.from_bytes(rng.bytes((flit_width + 7) // 8), "little")
                       & ((1 << flit_width) - 1) for _ in range(length)]
            r = rng.random()
            if r < bad_fraction:
                if rng.random() < 0.5:
                    packets.append(Packet(src, payload, mcast=True, mask=0))
                else:
                    packets.append(Packet(src, payload, dest_x=kx, dest_y=int(rng.integers(ky))))
            elif r < bad_fraction + mcast_fraction:
                mask = 0
                while mask == 0:
                    mask = int(sum(1 << i for i in range(n) if rng.random() < 0.4))
                packets.append(Packet(src, payload, mcast=True, mask=mask))
            else:
                d = int(rng.integers(n))
                x, y = coords(kx, d)
                packets.append(Packet(src, payload, dest_x=x, dest_y=y))
    return packets


PATTERNS = ("uniform", "transpose", "bitcomp", "hotspot")
"""Synthetic traffic patterns of the load-latency bench (Dally and Towles 2004, section 3.2):

- ``uniform``: every other node with equal probability (no self-sends);
- ``transpose``: node ``(x, y)`` sends to ``(y, x)`` (square meshes; the diagonal sends nothing);
- ``bitcomp``: bit complement, ``(x, y)`` to ``(kx - 1 - x, ky - 1 - y)`` (the centre of an odd mesh
  sends nothing);
- ``hotspot``: a fraction :data:`HOTSPOT_FRACTION` of the packets of every other node goes to the hotspot
  ``(kx // 2, ky // 2)``, the rest (and all of the hotspot's own) is uniform.
"""

HOTSPOT_FRACTION = 0.1


def hotspot_node(kx, ky):
    return node(kx, kx // 2, ky // 2)


def destination_weights(pattern, kx, ky, src):
    """``{destination: probability}`` of a packet from ``src`` (empty: ``src`` sends nothing)."""
    n = kx * ky
    x, y = coords(kx, src)
    if pattern == "uniform":
        return {d: 1 / (n - 1) for d in range(n) if d != src} if n > 1 else {}
    if pattern == "transpose":
        if kx != ky:
            raise ValueError(f"transpose needs a square mesh, not {kx} x {ky}")
        d = node(kx, y, x)
        return {} if d == src else {d: 1.0}
    if pattern == "bitcomp":
        d = node(kx, kx - 1 - x, ky - 1 - y)
        return {} if d == src else {d: 1.0}
    if pattern == "hotspot":
        hot = hotspot_node(kx, ky)
        weights = destination_weights("uniform", kx, ky, src)
        if src == hot or not weights:
            return weights
        weights = {d: (1 - HOTSPOT_FRACTION) * w for d, w in weights.items()}
        weights[hot] += HOTSPOT_FRACTION
        return weights
    raise ValueError(f"pattern = {pattern!r}: must be one of " + ", ".join(PATTERNS))


def pattern_destination(pattern, kx, ky, src, rng):
    """A random destination of a packet from ``src`` under ``pattern`` (``None``: it sends nothing)."""
    n = kx * ky
    if pattern == "uniform" or (pattern == "hotspot" and (src == hotspot_node(kx, ky)
                                                          or rng.random() >= HOTSPOT_FRACTION)):
        if n == 1:
            return None
        d = int(rng.integers(n - 1))
        return d + (d >= src)
    if pattern == "hotspot":
        return hotspot_node(kx, ky)
    weights = destination_weights(pattern, kx, ky, src)
    return next(iter(weights)) if weights else None


def ideal_throughput(pattern, kx, ky, routing="xy"):
    """The highest offered load (flits per cycle per sending node) that no link, injection or ejection
    channel of dimension-order routing would carry above 1 flit per cycle: the channel-load bound
    (Dally and Towles 2004, section 3.3.1). For uniform traffic it equals the bisection bound the
    NoC goals quote (0.9375 on 4 x 4, 0.492 on 8 x 8)."""
    load = {}
    for s in range(kx * ky):
        weights = destination_weights(pattern, kx, ky, s)
        if weights:
            load["inject", s] = 1.0
        for d, w in weights.items():
            path = route(kx, ky, s, d, routing)
            for link in zip(path, path[1:], strict=False):
                load[link] = load.get(link, 0.0) + w
            load["eject", d] = load.get(("eject", d), 0.0) + w
    return 1 / max(load.values()) if load else 0.0


def _link_step(state, vcs, vc_depth, max_packet_flits, r, length):
    """One cycle of a link's sender with an uncontended stream and a receiver that takes every flit at
    once: ``state`` is ``(credits, since_head, in_flight, vc, remaining)``; ``length`` is the length of
    the packet to start when a head is due. Returns the next state, or ``None`` when the head finds no
    free VC (the stream waits a cycle)."""
    credits, since, flight, vc, remaining = state
    head = remaining == 0
    if head:
        free = [c for c in range(vcs) if credits[c] >= max_packet_flits
                and (vcs == 1 or credits[c] + since[c] > vc_depth)]
        if not free:
            return None
        vc, remaining = free[0], length
    credits, since = list(credits), list(since)
    credits[vc] -= 1
    since[vc] = 1 if head else min(since[vc] + 1, max_packet_flits)
    if flight and flight[-1] is not None:
        credits[flight[-1]] += 1
    flight = ((vc,) + flight)[:r]
    return tuple(credits), tuple(since), flight, vc, remaining - 1


def _returned(state, r):
    """``state`` after a cycle in which nothing is sent."""
    credits, since, flight, vc, remaining = state
    credits = list(credits)
    if flight and flight[-1] is not None:
        credits[flight[-1]] += 1
    return tuple(credits), since, ((None,) + flight)[:r], vc, remaining


def _initial(vcs, vc_depth, r):
    return (vc_depth,) * vcs, (1,) * vcs, (None,) * r, 0, 0


def stream_cycles(lengths, *, vcs, vc_depth, max_packet_flits, router_cycles=1):
    """Cycles one link takes to carry back-to-back packets of ``lengths`` flits (from its first flit
    to its last, both included), under the allocation rule of :func:`gen.output_vcs.vc_free`: a head
    takes the lowest VC with credits for a whole packet and, with more than one VC, whose previous
    head has left the next buffer. ``sum(lengths)`` means 1 flit per cycle."""
    r = CREDIT_LOOP[router_cycles]
    state = _initial(vcs, vc_depth, r)
    cycles, todo = 0, list(lengths)
    if any(not 1 <= n <= max_packet_flits for n in todo):
        raise ValueError(f"packet lengths must be from 1 to max_packet_flits = {max_packet_flits}")
    while todo or state[4]:
        nxt = _link_step(state, vcs, vc_depth, max_packet_flits, r, todo[0] if todo else 0)
        if nxt is None:
            state = _returned(state, r)
        else:
            if state[4] == 0:
                todo.pop(0)
            state = nxt
        cycles += 1
    return cycles


def _free(credits, since, vcs, vc_depth, max_packet_flits, exclude=None):
    return [c for c in range(vcs) if c != exclude and credits[c] >= max_packet_flits
            and (vcs == 1 or credits[c] + since[c] > vc_depth)]


def _link_full_rate(vcs, vc_depth, max_packet_flits, r, *, ahead, avoid_last):
    """Exhaustive search of one link's sender under every sequence of packet lengths: ``False`` as
    soon as a head finds no free VC in time. ``r``: flits whose credits are on their way back;
    ``ahead``: the sender allocates a packet's VC in the cycle the previous packet's tail leaves (a
    pipelined router: allocation a cycle before the switch; the VC of that packet is still held);
    ``avoid_last``: a new packet never takes the previous packet's VC (a pipelined mesh's
    interface)."""
    state = ((vc_depth,) * vcs, (1,) * vcs, (None,) * r, None, 0)
    seen, todo = {state}, [state]
    while todo:
        credits, since, flight, vc, remaining = todo.pop()
        if remaining == 0:
            if ahead and vc is not None:
                choices = [(vc, n) for n in range(1, max_packet_flits + 1)]  # allocated before
            else:
                free = _free(credits, since, vcs, vc_depth, max_packet_flits,
                             vc if avoid_last else None)
                if not free:
                    return False
                choices = [(free[0], n) for n in range(1, max_packet_flits + 1)]
            head = True
        else:
            choices, head = [(vc, remaining)], False
        for c, left in choices:
            nxt_vc = c
            if ahead and left == 1:
                # The tail leaves now: the next packet's VC is chosen now, before this cycle's send,
                # and not the VC this packet holds.
                free = _free(credits, since, vcs, vc_depth, max_packet_flits, c)
                if not free:
                    return False
                nxt_vc = free[0]
            cr, sh = list(credits), list(since)
            cr[c] -= 1
            sh[c] = 1 if head else min(sh[c] + 1, max_packet_flits)
            if flight and flight[-1] is not None:
                cr[flight[-1]] += 1
            nxt = (tuple(cr), tuple(sh), ((c,) + flight)[:r], nxt_vc, left - 1)
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return True


def stream_full_rate(*, vcs, vc_depth, max_packet_flits, router_cycles=1, pipelined=False):
    """Does every sequence of packet lengths (1 to ``max_packet_flits``) cross every link at 1 flit
    per cycle? An exhaustive search of a link sender's states (:func:`stream_cycles`' model):
    ``False`` as soon as some sequence reaches a head that finds no free VC in time. Pipelined
    (one router mode, inputs bypassed): every link is checked as its sender and receiver make it,
    router to router (allocation a cycle ahead, 2 flits of credits on their way back), interface to
    router (the interface avoids the previous packet's VC; 2) and router to interface (ahead; 1)."""
    if pipelined:
        if router_cycles != 1:
            raise ValueError("the pipelined router is modelled with router_cycles = 1")
        args = (vcs, vc_depth, max_packet_flits)
        return (_link_full_rate(*args, 2, ahead=True, avoid_last=False)
                and _link_full_rate(*args, 2, ahead=False, avoid_last=True)
                and _link_full_rate(*args, 1, ahead=True, avoid_last=False))
    return _link_full_rate(vcs, vc_depth, max_packet_flits, CREDIT_LOOP[router_cycles],
                           ahead=False, avoid_last=False)
