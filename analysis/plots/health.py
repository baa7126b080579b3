"""A figure of an unhealthy run says so in its title: arrays stay untouched, only the top line changes."""

from __future__ import annotations

import textwrap

from matplotlib.figure import Figure

HEALTH_COLOR = "tab:red"
LINE_INCHES = 0.3  # the figure grows by this much per added title line, so its panels keep their size


def health_title(health: str) -> str:
    """The line a figure of a run whose tag ``health`` is ``health`` (not ``ok``) carries on top."""
    return f"UNHEALTHY RUN: {health}"


def flag_unhealthy(figure: Figure, health: str | None) -> Figure:
    """Put :func:`health_title` above ``figure``'s title (its suptitle, or a new one), in red, and grow the figure
    by the lines added; nothing when ``health`` is None (unknown) or ``ok``.

    :param figure: a figure with a constrained layout (every plot function here makes those), which keeps the
        title clear of the panels.
    """
    if health is None or health == "ok":
        return figure
    old = figure.get_suptitle()
    fontsize = figure._suptitle.get_fontsize() if old else 10  # matplotlib has no public getter for it
    width, height = figure.get_size_inches()
    line = textwrap.fill(health_title(health), max(20, int(width * 72 / (0.6 * fontsize))))  # ~0.6 em a character
    text = f"{line}\n{old}" if old else line
    figure.set_size_inches(width, height + LINE_INCHES * (line.count("\n") + 1))
    figure.suptitle(text, color=HEALTH_COLOR, fontsize=fontsize)
    return figure
