"""The precision the learner's agent-network passes run in (`algo.agent_precision`).

float32 by default. With bfloat16 the live and target agent passes run under bfloat16 autocast
(faster, not bit-equal); the Q values come back in float32, so the mixer and the losses stay in
full precision.
"""

from __future__ import annotations

import torch


class AgentPrecision:
    def __init__(self, name: str, device: torch.device):
        self.bf16 = name == "bfloat16"
        self.device = device

    def context(self):
        """The context the agent-network passes run in: bfloat16 autocast where the option asks."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @property
    def obs_dtype(self) -> torch.dtype:
        """What the trainer samples the observations as: bfloat16 when only the agent passes read
        them and run in bfloat16 (one cast in the buffer, no float32 copy), else float32."""
        return torch.bfloat16 if self.bf16 else torch.float32

    def obs(self, obs: torch.Tensor) -> torch.Tensor:
        """The observations as the agent passes read them: in bfloat16 where the option asks, cast
        once per step here (autocast would cast them anew for the live and the target pass, and at
        the largest shapes that copy costs as much as a matmul)."""
        return obs.to(torch.bfloat16) if self.bf16 else obs

    def unroll(self, agent, obs: torch.Tensor, last_action: torch.Tensor, lengths=None) -> torch.Tensor:
        """Q_i of every action over whole episodes, in float32 whatever the passes ran in. With
        lengths (algo.skip_padding) only the steps inside each episode are computed."""
        with self.context():
            q, _ = agent(obs, last_action) if lengths is None else agent(obs, last_action, lengths=lengths)
        return q.float() if self.bf16 else q

    def hiddens(self, agent, obs: torch.Tensor, last_action: torch.Tensor) -> torch.Tensor:
        with self.context():
            h, _ = agent.hiddens(obs, last_action)
        return h.float() if self.bf16 else h
