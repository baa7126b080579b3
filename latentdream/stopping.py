"""Stopping on a signal between units of work: one flag, set by the signal handler, read by :func:`check_stop`.

A SIGTERM (a scheduler's time limit, ``kill``) must end every phase within seconds — also long analyses that run
after Lightning's last own signal check (OIPs, dreams, the latent analysis at the end of training) and the
analysis commands. Raising from the handler at an arbitrary bytecode could tear a write into the store, so:

* :func:`handle_signals` installs a handler for SIGTERM (main thread only) that records the signal
  (:func:`request_stop`). Outside a :func:`deferred` region it also raises :class:`StopRequested` at once (nothing
  there checks the flag); inside one it only records it.
* Loops over units of work — an ascent step (OIPs, every dream mode), a batch of vectors encoded or decoded, a chunk
  of the latent statistics, a phase of a command — call :func:`check_stop`, which raises :class:`StopRequested`
  once a stop was requested. Writes into the store happen between checks, never interrupted half-way.

:class:`StopRequested` is a ``SystemExit`` with code ``128 + signum`` (143 for SIGTERM): uncaught it ends the
process with that code and no traceback, and ``except Exception`` blocks do not swallow it. Whoever owns a run
marks it KILLED on the way out (:func:`experiments.run.store.ended`).

Pure: imports nothing but the standard library, so analysis code can check the flag.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_requested: int | None = None  # the signal that asked to stop, until cleared
_deferring = 0  # depth of deferred() regions: there the handler only records the signal


class StopRequested(SystemExit):
    """A stop was requested by signal ``signum``; exit code ``128 + signum`` (143 for SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + int(signum))
        self.signum = int(signum)

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Record that the process should stop (the signal handler calls it; tests may too)."""
    global _requested
    _requested = int(signum)


def stop_requested() -> int | None:
    """The signal that asked to stop, or None."""
    return _requested


def clear_stop() -> None:
    """Forget a recorded stop (a process that goes on with other work after handling one, e.g. tests)."""
    global _requested
    _requested = None


def check_stop() -> None:
    """Raise :class:`StopRequested` if a stop was requested; call it between units of work (cheap: one read)."""
    if _requested is not None:
        raise StopRequested(_requested)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside, a signal only records the stop; the code inside calls :func:`check_stop` between units of work."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1


def _on_signal(signum: int, frame: Any) -> None:
    request_stop(signum)
    if not _deferring:
        raise StopRequested(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Turn SIGTERM into a requested stop while the block runs (main thread only: elsewhere a no-op), starting with
    no stop recorded; the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    clear_stop()
    saved = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        yield
    finally:
        if saved is not None:
            signal.signal(signal.SIGTERM, saved)
