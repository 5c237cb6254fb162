"""Where a sweep's runs execute: worker processes on this machine, or tasks on a Ray cluster (and
submitit's jobs, submitit_backend.py). All go through one scheduling loop (`schedule`); a backend
only starts runs, reports the ones that ended, and stops the rest on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import ConfigError
from ..orphans import worker_env
from ..store import checkpoint as ckpt
from ..store.rundir import RunDir
from .grid import PlannedRun
from .monitor import Progress, _error_line


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _start(r: PlannedRun, backend: str) -> Path:
    """Mark a run running and head its log (train.log, appended over resumes) with the command."""
    r.run_dir.mkdir(parents=True, exist_ok=True)
    log = RunDir(r.run_dir).train_log
    with open(log, "a") as f:
        f.write(f"\n# differ {' '.join(r.command())} ({backend}, {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    r.status = "running"
    return log


def _finish(run: PlannedRun, rc: int, log: Path) -> None:
    result = RunDir(run.run_dir).result()
    if rc == 0 and result:
        run.result, run.t_env = result, result.get("t_env", run.t_env)
        run.status = "interrupted" if result.get("stopped_early") else "finished"
    else:
        run.status = "failed"
        run.error = (f"exit {rc}: " if rc else "") + _error_line(log) + f" (log: {log})"
    if run.status != "finished":
        # what a re-run continues from is the newest checkpoint, not the last metrics row
        found = ckpt.list_checkpoints(run.run_dir)
        run.t_env = ckpt.t_env_of(found[-1]) if found else 0


class LocalBackend:
    """Worker processes, each `python -m differ train ...` in its own session: a terminal's Ctrl-C
    reaches only the sweep, which then sends each worker one SIGTERM (a second signal would stop
    it without a checkpoint)."""

    name = "local"

    def __init__(self, workers: int | None):
        self.limit = workers or default_workers()

    def submit(self, run: PlannedRun, log: Path) -> subprocess.Popen:
        with open(log, "a") as f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "differ", *run.command()],
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=worker_env(),  # it stops when the sweep dies (differ/orphans.py)
            )
        RunDir(run.run_dir).worker_pid.write_text(str(proc.pid))
        return proc

    def ended(self, handles: list, timeout: float) -> list[tuple[object, int, str]]:
        done = [(h, h.poll(), "") for h in handles if h.poll() is not None]
        if not done:
            time.sleep(timeout)
        return done

    def interrupt(self, handles: list) -> list[tuple[object, int]]:
        """Workers stop at the end of their batch with a checkpoint; a re-run resumes them."""
        for h in handles:
            h.send_signal(signal.SIGTERM)
        return [(h, h.wait()) for h in handles]

    def close(self) -> None:
        pass


class RayBackend:
    """The same runs as Ray tasks (one CPU each). On a cluster, OUT must be on a filesystem every
    node sees and differ must be installed on every node."""

    name = "ray"

    def __init__(self, workers: int | None, address: str | None):
        try:
            import ray
        except ImportError:
            raise ConfigError("backend=ray needs Ray: pip install 'differ-marl[ray]'") from None
        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            kw = {"address": address} if address else {"num_cpus": workers or default_workers()}
            ray.init(include_dashboard=False, log_to_driver=False, **kw)
        self.limit = workers or int(ray.cluster_resources().get("CPU", 1))

        @ray.remote(num_cpus=1)
        def train_task(args: list[str], log: str) -> int:
            import subprocess as sp
            import sys as s

            with open(log, "a") as f:
                return sp.call([s.executable, "-m", "differ", *args], stdout=f, stderr=sp.STDOUT, stdin=sp.DEVNULL)

        self.task = train_task

    def submit(self, run: PlannedRun, log: Path):
        return self.task.remote(run.command(), str(log))

    def ended(self, handles: list, timeout: float) -> list[tuple[object, int, str]]:
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout) if handles else ([], [])
        out = []
        for ref in done:
            try:
                out.append((ref, self.ray.get(ref), ""))
            except Exception as e:  # the task itself died (node lost, ...)
                out.append((ref, -1, f"ray task failed: {type(e).__name__}: {str(e)[:200]}"))
        return out

    def interrupt(self, handles: list) -> list[tuple[object, int]]:
        return []  # the tasks stop with the Ray runtime; runs resume from their latest checkpoint

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()


def schedule(runs: list[PlannedRun], backend, progress: Progress) -> None:
    """The one scheduling loop: at most `backend.limit` runs at once, in grid order; a run that
    ends is finished, interrupted or failed by its exit status and result.json."""
    queue = [r for r in runs if r.action != "skip"]
    active: dict = {}  # handle -> (run, start time, log)

    def end(handle, rc: int, error: str = "") -> PlannedRun:
        r, t0, log = active.pop(handle)
        r.wall_s = time.time() - t0
        if error:
            r.error = error
        _finish(r, rc, log)
        return r

    try:
        while queue or active:
            while queue and len(active) < backend.limit:
                r = queue.pop(0)
                log = _start(r, backend.name)
                active[backend.submit(r, log)] = (r, time.time(), log)
            for handle, rc, error in backend.ended(list(active), timeout=0.5):
                progress.event(end(handle, rc, error))
            progress.refresh()
    except KeyboardInterrupt:
        for handle, rc in backend.interrupt(list(active)):
            r = end(handle, rc)
            if r.status == "failed":
                r.status, r.error = "interrupted", "stopped by Ctrl-C; re-run the sweep to resume it"
        raise
    finally:
        backend.close()
