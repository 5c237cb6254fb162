"""Learners by name (`algo.learner`): how the agent networks and the mixer are trained.

  team    one team TD loss trains agents and mixer (VDN, QMIX, QPLEX)
  differ  the mixer on team TD, the agents on DIFFER's individual TD (fair replay or -divide)
  maser   team TD on a subgoal-shaped reward plus MASER's individual term (the paper's baseline)

Every learner takes (agent, mixer, algo_cfg, spec=..., t_max=..., seed=..., device=...).
"""

from ..nets.mixers import MIXERS
from .differ_learner import DifferLearner
from .maser_learner import MaserLearner
from .q_learner import QLearner

LEARNERS = {"team": QLearner, "differ": DifferLearner, "maser": MaserLearner}

__all__ = ["LEARNERS", "MIXERS"]
