"""The run directory's files (differ/store/rundir.py RunDir) and the loop's counters (differ/run/counters.py)."""

import json

from differ.run.counters import Counters
from differ.store.rundir import RunDir


def test_finished_means_a_readable_result_that_reached_t_max_without_a_stop(tmp_path):
    run = RunDir(tmp_path)
    assert not run.finished(100) and run.result() == {}
    run.result_file.write_text("{not json")
    assert not run.finished(100) and run.result() == {}
    run.result_file.write_text("[1, 2]")
    assert not run.finished(100) and run.result() == {}
    run.result_file.write_text(json.dumps({"t_env": 120, "stopped_early": True}))
    assert not run.finished(100)
    run.result_file.write_text(json.dumps({"t_env": 90, "stopped_early": False}))
    assert not run.finished(100)
    run.result_file.write_text(json.dumps({"t_env": 120, "stopped_early": False}))
    assert run.finished(100) and not run.finished(121)


def test_every_file_lives_in_the_run_directory(tmp_path):
    run = RunDir(tmp_path)
    names = {
        p.name
        for p in (
            run.config,
            run.metrics,
            run.evals,
            run.result_file,
            run.wandb_id,
            run.tensorboard,
            run.wandb,
            run.train_log,
            run.worker_pid,
        )
    }
    assert names == {
        "config.yaml",
        "metrics.jsonl",
        "eval.jsonl",
        "result.json",
        "wandb_id",
        "tb",
        "wandb",
        "train.log",
        "worker.pid",
    }
    assert {p.parent for p in (run.config, run.metrics, run.train_log)} == {tmp_path}


def test_counters_schedules_and_restoring_an_older_checkpoints_counters():
    c = Counters(t_env=1000, last_test_t=-500)
    assert c.due(0, 1000) and not c.due(1, 1000) and not c.due(0, 0)  # an interval of 0: never
    assert c.due(c.last_test_t, 1500)
    saved = {"t_env": 2000, "episode": 40, "unknown_from_a_newer_differ": 1}  # no fair_* counters yet
    restored = Counters(t_env=5, fair_uniform_logs=2, last_test_t=-500).restored(saved)
    assert (restored.t_env, restored.episode, restored.fair_uniform_logs, restored.last_test_t) == (2000, 40, 2, -500)
