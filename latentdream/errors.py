"""The one exception type for bad user input.

Raised wherever input is checked (config values, data folders, image files, layer names, run ids). The command
line prints its message as a single line on stderr and exits with code 2; anything else is a bug and keeps its
traceback. It imports nothing, so pure analysis code can raise it too.
"""


class InputError(ValueError):
    """Bad user input; ``str(err)`` is the one line shown to the user (name the key, the value and what is allowed)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; training stopped before that batch updated the weights.

    Not bad input but a failed run: the command line prints it as one line and exits with code 1.
    """


def require(ok: bool, key: str, value: object, allowed: str) -> None:
    """The one way a setting's rule is checked: raise :class:`InputError` ``"<key>=<value> is not allowed; <allowed>"``
    unless ``ok`` (``key`` is the full config key, e.g. ``analysis.b``)."""
    if not ok:
        raise InputError(f"{key}={value!r} is not allowed; {allowed}")
