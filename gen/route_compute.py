"""Route computation of the mesh router: which outputs a head flit's destinations need."""

from amaranth.hdl import Cat, Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib.noc import PORTS, can_turn, region_bits

__all__ = ["RouteCompute"]


class RouteCompute(wiring.Component):
    """Dimension-order route computation of a 5-port router at the position ``x``, ``y``.

    ``region[o]`` is the set of nodes (a bitmask, bit ``y * kx + x``) that this router sends toward
    output port ``o`` under dimension-order routing (:func:`gen.lib.noc.region_bits`: comparisons of
    the position with every node's). For the front flit of input port ``i``, virtual channel ``a``,
    ``want[i][a]`` has bit ``o`` set when its destination mask ``mask[i][a]`` has a node in
    ``region[o]`` and a packet that came in on ``i`` may leave on ``o`` (:func:`gen.lib.noc.can_turn`;
    the other bits are constant 0). A multicast head wants every output where its XY tree branches;
    the output's part of the mask, ``mask & region[o]``, travels on as the new mask.

    Combinational (:attr:`latency` = 0): a head is routed in the cycle it is at the front.

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`

    Members
    -------
    x, y : In(params.coord_bits)
    mask : In(params.nodes).array(5, params.vcs)
        Destination mask of each input VC's front flit (meaningful for a head flit).
    want : Out(5).array(5, params.vcs)
        Outputs each input VC's front head needs, one bit per port (local, north, east, south, west).
    region : Out(params.nodes).array(5)
    """

    def __init__(self, params):
        self._p = params
        xb, yb = params.coord_bits
        n_ports = len(PORTS)
        super().__init__({
            "x": In(xb), "y": In(yb),
            "mask": In(params.nodes).array(n_ports, params.vcs),
            "want": Out(n_ports).array(n_ports, params.vcs),
            "region": Out(params.nodes).array(n_ports),
        })

    latency = 0
    """Cycles from a head at the front to its route: 0 (combinational)."""

    def elaborate(self, platform):
        m = Module()
        p = self._p
        ports = range(len(PORTS))
        for o in ports:
            m.d.comb += self.region[o].eq(region_bits(p, self.x, self.y, o))
        for i in ports:
            for a in range(p.vcs):
                m.d.comb += self.want[i][a].eq(Cat(
                    (self.mask[i][a] & self.region[o]).any() if can_turn(p.routing, i, o)
                    else Const(0, 1)
                    for o in ports))
        return m
