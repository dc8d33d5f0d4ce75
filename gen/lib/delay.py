"""Delay lines: a word delayed by a number of clock cycles, as one parameterized module per width.

The skew and deskew of a systolic array delay lane ``i`` by ``i`` cycles, and control words ride
beside the array for its whole latency. Written out register by register, that is R^2 / 2 flip-flop
declarations in the parent; here every such line is an instance of one module per word width whose
depth is a Verilog parameter, written as a hand-written shift register would be::

    module <top>_delay_w<W> #(parameter DEPTH = 1) (clk, d, q);
      // q is d delayed by DEPTH clock edges (DEPTH >= 1). No reset: the line carries data whose
      // meaning travels beside it (a wavefront the consumer ignores unless its control word,
      // delayed by a line with reset, says it is valid).

With ``reset``, the module (``<top>_delay_w<W>_rst``) has a synchronous ``rst`` that clears every
stage, as the valid bits of control words need.

Outside :func:`gen.lib.hier.convert` (Amaranth's simulator), the same line is a chain of
``depth`` registers.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import hier
from .hier import Reused

__all__ = ["DelayLine", "delay"]


class DelayLine(Reused, wiring.Component):
    """``q`` is ``d`` delayed by ``depth`` clock cycles (``depth`` >= 1); ``width`` bits.

    One module per ``width``; ``depth`` is the module's Verilog parameter ``DEPTH``.

    Members
    -------
    d : In(width)
    q : Out(width)
    """

    verilog_parameters = ("depth",)

    def __init__(self, *, width, depth, reset=False):
        problem = (f"width = {width}: a delay line carries at least 1 bit" if width < 1 else
                   f"depth = {depth}: a delay line delays by at least 1 cycle" if depth < 1 else None)
        if problem:
            self._MustUse__silence = True   # a rejected line is not an unused one
            raise ValueError(problem)
        self._width, self._depth, self._reset = width, depth, bool(reset)
        super().__init__({"d": In(width), "q": Out(width)})

    @property
    def latency(self):
        """Cycles from ``d`` to ``q``: ``depth``."""
        return self._depth

    def module_suffix_for(self, parameters):
        return f"delay_w{parameters['width']}" + ("_rst" if parameters["reset"] else "")

    @property
    def resettable(self):
        """The module has a synchronous ``rst`` port."""
        return self._reset

    def elaborate(self, platform):
        m = Module()
        value = self.d
        for i in range(self._depth):
            stage = Signal(self._width, name=f"stage_{i}", reset_less=not self._reset)
            m.d.sync += stage.eq(value)
            value = stage
        m.d.comb += self.q.eq(value)
        return m

    def verilog(self, module_name):
        w = self._width
        if self._reset:
            what, ports, rst = "synchronous reset clears it", "clk, rst, d, q", "  input rst;\n"
            step = (f"  always @(posedge clk)\n"
                    f"    if (rst) pipe <= {{{w}*DEPTH{{1'b0}}}};\n"
                    f"    else pipe <= (pipe << {w}) | d;\n")
        else:
            what, ports, rst = "no reset", "clk, d, q", ""
            step = f"  always @(posedge clk) pipe <= (pipe << {w}) | d;\n"
        return (f"// {module_name}: q is d delayed by DEPTH clock cycles (DEPTH >= 1), {w} bit"
                f"{'s' if w > 1 else ''}; "
                f"{what}.\n"
                f"module {module_name} ({ports});\n"
                f"  parameter DEPTH = 1;\n"
                f"  input clk;\n{rst}"
                f"  input [{w - 1}:0] d;\n"
                f"  output [{w - 1}:0] q;\n"
                f"  reg [{w}*DEPTH-1:0] pipe;\n{step}"
                f"  assign q = pipe[{w}*DEPTH-1 -: {w}];\n"
                f"endmodule\n")


def delay(m, name, value, depth, *, reset=False):
    """``value`` delayed by ``depth`` cycles through a :class:`DelayLine` added to ``m`` as
    ``name`` (``value`` itself for a depth of 0)."""
    if depth == 0:
        return value
    line = hier.add(m, name, DelayLine(width=len(value), depth=depth, reset=reset))
    m.d.comb += line.d.eq(value)
    return line.q
