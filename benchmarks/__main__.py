"""Command line: ``python -m benchmarks run --profile quick|full [...]``.

  python -m benchmarks run --profile quick            # README demo, bundled data, < 7 min
  python -m benchmarks run --profile full             # full sets (`make data` first)
  python -m benchmarks run --profile networks         # only the network problems, at
                                                      # settled budgets (`make data`)
  python -m benchmarks run --profile quick --problems rosenbrock boston_linreg \\
      --methods tlr newton_lr                         # the baselines always run
  python -m benchmarks run --profile networks --reuse benchmarks/results/networks \\
      --rerun tlr --out /tmp/tlr                      # re-run one method against the
                                                      # stored runs of the others
  python -m benchmarks list                           # problems, methods, data sets

Writes benchmarks/results/<profile>/ (or --out): results.json, report.md, *.png.
"""

from __future__ import annotations

import argparse
import sys


def _list():
  from benchmarks import data, methods, problems

  print("problems:")
  for name in problems.NAMES:
    profs = [p for p, names in problems.PROFILES.items() if name in names and p != "tiny"]
    print(f"  {name:26s} profiles: {', '.join(profs) or '(none by default)'}")
  print("methods:")
  for name, m in methods.registry().items():
    print(f"  {name:18s} [{m.family}{'' if m.swept else ', rate-free'}] {m.description}")
  print("data sets:")
  for name in data.NAMES:
    info = data.info(name)
    status = "available" if data.available(name) else f"missing — {info.install}"
    print(f"  {name:14s} {info.source}: {status}")


def main(argv=None):
  parser = argparse.ArgumentParser(
    prog="python -m benchmarks",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = parser.add_subparsers(dest="cmd", required=True)
  run = sub.add_parser("run", help="run a benchmark profile")
  run.add_argument("--profile", default="quick", choices=("quick", "full", "networks", "tiny"))
  run.add_argument(
    "--problems", nargs="+", metavar="NAME", help="problems to run (default: the profile's)"
  )
  run.add_argument(
    "--methods",
    nargs="+",
    metavar="NAME",
    help="methods to run (default: all available; the baselines "
    "(benchmarks.methods.BASELINES) always run where they apply)",
  )
  run.add_argument("--out", help="output folder (default benchmarks/results/<profile>)")
  studies = run.add_mutually_exclusive_group()
  studies.add_argument(
    "--studies",
    dest="studies",
    action="store_true",
    default=None,
    help="also run the TLR Fig. 1 reproduction (default: full profile only)",
  )
  studies.add_argument("--no-studies", dest="studies", action="store_false")
  run.add_argument(
    "--reuse",
    metavar="DIR",
    help="load the stored runs of DIR/raw/ (same budgets) instead of running them: "
    "resumes an interrupted run, or with --rerun re-runs only some methods",
  )
  run.add_argument("--rerun", nargs="+", default=(), metavar="NAME", help="with --reuse: run these")
  run.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
  run.add_argument("--no-progress", action="store_true", help="no progress bars")
  smoke = run.add_argument_group("smoke tests (override every problem's budget)")
  smoke.add_argument("--seeds", nargs="+", type=int, metavar="S")
  smoke.add_argument("--rates", nargs="+", type=float, metavar="R")
  smoke.add_argument("--steps", type=int, metavar="N")
  sub.add_parser("list", help="list problems, methods and data sets")
  args = parser.parse_args(argv)

  if args.cmd == "run" and args.rerun and not args.reuse:
    parser.error("--rerun names methods to run again among stored ones: pass --reuse DIR too")
  if args.cmd == "list":
    _list()
    return 0
  from benchmarks import runner

  out = runner.run_profile(
    args.profile,
    problems=args.problems,
    methods=args.methods,
    out_dir=args.out,
    progress=not args.no_progress,
    studies=args.studies,
    plots=not args.no_plots,
    reuse=args.reuse,
    rerun=args.rerun,
    overrides={k: v for k in ("seeds", "rates", "steps") if (v := getattr(args, k)) is not None},
    command=["python", "-m", "benchmarks", *(argv if argv is not None else sys.argv[1:])],
  )
  where = args.out or f"benchmarks/results/{args.profile}"
  print(
    f"wrote {where}/report.md, results.json and plots in {out['wall_s'] / 60:.1f} min",
    file=sys.stderr,
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
