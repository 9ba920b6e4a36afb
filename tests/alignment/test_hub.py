"""Hub ids fail at once, with directions, when the Hub is out of reach (issue: 23-47 s retries)."""

from __future__ import annotations

import socket
import time

import pytest

from alignment import _hub
from alignment._hub import HubUnreachableError, require_hub
from alignment.datasets import load_community_alignment, load_hh_rlhf, load_prism
from alignment.policy_models import load_model, load_tokenizer


@pytest.fixture
def no_network(monkeypatch):
    """Every TCP connect fails as DNS does offline; loading from the hub must not be tried."""
    calls = []

    def refuse(address, timeout=None):
        calls.append((address, timeout))
        raise socket.gaierror(-2, "Name or service not known")

    def never(*args, **kwargs):
        raise AssertionError("the hub client was called although the Hub is unreachable")

    for name in (*_hub._OFFLINE, *_hub._PROXIES, "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_hub.socket, "create_connection", refuse)
    monkeypatch.setattr("datasets.load_dataset", never)
    return calls


@pytest.mark.parametrize(
    ("load", "hint"),
    [
        (load_hh_rlhf, "load_default_preferences('hh_rlhf_harmless')"),
        (load_prism, "load_prism('utterances.jsonl', 'survey.jsonl')"),
        (load_community_alignment, "load_community_alignment('community_alignment.jsonl')"),
    ],
)
def test_hub_datasets_fail_at_once_and_name_the_local_route(no_network, load, hint):
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError, match="cannot reach the Hugging Face Hub") as info:
        load()
    assert time.perf_counter() - start < 2.0  # no retries: one refused connect
    assert hint in str(info.value) and "HF_HUB_OFFLINE=1" in str(info.value)
    assert no_network == [(("huggingface.co", 443), _hub.PROBE_TIMEOUT)]


def test_model_hub_ids_fail_at_once_but_local_paths_are_not_probed(no_network, tmp_path):
    for load in (load_model, load_tokenizer):
        with pytest.raises(HubUnreachableError, match="the model 'org/some-model'"):
            load("org/some-model")
    assert len(no_network) == 2
    with pytest.raises(Exception) as info:  # an empty local directory: transformers' own error
        load_tokenizer(str(tmp_path))
    assert not isinstance(info.value, HubUnreachableError)
    assert len(no_network) == 2


@pytest.mark.parametrize(
    ("variable", "value"), [("HF_HUB_OFFLINE", "1"), ("HTTPS_PROXY", "http://proxy:3128")]
)
def test_offline_mode_and_proxies_skip_the_probe(no_network, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    require_hub("org/x", "dataset", "a file")
    assert no_network == []


def test_the_endpoint_variable_names_the_host(no_network, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080")
    with pytest.raises(HubUnreachableError, match=r"mirror\.example:8080"):
        require_hub("org/x", "dataset", "a file")
    assert no_network[0][0] == ("mirror.example", 8080)
