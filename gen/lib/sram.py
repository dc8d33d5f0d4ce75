"""Memories as SRAM macros: a small set of documented modules that FPGA tools map to block RAM and that
ASIC users replace with compiled macros.

:class:`SramMacro` is the macro: ``R`` synchronous read ports and ``W`` write ports on ``depth`` words
of ``width`` bits, named ``<top>_sram_<R>r<W>w_d<depth>_w<width>``. Its Verilog is written here, not
by Amaranth, in the form Yosys and vendor tools infer block RAM from::

    module <name> (clk, r0_en, r0_addr, r0_data, ..., w0_en, w0_addr, w0_data, ...);
      // read port j: when rj_en is high at a clock edge, rj_data takes mem[rj_addr] (the word
      //   before this edge's writes: read-first); otherwise rj_data holds.
      // write port k: when wk_en is high, mem[wk_addr] takes wk_data; of two ports writing one
      //   address in one cycle, the higher-numbered one wins.
      // Contents and read data are 0 at time zero (an `initial` loop, for simulation and FPGA
      //   initialization; a compiled macro need not do this).

:class:`Sram` is what the blocks use: the macro, plus a bypass for read ports that must see a write
to the same address in the same cycle (a registered address match and data, outside the macro, so
the macro stays a plain read-first RAM).
"""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .hier import Reused

__all__ = ["SramMacro", "Sram", "blackbox_of"]


def _addr_bits(depth):
    return max(1, (depth - 1).bit_length())


class SramMacro(Reused, wiring.Component):
    """The SRAM macro (see the module docstring): ``reads`` read ports, ``writes`` write ports.

    Members
    -------
    r<j>_en : In(1), r<j>_addr : In(A), r<j>_data : Out(width)
    w<k>_en : In(1), w<k>_addr : In(A), w<k>_data : In(width)
        ``A = max(1, ceil(log2(depth)))``.
    """

    module_suffix = "sram"

    def __init__(self, *, depth, width, reads=1, writes=1):
        if depth < 1 or width < 1 or reads < 1 or writes < 1:
            raise ValueError(f"SRAM of {depth} x {width} bits with {reads} read and {writes} write "
                             "ports: needs at least 1 word, 1 bit and one port of each kind")
        self.depth, self.width, self.reads, self.writes = depth, width, reads, writes
        a = _addr_bits(depth)
        members = {}
        for j in range(reads):
            members.update({f"r{j}_en": In(1), f"r{j}_addr": In(a), f"r{j}_data": Out(width)})
        for k in range(writes):
            members.update({f"w{k}_en": In(1), f"w{k}_addr": In(a), f"w{k}_data": In(width)})
        super().__init__(members)

    def module_suffix_for(self, parameters):
        return f"sram_{self.reads}r{self.writes}w_d{self.depth}_w{self.width}"

    @property
    def bits(self):
        return self.depth * self.width

    def elaborate(self, platform):
        # The same behaviour in Amaranth, for Amaranth's simulator and plain (non-hierarchical) use.
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[])
        wr = [mem.write_port() for _ in range(self.writes)]
        for k, port in enumerate(wr):
            m.d.comb += [port.addr.eq(getattr(self, f"w{k}_addr")), port.data.eq(getattr(self, f"w{k}_data")),
                         port.en.eq(getattr(self, f"w{k}_en"))]
        for j in range(self.reads):
            port = mem.read_port(domain="sync")
            m.d.comb += [port.addr.eq(getattr(self, f"r{j}_addr")), port.en.eq(getattr(self, f"r{j}_en")),
                         getattr(self, f"r{j}_data").eq(port.data)]
        return m

    def verilog(self, module_name):
        a, w, d = _addr_bits(self.depth), self.width, self.depth
        ports = ["clk"]
        decls = ["  input clk;"]
        for j in range(self.reads):
            ports += [f"r{j}_en", f"r{j}_addr", f"r{j}_data"]
            decls += [f"  input r{j}_en;", f"  input [{a - 1}:0] r{j}_addr;",
                      f"  output reg [{w - 1}:0] r{j}_data;"]
        for k in range(self.writes):
            ports += [f"w{k}_en", f"w{k}_addr", f"w{k}_data"]
            decls += [f"  input w{k}_en;", f"  input [{a - 1}:0] w{k}_addr;",
                      f"  input [{w - 1}:0] w{k}_data;"]
        body = [f"  reg [{w - 1}:0] mem [0:{d - 1}];", "  integer i;", "  initial begin",
                f"    for (i = 0; i < {d}; i = i + 1) mem[i] = {w}'d0;"]
        body += [f"    r{j}_data = {w}'d0;" for j in range(self.reads)]
        body += ["  end", "  always @(posedge clk) begin"]
        body += [f"    if (r{j}_en) r{j}_data <= mem[r{j}_addr];" for j in range(self.reads)]
        body += [f"    if (w{k}_en) mem[w{k}_addr] <= w{k}_data;" for k in range(self.writes)]
        body += ["  end"]
        head = (f"// {module_name}: SRAM, {d} words x {w} bits, {self.reads} synchronous read-first "
                f"port(s), {self.writes} write port(s).\n")
        return (head + f"module {module_name} ({', '.join(ports)});\n" + "\n".join(decls + body)
                + "\nendmodule\n")


class _ReadPort:
    def __init__(self, addr, data, en):
        self.addr, self.data, self.en = addr, data, en


class Sram(wiring.Component):
    """A RAM of ``depth`` words of ``shape`` (a width or a layout) on :class:`SramMacro`.

    ``transparent``: per read port, the write ports whose same-cycle write to the read address the read
    returns (the macro alone returns the old word). Read ports ``r[j]`` have ``addr``, ``data`` and
    ``en`` (1 unless driven); write ports ``w[k]`` have ``addr``, ``data`` and ``en``, as Amaranth's
    memory ports.
    """

    def __init__(self, *, shape, depth, reads=1, writes=1, transparent=None):
        self._shape = shape
        self._depth = depth
        self._transparent = [tuple(t) for t in (transparent or [()] * reads)]
        if len(self._transparent) != reads:
            raise ValueError("transparent: one tuple of write ports per read port")
        a = _addr_bits(depth)
        read_sig = wiring.Signature({"addr": In(a), "data": Out(shape), "en": In(1, init=1)})
        write_sig = wiring.Signature({"addr": In(a), "data": In(shape), "en": In(1)})
        self._reads, self._writes = reads, writes
        super().__init__({"r": In(read_sig).array(reads), "w": In(write_sig).array(writes)})

    @property
    def width(self):
        return Shape.cast(self._shape).width

    def elaborate(self, platform):
        from . import hier

        m = Module()
        macro = SramMacro(depth=self._depth, width=self.width, reads=self._reads, writes=self._writes)
        hier.add(m, "macro", macro)
        for k, w in enumerate(self.w):
            m.d.comb += [getattr(macro, f"w{k}_en").eq(w.en), getattr(macro, f"w{k}_addr").eq(w.addr),
                         getattr(macro, f"w{k}_data").eq(w.data.as_value()
                                                         if isinstance(w.data, data.View) else w.data)]
        for j, r in enumerate(self.r):
            m.d.comb += [getattr(macro, f"r{j}_en").eq(r.en), getattr(macro, f"r{j}_addr").eq(r.addr)]
            word = getattr(macro, f"r{j}_data")
            for k in self._transparent[j]:
                w = self.w[k]
                hit = Signal(name=f"r{j}_bypass_w{k}", reset_less=True)
                new = Signal(self.width, name=f"r{j}_bypass_data_w{k}", reset_less=True)
                with m.If(r.en):
                    m.d.sync += [hit.eq(w.en & (w.addr == r.addr)),
                                 new.eq(w.data.as_value() if isinstance(w.data, data.View) else w.data)]
                word = Mux(hit, new, word)
            m.d.comb += (r.data.as_value() if isinstance(r.data, data.View) else r.data).eq(word)
        return m


def blackbox_of(text):
    """The black-box declaration of a macro written by :meth:`SramMacro.verilog`: its comment,
    module header and port declarations, no body, marked ``(* blackbox *)`` for synthesis tools."""
    keep = []
    for line in text.splitlines():
        if line.startswith("//"):
            keep.append(line)
        elif line.startswith("module "):
            keep += ["(* blackbox *)", line]
        elif line.startswith(("  input ", "  output ")):
            keep.append(line.replace("output reg ", "output "))
    return "\n".join(keep + ["endmodule"]) + "\n"
