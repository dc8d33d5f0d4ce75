"""The README's key tables say what gen/config.py does: every key of every section, its default and
its range."""

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from gen.config import SECTIONS, SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"


def key_table(name):
    """``{key: (default, range)}`` of the table after the README line "`[name]` keys"."""
    lines = README.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"`[{name}]` keys")]
    assert len(starts) == 1, f"README needs one key table introduced by `[{name}]` keys"
    i = starts[0] + 1
    while not lines[i].startswith("|"):
        i += 1
    assert [c.strip() for c in lines[i].strip("|").split("|")] == [
        "key", "default", "range", "meaning"], lines[i]
    rows = {}
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, line
        key = re.fullmatch(r"`(\w+)`", cells[0])
        assert key, f"one key per row, in backticks: {line}"
        assert key[1] not in rows, f"[{name}] {key[1]} twice"
        rows[key[1]] = (cells[1], cells[2])
    return rows


def _literal(text):
    m = re.fullmatch(r"`(.+)`", text)
    assert m, f"a default is a TOML value in backticks: {text}"
    return tomllib.loads(f"v = {m[1]}")["v"]


def _literals(text):
    return [tomllib.loads(f"v = {t}")["v"] for t in re.findall(r"`([^`]+)`", text)]


@pytest.mark.parametrize("name", [*SECTIONS, *SETTINGS])
def test_key_table_matches_the_dataclass(name):
    cls = {**SECTIONS, **SETTINGS}[name]
    rows = key_table(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert sorted(rows) == sorted(fields), f"[{name}]: README keys differ from {cls.__name__}"
    for key, f in fields.items():
        default, allowed = rows[key]
        meta, where = f.metadata, f"[{name}] {key}"
        kind = meta["kind"]
        if kind == "section":
            assert default == ("absent" if meta["optional"] else "table"), where
            assert allowed == f"`[{name}.{key}]`", where
            continue
        want = list(f.default) if isinstance(f.default, tuple) else f.default
        assert _literal(default) == want, f"{where}: default {default}, code {f.default!r}"
        if kind in ("int", "num"):
            m = re.match(r"(-?[\d.]+) to (-?[\d.]+)(;|$)", allowed)
            assert m, f"{where}: range must begin 'lo to hi': {allowed}"
            assert (float(m[1]), float(m[2])) == (meta["lo"], meta["hi"]), \
                f"{where}: range {allowed}, code {meta['lo']} to {meta['hi']}"
        elif kind == "bool":
            assert allowed == "true or false", where
        elif kind == "str" and meta["choices"] is None:
            assert allowed.startswith("a Verilog identifier, not a keyword"), where
        else:
            assert _literals(allowed) == list(meta["choices"]), \
                f"{where}: choices {allowed}, code {meta['choices']}"


def test_environment_table_names_every_variable_the_cli_reads():
    from gen.preflight import KNOWN_ENVIRONMENT
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| variable | effect |"):]
    table = table[:table.index("\n\n")]
    for name in ["SIM", "SEED", "WAVES", *KNOWN_ENVIRONMENT]:
        assert f"`{name}" in table, f"README's environment table lacks {name}"
