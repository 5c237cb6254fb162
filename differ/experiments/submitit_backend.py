"""`differ sweep ... backend=submitit`: each run one job of submitit's executor, on SLURM
(`slurm.cluster=slurm`, the default) or as local processes (`slurm.cluster=local`). The job runs
the run's `differ train` command, so the sweep's skip, resume and failure handling are the ones
of every backend (`backends.schedule`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config import number_option
from ..errors import ConfigError
from ..store.lock import held
from ..store.rundir import RunDir
from .grid import PlannedRun

CLUSTERS = ("slurm", "local")
NO_LIMIT_MIN = 365 * 24 * 60  # local jobs without slurm.time (submitit's own default is 2 minutes)
STOP_WAIT_S = 120  # after Ctrl-C: how long the sweep waits for cancelled runs to checkpoint and let go


def submitit_options(opts: dict[str, str], out: Path) -> dict:
    """The slurm.* options, checked before anything starts; a missing submitit is one line too."""
    cluster = opts.get("slurm.cluster", "slurm")
    if cluster not in CLUSTERS:
        raise ConfigError(f"slurm.cluster must be slurm or local, got '{cluster}'")
    partition = opts.get("slurm.partition")
    if partition is not None and not partition.strip():
        raise ConfigError("slurm.partition needs a partition name, e.g. slurm.partition=cpu")
    minutes = number_option(opts, "slurm.time", None, 1, int)
    if minutes is None and cluster == "slurm":  # submitit would ask SLURM for 5 minutes
        raise ConfigError("backend=submitit needs slurm.time=MINUTES, each run's job time limit on SLURM")
    logs = opts.get("slurm.logs") or str(out / ".submitit")
    parsed = {
        "cluster": cluster,
        "partition": partition,
        "timeout_min": minutes or NO_LIMIT_MIN,
        "cpus_per_task": number_option(opts, "slurm.cpus", 1, 1, int),
        "mem_gb": number_option(opts, "slurm.mem", None, 0.1, float),
        "gpus_per_node": number_option(opts, "slurm.gpus", 0, 0, int),
        "logs": Path(logs).resolve(),
    }
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigError("backend=submitit needs submitit: pip install 'differ-marl[slurm]'") from None
    if cluster == "slurm" and shutil.which("srun") is None:  # submitit's own test of a SLURM machine
        raise ConfigError(
            "slurm.cluster=slurm needs SLURM's srun and sbatch here (a login node); "
            "slurm.cluster=local runs the jobs on this machine"
        )
    return parsed


def train_job(args: list[str], log: str) -> int:
    """A job's body: the run's `differ train` as a child process, its output appended to the run's
    train.log. The child has its own session, so a terminal's Ctrl-C does not reach it; what stops
    the job (submitit's cancel of a local job: SIGINT; SLURM's time-limit or pre-emption warning:
    SIGUSR2) reaches it as one SIGTERM, on which it checkpoints at the end of its batch (a second
    signal would stop it without one). SIGTERM itself is not passed on: SLURM sends it to every
    process of a job, the child included."""
    forwarded = []

    def forward(signum, frame):
        if not forwarded:
            forwarded.append(signum)
            proc.send_signal(signal.SIGTERM)

    # ignored through the exec: SLURM's SIGUSR2 may reach the child too, and would kill it
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    with open(log, "a") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "differ", *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    for s in (signal.SIGINT, signal.SIGUSR2):
        signal.signal(s, forward)
    return proc.wait()


class SubmititBackend:
    """One submitit job per run. At most `workers` jobs are in flight (default: on SLURM every run
    at once, the scheduler queues them; locally one per CPU core). OUT must be on a filesystem the
    compute nodes see, and the nodes must run the same Python with differ installed."""

    name = "submitit"

    def __init__(self, workers: int | None, options: dict, runs: int):
        import submitit

        from .backends import default_workers

        self.options, self.live = options, {}
        self.limit = workers or (max(1, runs) if options["cluster"] == "slurm" else default_workers())
        self.executor = submitit.AutoExecutor(folder=options["logs"], cluster=options["cluster"])
        params = {k: options[k] for k in ("timeout_min", "cpus_per_task", "mem_gb", "gpus_per_node")}
        if options["partition"]:
            params["slurm_partition"] = options["partition"]
        self.executor.update_parameters(**{k: v for k, v in params.items() if v is not None})

    def submit(self, run: PlannedRun, log: Path):
        self.executor.update_parameters(name=f"differ-{run.name}")
        try:
            job = self._submit(run.command(), str(log))
        except Exception as e:  # sbatch refused it: a bad partition, account or limit
            first = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
            raise ConfigError(f"submitit could not submit run {run.name}: {first}") from None
        self.live[job] = run.run_dir
        return job

    def _submit(self, *args):
        if self.options["cluster"] != "local":
            return self.executor.submit(train_job, *args)
        # a local job's controller process writes to the sweep's stderr, and a terminal's Ctrl-C
        # reaches it too: its traceback would bury the sweep's lines, so it writes to a log of its own
        sys.stderr.flush()
        saved = os.dup(2)
        with open(self.options["logs"] / "controllers.log", "a") as f:
            os.dup2(f.fileno(), 2)
            try:
                return self.executor.submit(train_job, *args)
            finally:
                os.dup2(saved, 2)
                os.close(saved)

    def _outcome(self, job, wait: bool = True) -> tuple[int, str]:
        """The job's exit status of `differ train`; a job that died itself (cancelled, killed by the
        scheduler, out of memory) is -1 with submitit's first line and the job's own log. submitit
        waits a while for the result file of an ended job (a shared filesystem may show it late);
        `wait=False` does not."""
        self.live.pop(job, None)
        if not wait and not job.paths.result_pickle.exists():
            return -1, ""
        try:
            return int(job.result()), ""
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            return -1, f"submitit job {job.job_id} failed: {first} (logs: {job.paths.folder})"

    def ended(self, handles: list, timeout: float) -> list[tuple[object, int, str]]:
        done = [(job, *self._outcome(job)) for job in handles if job.done()]
        if not done:
            time.sleep(timeout)
        return done

    def interrupt(self, handles: list) -> list[tuple[object, int]]:
        """Cancel every job; each run stops with a checkpoint where the signal reaches it in time,
        else a re-run resumes it from its latest periodic checkpoint. Waits (a while) until the
        runs have let go of their directories, so the same command can follow at once."""
        for job in handles:
            job.cancel(check=False)
        end = time.time() + STOP_WAIT_S
        while time.time() < end and any(not j.done() or held(self.live[j] / RunDir.LOCK) for j in handles):
            time.sleep(0.5)
        return [(job, self._outcome(job, wait=False)[0]) for job in handles]

    def close(self) -> None:
        """Jobs still in flight when the sweep stops on an error are cancelled, not left behind."""
        for job in list(self.live):
            job.cancel(check=False)
        self.live.clear()
