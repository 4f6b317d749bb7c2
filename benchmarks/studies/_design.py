"""The command line of issue 12's design studies (``horizon``, ``network_defaults``).

Each study module has ``DESIGN_PROBLEMS``, ``DESIGN_SEEDS``, ``RATES`` and
``run(problems) -> result``, ``markdown(result, command, machine)`` and
``figure(result)``; this runs it and writes ``results/<name>.{json,md,png}``.
"""

from __future__ import annotations

import argparse
from types import ModuleType

from benchmarks import io


def main(study: ModuleType, argv=None) -> None:
  # run as ``python -m benchmarks.studies.<name>`` the module is ``__main__``: its spec names it
  name = (study.__spec__.name if study.__spec__ else study.__name__).rsplit(".", 1)[-1]
  ap = argparse.ArgumentParser(description=(study.__doc__ or name).splitlines()[0])
  ap.add_argument("--out", default=io.RESULTS_DIR)
  ap.add_argument("--problems", nargs="+", default=list(study.DESIGN_PROBLEMS))
  args = ap.parse_args(argv)
  result = study.run(tuple(args.problems))
  command = io.command_line(f"benchmarks.studies.{name}", argv)
  machine = io.machine_info()
  payload = {
    "design_problems": list(args.problems),
    "design_seeds": list(study.DESIGN_SEEDS),
    "rates": list(study.RATES),
    "problems": result,
    "command": command,
    "machine": machine,
  }
  io.write_results(
    name,
    payload,
    study.markdown(result, command, io.machine_line(machine)),
    figure=study.figure(result),
    out_dir=args.out,
  )
