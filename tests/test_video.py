"""differ evaluate PATH video=DIR: the first greedy test episodes, drawn by each package's renderer."""

import json

import imageio.v2 as imageio
import pytest

import differ

from .conftest import TINY_SMAX, run_cli


def frames_of(path):
    with imageio.get_reader(path) as reader:
        return [f for f in reader]


def test_smax_video_shows_evaluates_episode(tmp_path):
    run = tmp_path / "smax"
    run_cli("train", *TINY_SMAX, "env.time_limit=12", "t_max=200", f"run_dir={run}")
    out = json.loads(run_cli("evaluate", str(run), f"video={tmp_path / 'v'}").stdout)
    (video,) = out["videos"]
    frames = frames_of(video)
    assert len(frames) == out["ep_lengths"][0] + 1  # the start, then one frame per step
    assert frames[0].ndim == 3 and frames[0].std() > 0  # something is drawn
    first = json.loads(run_cli("evaluate", str(run), "episodes=1").stdout)
    assert out["returns"][0] == pytest.approx(first["return_mean"], abs=1e-5)  # the same episode


def test_mpe_gif_and_mp4_through_the_api(tmp_path):
    run = tmp_path / "mpe"
    run_cli("train", "env=mpe", "t_max=100", "test_episodes=1", "algo.batch_size=2", f"run_dir={run}")
    gif = differ.evaluate(run, episodes=2, video=tmp_path / "g", video_format="gif", fps=5)
    mp4 = differ.evaluate(run, episodes=1, video=tmp_path / "m")
    assert len(gif["videos"]) == 2 and all(v.endswith(".gif") for v in gif["videos"])
    assert gif["returns"][0] == mp4["returns"][0] and gif["ep_lengths"] == [25, 25]
    assert len(frames_of(mp4["videos"][0])) == 26
    assert imageio.mimread(gif["videos"][1])[0].shape[-1] in (3, 4)


@pytest.mark.parametrize(
    "args,text",
    [
        (["video_format=avi"], "video_format must be one of mp4, gif"),
        (["fps=0"], "fps must be positive"),
        (["video_format=gif", "fps=x"], "fps must be a number"),
    ],
)
def test_bad_video_options(tmp_path, args, text):
    run = tmp_path / "signals"
    run_cli("train", "env=pettingzoo", "env.scenario=tests.pz_envs:Signals", "t_max=60", f"run_dir={run}")
    p = run_cli("evaluate", str(run), f"video={tmp_path / 'v'}", *args, check=False)
    assert p.returncode != 0 and text in p.stderr.strip().splitlines()[-1] and "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "target,text",
    [
        ("tests.pz_envs:Silent", "cannot render: its render() gave NoneType"),
        ("tests.pz_envs:NoLimit", "cannot render: its constructor takes no render_mode"),
    ],
)
def test_an_env_that_cannot_render_is_one_line(tmp_path, target, text):
    run = tmp_path / "r"
    extra = ["env.time_limit=12"] if "NoLimit" in target else []
    run_cli("train", "env=pettingzoo", f"env.scenario={target}", *extra, "t_max=60", f"run_dir={run}")
    p = run_cli("evaluate", str(run), f"video={tmp_path / 'v'}", check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert text in p.stderr.strip().splitlines()[-1]


def test_lbf_video_headless(tmp_path):
    """LBF draws with pyglet: off-screen (EGL) when there is no display, as on CI."""
    run = tmp_path / "lbf"
    run_cli(
        "train", "env=lbf", "env.time_limit=10", "t_max=60", "test_episodes=1", "algo.batch_size=2", f"run_dir={run}"
    )
    out = json.loads(run_cli("evaluate", str(run), f"video={tmp_path / 'v'}").stdout)
    frames = frames_of(out["videos"][0])
    assert len(frames) == out["ep_lengths"][0] + 1 and frames[0].std() > 0


def test_mamujoco_video_headless_is_evaluates_episode(tmp_path):
    """MuJoCo renders off-screen (EGL) without a display; CEM's greedy samples come from the same
    stream as evaluate's, so the filmed episode is evaluate's first one."""
    run = tmp_path / "mj"
    run_cli(
        "train",
        "env=mamujoco",
        "algo=comix",
        "env.scenario=ManySegmentSwimmer-10x2",
        "env.time_limit=15",
        "t_max=60",
        "test_episodes=1",
        "algo.batch_size=2",
        "torch_threads=1",
        f"run_dir={run}",
    )
    out = json.loads(run_cli("evaluate", str(run), f"video={tmp_path / 'v'}").stdout)
    frames = frames_of(out["videos"][0])
    assert len(frames) == out["ep_lengths"][0] + 1 == 16 and frames[0].std() > 0
    first = json.loads(run_cli("evaluate", str(run), "episodes=1").stdout)
    assert out["returns"][0] == pytest.approx(first["return_mean"], abs=1e-5)
