import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# tiny runs: every interval small so a few hundred steps exercise tests, logs and checkpoints
TINY_SMAX = [
    "env=smax",
    "env.scenario=3m",
    "env.num_envs=2",
    "env.test_num_envs=2",
    "test_episodes=2",
    "algo.batch_size=4",
    "algo.buffer_size=50",
    "test_interval=100",
    "log_interval=100",
]
TINY_LBF = [
    "env=lbf",
    "env.time_limit=20",
    "test_episodes=2",
    "algo.batch_size=4",
    "algo.buffer_size=50",
    "test_interval=100",
    "log_interval=100",
]


def run_cli(*args, check=True, timeout=300):
    """Run `python -m differ ...` as a user would; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "differ", *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"differ {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture
def cli():
    return run_cli
