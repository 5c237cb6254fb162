"""The run directory: where it goes, its lock, what a resume reads from it, and the machine a run's
numbers belong to."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from .config import build_config, load_run_config
from .errors import CheckpointError
from .lock import claimed_dir


def default_run_dir(cfg: DictConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"runs/{cfg.algo.name}_{cfg.env.name}_{cfg.env.scenario}_s{cfg.seed}_{stamp}"


def run_lock(run_dir: Path, option: str = "run_dir"):
    """Create the run directory where needed and hold its lock while a process trains in it: a
    second `differ train` (or a second sweep over the same out=) on the same directory stops at
    once instead of interleaving checkpoints and metrics. A command refused before it wrote
    anything leaves no directory behind."""
    return claimed_dir(run_dir, ".lock", option, str(run_dir))


def resume_config(run_dir: Path, overrides: dict[str, str]) -> DictConfig:
    if not (run_dir / "config.yaml").exists():
        raise CheckpointError(
            f"{run_dir} holds no run to resume (no config.yaml: it was stopped before "
            f"writing anything, or is not a run directory); re-run the original "
            f"`differ train ... run_dir={run_dir}` command to start it afresh"
        )
    return build_config(overrides, base=load_run_config(run_dir / "config.yaml"))


def machine_info() -> dict[str, str]:
    """What a run's numbers depend on beyond its config: runs are bit-for-bit reproducible for a
    seed on one CPU model and package set, but not across CPUs (AVX2 and AVX-512 kernels round
    differently, and RL trajectories amplify the difference)."""
    import platform
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "python": platform.python_version()}
    for pkg in ("torch", "numpy", "jax", "jaxlib", "jaxmarl"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return info
