"""A tile of the multi-tile system: the GEMM engine, an optional softmax unit and a scratchpad,
run by a command sequencer that the mesh network feeds."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import _is_power_of_two
from .gemm import GemmEngine
from .lib import hier
from .lib.fifo import Fifo
from .lib.hier import Reused
from .lib.noc import NocParams, eject_layout, inject_layout
from .lib.sram import Sram
from .softmax import Softmax

__all__ = ["Tile", "OPS", "KINDS", "command_layout", "header_layout", "word_layouts"]

OPS = {"gemm": 0, "softmax": 1, "send": 2, "wait": 3}
"""Values of a command's ``op`` field."""

KINDS = {"cmd": 0, "data": 1, "host": 2}
"""Values of a packet header's ``kind`` field (3 is not used: such packets are dropped and
counted)."""


def header_layout(addr_bits):
    """The first word of every packet: ``kind`` (:data:`KINDS`) and ``addr`` (DATA: the first
    scratchpad address; HOST: the tag of the packet's first word)."""
    return data.StructLayout({"kind": unsigned(2), "addr": unsigned(addr_bits)})


def command_layout(*, addr_bits, gemm_layout, max_m, beats_bits, kx, ky):
    """One command word (see :class:`Tile`); ``gemm_layout`` is the engine's ``cmd`` payload layout
    and ``beats_bits`` the bits of the softmax unit's ``ceil(max_len / lanes)`` (1 without one)."""
    a = addr_bits
    return data.StructLayout({
        "op": unsigned(2),
        "a_addr": unsigned(a),
        "w_addr": unsigned(a),
        "o_addr": unsigned(a),
        "a_count": unsigned(a + 1),
        "w_count": unsigned(a + 1),
        "gemm": gemm_layout,
        "pack": unsigned(1),
        "rows": unsigned(max_m.bit_length()),
        "beats": unsigned(beats_bits),
        "stride": unsigned(a),
        "kind": unsigned(2),
        "mcast": unsigned(1),
        "mask": unsigned(kx * ky),
        "dest_x": unsigned(kx.bit_length()),
        "dest_y": unsigned(ky.bit_length()),
    })


def word_layouts(tile):
    """The layouts of scratchpad words a program builds or reads, by manifest name: ``command``,
    ``header``, ``a`` and ``w`` (an engine beat in the word's low bits) and ``o`` (a result word
    written with ``pack = 0``: the beat's lanes without ``last``)."""
    engine = tile.engine
    sig = engine.signature.members
    out_shape = sig["o"].signature.members["payload"].shape
    return {
        "command": tile.command_layout,
        "header": tile.header_layout,
        "a": sig["a"].signature.members["payload"].shape,
        "w": sig["w"].signature.members["payload"].shape,
        "o": data.StructLayout({"data": out_shape["data"].shape}),
    }


class _Walk:
    """Scratchpad addresses ``start + j * stride + r`` for ``r`` in ``0 .. rows - 1`` (outer) and
    ``j`` in ``0 .. beats - 1`` (inner); ``beats = 1`` walks ``rows`` consecutive words.

    ``load`` (with ``l_*``) starts a walk; ``step`` moves to the next address. ``active`` is high
    while addresses are left; ``end_row`` marks the last ``j`` of a row.
    """

    def __init__(self, m, name, *, addr_bits, rows_bits, beats_bits=0):
        self.load = Signal(name=f"{name}_load")
        self.step = Signal(name=f"{name}_step")
        self.l_addr = Signal(addr_bits, name=f"{name}_l_addr")
        self.l_rows = Signal(rows_bits, name=f"{name}_l_rows")
        self.addr = Signal(addr_bits, name=f"{name}_addr")
        self.left = Signal(rows_bits, name=f"{name}_left")   # rows left, the current one included
        self.active = Signal(name=f"{name}_active")
        self.end_row = Signal(name=f"{name}_end_row")
        m.d.comb += self.active.eq(self.left != 0)
        base = Signal(addr_bits, name=f"{name}_base")
        if beats_bits:
            self.l_beats = Signal(beats_bits, name=f"{name}_l_beats")
            self.l_stride = Signal(addr_bits, name=f"{name}_l_stride")
            beats = Signal(beats_bits, name=f"{name}_beats")
            stride = Signal(addr_bits, name=f"{name}_stride")
            j = Signal(beats_bits, name=f"{name}_j")
            m.d.comb += self.end_row.eq(j + 1 == beats)
        else:
            m.d.comb += self.end_row.eq(1)
        with m.If(self.load):
            m.d.sync += [self.addr.eq(self.l_addr), base.eq(self.l_addr), self.left.eq(self.l_rows)]
            if beats_bits:
                m.d.sync += [beats.eq(self.l_beats), stride.eq(self.l_stride), j.eq(0)]
                with m.If(self.l_beats == 0):
                    m.d.sync += self.left.eq(0)
        with m.Elif(self.step & self.active):
            with m.If(self.end_row):
                m.d.sync += [self.addr.eq(base + 1), base.eq(base + 1), self.left.eq(self.left - 1)]
                if beats_bits:
                    m.d.sync += j.eq(0)
            if beats_bits:
                with m.Else():
                    m.d.sync += [self.addr.eq(self.addr + stride), j.eq(j + 1)]


class _Reader:
    """Streams the words of a :class:`_Walk` out of a synchronous read port, one per cycle.

    The read port's data register is the stream's output register: ``valid`` says it holds a word
    not taken yet, and the port reads the next word (``en``) whenever it is empty or being taken
    (``take``), so the read latency costs one cycle at the start and none after. ``end_row`` is
    the walk's flag of the word held.
    """

    def __init__(self, m, name, port, walk):
        self.walk = walk
        self.data = port.data
        self.valid = Signal(name=f"{name}_valid")
        self.end_row = Signal(name=f"{name}_end_row")
        self.take = Signal(name=f"{name}_take")
        en = Signal(name=f"{name}_en")
        m.d.comb += [en.eq(~self.valid | self.take), port.en.eq(en), port.addr.eq(walk.addr),
                     walk.step.eq(en)]
        with m.If(en):
            m.d.sync += [self.valid.eq(walk.active), self.end_row.eq(walk.end_row)]
        with m.If(walk.load):
            m.d.sync += self.valid.eq(0)


class Tile(Reused, wiring.Component):
    """One tile: the GEMM engine (:class:`gen.gemm.GemmEngine`), an optional softmax unit
    (:class:`gen.softmax.Softmax`) and a scratchpad of ``spad_words`` words, run one command at a
    time by a sequencer that takes its commands and data from the mesh network.

    Words. The scratchpad holds W-bit words (:attr:`word_bits`): W is the widest of the engine's
    ``a`` beat, its ``w`` beat, the ``o`` beat's lanes (C x lane width, no ``last``), the command
    word and the packet header, rounded up to a multiple of 8. One flit of the mesh is one word. A
    stream beat is stored in the word's low bits, with the stream's field offsets (upper bits 0).
    ``A = log2(spad_words)`` bits address a word.

    Packets. Every packet is a header word (:func:`header_layout`: ``kind`` in bits 1:0, ``addr``
    above, other bits 0) and 1 to ``max_packet_flits - 1`` payload words. Packets ejected for the
    tile on ``net_i``: ``kind`` 0 (CMD) queues the payload words in the command FIFO of
    ``cmd_depth`` commands (when it is full, ejection stalls); 1 (DATA) writes payload word i to
    ``spad[addr + i]`` as it arrives, whatever command runs (the scratchpad's second write port),
    and counts it in the received-word counter; any other kind (HOST, or 3) is dropped and counted
    in ``errors``. A header-only packet does nothing (its kind is still checked).

    Commands (:func:`command_layout`, fields from bit 0: ``op`` (2 bits), ``a_addr``, ``w_addr``,
    ``o_addr`` (A bits each), ``a_count``, ``w_count`` (A + 1 bits each), ``gemm`` (the engine's
    ``cmd`` payload layout), ``pack`` (1), ``rows`` (the bits of ``max_m``), ``beats`` (the bits
    of the softmax unit's ``ceil(max_len / lanes)``; 1 bit without a unit), ``stride`` (A),
    ``kind`` (2), ``mcast`` (1), ``mask`` (one bit per node), ``dest_x``, ``dest_y`` (the mesh's
    coordinate widths); unused fields 0), run in FIFO order:

    - ``op`` 0, GEMM: hands ``gemm`` (the engine's ``cmd`` payload) to the engine, streams
      ``w_count`` words from ``w_addr, w_addr + 1, ...`` onto its ``w`` and ``a_count`` words from
      ``a_addr, ...`` onto its ``a``, concurrently (two read ports, one word per cycle each), and
      writes output beat i to ``spad[o_addr + i]``: with ``pack`` = 0 the beat's lanes (lane c at
      bits ``[c * ow, (c + 1) * ow)``), with ``pack`` = 1 bits 7:0 of lane c in byte c (upper bits
      0). Done when the beat with ``last`` is written. The counts must be those of
      :func:`sim.golden.gemm.weight_beats` and :func:`sim.golden.gemm.act_beats`. A count too
      large leaves words the engine does not take: the GEMM still ends with its last beat (and
      counts in ``gemms``), and is counted in ``errors`` if a reader then holds a word or has
      addresses left. A count too small makes the engine wait for ever for the missing words:
      the command never ends and the tile hangs (the host bench, :mod:`sim.tb.system`, reports a
      phase without progress after its timeout). A command the
      engine drops (a size of 0 or above its maximum, a mode not built, a VSQ or post-processing
      request it cannot run: the tile reads the engine's :attr:`gen.gemm.GemmEngine.cmd_ok` as
      the engine takes it) must carry counts of 0; it is done at once and counted in
      ``errors``.
    - ``op`` 1, SOFTMAX (a tile without a softmax unit counts it in ``errors`` and goes on): for
      ``r`` in ``0 .. rows - 1``, ``j`` in ``0 .. beats - 1``, reads the word at ``a_addr + j *
      stride + r`` and feeds the unit a beat whose lane l is signed byte l of the word (mask 0,
      ``last`` when ``j = beats - 1``); output beat ``(r, j)`` is written to ``o_addr + j * stride
      + r`` with byte l = ``min(p_l, 127)``. Done when the last beat is written (at once when
      ``rows`` or ``beats`` is 0). A command with ``beats`` above the unit's ``max_beats`` or
      ``rows`` above ``max_m`` is dropped like a dropped GEMM: done at once and counted in
      ``errors``.
    - ``op`` 2, SEND: reads ``a_count`` words from ``a_addr, ...`` and injects them on ``net_o``
      as packets of up to ``max_packet_flits - 1`` payload words, in order; a header of kind
      ``kind`` and ``addr = o_addr + `` the offset of the packet's first word leads each; they go
      to the nodes of ``mask`` if ``mcast``, else to node ``(dest_x, dest_y)`` (possibly this
      tile). Done when the last word is taken by the network. A tile must not SEND CMD packets
      (``kind`` 0) to itself while its command FIFO can be full: their ejection stalls until the
      FIFO has room, the FIFO is read only once the SEND is done, and the SEND cannot finish
      while the network holds its words behind the stalled ejection, so the tile deadlocks (and
      with it the links the packet occupies). A CMD packet to a tile whose FIFO is full likewise
      stalls that tile's ejection, and what follows it (such as DATA a running WAIT needs),
      until the running command ends; programs keep at most ``cmd_depth`` commands outstanding
      per tile (as :mod:`sim.host`'s builder checks).
    - ``op`` 3, WAIT: waits until the received-word counter (32 bits) is at least ``a_count``,
      then subtracts ``a_count`` from it.

    Timing. A command is taken in the cycle the sequencer is idle and the FIFO holds one, and the
    next one at the earliest in the cycle after the command is done. The scratchpad's synchronous
    read costs one cycle at the start of a stream (a word is offered from the second cycle after
    the command is taken) and none after: the read port's data register is the stream's output
    register, read again whenever it is empty or being taken. GEMM streams both operands at one
    word per cycle each (the engine may stall them) and writes results as they leave the engine,
    never stalled. SOFTMAX feeds one beat per cycle (the unit may stall it). SEND injects one word
    per cycle, one header per packet, without idle cycles while the network takes them. Ejected
    DATA words are written one per cycle, as they arrive; CMD words as the FIFO has room.

    Parameters
    ----------
    gemm : dict
        Keyword arguments of :class:`gen.gemm.GemmEngine`.
    softmax : dict or None
        Keyword arguments of :class:`gen.softmax.Softmax` (``in_width`` 8, ``out_frac`` at most 7,
        ``lanes * 8`` at most W); ``None`` builds no softmax unit.
    spad_words : int
        Scratchpad words, a power of two.
    cmd_depth : int
        Commands the FIFO holds.
    kx, ky, vcs, vc_depth, max_packet_flits, routing, router_cycles
        The mesh the tile sits in (:class:`gen.lib.noc.NocParams`, with ``flit_width`` = W); only
        ``kx``, ``ky`` and ``max_packet_flits`` shape the tile.

    Members
    -------
    net_i : In(stream.Signature(eject_layout(noc_params)))
        Packets ejected for this tile.
    net_o : Out(stream.Signature(inject_layout(noc_params)))
        Packets the tile injects (SEND).
    busy : Out(32)
        Cycles spent on GEMM commands, from taking the command to writing its last beat
        (saturating).
    gemms : Out(16)
        GEMM commands finished (their last beat written; saturating).
    errors : Out(16)
        GEMM commands dropped or ending with operand words left, SOFTMAX commands dropped
        (without a unit, or too long), and dropped packets (saturating).
    idle : Out(1)
        The command FIFO is empty and no command runs.
    """

    module_suffix = "tile"

    def __init__(self, *, gemm, softmax=None, spad_words, cmd_depth, kx, ky, max_packet_flits,
                 vcs=1, vc_depth=None, routing="xy", router_cycles=1):
        if not _is_power_of_two(spad_words) or spad_words < 2:
            raise ValueError(f"spad_words = {spad_words}: must be a power of two, at least 2")
        if cmd_depth < 1:
            raise ValueError(f"cmd_depth = {cmd_depth}: must be at least 1")
        if max_packet_flits < 2:
            raise ValueError(f"max_packet_flits = {max_packet_flits}: must be at least 2 (a header "
                             f"and a payload word)")
        if softmax is not None:
            if softmax.get("in_width") != 8:
                raise ValueError(f"softmax in_width = {softmax.get('in_width')}: must be 8")
            out_frac = softmax.get("out_frac")
            if out_frac is not None and out_frac > 7:
                raise ValueError(f"softmax out_frac = {out_frac}: must be at most 7")
        self._gemm_args = dict(gemm)
        self._softmax_args = dict(softmax) if softmax is not None else None
        self._engine = GemmEngine(**self._gemm_args)
        self._softmax = Softmax(**self._softmax_args) if softmax is not None else None
        self._spad_words = spad_words
        self._addr_bits = spad_words.bit_length() - 1
        self._cmd_depth = cmd_depth
        self._beats_bits = self._softmax.max_beats.bit_length() if self._softmax else 1
        emem = self._engine.signature.members
        self._gemm_layout = emem["cmd"].signature.members["payload"].shape
        self._command = command_layout(addr_bits=self._addr_bits, gemm_layout=self._gemm_layout,
                                       max_m=self._gemm_args["max_m"], beats_bits=self._beats_bits,
                                       kx=kx, ky=ky)
        self._header = header_layout(self._addr_bits)
        out_shape = emem["o"].signature.members["payload"].shape
        widths = [
            data.Layout.cast(emem["a"].signature.members["payload"].shape).size,
            data.Layout.cast(emem["w"].signature.members["payload"].shape).size,
            data.Layout.cast(out_shape["data"].shape).size,
            self._command.size,
            self._header.size,
        ]
        self._word_bits = -(-max(widths) // 8) * 8
        # A configuration cannot get here (system.softmax.lanes must equal system.gemm.cols, and
        # W holds an `a` beat of 8 * rows = 8 * cols bits), but a Tile built directly can.
        if self._softmax is not None and 8 * self._softmax.lanes > self._word_bits:
            raise ValueError(f"softmax lanes = {self._softmax.lanes}: {8 * self._softmax.lanes} "
                             f"bits do not fit a {self._word_bits}-bit word")
        self._noc = NocParams(kx=kx, ky=ky, flit_width=self._word_bits, vcs=vcs,
                              vc_depth=max_packet_flits if vc_depth is None else vc_depth,
                              max_packet_flits=max_packet_flits, routing=routing,
                              router_cycles=router_cycles)
        super().__init__({
            "net_i": In(stream.Signature(eject_layout(self._noc))),
            "net_o": Out(stream.Signature(inject_layout(self._noc))),
            "busy": Out(32),
            "gemms": Out(16),
            "errors": Out(16),
            "idle": Out(1),
        })

    engine = property(lambda self: self._engine, doc="the GEMM engine")
    softmax = property(lambda self: self._softmax, doc="the softmax unit, or None")
    word_bits = property(lambda self: self._word_bits, doc="W, bits of a scratchpad word")
    addr_bits = property(lambda self: self._addr_bits, doc="A = log2(spad_words)")
    spad_words = property(lambda self: self._spad_words)
    cmd_depth = property(lambda self: self._cmd_depth)
    command_layout = property(lambda self: self._command, doc="layout of a command word")
    header_layout = property(lambda self: self._header, doc="layout of a packet header word")
    noc_params = property(lambda self: self._noc, doc="the mesh parameters (flit_width = W)")

    def elaborate(self, platform):
        m = Module()
        A, W = self._addr_bits, self._word_bits
        lp = self._noc.max_packet_flits - 1           # payload words per packet
        engine = hier.add(m, "engine", self._engine)
        sm = self._softmax
        if sm is not None:
            hier.add(m, "softmax", sm)

        # ---- scratchpad: two read ports (x: a / softmax / send, y: w), two write ports -----------
        m.submodules.spad = spad = Sram(shape=unsigned(W), depth=self._spad_words, reads=2, writes=2)
        rd_x, rd_y = spad.r
        wr_net, wr_loc = spad.w

        rows_bits = max(A + 1, self._command["rows"].shape.width)
        walk_x = _Walk(m, "walk_x", addr_bits=A, rows_bits=rows_bits,
                       beats_bits=self._beats_bits if sm is not None else 0)
        walk_y = _Walk(m, "walk_y", addr_bits=A, rows_bits=A + 1)
        rx = _Reader(m, "rx", rd_x, walk_x)
        ry = _Reader(m, "ry", rd_y, walk_y)

        # ---- command FIFO and ejection -----------------------------------------------------------
        cmd_fifo = hier.add(m, "cmd_fifo", Fifo(width=self._command.size, depth=self._cmd_depth))
        received = Signal(32)           # DATA words written and not yet waited for
        recv_inc = Signal()
        stray = Signal()
        head = Signal(self._header)
        m.d.comb += head.eq(self.net_i.payload.data[:self._header.size])
        waddr = Signal(A)
        m.d.comb += [wr_net.addr.eq(waddr), wr_net.data.eq(self.net_i.payload.data),
                     cmd_fifo.w_data.eq(self.net_i.payload.data[:self._command.size])]
        with m.FSM(name="eject"):
            with m.State("HEAD"):
                m.d.comb += self.net_i.ready.eq(1)
                with m.If(self.net_i.valid):
                    m.d.comb += stray.eq((head.kind != KINDS["cmd"]) & (head.kind != KINDS["data"]))
                    m.d.sync += waddr.eq(head.addr)
                    with m.If(~self.net_i.payload.last):
                        with m.Switch(head.kind):
                            with m.Case(KINDS["cmd"]):
                                m.next = "CMD"
                            with m.Case(KINDS["data"]):
                                m.next = "DATA"
                            with m.Default():
                                m.next = "DROP"
            with m.State("DATA"):
                m.d.comb += [self.net_i.ready.eq(1), wr_net.en.eq(self.net_i.valid),
                             recv_inc.eq(self.net_i.valid)]
                with m.If(self.net_i.valid):
                    m.d.sync += waddr.eq(waddr + 1)
                    with m.If(self.net_i.payload.last):
                        m.next = "HEAD"
            with m.State("CMD"):
                m.d.comb += [self.net_i.ready.eq(cmd_fifo.w_rdy),
                             cmd_fifo.w_en.eq(self.net_i.valid)]
                with m.If(self.net_i.valid & cmd_fifo.w_rdy & self.net_i.payload.last):
                    m.next = "HEAD"
            with m.State("DROP"):
                m.d.comb += self.net_i.ready.eq(1)
                with m.If(self.net_i.valid & self.net_i.payload.last):
                    m.next = "HEAD"

        # ---- sequencer ---------------------------------------------------------------------------
        new = Signal(self._command)
        m.d.comb += new.eq(cmd_fifo.r_data)
        cur = Signal(self._command)
        cmd_pending = Signal()          # GEMM: the engine has not taken the command yet
        dropped = Signal()              # a GEMM command the engine drops, a SOFTMAX refused
        gemm_done = Signal()
        leftover = Signal()             # a GEMM ends with operand words not taken
        o_ptr = Signal(A)
        send_left = Signal(A + 1)
        pkt_words = Signal(range(lp))
        hdr_addr = Signal(A)
        wait_done = Signal()
        take_gemm = Signal()
        in_gemm = Signal()

        m.d.comb += [walk_x.l_addr.eq(new.a_addr), walk_x.l_rows.eq(new.a_count),
                     walk_y.l_addr.eq(new.w_addr), walk_y.l_rows.eq(new.w_count)]
        if sm is not None:
            m.d.comb += [walk_x.l_beats.eq(1), walk_x.l_stride.eq(0)]
        engine_o = engine.o.payload
        a_bits = data.Layout.cast(engine.a.payload.shape()).size
        w_bits = data.Layout.cast(engine.w.payload.shape()).size
        m.d.comb += [engine.cmd.payload.eq(cur.gemm), engine.o.ready.eq(1),
                     engine.a.payload.eq(rx.data[:a_bits]), engine.w.payload.eq(ry.data[:w_bits])]
        if sm is not None:
            # The softmax unit's output walk repeats its input walk from o_addr.
            walk_o = _Walk(m, "walk_o", addr_bits=A, rows_bits=rows_bits,
                           beats_bits=self._beats_bits)
            m.d.comb += [walk_o.load.eq(walk_x.load & (new.op == OPS["softmax"])),
                         walk_o.l_addr.eq(new.o_addr), walk_o.l_rows.eq(new.rows),
                         walk_o.l_beats.eq(new.beats), walk_o.l_stride.eq(new.stride),
                         walk_o.step.eq(sm.o.valid),
                         sm.i.payload.data.eq(rx.data[:8 * sm.lanes]),
                         sm.i.payload.mask.eq(0), sm.i.payload.last.eq(rx.end_row),
                         sm.o.ready.eq(1)]

        with m.FSM(name="seq") as seq:
            with m.State("IDLE"):
                m.d.comb += cmd_fifo.r_en.eq(1)
                with m.If(cmd_fifo.r_rdy):
                    m.d.sync += cur.eq(new)
                    with m.Switch(new.op):
                        with m.Case(OPS["gemm"]):
                            m.d.comb += [walk_x.load.eq(1), walk_y.load.eq(1), take_gemm.eq(1)]
                            m.d.sync += [o_ptr.eq(new.o_addr), cmd_pending.eq(1)]
                            m.next = "GEMM"
                        with m.Case(OPS["softmax"]):
                            if sm is not None:
                                with m.If((new.beats > sm.max_beats)
                                          | (new.rows > self._gemm_args["max_m"])):
                                    m.d.comb += dropped.eq(1)
                                with m.Else():
                                    m.d.comb += [walk_x.load.eq(1), walk_x.l_rows.eq(new.rows),
                                                 walk_x.l_beats.eq(new.beats),
                                                 walk_x.l_stride.eq(new.stride)]
                                    m.next = "SOFTMAX"
                            else:
                                m.d.comb += dropped.eq(1)
                        with m.Case(OPS["send"]):
                            m.d.comb += walk_x.load.eq(1)
                            m.d.sync += [send_left.eq(new.a_count), hdr_addr.eq(new.o_addr),
                                         pkt_words.eq(0)]
                            m.next = "SEND_HEAD"
                        with m.Case(OPS["wait"]):
                            m.next = "WAIT"
            with m.State("GEMM"):
                m.d.comb += [in_gemm.eq(1), engine.cmd.valid.eq(cmd_pending),
                             engine.w.valid.eq(ry.valid), ry.take.eq(engine.w.ready),
                             engine.a.valid.eq(rx.valid), rx.take.eq(engine.a.ready)]
                with m.If(engine.cmd.valid & engine.cmd.ready):
                    m.d.sync += cmd_pending.eq(0)
                    with m.If(~engine.cmd_ok):
                        m.d.comb += dropped.eq(1)
                        m.next = "IDLE"
                with m.If(engine.o.valid & engine_o.last):
                    # Words the engine did not take (a count too large) are an error.
                    m.d.comb += [gemm_done.eq(1),
                                 leftover.eq(walk_x.active | rx.valid | walk_y.active | ry.valid)]
                    m.next = "IDLE"
            if sm is not None:
                with m.State("SOFTMAX"):
                    m.d.comb += [sm.i.valid.eq(rx.valid), rx.take.eq(sm.i.ready)]
                    with m.If(~walk_o.active):
                        m.next = "IDLE"
            with m.State("SEND_HEAD"):
                hdr = Signal(self._header)
                m.d.comb += [hdr.kind.eq(cur.kind), hdr.addr.eq(hdr_addr)]
                with m.If(send_left == 0):
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [self.net_o.valid.eq(1), self.net_o.payload.data.eq(hdr)]
                    with m.If(self.net_o.ready):
                        m.next = "SEND_BODY"
            with m.State("SEND_BODY"):
                tail = (pkt_words == lp - 1) | (send_left == 1)
                m.d.comb += [self.net_o.valid.eq(rx.valid), self.net_o.payload.data.eq(rx.data),
                             self.net_o.payload.last.eq(tail), rx.take.eq(self.net_o.ready)]
                with m.If(self.net_o.valid & self.net_o.ready):
                    m.d.sync += [send_left.eq(send_left - 1), hdr_addr.eq(hdr_addr + 1),
                                 pkt_words.eq(pkt_words + 1)]
                    with m.If(tail):
                        m.d.sync += pkt_words.eq(0)
                        m.next = "SEND_HEAD"
            with m.State("WAIT"):
                m.d.comb += wait_done.eq(received >= cur.a_count)
                with m.If(wait_done):
                    m.next = "IDLE"
        m.d.comb += [self.net_o.payload.mcast.eq(cur.mcast), self.net_o.payload.mask.eq(cur.mask),
                     self.net_o.payload.dest_x.eq(cur.dest_x),
                     self.net_o.payload.dest_y.eq(cur.dest_y)]
        m.d.sync += received.eq(received + recv_inc - Mux(wait_done, cur.a_count, 0))

        # ---- local writes: GEMM results, softmax probabilities -----------------------------------
        lanes = [engine_o.data[c] for c in range(len(engine_o.data))]
        packed = Cat(*(lane[:8] for lane in lanes))
        m.d.comb += [wr_loc.addr.eq(o_ptr),
                     wr_loc.data.eq(Mux(cur.pack, packed, engine_o.data.as_value())),
                     wr_loc.en.eq(engine.o.valid)]
        with m.If(engine.o.valid):
            m.d.sync += o_ptr.eq(o_ptr + 1)
        if sm is not None:
            # Probabilities (out_frac <= 7 fraction bits, 1.0 included) as bytes, 1.0 -> 127.
            probs = []
            for lane, p in enumerate(sm.o.payload.data):
                byte = Signal(8, name=f"prob_{lane}")
                m.d.comb += byte.eq(Mux(p > 127, 127, p))
                probs.append(byte)
            probs = Cat(*probs)
            with m.If(sm.o.valid):
                m.d.comb += [wr_loc.addr.eq(walk_o.addr), wr_loc.data.eq(probs),
                             wr_loc.en.eq(1)]

        # ---- counters ----------------------------------------------------------------------------
        busy, gemms, errors = Signal(32), Signal(16), Signal(16)
        with m.If((in_gemm | take_gemm) & (busy != 0xFFFFFFFF)):
            m.d.sync += busy.eq(busy + 1)
        with m.If(gemm_done & (gemms != 0xFFFF)):
            m.d.sync += gemms.eq(gemms + 1)
        errors_next = Signal(18)
        m.d.comb += errors_next.eq(errors + dropped + leftover + stray)
        m.d.sync += errors.eq(Mux(errors_next > 0xFFFF, 0xFFFF, errors_next))
        m.d.comb += [self.busy.eq(busy), self.gemms.eq(gemms), self.errors.eq(errors),
                     self.idle.eq(seq.ongoing("IDLE") & ~cmd_fifo.r_rdy)]
        return m
