"""Where a run's time goes: result.json's time_s split by phase of the run loop."""

import json

import pytest

from differ.run.timing import PHASES, PhaseClock

from .conftest import TINY_LBF, run_cli
from .test_resume import kill_after_first_checkpoint


def test_a_run_reports_its_time_split_and_keeps_it_across_a_resume(tmp_path):
    args = ["algo=qmix_differ", *TINY_LBF, "t_max=1500", "checkpoint_interval=300", f"run_dir={tmp_path / 'r'}"]
    kill_after_first_checkpoint(args, tmp_path / "r")
    run_cli("train", f"resume={tmp_path / 'r'}")
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    split = result["time_s"]
    assert set(split) == {*PHASES, "rest"}
    for phase in ("collect_act", "collect_env", "learn", "sample", "test", "checkpoint", "store"):
        assert split[phase]["s"] > 0, phase
        assert split[phase]["ms_per_env_step"] == pytest.approx(
            1000 * split[phase]["s"] / result["t_env"], rel=0.02, abs=1e-3
        )
    # the phases do not overlap (overlap=false): together they fit in the run's wall time, which
    # the first session's time is part of (kept in the checkpoint)
    covered = sum(v["s"] for k, v in split.items() if k != "rest")
    assert covered <= result["wall_time_s"] * 1.05 + 0.5


def test_phase_clock_split():
    clock = PhaseClock()
    clock.add("learn", 3.0)
    clock.add("collect_env", 1.0)
    with clock.phase("log"):
        pass
    split = clock.split(env_steps=2000, wall_s=5.0)
    assert split["learn"] == {"s": 3.0, "ms_per_env_step": 1.5, "share": 0.6}
    assert split["rest"]["s"] == pytest.approx(1.0, abs=0.01)
    assert PhaseClock(dict(clock.seconds)).seconds == clock.seconds
