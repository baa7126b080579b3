"""Run a command in this process group and stop the whole group when the process that started us dies — also by
SIGKILL, which no handler of that parent can catch — so ``mlflow server`` and its workers never outlive
``latentdream ui``.

The parent keeps the write end of our stdin pipe open and writes nothing; the kernel closes it when the parent dies,
so our read returns end-of-file. Then (as on SIGTERM, SIGHUP or SIGINT) the group gets SIGTERM, and SIGKILL after
:data:`GRACE_S` seconds. Our exit code is the command's.

Usage: ``python -m experiments.mlflow_ui.watchdog CMD [ARGS...]`` (started in a new session by
:func:`experiments.mlflow_ui.ui.serve`, with ``stdin=PIPE``). Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

GRACE_S = 10.0  # how long the server may take to stop before its group is killed (here and in ui.stop_group)


def main(argv: list[str]) -> int:
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)  # in our process group: stopping the group stops it
    stopping = threading.Event()

    def stop_group(*_: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # we are in the group too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgrp(), signal.SIGTERM)

        def kill_late() -> None:
            try:
                child.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(os.getpgrp(), signal.SIGKILL)  # ends us as well

        threading.Thread(target=kill_late, daemon=True).start()

    def watch_parent() -> None:
        while True:  # the raw descriptor: a daemon thread blocked in a buffered read would hang shutdown
            try:
                if not os.read(0, 4096):  # end-of-file: the parent died or let go
                    break
            except OSError:
                break
        os.kill(os.getpid(), signal.SIGTERM)  # handled in the main thread (only it may change signal handlers)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop_group)
    threading.Thread(target=watch_parent, daemon=True).start()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
