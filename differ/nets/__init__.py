"""The networks: agent networks (by name, `algo.agent`) and mixers (`differ/nets/mixers.py`)."""

from .agent import RNNAgent
from .cem_agent import CEMAgent

# each is built as (obs_dim, action width, n_agents, hidden) and says which actions it acts in
AGENTS = {"rnn": RNNAgent, "cem": CEMAgent}
