"""The one version string of the ``hetpref`` distribution (all three import packages).

``pyproject.toml`` reads it at build time; ``mixlogit``, ``alignment`` and ``analysis`` re-export
it as ``__version__``. Bump it here only.
"""

__version__ = "0.1.0"
