"""The 2M-step study's pre-registered analysis (scripts/study_2m_report.py) on synthetic runs: the
futility rule of the interim look and the final verdict's fixed wording."""

import importlib.util
from pathlib import Path

import pytest

from .test_results import make_run, ramp

SPEC = importlib.util.spec_from_file_location(
    "study_2m_report", Path(__file__).parents[1] / "scripts/study_2m_report.py"
)
report = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(report)


def study(root, ends: dict[str, list[float]]):
    for algo, values in ends.items():
        for seed, end in enumerate(values, 1):
            make_run(root, f"{algo}-s{seed}", algo, seed, ramp(end), scenario="3s5z_vs_3s6z")


@pytest.mark.parametrize("differ_better", [True, False])
def test_interim_look_stops_only_when_differ_is_not_ahead(tmp_path, differ_better):
    base = [0.30, 0.40, 0.50, 0.60, 0.70]
    study(tmp_path, {"qmix": base, "qmix_differ": [v + (0.05 if differ_better else -0.05) for v in base]})
    text = report.interim(tmp_path, apply=True)
    assert ("CONTINUE" in text) == differ_better and ("STOP" in text) != differ_better
    assert (tmp_path / report.STOP_FILE).exists() != differ_better
    assert "p =" not in text and "CI" not in text  # the look shows nothing but its rule's input


def test_interim_look_waits_for_five_seeds(tmp_path):
    study(tmp_path, {"qmix": [0.3] * 5, "qmix_differ": [0.4] * 4})
    assert "not due: unfinished qmix_differ s5" in report.interim(tmp_path, apply=True)
    assert not (tmp_path / report.STOP_FILE).exists()


def test_final_report_verdicts_in_the_preregistered_wording(tmp_path):
    qmix = [0.10 + 0.02 * i for i in range(10)]
    study(tmp_path / "ahead", {"qmix": qmix, "qmix_differ": [v + 0.5 for v in qmix], "qmix_divide": qmix[:5]})
    text = report.final(tmp_path / "ahead", reps=200)
    assert "**verdict: DIFFER ahead**" in text and "incomplete" not in text
    # 10 vs 10 with no overlap: the exact two-sided p is 2 / C(20, 10)
    assert "p = 1.08e-05 (exact)" in text
    assert "qmix_divide does not depart from qmix" in text
    study(tmp_path / "same", {"qmix": qmix, "qmix_differ": qmix[::-1]})
    text = report.final(tmp_path / "same", reps=200)
    assert "**verdict: no effect detected; the 95" in text and "CI of the difference spans [" in text
    study(tmp_path / "stopped", {"qmix": qmix[:5], "qmix_differ": qmix[:5]})
    (tmp_path / "stopped" / report.STOP_FILE).write_text("")
    assert "stopped for futility at the interim look" in report.final(tmp_path / "stopped", reps=200)
