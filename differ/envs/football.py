"""Google Research Football (`gfootball`, built from source by `bash scripts/setup.sh football`) as
a batched `VecEnv`: `env=grf`, scenarios academy_3_vs_1_with_keeper (3 agents) and
academy_counterattack_hard (4 agents), in the setting of the DIFFER paper (and CDS before it).

- Scenarios: differ's own files (differ/envs/football_scenarios.py), in which only the agents'
  players are controllable, so action slot i drives the same footballer for the whole episode.
  The adapter checks the engine's `active` player of every slot after every reset and step and
  stops the run with one line if it ever changes.
- Observations, from the engine's raw observation, for the agent driving player p: p's position,
  the other agents' positions relative to p, p's direction, the other agents' directions, the
  opponents' positions relative to p and their directions, the ball's position relative to p
  (x, y) and its height, the ball's direction (x, y, z). 26 values on 3_vs_1, 34 on
  counterattack_hard. The state: the same in absolute coordinates (agents, opponents, ball).
  Positions are the engine's pitch coordinates (x in [-1, 1], y in [-0.42, 0.42]); our own
  goalkeeper, not an agent, is in neither.
- Actions: gfootball's 19 default actions, always all available.
- Reward: +100 when we score; -1 at any other end of the episode: the engine's (the ball out of
  play, a change of possession, a goal against) or ours (the ball or an agent in our own half,
  x < 0, and the time limit, 150 steps by default); 0 at every other step. `battle_won` (the test
  win rate) is "we scored".
- Time-outs end the episode as a true termination (no bootstrap), as the reference did;
  env.options.timeout=bootstrap makes them truncations (same reward, the learner bootstraps).
- Seeds: each episode sets the engine's random seed before its reset, so an episode is a pure
  function of its seed and the actions (tests/test_football.py checks it in and across processes).
- Worker processes: several copies step in one worker process each (env.num_envs > 1); one copy
  steps in this process (the preset's default; docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from ..errors import ConfigError, DifferError
from .base import VecEnv
from .faults import package_call
from .football_scenarios import SCENARIOS, install
from .registry import named_scenario
from .team import make_vec_env

N_ACTIONS = 19  # gfootball's default action set
EPISODE_LIMIT = 150
GAME_LENGTH = 400  # our scenarios' game_duration: the engine ends the game after this many steps
SETUP = "bash scripts/setup.sh football"


class AgentIdentityError(DifferError):
    """The engine moved an action slot to another player: per-agent learning would be wrong."""


def scenarios(family: str) -> list[str]:
    return list(SCENARIOS)


def resolve(family: str, scenario: str) -> str:
    key = str(scenario).strip().lower()
    if not key.startswith("academy_"):  # "3_vs_1_with_keeper" names the scenario too
        key = f"academy_{key}"
    return named_scenario(family, scenario, SCENARIOS, key, 0.3)


def make(family: str, scenario: str, num_envs: int, time_limit=None, options=None) -> VecEnv:
    name = resolve(family, scenario)
    _import_gfootball()  # one clear line here, before any worker process starts
    return make_vec_env(FootballCore, name, num_envs, time_limit or EPISODE_LIMIT, dict(options or {}))


def _import_gfootball():
    try:
        # gym (which gfootball imports) prints an "unmaintained" banner to stderr on import
        with contextlib.redirect_stderr(io.StringIO()):
            import gfootball.env as football_env
    except ImportError as e:
        raise ConfigError(
            f"env=grf needs Google Research Football, which is built from source: run `{SETUP}` "
            f"(it installs the build packages and caches the wheel; {e})"
        ) from None
    return football_env


class FootballCore:
    """One gfootball env behind the core interface of differ/envs/team.py."""

    may_die = False
    has_battles = True
    scale = None
    env_truncated = False  # the engine's own game (GAME_LENGTH steps) never ends before our limit

    def __init__(self, scenario: str, time_limit, options: dict):
        options = dict(options)
        if options.pop("render_mode", None):
            raise ConfigError(
                "env=grf cannot film episodes: gfootball renders only through its own OpenGL window, "
                "which differ does not drive (dump_individual_rewards= records episodes as CSV)"
            )
        timeout = options.pop("timeout", "terminal")
        if timeout not in ("terminal", "bootstrap"):
            raise ConfigError(f"env.options.timeout must be terminal or bootstrap, got '{timeout}'")
        if options:
            raise ConfigError(f"env.options.{next(iter(options))} is not an option of grf (its options: timeout)")
        self.bootstrap_timeouts = timeout == "bootstrap"
        football_env = _import_gfootball()
        self.scenario = scenario
        roster = SCENARIOS[scenario]
        self.players = np.array(roster.agent_players)  # left-team index of each slot's player
        self.roles = list(roster.units)
        self.n_agents = len(self.players)
        self.n_opponents = len(roster.right)
        self.n_actions = N_ACTIONS
        self.limit = int(time_limit)
        if not 0 < self.limit < GAME_LENGTH:
            raise ConfigError(
                f"env.time_limit must be between 1 and {GAME_LENGTH - 1} for grf (the engine's own game "
                f"lasts {GAME_LENGTH} steps), got {self.limit}"
            )
        per_agent = 2 * self.n_agents + 2 * self.n_agents + 4 * self.n_opponents + 6
        self.obs_dims = [per_agent] * self.n_agents
        self.state_dim = per_agent
        self.env = football_env.create_environment(
            env_name=install(scenario),
            representation="raw",
            rewards="scoring",
            number_of_left_players_agent_controls=self.n_agents,
            render=False,
            write_goal_dumps=False,
            write_full_episode_dumps=False,
            write_video=False,
        )
        self._config = self.env.unwrapped._config
        self._raw = None
        self._t = 0
        self._won = False

    # ---- identity ---------------------------------------------------------------------------
    def _check_identity(self, raw: list) -> None:
        active = [int(o["active"]) for o in raw]
        if active != self.players.tolist():
            raise AgentIdentityError(
                f"grf {self.scenario}: the engine moved the agents to other players at step {self._t} (slots drive "
                f"players {active}, expected {self.players.tolist()}); per-agent learning would be wrong: stop. "
                f"differ's scenario files make only the agents' players controllable; report this with the "
                f"gfootball version"
            )

    # ---- observations -----------------------------------------------------------------------
    def _observations(self) -> list[np.ndarray]:
        o = self._raw[0]
        pos = o["left_team"][self.players]  # [N, 2]
        vel = o["left_team_direction"][self.players]
        opp, opp_vel = o["right_team"], o["right_team_direction"]
        ball, ball_dir = o["ball"], o["ball_direction"]
        out = []
        for i in range(self.n_agents):
            me = pos[i]
            others = np.delete(np.arange(self.n_agents), i)
            out.append(
                np.concatenate(
                    [
                        me,
                        (pos[others] - me).reshape(-1),
                        vel[i],
                        vel[others].reshape(-1),
                        (opp - me).reshape(-1),
                        opp_vel.reshape(-1),
                        ball[:2] - me,
                        ball[2:3],
                        ball_dir,
                    ]
                ).astype(np.float32)
            )
        return out

    def state(self):
        o = self._raw[0]
        return np.concatenate(
            [
                o["left_team"][self.players].reshape(-1),
                o["left_team_direction"][self.players].reshape(-1),
                o["right_team"].reshape(-1),
                o["right_team_direction"].reshape(-1),
                o["ball"],
                o["ball_direction"],
            ]
        ).astype(np.float32)

    def avail(self):
        return None  # every action is always available

    def won(self) -> bool:
        return self._won

    # ---- episodes ---------------------------------------------------------------------------
    def reset(self, seed):
        # The engine draws its per-episode seed unless the config holds one; and it fixes the order
        # in which the teams are processed from the parity of the *first* scenario's seed (random,
        # at construction) for the life of the env unless the config holds that too. Both per
        # episode, from its seed, so an episode is the same in any process.
        seed = int(seed) % (2**31 - 1)
        self._config["game_engine_random_seed"] = seed
        self._config["reverse_team_processing"] = bool(seed % 2)
        self._raw = package_call("reset", self.env.reset)
        self._t, self._won = 0, False
        self._check_identity(self._raw)
        return self._observations()

    def step(self, actions):
        self._raw, _, engine_done, info = package_call("step", self.env.step, [int(a) for a in actions])
        self._t += 1
        self._check_identity(self._raw)
        o = self._raw[0]
        scored = info.get("score_reward", 0) > 0
        # the reference's extra ends: the attack is over once the ball or an agent is back in our half
        retreated = o["ball"][0] < 0 or bool((o["left_team"][self.players, 0] < 0).any())
        timed_out = self._t >= self.limit
        ended = bool(engine_done or retreated or timed_out)
        self._won = self._won or scored
        reward = 100.0 if scored else (-1.0 if ended else 0.0)
        terminated = ended and not (self.bootstrap_timeouts and timed_out and not (engine_done or retreated or scored))
        return self._observations(), reward, terminated

    def render(self):
        raise NotImplementedError("env=grf has no renderer in differ")
