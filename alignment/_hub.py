"""Fail fast, with directions, when a Hugging Face Hub id is asked for and the Hub is out of reach.

Without this, ``datasets``/``transformers`` retry with back-off for 20-50 s before raising a
generic connection error. One TCP connect (a few seconds at most) tells the two cases apart.
The probe is skipped where it could be wrong or is not needed: offline mode set by the user
(``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``/``TRANSFORMERS_OFFLINE``: the libraries then read the
local cache and fail quickly on their own) and a configured proxy (a direct connect says nothing
about a proxied one).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

__all__ = ["HubUnreachableError", "require_hub"]

#: Seconds allowed for the TCP connect to the Hub's host.
PROBE_TIMEOUT = 3.0
_OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class HubUnreachableError(ConnectionError):
    """The Hugging Face Hub could not be reached for a hub id; the message says what to do."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def require_hub(hub_id: str, what: str, local_hint: str) -> None:
    """Raise :class:`HubUnreachableError` at once when ``hub_id`` would need an unreachable Hub.

    Args:
        hub_id: the id about to be loaded (named in the message).
        what: what it is, e.g. ``"dataset"`` or ``"model"``.
        local_hint: how to use local files instead, e.g. ``"load_prism('utterances.jsonl',
            'survey.jsonl')"``.
    """
    if any(_truthy(os.environ.get(name)) for name in _OFFLINE):
        return
    if any(os.environ.get(name) for name in _PROXIES):
        return
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
    except OSError as error:
        raise HubUnreachableError(
            f"cannot reach the Hugging Face Hub ({host}:{port}: {error}) to load the {what} "
            f"{hub_id!r}. Point the loader at local files instead: {local_hint}; or, if the "
            "files are in the local Hugging Face cache, set HF_HUB_OFFLINE=1."
        ) from None
