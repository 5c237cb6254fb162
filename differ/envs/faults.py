"""Faults of the environment itself, told apart from differ's own and from diverged training.

The cores (differ/envs/team.py) call the package env's own code through `package_call`: what that
code raises comes up as a `RaisedInEnv`. A core that sums the agents' rewards names the agent of a
non-finite one with `check_rewards`. `Guarded`, around every env `make_env` builds, turns both into
one `EnvFault` line naming the env, the agent, the step and seed of the episode and the field, and
checks every reset's and step's outputs itself: reward, observations and state finite, and (where
the adapter does not see to it: `VecEnv.masks_checked`) an available action for every agent.

A fault thus stops the run while it collects a batch, before the batch is stored or trained on
(the run resumes from its last checkpoint), and a NaN from the env never reaches the learner,
where it would read as diverged training.
"""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import DifferError, EnvFault
from .base import Observation, StepResult, VecEnv, Wrapper


class InEnv(Exception):
    """A fault inside one env copy on its way up to `Guarded`, maybe through a worker process's
    pipe, which re-raises `type(e)(e)`: built from another InEnv, it is a copy of it. The copy that
    failed sets `seed` (its episode's)."""

    seed: int | None = None

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], InEnv):
            self.__dict__.update(args[0].__dict__)
            args = args[0].args
        super().__init__(*args)


class RaisedInEnv(InEnv):
    """args: (call, the exception's type name, its message's first line); `trace`: its traceback,
    which a worker process's pipe does not carry."""

    trace = ""


class BadReward(InEnv):
    """args: (the agent: its name or index, its non-finite reward)."""


def package_call(call: str, fn, *args, **kwargs):
    """fn(*args, **kwargs): the package env's own code (its `call`: reset, step, state). What it
    raises, other than differ's own errors and Ctrl-C, comes up as a RaisedInEnv."""
    try:
        return fn(*args, **kwargs)
    except DifferError:
        raise
    except Exception as e:
        raised = RaisedInEnv(call, type(e).__name__, (str(e).splitlines() or [""])[0][:300])
        raised.trace = "".join(traceback.format_exception(e))
        raise raised from e


def quiet_worker_faults() -> None:
    """gymnasium's worker processes log an error as warnings before it is raised here: the lines
    around it, and its traceback where it is one of ours (the one line of EnvFault says it all,
    and --debug shows the traceback)."""
    warnings.filterwarnings("ignore", r"\S*ERROR: (Received the following error|Raising the last exception)")
    warnings.filterwarnings("ignore", r"(?s)\S*ERROR: Traceback.*\ndiffer\.envs\.faults\.\w+: ")


def check_rewards(total: float, rewards) -> float:
    """`total`, the team reward summed from `rewards` ({agent name: reward}, or one per agent in
    order): where it is non-finite, a BadReward names the first agent whose own reward is (finite
    rewards whose sum overflowed are left to Guarded's check of the team reward)."""
    if math.isfinite(total):
        return total
    for i, r in rewards.items() if isinstance(rewards, dict) else enumerate(rewards):
        if not math.isfinite(float(r)):
            raise BadReward(i, float(r))
    return total


class Guarded(Wrapper):
    """`env` (family `family`, scenario `scenario`), its faults told as one EnvFault line."""

    def __init__(self, env: VecEnv, family: str, scenario: str):
        super().__init__(env)
        self.name = f"env={family} {scenario}"
        self._seeds: list[int] = []
        self._t = 0  # the step of the running episodes (all copies start together)
        self._ends: list = []  # each step's (terminated, truncated): which copies' outputs are stale
        self._masks = not env.masks_checked  # whether to test the masks too

    def reset(self, seeds: Sequence[int]) -> Observation:
        self._seeds, self._t, self._ends = [int(s) for s in seeds], 0, []
        try:
            o = self.inner.reset(seeds)
        except InEnv as e:
            raise self._fault(e) from e
        if not _fine(o, self._masks):
            self._locate(o, None)
        return o

    def step(self, actions: np.ndarray) -> StepResult:
        self._t += 1
        try:
            res = self.inner.step(actions)
        except InEnv as e:
            raise self._fault(e) from e
        if not (math.isfinite(res.reward.sum()) and _fine(res.next, self._masks)):
            self._locate(res.next, res.reward)
        self._ends.append((res.terminated, res.truncated))
        return res

    def _locate(self, o: Observation, reward) -> None:
        """After a failed check: the first bad value of a copy whose episode still runs, as an
        EnvFault (a finished copy's stale outputs are none of the run's business)."""
        live = np.ones(self.num_envs, bool)
        for terminated, truncated in self._ends:
            live &= ~(terminated | truncated)
        if reward is not None and (at := _first(~np.isfinite(reward), live)) is not None:
            self._bad(f"a non-finite team reward ({reward[at]})", at[0])
        if (at := _first(~np.isfinite(o.obs), live)) is not None:
            e, i, j = at
            self._bad(f"a non-finite observation ({o.obs[at]} at feature {j}) for {self._agent(i)}", e)
        if (at := _first(~np.isfinite(o.state), live)) is not None:
            self._bad(f"a non-finite state ({o.state[at]} at entry {at[1]})", at[0])
        if (at := _first(~o.avail.any(-1), live)) is not None:
            e, i = at
            raise EnvFault(
                f"{self.name} left {self._agent(i)} no available action {self._when(self._seeds[e])}: every "
                f"agent needs one at every step (a dead agent its no-op); check the environment's action masks"
            )

    def _bad(self, what: str, e) -> None:
        raise EnvFault(f"{self.name} returned {what} {self._when(self._seeds[e])}: {NOT_TRAINING}")

    def _fault(self, e: InEnv) -> EnvFault:
        seed = e.seed if e.seed is not None or self.num_envs > 1 else self._seeds[0]
        if isinstance(e, BadReward):
            agent, value = e.args
            return EnvFault(
                f"{self.name} returned a non-finite reward ({value}) for {self._agent(agent)} "
                f"{self._when(seed)}: {NOT_TRAINING}"
            )
        call, kind, message = e.args
        at = "" if self._t == 0 else f", step {self._t}"
        fault = EnvFault(
            f"{self.name} raised {kind} in {call} ({self._seed_text(seed, 'episode seed')}{at}): {message}; "
            f"the environment's code failed, not differ's (--debug shows its traceback)"
        )
        if e.__cause__ is None and e.trace:  # it came through a worker's pipe, without its cause
            fault.add_note(f"in the env's worker process:\n{e.trace}")
        return fault

    def _agent(self, i: int | str) -> str:
        """An agent by its name in the package where it has one, else by its index."""
        names = self.spec.agent_names
        if isinstance(i, str) or names:
            return f"agent '{i if isinstance(i, str) else names[i]}'"
        return f"agent {i}"

    def _seed_text(self, seed, label: str) -> str:
        if seed is not None:
            return f"{label} {seed}"
        shown = ", ".join(map(str, self._seeds[:4])) + (", ..." if len(self._seeds) > 4 else "")
        return f"one of the episodes with seeds {shown}"

    def _when(self, seed) -> str:
        where = "at the reset of an episode" if self._t == 0 else f"at step {self._t} of an episode"
        return f"{where} ({self._seed_text(seed, 'seed')})"


NOT_TRAINING = "check the environment; training did not diverge"


def _fine(o: Observation, masks: bool) -> bool:
    """Observations and state finite, and (with `masks`) an action for every agent. A sum is the
    cheapest test (one reduction per array): NaN and infinity carry through it, and a finite sum
    that overflows only sends the check on to `_locate`, which finds nothing."""
    return math.isfinite(o.obs.sum()) and math.isfinite(o.state.sum()) and (not masks or bool(o.avail.any(-1).all()))


def _first(bad: np.ndarray, live: np.ndarray):
    """The index of the first True of `bad` [E, ...] in a live copy, or None."""
    hits = np.argwhere(bad & live.reshape((-1,) + (1,) * (bad.ndim - 1)))
    return tuple(int(x) for x in hits[0]) if len(hits) else None
