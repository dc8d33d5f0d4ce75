"""A ``kx`` x ``ky`` mesh of routers, each with a network interface for its local streams."""

from amaranth.hdl import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .lib import hier
from .lib.hier import Reused
from .lib.noc import NocParams, eject_layout, inject_layout
from .noc_ni import NetworkInterface
from .router import Router

__all__ = ["Mesh"]


class Mesh(Reused, wiring.Component):
    """The network-on-chip: routers (:class:`gen.router.Router`) on a ``kx`` x ``ky`` grid joined by
    links to their four neighbours, and a network interface (:class:`gen.noc_ni.NetworkInterface`) at
    every node. Node ``n = y * kx + x`` injects packets on ``i<n>`` and receives on ``o<n>``.

    Zero-load latency from the first beat's handshake on ``i<s>`` to the last beat's handshake on
    ``o<d>``, for a packet of ``L`` flits crossing ``H`` links between routers (``H`` = Manhattan distance)::

        latency = 1 (injection) + (H + 1) * R (routers) + (L - 1) = H + L + 1    (R = 1)

    where ``R`` is the router's latency (:attr:`gen.router.Router.latency`): ``router_cycles`` (1,
    or 2 in the registered mode: ``2 H + L + 2``), plus 1 when pipelined.

    Parameters
    ----------
    kx, ky, flit_width, vcs, vc_depth, max_packet_flits, routing, router_cycles, pipelined
        See :class:`gen.lib.noc.NocParams`.

    Members
    -------
    i<n> : In(stream.Signature(inject_layout(params))), for every node n
    o<n> : Out(stream.Signature(eject_layout(params))), for every node n
    drops<n> : Out(16)
        Bad packets dropped at node n's interface.
    bad : Out(kx * ky)
        Bit n: node n's interface has dropped a bad packet since reset.
    """

    module_suffix = "mesh"
    optional_parameters = ("pipelined",)

    def __init__(self, *, kx, ky, flit_width, vcs, vc_depth, max_packet_flits, routing,
                 router_cycles=1, pipelined=False):
        self._p = NocParams(kx=kx, ky=ky, flit_width=flit_width, vcs=vcs, vc_depth=vc_depth,
                            max_packet_flits=max_packet_flits, routing=routing,
                            router_cycles=router_cycles, pipelined=pipelined)
        members = {}
        for n in range(self._p.nodes):
            members[f"i{n}"] = In(stream.Signature(inject_layout(self._p)))
        for n in range(self._p.nodes):
            members[f"o{n}"] = Out(stream.Signature(eject_layout(self._p)))
        for n in range(self._p.nodes):
            members[f"drops{n}"] = Out(16)
        members["bad"] = Out(self._p.nodes)
        super().__init__(members)

    @property
    def params(self):
        return self._p

    def zero_load_latency(self, hops, length):
        """Cycles from the first beat taken on ``i<s>`` to the last beat taken on ``o<d>``."""
        return NetworkInterface.inject_latency + (hops + 1) * self._p.hop_cycles \
            + (length - 1) + NetworkInterface.eject_latency

    def elaborate(self, platform):
        m = Module()
        p = self._p
        routers = {}
        nis = []
        for y in range(p.ky):
            for x in range(p.kx):
                n = y * p.kx + x
                r = routers[x, y] = hier.add(m, f"router_{x}_{y}", Router(p))
                ni = hier.add(m, f"ni_{x}_{y}", NetworkInterface(p))
                nis.append(ni)
                m.d.comb += [r.x.eq(x), r.y.eq(y), ni.node.eq(n)]
                wiring.connect(m, ni.net_o, r.i_l)
                wiring.connect(m, r.o_l, ni.net_i)
                wiring.connect(m, wiring.flipped(getattr(self, f"i{n}")), ni.i)
                wiring.connect(m, ni.o, wiring.flipped(getattr(self, f"o{n}")))
                m.d.comb += getattr(self, f"drops{n}").eq(ni.drops)
        for (x, y), r in routers.items():
            if x + 1 < p.kx:
                east = routers[x + 1, y]
                wiring.connect(m, r.o_e, east.i_w)
                wiring.connect(m, east.o_w, r.i_e)
            if y + 1 < p.ky:
                south = routers[x, y + 1]
                wiring.connect(m, r.o_s, south.i_n)
                wiring.connect(m, south.o_n, r.i_s)
        m.d.comb += self.bad.eq(Cat(ni.bad for ni in nis))
        return m
