"""MLflow's system metrics, started once a run's first epoch metrics are in.

MLflow's Compare page plots, by default, the first metric key the first run holds, in the order the store received
them (``latest_metrics`` rows in insertion order); the experiment page's table lists them the same way. Started
with the run (``mlflow.start_run(log_system_metrics=True)``), the monitor's first sample lands ten seconds in,
before any epoch ends, and ``system/cpu_utilization_percentage`` became what runs were compared by. So a new run
starts without it, the logger puts ``val/loss`` and ``val/acc`` first in its first batch and then starts the same
monitor here, registered where ``mlflow.end_run`` finishes it.
"""

from __future__ import annotations

import logging

log = logging.getLogger("latentdream")


def start_system_metrics(run_id: str, resume: bool = False) -> None:
    """Start MLflow's ``SystemMetricsMonitor`` for ``run_id`` as ``mlflow.start_run(log_system_metrics=True)``
    would; a failure is a warning (the run goes on without system metrics)."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
        from mlflow.tracking import fluent

        if run_id in fluent.run_id_to_system_metrics_monitor:
            return
        monitor = SystemMetricsMonitor(run_id, resume_logging=resume)
        fluent.run_id_to_system_metrics_monitor[run_id] = monitor  # mlflow.end_run() finishes it
        monitor.start()
    except Exception as err:  # noqa: BLE001 - system metrics are a convenience, never a reason to fail a run
        log.warning("could not start system metrics of run %s: %s", run_id, err)
