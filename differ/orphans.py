"""A sweep's worker stops when its sweep dies, however it dies (kill -9 included), so no orphan
trains on: the worker asks Linux for a SIGTERM at its parent's death, which stops the run at the
end of its batch with a checkpoint that a re-run of the sweep resumes.

The worker asks for it itself, first thing, rather than the sweep in a `preexec_fn`: Python code
run between fork and exec in a process with threads (JAX's, once SMAX is imported) can deadlock,
and JAX warns at every such fork."""

from __future__ import annotations

import os
import signal
import sys

PARENT_ENV = "DIFFER_STOP_WITH_PARENT"  # the sweep's pid, set in its workers' environment
PR_SET_PDEATHSIG = 1


def worker_env() -> dict[str, str]:
    """The environment of a worker that is to stop with this process."""
    return {**os.environ, PARENT_ENV: str(os.getpid())}


def stop_with_parent() -> None:
    """In a worker: SIGTERM when the sweep dies. Linux only; elsewhere a no-op."""
    parent = os.environ.pop(PARENT_ENV, None)  # popped: the worker's own children are not workers
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # the sweep died before the line above: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)
