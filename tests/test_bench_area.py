"""`accelgen bench area`: the section runner, fits and table on a cheap section (two PEs)."""

import shutil

import pytest

from gen import cli
from sim.bench import area

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None,
                                 reason="yosys is not installed (Debian package yosys)")


def test_linear_fit():
    assert area.linear_fit([1, 2, 4], [10, 20, 40]) == pytest.approx((10.0, 0.0))
    assert area.linear_fit([3, 4, 5], [7, 9, 14]) == pytest.approx((3.5, -4.0))


def test_unknown_section_is_named():
    with pytest.raises(ValueError, match="section = 'nonsense': must be one of modes, vsq"):
        area.run(quick=True, only=["nonsense"])


def test_area_is_a_bench():
    assert cli.BENCHES["area"][0] == "sim.bench.area"


@needs_yosys
def test_modes_section_pe(monkeypatch):
    """The INT8 and INT4 PEs: an INT4-only PE (two 4 x 4 multipliers, 2 MACs per cycle) is smaller
    than an INT8 one, and costs less than half as many cells per MAC; the table shows them."""
    monkeypatch.setattr(area, "QUICK_MODE_SETS", [("int8",), ("int4",)])
    monkeypatch.setattr(area, "QUICK_ARRAY_MODE_SETS", [])
    result = area.run(quick=True, only=["modes"])
    rows = {(r["kind"], tuple(r["modes"])): r for r in result["sections"]["modes"]["results"]}
    assert sorted(rows) == [("pe", ("int4",)), ("pe", ("int8",))]
    i8, i4 = rows["pe", ("int8",)], rows["pe", ("int4",)]
    assert i8["check_passed"] and i4["check_passed"]
    assert i4["macs_per_cycle"] == 2 * i8["macs_per_cycle"] == 2
    assert i4["cells_per_mac"] < 0.5 * i8["cells_per_mac"]
    assert i8["extra_cells_per_pe"] == 0 and i4["extra_cells_per_pe"] < 0
    assert (i8["multipliers"], i4["multipliers"]) == (1, 2)
    table = area.format_table(result)
    assert f"| PE | INT4 | 2 | {i4['cells']} |" in table

