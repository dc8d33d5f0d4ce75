"""The softmax unit's reciprocal: a pipelined restoring divider, one row per cycle."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..lib.hier import Reused
from .arith import add_fast

__all__ = ["Reciprocal"]


class Reciprocal(Reused, wiring.Component):
    """``R = floor(2**(Wd + M) / dn)`` of a row's sum ``d`` (``Wd`` bits), with
    ``dn = d << (Wd - k)`` normalized and ``k = d.bit_length()``, exactly as :func:`sim.golden.softmax.softmax_beats`.

    A stage normalizes ``d`` (leading one, left shift), then ``M + 2`` restoring-division steps
    follow, ``step_bits`` of them per pipeline stage: each step subtracts ``dn`` from the partial
    remainder (one carry-select subtractor whose carry out is the quotient bit) and keeps the
    difference or the remainder, doubled. The pipeline never stalls and takes a row every cycle;
    the row's other information waits elsewhere (rows come out in order). ``d = 0`` gives
    ``k = 0`` and an undefined ``R``.

    Members
    -------
    i : In(valid, d)
    k : Out: ``d.bit_length()`` of ``i.d``, combinational.
    o : Out(valid, r), :attr:`latency` cycles after ``i``.
    """

    module_suffix = "softmax_recip"

    def __init__(self, *, sum_width, recip_bits, step_bits):
        if not 1 <= step_bits <= recip_bits + 2:
            raise ValueError(f"step_bits = {step_bits}: must be from 1 to recip_bits + 2 = "
                             f"{recip_bits + 2}")
        self._wd, self._m, self._b = sum_width, recip_bits, step_bits
        super().__init__({
            "i": In(data.StructLayout({"valid": 1, "d": sum_width})),
            "k": Out(sum_width.bit_length()),
            "o": Out(data.StructLayout({"valid": 1, "r": recip_bits + 2})),
        })

    @property
    def stages(self):
        """Pipeline stages of the division steps."""
        return -(-(self._m + 2) // self._b)

    @property
    def latency(self):
        """Cycles from ``i`` to ``o``: the normalization stage and :attr:`stages`."""
        return 1 + self.stages

    def elaborate(self, platform):
        m = Module()
        Wd, M, B = self._wd, self._m, self._b
        kb = Wd.bit_length()
        d = self.i.d

        # Normalization: k = bit_length(d), dn = d << (Wd - k).
        k = self.k
        for bit in range(Wd):
            with m.If(d[bit]):
                m.d.comb += k.eq(bit + 1)
        lz = Signal(kb)
        m.d.comb += lz.eq(Wd - k)
        valid = Signal()
        dn = Signal(Wd, reset_less=True)
        m.d.sync += [valid.eq(self.i.valid), dn.eq((d << lz)[:Wd])]
        kept = Const(1 << (Wd - 2), Wd)    # the partial remainder is 2 * kept, here 2**(Wd - 1)
        quo = Cat()

        # Division steps: rem < 2 dn holds before and after each.
        steps = M + 2
        done = 0
        for s in range(self.stages):
            for j in range(min(B, steps - done)):
                n = done + j
                rem = Cat(Const(0, 1), kept)
                diff = add_fast(m, rem, ~Cat(dn, Const(0, 1)), Wd + 1, carry_in=1, name=f"step{n}")
                ge = diff[Wd + 1]
                nxt = Signal(Wd, name=f"kept{n}")
                m.d.comb += nxt.eq(Mux(ge, diff[:Wd], rem[:Wd]))
                kept, quo = nxt, Cat(ge, quo)
            done += min(B, steps - done)
            r_valid = Signal(name=f"valid_s{s}")
            r_kept = Signal(Wd, name=f"kept_s{s}", reset_less=True)
            r_quo = Signal(len(quo), name=f"quo_s{s}", reset_less=True)
            r_dn = Signal(Wd, name=f"dn_s{s}", reset_less=True)
            m.d.sync += [r_valid.eq(valid), r_quo.eq(quo)]
            if done < steps:
                m.d.sync += [r_kept.eq(kept), r_dn.eq(dn)]
            valid, kept, quo, dn = r_valid, r_kept, r_quo, r_dn
        m.d.comb += [self.o.valid.eq(valid), self.o.r.eq(quo)]
        return m
