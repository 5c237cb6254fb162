"""An env's own faults (tests/pz_envs.py's `Faulty`, a real PettingZoo env) stop `differ train`
with exit status 2 and one line naming the env, the agent, the episode's step and seed and the
field: never "training diverged", never a traceback (unless --debug asks for it)."""

import json
import os
import re
import subprocess
import sys

import pytest

from differ.acting.schedules import TEST, TRAIN, episode_seeds

from .test_pettingzoo import ROOT

ENV = "env=pettingzoo tests.pz_envs:Faulty"
TINY = [
    "env=pettingzoo",
    "env.scenario=tests.pz_envs:Faulty",
    "seed=1",
    "test_episodes=2",
    "algo.batch_size=4",
    "algo.buffer_size=50",
    "test_interval=120",
    "log_interval=120",
    "checkpoint_interval=120",
    "torch_threads=1",
]
FIRST = episode_seeds(1, TRAIN, 0, 1)[0]  # the first training episode's seed
NOT_TRAINING = "check the environment; training did not diverge"
THEIRS = "the environment's code failed, not differ's (--debug shows its traceback)"


def differ_cli(*args, faults=True):
    """`python -m differ ...` from the repository root; faults=False switches Faulty's off."""
    env = dict(
        os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    if not faults:
        env["PZ_FAULTS"] = "off"
    return subprocess.run(
        [sys.executable, "-m", "differ", *args], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )


def error_line(p) -> str:
    """The one error line of a run that stopped with exit status 2 and no traceback."""
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "diverged" not in p.stderr.replace(NOT_TRAINING, ""), p.stderr[-3000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("differ: error:")]
    assert len(errors) == 1 and errors[0] == p.stderr.strip().splitlines()[-1], p.stderr[-3000:]
    return errors[0].removeprefix("differ: error: ")


@pytest.mark.parametrize(
    "fault,line",
    [
        (
            "nan_reward",
            f"returned a non-finite reward (nan) for agent 'carrier_0' at step 3 of an episode (seed {FIRST})",
        ),
        (
            "nan_obs",
            f"returned a non-finite observation (nan at feature 2) for agent 'carrier_0' at step 3 of an episode "
            f"(seed {FIRST})",
        ),
        ("inf_state", f"returned a non-finite state (inf at entry 4) at step 3 of an episode (seed {FIRST})"),
        ("raise", f"raised ValueError in step (episode seed {FIRST}, step 3): carrier_0 cannot take action"),
        # the env steps first in the first training episode; the test episodes after it reset it again
        (
            "raise_reset",
            "raised ValueError in reset (episode seed {0}): no map for seed {0}; ".format(
                episode_seeds(1, TEST, 0, 1)[0]
            ),
        ),
    ],
)
def test_a_fault_of_the_env_is_one_line_naming_it(tmp_path, fault, line):
    p = differ_cli("train", *TINY, f"env.options.fault={fault}", "t_max=200", f"run_dir={tmp_path / 'r'}")
    got = error_line(p)
    assert got.startswith(f"{ENV} {line}"), got
    assert got.endswith(THEIRS if fault.startswith("raise") else f": {NOT_TRAINING}"), got


def test_the_run_resumes_from_before_the_fault(tmp_path):
    """The fault comes while a batch is collected, after the checkpoint at t_env=120: nothing of
    the bad batch is stored, and the run resumes from that checkpoint once the env is fixed."""
    run = tmp_path / "r"
    # Faulty's 11th training episode (its steps 169-180, after 2 tests of 2 episodes) is the first bad one
    p = differ_cli("train", *TINY, "env.options.after=170", "t_max=240", f"run_dir={run}")
    assert " at step 3 of an episode (seed " in error_line(p)
    assert [c.name for c in sorted((run / "checkpoints").glob("*.pt"))] == ["ckpt_000000000120.pt"]
    done = differ_cli("train", f"resume={run}", faults=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["t_env"] >= 240


def test_debug_shows_the_env_s_own_traceback(tmp_path):
    p = differ_cli("train", *TINY, "env.options.fault=raise", "t_max=200", f"run_dir={tmp_path / 'r'}", "--debug")
    assert p.returncode == 1 and "Traceback" in p.stderr
    assert "ValueError: carrier_0 cannot take action" in p.stderr and "tests/pz_envs.py" in p.stderr
    assert f"differ.errors.EnvFault: {ENV} raised ValueError in step" in p.stderr


def test_a_fault_in_a_worker_process_is_the_same_line(tmp_path):
    """Two copies in worker processes: the fault crosses gymnasium's pipe with its seed, and
    gymnasium's own report of it stays quiet."""
    args = ["env.num_envs=2", "env.options.fault=raise", "t_max=200", f"run_dir={tmp_path / 'r'}"]
    got = error_line(differ_cli("train", *TINY, *args))
    seeds = "|".join(map(str, episode_seeds(1, TRAIN, 0, 2)))
    assert re.fullmatch(
        rf"{re.escape(ENV)} raised ValueError in step \(episode seed ({seeds}), step 3\): carrier_0 cannot take "
        rf"action \d now; {re.escape(THEIRS)}",
        got,
    ), got
