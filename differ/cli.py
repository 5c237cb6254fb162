"""Command line: `differ train|evaluate|envs|bench ...` with `key=value` arguments."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .errors import DifferError, Interrupted
from .orphans import stop_with_parent

USAGE = """usage:
  differ train [algo=qmix] [env=smax] [env.scenario=3m] [seed=1] [t_max=...] [run_dir=...] [key=value ...]
  differ train resume=RUN_DIR [t_max=...]
  differ evaluate PATH [episodes=32] [seed=N] [dump_individual_rewards=FILE.csv]
  differ evaluate PATH video=DIR [episodes=1] [video_format=mp4|gif] [fps=10]   greedy episodes as videos
                                                   PATH: a run directory or a checkpoint file
  differ envs [NAME ...]                             list environments and their scenarios
  differ config [algo=qmix] [env=smax] [key=value ...]
                                                   the resolved config: every key, its type, value and meaning
  differ --version
  differ verify [algo=qmix] [env=smax] [env.scenario=3m] [episodes=8]
                                                   is DIFFER exact for the algorithm's mixer? (Eq. 1)
  differ bench [quick=true] [only=learner,rollout,train,buffer,comix,grf,speed,parallel,profile,busy] [out=FILE]
                                                   speed and memory benchmark (JSON)

  differ sweep key=v1,v2 ... out=DIR [workers=N] [backend=local|ray|submitit] [ray_address=auto|HOST:PORT]
               [slurm.time=MIN slurm.partition=P slurm.cpus=N slurm.mem=GB slurm.gpus=N slurm.cluster=slurm|local]
               [preset=warmup_ablation]              a grid of runs; re-run to skip finished / resume
  differ plot DIR... [metric=test_battle_won_mean] [out=FILE] [stat=mean|iqm] [seeds=true]
                                  curves: mean over seeds, min-max band (iqm: IQM, 95% CI); seeds: each seed's line
  differ summary DIR... [metric=...] [out=PREFIX] [reps=2000] [compare=A:B,...]
                                  final, AUC (sample sd), IQM [95% CI]; X_differ and X_divide vs X and A vs B:
                                  difference and P(improvement) [95% CI], exact Mann-Whitney p, Holm-adjusted
  differ analyze fig9|fig10|fig11|fig12|fair PATH... [out=FILE]  the paper's analysis figures:
      fig9   normalised std of individual TD errors over training   (run or sweep dirs)
      fig10  individual rewards along an evaluation episode         (a run dir, or a dump CSV) [episode=0]
      fig11  warm-up ablation: η warm-up vs fixed η                 (the warmup_ablation sweep dir)
      fig12  share of sampled individual experiences per unit type  (run or sweep dirs)
      fair   fair replay's health: draws on the top-10% |δ_i|, mean |δ_i| / per_eps  (run or sweep dirs)

  differ export marl-eval DIR... [out=FILE.json] [absolute=true]
                                                   per-episode test results for marl-eval's tools, and
                                                   each run's best checkpoint on 10x the test episodes

  --debug (or DIFFER_DEBUG=1) shows the traceback behind an unexpected error.
"""


def _fail(msg: str, code: int = 2) -> int:
    print(f"differ: error: {msg}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    stop_with_parent()  # a sweep's worker: before anything else, so a dead sweep leaves no orphan
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("DIFFER_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    # `differ --help`, and also `differ plot --help`: print the usage instead of reading
    # "--help" as a directory or a key=value.
    if not argv or argv[0] == "help" or any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    if argv[0] in ("--version", "-V", "version"):
        from . import __version__

        print(f"differ {__version__}")
        return 0
    try:
        return _command(argv[0], argv[1:])
    except Interrupted as e:
        return _fail(str(e), 130)
    except DifferError as e:
        if debug:
            raise
        return _fail(str(e))
    except MemoryError as e:  # check_fits: a buffer that cannot fit
        if debug:
            raise
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted; finished runs and checkpoints are kept (re-run the same command to resume)", 130)
    except Exception as e:  # a bug or an unforeseen input: still one line, the traceback on request
        if debug:
            raise
        first = (str(e).splitlines() or [""])[0][:300]
        return _fail(f"{type(e).__name__}: {first} (run with --debug for the traceback)", 1)


def _command(cmd: str, args: list[str]) -> int:
    from .config import int_option, parse_overrides

    if cmd == "train":
        from .interrupts import raise_if_interrupted, recorded

        with recorded():  # the imports below are start-up too
            try:
                from .commands.train import train_from_overrides

                raise_if_interrupted()
                result = train_from_overrides(parse_overrides(args))
            except KeyboardInterrupt:  # before the run's directory was chosen
                raise Interrupted("interrupted before the run started; re-run the same command") from None
        print(json.dumps(result))
    elif cmd == "config":
        from .config import build_config, describe

        print(describe(build_config(parse_overrides(args))))
    elif cmd == "evaluate":
        if not args or "=" in args[0]:
            return _fail("evaluate needs a PATH (run directory or checkpoint file)")
        opts = parse_overrides(args[1:])
        valid = ("episodes", "seed", "dump_individual_rewards", "video", "video_format", "fps")
        unknown = set(opts) - set(valid)
        if unknown:
            return _fail(f"unknown evaluate option(s) {', '.join(sorted(unknown))}; valid: {', '.join(valid)}")
        seed = int_option(opts, "seed", None, minimum=0)
        if "video" not in opts:
            for key in ("video_format", "fps"):
                if key in opts:
                    return _fail(f"{key}= only applies with video=DIR")
        try:
            fps = float(opts.get("fps", 10))
        except ValueError:
            return _fail(f"fps must be a number, got '{opts['fps']}'")
        from .api import evaluate

        # a video is a few episodes; an evaluation's statistics want many
        episodes = int_option(opts, "episodes", 1 if "video" in opts else 32, minimum=1)
        print(
            json.dumps(
                evaluate(
                    args[0],
                    episodes,
                    seed,
                    opts.get("dump_individual_rewards"),
                    opts.get("video"),
                    opts.get("video_format", "mp4"),
                    fps,
                )
            )
        )
    elif cmd == "envs":
        from .envs.registry import description, families, scenarios

        found = families()
        wanted = args or list(found)
        unknown = [a for a in wanted if a not in found]
        if unknown:
            return _fail(f"unknown environment '{unknown[0]}'; valid choices: {', '.join(found)}")
        for name in wanted:
            try:
                desc = description(name)
                sc = scenarios(name)
            except ImportError as e:
                print(f"{name}: {found[name][1]}\n  not installed ({e.name}); pip install 'differ-marl[gym]'")
                continue
            if not sc:
                print(f"{name}: {desc}")
                continue
            shown = sc if args or len(sc) <= 30 else sc[:12] + [f"... (all {len(sc)}: differ envs {name})"]
            print(f"{name}: {desc}\n  {len(sc)} scenarios: {', '.join(shown)}")
    elif cmd == "verify":
        from .commands.verify import format_report, verify

        opts = parse_overrides(args)
        episodes = int_option(opts, "episodes", 8, minimum=1)
        opts.pop("episodes", None)
        report = verify(opts, episodes)
        print(format_report(report))
        if not report["exact"]:
            return _fail(
                f"DIFFER is not exact for mixer {report['mixer']}: relative errors "
                f"{report['eq1_rel_error']:.2e} (Eq. 1) and {report['divide_rel_error']:.2e} "
                f"(-divide) exceed {report['tolerance']:g}",
                1,
            )
    elif cmd == "bench":
        from .commands.bench import main as bench_main

        opts = parse_overrides(args)
        out = opts.pop("out", None)
        text = json.dumps(bench_main(opts), indent=2)
        print(text)
        if out:
            Path(out).write_text(text + "\n")
    elif cmd == "sweep":
        from .config import flag_option
        from .experiments.sweep import summary_table, sweep, sweep_list

        overrides = parse_overrides(args)
        if flag_option(overrides, "list"):
            print(sweep_list(overrides))
            return 0
        runs, out = sweep(overrides)
        print(summary_table(runs))
        if "index" not in overrides:
            print(f"summary written to {out / 'sweep_summary.md'}; plots: differ plot {out}")
        return 1 if any(r.status == "failed" for r in runs) else 0
    elif cmd in ("plot", "summary", "analyze", "export"):
        from .experiments.commands import run_command

        return run_command(cmd, args)
    else:
        return _fail(
            f"unknown command '{cmd}'; valid: train, evaluate, envs, config, verify, bench, sweep, plot, "
            "summary, analyze, export"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
