"""Saved configs of older layouts read in today's (`migrate`), and the sections a run keeps."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from .schema import SECTIONS, RunConfig

# Keys of the flat layout (differ 0.1) and where they live now. "@mixer" is the run's own mixer.
# Saved configs in the old layout are read through `migrate`; on the command line an old key
# gets a one-line error naming the new one.
FLAT_KEYS = {
    "mixing_embed_dim": ("@mixer", "embed_dim"),
    "hypernet_hidden": ("@mixer", "hypernet_hidden"),
    "qplex_kernels": ("qplex", "kernels"),
    **{
        k: ("differ", k)
        for k in (
            "selection",
            "eta_start",
            "eta_end",
            "eta_warmup_frac",
            "eta_warmup",
            "beta_start",
            "beta_end",
            "per_alpha",
            "per_eps",
            "g_clamp",
        )
    },
    "maser_alpha": ("maser", "alpha"),
    "maser_lambda": ("maser", "intrinsic_weight"),
    "maser_ind_weight": ("maser", "individual_weight"),
    "maser_train_phi": ("maser", "train_phi"),
    "maser_phi_hidden": ("maser", "phi_hidden"),
}


def migrate(cfg: DictConfig) -> DictConfig:
    """A saved config in the flat layout moved into per-method sections (a no-op otherwise)."""
    algo = cfg.get("algo")
    if not isinstance(algo, DictConfig) or not any(k in algo for k in FLAT_KEYS):
        return cfg
    out = OmegaConf.to_container(cfg, resolve=True)  # an interpolation may name an old flat key
    a = out["algo"]
    for old, (section, key) in FLAT_KEYS.items():
        if old not in a:
            continue
        value = a.pop(old)
        section = a.get("mixer", "qmix") if section == "@mixer" else section
        if section in SECTIONS and key in SECTIONS[section].__dataclass_fields__:
            a.setdefault(section, {}).setdefault(key, value)  # a value already in its section wins
    return OmegaConf.create(out)


def sections_in_use(algo) -> set[str]:
    """The sections a run reads: its mixer's, its learner's and its agent's."""
    return {algo.mixer, algo.learner, algo.get("agent", "rnn")} & set(SECTIONS)


def section(algo: DictConfig, name: str) -> DictConfig:
    """`algo.<name>`, or that section's defaults where the run has none (e.g. `differ verify`
    decomposing a plain QMIX run)."""
    return algo[name] if name in algo else OmegaConf.structured(SECTIONS[name])


def _prune(cfg: DictConfig) -> DictConfig:
    """Drop the sections of methods the run does not use."""
    out = OmegaConf.to_container(cfg, resolve=True)  # nothing may point into a dropped section
    for name in set(SECTIONS) - sections_in_use(cfg.algo):
        out["algo"].pop(name, None)
    pruned = OmegaConf.create(out)
    OmegaConf.set_struct(pruned, True)
    return pruned


def normalise(cfg: DictConfig) -> DictConfig:
    """A saved config in today's layout: migrated, completed with today's defaults, pruned."""
    return _prune(OmegaConf.merge(OmegaConf.structured(RunConfig), migrate(cfg)))
