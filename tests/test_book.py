"""The pipeline driver: order, parameters, failure reporting and HTML checks (no full build)."""

import json
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
    assert [nb.name for nb in book.select(notebooks, ["02"])] == ["02_beta"]  # by number, as --help says
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


# ---------------------------------------------------------------------------------------------
# Images: every <img> of every page must point to a file of the built HTML


def test_check_html_fails_when_an_img_points_to_a_missing_file(tmp_path):
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "a.png").write_bytes(b"png")
    (tmp_path / "_images" / "b c.png").write_bytes(b"png")
    chapters = tmp_path / "book" / "chapters"
    chapters.mkdir(parents=True)
    (chapters / "ok.html").write_text(
        '<img alt="a" src="../../_images/a.png" /><img src="/_images/a.png">'
        '<img src="../../_images/b%20c.png#top"><img src="data:image/png;base64,iVBORw0KGgo=">')
    book.check_html(tmp_path)  # all present (relative, root-relative, quoted, inline data)
    (chapters / "bad.html").write_text(
        '<p>x</p><IMG ALT="fig" SRC=\'../../_images/gone.png\'><img src="../../_images/a.png">')
    with pytest.raises(book.BookBuildFailed) as info:
        book.check_html(tmp_path)
    message = str(info.value)
    assert "book/chapters/bad.html: <img> points to a missing file: ../../_images/gone.png" in message
    assert "ok.html" not in message
    (tmp_path / "_images" / "gone.png").write_bytes(b"png")
    book.check_html(tmp_path)  # present again: passes


def test_glued_figures_are_written_where_myst_nb_links_them(tmp_path):
    """A figure glued with display=False is pasted by myst-nb as _images/<sha256>.png without
    writing that file; the book's Sphinx extension writes it from the glue cache."""
    import base64
    import json
    from types import SimpleNamespace

    from myst_nb.ext.glue.crossref import generate_any_nodes

    from storage_scaling import sphinx_glue_images

    png = b"\x89PNG\r\n\x1a\n a figure rendered once by glue()"
    output = {"data": {"image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"},
              "metadata": {}}
    glue_folder = tmp_path / "jupyter_execute"
    (glue_folder / "book" / "executed").mkdir(parents=True)
    (glue_folder / "book" / "executed" / "05_theory.glue.json").write_text(
        json.dumps({"theory_fig_validity": output, "theory_alpha": {"data": {"text/plain": "0.5"}}}))
    html = tmp_path / "html"
    # the <img> myst-nb writes into the chapter that pastes the figure
    builder = SimpleNamespace(imagedir="_images", outdir=str(html))
    env = SimpleNamespace(docname="book/chapters/05_theory")
    (image,) = generate_any_nodes(SimpleNamespace(inline=False), output, ["image/png", "text/plain"],
                                  builder, env)
    page = html / "book" / "chapters" / "05_theory.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<img alt="fig" src="{image["uri"]}" />')
    with pytest.raises(book.BookBuildFailed, match="points to a missing file"):
        book.check_html(html)  # what happened to the theory chapter's validity figure
    written = sphinx_glue_images.write_glued_images(glue_folder, html / "_images")
    assert [p.name for p in written] == [image["uri"].rsplit("/", 1)[-1]]
    assert (page.parent / image["uri"]).read_bytes() == png
    book.check_html(html)
    assert sphinx_glue_images.write_glued_images(glue_folder, html / "_images") == []  # idempotent


def test_the_book_config_loads_the_glue_image_extension():
    import yaml

    from storage_scaling import paths

    config = yaml.safe_load((paths.repo_root() / "_config.yml").read_text())
    assert "storage_scaling.sphinx_glue_images" in config["sphinx"]["config"]["extensions"]


# ---------------------------------------------------------------------------------------------
# The command line: bad input is one line on stderr and exit status 2, before any work


@pytest.fixture
def fake_repo(tmp_path, monkeypatch, results_env):
    """A repository root with two notebooks; the driver's main() works on it."""
    monkeypatch.setattr(book.paths, "repo_root", lambda: tmp_path)

    def no_build(root):
        raise AssertionError("jupyter-book must not run")

    monkeypatch.setattr(book, "build_html", no_build)
    _notebook(tmp_path, "01_alpha", '# %%\nopen("alpha.txt", "w").write(f"{scale}")\n')
    _notebook(tmp_path, "02_beta", "# %%\nx = 1\n")
    return tmp_path


def _one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("python -m storage_scaling.book: error: ")
    return lines[0]


def test_bad_only_is_one_line_exit_2_and_debug_shows_the_traceback(fake_repo, capsys):
    assert book.main(["--only", "gamma", "--no-build"]) == 2
    line = _one_error_line(capsys)
    assert "--only 'gamma' matches no notebook; choose from: 01_alpha, 02_beta" in line
    with pytest.raises(ValueError, match="matches no notebook"):
        book.main(["--only", "gamma", "--no-build", "--debug"])


def test_failed_notebook_is_a_short_message_with_exit_1(fake_repo, capsys, monkeypatch):
    def failing(*args, **kwargs):
        raise book.NotebookFailed("notebook 02_beta.py failed in cell 3 ('x = 1'): KeyError: 'k'")

    monkeypatch.setattr(book, "run", failing)
    assert book.main(["--no-build"]) == 1
    line = _one_error_line(capsys)
    assert "notebook 02_beta.py failed in cell 3" in line


def test_failed_jupyter_book_build_is_short_and_keeps_the_full_log(tmp_path, monkeypatch):
    import subprocess

    noise = [f"reading sources... [{i}%]" for i in range(100)]
    output = "\n".join(noise[:50] + ["/x/05_theory.md:12: WARNING: Glue reference 'k' not found"]
                       + noise[50:])
    monkeypatch.setattr(book.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 1, stdout=output, stderr=""))
    with pytest.raises(book.BookBuildFailed) as info:
        book.build_html(tmp_path)
    message = str(info.value)
    assert "WARNING: Glue reference 'k' not found" in message and "reading sources" not in message
    assert len(message.splitlines()) <= 12
    log = tmp_path / "_build" / "jupyter-book.log"
    assert str(log) in message and log.read_text() == output


def test_build_only_without_executed_notebooks_says_run_them_first(fake_repo, capsys):
    assert book.main(["--build-only"]) == 2
    line = _one_error_line(capsys)
    assert "none of the notebooks has been run" in line
    assert "`python -m storage_scaling.book --profile publish --no-build`" in line
    (fake_repo / "book" / "executed").mkdir(parents=True)
    (fake_repo / "book" / "executed" / "01_alpha.ipynb").write_text("{}")
    assert book.main(["--build-only"]) == 2
    assert "not run yet: 02_beta;" in _one_error_line(capsys)


def test_build_only_refuses_flags_it_would_ignore(fake_repo, capsys):
    assert book.main(["--build-only", "--profile", "smoke", "-p", "scale=2"]) == 2
    assert "--profile, -p would have no effect" in _one_error_line(capsys)


def test_building_after_only_needs_the_other_executed_notebooks_before_running(fake_repo, capsys):
    assert book.main(["--only", "alpha", "--profile", "smoke"]) == 2
    line = _one_error_line(capsys)
    assert "needs the executed notebooks 02_beta" in line and "--no-build" in line
    assert not (fake_repo / "alpha.txt").exists()  # refused before running anything


def test_build_only_shows_the_profile_the_notebooks_ran_with(fake_repo, monkeypatch):
    book.run("smoke", build=False, root=fake_repo)
    monkeypatch.setattr(book, "build_html", lambda root: root / "_build" / "html" / "index.html")
    book.build_only(fake_repo)
    assert "Profile of this build: `smoke`" in (fake_repo / "book" / "provenance.md").read_text()


# ---------------------------------------------------------------------------------------------
# -p: keys from the parameters cells, values of the default's type


def _typed_notebooks(folder):
    cell = ('profile = "publish"\nscale = 1\nrate = 0.5  # a float\nds = [1, 2]\nname = "food"\n'
            'fast = False\nworkers = None\n')
    for name, body in (("01_alpha", '# %%\nopen("alpha.txt", "w").write(repr(rate))\n'),
                       ("02_beta", "# %%\nassert 'rate' not in dir()\n")):
        path = folder / "notebooks" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + '\n# %% tags=["parameters"]\n' + (cell if name == "01_alpha" else
                                                                  'profile = "publish"\nscale = 1\n')
                        + "\n" + body)
    return book.discover(folder)


def test_notebook_parameters_reads_names_and_defaults(tmp_path):
    alpha, beta = _typed_notebooks(tmp_path)
    assert book.notebook_parameters(alpha) == {"profile": "publish", "scale": 1, "rate": 0.5,
                                               "ds": [1, 2], "name": "food", "fast": False,
                                               "workers": None}
    assert book.notebook_parameters(beta) == {"profile": "publish", "scale": 1}


def test_unknown_param_key_is_rejected_with_the_valid_ones(fake_repo, capsys):
    assert book.main(["-p", "bogus_key=3", "--no-build"]) == 2
    line = _one_error_line(capsys)
    assert "'bogus_key' is not a parameter of 01_alpha, 02_beta" in line
    assert "valid keys: scale" in line
    assert not (fake_repo / "alpha.txt").exists()  # refused before running anything
    assert book.main(["-p", "scael=3", "--no-build"]) == 2
    assert "did you mean 'scale'?" in _one_error_line(capsys)
    assert book.main(["-p", "profile=smoke", "--no-build"]) == 2
    assert "--profile smoke" in _one_error_line(capsys)
    assert book.main(["-p", "scale=1", "-p", "scale=2", "--no-build"]) == 2
    assert "given twice" in _one_error_line(capsys)


@pytest.mark.parametrize("text, words", [
    ("scale=[1,2", "-p scale: expected an int (default 1 in 01_alpha) but got the text '[1,2', which is not a Python literal"),
    ("scale=2.5", "-p scale: expected an int (default 1 in 01_alpha) but got 2.5 (float)"),
    ("scale=True", "-p scale: expected an int"),
    ("rate=fast", "-p rate: expected a number (default 0.5 in 01_alpha) but got the text 'fast'"),
    ("ds=[1, 2", "-p ds: expected a list like the default (default [1, 2] in 01_alpha)"),
    ("ds=3", "but got 3 (int)"),
    ("ds=['a']", "but got ['a'] (list)"),
    ("name=3", "-p name: expected a string"),
    ("fast=1", "-p fast: expected True or False"),
])
def test_param_value_of_the_wrong_type_is_rejected(tmp_path, text, words):
    notebooks = _typed_notebooks(tmp_path)
    with pytest.raises(ValueError) as info:
        book.check_params(notebooks, book.parse_params([text]))
    assert words in str(info.value)


def test_param_values_of_the_right_type_go_only_to_notebooks_that_declare_them(tmp_path, results_env):
    notebooks = _typed_notebooks(tmp_path)
    ok = book.parse_params(["scale=3", "rate=2", "ds=[0.5, 3]", "name=cars", "fast=True", "workers=4"])
    overrides = book.check_params(notebooks, ok)  # an int for a float default is fine
    assert overrides == {"01_alpha": ok, "02_beta": {"scale": 3}}
    book.run("smoke", params={"rate": 2}, build=False, root=tmp_path)
    assert (tmp_path / "alpha.txt").read_text() == "2"
    rows = {row["notebook"]: row["parameters"] for row in book.provenance_rows(tmp_path, notebooks)}
    assert rows["01_alpha"]["rate"] == 2 and "rate" not in rows["02_beta"]


# ---------------------------------------------------------------------------------------------
# A damaged executed notebook (a run killed while writing, a bad copy): one line naming it and the fix


def _write_executed(root, name, profile="publish"):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nb.metadata["papermill"] = {"parameters": {"profile": profile}, "duration": 1.0, "end_time": "t"}
    path = root / "book" / "executed" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb)
    path.write_text(text)
    return path, text


@pytest.mark.parametrize("damage, why", [(lambda text: text[: len(text) // 2], "invalid JSON, cut short?"),
                                         (lambda text: "", "invalid JSON, cut short?"),
                                         (lambda text: "[1, 2]", "AttributeError")])
def test_damaged_executed_notebook_is_one_line_naming_it_and_the_rerun(fake_repo, capsys, damage, why):
    _write_executed(fake_repo, "01_alpha")
    path, text = _write_executed(fake_repo, "02_beta")
    path.write_text(damage(text))
    assert book.main(["--build-only"]) == 2  # fake_repo fails the test if Jupyter Book runs
    line = _one_error_line(capsys)
    assert "executed notebook book/executed/02_beta.ipynb is not a readable notebook" in line, line
    assert why in line
    assert "re-run it: `python -m storage_scaling.book --only 02_beta --profile publish --no-build`" in line
    # a run of another notebook refuses before it starts (the provenance page reads 02_beta after it)
    assert book.main(["--only", "alpha", "--profile", "smoke", "--no-build"]) == 2
    assert "--only 02_beta --profile smoke --no-build" in _one_error_line(capsys)
    assert not (fake_repo / "alpha.txt").exists()


def test_intact_executed_notebooks_pass_the_check(fake_repo):
    for name in ("01_alpha", "02_beta"):
        _write_executed(fake_repo, name, profile="smoke")
    book.check_executed(fake_repo, book.discover(fake_repo))
    assert book.executed_profile(fake_repo, book.discover(fake_repo)) == "smoke"


def test_provenance_counts_the_compute_the_rows_record_not_the_last_call(tmp_path):
    import pandas as pd

    runs = pd.DataFrame({"run_key": ["a", "b"], "dataset": "cifar10-jpg", "model": "probe", "device": "cpu",
                         "train_seconds": [5400.0, 1800.0],
                         "params_json": ['{"n":1,"test_codec":"original","test_distance":null}',
                                         '{"n":2,"test_codec":"original","test_distance":null}']})
    runs.to_csv(tmp_path / "training_grid_probe.csv", index=False)
    assert book.recorded_compute(tmp_path / "training_grid_probe.csv") == "2.0 h"
    units = pd.DataFrame({"run_key": ["c", "d"], "seed": [0, 0], "variant": ["baseline", "jpeg_dl"],
                          "evaluations": "[]", "train_seconds": [100.0, 200.0], "eval_seconds": [20.0, 40.0],
                          "bpp_seconds": [0.0, 10.0], "device": "cpu", "torch_threads": 2})
    units.to_csv(tmp_path / "jpeg_dl_cnn_cpu.csv", index=False)
    assert book.recorded_compute(tmp_path / "jpeg_dl_cnn_cpu.csv") == "6.2 min"  # (100+20) + (200+40+10) s: scoring too
    pd.DataFrame({"d": [1.0]}).to_csv(tmp_path / "sizes.csv", index=False)
    assert book.recorded_compute(tmp_path / "sizes.csv") == "n/a"


def test_glued_writes_every_glued_value_of_the_executed_notebooks(fake_repo, capsys, tmp_path_factory):
    import nbformat

    node = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("glue('x', 3)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={book.GLUE_TEXT: "'3.14 points'"},
                                           metadata={"scrapbook": {"name": "jdl_diff"}})]
    table = nbformat.v4.new_code_cell("glue('t', styler)")
    table.outputs = [nbformat.v4.new_output("display_data", data={
        book.GLUE_TEXT: "<pandas.io.formats.style.Styler at 0x7f01>",
        book.GLUE_RECORD + "text/html": '<table id="T_1a2b3"><td>0.42</td></table>'},
        metadata={"scrapbook": {"name": "t"}})]
    node.cells = [cell, table]
    executed = fake_repo / "book" / "executed"
    executed.mkdir(parents=True)
    nbformat.write(node, executed / "01_alpha.ipynb")
    out = tmp_path_factory.mktemp("glued") / "glued.json"
    assert book.main(["--glued", str(out)]) == 0
    assert json.loads(out.read_text()) == {  # 02_beta never ran; a table is its HTML, ids made constant
        "01_alpha": {"jdl_diff": "3.14 points", "t": '<table id="T_id"><td>0.42</td></table>'}}
    assert book.main(["--glued", str(out), "--profile", "smoke"]) == 2
    assert "--glued only reads the executed notebooks" in _one_error_line(capsys)
