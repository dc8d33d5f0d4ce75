"""Checks of the golden models' inputs, with messages that name the argument, the offending value and
where it is, and what is allowed.

Integer inputs may be given with any integer dtype, as Python integers, or as floats that hold exactly
integral values; booleans, NaN, infinities, fractions, strings and ragged nesting are refused with a
:class:`ValueError` (a :class:`TypeError` for parameters of the wrong kind).
"""

import numpy as np

__all__ = ["int_param", "int_array", "bool_array", "as_array"]


def int_param(name, value, lo, hi):
    """``value`` as a Python int, checked to be an integer (not a bool) from ``lo`` to ``hi``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not lo <= value <= hi:
        shown = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"{name} = {shown!r}: must be an integer from {lo} to {hi}")
    return int(value)


def _where(index):
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def as_array(name, x):
    """``np.asarray(x)``, or a :class:`ValueError` naming ``name`` when ``x`` is ragged."""
    try:
        return np.asarray(x)
    except (ValueError, TypeError):
        raise ValueError(f"{name} is not a rectangular array of numbers") from None


def _first(mask):
    return tuple(np.argwhere(mask)[0])


def int_array(name, x, lo, hi, *, ndim=None, shape_text=None, allowed=None):
    """``x`` as an int64 array, checked: integral values from ``lo`` to ``hi``, and ``ndim``
    dimensions when given (``shape_text`` says which, for the message). ``allowed`` replaces
    ``[lo, hi]`` in the range message's tail (for example "allowed in mode int8")."""
    a = as_array(name, x)
    if ndim is not None and a.ndim != ndim:
        what = shape_text or f"{ndim} dimension{'s' if ndim != 1 else ''}"
        raise ValueError(f"{name} has shape {a.shape}: must have {what}")
    kind = a.dtype.kind
    if kind == "b":
        raise ValueError(f"{name} holds booleans: must hold integers")
    if kind == "O":
        flat = a.reshape(-1)
        bad = [i for i, v in enumerate(flat)
               if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))]
        if bad:
            raise ValueError(f"{name} holds {type(flat[bad[0]]).__name__} values: must hold "
                             f"integers")
        low = [i for i, v in enumerate(flat) if not lo <= v <= hi]
        if low:
            index = np.unravel_index(low[0], a.shape)
            raise ValueError(f"{name} has values outside [{lo}, {hi}]"
                             f"{' ' + allowed if allowed else ''} (first: {flat[low[0]]} at "
                             f"{_where(index)})")
        return a.astype(np.int64)
    if kind not in "iuf":
        raise ValueError(f"{name} has dtype {a.dtype}: must hold integers")
    if kind == "f":
        if np.isnan(a).any():
            raise ValueError(f"{name} has NaN values (first at {_where(_first(np.isnan(a)))}): "
                             f"must hold integers")
        if np.isinf(a).any():
            raise ValueError(f"{name} has infinite values (first at "
                             f"{_where(_first(np.isinf(a)))}): must hold integers")
        frac = a != np.rint(a)
        if frac.any():
            index = _first(frac)
            raise ValueError(f"{name} has non-integer values (first: {a[index].item()!r} at "
                             f"{_where(index)}): must hold integers (integral floats are "
                             f"accepted)")
    if a.size:
        out = (a < lo) | (a > hi)
        if out.any():
            index = _first(out)
            value = a[index].item()
            value = int(value) if kind == "f" else value
            raise ValueError(f"{name} has values outside [{lo}, {hi}]"
                             f"{' ' + allowed if allowed else ''} (first: {value} at "
                             f"{_where(index)})")
    return a.astype(np.int64)


def bool_array(name, x, shape):
    """``x`` as a bool array of ``shape``: booleans, or integers 0 and 1."""
    a = as_array(name, x)
    if a.shape != tuple(shape):
        raise ValueError(f"{name} shape {a.shape} differs from the row's {tuple(shape)}")
    if a.dtype.kind == "b":
        return a
    if a.dtype.kind in "iu" or a.dtype.kind == "O":
        flat = a.reshape(-1)
        if all(isinstance(v, (bool, np.bool_, int, np.integer)) and v in (0, 1) for v in flat):
            return a.astype(bool)
    raise ValueError(f"{name} must hold booleans (or 0 and 1); it has dtype {a.dtype}")
