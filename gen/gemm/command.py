"""The command check of the GEMM engine: is a command valid, and what the engine keeps of it."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..lib.formats import mode_by_name
from .layouts import cmd_layout
from .params import POST_OUTPUTS

__all__ = ["CommandCheck"]


class CommandCheck(wiring.Component):
    """Combinational: ``ok`` when the command ``cmd`` can run, and ``desc``, the command as the
    engine keeps it (the mode as an index into the modes built).

    A command is valid when M, N and K are 1 to their maxima, its mode is built, a VSQ command
    (``vsq = 1``) names an integer mode and a built V, and a post-processed one (``out`` != 0) an
    integer mode and a known output. Every mode takes 2:4 weights (``sparse``), VSQ and
    post-processed commands too.

    Members
    -------
    cmd : In(cmd_layout(...))
        The payload on the engine's ``cmd`` stream.
    ok : Out(1)
    desc : Out(params.desc_layout)
    """

    latency = 0
    """Cycles from ``cmd`` to ``ok`` and ``desc``: combinational."""

    def __init__(self, params):
        self._p = p = params
        super().__init__({
            "cmd": In(cmd_layout(max_m=p.max_m, max_n=p.max_n, max_k=p.max_k,
                                 vector_sizes=p.vsq_vector_sizes, post=p.post,
                                 sparse=p.sparse)),
            "ok": Out(1),
            "desc": Out(p.desc_layout),
        })

    def elaborate(self, platform):
        m = Module()
        p, cmd = self._p, self.cmd
        mode_ok = Signal()
        mode_idx = Signal(p.mode_bits)
        with m.Switch(cmd.mode):
            for i, mode in enumerate(p.mode_defs):
                with m.Case(mode.code):
                    m.d.comb += [mode_ok.eq(1), mode_idx.eq(i)]
        ok = (mode_ok
              & (cmd.m != 0) & (cmd.m <= p.max_m)
              & (cmd.n != 0) & (cmd.n <= p.max_n)
              & (cmd.k != 0) & (cmd.k <= p.max_k))
        m.d.comb += [self.desc.m.eq(cmd.m), self.desc.n.eq(cmd.n), self.desc.k.eq(cmd.k),
                     self.desc.mode.eq(mode_idx)]
        if p.vsq:
            vsq_ok = Signal()
            m.d.comb += vsq_ok.eq(Cat(*(cmd.mode == mode_by_name(n).code for n in p.vsq_modes)).any()
                                  & (cmd.vsel < len(p.vsq_vector_sizes)))
            m.d.comb += [self.desc.vsq.eq(cmd.vsq), self.desc.vsel.eq(cmd.vsel)]
            ok = ok & (~cmd.vsq | vsq_ok)
        if p.post:
            post_ok = Signal()
            int_mode = Cat(*(cmd.mode == mode_by_name(n).code for n in p.int_modes)).any()
            m.d.comb += post_ok.eq((cmd.out == 0) | (int_mode & (cmd.out < len(POST_OUTPUTS))))
            m.d.comb += [self.desc.out.eq(cmd.out), self.desc.relu.eq(cmd.relu)]
            ok = ok & post_ok
        if p.sparse:
            m.d.comb += self.desc.sparse.eq(cmd.sparse)
        m.d.comb += self.ok.eq(ok)
        return m
