"""Hostile experiment files — binary, too large, an alias that contains itself, an alias bomb, deep nesting, a
defaults entry that is a path — are one InputError each, within 5 s (the expansion is counted, never carried out)."""

from __future__ import annotations

import os
import time

import pytest

from experiments.commands.cli import main
from experiments.run.config import MAX_FILE_BYTES, load_experiment
from latentdream.errors import InputError


def _bomb(levels: int, width: int) -> str:
    lines = [f"a0: &a0 [{','.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


HOSTILE = {
    "binary": (os.urandom(4000), "not a text file"),
    "self_alias": (b"a: &a [*a]\n", "refers to a node that contains it"),
    "self_alias_mapping": (b"model: &m\n  name: cnn\n  inner: *m\n", "refers to a node that contains it"),
    "alias_bomb": (_bomb(9, 9).encode(), "expand to more than"),
    "wide_bomb": (_bomb(4, 100).encode(), "expand to more than"),
    "deep": (b"a: " + b"[" * 20000 + b"]" * 20000 + b"\n", "nested too deeply|not valid YAML"),
    "too_large": (b"# " + b"x" * (MAX_FILE_BYTES + 10) + b"\n", "too large"),
    "defaults_path": (b"defaults: [../../../../etc/hostname]\n", "defaults entry"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_experiment_file_is_one_input_error_within_5_s(tmp_path, name):
    content, message = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    start = time.monotonic()
    with pytest.raises(InputError, match=message) as caught:
        load_experiment(str(path))
    assert time.monotonic() - start < 5
    assert "\n" not in str(caught.value)


def test_the_command_line_says_it_in_one_line_with_exit_2(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9, 9))
    assert main(["train", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("latentdream: error:") and "expand to more than" in line


def test_shared_aliases_within_the_limit_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("defaults: [model/mnist_cnn, data/mnist_bundled]\nname: ok\noip: &o\n  steps: 7\n")
    assert load_experiment(str(path)).oip.steps == 7
