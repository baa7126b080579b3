"""A sweep's grid from the command line: ``key=a,b,c`` items → grid points × seed replicates.

* :func:`split_values` — ``a,b,c`` → ``[a, b, c]``; commas inside brackets or quotes do not split.
* :func:`parse_grid` — items → :class:`Grid`: keys with several values span the grid, a key with one value is a
  plain override, and ``trainer.seed`` lists replicates (every point is trained once per seed), not grid points.
* :func:`random_points` — K points of the grid, drawn without replacement from an explicit seed.

Pure: no MLflow, no Lightning; what the values mean is checked later, by loading every point's config.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latentdream.errors import InputError

SEED_KEY = "trainer.seed"
_CLOSING = {"[": "]", "{": "}", "(": ")"}
_QUOTES = ("'", '"')


def split_values(text: str) -> list[str]:
    """Split ``text`` at the commas that stand outside brackets and quotes; one pair of quotes enclosing a whole
    value is removed (as a shell would), so ``'[1,2]','[1,2,3]'`` gives ``[1,2]`` and ``[1,2,3]``.

    :raises InputError: an unclosed bracket or quote, or an empty value (``a,,b``).
    """
    values, current, stack, quote = [], [], [], None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in _QUOTES:
            quote = char
        elif char in _CLOSING:
            stack.append(_CLOSING[char])
        elif stack and char == stack[-1]:
            stack.pop()
        elif char == "," and not stack:
            values.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote or stack:
        raise InputError(f"sweep values {text!r}: unclosed {quote or 'bracket'}")
    values.append("".join(current))
    out = [_unquote(v.strip()) for v in values]
    if any(v == "" for v in out):
        raise InputError(f"sweep values {text!r}: an empty value; give key=a,b,c")
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] in _QUOTES and value[-1] == value[0]:
        return value[1:-1]
    return value


@dataclass(frozen=True)
class Grid:
    """A parsed sweep: ``axes`` (key → its values, in the order given) span the grid; ``fixed`` are plain
    ``key=value`` overrides of every run; ``seeds`` are the ``trainer.seed`` replicates (empty: the config's seed)."""

    axes: dict[str, list[str]]
    fixed: list[str]
    seeds: list[str]

    @property
    def keys(self) -> list[str]:
        """The swept keys (grid axes), without the seed."""
        return list(self.axes)

    @property
    def size(self) -> int:
        """The number of grid points (the product of the axes' lengths), computed without listing them."""
        return math.prod(len(values) for values in self.axes.values())

    def points(self) -> list[dict[str, str]]:
        """Every grid point (key → value), the first key varying slowest; one empty point if nothing is swept."""
        return [dict(zip(self.axes, combo)) for combo in itertools.product(*self.axes.values())]

    def point(self, index: int) -> dict[str, str]:
        """``points()[index]`` without listing the others (a random draw from a huge grid)."""
        out = {}
        for key, values in reversed(self.axes.items()):
            index, digit = divmod(index, len(values))
            out[key] = values[digit]
        return dict(reversed(out.items()))

    def spec(self) -> dict:
        """A JSON-able record of the sweep (what ``--resume`` must find unchanged)."""
        return {"axes": self.axes, "fixed": self.fixed, "seeds": self.seeds}


def point_label(point: dict[str, str]) -> str:
    """``key=value key2=value2`` — the ``sweep.point`` tag of a point's runs (``default`` for the empty point)."""
    return " ".join(f"{k}={v}" for k, v in point.items()) or "default"


def parse_grid(items: Sequence[str]) -> Grid:
    """``["optim.lr=0.01,0.05", "model.dropout=0,0.2", "trainer.seed=1,2", "trainer.max_epochs=3"]`` → a
    :class:`Grid` with two axes, one fixed override and two seeds.

    A key given again with one value replaces its earlier plain value (the last wins, as for ``latentdream train``).

    :raises InputError: an item without ``=``, a swept key given twice, a value listed twice for one key, ``resume``.
    """
    axes: dict[str, list[str]] = {}
    fixed: dict[str, str] = {}
    seeds: list[str] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"sweep item {item!r} is not of the form key=value or key=a,b,c")
        if key == "resume":
            raise InputError("resume= continues one run; continue a sweep with --resume PARENT_ID")
        values = split_values(text)
        if len(set(values)) < len(values):
            raise InputError(f"sweep key {key} lists a value twice: {text}")
        if key in axes or (key == SEED_KEY and seeds) or (key in fixed and len(values) > 1):
            raise InputError(f"sweep key {key} is given twice; list all its values once: {key}=a,b,c")
        if key == SEED_KEY and len(values) > 1:
            seeds = values
        elif len(values) > 1:
            axes[key] = values
        else:
            fixed.pop(key, None)  # a later plain override wins, as for `latentdream train`
            fixed[key] = values[0]
    return Grid(axes, [f"{k}={v}" for k, v in fixed.items()], seeds)


MAX_RUNS = 1000
"""The most runs a sweep trains unless ``--max-runs`` raises it: a typo such as ``optim.lr=1,2,...`` pasted over
a million points must say so at once, not check a million configs first."""


def check_size(grid: Grid, random: int | None = None, max_runs: int = MAX_RUNS) -> int:
    """The number of runs the sweep would train — grid points (or ``random`` of them) × seeds — computed without
    listing the points.

    :raises InputError: more than ``max_runs`` runs (one line naming the count and the flag that raises the limit).
    """
    if max_runs < 1:
        raise InputError(f"--max-runs {max_runs} is not allowed; it must be >= 1")
    points = grid.size if random is None else min(random, grid.size)
    runs = points * max(1, len(grid.seeds))
    if runs > max_runs:
        axes = " × ".join(str(len(v)) for v in grid.axes.values()) or "1"
        seeds = f" × {len(grid.seeds)} seeds" if grid.seeds else ""
        raise InputError(f"the sweep would train {runs:,} runs ({axes} grid points{seeds}{' drawn' if random else ''}); "
                         f"at most {max_runs:,}: narrow the grid, draw some with --random K, or raise the limit with "
                         f"--max-runs {runs}")
    return runs


def random_points(n_points: int, k: int, seed: int) -> list[int]:
    """Indices of ``k`` distinct grid points out of ``n_points``, drawn from ``seed``, in grid order.

    :raises InputError: ``k`` < 1 or more than there are points.
    """
    if not 1 <= k <= n_points:
        raise InputError(f"--random {k} is not allowed; the grid has {n_points} points (give 1 to {n_points})")
    return sorted(np.random.default_rng(seed).choice(n_points, size=k, replace=False).tolist())
