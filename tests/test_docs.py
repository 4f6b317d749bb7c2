"""Every docstring example in adaptlr runs and prints what it says."""

import doctest
import importlib
import pkgutil
import sys

import pytest

import adaptlr

MODULES = sorted(m.name for m in pkgutil.iter_modules(adaptlr.__path__, "adaptlr."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  importlib.import_module(name)
  module = sys.modules[name]  # the module object itself, not a same-named attribute
  result = doctest.testmod(
    module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
  )
  assert result.failed == 0
  public = [n for n in getattr(module, "__all__", dir(module)) if not n.startswith("_")]
  if not name.split(".")[-1].startswith("_") and any(
    callable(getattr(module, n, None)) for n in public
  ):
    assert result.attempted > 0, f"{name} has no runnable example"
