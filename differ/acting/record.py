"""What a checkpoint keeps so that `differ.Policy` can act without the env or the config: the
agent network's shape, the observation transform, each agent's actions and (continuous actions)
the boxes and the CEM settings."""

from __future__ import annotations

from ..envs.base import ObsTransform


def policy_record(spec, algo) -> dict:
    """What a checkpoint keeps so that `Policy.load` needs neither the env nor the config."""
    transform = spec.obs_transform or ObsTransform((spec.obs_dim,) * spec.n_agents)
    record = {
        "n_agents": spec.n_agents,
        "n_actions": spec.n_actions,
        "obs_dim": spec.obs_dim,
        "agent_hidden": int(algo.agent_hidden),
        "obs_transform": transform.to_dict(),
        "agent_actions": list(spec.agent_actions or [spec.n_actions] * spec.n_agents),
        "unit_type_names": list(spec.unit_type_names),
        "agent": algo.get("agent", "rnn"),
    }
    if record["agent"] == "cem":  # continuous: the boxes and the CEM settings act with the network
        low, high = spec.actions.bounds()
        record.update(
            low=low.tolist(), high=high.tolist(), cem={k: algo.cem[k] for k in ("samples", "elites", "iterations")}
        )
    return record
