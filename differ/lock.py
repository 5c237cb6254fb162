"""Exclusive directory locks: one process trains in a run directory, one sweep writes into an
out= directory. The OS drops a lock when its holder dies, even on SIGKILL, so a killed process
never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import RunInUse


@contextmanager
def exclusive(lock_file: Path, what: str):
    """Hold `lock_file` for the duration; if another process holds it, raise RunInUse naming
    `what` and that process's pid."""
    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise RunInUse(f"{what} is in use by another differ process (pid {f.read().strip() or '?'}); "
                           f"wait for it to finish or stop it first") from None
        f.seek(0)
        f.truncate(0)
        f.write(str(os.getpid()))
        f.flush()
        yield
