"""The softmax unit (:class:`Softmax`) and its parts: pass 1 (:class:`RunningSum`), the reciprocal
(:class:`Reciprocal`), pass 2 (:class:`Scale`) and their arithmetic (:mod:`.arith`)."""

from .arith import derive_widths, exp2_entries
from .pass1 import RunningSum
from .pass2 import Scale
from .recip import Reciprocal
from .unit import PIPELINE_DEFAULTS, Softmax, input_layout, output_layout

__all__ = ["Softmax", "RunningSum", "Reciprocal", "Scale", "input_layout", "output_layout",
           "exp2_entries", "derive_widths", "PIPELINE_DEFAULTS"]
