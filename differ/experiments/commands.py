"""`differ plot`, `differ summary` and `differ analyze`: figures and tables from run directories."""

from __future__ import annotations

import re
from pathlib import Path

from ..config import ConfigError, flag_option, int_option, parse_overrides
from . import plots
from .results import find_runs, group, pick_metric, summarise
from .tables import markdown, scale_notes, write_csv

OPTIONS = {
    "plot": {"metric", "out", "title", "unfinished", "stat", "seeds", "reps"},
    "summary": {"metric", "out", "reps", "unfinished", "compare"},
    "fig9": {"out", "unfinished"},
    "fig10": {"out", "episode", "episodes", "seed"},
    "fig11": {"out", "metric", "reps", "unfinished"},
    "fig12": {"out", "unfinished"},
    "fair": {"out", "unfinished"},
    "marl-eval": {"out", "unfinished", "absolute"},
}


def _split(cmd: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    paths = [a for a in args if "=" not in a]
    opts = parse_overrides([a for a in args if "=" in a])
    unknown = set(opts) - OPTIONS[cmd]
    if unknown:
        raise ConfigError(
            f"unknown {cmd} option(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(OPTIONS[cmd]))}"
        )
    if not paths:
        raise ConfigError(f"{cmd} needs at least one run or sweep directory")
    return paths, opts


def _default_out(paths: list[str], name: str) -> Path:
    """Next to the data: DIR/figures/NAME for one directory, ./figures/NAME otherwise."""
    base = Path(paths[0]) if len(paths) == 1 and Path(paths[0]).is_dir() else Path(".")
    return base / "figures" / name


def load_runs(paths: list[str], opts: dict[str, str]):
    """The runs under `paths`. Runs that have not reached their t_max (still going, stopped or
    killed) are left out, with a note, unless `unfinished=true`: a half-done seed would otherwise
    cut every curve short and enter the statistics with an early score."""
    import sys

    unfinished = flag_option(opts, "unfinished")
    runs = find_runs(paths)
    if unfinished:
        return runs
    done = [r for r in runs if r.finished]
    left = [r for r in runs if not r.finished]
    if left:
        if not done:
            raise ConfigError(
                f"none of the {len(runs)} runs has reached its t_max yet; pass unfinished=true to use them as they are"
            )
        names = ", ".join(f"{r.path.name} ({r.t_env:,}/{r.t_max:,})" for r in left)
        print(
            f"note: leaving out {len(left)} unfinished run(s): {names}; unfinished=true includes them", file=sys.stderr
        )
    return done


def _print_files(files: list[str]) -> None:
    print("wrote " + ", ".join(files))


def run_command(cmd: str, args: list[str]) -> int:
    if cmd == "export":
        if not args or args[0] != "marl-eval":
            raise ConfigError("export needs a format: marl-eval (see `differ --help`)")
        cmd, args = args[0], args[1:]
    if cmd == "analyze":
        if not args or args[0] not in ("fig9", "fig10", "fig11", "fig12", "fair"):
            raise ConfigError("analyze needs one of fig9, fig10, fig11, fig12, fair (see `differ --help`)")
        cmd, args = args[0], args[1:]
    paths, opts = _split(cmd, args)
    if cmd == "marl-eval":
        from .export import write

        out = opts.get("out") or _default_out(paths, "marl_eval").with_suffix(".json")
        absolute = flag_option(opts, "absolute", default=True)
        print(f"wrote {write(load_runs(paths, opts), out, absolute)}")
    elif cmd == "plot":
        runs = load_runs(paths, opts)
        metric = opts.get("metric")  # none: each panel its env's own (win rate or return)
        if metric:
            name = pick_metric(runs, metric)  # some panel logged it
        else:
            per_panel = {pick_metric([r for rs in by.values() for r in rs], None) for by in group(runs).values()}
            name = per_panel.pop() if len(per_panel) == 1 else "curves"
        stat = opts.get("stat", "mean")
        if stat not in ("mean", "iqm"):
            raise ConfigError(f"stat must be mean (min-max band) or iqm (95% CI band), got '{stat}'")
        _print_files(
            plots.plot_curves(
                runs,
                metric,
                opts.get("out") or _default_out(paths, name),
                opts.get("title"),
                stat=stat,
                seeds=flag_option(opts, "seeds"),
                reps=int_option(opts, "reps", 2000),
            )
        )
    elif cmd == "summary":
        summary(paths, opts, runs=None)
    elif cmd == "fig9":
        runs = [r for r in load_runs(paths, opts) if "td_ind_std_norm" in r.metrics()]
        if not runs:
            raise ConfigError("no run logged td_ind_std_norm (DIFFER and -divide runs do)")
        _print_files(
            plots.plot_curves(
                runs,
                "td_ind_std_norm",
                opts.get("out") or _default_out(paths, "fig9_td_std"),
                "Fig. 9: normalised std of individual TD errors",
            )
        )
    elif cmd == "fig10":
        _print_files(fig10(paths[0], opts))
    elif cmd == "fig11":
        runs = [
            r
            for r in load_runs(paths, opts)
            if r.config.get("algo.learner") == "differ" and r.config.get("algo.differ.selection") == "per"
        ]
        if not runs:
            raise ConfigError(
                "no DIFFER runs (algo.learner=differ, algo.differ.selection=per) found; run "
                "`differ sweep preset=warmup_ablation ...` first"
            )
        for r in runs:
            r.label = plots.eta_label(r)
        metric = pick_metric(runs, opts.get("metric"))
        out = opts.get("out") or _default_out(paths, "fig11_warmup")
        _print_files(plots.plot_curves(runs, metric, out, "Fig. 11: η warm-up vs fixed η"))
        summary(paths, {"out": str(out), "metric": metric, **({"reps": opts["reps"]} if "reps" in opts else {})}, runs)
    elif cmd == "fair":
        _print_files(
            plots.plot_fair_health(load_runs(paths, opts), opts.get("out") or _default_out(paths, "fair_replay"))
        )
    elif cmd == "fig12":
        _print_files(
            plots.plot_sample_share(
                load_runs(paths, opts), opts.get("out") or _default_out(paths, "fig12_sample_share")
            )
        )
    return 0


def compare_items(text: str) -> list[str]:
    """compare=A:B,C:D split at the commas between pairs; a label that names several settings,
    `qmix (agent_precision=bfloat16, fused_gru=True)`, keeps the commas inside its brackets."""
    return [item.strip() for item in re.split(r",(?![^()]*\))", text) if item.strip()]


def summary(paths: list[str], opts: dict[str, str], runs=None) -> None:
    runs = runs or load_runs(paths, opts)
    metric = pick_metric(runs, opts.get("metric"))
    pairs = []
    for item in compare_items(opts.get("compare", "")):
        a, sep, b = item.partition(":")
        if not sep or not a or not b or a == b:
            raise ConfigError(f"compare= takes LABEL:BASE pairs of two labels separated by commas, got '{item}'")
        pairs.append((a, b))
    labels = {r.label for r in runs}
    for a, b in pairs:
        for name in (a, b):
            if name not in labels:
                raise ConfigError(f"compare={a}:{b}: no runs labelled '{name}'; labels: {', '.join(sorted(labels))}")
    rows = summarise(runs, metric, reps=int_option(opts, "reps", 2000), pairs=pairs)
    text = markdown(rows, metric, scale_notes(runs))
    print(text)
    out = Path(opts.get("out") or _default_out(paths, "summary"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    write_csv(rows, metric, out.with_suffix(".csv"))
    print(f"wrote {out.with_suffix('.md')}, {out.with_suffix('.csv')}")


def fig10(path: str, opts: dict[str, str]) -> list[str]:
    """From a dump CSV, or from a run directory (its dump is made first with `differ evaluate`)."""
    p = Path(path)
    if p.is_dir():
        csv_path = p / "individual_rewards.csv"
        if not csv_path.exists():
            from ..commands.evaluate import evaluate

            evaluate(str(p), int_option(opts, "episodes", 8), int_option(opts, "seed", None, minimum=0), str(csv_path))
    else:
        csv_path = p
    if not csv_path.exists():
        raise ConfigError(f"{csv_path} does not exist (a run directory or an individual-reward dump CSV)")
    episode = int_option(opts, "episode", 0, minimum=0)
    default = (p if p.is_dir() else p.parent) / "figures" / f"fig10_individual_rewards_ep{episode}"
    return plots.plot_individual_rewards(csv_path, opts.get("out") or default, episode)
