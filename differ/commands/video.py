"""`differ evaluate PATH video=DIR`: greedy episodes of a checkpoint rendered to MP4 or GIF.

The episodes are the ones `differ evaluate` plays first (the same test seeds), each drawn by its
package's own renderer: SMAX by jaxmarl's renderer (matplotlib, off-screen), LBF and RWARE by
their pyglet viewers (off-screen through EGL when there is no display), MPE, MaMuJoCo and other
PettingZoo envs by `render()` with render_mode="rgb_array" (MuJoCo off-screen through EGL when
there is no display). Frames go to imageio (MP4 through its ffmpeg
plug-in, GIF through Pillow).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import ConfigError

FORMATS = ("mp4", "gif")


def _as_frames(out, what: str) -> list[np.ndarray]:
    if isinstance(out, np.ndarray) and out.ndim == 3:
        return [out]
    if isinstance(out, list) and all(isinstance(f, np.ndarray) and f.ndim == 3 for f in out):
        return out
    raise ConfigError(
        f"{what} cannot render: its render() gave {type(out).__name__}, not RGB frames (render_mode='rgb_array')"
    )


def _render(env, what: str) -> list[np.ndarray]:
    try:
        out = env.render()
    except (NotImplementedError, AttributeError) as e:
        raise ConfigError(f"{what} cannot render ({type(e).__name__}: {e})") from None
    return _as_frames(out, what)


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: pad the last row/column with black where odd."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0))) if (h | w) % 2 else frame


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> None:
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise ConfigError("video= needs imageio: pip install 'differ-marl[video]'") from None
    frames = [np.ascontiguousarray(f[..., :3], dtype=np.uint8) for f in frames]
    if path.suffix == ".gif":
        imageio.mimsave(path, frames, duration=1000.0 / fps, loop=0)
        return
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise ConfigError(
            "video_format=mp4 needs imageio-ffmpeg: pip install 'differ-marl[video]' (or video_format=gif)"
        ) from None
    with warnings.catch_warnings():  # ffmpeg runs as a subprocess; JAX warns about any fork
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        imageio.mimsave(path, [_even(f) for f in frames], fps=fps, macro_block_size=1)


def record(
    path: str | Path,
    out_dir: str | Path,
    episodes: int = 1,
    seed: int | None = None,
    video_format: str = "mp4",
    fps: float = 10.0,
) -> dict:
    """Render the first `episodes` greedy test episodes of a run (or checkpoint) into `out_dir`."""
    from ..acting.schedules import EVALUATION_FIRST_EPISODE, TEST, episode_seeds
    from ..assemble import load_run, team_of

    if video_format not in FORMATS:
        raise ConfigError(f"video_format must be one of {', '.join(FORMATS)}, got '{video_format}'")
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    ckpt_path, payload, cfg = load_run(path)
    what = f"env={cfg.env.name} {cfg.env.scenario}"
    try:
        team = team_of(ckpt_path, payload, cfg, num_envs=1, render_mode="rgb_array")
    except ConfigError as err:
        if "render_mode" in str(err):
            raise ConfigError(f"{what} cannot render: its constructor takes no render_mode") from None
        raise
    env = team.env
    controller = team.learner.controller()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = cfg.seed if seed is None else seed
    videos, returns, lengths = [], [], []
    rng = np.random.default_rng(0)  # as evaluate's: CEM (COMIX) samples from it even when greedy
    try:
        for k in range(episodes):
            episode_seed = episode_seeds(seed, TEST, EVALUATION_FIRST_EPISODE + k, 1)[0]
            o = env.reset([episode_seed])
            frames = _render(env, what)
            controller.start(1)
            ret, t, done = 0.0, 0, False
            while not done:
                res = env.step(controller.act(o.obs, o.avail, 0.0, rng, greedy=True))
                o, t, ret = res.next, t + 1, ret + float(res.reward[0])
                frames += _render(env, what)
                done = bool(res.terminated[0] or res.truncated[0])
            target = out_dir / f"episode{k:03d}_seed{episode_seed}.{video_format}"
            write_video(frames, target, fps)
            videos.append(str(target))
            returns.append(ret)
            lengths.append(t)
    finally:
        env.close()
    return {
        "checkpoint": str(team.checkpoint),
        "t_env": team.t_env,
        "videos": videos,
        "returns": returns,
        "ep_lengths": lengths,
    }
