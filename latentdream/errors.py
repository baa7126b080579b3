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


class DiskFullError(OSError):
    """A disk filled up while a run wrote to it (``errno.ENOSPC``); ``str(err)`` names the folder whose disk is full.

    Not bad input but a failed run: the command line prints it as one line and exits with code 1.
    """

    def __init__(self, folder: object, what: str = "") -> None:
        super().__init__(28, "No space left on device")  # errno.ENOSPC
        self.folder = str(folder)
        self.message = (f"the disk holding {self.folder} is full (No space left on device)"
                        + (f" while writing {what}" if what else "") + "; free some space, then resume the run")

    def __str__(self) -> str:
        return self.message


def disk_full(err: BaseException) -> DiskFullError | None:
    """The disk-full error in ``err``'s chain (``err`` itself, or what it was raised from) as a
    :class:`DiskFullError` naming the folder; None if the chain holds none. Recognises ``ENOSPC``/``EDQUOT``
    ``OSError``\ s (naming their file's folder) and sqlite's "database or disk is full"."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, DiskFullError):
            return seen
        if isinstance(seen, OSError) and seen.errno in (28, 122):  # ENOSPC, EDQUOT
            name = seen.filename or "the file being written"
            return DiskFullError(str(name).rsplit("/", 1)[0] if "/" in str(name) else name)
        if "database or disk is full" in str(seen):
            return DiskFullError("the tracking store")
        seen = seen.__cause__ or seen.__context__
    return None
