"""Every value of a spec's dataset block is checked by type and range before any data is read: a bad
one is one ValueError line naming the key and the block, and saying what is expected. Needs no data."""

import re
import tomllib
from importlib import resources

import pytest

from storage_scaling import data, experiments
from storage_scaling.experiments import kinds, specs, values

GRID = dict(dataset="cifar10-jpg", model="airnet_small", pool="paper", pool_limit=80, test_n=60, effort=7,
            ns=[20], distances=["original", 1.0], seeds=[0], train=dict(steps=3, batch_size=16))
PROBE_TRAIN = dict(centroids=16, kmeans_samples=4000, kmeans_iters=5)
EXTRA = {  # besides GRID's common keys, what a block of each experiment needs
    "grid": dict(ns=[20], distances=["original", 1.0]),
    "cross": dict(n=20, distances=["original", 15.0, "randomized"], test_distances=["original", 15.0]),
    "select": dict(ns=[20], step_multipliers=[1, 2], lr_multipliers=[1.0]),
    "quality": dict(ns=[20], whole_pool="paper"),
    "original": dict(budgets=[9_000]),
    "naive": dict(budgets=[9_000], distances=[4.0]),
    "budget": dict(budgets=[9_000], allocations=[[9_000, 20]], size_grid_step=0.5),
    "randomized": dict(budgets=[9_000], allocations=[[9_000, 20]], range_start=0.5, range_end=15.0, rank_seed=0,
                       zero_below="auto"),
    "blog": dict(budget_distance=10.0, distances=["original", 4.0]),
}
DROP = object()  # in a change: leave the key out


def block(name, **change):
    common = {k: v for k, v in GRID.items() if k not in EXTRA["grid"]}
    out = {**common, **EXTRA[name], **change}
    return {k: v for k, v in out.items() if v is not DROP}


def where(name, i=0, dataset="cifar10-jpg"):
    return f"datasets[{i}] ({dataset}) of the {name!r} spec"


@pytest.fixture
def no_data(monkeypatch):
    """The checks come before any image is read or encoded."""
    for what in ("pool", "load", "load_cached", "eval_set"):
        monkeypatch.setattr(data, what, lambda *a, **k: pytest.fail("data read before the values were checked"))
    monkeypatch.setattr(kinds, "compress", lambda *a, **k: pytest.fail("encoded before the values were checked"))


BAD = [  # (experiment, the block's change, the key the message must name)
    ("grid", dict(seeds=0), "seeds"),
    ("grid", dict(seeds=[]), "seeds"),
    ("grid", dict(seeds=["a"]), "seeds"),
    ("grid", dict(seeds=[-1]), "seeds"),
    ("grid", dict(seeds=[0, 1.5]), "seeds"),
    ("grid", dict(seeds=[True]), "seeds"),  # a TOML true is a Python bool, a subclass of int
    ("grid", dict(pool_limit=-5), "pool_limit"),  # was sliced as [:-5], and ran
    ("grid", dict(pool_limit=0), "pool_limit"),
    ("grid", dict(pool_limit=2.5), "pool_limit"),
    ("grid", dict(pool_limit=True), "pool_limit"),
    ("grid", dict(test_n=-1), "test_n"),
    ("grid", dict(classes=1), "classes"),
    ("grid", dict(pool="train"), "pool"),
    ("grid", dict(eval_split="train"), "eval_split"),
    ("grid", dict(effort="x"), "effort"),
    ("grid", dict(effort=0), "effort"),
    ("grid", dict(effort=11), "effort"),  # JPEG XL's efforts are 1-10
    ("grid", dict(effort=7.5), "effort"),
    ("grid", dict(effort=True), "effort"),
    ("grid", dict(dataset=3), "dataset"),
    ("grid", dict(ns=[0]), "ns"),
    ("grid", dict(ns="10"), "ns"),
    ("grid", dict(ns=[10.5]), "ns"),
    ("grid", dict(ns=DROP, fractions=[1.5]), "fractions"),
    ("grid", dict(ns=DROP, fractions=[0]), "fractions"),
    ("grid", dict(distances=[-1]), "distances"),
    ("grid", dict(distances=[99]), "distances"),
    ("grid", dict(distances=[True]), "distances"),
    ("grid", dict(distances=["randomized"]), "distances"),  # only a cross block trains a randomized model
    ("grid", dict(distances=DROP), "distances"),
    ("grid", dict(ns=DROP), "ns"),  # neither ns nor fractions
    ("cross", dict(n=0), "n"),
    ("cross", dict(n=DROP, fraction=1.5), "fraction"),
    ("cross", dict(test_distances=["randomized"]), "test_distances"),
    ("cross", dict(range_start=0.1), "range_start"),  # outside the study range [0.5, 15]
    ("cross", dict(range_end="15"), "range_end"),
    ("cross", dict(rank_seed=-1), "rank_seed"),
    ("cross", dict(range_start=4.0, range_end=2.0), "range_start"),  # start < end
    ("select", dict(step_multipliers=[0]), "step_multipliers"),
    ("select", dict(lr_multipliers=1.0), "lr_multipliers"),
    ("select", dict(floor_n=0), "floor_n"),
    ("quality", dict(whole_pool="half"), "whole_pool"),
    ("quality", dict(doubling_seeds=[-1]), "doubling_seeds"),
    ("original", dict(budgets=[0]), "budgets"),
    ("original", dict(budgets=9_000), "budgets"),
    ("original", dict(budgets=DROP, budgets_per_l15=[True]), "budgets_per_l15"),
    ("naive", dict(distances=["original"]), "distances"),  # a naive block stores every image at one distance
    ("budget", dict(allocations=[[9_000, 0]]), "allocations"),
    ("budget", dict(allocations=[9_000]), "allocations"),
    ("budget", dict(allocations=DROP, allocation={"A": 1.0, "alpha": 0.1}), "allocation"),
    ("budget", dict(allocations=DROP, allocation="law"), "allocation"),
    ("budget", dict(size_grid_step=0), "size_grid_step"),
    ("budget", dict(size_grid_step=8.0), "size_grid_step"),
    ("randomized", dict(zero_below="never"), "zero_below"),
    ("randomized", dict(range_end=16.0), "range_end"),
    ("blog", dict(budget_distance=True), "budget_distance"),
    ("blog", dict(budget_distance=0), "budget_distance"),
    ("blog", dict(distances=[]), "distances"),
]


@pytest.mark.parametrize("name,change,key", BAD, ids=[f"{n}-{k}-{c[k]!r}" if c.get(k, DROP) is not DROP
                                                      else f"{n}-{k}-missing" for n, c, k in BAD])
def test_a_bad_value_is_one_line_naming_the_key_and_the_block(name, change, key, no_data):
    spec = {"datasets": [block(name, **change)]}
    with pytest.raises(ValueError) as e:
        experiments.build_runs(name, spec)
    message = str(e.value)
    assert "\n" not in message
    assert re.search(rf"(?<!\w){key}(?!\w)", message)
    dataset = change.get("dataset", "cifar10-jpg")
    assert (where(name) if isinstance(dataset, str) else f"datasets[0] of the {name!r} spec") in message
    with pytest.raises(ValueError) as again:  # the same refusal from the key check alone
        specs.check_spec(name, spec)
    assert str(again.value) == message


def test_the_refusal_says_what_is_expected_and_what_was_given():
    def refusal(name, **change):
        with pytest.raises(ValueError) as e:
            specs.check_spec(name, {"datasets": [block(name, **change)]})
        return str(e.value)

    assert refusal("grid", seeds=0) == (
        "seeds in datasets[0] (cifar10-jpg) of the 'grid' spec must be a non-empty list of integers >= 0, "
        "e.g. seeds = [0, 1]; got 0")
    assert refusal("grid", seeds=[0, "a"]).endswith("got [0, 'a']: seed 'a' must be an integer")
    assert refusal("grid", distances=[1.0, 99]).endswith(
        "got [1.0, 99]: 'distances' must all be in (0, 25], and distance 99 is not")
    assert refusal("grid", pool_limit=-5) == (
        "pool_limit in datasets[0] (cifar10-jpg) of the 'grid' spec must be an integer >= 1, or absent for all, "
        "e.g. pool_limit = 400; got -5")
    assert refusal("grid", effort=0).startswith("effort in datasets[0] (cifar10-jpg) of the 'grid' spec must be "
                                                 "a libjxl effort in [1, 10]")
    assert refusal("grid", distances=DROP).startswith("datasets[0] (cifar10-jpg) of the 'grid' spec needs 'distances'")


def test_the_bad_block_is_the_one_named():
    spec = {"datasets": [block("grid"), block("grid", dataset="food101-64px", seeds=[0, -3])]}
    with pytest.raises(ValueError, match=r"^seeds in datasets\[1\] \(food101-64px\) of the 'grid' spec"):
        specs.check_spec("grid", spec)


@pytest.mark.parametrize("model,train,key", [
    ("airnet_small", dict(steps="x"), "steps"),  # was "invalid literal for int()"
    ("airnet_small", dict(steps=0), "steps"),
    ("airnet_small", dict(steps=3, lr=True), "lr"),
    ("airnet_small", dict(steps=3, batch_size="16"), "batch_size"),
    ("airnet_small", dict(steps=3, nesterov=1), "nesterov"),
    ("probe", dict(PROBE_TRAIN, centroids=-1), "centroids"),
    ("probe", dict(PROBE_TRAIN, centroids="x"), "centroids"),
    ("probe", dict(PROBE_TRAIN, whiten_eps="0.1"), "whiten_eps"),
])
def test_a_bad_train_setting_names_the_setting_and_the_block(model, train, key, no_data):
    spec = {"datasets": [block("grid", model=model, train=train)]}
    with pytest.raises(ValueError) as e:
        experiments.build_runs("grid", spec)
    message = str(e.value)
    assert "\n" not in message and key in message and where("grid") in message


def test_a_misspelt_train_setting_still_points_at_the_right_one(no_data):
    # regression guard (refused well before this change too): probe_centroids is a result column, not a setting
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['probe_centroids'\] in 'train' of datasets\[0\] "
                                         r"\(cifar10-jpg\).*did you mean 'centroids'"):
        experiments.build_runs("grid", {"datasets": [block("grid", model="probe",
                                                           train=dict(PROBE_TRAIN, probe_centroids=-1))]})


@pytest.mark.parametrize("name,change", [
    ("grid", dict(classes=None, pool_limit=None, test_n=None)),  # None (JSON null): all
    ("grid", dict(effort=1, distances=[25.0, None, "original"], seeds=[0, 2**40])),
    ("grid", dict(ns=DROP, fractions=[0.01, 1])),
    ("cross", dict(n=DROP, fraction=1.0, distances=["randomized"])),
    ("randomized", dict(zero_below=None)),
    ("randomized", dict(zero_below=2)),
    ("budget", dict(allocations=DROP, budgets=DROP, budgets_per_l15=[0.5], allocation={"A": 1, "alpha": 0.1,
                                                                                       "B": 1e4, "beta": 2.0})),
    ("blog", dict(budget_distance=25)),
])
def test_values_at_the_edges_of_their_ranges_pass(name, change):
    # regression guard against refusing good values (these passed before too)
    spec = {"datasets": [block(name, **change)]}
    assert specs.check_spec(name, spec) is spec


def default_spec_files():
    folder = resources.files(specs.__package__).joinpath("specs")
    return sorted(f.name for f in folder.iterdir() if f.name.endswith(".toml"))


def test_there_is_a_default_spec_file_for_every_experiment_and_profile():
    assert default_spec_files() == sorted(f"{n}.{p}.toml" for n in experiments.EXPERIMENTS for p in specs.PROFILES)


@pytest.mark.parametrize("file", default_spec_files())
def test_every_default_spec_file_validates(file):
    name, profile, _ = file.split(".")
    spec = tomllib.loads(specs.spec_file(name, profile).read_text())
    assert specs.check_spec(name, spec) is spec  # no data needed: validated, not built
    declared = {**specs.COMMON_BLOCK_KEYS, **kinds.get(name).keys}
    for b in spec["datasets"]:
        for key in b:  # every key the file uses has its type and range declared
            assert isinstance(declared[key], values.Value), key


def test_every_valid_block_key_has_its_type_and_range_declared():
    for name in experiments.EXPERIMENTS:
        declared = {**specs.COMMON_BLOCK_KEYS, **kinds.get(name).keys}
        assert set(specs.block_keys(name)) == set(declared)
        for key, value in declared.items():
            assert isinstance(value, values.Value) and value.words and value.example, (name, key)
