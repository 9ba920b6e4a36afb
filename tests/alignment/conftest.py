"""Shared fixtures for the alignment tests: the embedded data and a tiny offline model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def hetero_train():
    from alignment.semisynthetic import load_default_preferences

    return load_default_preferences("heterogeneous", "train")


@pytest.fixture(scope="session")
def word_tokenizer(hetero_train):
    from alignment.models import build_word_tokenizer

    texts = [*hetero_train["prompt"], *hetero_train["chosen"], *hetero_train["rejected"]]
    return build_word_tokenizer(texts)
