"""Fixtures shared by the test packages (alignment, analysis, mixlogit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def torch_float64():
    """Torch's default dtype is float64 during the test and restored after it (the references
    the tests compare with are float64). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


#: Training settings of every tiny `mixdpo train` run of the tests: no progress bars, no pinned
#: memory (CPU runs). Not ``alignment.config.QUIET_RUN``: the CLI tests read checkpoints, and
#: this file must not import alignment (the mixlogit-only tests run without its dependencies).
QUIET_TRAINING = {"disable_tqdm": True, "dataloader_pin_memory": False}
#: The tiny run's size unless a test says otherwise: two steps on 16 pairs, 6 held out.
TINY_RUN_DATA = {"max_train_pairs": 16, "max_eval_pairs": 6}
TINY_RUN_TRAINING = {"max_steps": 2, "learning_rate": 0.01}


@pytest.fixture(scope="session")
def write_tiny_run():
    """``write_tiny_run(path, run_dir, *, data=None, training=None, **sections) -> path``: write
    the YAML config of a `mixdpo train` run of the tiny model into ``path``.

    ``data`` and ``training`` update the config's sections (:data:`TINY_RUN_DATA`;
    :data:`QUIET_TRAINING` and :data:`TINY_RUN_TRAINING`); ``sections`` are the others
    (``eval``, ``compare``, ...).
    """
    import yaml

    def write(
        path: Path,
        run_dir: Path,
        *,
        data: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        **sections: Any,
    ) -> Path:
        config = {
            "run_dir": str(run_dir),
            "model": "tiny",
            "data": {**TINY_RUN_DATA, **(data or {})},
            "training": {**QUIET_TRAINING, **TINY_RUN_TRAINING, **(training or {})},
            **sections,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    return write
