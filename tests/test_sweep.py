"""`differ sweep`: grid expansion, skip-finished / resume-interrupted (a worker killed mid-run), a
failing run reported without stopping the others, and the Ray and submitit backends on this machine."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from differ.config import ConfigError
from differ.experiments.sweep import expand_grid, load_preset, plan

from .conftest import TINY_LBF, read_jsonl, run_cli

TINY = [*TINY_LBF, "checkpoint_interval=100"]
SLURM_KEYS = "slurm.cluster, slurm.partition, slurm.time, slurm.cpus, slurm.mem, slurm.gpus, slurm.logs"


def test_grid_expansion_names_and_defaults():
    grid = expand_grid(
        {"algo": "qmix,qmix_differ", "env.scenario": "3m,3s5z", "seed": "1,2,3", "t_max": "1000", "algo.lr": "0.001"}
    )
    assert len(grid) == 12
    names = [n for n, _ in grid]
    assert names[0] == "qmix-3m-s1" and names[-1] == "qmix_differ-3s5z-s3" and len(set(names)) == 12
    overrides = dict(grid)["qmix_differ-3m-s2"]
    assert overrides == {
        "algo": "qmix_differ",
        "env.scenario": "3m",
        "seed": "2",
        "t_max": "1000",
        "algo.lr": "0.001",
        "torch_threads": "1",
    }
    # other swept keys join the name; a list literal is one value
    grid = expand_grid({"algo.lr": "1e-3,5e-4", "env.options.sizes": "[1,2]"})
    assert [n for n, _ in grid] == ["lr1e-3", "lr5e-4"] and grid[0][1]["env.options.sizes"] == "[1,2]"
    # argument order sets the start order, not the names
    grid = expand_grid({"seed": "1,2", "algo": "vdn,qmix"})
    assert [n for n, _ in grid] == ["vdn-s1", "qmix-s1", "vdn-s2", "qmix-s2"]


def test_preset_variants_and_validation_up_front(tmp_path):
    preset = load_preset("warmup_ablation")
    grid = expand_grid({"algo": "qmix_differ", "seed": "1,2"}, preset["variants"])
    assert len(grid) == 8
    fixed = dict(grid)["eta0.94-qmix_differ-s2"]
    assert fixed["algo.differ.eta_warmup"] == "False" and fixed["algo.differ.eta_start"] == "0.94"
    speed = dict(expand_grid({"algo": "qmix", "seed": "1"}, load_preset("speed_check")["variants"]))
    assert set(speed) == {"default-qmix-s1", "fused_bf16-qmix-s1"}
    assert speed["fused_bf16-qmix-s1"]["algo.fused_gru"] == "True"
    assert speed["fused_bf16-qmix-s1"]["algo.agent_precision"] == "bfloat16"
    with pytest.raises(ConfigError, match="unknown sweep preset 'nope'"):
        load_preset("nope")
    with pytest.raises(ConfigError, match="run qmix-3m-s1: unknown config key 'algo.lrr'"):
        plan({"algo": "qmix", "env.scenario": "3m", "seed": "1", "algo.lrr": "1", "out": str(tmp_path)})
    with pytest.raises(ConfigError, match="out="):
        plan({"seed": "1,2"})
    p = run_cli("sweep", "env.scenario=3m,nope", f"out={tmp_path}", check=False)
    assert p.returncode == 2 and "unknown" in p.stderr and "nope" in p.stderr


def _wait_for(cond, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_sweep_survives_a_killed_worker_and_a_failing_run_then_resumes(tmp_path):
    out = tmp_path / "sw"
    # lr=1e30 makes the loss non-finite within two training steps: a run that fails at run time
    args = ["sweep", *TINY, "seed=1,2", "algo.lr=0.0005,1e30", "t_max=800", f"out={out}", "workers=2"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "differ", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    victim = out / "lbf-s1-lr0.0005"
    # kill the worker of the first run once it has written a checkpoint (it is mid-run then)
    assert _wait_for(lambda: (victim / "worker.pid").exists() and any((victim / "checkpoints").glob("ckpt_*.pt")))
    os.kill(int((victim / "worker.pid").read_text()), signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr  # failures make the sweep's exit status 1, after every run
    state = {r["name"]: r for r in json.loads((out / "sweep.json").read_text())["runs"]}
    assert state["lbf-s1-lr0.0005"]["status"] == "failed" and "exit -9" in state["lbf-s1-lr0.0005"]["error"]
    assert state["lbf-s2-lr0.0005"]["status"] == "finished"
    for name in ("lbf-s1-lr1e30", "lbf-s2-lr1e30"):
        assert state[name]["status"] == "failed" and "training diverged" in state[name]["error"]
    assert "| lbf-s2-lr0.0005 | finished | " in stdout and "| lbf-s1-lr0.0005 | failed |" in stdout
    assert (out / "sweep_summary.md").exists()
    # a finished run's replay chunks are deleted (keep_replay=false), its model checkpoints kept;
    # the killed run keeps its replay, which its resume needs
    assert not (out / "lbf-s2-lr0.0005" / "checkpoints" / "replay").exists()
    assert any((out / "lbf-s2-lr0.0005" / "checkpoints").glob("ckpt_*.pt"))
    assert any((victim / "checkpoints" / "replay").glob("chunk_*.npz"))

    # the same command again: the finished run is skipped, the killed one resumed from its checkpoint
    finished_before = (out / "lbf-s2-lr0.0005" / "metrics.jsonl").read_text()
    p = run_cli(*args, check=False)
    assert p.returncode == 1  # the diverging runs fail again
    assert "1 finished already" in p.stderr
    state = {r["name"]: r for r in json.loads((out / "sweep.json").read_text())["runs"]}
    assert state["lbf-s1-lr0.0005"]["status"] == "finished" and state["lbf-s2-lr0.0005"]["status"] == "skipped"
    assert "resume=" in (victim / "train.log").read_text()
    assert (out / "lbf-s2-lr0.0005" / "metrics.jsonl").read_text() == finished_before
    result = json.loads((victim / "result.json").read_text())
    assert result["t_env"] >= 800 and not result["stopped_early"]
    t = [r["t_env"] for r in read_jsonl(victim / "metrics.jsonl")]
    assert t == sorted(t)  # the resumed run continued its log, no repeated or missing segment
    # continuing a finished run whose replay the sweep deleted is refused, naming the fix
    p = run_cli("train", f"resume={out / 'lbf-s2-lr0.0005'}", "t_max=1600", check=False)
    assert p.returncode != 0 and "keep_replay=true" in p.stderr and "replay" in p.stderr

    # analyses read a sweep's run directories: Fig. 10 from a run directory (evaluate + dump)
    p = run_cli("analyze", "fig10", str(victim), "episodes=2")
    assert (victim / "individual_rewards.csv").exists()
    assert (victim / "figures" / "fig10_individual_rewards_ep0.png").stat().st_size > 10_000


def test_ray_backend_on_a_local_ray(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'differ-marl[ray]'); CI installs it")
    out = tmp_path / "ray"
    p = run_cli(
        "sweep",
        *TINY,
        "algo=qmix,vdn",
        "t_max=200",
        f"out={out}",
        "backend=ray",
        "workers=2",
        "keep_replay=true",
        timeout=600,
    )
    state = {r["name"]: r for r in json.loads((out / "sweep.json").read_text())["runs"]}
    assert {n: s["status"] for n, s in state.items()} == {"qmix-lbf": "finished", "vdn-lbf": "finished"}, p.stderr
    for name in state:
        assert json.loads((out / name / "result.json").read_text())["t_env"] >= 200
        assert any((out / name / "checkpoints" / "replay").glob("chunk_*.npz"))  # keep_replay=true


def test_a_run_saved_before_a_config_key_existed_is_the_same_run(tmp_path):
    """A newer differ adds config keys; a sweep re-run over older run directories still finds
    its runs (the saved config is read on top of today's schema) instead of refusing them."""
    from omegaconf import OmegaConf

    from differ.config import build_config

    args = {"algo": "qmix", "env": "lbf", "seed": "1", "t_max": "1000"}
    ((name, overrides),) = expand_grid(args)
    run_dir = tmp_path / name
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt_000000000500.pt").write_bytes(b"")
    saved = OmegaConf.to_container(build_config(overrides))
    del saved["algo"]["qmix"]["hypernet_hidden"]  # as written before the key existed
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    _, runs = plan({**args, "out": str(tmp_path)})
    assert runs[0].action == "resume" and runs[0].t_env == 500


@pytest.mark.parametrize("algo", ["qmix", "qmix_differ", "maser"])
def test_a_run_saved_in_the_flat_layout_is_the_same_run(tmp_path, algo):
    """differ 0.1 kept every method's settings in one flat `algo` mapping; a sweep over such run
    directories reads them in today's per-method sections and finds its runs."""
    from omegaconf import OmegaConf

    from differ.config import FLAT_KEYS, SECTIONS, build_config

    args = {"algo": algo, "env": "lbf", "seed": "1", "t_max": "1000"}
    ((name, overrides),) = expand_grid(args)
    run_dir = tmp_path / name
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt_000000000500.pt").write_bytes(b"")
    saved = OmegaConf.to_container(build_config(overrides))
    defaults = {n: OmegaConf.to_container(OmegaConf.structured(c)) for n, c in SECTIONS.items()}
    flat = {k: v for k, v in saved["algo"].items() if k not in SECTIONS}
    for old, (section, key) in FLAT_KEYS.items():  # the old layout held every key, used or not
        section = "qmix" if section == "@mixer" else section
        flat[old] = saved["algo"].get(section, defaults[section]).get(key)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml({**saved, "algo": flat}))
    _, runs = plan({**args, "out": str(tmp_path)})
    assert runs[0].action == "resume" and runs[0].t_env == 500
    # a changed setting inside a section is still told apart
    flat["qplex_kernels" if algo == "maser" else "mixing_embed_dim"] = 7
    if algo != "maser":
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml({**saved, "algo": flat}))
        with pytest.raises(ConfigError, match="different config"):
            plan({**args, "out": str(tmp_path)})


def test_a_sweep_re_run_may_change_what_a_resume_may_change_and_nothing_else(tmp_path):
    """One table (config.KEY_ROLES) says which keys a run may change while it lasts: `differ train
    resume=` takes them, so a sweep re-run takes them too (passing them on to the resumed run),
    while an optimiser setting is another experiment and is refused."""
    from omegaconf import OmegaConf

    from differ.config import build_config

    args = {"algo": "qmix", "env": "lbf", "seed": "1", "t_max": "1000"}
    ((name, overrides),) = expand_grid(args)
    run_dir = tmp_path / name
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt_000000000500.pt").write_bytes(b"")
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.to_container(build_config(overrides))))
    changed = {"torch_threads": "2", "device": "auto", "test_interval": "250", "log_interval": "50"}
    _, runs = plan({**args, **changed, "out": str(tmp_path)})
    assert runs[0].action == "resume"
    command = runs[0].command()
    assert command[:2] == ["train", f"resume={run_dir}"] and command[-1] == "t_max=1000"
    assert {f"{k}={v}" for k, v in changed.items()} <= set(command)
    build_config(dict(a.split("=", 1) for a in command[2:]), base=OmegaConf.load(run_dir / "config.yaml"))
    # a key the first sweep set and the re-run leaves out goes back to its value in the new grid
    first = build_config({**overrides, "test_interval": "250", "wandb_entity": "me"})
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.to_container(first)))
    _, runs = plan({**args, "out": str(tmp_path)})
    assert {"test_interval=10000", "wandb_entity=null"} <= set(runs[0].command())
    with pytest.raises(ConfigError, match=r"different config \(algo.lr"):
        plan({**args, "algo.lr": "0.001", "out": str(tmp_path)})


def test_submitit_backend_on_its_local_executor(tmp_path):
    """backend=submitit with submitit's LocalExecutor (slurm.cluster=local; SLURM takes the same
    path with sbatch): two runs as two jobs, then the same command skips both."""
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'differ-marl[slurm]')")
    out = tmp_path / "sub"
    args = ["sweep", *TINY, "seed=1,2", "t_max=200", f"out={out}", "backend=submitit", "slurm.cluster=local"]
    p = run_cli(*args, timeout=600)
    state = {r["name"]: r for r in json.loads((out / "sweep.json").read_text())["runs"]}
    assert {n: s["status"] for n, s in state.items()} == {"lbf-s1": "finished", "lbf-s2": "finished"}, p.stderr
    for name in state:
        assert json.loads((out / name / "result.json").read_text())["t_env"] >= 200
        assert "(submitit, " in (out / name / "train.log").read_text()  # the sweep's header, then the run's output
    assert any((out / ".submitit").iterdir())  # submitit's own files: pickles and job logs
    again = run_cli(*args)
    assert "2 finished already" in again.stderr and "| lbf-s1 | skipped |" in again.stdout


@pytest.mark.parametrize(
    "options, line",
    [
        (["backend=slurm"], "backend must be local, ray or submitit, got 'slurm'"),
        (["backend=submitit", "slurm.cluster=pbs"], "slurm.cluster must be slurm or local, got 'pbs'"),
        (["backend=submitit"], "backend=submitit needs slurm.time=MINUTES, each run's job time limit on SLURM"),
        (["backend=submitit", "slurm.time=1h"], "slurm.time must be an integer, got '1h'"),
        (["backend=submitit", "slurm.time=60", "slurm.cpus=0"], "slurm.cpus must be at least 1, got 0"),
        (["backend=submitit", "slurm.cluster=local", "slurm.mem=lots"], "slurm.mem must be a number, got 'lots'"),
        (["backend=submitit", "slurm.cluster=local", "slurm.gpus=-1"], "slurm.gpus must be at least 0, got -1"),
        (["backend=submitit", "slurm.partiton=cpu"], "unknown sweep option slurm.partiton; valid: " + SLURM_KEYS),
        (["slurm.time=60"], "slurm.time is an option of backend=submitit (this sweep's backend is local)"),
    ],
)
def test_bad_submitit_options_are_one_line(capfd, tmp_path, options, line):
    from differ import cli

    assert cli.main(["sweep", *TINY, f"out={tmp_path / 'g'}", *options]) == 2
    assert capfd.readouterr().err.strip().splitlines() == [f"differ: error: {line}"]
    assert not (tmp_path / "g").exists()  # refused before anything started


def test_backend_submitit_without_submitit_is_one_line(capfd, tmp_path, monkeypatch):
    from differ import cli

    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    assert cli.main(["sweep", *TINY, f"out={tmp_path / 'g'}", "backend=submitit", "slurm.cluster=local"]) == 2
    assert capfd.readouterr().err.strip().splitlines() == [
        "differ: error: backend=submitit needs submitit: pip install 'differ-marl[slurm]'"
    ]


def test_backend_submitit_on_slurm_needs_slurm_here(capfd, tmp_path):
    import shutil

    from differ import cli

    if shutil.which("srun"):
        pytest.skip("this machine has SLURM")
    assert cli.main(["sweep", *TINY, f"out={tmp_path / 'g'}", "backend=submitit", "slurm.time=60"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "slurm.cluster=slurm needs SLURM's srun" in err[0] and "slurm.cluster=local" in err[0]
    assert not (tmp_path / "g").exists()


def test_runs_that_differ_only_in_how_they_report_are_one_variant():
    from differ.experiments.results import NOT_A_VARIANT

    assert {"test_interval", "log_interval", "device", "torch_threads", "t_max", "seed"} <= NOT_A_VARIANT
    assert "algo.lr" not in NOT_A_VARIANT and "test_episodes" not in NOT_A_VARIANT


def test_a_slurm_array_runs_each_index_and_resumes_a_preempted_task(tmp_path):
    """scripts/slurm_array.sh with a shell loop standing in for SLURM: `list=true` shows the grid
    and starts nothing; tasks run side by side, each its own run; a task killed after its run's
    first checkpoint (pre-emption) and run again (the requeue) resumes that run; `list=true`
    then shows every run finished."""
    from pathlib import Path

    from differ.store import checkpoint as ckpt

    out = tmp_path / "grid"
    grid = [*TINY, "seed=1,2", "algo=qmix,vdn", "t_max=600", f"out={out}"]
    before = run_cli("sweep", *grid, "list=true").stdout.splitlines()
    assert [line.split("\t")[0] for line in before] == ["0", "1", "2", "3"]
    assert all(line.split("\t")[1].strip() == "new" and "differ train " in line for line in before)
    assert not out.exists()  # nothing started, nothing written
    script = Path(__file__).resolve().parent.parent / "scripts" / "slurm_array.sh"
    env = dict(os.environ, GRID=" ".join(grid), DIFFER=f"{sys.executable} -m differ", PYTHONUNBUFFERED="1")

    def task(k):
        return subprocess.Popen(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": str(k)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    first = task(0)
    run0 = out / before[0].split("\t")[2].split("/")[-1]
    deadline = time.time() + 240
    while not ckpt.list_checkpoints(run0):
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.05)
    # pre-emption: SLURM kills the task's every process, the sweep and its worker
    worker = int((run0 / "worker.pid").read_text())
    first.kill()
    with contextlib.suppress(ProcessLookupError):  # (it may have stopped with its sweep already)
        os.kill(worker, signal.SIGKILL)
    first.wait()
    for pair in ((0, 1), (2, 3)):  # two tasks at a time, as an array on two slots
        procs = [task(k) for k in pair]
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-2000:]
    after = run_cli("sweep", *grid, "list=true").stdout.splitlines()
    assert all(line.split("\t")[1].strip() == "finished" for line in after), after
    assert "resume=" in (run0 / "train.log").read_text()  # task 0's second try continued the run
    assert not (out / "sweep.json").exists() and (out / "sweep.index3.json").exists()


def test_sweep_index_out_of_range_is_one_line(tmp_path):
    p = run_cli("sweep", *TINY, "seed=1,2", f"out={tmp_path / 'g'}", "index=2", check=False)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines() == [
        "differ: error: index=2: the grid has 2 runs (index 0 to 1; list=true shows them)"
    ]


def test_workers_stop_when_the_sweep_is_killed(tmp_path):
    """kill -9 of the sweep alone: its workers stop too (at the end of a batch, with a
    checkpoint) instead of training on as orphans, and the re-run resumes both runs."""
    out = tmp_path / "sw"
    args = [*TINY, "seed=1,2", "t_max=1000000", f"out={out}", "workers=2"]
    sweep = subprocess.Popen([sys.executable, "-m", "differ", "sweep", *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    pids, deadline = [], time.time() + 240
    while len(pids) < 2:
        assert time.time() < deadline and sweep.poll() is None
        pids = [int(p.read_text()) for p in out.glob("*/worker.pid") if p.read_text().strip()]
        time.sleep(0.1)
    sweep.kill()
    sweep.wait()
    deadline = time.time() + 120
    while any(_alive(pid) for pid in pids):
        assert time.time() < deadline, "a worker trained on after its sweep was killed"
        time.sleep(0.2)
    again = run_cli("sweep", *[a for a in args if not a.startswith("t_max")], "t_max=3000", check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(json.loads((d / "result.json").read_text())["t_env"] >= 3000 for d in out.iterdir() if d.is_dir())


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie waiting for its parent counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_starts_without_python_between_fork_and_exec(tmp_path):
    """The sweep starts its workers with no preexec_fn: nothing runs in the forked child of a
    process whose JAX threads are up (SMAX), so JAX has no fork to warn about."""
    code = (
        "import sys\nfrom pathlib import Path\n"
        "import differ.envs.smax, jax.numpy as jnp\n"
        "jnp.zeros(1).block_until_ready()\n"
        "from differ.experiments.backends import LocalBackend\n"
        "from differ.experiments.grid import PlannedRun\n"
        "run = PlannedRun('x', {}, Path(sys.argv[1]), 1)\n"
        "run.command = lambda: ['--version']\n"
        "run.run_dir.mkdir()\n"
        "assert LocalBackend(1).submit(run, run.run_dir / 'log').wait() == 0\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "fork" not in proc.stderr
    assert (tmp_path / "r" / "log").read_text().startswith("differ ")


@pytest.mark.parametrize("parent_alive", [True, False])
def test_a_worker_whose_sweep_died_before_it_started_stops(parent_alive):
    from differ.orphans import PARENT_ENV

    code = "from differ.orphans import stop_with_parent\nstop_with_parent()\nprint('trains on')\n"
    env = {**os.environ, PARENT_ENV: str(os.getpid() if parent_alive else 1)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert (proc.returncode, "trains on" in proc.stdout) == ((0, True) if parent_alive else (-signal.SIGTERM, False))
