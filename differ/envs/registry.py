"""Which environment families exist and how to build them.

Each family module is imported only when used (an LBF run never loads JAX) and exposes, taking
the family name first so one module may serve several families:
  scenarios(family) -> list[str]            the named scenarios ([] where any name goes)
  resolve(family, scenario) -> str          canonical name, or UnknownEnvError
  make(family, scenario, num_envs, time_limit, options) -> VecEnv
and optionally DESCRIPTION (one line for `differ envs`) and PRESETS ({name: env config}: each
becomes `env=name`, like the YAML files in differ/presets/env).

Other packages add families without touching differ: an entry point in the group `differ.envs`,
named after the family, pointing at such a module (pyproject.toml:
`[project.entry-points."differ.envs"] myenv = "mypkg.differ_family"`). A run's config.yaml names
the family, the scenario and the options, which is all `differ evaluate`, `resume` and `sweep`
need to rebuild the env in a fresh process.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from importlib.metadata import entry_points
from types import ModuleType

from ..errors import ConfigError
from .base import RewardScaled
from .faults import Guarded

BUILTIN: dict[str, tuple[str, str]] = {
    # name: (module, one-line description)
    "smax": ("differ.envs.smax", "SMAX: StarCraft-like micromanagement in JAX (jaxmarl), heuristic enemy"),
    "lbf": ("differ.envs.gym_family", "Level-Based Foraging (lbforaging)"),
    "rware": ("differ.envs.gym_family", "Multi-robot warehouse (rware)"),
    "mpe": ("differ.envs.pettingzoo_family", "Multi-particle environments (mpe2, through the PettingZoo family)"),
    "mamujoco": (
        "differ.envs.pettingzoo_family",
        "Multi-agent MuJoCo (gymnasium-robotics mamujoco_v1), continuous actions",
    ),
    "grf": (
        "differ.envs.football",
        "Google Research Football academy scenarios (gfootball, built by scripts/setup.sh football)",
    ),
    "pettingzoo": (
        "differ.envs.pettingzoo_family",
        "any PettingZoo ParallelEnv: env.scenario=MODULE:ATTR (a class or a factory)",
    ),
}
ENTRY_POINT_GROUP = "differ.envs"


class UnknownEnvError(ConfigError):
    """An environment family or scenario that does not exist; the message names valid choices."""


@functools.cache
def _plugins() -> tuple[tuple[str, str, str], ...]:
    """(name, module, source) of the installed packages' families: one scan of the installed
    distributions per process (each scan takes ~15 ms, and a command asks several times)."""
    return tuple(
        (ep.name, ep.value.split(":", 1)[0], ep.dist.name if ep.dist else ep.value)
        for ep in entry_points(group=ENTRY_POINT_GROUP)
    )


def families() -> dict[str, tuple[str, str]]:
    """Every family: the built-in ones and those other packages register (group differ.envs);
    {name: (module, description)}. A plug-in cannot replace a built-in name."""
    out = dict(BUILTIN)
    for name, module, source in _plugins():
        if name not in out:
            out[name] = (module, f"(from {source})")
    return out


def family_module(name: str) -> ModuleType:
    found = families()
    if name not in found:
        raise UnknownEnvError(f"unknown environment '{name}'; valid choices: {', '.join(found)}")
    try:
        return importlib.import_module(found[name][0])
    except ImportError as e:
        if name in BUILTIN:
            raise
        raise UnknownEnvError(
            f"environment '{name}' is registered by an installed package, but its module "
            f"{found[name][0]} does not import ({e})"
        ) from None


def description(name: str) -> str:
    found = families()
    if name in BUILTIN:
        return found[name][1]
    return getattr(family_module(name), "DESCRIPTION", found[name][1])


def presets() -> dict[str, dict]:
    """Env presets the plug-in families bring ({name: env config}), besides differ's YAML ones."""
    out: dict[str, dict] = {}
    for name in families():
        if name in BUILTIN:
            continue
        module = family_module(name)
        out.update(getattr(module, "PRESETS", None) or {name: {"name": name}})
    return out


def scenarios(name: str) -> list[str]:
    return family_module(name).scenarios(name)


def resolve_scenario(name: str, scenario: str) -> str:
    return family_module(name).resolve(name, scenario)


def make_env(name: str, scenario: str, num_envs: int, time_limit=None, options=None, reward_scale: float = 1.0):
    """The family's VecEnv, its outputs checked (differ/envs/faults.py); with reward_scale != 1 its
    team reward is multiplied by it (env.reward_scale: at 1 the numbers are those of the package)."""
    module = family_module(name)
    try:
        env = module.make(name, scenario, num_envs, time_limit, dict(options or {}))
    except TypeError as e:
        # an env.options key the family or its package does not take ("unexpected keyword")
        if "keyword argument" not in str(e):
            raise
        m = re.search(r"argument '([^']+)'", str(e))
        key = f"env.options.{m.group(1)}" if m else "env.options"
        raise ConfigError(f"{key} is not an option of {name} {scenario} ({e}); remove it") from None
    env = Guarded(env, name, scenario)  # the env's own faults named as such; its raw reward checked
    return env if float(reward_scale) == 1.0 else RewardScaled(env, reward_scale)


def named_scenario(family: str, scenario: str, names, key: str, cutoff: float) -> str:
    """The canonical name among `names` whose lower-cased form is `key`, or one line with the
    closest ones."""
    lookup = {n.lower(): n for n in names}
    if key in lookup:
        return lookup[key]
    close = [lookup[c] for c in difflib.get_close_matches(key, list(lookup), n=4, cutoff=cutoff)]
    raise UnknownEnvError(
        f"unknown {family} scenario '{scenario}'; close choices: "
        f"{', '.join(close or list(names)[:4])}; run `differ envs {family}` to list all"
    )
