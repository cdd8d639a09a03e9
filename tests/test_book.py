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
