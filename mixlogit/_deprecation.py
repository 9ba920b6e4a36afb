"""Old names kept for one release: translated to the new ones with a DeprecationWarning.

>>> @deprecated_keywords(subgroup_columns="by")
... def summarize(frame, by=None): ...

``summarize(frame, subgroup_columns=["age"])`` then warns and calls ``summarize(frame,
by=["age"])``; passing both names is a ``TypeError``. :func:`renamed_keywords` is the
translation itself (for functions that take ``**kwargs``), :class:`renamed_attribute` a
read-only old attribute name of a result class.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["deprecated_keywords", "renamed_attribute", "renamed_keywords"]

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keywords(
    where: str, kwargs: dict[str, Any], renames: Mapping[str, str], *, stacklevel: int = 3
) -> dict[str, Any]:
    """Move ``kwargs[old]`` to ``kwargs[new]`` for each ``old -> new`` in ``renames``.

    Emits a :class:`DeprecationWarning` naming ``where``, both names and the value.

    Raises:
        TypeError: the old and the new name are both given.
    """
    for old, new in renames.items():
        if old not in kwargs:
            continue
        if new in kwargs:
            raise TypeError(f"{where}: pass {new}= only ({old}= is its deprecated old name)")
        value = kwargs.pop(old)
        warnings.warn(
            f"{where}: {old}= is deprecated, use {new}={value!r}",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        kwargs[new] = value
    return kwargs


def deprecated_keywords(**renames: str) -> Callable[[F], F]:
    """Decorator: accept each old keyword ``old=new`` as ``new`` (with a DeprecationWarning)."""

    def decorate(function: F) -> F:
        where = f"{function.__qualname__}()".replace(".__init__()", "()")

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **renamed_keywords(where, kwargs, renames, stacklevel=3))

        return wrapper  # type: ignore[return-value]

    return decorate


class renamed_attribute:
    """Class attribute standing for the attribute ``new`` under its old (assigned) name."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.old = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        warnings.warn(
            f"{type(instance).__name__}.{self.old} is deprecated, use .{self.new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(instance, self.new)
