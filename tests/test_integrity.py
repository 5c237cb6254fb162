"""A checkpoint or replay chunk that changed after it was written (a flipped bit), or that belongs
to another run or another step, is treated as damaged: resume warns and falls back to the one
before it, never loads it silently; and a run directory edited by hand is refused in one line."""

import struct
import zipfile
from pathlib import Path

import pytest
import torch

from differ.errors import CorruptCheckpoint
from differ.store import checkpoint as ckpt

from .conftest import TINY_LBF, read_jsonl, run_cli

LBF = [*TINY_LBF, "seed=3", "checkpoint_interval=300"]


def metrics(run_dir: Path) -> list[dict]:
    recs = read_jsonl(run_dir / "metrics.jsonl")
    for r in recs:
        r.pop("steps_per_s", None)
    return recs


def warnings(proc) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("differ: warning:")]


def one_error_line(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("differ: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def flip_a_weight_bit(path: Path) -> None:
    """Flip one bit inside the largest tensor stored in a checkpoint (a zip of raw storages): the
    file still loads, one weight has changed."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_checkpoint_is_detected(tmp_path):
    path = ckpt.save(tmp_path, 100, {"format": 1, "w": torch.arange(1000, dtype=torch.float32), "n": 3})
    assert ckpt.load(path)["n"] == 3
    flip_a_weight_bit(path)
    with pytest.raises(CorruptCheckpoint, match="integrity"):
        ckpt.load(path)


def test_a_checkpoint_without_a_digest_still_loads(tmp_path):
    path = ckpt.checkpoint_dir(tmp_path) / "ckpt_000000000100.pt"
    path.parent.mkdir(parents=True)
    torch.save({"format": 1, "w": torch.ones(3)}, path)  # as differ wrote them before the digest
    assert torch.equal(ckpt.load(path)["w"], torch.ones(3))


def test_a_flipped_bit_in_the_newest_checkpoint_falls_back(tmp_path):
    full = tmp_path / "full"
    run_cli("train", *LBF, "t_max=900", f"run_dir={full}")
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=600", f"run_dir={run_dir}")
    newest = ckpt.latest(run_dir)
    flip_a_weight_bit(newest)
    proc = run_cli("train", f"resume={run_dir}", "t_max=900")
    warned = warnings(proc)
    assert warned and str(newest) in warned[0] and "integrity" in warned[0], proc.stderr
    assert metrics(run_dir) == metrics(full)


# ---- foreign files: another run's checkpoint or chunk is never mixed in -----------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """This run (seed 3) run through to t=900, and another run (seed 4) to t=600."""
    base = tmp_path_factory.mktemp("runs")
    run_cli("train", *LBF, "t_max=900", f"run_dir={base / 'full'}")
    run_cli("train", *TINY_LBF, "seed=4", "checkpoint_interval=300", "t_max=600", f"run_dir={base / 'other'}")
    return base / "full", base / "other"


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """This run to t=600, then resumed to t=900 (its final test at 600 stays in the metrics)."""
    run_dir = tmp_path_factory.mktemp("extended") / "run"
    run_cli("train", *LBF, "t_max=600", f"run_dir={run_dir}")
    run_cli("train", f"resume={run_dir}", "t_max=900")
    return run_dir


def _falls_back_past(proc, bad: Path, run_dir: Path, full: Path) -> None:
    warned = warnings(proc)
    assert warned and str(bad) in warned[0], proc.stderr
    assert metrics(run_dir) == metrics(full)


def test_another_runs_checkpoint_renamed_into_the_directory_is_not_resumed(tmp_path, runs, extended):
    _, other = runs
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=600", f"run_dir={run_dir}")
    foreign = ckpt.checkpoint_dir(run_dir) / "ckpt_000000011000.pt"  # another seed's, named as a later step
    foreign.write_bytes(ckpt.latest(other).read_bytes())
    proc = run_cli("train", f"resume={run_dir}", "t_max=900")
    _falls_back_past(proc, foreign, run_dir, extended)  # (to this run's own newest checkpoint)


def test_another_runs_checkpoint_under_its_own_name_is_not_resumed(tmp_path, runs):
    full, other = runs
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=600", f"run_dir={run_dir}")
    newest = ckpt.latest(run_dir)
    newest.write_bytes((ckpt.checkpoint_dir(other) / newest.name).read_bytes())  # same step, another run
    proc = run_cli("train", f"resume={run_dir}", "t_max=900")
    _falls_back_past(proc, newest, run_dir, full)


def test_another_runs_replay_chunk_is_not_mixed_in(tmp_path, runs):
    full, other = runs
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=600", f"run_dir={run_dir}")
    chunk = max(ckpt.replay_dir(run_dir).glob("chunk_*.npz"))  # the one only the newest checkpoint needs
    chunk.write_bytes((ckpt.replay_dir(other) / chunk.name).read_bytes())
    proc = run_cli("train", f"resume={run_dir}", "t_max=900")
    _falls_back_past(proc, chunk, run_dir, full)


def test_a_run_from_before_run_ids_and_digests_resumes(tmp_path, extended):
    """Checkpoints and chunks as differ wrote them before (no digest, run id or meta record), in a
    directory without a run_id file, resume exactly; the run gets a run id from then on."""
    import numpy as np

    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=600", f"run_dir={run_dir}")
    for path in ckpt.list_checkpoints(run_dir):
        p = torch.load(path, weights_only=True)
        for k in ("sha256", "run_id"):
            del p[k]
        del p["buffer"]["meta_from"]
        torch.save(p, path)
    for path in ckpt.replay_dir(run_dir).glob("chunk_*.npz"):
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files if k != "meta"}
        np.savez(path, **arrays)
    (run_dir / "run_id").unlink()
    proc = run_cli("train", f"resume={run_dir}", "t_max=900")
    assert not warnings(proc)
    assert metrics(run_dir) == metrics(extended)
    assert ckpt.load(ckpt.latest(run_dir))["run_id"] == (run_dir / "run_id").read_text()


# ---- a run directory edited by hand -------------------------------------------------------------------
def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file under a run directory but the lock (tests/test_reliability.py checks that one)."""
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.parametrize(
    "line, edited, key",
    [
        ("seed: 3", "seed: 4", "seed"),
        ("per_alpha: 0.8", "per_alpha: 0.5", "algo.differ.per_alpha"),
        ("num_envs: 1", "num_envs: 2", "env.num_envs"),
    ],
)
def test_a_config_yaml_edited_by_hand_is_refused_on_resume(tmp_path, line, edited, key):
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "algo=qmix_differ", "t_max=300", f"run_dir={run_dir}")
    config = run_dir / "config.yaml"
    assert config.read_text().count(line) == 1, config.read_text()
    config.write_text(config.read_text().replace(line, edited))
    before = snapshot(run_dir)
    proc = run_cli("train", f"resume={run_dir}", "t_max=600", check=False)
    assert proc.returncode == 2 and key in one_error_line(proc) and "config.yaml" in one_error_line(proc)
    assert snapshot(run_dir) == before


def test_a_t_max_below_the_runs_step_is_refused_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=600", f"run_dir={run_dir}")
    before = snapshot(run_dir)
    proc = run_cli("train", f"resume={run_dir}", "t_max=500", check=False)
    assert proc.returncode == 2 and "t_max=500" in one_error_line(proc) and "600" in one_error_line(proc)
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_lost_metrics_rows_are_refused_on_resume(tmp_path, how):
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=600", f"run_dir={run_dir}")
    metrics_file = run_dir / "metrics.jsonl"
    if how == "deleted":
        metrics_file.unlink()
    else:
        lines = metrics_file.read_text().splitlines(keepends=True)
        metrics_file.write_text("".join(lines[: len(lines) // 2]))
    before = snapshot(run_dir)
    proc = run_cli("train", f"resume={run_dir}", "t_max=900", check=False)
    assert proc.returncode == 2 and str(metrics_file) in one_error_line(proc)
    assert snapshot(run_dir) == before


def test_a_resume_under_other_package_versions_warns(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=300", f"run_dir={run_dir}")
    path = ckpt.latest(run_dir)
    payload = ckpt.load(path)
    assert payload["packages"]["torch"] == torch.__version__ and "lbforaging" in payload["packages"]
    payload["packages"]["torch"] = "0.0.1"  # as if written under another torch
    ckpt.save(run_dir, ckpt.t_env_of(path), payload)
    proc = run_cli("train", f"resume={run_dir}", "t_max=600")
    warned = warnings(proc)
    assert len(warned) == 1 and "torch 0.0.1" in warned[0] and torch.__version__ in warned[0], proc.stderr


# ---- values past the range check --------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.8, 1000.0])
def test_fair_replay_draws_at_any_per_alpha(alpha):
    from differ.replay.fair import fair_weights

    td = torch.tensor([[1e-9, 1e-3, 0.5, 2.0, 300.0, 7.0]], dtype=torch.float32)
    valid = torch.tensor([[True, True, True, True, True, False]])
    weights, counts = fair_weights(td, valid, 1.0, 0.6, alpha, 1e-6, torch.Generator().manual_seed(0))
    assert torch.isfinite(weights).all() and counts.sum() == 5 and counts[0, 5] == 0
    if alpha > 100:  # the largest |δ| takes every draw
        assert counts[0, 4] == 5


def test_a_large_per_alpha_trains(tmp_path):
    run_cli("train", *LBF, "algo=qmix_differ", "algo.differ.per_alpha=1000", "t_max=300", f"run_dir={tmp_path / 'r'}")
