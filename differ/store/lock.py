"""Exclusive directory locks: one process trains in a run directory, one sweep writes into an
out= directory. The OS drops a lock when its holder dies, even on SIGKILL, so a killed process
never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError, RunInUse


@contextmanager
def exclusive(lock_file: Path, what: str):
    """Hold `lock_file` for the duration; if another process holds it, raise RunInUse naming
    `what` and that process's pid. The file holds the pid of the process holding it; where the
    holder's work fails (a refused command), the file is put back as it was (its bytes and its
    modification time, or no file where there was none), so that nothing in the directory changed."""
    existed = lock_file.exists()
    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise RunInUse(
                f"{what} is in use by another differ process (pid {f.read().strip() or '?'}); "
                f"wait for it to finish or stop it first"
            ) from None
        f.seek(0)
        old, stat = f.read(), os.fstat(f.fileno())
        f.seek(0)
        f.truncate(0)
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        except BaseException:
            if not existed:
                lock_file.unlink(missing_ok=True)
            else:
                f.seek(0)
                f.truncate(0)
                f.write(old)
                f.flush()
                os.utime(f.fileno(), ns=(stat.st_atime_ns, stat.st_mtime_ns))
            raise


@contextmanager
def claimed_dir(directory: Path, lock_name: str, option: str, what: str):
    """Create `directory` (with its parents) where needed, check that it can be written, and hold
    its lock for the duration. A path that cannot be such a directory (too long, under a file,
    read-only) is bad input: one line naming `option`. If this call created the directory and
    nothing but the lock was written into it, it is removed on the way out, so a refused command
    leaves nothing behind."""
    try:
        created = not directory.is_dir()
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write_test.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        shown = str(directory) if len(str(directory)) <= 120 else str(directory)[:117] + "..."
        hint = " (is a parent a file?)" if isinstance(e, (NotADirectoryError, FileExistsError)) else ""
        raise ConfigError(f"{option}={shown} cannot be used: {e.strerror or type(e).__name__}{hint}") from None
    try:
        with exclusive(directory / lock_name, what):
            yield
    finally:
        if created and {p.name for p in directory.iterdir()} <= {lock_name}:
            (directory / lock_name).unlink(missing_ok=True)
            directory.rmdir()


def held(lock_file: Path) -> bool:
    """Whether a process holds `lock_file` now (a probe: takes it and lets go at once)."""
    try:
        f = open(lock_file)
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False
