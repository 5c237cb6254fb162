"""Acting: controllers that turn observations into actions (ε-greedy or CEM, by the agent's
action kind), the runner that plays a batch of episodes, and the seed and ε schedules."""
