"""Quiet ArviZ import shared by the analysis modules.

ArviZ 0.2x prints a ``FutureWarning`` about its upcoming 1.0 refactor on import; it says nothing
about this package's use of it, so it is silenced here once instead of in every caller.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"arviz(\..*)?")
    import arviz as az

__all__ = ["az"]
