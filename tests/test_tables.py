import json

import pandas as pd
import pytest

from storage_scaling import tables


def compute(params):
    return pd.DataFrame({"x": list(range(params["size"]))})


FULL, SMOKE = {"size": 5}, {"size": 2}


def test_full_writes_table_and_sidecar(results_env):
    t = tables.profile_table("demo", profile="full", full_params=FULL, smoke_params=SMOKE, compute=compute)
    assert t.source == "full" and len(t.frame) == 5
    meta = json.loads((results_env / "demo.json").read_text())
    assert meta["params"] == FULL and meta["rows"] == 5 and meta["code_version"]
    assert len(pd.read_csv(results_env / "demo.csv")) == 5


def test_publish_loads_committed_only_for_exact_params(results_env):
    tables.profile_table("demo", profile="full", full_params=FULL, smoke_params=SMOKE, compute=compute)

    def boom(params):
        raise AssertionError("publish must not recompute a committed table")

    t = tables.profile_table("demo", profile="publish", full_params=FULL, smoke_params=SMOKE, compute=boom)
    assert t.source == "committed" and not t.is_placeholder and len(t.frame) == 5
    other = tables.profile_table("demo", profile="publish", full_params={"size": 6}, smoke_params=SMOKE,
                                 compute=compute)
    assert other.is_placeholder and len(other.frame) == 2
    assert "Pending" in other.banner_markdown()


def test_smoke_never_writes(results_env):
    t = tables.profile_table("demo", profile="smoke", full_params=FULL, smoke_params=SMOKE, compute=compute)
    assert t.source == "smoke" and len(t.frame) == 2
    assert not list(results_env.iterdir())


def test_table_without_sidecar_is_not_trusted(results_env):
    tables.profile_table("demo", profile="full", full_params=FULL, smoke_params=SMOKE, compute=compute)
    (results_env / "demo.json").unlink()
    t = tables.profile_table("demo", profile="publish", full_params=FULL, smoke_params=SMOKE, compute=compute)
    assert t.is_placeholder


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        tables.profile_table("demo", profile="fast", full_params=FULL, smoke_params=SMOKE, compute=compute)


def test_note_box_is_an_html_admonition_with_the_commands():
    box = tables.note_box("The GPU tier has not run <yet>.", ["storage-scaling run grid --profile full"],
                          title="The GPU tier has not run")
    html = box.data
    assert html.startswith('<div class="admonition note"><p class="admonition-title">The GPU tier has not run</p>')
    assert "has not run &lt;yet&gt;." in html  # text is escaped
    assert "<pre><code>storage-scaling run grid --profile full</code></pre>" in html
    assert "<pre>" not in tables.note_box("no command").data
    with pytest.raises(ValueError, match="text of the note"):
        tables.note_box("  ")
