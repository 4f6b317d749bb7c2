"""Shared output of the benchmarks: machine info, the command, JSON + Markdown (+ PNG).

Every study (``benchmarks/studies/``) records what it measured with
:func:`write_results`, which writes ``<out_dir>/<name>.json`` (the payload with
the ``command`` that made it and the ``machine`` it ran on),
``<out_dir>/<name>.md`` and, given a figure, ``<out_dir>/<name>.png``.

Example:
  >>> from benchmarks import io
  >>> io.command_line("benchmarks.studies.overhead", ["--rounds", "3"])
  'python -m benchmarks.studies.overhead --rounds 3'
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from typing import Any

RESULTS_DIR = "benchmarks/results"


def machine_info() -> dict:
  """Where a benchmark ran: platform, CPUs, library versions, JAX backend and devices.

  Returns:
    A JSON-serialisable dict with keys ``platform``, ``machine``, ``processor``,
    ``python``, ``cpu_count``, ``affinity_cpus``, ``jax_backend``,
    ``jax_devices``, ``device_kinds``, ``versions`` (jax, jaxlib, optax, flax,
    numpy, adaptlr) and, where the OS has it, ``loadavg_at_start``.
  """
  import jax
  import numpy as np
  import optax

  import adaptlr

  try:
    import flax

    flax_version = flax.__version__
  except ImportError:  # flax is an optional extra
    flax_version = None
  try:
    import jaxlib

    jaxlib_version = jaxlib.__version__
  except (ImportError, AttributeError):
    jaxlib_version = getattr(jax.lib, "__version__", None)
  devices = jax.devices()
  info = {
    "platform": platform.platform(),
    "machine": platform.machine(),
    "processor": platform.processor(),
    "python": sys.version.split()[0],
    "cpu_count": os.cpu_count(),
    "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    "jax_backend": jax.default_backend(),
    "jax_devices": [str(d) for d in devices],
    "device_kinds": sorted({d.device_kind for d in devices}),
    "versions": {
      "jax": jax.__version__,
      "jaxlib": jaxlib_version,
      "optax": optax.__version__,
      "flax": flax_version,
      "numpy": np.__version__,
      "adaptlr": adaptlr.__version__,
    },
  }
  try:
    info["loadavg_at_start"] = os.getloadavg()
  except (OSError, AttributeError):
    pass
  return info


def machine_line(machine: Any) -> str:
  """One line for a Markdown report: platform, CPUs, JAX version and backend.

  Args:
    machine: a :func:`machine_info` dict, or the platform string older result
      files recorded.

  Returns:
    e.g. ``"Linux-…, 2 CPUs, jax 0.7.2 on cpu"``.
  """
  if not isinstance(machine, dict):
    return str(machine)
  versions = machine.get("versions", {})
  return (
    f"{machine.get('platform')}, {machine.get('cpu_count')} CPUs, "
    f"jax {versions.get('jax')} on {machine.get('jax_backend')}"
  )


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
  """The shell command that runs ``python -m <module>`` with ``argv``.

  Args:
    module: the module run with ``-m``, e.g. ``"benchmarks.studies.tlr_safeguard"``.
    argv: its arguments; ``None`` reads ``sys.argv[1:]``.

  Returns:
    e.g. ``"python -m benchmarks.studies.tlr_safeguard --x 1"`` (arguments
    shell-quoted where needed).
  """
  args = list(sys.argv[1:] if argv is None else argv)
  return shlex.join(["python", "-m", module, *map(str, args)])


def _main_command() -> str:
  spec = getattr(sys.modules.get("__main__"), "__spec__", None)
  if spec is not None and spec.name:
    return command_line(spec.name.removesuffix(".__main__"))
  return shlex.join(["python", *sys.argv])


def write_results(
  name: str,
  payload: dict,
  markdown: str,
  *,
  figure=None,
  out_dir: str = RESULTS_DIR,
  dpi: int = 110,
) -> dict[str, str]:
  """Writes ``<out_dir>/<name>.json``, ``<out_dir>/<name>.md`` and maybe ``.png``.

  Args:
    name: the file stem, e.g. ``"overhead"``.
    payload: every number; ``"command"`` (from ``sys.argv``) and ``"machine"``
      (:func:`machine_info`) are added when missing. Not modified.
    markdown: the report; a final newline is added when missing.
    figure: an optional matplotlib ``Figure``, saved as ``<name>.png``.
    out_dir: the folder, created when missing.
    dpi: the PNG's resolution.

  Returns:
    ``{"json": path, "md": path}`` plus ``"png": path`` when a figure was given.
  """
  payload = dict(payload)
  payload.setdefault("command", _main_command())
  if "machine" not in payload:
    payload["machine"] = machine_info()
  os.makedirs(out_dir or ".", exist_ok=True)
  stem = os.path.join(out_dir, name)
  paths = {"json": stem + ".json", "md": stem + ".md"}
  with open(paths["json"], "w") as f:
    json.dump(payload, f, indent=1)
  with open(paths["md"], "w") as f:
    f.write(markdown if markdown.endswith("\n") else markdown + "\n")
  if figure is not None:
    paths["png"] = stem + ".png"
    figure.savefig(paths["png"], dpi=dpi)
  return paths


def progress_bar(total, enabled, desc):
  """A tqdm progress bar over ``total`` runs, or a silent stand-in (no tqdm, or not ``enabled``)."""
  try:
    from tqdm.auto import tqdm
  except ImportError:  # tqdm is optional
    tqdm = None
  if tqdm is None or not enabled:

    class _Null:
      def update(self, n=1):
        pass

      def set_postfix_str(self, s):
        pass

      def close(self):
        pass

      def write(self, s):
        print(s, file=sys.stderr)

    return _Null()
  bar = tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True)
  bar.write = lambda s: tqdm.write(s, file=sys.stderr)
  return bar
