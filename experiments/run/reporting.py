"""How a latentdream process speaks: library chatter silenced, and a command's outcome reported as one line with its
exit code. Shared by the CLI and by each run a sweep trains in its own process."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable

from analysis import tracking
from latentdream.errors import InputError, disk_full
from latentdream.stopping import StopRequested


def quiet_libraries() -> None:
    """Our lines only: library chatter (MLflow's DB migrations, Lightning's device lines, model summary and adverts)
    drowns the one line per phase a user reads; warnings and errors still show."""
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # curve_fit's covariance overflows on flat histograms; the Gaussian fit then falls back to the moments
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="scipy.optimize")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow sets its loggers' level from this at import
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # the pickle-format notice: we chose it on purpose
    # Lightning's packages set their top logger to INFO when imported (pytorch_lightning only comes in with
    # mlflow.pytorch, mid-run), so the levels go on the loggers that speak: the rank-zero ones and the summaries.
    for package in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        for name in ("utilities.rank_zero", "callbacks.model_summary", "accelerators.cuda"):
            logging.getLogger(f"{package}.{name}").setLevel(logging.WARNING)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("latentdream", "lightning_modules"):  # our own lines (phases and their times, skipped files)
        logger = logging.getLogger(name)
        if not logger.handlers:  # main() may run many times in one process (tests)
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # a root handler some library installs would print every line twice
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps error output to one line
    # An unreachable tracking server should fail in seconds, not after MLflow's 7 retries of 120 s each.
    from experiments.run.store import apply_http_fail_fast

    apply_http_fail_fast()


def reported(command: Callable[[], int]) -> int:
    """Run ``command`` and return its exit code; bad input (exit 2) and a failed run (exit 1) are reported as one
    line on stderr (also used by each run a sweep trains in its own process)."""
    try:
        return command()
    except (StopRequested, KeyboardInterrupt) as err:  # a signal: the run a command owns is KILLED on the way out
        code = err.code if isinstance(err, StopRequested) else 130
        if not hasattr(err, "message"):  # a training run or sweep (RunInterrupted) has said where to resume it
            run_id = getattr(err, "latentdream_run_id", None)
            print(f"latentdream: {err if isinstance(err, StopRequested) else 'interrupted'}; "
                  + (f"run {run_id} marked KILLED" if run_id else "what was logged before stays"), file=sys.stderr)
        return code
    except InputError as err:
        print(f"latentdream: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        run_id = getattr(err, "latentdream_run_id", None)
        full = disk_full(err)
        if run_id is None and full is not None:  # before any run existed (a data cache, a checkpoint folder)
            print(f"latentdream: error: {full}", file=sys.stderr)
            return 1
        if run_id is None:
            raise  # before any run existed: a bug, which keeps its traceback
        # The run is FAILED with the reason as a tag and the traceback as an artifact; its last good checkpoint is kept.
        from experiments.run.store import failure_reason

        reason = failure_reason(err).splitlines()[0]
        unrecorded = getattr(err, "latentdream_unrecorded", None)
        if unrecorded:  # the store could not take the FAILED status (e.g. it sits on the disk that filled up)
            print(f"latentdream: error: run {run_id} failed: {reason}; the store could not record it ({unrecorded}): "
                  f"end it with `latentdream end {run_id}` once the store can be written", file=sys.stderr)
        else:
            print(f"latentdream: error: run {run_id} FAILED: {reason} "
                  f"(traceback: artifact {tracking.FAILURE_TRACEBACK} of the run)", file=sys.stderr)
        return 1
