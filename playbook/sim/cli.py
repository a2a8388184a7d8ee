"""The ``playbook`` command with ``playbook season``: every command of ``playbook.run.cli``, plus a season of the loop.

``playbook season [--weeks 12] [--seed N] [--truth FILE] [--units N] [--out reports/season]`` lives the method week
by week on a simulated shop (``sim.season``) and writes the reveal, ``<out>/index.html``. The console script
``playbook`` is this module's ``main``: the run layer cannot import the simulator (layers flow one way), so the
simulator adds its command to the run's parser, and every other command is the run's, unchanged.
"""
from __future__ import annotations

import argparse
import sys
import time

from playbook.config.loader import load_config
from playbook.core.paths import DEFAULT_CONFIG, REPO_ROOT, resolve
from playbook.run import cli as run_cli
from playbook.run.weekly import EXIT_FAILED, EXIT_OK, EXIT_REFUSED
from playbook.sim.reveal import write_reveal
from playbook.sim.season import SEED, SeasonError, SeasonSettings, run_season
from playbook.sim.truth import TruthError, default_truth, load_truth

DEFAULT_OUT = "reports/season"


def build_parser() -> argparse.ArgumentParser:
    parser = run_cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    s = sub.add_parser("season", help="live a season of the loop on a simulated shop, then reveal the truth",
                       description="Live N weeks of the method on a simulated shop: each week its export, the real "
                                   "weekly run (notebooks, report, journal), and the team's actions (start a ready "
                                   "plan, roll out a keep, roll back a stop, close an overdue test); then "
                                   "OUT/index.html puts the journal beside the truth. For new hires to train on.")
    s.add_argument("--weeks", type=int, default=12, help="weeks of the season (default: 12)")
    s.add_argument("--seed", type=int, default=SEED, help=f"the shop's and the team's seed (default: {SEED})")
    s.add_argument("--truth", default="", help="YAML truth table (default: the sample-like shop's, playbook.sim.truth)")
    s.add_argument("--units", type=float, default=2800.0, help="units sold a week (default: 2800, the sample's)")
    s.add_argument("--history", type=int, default=16, help="weeks of history before the season (default: 16)")
    s.add_argument("--forget", type=float, default=0.15,
                   help="chance the team skips the week a test's first review falls due (default: 0.15)")
    s.add_argument("--out", default=DEFAULT_OUT, help=f"season folder (default: {DEFAULT_OUT})")
    s.add_argument("--config", default="", help="YAML configuration (default: playbook/config/playbook.yaml)")
    return parser


def season(args: argparse.Namespace) -> int:
    try:
        truth = load_truth(resolve(args.truth, REPO_ROOT)) if args.truth else default_truth()
    except TruthError as exc:
        print(f"Cannot run the season: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.weeks < 1:
        print("Cannot run the season: --weeks must be 1 or more", file=sys.stderr)
        return EXIT_REFUSED
    settings = SeasonSettings(weeks=args.weeks, seed=args.seed, units_per_week=args.units,
                              history_weeks=args.history, forget_share=args.forget, config=args.config)
    out = resolve(args.out, REPO_ROOT / DEFAULT_OUT)
    started = time.monotonic()
    try:
        lived = run_season(out, settings, truth, log=lambda text: print(text, flush=True))
    except SeasonError as exc:
        print(f"Cannot run the season: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as exc:
        known = run_cli.classify(exc)
        if known is None:
            raise
        print(f"The season stopped: {known[1]}", file=sys.stderr)
        return EXIT_FAILED
    write_reveal(out, lived, load_config(resolve(args.config or None, DEFAULT_CONFIG)).currency)
    print(f"Season of {args.weeks} weeks in {time.monotonic() - started:.0f} s. The reveal: {out / 'index.html'}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "season":
        return run_cli.main(argv)
    return season(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
