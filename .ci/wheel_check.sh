#!/usr/bin/env bash
# Release check (`make wheel-check`): build the sdist and the wheel (the wheel from the sdist),
# `twine check --strict` both, install the wheel with its flax extra (Python >= 3.11) from PyPI
# into a clean virtual environment and run .ci/wheel_smoke.py there, outside the source tree.
#
#   BUILD_PYTHON  interpreter with `build` and `twine` (the dev extra), default .venv/bin/python
#   PYTHON        interpreter of the clean environment, default python3
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_python="${BUILD_PYTHON:-$root/.venv/bin/python}"
python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/adaptlr/__init__.py")"
grep -q "^## \[$version\] - [0-9-]*$" "$root/CHANGELOG.md" \
  || { echo "CHANGELOG.md has no '## [$version] - <date>' section" >&2; exit 1; }

"$build_python" -m build --outdir "$tmp/dist" "$root" > "$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log"; exit 1; }
ls -l "$tmp/dist"
"$build_python" -m twine check --strict "$tmp"/dist/*
wheel="$tmp/dist/adaptlr-$version-py3-none-any.whl"
[ -f "$wheel" ] && [ -f "$tmp/dist/adaptlr-$version.tar.gz" ] \
  || { echo "expected adaptlr-$version wheel and sdist, got: $(ls "$tmp/dist")" >&2; exit 1; }

"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
extra="[flax]"   # flax>=0.11 needs Python >= 3.11; adaptlr itself supports 3.10
"$tmp/venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || extra=""
"$tmp/venv/bin/python" -m pip install --quiet "$wheel$extra"
"$tmp/venv/bin/python" --version
cp "$root/.ci/wheel_smoke.py" "$tmp/"
cd "$tmp" && "$tmp/venv/bin/python" -I wheel_smoke.py "$tmp/dist"
