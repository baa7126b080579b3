"""A sweep's grid: splitting values (brackets, quotes), seeds as replicates, random points, the planned runs."""

import pytest

from experiments.commands.cli import parse
from experiments.sweeps.grid import parse_grid, point_label, random_points, split_values
from experiments.sweeps.sweep import plan
from latentdream.errors import InputError


@pytest.mark.parametrize("text, values", [
    ("0.01,0.05,0.1", ["0.01", "0.05", "0.1"]),
    ("[1,2],[1,2,3]", ["[1,2]", "[1,2,3]"]),  # what a shell leaves of analysis.b='[1,2]','[1,2,3]'
    ("'[1,2]','[1,2,3]'", ["[1,2]", "[1,2,3]"]),  # the same, quoted (no shell in between)
    ('"a,b.jpg",c.jpg', ["a,b.jpg", "c.jpg"]),
    ("{conv2: 0.5, conv3: 1},{conv3: 1}", ["{conv2: 0.5, conv3: 1}", "{conv3: 1}"]),
    ("[[1,2],[3]],[4]", ["[[1,2],[3]]", "[4]"]),
    ("sgd", ["sgd"]),
])
def test_commas_split_only_outside_brackets_and_quotes(text, values):
    assert split_values(text) == values


@pytest.mark.parametrize("text, message", [("[1,2", "unclosed bracket"), ("'a,b", "unclosed '"),
                                           ("a,,b", "an empty value")])
def test_broken_values_are_refused(text, message):
    with pytest.raises(InputError, match=message):
        split_values(text)


def test_axes_fixed_overrides_and_seeds():
    grid = parse_grid(["optim.lr=0.01,0.05", "analysis.b=[1,2],[1,2,3]", "trainer.seed=1,2,3",
                       "trainer.max_epochs=2", "optim.name=sgd"])
    assert grid.axes == {"optim.lr": ["0.01", "0.05"], "analysis.b": ["[1,2]", "[1,2,3]"]}
    assert grid.fixed == ["trainer.max_epochs=2", "optim.name=sgd"]
    assert grid.seeds == ["1", "2", "3"]
    assert grid.points() == [{"optim.lr": "0.01", "analysis.b": "[1,2]"}, {"optim.lr": "0.01", "analysis.b": "[1,2,3]"},
                             {"optim.lr": "0.05", "analysis.b": "[1,2]"}, {"optim.lr": "0.05", "analysis.b": "[1,2,3]"}]
    assert point_label(grid.points()[1]) == "optim.lr=0.01 analysis.b=[1,2,3]"


def test_a_later_plain_value_wins_as_for_train():
    assert parse_grid(["trainer.max_epochs=1", "optim.lr=0.1", "trainer.max_epochs=2"]).fixed == [
        "optim.lr=0.1", "trainer.max_epochs=2"]


def test_one_seed_is_a_plain_override_and_nothing_swept_is_one_point():
    grid = parse_grid(["trainer.seed=7"])
    assert grid.seeds == [] and grid.fixed == ["trainer.seed=7"] and grid.points() == [{}]
    assert point_label({}) == "default"


@pytest.mark.parametrize("items, message", [
    (["optim.lr"], "not of the form key=value"),
    (["optim.lr=0.1,0.2", "optim.lr=0.3"], "given twice"),
    (["optim.lr=0.3", "optim.lr=0.1,0.2"], "given twice"),
    (["trainer.seed=1,2", "trainer.seed=3,4"], "given twice"),
    (["resume=abc"], "continue a sweep with --resume PARENT_ID"),
    (["optim.lr=0.1,0.1"], "lists a value twice"),
])
def test_bad_items_are_refused(items, message):
    with pytest.raises(InputError, match=message):
        parse_grid(items)


def test_random_points_are_distinct_seeded_and_in_grid_order():
    first = random_points(12, 5, seed=3)
    assert first == random_points(12, 5, seed=3) and first == sorted(set(first)) and len(first) == 5
    assert all(0 <= i < 12 for i in first)
    assert any(random_points(12, 5, seed=s) != first for s in range(4, 10))
    assert random_points(4, 4, seed=0) == [0, 1, 2, 3]
    for k in (0, 13):
        with pytest.raises(InputError, match="the grid has 12 points"):
            random_points(12, k, seed=0)


def test_plan_is_point_major_with_every_seed_and_a_random_subset():
    grid = parse_grid(["optim.lr=0.01,0.05,0.1", "trainer.seed=1,2"])
    runs = plan(grid)
    assert [(r.index, r.point["optim.lr"], r.seed) for r in runs] == [
        (0, "0.01", "1"), (1, "0.01", "2"), (2, "0.05", "1"), (3, "0.05", "2"), (4, "0.1", "1"), (5, "0.1", "2")]
    assert runs[3].overrides(grid) == ["optim.lr=0.05", "trainer.seed=2"] and runs[3].name == "optim.lr=0.05 seed=2"
    sub = plan(grid, random=2, random_seed=1)
    assert len(sub) == 4 and sub[0].seed == "1" and sub[1].seed == "2" and sub[0].point == sub[1].point
    assert [r.index for r in sub] == [0, 1, 2, 3]


def test_sweep_and_register_command_lines():
    args = parse(["sweep", "cnn_mnist_bundled", "optim.lr=0.01,0.05", "--parallel", "2", "trainer.seed=1,2",
                  "--random", "1", "--register", "digits", "--mode", "max", "--metric", "val/acc"])
    assert args.overrides == ["optim.lr=0.01,0.05", "trainer.seed=1,2"]
    assert (args.parallel, args.random, args.register, args.mode, args.metric) == (2, 1, "digits", "max", "val/acc")
    assert parse(["sweep", "x", "--resume", "abc"]).resume == "abc"
    args = parse(["register", "RUN", "--name", "digits", "--alias", "champion"])
    assert (args.run_id, args.name, args.alias) == ("RUN", "digits", "champion")
    assert parse(["oip", "models:/digits@champion", "layer=conv1"]).run_id == "models:/digits@champion"
