"""Malformed commands: each one exits with status 2 and one `differ: error:` line that names the
offending key, never a traceback, and never starts anything. Run in-process (cli.main) to keep the
table fast; a `train` command that is wrongly accepted would run for t_max=1 step and fail the test
on its exit status instead of training for hours."""

from pathlib import Path

import pytest

from differ import cli

LONG = "a" * 5000
TRAIN = {  # train overrides -> the key the message must name
    "t_max=abc": "t_max",
    "t_max=0": "t_max",
    "seed=-1": "seed",
    "seed=abc": "seed",
    "seed=99999999999": "seed",
    "torch_threads=-1": "torch_threads",
    "algo.agent_hidden=-1": "algo.agent_hidden",
    "algo.agent_hidden=0": "algo.agent_hidden",
    "algo.qmix.embed_dim=0": "algo.qmix.embed_dim",
    "algo.qmix.hypernet_hidden=0": "algo.qmix.hypernet_hidden",
    "env.time_limit=0": "env.time_limit",
    "env.num_envs=0": "env.num_envs",
    "env.test_num_envs=0": "env.test_num_envs",
    "env.options.foo=1": "env.options.foo",
    "env.options=3": "env.options",
    "algo.grad_clip=-1": "algo.grad_clip",
    "algo.grad_clip=nan": "algo.grad_clip",
    "algo.train_steps_per_episode=-1": "algo.train_steps_per_episode",
    "algo.train_steps_per_episode=nan": "algo.train_steps_per_episode",
    "algo.train_steps_per_episode=0": "algo.train_steps_per_episode",
    "test_episodes=0": "test_episodes",
    "test_interval=0": "test_interval",
    "log_interval=-5": "log_interval",
    "checkpoint_interval=-1": "checkpoint_interval",
    "algo.gamma=5": "algo.gamma",
    "algo.gamma=nan": "algo.gamma",
    "algo.epsilon_start=2": "algo.epsilon_start",
    "algo.epsilon_finish=-0.1": "algo.epsilon_finish",
    "algo.epsilon_anneal_steps=-1": "algo.epsilon_anneal_steps",
    "algo.target_update_episodes=-1": "algo.target_update_episodes",
    "algo.target_update_episodes=0": "algo.target_update_episodes",
    "algo.lr=0": "algo.lr",
    "algo.lr=nan": "algo.lr",
    "algo.lr=inf": "algo.lr",
    "algo.optim_alpha=1.5": "algo.optim_alpha",
    "algo.optim_eps=-1": "algo.optim_eps",
    "algo.optim_eps=0": "algo.optim_eps",
    "env.options.normalize_obs=maybe": "env.options.normalize_obs",
    "env.options.force_coop=maybe": "env.options.force_coop",
    "algo.differ.per_alpha=nan": "algo.differ.per_alpha",
    "algo.differ.per_eps=-1": "algo.differ.per_eps",
    "algo.differ.per_eps=0": "algo.differ.per_eps",
    "algo.differ.eta_start=0": "algo.differ.eta_start",
    "algo.differ.eta_end=1.5": "algo.differ.eta_end",
    "algo.differ.eta_warmup_frac=2": "algo.differ.eta_warmup_frac",
    "algo.differ.beta_start=-1": "algo.differ.beta_start",
    "algo.differ.beta_end=nan": "algo.differ.beta_end",
    "algo.l1_reg=-1": "algo.l1_reg",
    "algo.differ.g_clamp=0": "algo.differ.g_clamp",
    "algo.batch_size=0": "algo.batch_size",
    "algo.buffer_size=-1": "algo.buffer_size",
    "algo.double_q=maybe": "algo.double_q",
    "algo.obs_dtype=int8": "algo.obs_dtype",
    "algo.learner=foo": "algo.learner",
    "algo.differ.selection=foo": "algo.differ.selection",
    "algo.mixer=foo": "algo.mixer",
    "algo=../env/lbf": "algo",
    "algo=": "algo",
    "env.name=foo": "env.name",
    "env.scenario=Foraging-99x99": "env.scenario",
    "algo.lrr=1": "algo.lrr",
    "nokey": "nokey",
    "algo.qplex.kernels=0": "algo.qplex.kernels",
    "algo.maser.alpha=2": "algo.maser.alpha",
    "algo.maser.intrinsic_weight=-1": "algo.maser.intrinsic_weight",
    "algo.maser.phi_hidden=0": "algo.maser.phi_hidden",
    # keys of the old flat layout: the message names where they moved
    "algo.eta_start=0.9": "algo.differ.eta_start",
    "algo.maser_lambda=0.1": "algo.maser.intrinsic_weight",
    "algo.mixing_embed_dim=8": "algo.qmix.embed_dim",
    "algo.hypernet_hidden=8": "algo.qmix.hypernet_hidden or algo.qplex.hypernet_hidden",
    "wandb_mode=foo": "wandb_mode",
    "wandb=maybe": "wandb",
    "device=gpu": "device",
    "device=cuda:x": "device",
    "device=": "device",
    "algo.agent_precision=float16": "algo.agent_precision",
    "resume=": "resume",
    "resume=/nonexistent/run": "resume",
    f"run_dir={LONG}": "run_dir",
    "run_dir=/sys/differ_run": "run_dir",
    "run_dir=": "run_dir",
}


def _check(capfd, argv, key):
    cwd_before = sorted(p.name for p in Path.cwd().iterdir())
    code = cli.main(argv)
    assert sorted(p.name for p in Path.cwd().iterdir()) == cwd_before  # nothing written where we stand
    err = capfd.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("differ: error:")]
    assert len(lines) == 1 and key in lines[0], err
    assert len(lines[0]) < 800
    return lines[0]


@pytest.mark.parametrize("override, key", list(TRAIN.items()), ids=[k[:40] for k in TRAIN])
def test_train_bad_input(capfd, tmp_path, override, key):
    # a method's section is checked where the run uses that method
    preset = {"algo.differ.": "algo=qmix_differ", "algo.maser.": "algo=maser", "algo.qplex.": "algo=qplex"}
    argv = ["train", "env=lbf", override] + [a for p, a in preset.items() if override.startswith(p)]
    if not override.startswith("t_max=") and not override.startswith("resume="):
        argv.append("t_max=1")
    if not override.startswith(("run_dir=", "resume=")):
        argv.append(f"run_dir={tmp_path / 'run'}")
    if override.startswith("resume="):
        argv = ["train", override]
    _check(capfd, argv, key)
    assert not (tmp_path / "run").exists()  # nothing was created


@pytest.mark.parametrize(
    "algo, override",
    [
        ("qmix", "algo.differ.eta_start=0.9"),
        ("qmix_differ", "algo.maser.alpha=0.1"),
        ("qplex", "algo.qmix.embed_dim=8"),
        ("qmix", "algo.differ.eta_warmup=false"),
    ],
)
def test_a_setting_of_a_method_the_run_does_not_use(capfd, tmp_path, algo, override):
    line = _check(
        capfd,
        ["train", "env=lbf", f"algo={algo}", override, "t_max=1", f"run_dir={tmp_path / 'run'}"],
        override.split("=")[0],
    )
    assert "does not apply" in line


def test_run_dir_under_a_file(capfd, tmp_path):
    (tmp_path / "file").write_text("x")
    _check(capfd, ["train", "env=lbf", "t_max=1", f"run_dir={tmp_path / 'file' / 'run'}"], "run_dir")


@pytest.mark.parametrize(
    "content",
    ["- 1\n- 2\n", "seed: !!python/object/apply:os.system ['touch {marker}']\n", "seed: [1, 2\n", "", "seed: 1\n"],
    ids=["list", "python-tag", "syntax", "empty", "not-a-run"],
)
def test_resume_with_a_bad_config_yaml(capfd, tmp_path, content):
    run_dir, marker = tmp_path / "run", tmp_path / "hacked"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(content.format(marker=marker))
    _check(capfd, ["train", f"resume={run_dir}"], "config.yaml")
    assert not marker.exists()  # nothing in the file was executed


@pytest.mark.parametrize(
    "argv, key",
    [
        (["evaluate", "{run}", "episodes=0"], "episodes"),
        (["evaluate", "{run}", "episodes=abc"], "episodes"),
        (["evaluate", "{run}", "seed=-1"], "seed"),
        (["evaluate", "{run}", "foo=1"], "foo"),
        (["evaluate"], "PATH"),
        (["evaluate", "/nonexistent/run"], "/nonexistent/run"),
        (["sweep", "seed=1", "out={tmp}/s", "workers=0"], "workers"),
        (["sweep", "seed=1", "out={tmp}/s", "backend=foo"], "backend"),
        (["sweep", "seed=1", "out="], "out"),
        (["sweep", "seed=1"], "out"),
        (["sweep", "seed=1", "out={tmp}/s", "keep_replay=maybe"], "keep_replay"),
        (["sweep", "seed=1", "out={tmp}/s", "preset=../algo/qmix"], "preset"),
        (["sweep", "seed=1,-1", "out={tmp}/s"], "seed"),
        (["bench", "foo=1"], "foo"),
        (["bench", "quick=maybe"], "quick"),
        (["bench", "only=learner,gpu"], "gpu"),
        (["frobnicate"], "frobnicate"),
        (["envs", "nope"], "nope"),
        (["summary", "{tmp}/none"], "none"),
    ],
)
def test_other_commands_bad_input(capfd, tmp_path, argv, key):
    argv = [a.format(run=tmp_path / "none", tmp=tmp_path) for a in argv]
    _check(capfd, argv, key)
    assert not (tmp_path / "s").exists()  # a refused sweep leaves no out= directory behind


def test_debug_shows_the_traceback():
    from .conftest import run_cli

    plain = run_cli("train", "t_max=abc", check=False, timeout=120)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = run_cli("--debug", "train", "t_max=abc", check=False, timeout=120)
    assert "Traceback" in debug.stderr and "ConfigError: invalid value for t_max" in debug.stderr
