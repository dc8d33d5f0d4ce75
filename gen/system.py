"""The multi-tile system: a ``kx`` x ``ky`` mesh of tiles with a host port at node 0."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .lib import hier
from .lib.noc import eject_layout, inject_layout
from .mesh import Mesh
from .tile import KINDS, Tile

__all__ = ["System"]


class System(wiring.Component):
    """``kx * ky`` tiles (:class:`gen.tile.Tile`), one at every node ``n = y * kx + x`` of a mesh
    network-on-chip (:class:`gen.mesh.Mesh`) whose flits are the tiles' W-bit words, and a host
    port at node 0.

    Model parallelism as in the ISSCC 2024 short course on ML hardware and in Simba (Shao et al.,
    "Simba: Scaling Deep-Learning Inference with Multi-Chip-Module-Based Architecture", MICRO
    2019): a program places a layer's weights in the tiles' scratchpads once (weight-stationary),
    multicasts activations to the tiles that need them and gathers the results over the network;
    the packet and command formats are :class:`gen.tile.Tile`'s.

    Host port. The host injects whole packets on ``host_i`` (the mesh's injection beats: a packet's
    first beat names the destination node or multicast mask); they are merged with tile 0's
    injections packet by packet (the first of the two to offer a beat, alternating when both do,
    keeps the node's injection until its packet's last beat). Packets ejected at node 0 go to
    ``host_o`` (header included) when their header's ``kind`` is HOST, else to tile 0. A HOST
    packet ejected at another node is dropped by its tile and counted. With ``kx = ky = 1`` the
    one tile and the host share the only node (the mesh is a single router).

    Latency: the mesh's (:attr:`gen.mesh.Mesh.zero_load_latency`), the merge and the split at node
    0 add no cycle.

    Parameters
    ----------
    kx, ky : int
        Mesh size.
    gemm, softmax, spad_words, cmd_depth
        Of every tile (:class:`gen.tile.Tile`).
    vcs, vc_depth, max_packet_flits, routing, router_cycles
        Of the mesh (:class:`gen.lib.noc.NocParams`; ``flit_width`` is the tiles' word width).

    Members
    -------
    host_i : In(stream.Signature(inject_layout(noc_params)))
    host_o : Out(stream.Signature(eject_layout(noc_params)))
    busy<n> : Out(32)
        Cycles tile n spent on GEMM commands (see :class:`gen.tile.Tile`).
    gemms<n> : Out(16)
        GEMM commands tile n finished.
    errors : Out(16)
        The tiles' errors (dropped GEMM commands and GEMMs ending with operand words left,
        dropped SOFTMAX commands, stray packets such as HOST packets ejected at a tile; see
        :class:`gen.tile.Tile`) and packets the mesh's interfaces dropped (a bad destination),
        over every node; saturating.
    idle : Out(kx * ky)
        Bit n: tile n's command FIFO is empty and it runs no command.
    """

    def __init__(self, *, kx, ky, gemm, softmax=None, spad_words, cmd_depth, vcs, vc_depth,
                 max_packet_flits, routing="xy", router_cycles=1):
        self._kx, self._ky = kx, ky
        self._tiles = [
            Tile(gemm=gemm, softmax=softmax, spad_words=spad_words, cmd_depth=cmd_depth, kx=kx,
                 ky=ky, max_packet_flits=max_packet_flits, vcs=vcs, vc_depth=vc_depth,
                 routing=routing, router_cycles=router_cycles)
            for _ in range(kx * ky)]
        p = self._tiles[0].noc_params
        members = {
            "host_i": In(stream.Signature(inject_layout(p))),
            "host_o": Out(stream.Signature(eject_layout(p))),
        }
        for n in range(p.nodes):
            members[f"busy{n}"] = Out(32)
        for n in range(p.nodes):
            members[f"gemms{n}"] = Out(16)
        members["errors"] = Out(16)
        members["idle"] = Out(p.nodes)
        super().__init__(members)

    tiles = property(lambda self: list(self._tiles))
    noc_params = property(lambda self: self._tiles[0].noc_params,
                          doc="the mesh parameters (flit_width = the tiles' word width)")
    word_bits = property(lambda self: self._tiles[0].word_bits)

    def elaborate(self, platform):
        m = Module()
        p = self.noc_params
        mesh = hier.add(m, "mesh", Mesh(
            kx=p.kx, ky=p.ky, flit_width=p.flit_width, vcs=p.vcs, vc_depth=p.vc_depth,
            max_packet_flits=p.max_packet_flits, routing=p.routing, router_cycles=p.router_cycles))
        for n, tile in enumerate(self._tiles):
            hier.add(m, f"tile{n}", tile)
            if n:
                wiring.connect(m, tile.net_o, getattr(mesh, f"i{n}"))
                wiring.connect(m, getattr(mesh, f"o{n}"), tile.net_i)
            m.d.comb += [getattr(self, f"busy{n}").eq(tile.busy),
                         getattr(self, f"gemms{n}").eq(tile.gemms)]
        tile0 = self._tiles[0]
        self._merge(m, [wiring.flipped(self.host_i), tile0.net_o], mesh.i0)
        self._split(m, mesh.o0, tile0.net_i, wiring.flipped(self.host_o))

        counts = [t.errors for t in self._tiles] + [getattr(mesh, f"drops{n}")
                                                   for n in range(p.nodes)]
        total = Signal(16 + len(counts).bit_length())
        m.d.comb += total.eq(sum(counts))
        # Each count saturates, so the saturated sum is the saturated count of all events.
        m.d.comb += [self.errors.eq(Mux(total > 0xFFFF, 0xFFFF, total)),
                     self.idle.eq(Cat(t.idle for t in self._tiles))]
        return m

    @staticmethod
    def _merge(m, sources, sink):
        """Packet-atomic merge of injection streams: a source keeps ``sink`` from the cycle it is
        granted until its last beat is taken; the grant goes to the lowest valid source after the
        last one served (round robin), so the payload holds still while it waits."""
        k = len(sources)
        locked = Signal(name="inj_locked")
        current = Signal(range(k), name="inj_current")
        after = Signal(range(k), name="inj_after")      # the source served last
        grant = Signal(range(k), name="inj_grant")
        m.d.comb += grant.eq(current)
        with m.If(~locked):
            # Round robin: the first valid source after `after`, wrapping around.
            for i in reversed(range(k)):
                with m.If(sources[i].valid):
                    m.d.comb += grant.eq(i)
            for i in reversed(range(1, k)):
                with m.If(sources[i].valid & (after < i)):
                    m.d.comb += grant.eq(i)
        for i, src in enumerate(sources):
            with m.If(grant == i):
                m.d.comb += [sink.valid.eq(src.valid), sink.payload.eq(src.payload),
                             src.ready.eq(sink.ready)]
        with m.If(sink.valid):
            with m.If(sink.ready & sink.payload.last):
                m.d.sync += [locked.eq(0), after.eq(grant)]
            with m.Else():
                m.d.sync += [locked.eq(1), current.eq(grant)]

    @staticmethod
    def _split(m, source, tile, host):
        """Packets of ``source`` go whole to ``host`` when the header's kind is HOST, else to
        ``tile``; the choice is made on the header beat and kept until the last beat."""
        locked = Signal(name="ej_locked")
        to_host_reg = Signal(name="ej_to_host")
        to_host = Signal(name="ej_host_now")
        m.d.comb += to_host.eq(Mux(locked, to_host_reg,
                                   source.payload.data[:2] == KINDS["host"]))
        m.d.comb += [tile.payload.eq(source.payload), host.payload.eq(source.payload)]
        with m.If(to_host):
            m.d.comb += [host.valid.eq(source.valid), source.ready.eq(host.ready)]
        with m.Else():
            m.d.comb += [tile.valid.eq(source.valid), source.ready.eq(tile.ready)]
        with m.If(source.valid & source.ready):
            m.d.sync += [locked.eq(~source.payload.last), to_host_reg.eq(to_host)]
