"""Progress of long work (gen.progress): quiet until enabled, plain lines in a log, a rich display on a
terminal; and the quick demo asks for less work."""

import io
import time

import pytest

from gen import progress


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(progress, "FIRST_REPORT", 0.05)
    monkeypatch.setattr(progress, "PERIOD", 0.05)
    yield
    progress.disable()


def test_quiet_unless_enabled(fast, capsys):
    with progress.task("work", total=2) as t:
        time.sleep(0.15)
        t.advance()
    assert capsys.readouterr().err == ""


def test_plain_lines_for_long_work_only(fast):
    log = io.StringIO()
    progress.enable(log, plain=True)
    with progress.task("quick work"):
        pass
    assert log.getvalue() == ""
    with progress.task("emitting x", total=3) as t:
        t.advance()
        time.sleep(0.2)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("accelgen: emitting x: 1 of 3, ")
    assert lines[-1].startswith("accelgen: emitting x: done in ")
    assert all(line.startswith("accelgen: emitting x: ") for line in lines)


def test_rich_display_on_a_terminal(fast):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    progress.enable(screen)
    with progress.task("outer", total=2) as outer:
        with progress.task("inner"):
            time.sleep(0.05)
        outer.advance(2)
    assert progress._state["rich"] is None and progress._state["depth"] == 0


def test_demo_attention_quick_is_smaller(monkeypatch):
    """`accelgen demo attention --quick` runs a shorter sequence on the same build."""
    from sim.bench import demo as D
    seen = []

    class Stop(Exception):
        pass

    def inputs(seq, d):
        seen.append((seq, d))
        raise Stop

    monkeypatch.setattr(D, "build_system", lambda sections, sim: None)
    monkeypatch.setattr(D, "attention_inputs", inputs)
    for quick in (True, False):
        with pytest.raises(Stop):
            D.run("attention", quick=quick)
    assert seen == [(16, 16), (64, 16)]


def test_only_the_inner_task_reports(fast):
    log = io.StringIO()
    progress.enable(log, plain=True)
    with progress.task("demo"):
        with progress.task("building"):
            time.sleep(0.2)
    lines = log.getvalue().splitlines()
    assert lines[-1].startswith("accelgen: demo: done in ")
    assert all(line.startswith("accelgen: building: ") for line in lines[:-1])
