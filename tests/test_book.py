"""The pipeline driver: order, parameters, failure reporting and HTML checks (no full build)."""

import textwrap

import pytest

from storage_scaling import book

HEADER = textwrap.dedent('''\
    # ---
    # jupyter:
    #   jupytext:
    #     text_representation:
    #       extension: .py
    #       format_name: percent
    #   kernelspec:
    #     display_name: Python 3
    #     language: python
    #     name: python3
    # ---
    ''')


def _notebook(folder, name, body):
    path = folder / "notebooks" / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + '\n# %% tags=["parameters"]\nprofile = "publish"\nscale = 1\n\n' + body)
    return path


def test_runs_in_order_with_profile_and_overrides(tmp_path, results_env):
    _notebook(tmp_path, "01_first", '# %%\nopen("first.txt", "w").write(f"{profile} {scale}")\n')
    _notebook(tmp_path, "02_second", '# %%\nassert open("first.txt").read() == "smoke 3"\n')
    book.run("smoke", params={"scale": 3}, build=False, root=tmp_path)
    assert (tmp_path / "book" / "executed" / "02_second.ipynb").exists()
    page = (tmp_path / "book" / "provenance.md").read_text()
    assert "01_first" in page and "`profile='smoke'`" in page


def test_failing_notebook_stops_the_run_naming_notebook_and_cell(tmp_path, results_env):
    _notebook(tmp_path, "01_ok", "# %%\nx = 1\n")
    _notebook(tmp_path, "02_bad", "# %%\ny = 2\n\n# %%\nraise RuntimeError('boom here')\n")
    _notebook(tmp_path, "03_never", '# %%\nopen("ran.txt", "w").write("yes")\n')
    with pytest.raises(book.NotebookFailed) as info:
        book.run("smoke", build=False, root=tmp_path)
    message = str(info.value)
    assert "02_bad.py" in message and "raise RuntimeError('boom here')" in message
    assert "RuntimeError: boom here" in message
    assert not (tmp_path / "ran.txt").exists()
    assert not (tmp_path / "book" / "executed" / "02_bad.ipynb").exists()


def test_two_parameter_cells_are_refused(tmp_path, results_env):
    _notebook(tmp_path, "01_twice", '# %% tags=["parameters"]\nprofile = "x"\n')
    with pytest.raises(book.NotebookFailed, match="2 parameters cells"):
        book.run("smoke", build=False, root=tmp_path)


def test_only_selects_by_name_and_rejects_unknown(tmp_path):
    _notebook(tmp_path, "01_alpha", "")
    _notebook(tmp_path, "02_beta", "")
    notebooks = book.discover(tmp_path)
    assert [nb.name for nb in book.select(notebooks, ["beta"])] == ["02_beta"]
    assert [nb.name for nb in book.select(notebooks, ["01_alpha"])] == ["01_alpha"]
    with pytest.raises(ValueError, match="matches no notebook; choose from: 01_alpha, 02_beta"):
        book.select(notebooks, ["gamma"])


def test_parse_param():
    assert book.parse_param("n=3") == ("n", 3)
    assert book.parse_param("ds=[1, 2.5]") == ("ds", [1, 2.5])
    assert book.parse_param("name=food") == ("name", "food")
    with pytest.raises(ValueError, match="key=value"):
        book.parse_param("oops")


def test_check_html_flags_tracebacks_and_network_references(tmp_path):
    (tmp_path / "ok.html").write_text('<script src="_static/local.js"></script><a href="https://x.org">x</a>')
    book.check_html(tmp_path)  # plain links are fine; only loaded resources count
    (tmp_path / "bad.html").write_text('<pre>Traceback (most recent call last):</pre>')
    (tmp_path / "cdn.html").write_text('<link rel="stylesheet" href="https://cdn.example/x.css">')
    with pytest.raises(book.BookBuildFailed) as info:
        book.check_html(tmp_path)
    assert "bad.html: contains a Python traceback" in str(info.value)
    assert "cdn.html: loads from the network" in str(info.value)
