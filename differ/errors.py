"""The errors a user can act on. Each carries one line that names the problem and the fix; the
command line prints it as `differ: error: ...` and exits with status 2, without a traceback."""

from __future__ import annotations

import errno
from shlex import quote


class DifferError(Exception):
    """Base of every error whose message is meant for the user as it is."""


class ConfigError(DifferError, ValueError):
    """Bad input: a config key or value, a command option, a preset name."""


class CheckpointError(DifferError, RuntimeError):
    """A run directory or checkpoint that cannot be used as asked."""


class CorruptCheckpoint(CheckpointError):
    """A checkpoint or replay chunk that is empty, truncated or unreadable: an older checkpoint
    may still be good, so resume falls back to it."""


class TrainingDiverged(DifferError, RuntimeError):
    """A loss, gradient or parameter became non-finite."""


class EnvFault(DifferError, RuntimeError):
    """The environment itself failed: its own code raised, or it returned a non-finite reward,
    observation or state, or left an agent no available action (differ/envs/faults.py)."""


class RunInUse(DifferError, RuntimeError):
    """Another process is training in this run directory (or sweeping into this out=)."""


class Interrupted(DifferError):
    """Ctrl-C (a second one, once a run trains), with what to run to go on; exit status 130."""


class StorageError(DifferError, OSError):
    """Writing to the run directory failed (disk full, quota, file size limit, permissions)."""


NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def storage_error(e: OSError, run_dir) -> StorageError:
    """One line for a failed write: what failed, why, and how to go on."""
    what = e.filename or run_dir
    why = e.strerror or type(e).__name__
    if e.errno in NO_SPACE:  # the disk is what is full, not the file that happened to be written
        fix = (
            f"free some space (or move run_dir elsewhere), then resume with "
            f"`differ train resume={quote(str(run_dir))}`; the checkpoints written before are intact"
        )
        return StorageError(f"cannot write to {run_dir}: {why}; {fix}")
    return StorageError(
        f"cannot access {what}: {why}; fix that, then resume with "
        f"`differ train resume={quote(str(run_dir))}` (the checkpoints written before are intact)"
    )
