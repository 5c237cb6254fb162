"""`differ verify`: DIFFER is exact for every registered mixer, and the check catches a mixer for
which it is not (one that mixes across time steps)."""

import pytest
import torch

from differ import cli
from differ.commands.verify import verify
from differ.nets import mixers


@pytest.mark.parametrize("algo", ["vdn", "qmix", "qplex"])
def test_every_registered_mixer_is_exact(algo):
    assert algo in mixers.MIXERS or algo == "vdn"
    r = verify({"algo": algo, "env": "smax", "env.scenario": "2s3z"}, episodes=6)
    assert r["deaths"] > 0 and r["valid_steps"] > 0  # a batch with deaths and padding
    assert r["eq1_rel_error"] <= 1e-6 and r["divide_rel_error"] <= 1e-6 and r["exact"]


def test_all_mixers_are_covered():
    assert set(mixers.MIXERS) == {"vdn", "qmix", "qplex"}  # add a new mixer to the test above


class AcrossSteps(mixers.Mixer):
    """Not exact for DIFFER: Q_tot at (b, t) depends on the Q_i of every other step."""

    def __init__(self, n_agents, state_dim, **_):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def mix(self, x):
        total = x.qs.sum(-1)
        return total * (1 + 0.5 * torch.tanh(total.mean())) * self.scale


def test_a_mixer_that_mixes_across_steps_fails(monkeypatch, capfd):
    monkeypatch.setitem(mixers.MIXERS, "across_steps", AcrossSteps)
    code = cli.main(["verify", "algo=qmix", "algo.mixer=across_steps", "env=lbf", "env.time_limit=20"])
    out, err = capfd.readouterr()
    assert code == 1 and "FAILS" in out
    assert "DIFFER is not exact for mixer across_steps" in err and "Traceback" not in err
