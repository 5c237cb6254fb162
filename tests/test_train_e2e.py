"""End-to-end `differ train` / `differ evaluate` per environment family, on the real packages."""

import csv
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from differ.store import checkpoint as ckpt

from .conftest import TINY_LBF, TINY_SMAX, read_jsonl, run_cli

PYMARL_KEYS = {
    "return_mean",
    "ep_length_mean",
    "epsilon",
    "loss_td",
    "grad_norm",
    "td_error_abs",
    "q_taken_mean",
    "target_mean",
}


def check_run(run_dir, battles: bool):
    recs = read_jsonl(run_dir / "metrics.jsonl")
    train = [r for r in recs if "loss_td" in r]
    test = [r for r in recs if "test_return_mean" in r]
    assert train and test
    assert PYMARL_KEYS <= set(train[-1]) and {"test_return_mean", "test_ep_length_mean"} <= set(test[-1])
    assert ("battle_won_mean" in train[-1]) == battles and ("test_battle_won_mean" in test[-1]) == battles
    ts = [r["t_env"] for r in recs]
    assert ts == sorted(ts)
    assert (run_dir / "config.yaml").exists() and list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert ckpt.list_checkpoints(run_dir)
    # eval.jsonl: every test's episodes, whose means are the test record's
    evals = read_jsonl(run_dir / "eval.jsonl")
    assert [e["t_env"] for e in evals] == [r["t_env"] for r in test]
    episodes = int(OmegaConf.load(run_dir / "config.yaml").test_episodes)
    for e, r in zip(evals, test):
        assert len(e["return"]) == len(e["ep_length"]) == episodes
        assert np.mean(e["return"]) == pytest.approx(r["test_return_mean"], rel=1e-6)
        assert ("battle_won" in e) == battles
    return recs


def test_smax_train_and_evaluate(tmp_path):
    run_dir = tmp_path / "smax"
    out = run_cli("train", "algo=qmix_differ", *TINY_SMAX, "t_max=300", f"run_dir={run_dir}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["t_env"] >= 300
    assert result["machine"]["cpu"] and result["machine"]["torch"].startswith("2.")
    check_run(run_dir, battles=True)
    train = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "loss_agents" in r]
    assert train and {"selected_ratio", "beta", "td_ind_std_norm", "sample_share/marine"} <= set(train[-1])
    dump = tmp_path / "ir.csv"
    ev = json.loads(
        run_cli("evaluate", str(run_dir), "episodes=4", f"dump_individual_rewards={dump}")
        .stdout.strip()
        .splitlines()[-1]
    )
    assert ev["episodes"] == 4 and 0 <= ev["battle_won_mean"] <= 1 and ev["ep_length_mean"] > 0
    assert ev["t_env"] == result["t_env"]
    lo, hi = ev["return_ci95"]
    assert ev["return_std"] >= 0 and lo <= ev["return_mean"] <= hi
    lo, hi = ev["battle_won_ci95"]
    assert 0 <= lo <= ev["battle_won_mean"] <= hi <= 1 and hi - lo > 0.1  # 4 episodes: a wide interval
    rows = list(csv.DictReader(dump.open()))
    assert len(rows) == ev["individual_rewards_rows"] == round(4 * ev["ep_length_mean"]) * 3
    assert {r["unit_type"] for r in rows} == {"marine"} and {r["alive"] for r in rows} <= {"0", "1"}
    assert all(float(r["g_i"]) >= 0 for r in rows)  # QMIX is monotonic


@pytest.mark.parametrize(
    "family, scenario", [("lbf", "Foraging-8x8-2p-3f-v3"), ("rware", "rware-tiny-2ag-v2"), ("mpe", "simple_spread")]
)
def test_gym_family_train(tmp_path, family, scenario):
    run_dir = tmp_path / family
    args = [a for a in TINY_LBF if not a.startswith("env")]
    run_cli(
        "train",
        f"env={family}",
        f"env.scenario={scenario}",
        "env.time_limit=20",
        "env.num_envs=2",
        *args,
        "t_max=200",
        f"run_dir={run_dir}",
    )
    check_run(run_dir, battles=False)


def test_existing_run_dir_is_not_overwritten(tmp_path):
    run_dir = tmp_path / "lbf"
    run_cli("train", *TINY_LBF, "t_max=100", f"run_dir={run_dir}")
    before = (run_dir / "metrics.jsonl").read_text()
    proc = run_cli("train", *TINY_LBF, "t_max=100", f"run_dir={run_dir}", check=False)
    assert proc.returncode == 2 and f"resume={run_dir}" in proc.stderr
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_without_a_terminal_a_run_prints_one_line_per_log_interval(tmp_path):
    """Under nohup, SLURM or a sweep's train.log stderr is no terminal: the run announces its
    directory, then one plain line per log record (no bar); progress=false silences both."""
    run_dir = tmp_path / "run"
    err = run_cli("train", *TINY_LBF, "t_max=400", "seed=2", f"run_dir={run_dir}").stderr
    lines = [ln for ln in err.splitlines() if ln.startswith("differ: ")]
    assert lines[0] == f"differ: training qmix on lbf Foraging-8x8-2p-3f-v3, seed 2, t_max 400, from t_env 0: {run_dir}"
    records = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "return_mean" in r]
    progress = lines[1:]
    assert len(progress) == len(records) >= 3 and "\r" not in err
    for rec, ln in zip(records, progress):
        assert ln.startswith(f"differ: t_env {rec['t_env']:,}/400 (") and f"return {rec['return_mean']:.3f}" in ln
        assert "steps/s" in ln and "test return" in ln
    assert "ETA" in progress[0] and "ETA" not in progress[-1]
    quiet = run_cli("train", *TINY_LBF, "t_max=200", "progress=false", f"run_dir={tmp_path / 'q'}").stderr
    assert not [ln for ln in quiet.splitlines() if ln.startswith("differ: ")]


def test_a_run_that_never_trains_warns_at_start_and_says_so_in_its_result(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("train", *TINY_LBF, "algo.batch_size=50", "t_max=100", f"run_dir={run_dir}")
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("differ: warning:")]
    assert len(warnings) == 2 and "may never train" in warnings[0] and "algo.batch_size=50" in warnings[0]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["train_steps"] == 0 and "no training step was taken" in result["warning"]
    ok = json.loads(run_cli("train", *TINY_LBF, "t_max=200", f"run_dir={tmp_path / 'ok'}").stdout)
    assert ok["train_steps"] > 0 and "warning" not in ok


def test_export_marl_eval(tmp_path):
    """The per-episode test results of two seeds in marl-eval's raw-data layout, and their absolute metrics."""
    for seed in (1, 2):
        run_cli("train", *TINY_LBF, "t_max=300", f"seed={seed}", f"run_dir={tmp_path / 'sw' / f'qmix-s{seed}'}")
    out = tmp_path / "me.json"
    run_cli("export", "marl-eval", str(tmp_path / "sw"), f"out={out}")
    data = json.loads(out.read_text())
    runs = data["lbf"]["Foraging-8x8-2p-3f-v3"]["qmix"]
    assert set(runs) == {"run_0", "run_1"}
    evals = read_jsonl(tmp_path / "sw" / "qmix-s2" / "eval.jsonl")
    steps = runs["run_1"]
    assert list(steps) == [*(f"step_{k}" for k in range(len(evals))), "absolute_metrics"]
    assert [s["step_count"] for k, s in steps.items() if k != "absolute_metrics"] == [e["t_env"] for e in evals]
    assert steps["step_0"]["episode_return"] == evals[0]["return"] and len(steps["step_0"]["episode_length"]) == 2
    # beside the steps, the best checkpoint on 10x the test episodes (test_episodes=2), same metrics
    for run in runs.values():
        assert {k: len(v) for k, v in run["absolute_metrics"].items()} == {"episode_return": 20, "episode_length": 20}
    bad = run_cli("export", "csv", str(tmp_path / "sw"), check=False)
    assert bad.returncode == 2 and "marl-eval" in bad.stderr
    bad = run_cli("export", "marl-eval", str(tmp_path / "sw"), "absolute=maybe", check=False)
    assert bad.returncode == 2 and "absolute must be true or false" in bad.stderr


def test_absolute_metrics_take_the_best_checkpoint_and_are_cached(tmp_path, monkeypatch, capsys):
    """The checkpoint scored by the best test (the test nearest its step) on 10x test_episodes,
    the episodes `differ evaluate CHECKPOINT` plays; a second export reads the cache, a run whose
    best checkpoint changed is evaluated again, a run without checkpoints is left out with a note."""
    import shutil

    import differ
    from differ.experiments import absolute
    from differ.experiments.commands import run_command

    run = tmp_path / "sw" / "qmix-s1"
    run_cli("train", *TINY_LBF, "t_max=400", "checkpoint_interval=100", f"run_dir={run}")
    qmix_runs = lambda path: json.loads(path.read_text())["lbf"]["Foraging-8x8-2p-3f-v3"]["qmix"]  # noqa: E731
    # tests come a batch after the checkpoints: the one at 220 scores the checkpoint at 200
    assert [ckpt.t_env_of(p) for p in ckpt.list_checkpoints(run)] == [100, 200, 300, 400]
    records = read_jsonl(run / "metrics.jsonl")
    assert [r["t_env"] for r in records if "test_return_mean" in r] == [20, 120, 220, 320, 400]

    def score(t_env, value):
        for r in records:
            if r["t_env"] == t_env and "test_return_mean" in r:
                r["test_return_mean"] = value
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    score(220, 5.0)
    out = tmp_path / "me.json"
    run_command("export", ["marl-eval", str(run.parent), f"out={out}"])
    best = qmix_runs(out)["run_0"]["absolute_metrics"]
    cache = json.loads((run / "absolute_metrics.json").read_text())
    assert cache["checkpoint"] == "ckpt_000000000200.pt" and cache["t_env"] == 200 and cache["episodes"] == 20
    assert cache["chosen_by"] == {"test_return_mean": 5.0, "test_t_env": 220} and cache["metrics"] == best
    assert len(best["episode_return"]) == 20
    again = differ.evaluate(run / "checkpoints" / "ckpt_000000000200.pt", episodes=20)
    assert again["return_mean"] == pytest.approx(np.mean(best["episode_return"]))
    assert again["ep_length_mean"] == pytest.approx(np.mean(best["episode_length"]))

    # a second export: from the cache, no evaluation
    def no_evaluation(*args):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(absolute, "_evaluate", no_evaluation)
    mtime = (run / "absolute_metrics.json").stat().st_mtime_ns
    run_command("export", ["marl-eval", str(run.parent), f"out={tmp_path / 'again.json'}"])
    assert (tmp_path / "again.json").read_text() == out.read_text()
    assert (run / "absolute_metrics.json").stat().st_mtime_ns == mtime
    run_command("export", ["marl-eval", str(run.parent), f"out={tmp_path / 'no.json'}", "absolute=false"])
    assert "absolute_metrics" not in qmix_runs(tmp_path / "no.json")["run_0"]

    # the run's best checkpoint changed: evaluated afresh; a run without checkpoints: a note
    evaluated = []
    monkeypatch.setattr(absolute, "_evaluate", lambda run_dir, path, n: evaluated.append(path.name) or {"x": [1.0]})
    score(320, 9.0)
    shutil.copytree(run, tmp_path / "sw" / "qmix-s2", ignore=shutil.ignore_patterns("checkpoints", "absolute_*"))
    capsys.readouterr()
    run_command("export", ["marl-eval", str(run.parent), f"out={out}"])
    runs = qmix_runs(out)
    assert evaluated == ["ckpt_000000000300.pt"] and runs["run_0"]["absolute_metrics"] == {"x": [1.0]}
    assert "absolute_metrics" not in runs["run_1"]
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "no absolute_metrics" in notes[0] and "qmix-s2" in notes[0]


def test_wandb_offline_writes_its_run_files_and_a_resume_continues_the_same_run(tmp_path):
    """wandb=true (offline by default) changes no number; a resumed run logs to the same W&B id."""
    on, off = tmp_path / "on", tmp_path / "off"
    run_cli("train", *TINY_LBF, "t_max=200", "wandb=true", f"run_dir={on}")
    run_cli("train", *TINY_LBF, "t_max=200", f"run_dir={off}")
    strip = lambda recs: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in recs]  # noqa: E731
    assert strip(read_jsonl(on / "metrics.jsonl")) == strip(read_jsonl(off / "metrics.jsonl"))
    run_id = (on / "wandb_id").read_text().strip()
    runs = sorted((on / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith(run_id) and list(runs[0].glob("*.wandb"))
    run_cli("train", f"resume={on}", "t_max=300")
    assert (on / "wandb_id").read_text().strip() == run_id
    assert all(r.name.endswith(run_id) for r in (on / "wandb").glob("offline-run-*"))
    assert not (off / "wandb").exists() and not (off / "wandb_id").exists()


def test_spread_of_evaluation_episodes():
    from scipy.stats import t

    from differ.commands.evaluate import spread

    s = spread({"return": [1.0, 2.0, 3.0], "battle_won": [True, True, True, False]})
    half = t.ppf(0.975, 2) * 1.0 / 3**0.5  # sd 1, n 3: Student t, not 1.96
    assert s["return_std"] == pytest.approx(1.0) and s["return_ci95"] == pytest.approx([2 - half, 2 + half])
    assert s["battle_won_ci95"] == pytest.approx([0.3006, 0.9544], abs=1e-4)  # Wilson, 3 of 4
    assert spread({"return": [5.0]}) == {"return_std": None, "return_ci95": None}
