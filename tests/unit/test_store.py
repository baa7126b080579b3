"""How a run ends (experiments.run.store.ended): FINISHED, KILLED on an interrupt, FAILED with its reason."""

import signal

import pytest

from analysis import tracking
from experiments.run.store import RunInterrupted, ended


class FakeClient:
    def __init__(self):
        self.tags, self.status = {}, None

    def set_tag(self, run_id, key, value):
        self.tags[key] = value

    def set_terminated(self, run_id, status="FINISHED"):
        self.status = status


def test_a_block_that_returns_ends_the_run_finished():
    client = FakeClient()
    with ended(client, "r"):
        pass
    assert client.status == "FINISHED" and client.tags == {}


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RunInterrupted(signal.SIGTERM, "r", None)])
def test_an_interrupt_ends_the_run_killed_and_propagates(error):
    client = FakeClient()
    with pytest.raises(type(error)):
        with ended(client, "r"):
            raise error
    assert client.status == "KILLED" and tracking.TAG_FAILURE not in client.tags


def test_an_error_ends_the_run_failed_with_its_reason():
    client = FakeClient()
    with pytest.raises(ZeroDivisionError):
        with ended(client, "r"):
            1 / 0
    assert client.status == "FAILED"
    assert client.tags[tracking.TAG_FAILURE] == "ZeroDivisionError: division by zero"


def test_a_custom_end_replaces_set_terminated():
    client, seen = FakeClient(), []
    with ended(client, "r", end=seen.append):
        pass
    assert seen == ["FINISHED"] and client.status is None
