"""The committed tables stay readable by today's code: every committed row is a run of today's full
spec, under the key it was written with.

A refactor that changes how a run's parameters are spelled (a renamed knob, a new default, a
differently assembled key) would silently turn committed rows into "pending" ones and the book
would show partial tables. This test recomputes the keys and fails first.
"""

import json

import pandas as pd
import pytest

from storage_scaling import paths
from storage_scaling.experiments import kinds, runner, specs
from storage_scaling.results import ResultsStore, canonical, run_key

RESULTS = paths.repo_root() / "results"

needs_data = pytest.mark.skipif(paths.data_root() is None,
                                reason="needs ../shared/data: the full specs' subset sizes come from the data packs")


def committed_tables():
    for name in kinds.EXPERIMENTS:
        for model in specs.models_of(specs.default_spec(name, "full")):
            path = kinds.result_path(name, model, RESULTS)
            if path.is_file():
                yield name, model, path


def test_there_are_committed_run_tables_to_check():
    assert len(list(committed_tables())) >= 10


@pytest.mark.parametrize("name,model,path", list(committed_tables()), ids=lambda v: getattr(v, "name", v))
def test_each_row_keeps_its_key(name, model, path):
    """The key stored with a row is the key of the parameters stored with it."""
    frame = ResultsStore(path).frame()
    recomputed = [run_key(json.loads(text)) for text in frame["params_json"]]
    assert recomputed == frame["run_key"].astype(str).tolist()


@needs_data
@pytest.mark.parametrize("name,model,path", list(committed_tables()), ids=lambda v: getattr(v, "name", v))
def test_every_committed_row_is_a_run_of_todays_full_spec(name, model, path):
    found = runner.committed_rows(name, model, RESULTS)
    assert found is not None, f"{path.name}: no row is a run of today's full spec"
    frame, info = found
    assert len(frame) == len(ResultsStore(path).frame()), f"{path.name}: rows that today's spec no longer has"
    # a table still being run across sittings is committed as its rows land, without its sidecar (the
    # book shows it as pending); the sidecar says it is finished, and then every run must be there
    if path.with_suffix(".json").is_file():
        assert info["done"] == info["total"], f"{path.name}: {info['done']} of {info['total']} runs, yet a sidecar"


@needs_data
def test_a_renamed_knob_would_be_caught(tmp_path):
    """Not vacuous: a row whose parameters differ from today's spec (here a seed the spec does not
    have, keyed accordingly, as a changed default would write it) is no run of today's spec."""
    path = kinds.result_path("grid", "probe", RESULTS)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    params = json.loads(frame.loc[0, "params_json"])
    params["seed"] = 99
    frame.loc[0, ["seed", "params_json", "run_key"]] = ["99", canonical(params), run_key(params)]
    frame.to_csv(tmp_path / path.name, index=False)
    found, _ = runner.committed_rows("grid", "probe", tmp_path)
    assert len(found) == len(frame) - 1
