"""The command line: overrides are taken wherever they stand after the positional arguments."""

import pytest

from experiments.commands.cli import parse


@pytest.mark.parametrize("argv", [
    ["dream", "RUN", "--image", "photo.jpg", "mode=seed", "cycles=2"],
    ["dream", "RUN", "mode=seed", "cycles=2", "--image", "photo.jpg"],
    ["dream", "RUN", "mode=seed", "--image", "photo.jpg", "cycles=2"],
])
def test_dream_overrides_before_and_after_the_image(argv):
    args = parse(argv)
    assert args.image == "photo.jpg" and args.run_id == "RUN"
    assert sorted(args.overrides) == ["cycles=2", "mode=seed"]


def test_a_stray_word_is_refused_with_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        parse(["dream", "RUN", "--image", "photo.jpg", "seed"])
    assert stop.value.code == 2 and "unrecognized arguments: seed" in capsys.readouterr().err
