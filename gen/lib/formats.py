"""Run-time operand modes of the PE array and their packing.

The mode codes are part of the command interface of the GEMM engine; they are fixed here once so the
hardware, the golden model (:mod:`sim.golden.gemm`, which keeps its own copy and is tested against this
table) and the manifest agree.
"""

from dataclasses import dataclass

__all__ = ["Mode", "MODES", "mode_by_name"]


@dataclass(frozen=True)
class Mode:
    """One run-time operand mode.

    Members
    -------
    name : str
        Name used in configurations and manifests.
    code : int
        Value of the ``mode`` field of a GEMM command.
    k_per_row : int
        Reduction elements one PE row covers per activation beat (2 for packed INT4 pairs).
    weight_k_per_beat : int
        Reduction rows a weight beat carries (2 where weights are packed INT4 pairs).
    macs_per_pe : int
        Multiply-accumulates one PE performs per cycle.
    """

    name: str
    code: int
    k_per_row: int
    weight_k_per_beat: int
    macs_per_pe: int


MODES = (
    Mode("int8", 0, k_per_row=1, weight_k_per_beat=1, macs_per_pe=1),
    Mode("int4", 1, k_per_row=2, weight_k_per_beat=2, macs_per_pe=2),
    Mode("w4a8", 2, k_per_row=1, weight_k_per_beat=2, macs_per_pe=1),
)

MODE_CODE_WIDTH = 3


def mode_by_name(name):
    for mode in MODES:
        if mode.name == name:
            return mode
    raise KeyError(name)
