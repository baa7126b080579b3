"""The store's pure rules: which config changes a resumed run accepts, and which process is a DDP worker rank."""

import pytest

from experiments.run.guards import RUN_ID_ENV, ddp_worker_run_id
from experiments.run.store import compare_params
from latentdream.errors import InputError


def test_resume_refuses_changed_params_and_records_the_allowed_ones():
    old = {"optim.lr": "0.01", "trainer.max_epochs": "3", "resume": "None"}
    changed, added = compare_params(old, {**old, "trainer.max_epochs": "5", "resume": "last", "new.key": "1"})
    assert changed == {"trainer.max_epochs": "5", "resume": "last"} and added == {"new.key": "1"}
    with pytest.raises(InputError, match=r"^optim\.lr='0\.5' differs from the resumed run's '0\.01'"):
        compare_params(old, {**old, "optim.lr": "0.5"})


def test_only_a_launched_ddp_rank_above_zero_joins_the_parents_run(monkeypatch):
    monkeypatch.delenv("NODE_RANK", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    assert ddp_worker_run_id() is None  # a stray LOCAL_RANK alone never suppresses a run
    monkeypatch.setenv(RUN_ID_ENV, "abc")
    assert ddp_worker_run_id() == "abc"
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert ddp_worker_run_id() is None  # rank 0 owns the run
