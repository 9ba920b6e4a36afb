"""The public API of ``analysis``: one screen of names, and the 0.1 names as deprecated aliases."""

from __future__ import annotations

import importlib

import pytest

import analysis


def test_public_names_fit_on_a_screen_and_resolve():
    assert len(analysis.__all__) <= 30  # one screen
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None, name


@pytest.mark.parametrize("name", sorted(analysis._DEPRECATED))
def test_names_of_the_first_release_warn_and_resolve(name):
    module, _, attribute = analysis._DEPRECATED[name].partition(":")
    with pytest.warns(DeprecationWarning, match=f"analysis.{name} is deprecated"):
        value = getattr(analysis, name)
    assert value is getattr(importlib.import_module(module), attribute)
