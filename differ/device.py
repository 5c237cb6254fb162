"""Where a run's tensors live: `device=auto|cpu|cuda|cuda:N`.

The learner's networks, its mini-batches and the acting network all sit on the run's device; the
environments, the replay buffer and every random generator stay on the CPU, so a run draws the
same random numbers wherever it computes. `auto` takes the first CUDA GPU when torch sees one.
"""

from __future__ import annotations

import re

import torch

from .errors import ConfigError

_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(name: str) -> torch.device:
    """The torch device `name` means on this machine, or one line saying why it cannot be used."""
    name = str(name).strip().lower()
    if not _PATTERN.match(name):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={name}: torch sees no CUDA GPU here (a CPU-only torch build, or no "
                f"driver); use device=cpu or device=auto"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name}: this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
    return torch.device(name)
