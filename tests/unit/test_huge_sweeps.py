"""Huge sweeps: a limit on the runs (``--max-runs`` raises it) said in one line at once, without listing the grid;
a random draw from a huge grid without listing it; the configs of a large grid checked at <= 1 s CPU per 1,000
points, with exactly the verdicts of loading every point's config."""

from __future__ import annotations

import gc
import time

import pytest

from experiments.commands.cli import main
from experiments.run.config import load_experiment
from experiments.run.grid_check import GridChecker
from experiments.run.train import check_trainer
from experiments.sweeps.grid import MAX_RUNS, check_size, parse_grid
from experiments.sweeps.sweep import check_configs, plan
from latentdream.errors import InputError


def _values(n: int, scale: float = 0.001) -> str:
    return ",".join(f"{scale * (i + 1):g}" for i in range(n))


def test_a_million_point_grid_is_one_line_at_once(capsys):
    start = time.monotonic()
    argv = ["sweep", "cnn_mnist_bundled", f"optim.lr={_values(1000)}", f"optim.momentum={_values(1000, 0.0009)}"]
    assert main(argv) == 2
    assert time.monotonic() - start < 5
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "would train 1,000,000 runs (1000 × 1000 grid points)" in line and "--max-runs 1000000" in line


def test_seeds_count_and_the_flag_raises_the_limit():
    grid = parse_grid([f"optim.lr={_values(500)}", "trainer.seed=1,2,3"])
    with pytest.raises(InputError, match="1,500 runs .* 3 seeds"):
        check_size(grid)
    assert check_size(grid, max_runs=1500) == 1500
    assert check_size(grid, random=10) == 30  # ten points drawn, three seeds each
    assert MAX_RUNS == 1000


def test_points_are_addressed_without_listing_the_grid():
    grid = parse_grid(["a=1,2,3", "b=x,y", "c=p,q,r,s"])
    assert [grid.point(i) for i in range(grid.size)] == grid.points()
    huge = parse_grid([f"k{j}={_values(100)}" for j in range(5)])  # 10^10 points
    start = time.monotonic()
    runs = plan(huge, random=3, random_seed=0)
    assert len(runs) == 3 and time.monotonic() - start < 5


@pytest.fixture
def frozen_heap():
    """The test process's own heap moved out of the collector's view: after hundreds of tests a full collection of
    it can take seconds, which says nothing about the check (whose objects are the only ones left to scan)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def test_a_thousand_point_grid_is_checked_in_under_a_second_of_cpu(frozen_heap):
    check_configs("cnn_mnist_bundled", parse_grid(["optim.lr=0.1"]), plan(parse_grid(["optim.lr=0.1"])))  # imports
    for items in ([f"optim.lr={_values(1000)}"], [f"data.batch_size={','.join(map(str, range(1, 1001)))}"],
                  [f"optim.lr={_values(10)}", f"optim.momentum={_values(10, 0.09)}", "trainer.seed=" +
                   ",".join(map(str, range(10)))]):
        grid = parse_grid(items)
        runs = plan(grid)
        start = time.thread_time()  # this thread's CPU: threads an earlier test left (Ray's, MLflow's) do not count
        checked, cfgs = check_configs("cnn_mnist_bundled", grid, runs)
        assert time.thread_time() - start < 1.0, items[0][:30]
        assert len(checked) == 1000
    assert cfgs[-1].optim.lr == pytest.approx(0.01) and cfgs[-1].trainer.seed == 9 and checked[-1].config_seed == "9"


GRIDS = [
    ["optim.lr=0.1,-1", "trainer.max_epochs=1,0"],
    ["optim.name=sgd,bogus", "scheduler.name=step,cosine"],
    ["model.conv_filters=[8,8,8],[32,64,128]", "oip.maps=[0,1],[20,21]"],
    ["data.batch_size=4,0", "model.dropout=0.1,1.5"],
    ["oip.layers=[conv1],[conv9]", "dream.objective=conv3:5,conv3:500"],
    ["tracking.run_name=ok,a/b", "optim.lr=0.1,abc"],
    ["data.image_size=28,20", "trainer.seed=1,2"],
]


@pytest.mark.parametrize("items", GRIDS, ids=[" ".join(g) for g in GRIDS])
def test_the_checker_gives_every_point_the_verdict_a_full_load_gives(items):
    grid = parse_grid(items)
    checker = GridChecker("cnn_mnist_bundled", tuple(grid.axes), check_trainer)
    for run in plan(grid):
        overrides = run.overrides(grid)
        try:
            cfg = load_experiment("cnn_mnist_bundled", overrides)
            check_trainer(cfg)
            expected = None
        except InputError as err:
            expected = str(err)
        try:
            view = checker.load(overrides)
            got = None
        except InputError as err:
            got = str(err)
        assert (got is None) == (expected is None), (overrides, got, expected)
        if got is None:
            for key in [item.partition("=")[0] for item in overrides]:
                section, leaf = key.split(".", 1)
                assert getattr(getattr(view, section), leaf) == getattr(getattr(cfg, section), leaf)
