"""Ctrl-C before the run loop takes the signals over. Python raises KeyboardInterrupt in the main
thread wherever it happens to be, and during a run's start-up two places are bad: a
garbage-collector callback or a `__del__` (JAX runs one at every collection), where Python prints
the exception as "Exception ignored" and carries on, so the run went on to train; and the import
of an extension module (jaxlib's), where it can crash the interpreter (SIGSEGV). So while
`differ train` starts, a first Ctrl-C is only recorded, and the start-up stops at the next check
(after the imports, after the envs are built, before anything is written, before the first
batch: seconds); a second one raises at once. Other commands keep Python's own Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

_seen = False


def _record_first(signum, frame):
    global _seen
    if _seen:  # a second Ctrl-C: stop now, wherever start-up is
        raise KeyboardInterrupt
    _seen = True


def _unraisable(default):
    def hook(unraisable):
        global _seen
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _seen = True  # lost where it was raised; raised again at the next check, without the noise
            return
        default(unraisable)

    return hook


@contextmanager
def recorded():
    """Around a run's start-up (main thread only, and only where Ctrl-C is not ignored, as for a
    background job): a first Ctrl-C is recorded for `raise_if_interrupted`, a second raises."""
    global _seen
    _seen = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    if handler is signal.default_int_handler:
        signal.signal(signal.SIGINT, _record_first)
    sys.unraisablehook = _unraisable(hook)
    try:
        yield
    finally:
        if handler is signal.default_int_handler:
            signal.signal(signal.SIGINT, handler)
        sys.unraisablehook = hook
        _seen = False


def raise_if_interrupted() -> None:
    """An interrupt that was lost on the way stops the command here."""
    if _seen:
        raise KeyboardInterrupt
