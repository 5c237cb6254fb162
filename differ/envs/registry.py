"""Which environment families exist and how to build them.

Each family module is imported only when used (an LBF run never loads JAX) and exposes, taking
the family name first so one module may serve several families:
  scenarios(family) -> list[str]
  resolve(family, scenario) -> str          canonical name, or UnknownScenarioError
  make(family, scenario, num_envs, time_limit, options) -> VecEnv
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType

from ..errors import ConfigError

FAMILIES: dict[str, tuple[str, str]] = {
    # name: (module, one-line description)
    "smax": ("differ.envs.smax", "SMAX: StarCraft-like micromanagement in JAX (jaxmarl), heuristic enemy"),
    "lbf": ("differ.envs.gym_family", "Level-Based Foraging (lbforaging)"),
    "rware": ("differ.envs.gym_family", "Multi-robot warehouse (rware)"),
    "mpe": ("differ.envs.gym_family", "Multi-particle environments (mpe2)"),
}


class UnknownEnvError(ConfigError):
    """An environment family or scenario that does not exist; the message names valid choices."""


def family_module(name: str) -> ModuleType:
    if name not in FAMILIES:
        raise UnknownEnvError(f"unknown environment '{name}'; valid choices: {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[name][0])


def scenarios(name: str) -> list[str]:
    return family_module(name).scenarios(name)


def resolve_scenario(name: str, scenario: str) -> str:
    return family_module(name).resolve(name, scenario)


def make_env(name: str, scenario: str, num_envs: int, time_limit=None, options=None):
    module = family_module(name)
    try:
        return module.make(name, scenario, num_envs, time_limit, dict(options or {}))
    except TypeError as e:
        # an env.options key the family or its package does not take ("unexpected keyword")
        if "keyword argument" not in str(e):
            raise
        m = re.search(r"argument '([^']+)'", str(e))
        key = f"env.options.{m.group(1)}" if m else "env.options"
        raise ConfigError(f"{key} is not an option of {name} {scenario} ({e}); remove it") from None
