"""Learners by name (`algo.learner`): how the agent networks and the mixer are trained.

  team    one team TD loss trains agents and mixer (VDN, QMIX, QPLEX, COMIX)       team.py
  differ  the mixer on team TD, the agents on DIFFER's individual TD (fair replay   differ.py
          or -divide)
  maser   team TD on a subgoal-shaped reward plus MASER's individual term          maser.py
  coma    on-policy actor-critic with a counterfactual baseline, no mixer            coma.py

What they share is in base.py (networks, optimisers, targets, state), values.py (the Q values
and targets of a batch, discrete or continuous) and precision.py.
"""

from ..nets.mixers import MIXERS
from .base import Learner
from .coma import ComaLearner
from .differ import DifferLearner
from .maser import MaserLearner
from .team import TeamLearner

LEARNERS = {"team": TeamLearner, "differ": DifferLearner, "maser": MaserLearner, "coma": ComaLearner}

__all__ = ["LEARNERS", "MIXERS", "Learner", "TeamLearner", "DifferLearner", "MaserLearner", "ComaLearner"]
