"""Configuration errors exit non-zero with one clear line; presets and overrides compose."""

import pytest

from differ.config import ConfigError, build_config

from .conftest import run_cli


def test_presets_and_overrides_compose():
    cfg = build_config({"algo": "vdn", "env": "lbf", "algo.lr": "0.001", "seed": "7", "env.scenario": "8x8-2p-3f"})
    assert cfg.algo.mixer == "vdn" and cfg.algo.lr == 0.001 and cfg.seed == 7
    assert cfg.env.scenario == "Foraging-8x8-2p-3f-v3" and cfg.env.time_limit == 50
    assert build_config({}).env.name == "smax"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"algo.lrr": "1"}, "unknown config key 'algo.lrr' (did you mean algo.lr"),
        ({"t_max": "lots"}, "invalid value for t_max"),
        (
            {"algo": "qmixx"},
            "algo=qmixx: unknown algorithm; valid choices: coma, comix, comix_differ, comix_differ_t1, comix_divide, "
            "comix_divide_t1, comix_t1, maser, qmix, qmix_differ, qmix_divide, qplex, qplex_differ, qplex_divide, "
            "vdn, vdn_differ, vdn_divide",
        ),
        (
            {"env": "starcraft"},
            "env=starcraft: unknown environment; valid choices: grf, lbf, mamujoco, mpe, pettingzoo, rware, smax",
        ),
        ({"env.scenario": "4m"}, "unknown SMAX scenario '4m'; valid choices: 3m, 2s3z"),
        ({"algo.batch_size": "64", "algo.buffer_size": "32"}, "exceeds algo.buffer_size"),
    ],
)
def test_bad_config_is_a_clear_error(overrides, message):
    with pytest.raises(ConfigError) as e:
        build_config(overrides)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "algo.lrr=0.1"], "unknown config key 'algo.lrr'"),
        (["train", "env=lbf", "env.scenario=Foraging-99x99"], "unknown lbf scenario"),
        (["train", "seed=abc"], "invalid value for seed"),
        (["evaluate", "/nonexistent/run"], "does not exist (expected a run directory"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(args, message):
    proc = run_cli(*args, check=False, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("differ: error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_envs_lists_families_and_scenarios():
    out = run_cli("envs", timeout=120).stdout
    for word in ("smax:", "27m_vs_30m", "lbf:", "rware:", "mpe:", "simple_spread"):
        assert word in out


@pytest.mark.parametrize("args", [["--help"], ["plot", "--help"], ["sweep", "-h"]])
def test_help_prints_usage_for_every_command(args):
    proc = run_cli(*args, timeout=120)
    assert proc.stdout.startswith("usage:") and "differ sweep" in proc.stdout


def test_migrating_a_flat_config_keeps_interpolations_and_section_values():
    """A saved flat config whose values point at other flat keys resolves before the keys move;
    where a key is both flat and in its section, the section's value is kept."""
    from omegaconf import OmegaConf

    from differ.config import build_config, migrate

    saved = OmegaConf.to_container(build_config({"algo": "qmix_differ", "env": "lbf"}))
    algo = {k: v for k, v in saved["algo"].items() if k != "differ"}
    algo.update(eta_start=0.7, eta_end="${algo.eta_start}", per_alpha=0.3, differ={"per_alpha": 0.5})
    cfg = build_config({}, base=OmegaConf.create({**saved, "algo": algo}))
    assert cfg.algo.differ.eta_end == 0.7 and cfg.algo.differ.per_alpha == 0.5
    assert "eta_start" not in migrate(OmegaConf.create({**saved, "algo": algo})).algo


@pytest.mark.parametrize("algo", ["qplex_differ", "maser", "vdn"])
def test_config_command_lists_every_key_with_type_value_and_help(algo):
    from differ.config import _all_keys

    out = run_cli("config", f"algo={algo}", "env=lbf", "algo.lr=0.001").stdout
    lines = {ln.split(":")[0]: ln for ln in out.splitlines()}
    cfg = build_config({"algo": algo, "env": "lbf"})
    for key in _all_keys(cfg):  # every leaf of the run's own config, each documented
        assert key in lines and "  # " in lines[key], key
    assert lines["algo.lr"].startswith("algo.lr: float = 0.001  # ")
    sections = {k.split(".")[1] for k in lines if k.count(".") == 2}
    assert sections == {"qplex_differ": {"qplex", "differ"}, "maser": {"qmix", "maser"}, "vdn": set()}[algo]
    assert "progress: Optional[bool] = null" in out


def test_version():
    from importlib import metadata

    assert run_cli("--version").stdout.strip() == f"differ {metadata.version('differ-marl')}"
