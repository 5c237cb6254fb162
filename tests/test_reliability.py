"""Every stop resumes exactly or fails with one clear line, and no failing command changes a run
directory: graceful stops, random SIGKILLs (during writes too), damaged checkpoints and replay
chunks, leftovers of killed starts, divergence, a full disk, and two sweeps on one out=."""

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from differ.store import checkpoint as ckpt

from .conftest import TINY_LBF, TINY_SMAX, read_jsonl, run_cli


# ---- helpers ------------------------------------------------------------------------------------
def metrics(run_dir: Path) -> list[dict]:
    recs = read_jsonl(run_dir / "metrics.jsonl")
    for r in recs:
        r.pop("steps_per_s", None)  # wall-clock speed is the one thing that may differ
    return recs


def snapshot(run_dir: Path) -> dict[str, str]:
    """Every file under a run directory (but the lock) with a hash of its bytes."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "differ", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def wait_for(cond, proc: subprocess.Popen | None = None, timeout: float = 240) -> None:
    end = time.time() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early ({proc.returncode}):\n{proc.stderr.read()[-2000:]}")
        assert time.time() < end, "timed out"
        time.sleep(0.02)


def kill_after_checkpoints(args, run_dir: Path, n: int = 1) -> None:
    proc = start(*args)
    wait_for(lambda: len(ckpt.list_checkpoints(run_dir)) >= n, proc)
    proc.kill()
    proc.wait()


def one_error_line(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("differ: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


LBF = [*TINY_LBF, "seed=3"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs, each made once and compared against by several tests."""
    made: dict[tuple, Path] = {}
    base = tmp_path_factory.mktemp("reference")

    def get(*args: str) -> Path:
        if args not in made:
            made[args] = base / f"run{len(made)}"
            run_cli("train", *args, f"run_dir={made[args]}")
        return made[args]

    return get


# ---- a failing command leaves the directory as it was ---------------------------------------------
@pytest.mark.parametrize(
    "override, key",
    [
        ("algo.agent_hidden=32", "algo.agent_hidden"),
        ("algo.mixer=vdn", "algo.mixer"),
        ("env.scenario=Foraging-10x10-3p-3f", "env.scenario"),
        ("algo.learner=differ", "algo.learner"),
        ("seed=4", "seed"),
        ("env.num_envs=2", "env.num_envs"),
        ("algo.lr=-1", "algo.lr"),
        ("algo.lrr=1", "algo.lrr"),
        ("t_max=abc", "t_max"),
    ],
)
def test_a_failed_resume_changes_nothing(tmp_path, override, key):
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=200", f"run_dir={run_dir}")
    before = snapshot(run_dir)
    proc = run_cli("train", f"resume={run_dir}", override, check=False)
    assert proc.returncode == 2 and key in one_error_line(proc)
    assert snapshot(run_dir) == before
    run_cli("train", f"resume={run_dir}", "t_max=300")  # still resumable, no hand-editing


def test_a_resume_from_a_damaged_checkpoint_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=200", f"run_dir={run_dir}")
    ckpt.latest(run_dir).write_bytes(b"")
    before = snapshot(run_dir)
    proc = run_cli("train", f"resume={run_dir}", "t_max=400", check=False)
    assert proc.returncode == 2 and "can be resumed" in one_error_line(proc)
    assert "is empty" in proc.stderr
    assert snapshot(run_dir) == before


# ---- graceful stops and kills resume exactly --------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_graceful_stop_then_resume_matches_uninterrupted(tmp_path, reference, sig):
    args = [*LBF, "t_max=2000", "checkpoint_interval=300"]
    full = reference(*args)
    run_dir = tmp_path / "run"
    proc = start(*args, f"run_dir={run_dir}")
    wait_for(
        lambda: (run_dir / "metrics.jsonl").exists() and len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 5,
        proc,
    )
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and '"stopped_early": true' in out, err
    stop_ckpt = ckpt.latest(run_dir)
    run_cli("train", f"resume={run_dir}")
    assert metrics(run_dir) == metrics(full)
    # the checkpoint schedule is the uninterrupted run's, plus the one the stop wrote
    names = {p.name for p in ckpt.list_checkpoints(run_dir)}
    assert (
        {p.name for p in ckpt.list_checkpoints(full)}
        <= names
        <= {p.name for p in ckpt.list_checkpoints(full)} | {stop_ckpt.name}
    )


def test_checkpoint_schedule_is_unchanged_by_a_resume(tmp_path, reference):
    args = [*LBF, "t_max=1500", "checkpoint_interval=300"]
    full = reference(*args)
    run_dir = tmp_path / "run"
    kill_after_checkpoints([*args, f"run_dir={run_dir}"], run_dir, 1)
    run_cli("train", f"resume={run_dir}")
    assert [p.name for p in ckpt.list_checkpoints(run_dir)] == [p.name for p in ckpt.list_checkpoints(full)]
    assert metrics(run_dir) == metrics(full)


def _random_kills(tmp_path, args, kills: int, seed: int, max_delay: float) -> Path:
    """Kill the run `kills` times after random delays (while it imports, trains, writes a
    checkpoint or a replay chunk, or before its first checkpoint), resuming after each, or
    re-running the original command where no checkpoint was written yet; then let it finish."""
    rnd = random.Random(seed)
    run_dir = tmp_path / "killed"
    original = [*args, f"run_dir={run_dir}"]
    for _ in range(kills):
        proc = start(*(original if not ckpt.list_checkpoints(run_dir) else [f"resume={run_dir}"]))
        time.sleep(rnd.uniform(0.3, max_delay))
        proc.kill()
        _, err = proc.communicate()
        assert "Traceback" not in err, err
        if rnd.random() < 0.25:  # a second kill right after restarting
            proc = start(*(original if not ckpt.list_checkpoints(run_dir) else [f"resume={run_dir}"]))
            time.sleep(rnd.uniform(0.05, 1.0))
            proc.kill()
            proc.communicate()
    if ckpt.list_checkpoints(run_dir):
        run_cli("train", f"resume={run_dir}")
    else:
        run_cli("train", *original)
    return run_dir


@pytest.mark.parametrize(
    "tiny, t_max, kills, max_delay",
    [
        pytest.param(["algo=qmix_differ", *LBF], 1500, 3, 5.0, id="lbf-short"),
        pytest.param(["algo=qmix_differ", *LBF], 3000, 15, 8.0, id="lbf-many", marks=pytest.mark.slow),
        pytest.param(
            ["algo=qmix_differ", *TINY_SMAX, "seed=3"], 1500, 12, 15.0, id="smax-many", marks=pytest.mark.slow
        ),
    ],
)
def test_random_kills_resume_exactly(tmp_path, reference, tiny, t_max, kills, max_delay):
    # checkpoints every 100 steps: many kills land in the middle of a checkpoint or chunk write
    args = [*tiny, f"t_max={t_max}", "checkpoint_interval=100"]
    full = reference(*args)
    killed = _random_kills(tmp_path, args, kills, seed=sum(map(ord, "".join(tiny))) + kills, max_delay=max_delay)
    assert metrics(killed) == metrics(full)
    assert not list(killed.rglob("*.tmp"))


# ---- a damaged newest checkpoint falls back to the one before ----------------------------------------
def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "bitflip":
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :])


@pytest.mark.parametrize(
    "target, how",
    [
        ("checkpoint", "truncated"),
        ("checkpoint", "empty"),
        ("checkpoint", "garbage"),
        ("chunk", "bitflip"),
        ("chunk", "truncated"),
        ("chunk", "empty"),
    ],
)
def test_damaged_newest_checkpoint_falls_back_after_the_buffer_wrapped(tmp_path, reference, target, how):
    # a 10-episode buffer has wrapped long before the 3rd checkpoint: the chunks of older
    # checkpoints are gone, but the ones the previous checkpoint needs are kept
    args = [*LBF, "algo=qmix_differ", "algo.buffer_size=10", "t_max=2000", "checkpoint_interval=300"]
    full = reference(*args)
    run_dir = tmp_path / "run"
    kill_after_checkpoints([*args, f"run_dir={run_dir}"], run_dir, 3)
    newest = ckpt.latest(run_dir)
    if target == "checkpoint":
        bad = newest
    else:  # the chunk only the newest checkpoint needs
        bad = max(ckpt.replay_dir(run_dir).glob("chunk_*.npz"))
    _damage(bad, how)
    proc = run_cli("train", f"resume={run_dir}", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warning = [ln for ln in proc.stderr.splitlines() if ln.startswith("differ: warning:")]
    assert warning and str(bad) in warning[0]
    assert metrics(run_dir) == metrics(full)


def test_a_damaged_only_checkpoint_is_one_clear_line(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=100", f"run_dir={run_dir}")
    path = ckpt.latest(run_dir)
    path.write_bytes(b"")  # zero bytes: used to crash the error handler
    for args in (["evaluate", str(run_dir)], ["evaluate", str(path)], ["train", f"resume={run_dir}"]):
        proc = run_cli(*args, check=False)
        assert proc.returncode == 2 and str(run_dir) in one_error_line(proc), proc.stderr


def test_a_new_start_drops_what_a_killed_start_left(tmp_path, reference):
    """Replay chunks, metrics and temporary files of a start killed before its first checkpoint
    (here: a seed-3 run whose checkpoints are gone) never leak into the next run there."""
    args = [*TINY_LBF, "seed=4", "t_max=1200", "checkpoint_interval=300"]
    full = reference(*args)
    run_dir = tmp_path / "run"
    run_cli("train", *TINY_LBF, "seed=3", "t_max=600", "checkpoint_interval=300", f"run_dir={run_dir}")
    for p in ckpt.list_checkpoints(run_dir):
        p.unlink()
    (run_dir / "result.json").unlink()
    (ckpt.checkpoint_dir(run_dir) / "ckpt_000000000900.pt.tmp").write_bytes(b"partial")
    assert list(ckpt.replay_dir(run_dir).glob("chunk_*.npz"))
    kill_after_checkpoints([*args, f"run_dir={run_dir}"], run_dir, 1)
    run_cli("train", f"resume={run_dir}")
    assert metrics(run_dir) == metrics(full)
    assert not list(run_dir.rglob("*.tmp"))


def test_resume_of_a_run_stopped_before_writing_anything_says_what_to_do(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_text("")
    proc = run_cli("train", f"resume={run_dir}", check=False)
    assert proc.returncode == 2 and "re-run the original" in one_error_line(proc)
    other = tmp_path / "other"  # a config.yaml, but no checkpoint yet
    run_cli("train", *LBF, "t_max=100", f"run_dir={other}")
    (run_dir / "config.yaml").write_text((other / "config.yaml").read_text())
    proc = run_cli("train", f"resume={run_dir}", check=False)
    assert proc.returncode == 2 and "re-run the original" in one_error_line(proc)


# ---- divergence ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["qmix_differ", "qmix"])
def test_divergence_is_one_line_and_never_saved(tmp_path, algo):
    run_dir = tmp_path / "run"
    proc = run_cli(
        "train",
        *LBF,
        f"algo={algo}",
        "algo.lr=1e12",
        "algo.grad_clip=1e30",
        "t_max=3000",
        "checkpoint_interval=100",
        f"run_dir={run_dir}",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert "training diverged" in line and "algo.lr=" in line
    saved = ckpt.list_checkpoints(run_dir)
    if saved:
        assert str(saved[-1]) in line  # the message names the last good checkpoint
    else:
        assert "no checkpoint was saved yet" in line
    for p in saved:  # never a non-finite weight on disk
        sd = ckpt.load(p)["learner"]
        for net in ("agent", "mixer", "target_agent", "target_mixer"):
            assert all(torch.isfinite(t).all() for t in sd[net].values())


def test_optimiser_settings_given_on_resume_are_applied(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "algo=qmix_differ", "t_max=200", f"run_dir={run_dir}")
    run_cli("train", f"resume={run_dir}", "t_max=300", "algo.lr=1e-3", "algo.optim_eps=1e-4")
    learner = ckpt.load(ckpt.latest(run_dir))["learner"]
    for opt in ("optimiser", "mixer_optimiser"):
        group = learner[opt]["param_groups"][0]
        assert group["lr"] == 1e-3 and group["eps"] == 1e-4
    assert "lr: 0.001" in (run_dir / "config.yaml").read_text()


# ---- disk full ---------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (room for about three checkpoints of a tiny LBF run), where mounting is allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_is_one_line_a_resume_on_it_changes_nothing_and_the_run_resumes_once_space_is_freed(
    small_disk, reference
):
    args = [*LBF, "t_max=1500", "checkpoint_interval=200"]
    full = reference(*args)
    run_dir = small_disk / "run"
    proc = run_cli("train", *args, f"run_dir={run_dir}", check=False)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "No space left on device" in line and f"resume={run_dir}" in line
    saved = ckpt.list_checkpoints(run_dir)
    assert saved and all(ckpt.load(p)["format"] == 1 for p in saved)  # the earlier checkpoints are intact
    # a resume while the disk is still full changes nothing (it cut metrics.jsonl back and started
    # a TensorBoard file before failing at its first checkpoint)
    before = snapshot(run_dir)
    proc = run_cli("train", f"resume={run_dir}", check=False)
    assert snapshot(run_dir) == before
    assert proc.returncode == 2 and "MiB free" in one_error_line(proc) and "nothing was changed" in proc.stderr
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    run_cli("train", f"resume={run_dir}")
    assert metrics(run_dir) == metrics(full)


# ---- sweeps --------------------------------------------------------------------------------------------------
def test_a_second_sweep_on_the_same_out_stops_at_once(tmp_path):
    out = tmp_path / "sweep"
    first = subprocess.Popen(
        [sys.executable, "-m", "differ", "sweep", *TINY_LBF, "seed=1,2", "t_max=100000", "workers=1", f"out={out}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (out / "sweep.json").exists() and any(out.glob("*/worker.pid")), first)
        pid_file = next(out.glob("*/worker.pid"))
        log = pid_file.parent / "train.log"
        pid, headers = pid_file.read_text(), log.read_text().count("# differ ")
        t0 = time.time()
        second = run_cli("sweep", *TINY_LBF, "seed=1,2", "t_max=100000", "workers=1", f"out={out}", check=False)
        assert second.returncode == 2 and "in use by another differ process" in one_error_line(second)
        assert time.time() - t0 < 30
        assert pid_file.read_text() == pid and log.read_text().count("# differ ") == headers
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)


# ---- a refused command leaves the lock file as it was; a full disk names the run directory -------------
def test_a_refused_resume_leaves_the_lock_file_untouched(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *LBF, "t_max=100", f"run_dir={run_dir}")
    lock = run_dir / ".lock"
    before = (lock.read_bytes(), lock.stat().st_mtime_ns)
    time.sleep(0.05)
    proc = run_cli("train", f"resume={run_dir}", "seed=4", check=False)
    assert proc.returncode == 2 and "seed" in one_error_line(proc)
    assert (lock.read_bytes(), lock.stat().st_mtime_ns) == before


def test_the_disk_full_line_names_the_run_directory(tmp_path):
    import errno

    from differ.errors import storage_error

    run_dir = tmp_path / "run"
    e = OSError(errno.ENOSPC, "No space left on device", str(run_dir / "checkpoints" / "ckpt_000000000300.pt.tmp"))
    line = str(storage_error(e, run_dir))
    assert line.startswith(f"cannot write to {run_dir}: No space left on device") and "ckpt_" not in line
