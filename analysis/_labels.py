"""Text from the data, drawn literally by matplotlib.

Matplotlib reads a string with a pair of unescaped ``$`` as mathtext: a subgroup named
``"$25,000-$49,999"`` is drawn as italic math (``25,000-`` with the dollars gone) and one named
``"$100k+ #1 $"`` fails to parse, which aborts the figure's drawing (and :func:`analysis.report`).
Every subgroup, level, method, run or attribute name that becomes figure text (tick labels,
legend entries and titles, axis labels, panel titles, annotations) goes through
:func:`literal`. Explicit ``title=`` arguments are left alone, so a caller can still use
mathtext on purpose.
"""

from __future__ import annotations

__all__ = ["literal"]


def literal(text: object) -> str:
    """``str(text)`` with every ``$`` escaped, so that matplotlib draws it as is.

    Matplotlib renders ``\\$`` as a plain ``$`` in a text without mathtext, so the drawn text is
    exactly ``str(text)`` (``Text.get_text()`` returns the escaped string).
    """
    return str(text).replace("$", r"\$")
