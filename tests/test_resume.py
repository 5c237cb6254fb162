"""Checkpoints and exact resume: a run killed with SIGKILL and resumed logs exactly what the
uninterrupted run logs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from differ.store import checkpoint as ckpt

from .conftest import TINY_LBF, TINY_SMAX, read_jsonl, run_cli


def kill_after_first_checkpoint(args, run_dir, timeout=240):
    proc = subprocess.Popen(
        [sys.executable, "-m", "differ", "train", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + timeout
    while not ckpt.list_checkpoints(run_dir):
        assert proc.poll() is None, f"run ended before its first checkpoint:\n{proc.stderr.read()[-2000:]}"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def metrics_pair(run_a, run_b) -> tuple[list[dict], list[dict]]:
    """Two runs' metrics.jsonl records, without the wall-clock speed (the one thing that may differ)."""
    a, b = read_jsonl(Path(run_a) / "metrics.jsonl"), read_jsonl(Path(run_b) / "metrics.jsonl")
    for rec in a + b:
        rec.pop("steps_per_s", None)
    return a, b


def uninterrupted_and_resumed(args, tmp_path, cli=run_cli) -> tuple[Path, Path]:
    """`differ train ARGS` run through, and the same run SIGKILLed after its first checkpoint and
    resumed; returns both run directories."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    cli("train", *args, f"run_dir={full}")
    kill_after_first_checkpoint([*args, f"run_dir={killed}"], killed)
    cli("train", f"resume={killed}")
    return full, killed


@pytest.mark.parametrize(
    "tiny, t_max",
    [(TINY_LBF, 3000), (TINY_SMAX, 1500), (["algo=qmix_differ", *TINY_LBF], 1500)],
    ids=["lbf", "smax", "lbf-qmix_differ"],
)
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, tiny, t_max):
    common = [*tiny, f"t_max={t_max}", "checkpoint_interval=300", "seed=3"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_cli("train", *common, f"run_dir={full}")
    kill_after_first_checkpoint([*common, f"run_dir={killed}"], killed)
    assert ckpt.latest(killed) != ckpt.latest(full)
    run_cli("train", f"resume={killed}")
    a, b = metrics_pair(full, killed)
    assert len(a) == len(b) > 4
    assert a == b  # same t_env, same losses, same test results: no gap, no duplicate
    assert read_jsonl(full / "eval.jsonl") == read_jsonl(killed / "eval.jsonl")  # and the same episodes


def test_checkpoint_round_trip_and_weights_only(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *TINY_LBF, "t_max=200", f"run_dir={run_dir}")
    path = ckpt.latest(run_dir)
    payload = ckpt.load(path)
    assert {"config", "counters", "learner", "rng", "buffer", "accumulators"} <= set(payload)
    for key in ("agent", "mixer", "target_agent", "target_mixer", "optimiser"):
        assert key in payload["learner"]
    # loads with the code-free unpickler
    torch.load(path, weights_only=True)
    # saving again what was loaded gives the same tensors
    again = ckpt.save(tmp_path / "copy", 1, payload)
    re = ckpt.load(again)
    for k, v in payload["learner"]["agent"].items():
        assert torch.equal(v, re["learner"]["agent"][k])


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *TINY_LBF, "t_max=200", f"run_dir={run_dir}")
    path = ckpt.latest(run_dir)
    path.write_bytes(path.read_bytes()[:100])
    proc = run_cli("evaluate", str(run_dir), check=False)
    assert proc.returncode == 2 and "corrupt" in proc.stderr and str(path) in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("train", f"resume={run_dir}", check=False)
    assert proc.returncode == 2 and "can be resumed" in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_stops_with_a_final_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "differ", "train", *TINY_LBF, "t_max=10000000", f"run_dir={run_dir}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (run_dir / "metrics.jsonl").exists():
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert '"stopped_early": true' in out
    assert ckpt.list_checkpoints(run_dir)


def test_a_run_directory_in_use_is_refused_and_freed_by_a_kill(tmp_path):
    """A second process training in the same run directory (say, two sweeps over one out=) stops
    at once; the lock dies with its holder, so a SIGKILLed run can be resumed."""
    import fcntl

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open(run_dir / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("4242")
        f.flush()
        for args in (["train", *TINY_LBF, "t_max=100", f"run_dir={run_dir}"], ["train", f"resume={run_dir}"]):
            if args[1].startswith("resume"):
                (run_dir / "config.yaml").write_text("seed: 1\n")
            p = run_cli(*args, check=False)
            assert p.returncode == 2 and "in use by another differ process (pid 4242)" in p.stderr, p.stderr
    assert not ckpt.list_checkpoints(run_dir) and not (run_dir / "metrics.jsonl").exists()
    # a holder killed with SIGKILL releases it: the killed run resumes
    args = [*TINY_LBF, "t_max=400", "checkpoint_interval=100", f"run_dir={run_dir}"]
    (run_dir / "config.yaml").unlink()
    kill_after_first_checkpoint(args, run_dir)
    run_cli("train", f"resume={run_dir}")


def test_a_run_saved_in_the_flat_config_layout_resumes_exactly(tmp_path):
    """differ 0.1 saved every method's settings flat in `algo` (algo.eta_start, algo.maser_lambda,
    ...). Such a run directory resumes under today's per-method sections, continues exactly as
    the uninterrupted run, and its config.yaml is rewritten in the new layout."""
    from omegaconf import OmegaConf

    from differ.config import FLAT_KEYS, SECTIONS

    full, part = tmp_path / "full", tmp_path / "part"
    args = ["algo=qmix_differ", *TINY_LBF, "seed=4", "t_max=1500", "checkpoint_interval=300"]
    run_cli("train", *args, f"run_dir={full}")
    kill_after_first_checkpoint([*args, f"run_dir={part}"], part)
    saved = OmegaConf.to_container(OmegaConf.load(part / "config.yaml"))
    algo = {k: v for k, v in saved["algo"].items() if k not in SECTIONS}
    for old, (section, key) in FLAT_KEYS.items():
        section = saved["algo"]["mixer"] if section == "@mixer" else section
        if key in saved["algo"].get(section, {}):
            algo[old] = saved["algo"][section][key]
    algo["maser_alpha"] = 0.5  # a key of a method the run does not use, as the flat layout held
    (part / "config.yaml").write_text(OmegaConf.to_yaml({**saved, "algo": algo}))
    run_cli("train", f"resume={part}")
    a, b = metrics_pair(full, part)
    assert len(a) == len(b) > 4 and a == b
    now = OmegaConf.load(part / "config.yaml").algo
    assert now.differ.eta_start == 0.8 and "eta_start" not in now and "maser" not in now
