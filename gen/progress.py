"""What a long piece of work is doing, and how far it is.

The ``accelgen`` command calls :func:`enable`; until then :func:`task` reports nothing, so that library
use and tests stay quiet. Enabled, a task shows on standard error:

- on a terminal, as a line of a `rich <https://github.com/Textualize/rich>`_ progress display (spinner,
  description, bar when the total is known, elapsed time), removed when the task ends;
- otherwise (a CI log, a pipe), as plain lines: ``accelgen: <what> ...`` once the task has run for
  :data:`FIRST_REPORT` seconds, then ``accelgen: <what>: <done> of <total>, <n> s`` every
  :data:`PERIOD` seconds, and ``accelgen: <what>: done in <n> s`` at the end (while a task runs
  inside another, only the inner one reports). Work shorter than :data:`FIRST_REPORT` seconds prints
  nothing, so short commands keep their one-line output.
"""

import sys
import threading
import time
from contextlib import contextmanager

__all__ = ["enable", "disable", "enabled", "task", "FIRST_REPORT", "PERIOD"]

FIRST_REPORT = 3.0
"""Seconds before a task's first plain line."""

PERIOD = 15.0
"""Seconds between a task's plain lines."""

_state = {"mode": None, "stream": None, "rich": None, "depth": 0, "plain": []}
_lock = threading.RLock()


def enable(stream=None, *, plain=None):
    """Report tasks on ``stream`` (default ``sys.stderr``): with rich on a terminal, as plain lines
    otherwise or when ``plain``."""
    stream = stream or sys.stderr
    if plain is None:
        plain = not (hasattr(stream, "isatty") and stream.isatty())
    if not plain:
        try:
            import rich.progress  # noqa: F401 - only whether it is importable
        except ImportError:
            plain = True
    _state.update(mode="plain" if plain else "rich", stream=stream)


def disable():
    """Report nothing (the default)."""
    _state.update(mode=None, stream=None)


def enabled():
    return _state["mode"] is not None


class _Task:
    def __init__(self, description, total):
        self.description = description
        self.total = total
        self.done = 0
        self.start = time.monotonic()

    def advance(self, n=1):
        """``n`` more of ``total`` done."""
        self.done += n
        self._update()

    def _update(self):
        pass

    def _elapsed(self):
        return time.monotonic() - self.start


class _Quiet(_Task):
    pass


class _Plain(_Task):
    """Plain lines from a timer thread: the first after FIRST_REPORT s, then every PERIOD s."""

    def __init__(self, description, total, stream):
        super().__init__(description, total)
        self.stream = stream
        self.reported = False
        self.stop = threading.Event()
        with _lock:
            _state["plain"].append(self)
        self.thread = threading.Thread(target=self._beat, daemon=True)
        self.thread.start()

    def _line(self, text):
        with _lock:
            try:
                print(f"accelgen: {text}", file=self.stream, flush=True)
            except (OSError, ValueError):  # the stream went away: stay quiet
                pass

    def _beat(self):
        wait = FIRST_REPORT
        while not self.stop.wait(wait):
            with _lock:
                innermost = _state["plain"] and _state["plain"][-1] is self
            if not innermost:  # an inner task reports; this one only says when it is done
                self.reported = True
                wait = PERIOD
                continue
            self.reported = True
            how_far = f"{self.done} of {self.total}, " if self.total else ""
            self._line(f"{self.description}: {how_far}{self._elapsed():.0f} s")
            wait = PERIOD

    def finish(self):
        self.stop.set()
        self.thread.join()
        with _lock:
            _state["plain"].remove(self)
        if self.reported:
            self._line(f"{self.description}: done in {self._elapsed():.0f} s")


class _Rich(_Task):
    def __init__(self, description, total):
        super().__init__(description, total)
        with _lock:
            if _state["rich"] is None:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    SpinnerColumn,
                    TextColumn,
                    TimeElapsedColumn,
                )
                console = Console(file=_state["stream"], stderr=_state["stream"] is sys.stderr)
                _state["rich"] = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                          BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                          console=console, transient=True)
                _state["rich"].start()
            self.progress = _state["rich"]
            self.id = self.progress.add_task(description, total=total)

    def _update(self):
        self.progress.update(self.id, completed=self.done)

    def finish(self):
        with _lock:
            self.progress.remove_task(self.id)
            if _state["depth"] == 1:
                self.progress.stop()
                _state["rich"] = None


@contextmanager
def task(description, total=None):
    """A piece of long work called ``description``, with ``total`` steps when known; yields an object
    whose ``advance(n=1)`` counts steps done."""
    mode = _state["mode"]
    if mode is None:
        yield _Quiet(description, total)
        return
    with _lock:
        _state["depth"] += 1
    current = (_Rich(description, total) if mode == "rich"
               else _Plain(description, total, _state["stream"]))
    try:
        yield current
    finally:
        current.finish()
        with _lock:
            _state["depth"] -= 1
