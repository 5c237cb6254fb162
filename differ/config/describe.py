"""`differ config`: every key of a resolved config with its type, value and help."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

from omegaconf import DictConfig, OmegaConf

from .options import cli_value
from .schema import RunConfig


def describe(cfg: DictConfig) -> str:
    """Every key of a resolved config, one per line: `key: type = value  # help`."""
    lines = []

    def walk(node, schema, prefix):
        types = {f.name: f for f in fields(schema)}
        for name, value in node.items():
            f = types.get(name)
            doc = f.metadata.get("help") if f is not None else None
            sub = f.default_factory if f is not None and is_dataclass(f.default_factory) else None
            if isinstance(value, DictConfig) and sub is not None:
                lines.append(f"{prefix}{name}:  # {doc or ''}".rstrip(" #"))
                walk(value, sub, f"{prefix}{name}.")
                continue
            shown = OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
            kind = str(f.type) if f is not None else type(value).__name__
            # as it is written on the command line: null, true/false, plain strings
            shown = cli_value(shown) if shown is None or isinstance(shown, bool) else shown
            text = f"{prefix}{name}: {kind} = {shown}"
            lines.append(f"{text}  # {doc}" if doc else text)

    walk(cfg, RunConfig, "")
    return "\n".join(lines)
