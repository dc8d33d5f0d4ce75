"""Packing and unpacking of a manifest's word and payload layouts, pure Python (no cocotb).

A layout is a manifest entry ``{"width", "fields": [{"name", "offset", "width", "format"}]}``:
a stream's payload (``streams``) or a memory word (``words``, the system's command, header,
``a``, ``w`` and ``o`` words). Field names are the leaves of the Amaranth layout: nested
struct members as ``gemm.m``, array elements as ``data.0``, ``data.1``, ... A field is signed
when its format starts with ``sint``.

:class:`Layout` is used by the host program builder (:mod:`sim.host`), the word-level model
(:mod:`sim.golden.system`) and, as :class:`sim.tb.streams.Payload`, by every cocotb bench.
"""

import numpy as np

__all__ = ["Layout"]


class Layout:
    """One layout of a manifest: packs and unpacks words by field name.

    ``check`` (default True): :meth:`pack` refuses a value that does not fit its field's bits
    (an unsigned field takes 0 to ``2**width - 1``; a signed one also ``-2**(width-1)`` to -1,
    stored in two's complement, so that a bit pattern such as a binary32 in a 32-bit lane fits);
    with ``check=False`` any value is cut to the field's width (two's complement), as the
    benches' drivers have it for deliberately odd stimulus.
    """

    def __init__(self, entry, name="layout", check=True):
        try:
            self.width = int(entry["width"])
            self.fields = {f["name"]: (int(f["offset"]), int(f["width"]),
                                       str(f.get("format", "")).startswith("sint"))
                           for f in entry["fields"]}
        except (KeyError, TypeError) as e:
            raise ValueError(f"manifest layout {name!r}: needs 'width' and 'fields' with 'name', "
                             f"'offset', 'width' ({e!r} missing)") from None
        self.name = name
        self.check = check
        self._groups = {}
        for fname in self.fields:
            head, _, tail = fname.rpartition(".")
            if head and tail.isdigit():
                self._groups.setdefault(head, []).append((int(tail), fname))
        self._groups = {head: [n for _, n in sorted(names)] for head, names in self._groups.items()}

    def has(self, name):
        """True if ``name`` is a field or a group of fields (``data`` for ``data.0``, ...)."""
        return name in self.fields or any(f.startswith(name + ".") for f in self.fields)

    def count(self, name):
        """Number of array elements of ``name`` (``data`` -> C), 0 if absent."""
        return len(self._groups.get(name, ()))

    def field_width(self, name):
        return self.fields[name][1]

    def _flatten(self, values, prefix=""):
        for key, value in values.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                yield from self._flatten(value, name + ".")
            elif isinstance(value, (list, tuple, np.ndarray)):
                n = self.count(name)
                if len(value) != n:
                    raise ValueError(f"{self.name}.{name}: {len(value)} values for {n} lanes")
                for i, v in enumerate(value):
                    yield f"{name}.{i}", v
            else:
                yield name, value

    def pack(self, values=None, **kw):
        """A word from field values: ``pack(op=0, gemm={"m": 4})`` or ``pack({"gemm.m": 4})``;
        lists fill arrays (``data=[...]`` for ``data.0``, ``data.1``, ...). Unnamed fields are 0."""
        values = dict(values or {}, **kw)
        word = 0
        for name, value in self._flatten(values):
            if name not in self.fields:
                raise ValueError(f"layout {self.name!r} has no field {name!r}")
            offset, width, signed = self.fields[name]
            value = int(value)
            if self.check:
                lo, hi = (-(1 << (width - 1)) if signed else 0), (1 << width) - 1
                if not lo <= value <= hi:
                    raise ValueError(f"{self.name}.{name} = {value}: does not fit {width} bits")
            word |= (value & ((1 << width) - 1)) << offset
        return word

    def unpack(self, word):
        """Field name -> int (signed fields sign-extended); array elements as one list under
        their group's name (``data`` -> [data.0, data.1, ...], no ``data.0`` key)."""
        word = int(word)
        out = {}
        for name, (offset, width, signed) in self.fields.items():
            v = (word >> offset) & ((1 << width) - 1)
            if signed and v >> (width - 1):
                v -= 1 << width
            out[name] = v
        for head, names in self._groups.items():
            out[head] = [out.pop(n) for n in names]
        return out
