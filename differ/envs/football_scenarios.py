"""differ's own Google Research Football scenarios: the two academy tasks of the DIFFER paper with
a fixed team of agents.

Why our own files: gfootball lets an action slot drive any *controllable* player and re-assigns
slots during play (to whoever is nearest the ball) whenever the team has more controllable players
than agents. The stock academy scenarios leave the goalkeeper (and, in counterattack_hard, six
more field players) controllable, so "agent 1" is a different footballer from one step to the next,
which breaks every per-agent method. Here every left player that no agent drives is built with
`controllable=False`: slot i drives `agent_players[i]` for the whole episode, and the adapter
asserts it at every step.

Rosters (positions as gfootball's scenario files: x in [-1, 1] towards the opponent's goal, y in
[-0.42, 0.42], each team in its own frame):
- academy_3_vs_1_with_keeper: the stock layout: our goalkeeper (not controllable) and three
  midfielders at the edge of the box, the centre one on the ball, against the keeper and one
  centre back.
- academy_counterattack_hard: the reduced roster of the CDS / DIFFER experiments: our goalkeeper
  (not controllable) and the stock scenario's four most advanced players, against the keeper and
  the two centre backs between them and the goal (the stock file adds six more players on our side
  and eight on theirs, running back, which those experiments removed; CDS's code ships a scenario
  file with exactly this roster).
Every other setting is the stock one (400-frame game, no offsides, the episode ends on a goal, on
the ball leaving play and on a change of possession).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass


@dataclass(frozen=True)
class Player:
    x: float
    y: float
    role: str  # gfootball's player role (GK, CB, CM, LM, RM, CF, ...)
    unit: str | None = None  # the agent's unit type where an agent drives this player, else None


@dataclass(frozen=True)
class Scenario:
    ball: tuple[float, float]
    left: tuple[Player, ...]  # our team; players with a unit are the agents, in slot order
    right: tuple[Player, ...]  # the built-in AI's team

    @property
    def agent_players(self) -> tuple[int, ...]:
        """The left-team index of the player each action slot drives."""
        return tuple(i for i, p in enumerate(self.left) if p.unit is not None)

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(p.unit for p in self.left if p.unit is not None)


SCENARIOS: dict[str, Scenario] = {
    "academy_3_vs_1_with_keeper": Scenario(
        ball=(0.62, 0.0),
        left=(
            Player(-1.0, 0.0, "GK"),
            Player(0.6, 0.0, "CM", "carrier"),  # starts on the ball, facing the centre back
            Player(0.7, 0.2, "CM", "wing"),
            Player(0.7, -0.2, "CM", "wing"),
        ),
        right=(Player(-1.0, 0.0, "GK"), Player(-0.75, 0.0, "CB")),
    ),
    "academy_counterattack_hard": Scenario(
        ball=(0.26, -0.11),
        left=(
            Player(-1.0, 0.0, "GK"),
            Player(0.5, -0.3161, "CM", "wide"),
            Player(0.25, -0.1, "LM", "central"),  # next to the ball
            Player(0.25, 0.1, "RM", "central"),
            Player(0.35, 0.316102, "CF", "wide"),
        ),
        right=(Player(-1.0, 0.0, "GK"), Player(-0.4, -0.06356, "CB"), Player(-0.4, 0.063559, "CB")),
    ),
}


def module_name(scenario: str) -> str:
    return f"differ_{scenario}"


def install(scenario: str) -> str:
    """Make `scenario` loadable by gfootball (it imports `gfootball.scenarios.<level>`) without
    writing into the installed package: the module is placed in sys.modules under that name.
    Returns the level name to pass to `create_environment(env_name=...)`."""
    import gfootball.scenarios as stock

    name = module_name(scenario)
    full = f"gfootball.scenarios.{name}"
    if full not in sys.modules:
        spec = SCENARIOS[scenario]

        def build_scenario(builder):
            config = builder.config()
            config.game_duration = 400  # football.GAME_LENGTH: the env's time limit stays below it
            config.deterministic = False
            config.offsides = False
            config.end_episode_on_score = True
            config.end_episode_on_out_of_play = True
            config.end_episode_on_possession_change = True
            builder.SetBallPosition(*spec.ball)
            for team, players, ours in ((stock.Team.e_Left, spec.left, True), (stock.Team.e_Right, spec.right, False)):
                builder.SetTeam(team)
                for p in players:
                    role = getattr(stock, f"e_PlayerRole_{p.role}")
                    # only our agents' players are controllable: the slot -> player map is fixed
                    builder.AddPlayer(p.x, p.y, role, controllable=not ours or p.unit is not None)

        module = types.ModuleType(full, f"differ's {scenario} (differ/envs/football_scenarios.py)")
        module.build_scenario = build_scenario
        sys.modules[full] = module
    return name
