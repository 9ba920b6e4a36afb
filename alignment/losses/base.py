"""The loss contract (:class:`PairBatch`, :class:`PreferenceLoss`) and the registry by name.

Every loss module imports this one and registers itself; :mod:`alignment.losses` re-exports it.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

__all__ = [
    "PairBatch",
    "PreferenceLoss",
    "available_losses",
    "get_loss",
    "get_loss_class",
    "register_loss",
]


@dataclass
class PairBatch:
    """Per-pair inputs of a preference loss; every tensor has shape ``(B,)`` unless noted.

    Attributes:
        chosen_logps: summed log-probability (nats) of the chosen completion under the policy.
        rejected_logps: same for the rejected completion.
        ref_chosen_logps: summed log-probability of the chosen completion under the reference.
        ref_rejected_logps: same for the rejected completion.
        strength: the preference-strength module (a ``mixlogit.torch.Strength``) or ``None`` for
            losses that do not use one.
        extras: extra per-pair columns from the batch, by column name; shape ``(B,)`` or
            ``(B, k)`` (for example a per-pair variance ``V``, per-type labels, annotator ids).
        chosen_lengths: number of completion tokens of each chosen completion (float), or
            ``None`` where unknown; the trainer always sets it. Read by the length-normalised
            losses (``ipo``) and the NLL term (``sft``).
        rejected_lengths: same for the rejected completions.
    """

    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
    ref_chosen_logps: torch.Tensor
    ref_rejected_logps: torch.Tensor
    strength: torch.nn.Module | None = None
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)
    chosen_lengths: torch.Tensor | None = None
    rejected_lengths: torch.Tensor | None = None

    @property
    def chosen_logratios(self) -> torch.Tensor:
        """``log pi(y_w|x) - log pi_ref(y_w|x)``, shape ``(B,)``."""
        return self.chosen_logps - self.ref_chosen_logps

    @property
    def rejected_logratios(self) -> torch.Tensor:
        """``log pi(y_l|x) - log pi_ref(y_l|x)``, shape ``(B,)``."""
        return self.rejected_logps - self.ref_rejected_logps

    @property
    def margin(self) -> torch.Tensor:
        """The DPO implicit-reward margin ``delta`` (before any strength), shape ``(B,)``."""
        return self.chosen_logratios - self.rejected_logratios


class PreferenceLoss(abc.ABC):
    """Base class of the registered losses.

    Class attributes:
        name: the registry name (set by :func:`register_loss`).
        extra_columns: per-pair batch columns the loss needs; the trainer checks the dataset has
            them and the collator turns them into tensors.
        uses_strength: whether the loss reads ``batch.strength``; when ``False`` the trainer logs a
            point mass at ``beta`` as the strength.
    """

    name: ClassVar[str] = ""
    extra_columns: ClassVar[tuple[str, ...]] = ()
    uses_strength: ClassVar[bool] = True

    @abc.abstractmethod
    def __call__(self, batch: PairBatch) -> torch.Tensor:
        """Return the per-pair loss, shape ``(B,)``; the trainer averages it over pairs."""

    def reward_scale(self, batch: PairBatch) -> torch.Tensor | float:
        """The factor that turns log-ratios into implicit rewards for logging (default: E[beta])."""
        if batch.strength is None:
            raise ValueError(f"loss {self.name!r} has no strength; override reward_scale")
        return batch.strength.mean


_LOSS_REGISTRY: dict[str, type[PreferenceLoss]] = {}
# Modules that register further losses on import; they are imported on first lookup so that a
# loss written in another file of this package (or a later release) is found by name.
_OPTIONAL_LOSS_MODULES = (
    "alignment.losses.baselines",
    "alignment.losses.heterogeneous",
    "alignment.losses.panel",
)
_optional_modules_loaded = False


def register_loss(
    name: str, *, overwrite: bool = False
) -> Callable[[type[PreferenceLoss]], type[PreferenceLoss]]:
    """Class decorator that registers a :class:`PreferenceLoss` subclass under ``name``.

    Raises:
        ValueError: if ``name`` is already registered and ``overwrite`` is ``False``.
        TypeError: if the decorated object is not a :class:`PreferenceLoss` subclass.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"loss name must be a non-empty string, got {name!r}")

    def decorator(cls: type[PreferenceLoss]) -> type[PreferenceLoss]:
        if not (isinstance(cls, type) and issubclass(cls, PreferenceLoss)):
            raise TypeError(f"register_loss({name!r}) needs a PreferenceLoss subclass, got {cls!r}")
        if name in _LOSS_REGISTRY and not overwrite and _LOSS_REGISTRY[name] is not cls:
            raise ValueError(
                f"a loss named {name!r} is already registered ({_LOSS_REGISTRY[name].__name__}); "
                "pass overwrite=True to replace it"
            )
        cls.name = name
        _LOSS_REGISTRY[name] = cls
        return cls

    return decorator


def _load_optional_loss_modules() -> None:
    global _optional_modules_loaded
    if _optional_modules_loaded:
        return
    _optional_modules_loaded = True
    for module_name in _OPTIONAL_LOSS_MODULES:
        try:
            importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # the module exists but one of its imports is missing
                raise


def available_losses() -> list[str]:
    """Sorted names of all registered losses."""
    _load_optional_loss_modules()
    return sorted(_LOSS_REGISTRY)


def get_loss_class(name: str) -> type[PreferenceLoss]:
    """The registered class for ``name``; raises ``KeyError`` listing the known names."""
    _load_optional_loss_modules()
    try:
        return _LOSS_REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown loss_type {name!r}; registered losses: {sorted(_LOSS_REGISTRY)}"
        ) from None


def get_loss(name: str, **options: Any) -> PreferenceLoss:
    """Instantiate the loss registered under ``name`` with keyword ``options``."""
    cls = get_loss_class(name)
    try:
        return cls(**options)
    except TypeError as error:
        raise TypeError(f"bad loss_kwargs for loss_type {name!r}: {error}") from error
