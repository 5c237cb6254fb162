"""Typed run configuration: a dataclass schema, YAML presets and `key=value` overrides.

Resolution order (later wins): schema defaults < algorithm preset (`presets/algo/<algo>.yaml`)
< environment preset (`presets/env/<env>.yaml`) < command-line overrides. OmegaConf checks every
key and type against the schema, so a typo fails at start-up instead of being silently ignored.

Settings shared by every algorithm sit directly under `algo`; those of one mixer or learner sit
in its section, `algo.<name>` (e.g. `algo.qmix.embed_dim`, `algo.differ.eta_start`). A run keeps
only the sections of the mixer and learner it uses. Configs saved in the flat layout of
differ 0.1 (before the sections) are read through `migrate`.
"""

from ..errors import ConfigError  # re-exported: bad user input, reported as one line
from .compose import _all_keys, algo_choices, build_config, env_choices, load_run_config
from .describe import describe
from .migrate import FLAT_KEYS, migrate, normalise, section, sections_in_use
from .options import cli_value, flag_option, int_option, number_option, parse_overrides
from .schema import (
    KEY_ROLES,
    PRESETS,
    RESUME_KEYS,
    SAME_EXPERIMENT_KEYS,
    SECTIONS,
    AlgoConfig,
    CEMConfig,
    DifferConfig,
    EnvConfig,
    MaserConfig,
    QMIXConfig,
    QPLEXConfig,
    RunConfig,
    key,
    schema_keys,
)
from .validate import validate

__all__ = [
    "FLAT_KEYS",
    "KEY_ROLES",
    "PRESETS",
    "RESUME_KEYS",
    "SAME_EXPERIMENT_KEYS",
    "SECTIONS",
    "AlgoConfig",
    "CEMConfig",
    "ConfigError",
    "DifferConfig",
    "EnvConfig",
    "MaserConfig",
    "QMIXConfig",
    "QPLEXConfig",
    "RunConfig",
    "_all_keys",
    "algo_choices",
    "build_config",
    "describe",
    "env_choices",
    "cli_value",
    "flag_option",
    "int_option",
    "number_option",
    "key",
    "load_run_config",
    "migrate",
    "normalise",
    "parse_overrides",
    "schema_keys",
    "section",
    "sections_in_use",
    "validate",
]
