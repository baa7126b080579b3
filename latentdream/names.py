"""Names a user gives — experiments, runs, registered models, aliases, the image a dream's folder is named after —
stay names: never a path out of the folder they name something in.

* :func:`check_name` refuses a name that carries a path separator (``/``, ``\\``), ``..``, a control character, or is
  empty or longer than :data:`MAX_NAME`; for names the user typed (config keys, ``--name``).
* :func:`safe_segment` maps any text to one safe path segment; for names taken from files (an image's stem).

Pure: imports nothing but the standard library.
"""

from __future__ import annotations

import re

from latentdream.errors import InputError

MAX_NAME = 250  # MLflow's own limit for run names and tag values shown in its UI lists
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a name, or None."""
    if not value or not value.strip():
        return "it is empty"
    if len(value) > MAX_NAME:
        return f"it is {len(value)} characters long (at most {MAX_NAME})"
    if "/" in value or "\\" in value:
        return "it carries a path separator"
    if ".." in value:
        return "it carries '..'"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "it carries a control character"
    return None


def check_name(key: str, value: object) -> None:
    """Raise :class:`InputError` naming ``key`` unless ``value`` is a plain name (see :func:`name_problem`)."""
    problem = name_problem(str(value))
    if problem:
        raise InputError(f"{key}={value!r} is not allowed: {problem}; a name must not be a path")


def safe_segment(text: str, fallback: str = "image") -> str:
    """``text`` as one safe path segment: runs of characters other than letters, digits, ``. _ + -`` become ``_``,
    runs of dots become ``_`` and leading dots are dropped (no ``.``, ``..`` or hidden names), at most 100 characters; ``fallback`` if nothing is
    left."""
    out = re.sub(r"_+", "_", re.sub(r"\.{2,}", "_", _UNSAFE.sub("_", text))).lstrip(".")[:100]
    return out if out.strip("_") else fallback
