"""Arithmetic shared by the softmax unit's parts: the exp2 table, widths, and adders shaped for
timing.

Yosys maps a wide ``+`` to a Brent-Kung carry tree, which ABC's area recovery then stretches into
something close to a ripple: a 40-bit add takes about 5.8 ns on OSU 0.18 um cells in
``accelgen synth --target asic``. :func:`add_fast` writes the same sum as a carry-select adder of
short ``+`` chunks (about 3.5 ns for 40 bits), :func:`compress` reduces many addends to two with
full adders (carry-save), so that a sum of several terms costs one carry chain.
"""

from math import isqrt

from amaranth.hdl import Cat, Const, Mux, Signal, signed

__all__ = ["clog2", "derive_widths", "exp2_entries", "int_shape", "add_fast", "compress",
           "sum_fast"]

CHUNK = 12
"""Bits per carry-select chunk of :func:`add_fast`."""


def clog2(n):
    return max(0, (n - 1).bit_length())


def derive_widths(out_frac, max_len):
    """``(sum_frac, recip_bits)`` meeting a 0.51 LSB error bound (derivation in
    sim/golden/softmax.py): ``S = O + ceil(log2(2 L_max + 3)) + 8``, ``M = O + 8``."""
    return out_frac + clog2(2 * max_len + 3) + 8, out_frac + 8


def exp2_entries(in_frac, sum_frac):
    """``round_half_up(2**(r / 2**F) * 2**S)`` for ``r < 2**F``, by ``F`` nested integer square
    roots of ``2**(r + (S + 1) * 2**F)`` (which give ``floor(2 * 2**(r/2**F + S))`` exactly)."""
    out = []
    for r in range(1 << in_frac):
        a = 1 << (r + (sum_frac + 1) * (1 << in_frac))
        for _ in range(in_frac):
            a = isqrt(a)
        out.append((a + 1) >> 1)
    return out


def int_shape(in_width, in_frac):
    """Shape of the integer parts ``fl``, ``ce`` and of the running maximum ``m``."""
    return signed(in_width - in_frac + 2)


def add_fast(m, a, b, width, *, carry_in=0, name):
    """``a + b + carry_in`` over ``width`` bits (``a``, ``b`` taken as unsigned ``width``-bit
    values) as a ``width + 1``-bit signal: a carry-select adder of :data:`CHUNK`-bit chunks,
    each chunk above the first summed for both incoming carries and picked by the carry below."""
    a, b = a.as_unsigned()[:width], b.as_unsigned()[:width]
    out = Signal(width + 1, name=name)
    lo = min(CHUNK, width)
    first = Signal(lo + 1, name=f"{name}_c0")
    m.d.comb += first.eq(a[:lo] + b[:lo] + carry_in)
    parts, carry = [first[:lo]], first[lo]
    for n, start in enumerate(range(lo, width, CHUNK), start=1):
        stop = min(start + CHUNK, width)
        s0 = Signal(stop - start + 1, name=f"{name}_c{n}_0")
        s1 = Signal(stop - start + 1, name=f"{name}_c{n}_1")
        m.d.comb += [s0.eq(a[start:stop] + b[start:stop]), s1.eq(a[start:stop] + b[start:stop] + 1)]
        pick = Signal(stop - start + 1, name=f"{name}_c{n}")
        m.d.comb += pick.eq(Mux(carry, s1, s0))
        parts.append(pick[:-1])
        carry = pick[-1]
    m.d.comb += out.eq(Cat(*parts, carry))
    return out


def compress(m, terms, width, *, name):
    """Two values of ``width`` bits whose sum is that of ``terms`` (unsigned values whose sum fits
    ``width`` bits), by rows of full adders (3:2 carry-save compressors)."""
    terms = [t.as_unsigned() if hasattr(t, "as_unsigned") else Const(t, width) for t in terms]
    level = 0
    while len(terms) > 2:
        nxt = []
        for k in range(0, len(terms) - 2, 3):
            x, y, z = terms[k:k + 3]
            s = Signal(width, name=f"{name}_s{level}_{k // 3}")
            c = Signal(width - 1, name=f"{name}_k{level}_{k // 3}")   # the carries, bits 1 and up
            majority = (x & y) | (x & z) | (y & z)
            m.d.comb += [s.eq(x ^ y ^ z), c.eq(majority[:width - 1])]
            nxt += [s, Cat(Const(0, 1), c)]
        nxt += terms[len(terms) - len(terms) % 3:] if len(terms) % 3 else []
        terms = nxt
        level += 1
    while len(terms) < 2:
        terms.append(Const(0, width))
    return terms


def sum_fast(m, terms, width, *, name):
    """The sum of ``terms`` over ``width`` bits (it must fit): :func:`compress`, then
    :func:`add_fast`."""
    a, b = compress(m, terms, width, name=f"{name}_csa")
    return add_fast(m, a, b, width, name=name)[:width]
