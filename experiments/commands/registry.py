"""The model registry: ``latentdream register RUN_ID --name NAME [--alias champion]`` and ``models:/`` references.

* :func:`register_run` — a run's logged model (``runs:/<id>/model``) becomes a new version of registered model
  ``NAME`` (created if missing), optionally under an alias; ``mlflow.pytorch.load_model("models:/NAME@alias")``
  then returns the network.
* :func:`resolve_run_id` — ``models:/NAME@alias`` or ``models:/NAME/VERSION`` → the version's source run, so that
  every command taking a RUN_ID also takes a registered model (and loads its weights the same weights-only way).
* :func:`best_run` — the run with the lowest (or highest) final value of a metric (a sweep's ``--register``).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Sequence
from typing import Any

from analysis import tracking
from experiments.run import store
from latentdream.errors import InputError
from latentdream.names import check_name

MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))")


def resolve_run_id(client: Any, reference: str) -> str:
    """The run a reference names: a run id unchanged, or the source run of ``models:/NAME@ALIAS`` /
    ``models:/NAME/VERSION``.

    :raises InputError: a ``models:/`` reference of another form, or one the registry does not hold.
    """
    if not reference.startswith("models:/"):
        return reference
    found = MODEL_URI.fullmatch(reference)
    if found is None:
        raise InputError(f"{reference!r} is not a registered model reference; give models:/NAME@ALIAS or "
                         "models:/NAME/VERSION")
    from mlflow.exceptions import MlflowException

    name, alias, version = found.group("name", "alias", "version")
    try:
        found_version = (client.get_model_version_by_alias(name, alias) if alias
                         else client.get_model_version(name, version))
    except MlflowException:
        raise InputError(f"{reference}: the registry has no model {name!r} with "
                         f"{f'alias {alias!r}' if alias else f'version {version}'}") from None
    if found_version.run_id:
        return found_version.run_id
    if found_version.model_id:  # registered from a logged model: its source run
        source = client.get_logged_model(found_version.model_id).source_run_id
        if source:
            return source
    raise InputError(f"{reference}: version {found_version.version} was not registered from a run")


def logged_model(client: Any, run: Any) -> Any:
    """The run's finished logged model ``model`` (the newest, should there be several).

    :raises InputError: the run logged none (trained with ``tracking.log_model=false``, or killed while logging).
    """
    from mlflow.entities import LoggedModelStatus

    models = client.search_logged_models([run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run.info.run_id}'")
    ready = [m for m in models if m.name == tracking.MODEL_NAME and m.status == LoggedModelStatus.READY]
    if not ready:
        raise InputError(f"run {run.info.run_id} has no logged model to register (trained with "
                         "tracking.log_model=false?); train with tracking.log_model=true")
    return max(ready, key=lambda m: m.creation_timestamp)


def register_run(client: Any, uri: str, run_id: str, name: str, alias: str | None = None) -> Any:
    """Register run ``run_id``'s logged model as a new version of ``name``; with ``alias``, point it there.

    The run gets the tag ``registered_model`` = ``NAME/VERSION``.

    :returns: the new ``ModelVersion``.
    :raises InputError: unknown run, a run that is no training run, no logged model, a name or alias MLflow
        refuses (then no version is left behind).
    """
    from mlflow.exceptions import MlflowException

    check_registration(name, alias)  # everything that can be known before the registry is touched
    run = store.find_run(client, uri, run_id, kinds=tracking.TRAINED_KINDS)
    model = logged_model(client, run)
    created = False
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name)
            created = True
        except MlflowException as err:
            raise InputError(f"--name {name!r} is not allowed: {err.message.splitlines()[0]}") from None
    try:
        # The source is the model's storage location, not models:/<model_id>: MLflow's sqlite registry would look
        # that id up in the *global* tracking store (its own TODO), which need not be this client's.
        version = client.create_model_version(name, source=model.artifact_location, run_id=run_id,
                                              model_id=model.model_id)
        if alias:
            try:
                client.set_registered_model_alias(name, alias, version.version)
            except MlflowException as err:  # a rule of the server's own, beyond check_registration's
                client.delete_model_version(name, version.version)
                raise InputError(f"--alias {alias!r} is not allowed: {err.message.splitlines()[0]}") from None
    except BaseException:
        if created:  # a refused registration leaves no registered model behind either
            with contextlib.suppress(MlflowException):
                client.delete_registered_model(name)
        raise
    client.set_tag(run_id, tracking.TAG_REGISTERED, f"{name}/{version.version}")
    return version


_ALIAS = re.compile(r"[\w-]{1,255}")
_RESERVED_ALIAS = re.compile(r"latest|[vV]\d+", re.IGNORECASE)


def check_registration(name: str, alias: str | None) -> None:
    """The registered model name and alias, checked before anything is created: a name is a plain name
    (:func:`latentdream.names.check_name`, and no ``:``, which MLflow refuses); an alias is letters, digits, ``_``
    and ``-``, at most 255 characters, and not one MLflow reserves (``latest``, ``v<N>``: they name versions).

    :raises InputError: one line naming ``--name`` or ``--alias``.
    """
    check_name("--name", name)
    if ":" in name:
        raise InputError(f"--name {name!r} is not allowed: it carries ':' (models:/NAME@ALIAS would be ambiguous)")
    if alias is None:
        return
    if not _ALIAS.fullmatch(alias):
        raise InputError(f"--alias {alias!r} is not allowed; use letters, digits, '_' and '-' (at most 255)")
    if _RESERVED_ALIAS.fullmatch(alias):
        raise InputError(f"--alias {alias!r} is not allowed: 'latest' and v<N> are reserved by MLflow (they name "
                         "versions); e.g. --alias champion")


def best_run(runs: Sequence[Any], metric: str, mode: str) -> Any:
    """The run with the lowest (``mode="min"``) or highest (``"max"``) final value of ``metric``.

    :raises InputError: ``mode`` is neither, or no run holds a finite value of ``metric``.
    """
    if mode not in ("min", "max"):
        raise InputError(f"--mode {mode!r} is not allowed; allowed: min, max")
    scored = [(r.data.metrics[metric], r) for r in runs
              if metric in r.data.metrics and math.isfinite(r.data.metrics[metric])]
    if not scored:
        raise InputError(f"--metric {metric}: no finished run holds it; e.g. {tracking.VAL_LOSS}")
    pick = min if mode == "min" else max
    return pick(scored, key=lambda pair: pair[0])[1]
