"""``TrialPruning``: a Lightning callback that feeds an Optuna trial the sweep's metric after every validation epoch
and stops the run when the study's pruner says so.

The trial lives in the study's storage (Optuna's RDB storage: the tracking server's PostgreSQL, or the sqlite file
beside the sweep), so the callback works in whatever process or node Ray runs the child in. A pruned run is not an
error: training stops at the end of that epoch and the run goes on to test, log its model and end FINISHED; the
sweep tags it ``sweep.state=pruned``.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from typing_extensions import override


class TrialPruning(L.Callback):
    """Report ``metric`` to trial ``trial_id`` of study ``study_name`` at every epoch; stop when pruned.

    Args:
        storage: the study's storage URL (``sqlite:///...``, ``postgresql+psycopg2://...``).
        study_name: the study (one per sweep: the parent run's id).
        trial_id: Optuna's storage id of the trial (``trial._trial_id``), not its number.
        metric: the logged metric the study optimises (``val/loss``).

    Raises:
        ValueError: an empty metric name.

    Example::

        trainer = L.Trainer(callbacks=[TrialPruning("sqlite:///study.db", "sweep-1", 3, "val/loss")])
    """

    def __init__(self, storage: str, study_name: str, trial_id: int, metric: str) -> None:
        if not metric:
            raise ValueError("TrialPruning needs the metric to report, e.g. 'val/loss'")
        self.storage, self.study_name, self.trial_id, self.metric = storage, study_name, trial_id, metric
        self.pruned_epoch: int | None = None  # the epoch after which the pruner stopped the run
        self._trial: Any = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self._trial is not None:
            return
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from experiments.sweeps.search import make_pruner

        study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=make_pruner())
        self._trial = optuna.trial.Trial(study, self.trial_id)

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0 or self._trial is None:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            return
        value = float(value)
        epoch = trainer.current_epoch
        if math.isfinite(value):
            self._report(value, epoch)
        if self._trial.should_prune():
            self.pruned_epoch = epoch
            trainer.should_stop = True

    def _report(self, value: float, epoch: int) -> None:
        """One intermediate value per epoch; a resumed run that redoes an epoch does not report it twice."""
        if epoch not in self._trial.study._storage.get_trial(self.trial_id).intermediate_values:
            self._trial.report(value, epoch)
