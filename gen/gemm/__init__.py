"""The GEMM engine (:class:`GemmEngine`) and its parts, one module each."""

from .engine import GemmEngine
from .layouts import act_layout, cmd_layout, out_layout, out_width, wgt_layout
from .params import POST_OUTPUTS, SHIFT_BITS, GemmParams, vsel_width

__all__ = ["GemmEngine", "GemmParams", "cmd_layout", "act_layout", "wgt_layout", "out_layout",
           "out_width", "vsel_width", "POST_OUTPUTS", "SHIFT_BITS"]
