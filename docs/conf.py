"""Sphinx configuration of adaptlr's documentation (``make docs``).

Pages are MyST Markdown; the notebooks are rendered from their committed outputs
(never executed here); the API pages come from the docstrings (autodoc, napoleon).
The build never uses the network: intersphinx reads the inventories committed in
``_inventories/``; refresh them with ``python docs/_inventories/make_inventories.py``
after linking a new JAX, Optax or Flax name.
"""

import pathlib
import sys

_DOCS = pathlib.Path(__file__).resolve().parent
_INVENTORIES = _DOCS / "_inventories"
sys.path.insert(0, str(_DOCS.parent))

import adaptlr  # noqa: E402

project = "adaptlr"
author = "adaptlr developers"
copyright = "adaptlr developers"  # noqa: A001
version = release = adaptlr.__version__

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.intersphinx",
  "sphinx.ext.mathjax",
  "sphinx.ext.napoleon",
]

# The source directory is the repository root (make docs: `sphinx -c docs . docs/_build/html`),
# so that the executed notebooks and the benchmark reports are pages too and every
# relative link between them and docs/ works both here and on GitHub. Only these are read:
root_doc = "docs/index"
include_patterns = ["docs/**", "notebooks/[0-9]*.ipynb", "benchmarks/results/**.md"]
exclude_patterns = ["docs/_build", "**/.ipynb_checkpoints", "**/raw", ".venv", ".git"]
html_extra_path = ["_root"]  # index.html at the site root: a redirect to docs/index.html

# -- MyST and notebooks --------------------------------------------------------

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # render the committed outputs; tests/test_notebooks.py runs them

# -- API -----------------------------------------------------------------------

autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -- Links ---------------------------------------------------------------------

intersphinx_mapping = {
  "python": ("https://docs.python.org/3/", str(_INVENTORIES / "python.inv")),
  "jax": ("https://docs.jax.dev/en/latest/", str(_INVENTORIES / "jax.inv")),
  "optax": ("https://optax.readthedocs.io/en/latest/", str(_INVENTORIES / "optax.inv")),
  "flax": ("https://flax.readthedocs.io/en/latest/", str(_INVENTORIES / "flax.inv")),
}
intersphinx_timeout = 1  # the inventories are local files; nothing is fetched

# -- HTML ----------------------------------------------------------------------

html_theme = "sphinx_book_theme"
html_title = "adaptlr"
html_theme_options = {"show_toc_level": 2, "navigation_with_keys": False}
