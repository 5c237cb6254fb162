"""`differ plot / summary / analyze` on small synthetic run directories: files appear, and the
statistics equal values computed by hand."""

import csv
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from differ.experiments import results, stats

from .conftest import run_cli

T = [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]


def make_run(root, name, algo, seed, values, scenario="3m", extra_algo=None, train=None, t_max=T[-1], env="smax"):
    d = root / name
    d.mkdir(parents=True)
    algo_cfg = {"name": algo, "learner": "differ" if "differ" in algo else "team", **(extra_algo or {})}
    OmegaConf.save(
        OmegaConf.create({"algo": algo_cfg, "env": {"name": env, "scenario": scenario}, "seed": seed, "t_max": t_max}),
        d / "config.yaml",
    )
    lines = [
        {"t_env": t, **({"test_battle_won_mean": v} if env == "smax" else {}), "test_return_mean": 2 * v}
        for t, v in zip(T, values)
    ]
    for t, rec in (train or {}).items():
        lines.append({"t_env": t, **rec})
    lines.sort(key=lambda r: r["t_env"])
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return d


def ramp(end, start=0.0):
    return list(np.linspace(start, end, len(T)))


def test_final_and_auc_by_hand():
    t = np.array(T, float)
    v = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1.0])
    assert stats.final_score(t, v) == pytest.approx(0.75)  # evaluations at t >= 900
    # trapezoids: 0 up to 800, then (0+0.5)/2*100 + (0.5+1)/2*100 = 25 + 75 = 100, over 1000 steps
    assert stats.auc_score(t, v) == pytest.approx(0.1)


def test_iqm_and_probability_of_improvement_by_hand():
    m, lo, hi = stats.iqm_ci(np.array([0.1, 0.4, 0.5, 0.9]), reps=500)
    assert m == pytest.approx(0.45)  # 25% trimmed on each side: mean of 0.4 and 0.5
    assert lo <= m <= hi and 0.1 <= lo and hi <= 0.9
    # pairs x > y: (1,0) (2,0) (3,0) (3,2) and the tie (2,2) counts half: 4.5 of 9
    p, lo, hi = stats.prob_improvement(np.array([1, 2, 3]), np.array([0, 2, 5]), reps=500)
    assert p == pytest.approx(0.5)
    assert 0 <= lo <= p <= hi <= 1
    assert stats.prob_improvement(np.array([3, 4]), np.array([1, 2]), reps=100)[0] == 1.0


def test_confidence_intervals_are_reproducible():
    """Same scores, same interval, whatever the global numpy RNG has done in between (rliable's
    bootstraps draw from np.random, not from the random_state they are given)."""
    x, y = np.array([0.76, 0.74, 0.79, 0.90, 0.72]), np.array([0.99, 0.74, 0.77, 0.38, 1.13])
    first = stats.iqm_ci(x, reps=300), stats.prob_improvement(x, y, reps=300)
    for s in range(3):
        np.random.seed(100 + s)
        np.random.random(17)
        assert (stats.iqm_ci(x, reps=300), stats.prob_improvement(x, y, reps=300)) == first
    state = np.random.get_state()[1].copy()
    stats.iqm_ci(x, reps=50)
    assert (np.random.get_state()[1] == state).all()  # the caller's global RNG is left as it was


def test_summary_command_writes_tables_with_hand_checked_numbers(tmp_path):
    finals_q, finals_d = [0.2, 0.4, 0.6], [0.5, 0.7, 0.9]
    for s, (fq, fd) in enumerate(zip(finals_q, finals_d), 1):
        make_run(tmp_path, f"qmix_s{s}", "qmix", s, ramp(fq))
        make_run(tmp_path, f"qmix_differ_s{s}", "qmix_differ", s, ramp(fd))
    out = tmp_path / "sum"
    proc = run_cli("summary", str(tmp_path), f"out={out}", "reps=300")
    # finals 0.95·f: DIFFER 0.475 0.665 0.855 vs QMIX 0.19 0.38 0.57; only 0.475 < 0.57 loses: 8 of 9
    assert "P(qmix_differ > qmix) = 0.89" in proc.stdout
    rows = {r["algorithm"]: r for r in csv.DictReader(open(out.with_suffix(".csv")))}
    assert set(rows) == {"qmix", "qmix_differ"}
    # a linear ramp 0 -> f: final = mean of the last two points (0.9 f and f); AUC = f / 2
    for algo, finals in (("qmix", finals_q), ("qmix_differ", finals_d)):
        expect_final = [0.95 * f for f in finals]
        assert float(rows[algo]["final_mean"]) == pytest.approx(np.mean(expect_final), rel=1e-5)
        assert float(rows[algo]["auc_mean"]) == pytest.approx(np.mean(finals) / 2, rel=1e-5)
        assert float(rows[algo]["iqm_final"]) == pytest.approx(np.mean(expect_final), rel=1e-5)  # 3 seeds: no trim
        assert rows[algo]["seeds"] == "1 2 3"
    assert (
        float(rows["qmix_differ"]["poi"]) == pytest.approx(8 / 9, rel=1e-5)
        and rows["qmix_differ"]["poi_base"] == "qmix"
    )
    # AUCs f/2: DIFFER 0.25 0.35 0.45 vs QMIX 0.1 0.2 0.3; 0.25 < 0.3 is the one loss of 9
    assert float(rows["qmix_differ"]["poi_auc"]) == pytest.approx(8 / 9, rel=1e-5) and rows["qmix"]["poi_auc"] == ""
    assert "| smax 3m | qmix_differ | 3 |" in out.with_suffix(".md").read_text()
    # any pair on request: QMIX beats DIFFER only where 0.57 > 0.475, 1 of 9
    proc = run_cli("summary", str(tmp_path), f"out={out}", "reps=300", "compare=qmix:qmix_differ")
    assert "P(qmix > qmix_differ) = 0.11" in proc.stdout and "P(qmix_differ > qmix) = 0.89" in proc.stdout
    for bad, says in (("compare=qmix", "LABEL:BASE"), ("compare=qmix:vdn", "no runs labelled 'vdn'")):
        proc = run_cli("summary", str(tmp_path), f"out={out}", bad, check=False)
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr


def test_compare_keeps_the_commas_of_a_label_with_several_settings():
    from differ.experiments.commands import compare_items

    assert compare_items("qmix:vdn, maser:qmix") == ["qmix:vdn", "maser:qmix"]
    both = "qmix (agent_precision=bfloat16, fused_gru=True):qmix (agent_precision=float32, fused_gru=False)"
    assert compare_items(both + ",qmix:vdn") == [both, "qmix:vdn"]
    assert compare_items("") == []


def test_plot_and_labels_for_an_ablation(tmp_path):
    for s in (1, 2):
        make_run(tmp_path, f"w{s}", "qmix_differ", s, ramp(0.8))
        # written in the flat layout of differ 0.1: read through the migration to algo.differ.*
        make_run(tmp_path, f"f{s}", "qmix_differ", s, ramp(0.4), extra_algo={"eta_warmup": False, "eta_start": 0.94})
        make_run(tmp_path, f"q{s}", "qmix", s, ramp(0.3), scenario="3s5z")
    runs = results.find_runs([tmp_path])
    labels = {r.path.name: r.label for r in runs}
    assert labels["q1"] == "qmix"
    assert labels["w1"] != labels["f1"] and "differ.eta_warmup=False" in labels["f1"]
    assert set(results.group(runs)) == {"smax 3m", "smax 3s5z"}
    out = tmp_path / "fig"
    run_cli("plot", str(tmp_path), f"out={out}")
    _check_image(out)
    run_cli("analyze", "fig11", str(tmp_path), f"out={tmp_path / 'fig11'}", "reps=200")
    _check_image(tmp_path / "fig11")
    rows = list(csv.DictReader(open(tmp_path / "fig11.csv")))
    assert {r["algorithm"] for r in rows} == {"η warm-up 0.8 → 1", "fixed η = 0.94"}


def test_analysis_figures_from_logged_diagnostics(tmp_path):
    for s in (1, 2):
        train = {
            t: {
                "td_ind_std_norm": 1.0 + t / 1000 * s,
                "sample_share/stalker": 0.4,
                "sample_share/zealot": 0.6,
                "valid_share/stalker": 0.375,
                "valid_share/zealot": 0.625,
                "sample_share/agent_0": 0.1,
            }
            for t in T[1:]
        }
        make_run(tmp_path, f"d{s}", "qmix_differ", s, ramp(0.5), scenario="3s5z", train=train)
    run_cli("analyze", "fig9", str(tmp_path), f"out={tmp_path / 'f9'}")
    _check_image(tmp_path / "f9")
    # a homogeneous map: one unit type, share 1 by definition, so no Fig. 12 panel for it
    make_run(
        tmp_path,
        "m1",
        "qmix_differ",
        1,
        ramp(0.5),
        scenario="27m_vs_30m",
        train={t: {"td_ind_std_norm": 1.0, "sample_share/marine": 1.0} for t in T[1:]},
    )
    p = run_cli("analyze", "fig12", str(tmp_path), f"out={tmp_path / 'f12'}")
    assert "leaving out smax 27m_vs_30m: one unit type" in p.stderr
    _check_image(tmp_path / "f12")
    p = run_cli("analyze", "fig12", str(tmp_path / "m1"), check=False)
    assert p.returncode == 2 and "two or more unit types" in p.stderr
    # fig10 from a dump CSV: two unit types, one agent dies at t=2
    dump = tmp_path / "ir.csv"
    with open(dump, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["episode", "t", "agent", "unit_type", "alive", "reward_team", "reward_i", "td_i", "g_i", "q_i"])
        for t in range(5):
            for i, ut in enumerate(["stalker", "zealot", "zealot"]):
                w.writerow([0, t, i, ut, int(not (i == 2 and t >= 2)), 0.1, 0.05 * i + 0.01 * t, 0, 1, 0])
    run_cli("analyze", "fig10", str(dump), f"out={tmp_path / 'f10'}")
    _check_image(tmp_path / "f10")


def test_unfinished_runs_are_left_out_unless_asked_for(tmp_path):
    make_run(tmp_path, "done", "qmix", 1, ramp(0.5))
    make_run(tmp_path, "going", "qmix", 2, ramp(0.9), t_max=2000)  # logged up to 1000 of 2000 steps
    out = tmp_path / "sum"
    p = run_cli("summary", str(tmp_path), f"out={out}", "reps=100")
    assert "leaving out 1 unfinished run(s): going (1,000/2,000)" in p.stderr
    row = next(csv.DictReader(open(out.with_suffix(".csv"))))
    assert row["seeds"] == "1" and float(row["final_mean"]) == pytest.approx(0.95 * 0.5)
    run_cli("summary", str(tmp_path), f"out={out}", "reps=100", "unfinished=true")
    row = next(csv.DictReader(open(out.with_suffix(".csv"))))
    assert row["seeds"] == "1 2" and float(row["final_mean"]) == pytest.approx(0.95 * 0.7)
    p = run_cli("plot", str(tmp_path / "going"), check=False)
    assert p.returncode == 2 and "none of the 1 runs has reached its t_max" in p.stderr


def test_clear_errors(tmp_path):
    make_run(tmp_path, "a", "qmix", 1, ramp(0.5))
    p = run_cli("plot", str(tmp_path), "metric=nope", check=False)
    assert p.returncode == 2 and "no run logged metric 'nope'" in p.stderr and "test_return_mean" in p.stderr
    p = run_cli("summary", str(tmp_path / "missing"), check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = run_cli("analyze", "fig12", str(tmp_path), check=False)
    assert p.returncode == 2 and "sample_share" in p.stderr
    p = run_cli("plot", str(tmp_path), "colour=red", check=False)
    assert p.returncode == 2 and "unknown plot option" in p.stderr


def _check_image(stem):
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 1_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_picks_each_panels_metric_from_its_env(tmp_path, monkeypatch):
    """Win rate for an env with battles, return for one without, in one figure."""
    from differ.experiments import plots

    for s in (1, 2):
        make_run(tmp_path, f"smax{s}", "qmix", s, ramp(0.5))
        make_run(tmp_path, f"lbf{s}", "qmix", s, ramp(0.5), env="lbf", scenario="Foraging-8x8-2p-3f-v3")
    seen = {}
    monkeypatch.setattr(
        plots,
        "_save",
        lambda fig, out: seen.update({ax.get_title(): ax.get_ylabel() for ax in fig.axes if ax.get_visible()}) or [],
    )
    plots.plot_curves(results.find_runs([tmp_path]), None, tmp_path / "x")
    assert seen == {
        "smax 3m": plots.PRETTY["test_battle_won_mean"],
        "lbf Foraging-8x8-2p-3f-v3": plots.PRETTY["test_return_mean"],
    }
    plots.plot_curves(results.find_runs([tmp_path]), "test_return_mean", tmp_path / "x")
    assert set(seen.values()) == {plots.PRETTY["test_return_mean"]}
    out = run_cli("plot", str(tmp_path)).stdout
    assert "curves.png" in out
    # a metric only one panel's env logs still plots (the other panel stays empty)
    assert "test_battle_won_mean.png" in run_cli("plot", str(tmp_path), "metric=test_battle_won_mean").stdout


def test_mann_whitney_p_is_scipys_exact_test_and_holm_adjusts_the_table():
    from scipy.stats import PermutationMethod, mannwhitneyu

    x, y = [0.91, 0.55, 0.72, 0.80, 0.66], [0.31, 0.60, 0.42, 0.38, 0.50]
    p, method = stats.mann_whitney_p(x, y)
    assert method == "exact"
    assert p == pytest.approx(mannwhitneyu(x, y, method="exact").pvalue) and p == pytest.approx(2 * 2 / 252)
    # ties (win rates at their floor): the exact permutation distribution, not the no-ties table
    xt, yt = [0, 0, 0, 0.1, 0.2], [0, 0, 0, 0, 0]
    p, method = stats.mann_whitney_p(xt, yt)
    assert method == "exact (permutation)"
    assert p == pytest.approx(mannwhitneyu(xt, yt, method=PermutationMethod(n_resamples=np.inf)).pvalue)
    # by hand: U ≥ observed in 2·C(8,3)/C(10,5)... check against a direct enumeration
    from itertools import combinations

    pooled = np.array(xt + yt)

    def u(idx):
        a, b = pooled[list(idx)], np.delete(pooled, list(idx))
        return (a[:, None] > b[None]).sum() + 0.5 * (a[:, None] == b[None]).sum()

    us = np.array([u(c) for c in combinations(range(10), 5)])
    obs = u(range(5))
    assert p == pytest.approx(min(1, 2 * min((us >= obs).mean(), (us <= obs).mean())))
    assert stats.mann_whitney_p([0, 0], [0, 0]) == (1.0, "exact (permutation)")
    # Holm: sorted p times (m, m-1, ...), running maximum, capped at 1, in the input order
    assert stats.holm([0.01, 0.04, 0.03, float("nan"), 0.5]) == pytest.approx(
        [0.04, 0.09, 0.09, float("nan"), 0.5], nan_ok=True
    )


def test_summary_reports_sample_sd_p_holm_and_does_not_overclaim(tmp_path):
    # 3 vs 3 seeds, every DIFFER seed above every QMIX seed: the smallest exact two-sided p is
    # 2/20 = 0.1, so nothing can be called, and the table says "not detected" with the CI
    for s, (fq, fd) in enumerate(zip([0.2, 0.4, 0.6], [0.7, 0.8, 0.9]), 1):
        make_run(tmp_path, f"qmix_s{s}", "qmix", s, ramp(fq))
        make_run(tmp_path, f"qmix_differ_s{s}", "qmix_differ", s, ramp(fd))
        make_run(tmp_path, f"qmix_divide_s{s}", "qmix_divide", s, ramp(fq + 0.01))
    out = tmp_path / "sum"
    proc = run_cli("summary", str(tmp_path), f"out={out}", "reps=200")
    rows = {r["algorithm"]: r for r in csv.DictReader(open(out.with_suffix(".csv")))}
    assert float(rows["qmix"]["final_sd"]) == pytest.approx(np.std([0.19, 0.38, 0.57], ddof=1), rel=1e-5)
    assert float(rows["qmix_differ"]["p"]) == pytest.approx(0.1) and rows["qmix_differ"]["p_method"] == "exact"
    # four comparisons (differ and divide against qmix, final and AUC): Holm multiplies the smallest by 4
    assert float(rows["qmix_differ"]["p_holm"]) == pytest.approx(0.4)
    assert rows["qmix_divide"]["poi_base"] == "qmix"
    # Hodges-Lehmann: the median of the 9 seed-pair differences; 3 vs 3 allows at most a 90% CI,
    # the widest one, [min, max] of the differences
    assert float(rows["qmix_differ"]["diff"]) == pytest.approx(0.95 * 0.4, rel=1e-5)
    assert float(rows["qmix_differ"]["diff_ci_low"]) == pytest.approx(0.95 * 0.1, rel=1e-5)
    assert float(rows["qmix_differ"]["diff_ci_high"]) == pytest.approx(0.95 * 0.7, rel=1e-5)
    assert float(rows["qmix_differ"]["diff_ci_level"]) == pytest.approx(0.9)
    assert "ahead" not in proc.stdout and "no difference" not in proc.stdout
    assert "not detected; the 90% CI of the difference spans [0.095, 0.665]" in proc.stdout
    assert "4 comparisons" in proc.stdout


def test_a_clear_difference_is_called_with_its_direction(tmp_path):
    for s in range(1, 7):
        make_run(tmp_path, f"vdn_s{s}", "vdn", s, ramp(0.1 + 0.01 * s))
        make_run(tmp_path, f"vdn_differ_s{s}", "vdn_differ", s, ramp(0.6 + 0.01 * s))
    proc = run_cli("summary", str(tmp_path), f"out={tmp_path / 'sum'}", "reps=200")
    # 6 vs 6, complete separation: exact p = 2/924; two comparisons (final, AUC)
    assert "ahead (p_holm = 0.00433)" in proc.stdout


def test_the_shift_ci_is_the_inverted_exact_test_with_its_stated_coverage():
    from scipy.stats import mannwhitneyu

    # 5 vs 5: the textbook interval [d_(3), d_(23)] of the 25 sorted differences, coverage 1 − 2·4/252
    x, y = np.array([1.0, 2.5, 3.1, 4.7, 6.0]), np.array([0.2, 0.9, 1.4, 2.2, 3.3])
    d = np.sort((x[:, None] - y[None]).ravel())
    est, lo, hi, cover = stats.shift_ci(x, y)
    assert (est, lo, hi) == (np.median(d), d[2], d[22]) and cover == pytest.approx(1 - 8 / 252)
    # it agrees with the exact test: the CI excludes 0 exactly where p < 0.05
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b = rng.normal(size=5), rng.normal(0.8, 1, size=5)
        _, lo, hi, _ = stats.shift_ci(a, b)
        assert (lo > 0 or hi < 0) == (mannwhitneyu(a, b, method="exact").pvalue < 0.05)
    # and covers a true shift as often as it says (normal data, shift 0.3, 6 vs 7 seeds)
    hits = [
        lo <= 0.3 <= hi
        for lo, hi in (stats.shift_ci(rng.normal(0.3, 1, 6), rng.normal(0, 1, 7))[1:3] for _ in range(1500))
    ]
    cover = stats.shift_ci(np.zeros(6) + np.arange(6), np.arange(7) + 0.5)[3]
    assert cover >= 0.95 and np.mean(hits) == pytest.approx(cover, abs=0.02)


def test_absolute_metric_scores_each_checkpoint_by_its_nearest_test(tmp_path):
    """marl-eval's best policy (experiments/absolute.py): a checkpoint is scored by the test nearest
    its step (of two as near, the earlier); best score first, then the checkpoint nearest its
    test, then the earliest; checkpoints of a run without tests score nothing."""
    from differ.experiments.absolute import ranked_checkpoints

    (tmp_path / "checkpoints").mkdir()
    for t in (100, 200, 250, 300, 500):
        (tmp_path / "checkpoints" / f"ckpt_{t:012d}.pt").write_bytes(b"")
    tests = {20: 1.0, 120: 3.0, 150: 0.0, 220: 3.0, 280: 2.0, 480: 3.0}
    records = [{"t_env": t, "test_return_mean": v} for t, v in tests.items()] + [{"t_env": 300, "loss_td": 0.1}]
    ranked = ranked_checkpoints(tmp_path, records)
    # 100 -> 120 (3.0, 20 away); 200 -> 220 (3.0, 20); 250 -> 220 (tied with 280: the earlier; 30);
    # 300 -> 280 (2.0); 500 -> 480 (3.0, 20)
    assert [(c.t_env, c.test_t_env, c.test_return) for c in ranked] == [
        (100, 120, 3.0),
        (200, 220, 3.0),
        (500, 480, 3.0),
        (250, 220, 3.0),
        (300, 280, 2.0),
    ]
    assert ranked_checkpoints(tmp_path, [{"t_env": 300, "loss_td": 0.1}]) == []


def test_iqm_band_and_per_seed_lines(tmp_path, monkeypatch):
    """stat=iqm draws the interquartile mean over seeds with its bootstrap CI; seeds=true adds
    each seed's evaluations as they were logged."""
    from differ.experiments import plots

    values = np.array([[0.0, 1.0], [0.4, 2.0], [0.5, 3.0], [0.9, 40.0]])
    centre, low, high = plots.iqm_band(values, reps=300)
    assert centre == pytest.approx([0.45, 2.5])  # the middle two seeds at each point
    assert np.all(low <= centre) and np.all(centre <= high)
    assert np.all(low >= values.min(0)) and np.all(high <= values.max(0)) and high[1] > 2.5
    ends = [0.2, 0.4, 0.6, 0.8, 2.0]  # the outlier moves the mean but not the IQM
    for s, end in enumerate(ends, 1):
        make_run(tmp_path, f"q{s}", "qmix", s, ramp(end))
    seen = {}

    def keep(fig, out):
        ax = fig.axes[0]
        seen.update(lines=[(line.get_xdata(), line.get_ydata(), line.get_linewidth()) for line in ax.lines])
        seen.update(legend=[t.get_text() for t in ax.get_legend().get_texts()])
        return []

    monkeypatch.setattr(plots, "_save", keep)
    runs = results.find_runs([tmp_path])
    plots.plot_curves(runs, "test_battle_won_mean", tmp_path / "x", stat="iqm", seeds=True, reps=200)
    (t, centre, _), *per_seed = seen["lines"]
    assert centre[-1] == pytest.approx(0.6)  # rliable's IQM of 5 seeds drops one at each end
    assert len(per_seed) == 5 and sorted(line[1][-1] for line in per_seed) == ends
    assert all(len(line[0]) == len(T) and line[2] < 1 for line in per_seed)
    assert seen["legend"] == ["qmix (5 seeds; IQM, 95% CI)"]
    plots.plot_curves(runs, "test_battle_won_mean", tmp_path / "x")
    assert seen["lines"][0][1][-1] == pytest.approx(np.mean(ends)) and len(seen["lines"]) == 1
    monkeypatch.undo()
    run_cli("plot", str(tmp_path), f"out={tmp_path / 'fig'}", "stat=iqm", "seeds=true", "reps=100")
    _check_image(tmp_path / "fig")
    proc = run_cli("plot", str(tmp_path), "stat=median", check=False)
    assert proc.returncode == 2 and "stat must be mean" in proc.stderr and "Traceback" not in proc.stderr
