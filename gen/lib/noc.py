"""What the mesh network-on-chip's router, network interface and mesh share: flit and link layouts,
port names, and the dimension-order routing regions.

A *link* joins an output port to the input port of the next router (or an interface to its router): a
registered flit with its virtual channel, and, backwards, one credit line per virtual channel.
"""

from amaranth.hdl import Cat, Const, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PORTS", "LOCAL", "NORTH", "EAST", "SOUTH", "WEST", "NocParams", "flit_layout",
           "link_signature", "inject_layout", "eject_layout", "region_mask", "region_bits", "can_turn",
           "CREDIT_LOOP", "full_rate_depth"]

# Port indices of a router. North is toward y - 1, south toward y + 1, east toward x + 1.
LOCAL, NORTH, EAST, SOUTH, WEST = range(5)
PORTS = ("l", "n", "e", "s", "w")


class NocParams:
    """The parameters every NoC component shares (validated by :class:`gen.config.NocConfig`).

    Parameters
    ----------
    kx, ky : int
        Mesh size.
    flit_width : int
        Payload bits per flit.
    vcs : int
        Virtual channels per link (1, 2 or 4).
    vc_depth : int
        Flits buffered per virtual channel at every input; at least ``max_packet_flits``.
    max_packet_flits : int
        Longest packet.
    routing : str
        ``"xy"`` or ``"yx"``.
    router_cycles : int
        Zero-load cycles per hop: 1 (input buffers bypassed when empty) or 2 (registered input
        buffers and credits: no combinational path between routers).
    pipelined : bool
        VC allocation and switch allocation in separate pipeline stages (a head is allocated in one
        cycle and switched from the next): one more cycle per hop, a shorter clock period.
    """

    def __init__(self, *, kx, ky, flit_width, vcs, vc_depth, max_packet_flits, routing,
                 router_cycles=1, pipelined=False):
        if router_cycles not in (1, 2):
            raise ValueError(f"router_cycles = {router_cycles}: must be 1 or 2")
        if vcs not in (1, 2, 4):
            raise ValueError(f"vcs = {vcs}: must be 1, 2 or 4")
        if vc_depth < max_packet_flits:
            raise ValueError(f"vc_depth = {vc_depth}: must be at least max_packet_flits = "
                             f"{max_packet_flits}")
        if routing not in ("xy", "yx"):
            raise ValueError(f"routing = {routing!r}: must be xy or yx")
        self.kx, self.ky = kx, ky
        self.flit_width = flit_width
        self.vcs = vcs
        self.vc_depth = vc_depth
        self.max_packet_flits = max_packet_flits
        self.routing = routing
        self.router_cycles = router_cycles
        self.pipelined = bool(pipelined)

    def as_dict(self):
        out = {"kx": self.kx, "ky": self.ky, "flit_width": self.flit_width, "vcs": self.vcs,
               "vc_depth": self.vc_depth, "max_packet_flits": self.max_packet_flits,
               "routing": self.routing, "router_cycles": self.router_cycles}
        if self.pipelined:     # absent at its default: modules without it keep their parameters
            out["pipelined"] = True
        return out

    @property
    def hop_cycles(self):
        """Zero-load cycles per router (and its output link): ``router_cycles``, plus 1 when
        pipelined."""
        return self.router_cycles + self.pipelined

    @property
    def nodes(self):
        return self.kx * self.ky

    @property
    def node_bits(self):
        return max(1, (self.nodes - 1).bit_length())

    @property
    def vc_bits(self):
        return max(1, (self.vcs - 1).bit_length())

    @property
    def coord_bits(self):
        """Widths of a router's own position inputs ``x`` and ``y`` (0 to kx - 1, 0 to ky - 1)."""
        return max(1, (self.kx - 1).bit_length()), max(1, (self.ky - 1).bit_length())

    @property
    def x_bits(self):
        """Width of a unicast x coordinate: one more value than the mesh has, so that a destination
        outside the mesh can be named (and is dropped)."""
        return self.kx.bit_length()

    @property
    def y_bits(self):
        return self.ky.bit_length()


def flit_layout(p):
    """One flit on a link. ``mask`` (destinations left in this branch) and ``src`` are meaningful in the
    head flit; ``head`` and ``tail`` are both set in a one-flit packet."""
    return data.StructLayout({
        "data": unsigned(p.flit_width),
        "head": unsigned(1),
        "tail": unsigned(1),
        "src": unsigned(p.node_bits),
        "mask": unsigned(p.nodes),
    })


def link_signature(p):
    """A link as its sender sees it: ``valid``, ``vc`` and ``flit`` out, ``credit`` (one bit per VC,
    a freed buffer slot of that VC at the receiver) in."""
    return wiring.Signature({
        "valid": Out(1),
        "vc": Out(p.vc_bits),
        "flit": Out(flit_layout(p)),
        "credit": In(p.vcs),
    })


def inject_layout(p):
    """One beat of a local injection stream. The first beat of a packet names the destinations: the
    unicast node ``(dest_x, dest_y)``, or with ``mcast`` set the set ``mask`` (bit ``y * kx + x``)."""
    return data.StructLayout({
        "data": unsigned(p.flit_width),
        "last": unsigned(1),
        "mcast": unsigned(1),
        "mask": unsigned(p.nodes),
        "dest_x": unsigned(p.x_bits),
        "dest_y": unsigned(p.y_bits),
    })


def eject_layout(p):
    """One beat of a local ejection stream: the flit's data, ``last`` on the packet's final beat, and the
    source node of the packet."""
    return data.StructLayout({
        "data": unsigned(p.flit_width),
        "last": unsigned(1),
        "src": unsigned(p.node_bits),
    })


def region_mask(p, x, y, port):
    """The destinations (as a node bitmask) that the router at ``(x, y)`` sends toward ``port`` under
    dimension-order routing: an integer constant."""
    mask = 0
    for n in range(p.nodes):
        dx, dy = n % p.kx, n // p.kx
        if (dx, dy) == (x, y):
            out = LOCAL
        elif p.routing == "xy":
            out = EAST if dx > x else WEST if dx < x else SOUTH if dy > y else NORTH
        else:
            out = SOUTH if dy > y else NORTH if dy < y else EAST if dx > x else WEST
        if out == port:
            mask |= 1 << n
    return mask


def region_bits(p, x, y, port):
    """:func:`region_mask` in hardware, for a router whose position ``x``, ``y`` are signals: bit ``n``
    is set when the router sends node ``n``'s traffic toward ``port``."""
    bits = []
    for n in range(p.nodes):
        dx, dy = n % p.kx, n // p.kx
        same_x, same_y = x == dx, y == dy
        # Comparisons that cannot hold at the mesh's edges are left out (constant 0).
        east = x < dx if dx > 0 else Const(0, 1)
        west = x > dx if dx < p.kx - 1 else Const(0, 1)
        south = y < dy if dy > 0 else Const(0, 1)
        north = y > dy if dy < p.ky - 1 else Const(0, 1)
        if p.routing == "xy":
            sel = {LOCAL: same_x & same_y, EAST: east, WEST: west,
                   SOUTH: same_x & south, NORTH: same_x & north}
        else:
            sel = {LOCAL: same_x & same_y, SOUTH: south, NORTH: north,
                   EAST: same_y & east, WEST: same_y & west}
        bits.append(sel[port])
    return Cat(bits)


def can_turn(routing, i, o):
    """Can a packet that came in on port ``i`` leave on port ``o`` under dimension-order routing?

    Never back where it came from (except local to local, a node sending to itself); with ``xy`` a
    packet travelling along y never turns into x, with ``yx`` one travelling along x never turns into y.
    """
    if i == LOCAL or o == LOCAL:
        return True
    if i == o:
        return False
    along_x_in, along_x_out = i in (EAST, WEST), o in (EAST, WEST)
    if routing == "xy":
        return along_x_in or not along_x_out
    return not along_x_in or along_x_out


# Flits a sender has sent on a link whose credits are not back yet, at zero load: a flit sent in cycle
# t frees its slot in cycle t + 1 (bypass) and the sender sees the credit in t + 2; with registered
# inputs (router_cycles = 2) the flit is offered in t + 2, its credit leaves from a register in t + 3
# and is seen in t + 4.
CREDIT_LOOP = {1: 1, 2: 3}


def full_rate_depth(vcs, max_packet_flits, router_cycles, pipelined=False):
    """The least ``vc_depth`` at which one uncontended stream of packets of any lengths (1 to
    ``max_packet_flits`` flits, in any order) crosses every link at 1 flit per cycle; ``None`` when no
    depth does.

    A head may take a VC only when the VC has credits for a whole packet, and, with more than one VC,
    when the previous head on it has left the next buffer (:func:`gen.output_vcs.vc_free`). With
    ``r = CREDIT_LOOP[router_cycles]`` flits always on their way back, one VC needs
    ``max_packet_flits + r`` slots. With ``vcs`` VCs a stream takes turns on them; a VC is needed again
    after the packets on the other ``vcs - 1``, which, for one-flit packets, is after ``vcs`` cycles, when
    ``r + 1 - vcs`` of its flits may still be on their way back: ``max_packet_flits + max(0, r + 1 -
    vcs)``. The head condition needs the head's own credit back, ``r + 1`` cycles after it left: with
    ``vcs`` < ``r + 1`` one-flit packets find no VC in time, whatever the depth (2 VCs with registered
    inputs). :func:`sim.golden.noc.stream_full_rate` checks this against every packet-length
    sequence.

    Pipelined (:class:`gen.vc_allocator.VcAllocator`): a head is allocated in the cycle the packet
    before it sends its tail, a cycle before it leaves, and a flit is taken by the next router a cycle
    after it arrives, so 2 flits are on their way back and a VC is chosen 3 cycles after its last head
    left: only 4 VCs (and ``router_cycles = 1``) keep one-flit packets at full rate, with ``vc_depth
    >= max_packet_flits``.
    """
    if pipelined:
        return max_packet_flits if vcs == 4 and router_cycles == 1 else None
    r = CREDIT_LOOP[router_cycles]
    if vcs == 1:
        return max_packet_flits + r
    if vcs < r + 1:
        return None
    return max_packet_flits

