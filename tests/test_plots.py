"""The shared notebook helpers: number formats, log ticks, legibility, the table style, status text."""


import matplotlib

matplotlib.use("Agg")  # tests only: no display

import numpy as np
import pandas as pd
import pytest

from storage_scaling import plots, tables


@pytest.fixture(autouse=True)
def _style():
    plots.use_style()
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_number_formats():
    assert plots.thousands(1234567) == "1,234,567"
    assert plots.thousands(1234.5678, 2) == "1,234.57"
    assert plots.thousands(float("nan")) == "n/a"
    assert plots.fmt_bytes(512) == "512 B"
    assert plots.fmt_bytes(7090) == "7.09 kB"
    assert plots.fmt_bytes(50_000) == "50 kB"
    assert plots.fmt_bytes(48.48e6) == "48.5 MB"
    assert plots.fmt_bytes(1_234_000) == "1.23 MB"
    assert plots.percent(0.1234) == "12.3%"
    assert plots.percent(0.5, 0) == "50%"
    assert plots.fmt(None) == "pending" and plots.fmt(0.12345) == "0.123"


def test_labels_and_fallback():
    assert plots.label("cifar10-jpg") == "CIFAR-10 32 px"
    assert plots.label("food101-64px") == "Food-101 64 px"
    assert plots.label("some-new-set") == "some-new-set"


def _labels(ax, axis="x"):
    ax.figure.canvas.draw()
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text() for t in ticks if t.get_text()]


def test_log_ticks_plain_numbers_with_thousands_separators():
    fig, ax = plots.subplots()
    ax.plot([1000, 100_000], [0.2, 0.5])
    ticks = plots.log_ticks(ax, 1000, 100_000, steps=(1,))
    assert ticks == [1000, 10_000, 100_000]
    assert _labels(ax) == ["1,000", "10,000", "100,000"]
    assert ax.get_xscale() == "log"


def test_log_ticks_bytes_and_small_values():
    fig, ax = plots.subplots()
    ax.plot([0.18, 0.29], [500, 20_000])
    plots.log_ticks(ax, 500, 20_000, axis="y", fmt="bytes", steps=(1, 2, 5))
    assert _labels(ax, "y") == ["500 B", "1 kB", "2 kB", "5 kB", "10 kB", "20 kB"]
    plots.log_ticks(ax, 0.18, 0.29, steps=None)  # a narrow error axis still gets ticks
    labels = _labels(ax)
    assert len(labels) >= 2 and "0.2" in labels and "0.25" in labels


def test_automatic_ticks_do_not_collide_and_thin_out_on_short_axes():
    long_axis = plots.choose_ticks(100, 1e10, 6.5, plots.FORMATTERS["plain"])
    short_axis = plots.choose_ticks(100, 1e10, 2.0, plots.FORMATTERS["plain"])
    assert len(short_axis) < len(long_axis)
    for ticks, length in ((long_axis, 6.5), (short_axis, 2.0)):
        pos = np.log10(ticks) / 8 * length
        widths = [plots._label_width_in(plots.FORMATTERS["plain"](t), 10) for t in ticks]
        assert all(g >= (a + b) / 2 for g, a, b in zip(np.diff(pos), widths, widths[1:]))


def test_log_ticks_refuses_bad_input():
    fig, ax = plots.subplots()
    with pytest.raises(ValueError, match="axis"):
        plots.log_ticks(ax, 1, 10, axis="z")
    with pytest.raises(ValueError, match="0 < lo < hi"):
        plots.log_ticks(ax, 0, 10)
    with pytest.raises(ValueError, match="fmt"):
        plots.log_ticks(ax, 1, 10, fmt="nonsense")


def test_subplots_width_and_panel_limit():
    fig, axes = plots.subplots(2, 2)
    assert fig.get_figwidth() * fig.dpi == pytest.approx(plots.COLUMN_PX)
    with pytest.raises(ValueError, match="at most 2"):
        plots.subplots(1, 3)


def test_legibility_check_catches_wide_three_panel_figures():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), constrained_layout=True)  # the old layout
    for ax in axes:
        ax.plot([1, 2], [1, 2], label="a line")
        ax.set(xlabel="storage budget s (MB)", title="panel")
        ax.legend(fontsize=8)
    pt, _ = plots.smallest_text(fig)
    assert pt < 6  # 8-point legends at half size
    with pytest.raises(ValueError, match="renders at"):
        plots.check_legible(fig, "old figure")
    fig2, axes2 = plots.subplots(1, 2)
    for ax in axes2:
        ax.plot([1, 2], [1, 2], label="a line")
        ax.set(xlabel="storage budget s (MB)", title="panel")
        ax.legend()
    assert plots.smallest_text(fig2)[0] >= plots.MIN_FONT_PT
    plots.check_legible(fig2)


def test_table_has_no_index_units_in_headers_and_thousands():
    frame = pd.DataFrame({"budget": [48.48e6, 96.96e6], "n": [6838, 11589], "error": [0.4641, float("nan")],
                          "task": ["Food-101", None]}, index=[7, 9])
    shown = plots.formatted(frame, units={"budget": "bytes"})
    assert list(shown.columns) == ["budget (bytes)", "n", "error", "task"]
    assert shown["budget (bytes)"].tolist() == ["48,480,000", "96,960,000"]
    assert shown["n"].tolist() == ["6,838", "11,589"]
    assert shown["error"].tolist() == ["0.464", "–"]
    assert shown["task"].tolist() == ["Food-101", "–"]  # a text cell a row lacks is a dash, not 'nan'
    assert list(shown.index) == [0, 1]
    html = plots.table(frame, units={"budget": "bytes"}, caption="A caption").to_html()
    assert "row_heading" not in html and "index_name" not in html  # no index column
    assert ">7<" not in html and ">9<" not in html
    assert "11,589" in html and "budget (bytes)" in html and "A caption" in html


def test_table_formats_and_bad_columns():
    frame = pd.DataFrame({"A": [6.706939], "alpha": [0.333304]})
    shown = plots.formatted(frame, formats={"A": "{:.4g}", "alpha": "{:.4f}"})
    assert shown.iloc[0].tolist() == ["6.707", "0.3333"]
    with pytest.raises(ValueError, match="lacks"):
        plots.formatted(frame, formats={"beta": "{:.4f}"})
    with pytest.raises(ValueError, match="lacks"):
        plots.formatted(frame, units={"beta": "B"})
    with pytest.raises(ValueError, match="DataFrame"):
        plots.table([1, 2, 3])


def _table(source, **meta):
    return tables.ProfileTable("grid", pd.DataFrame({"x": [1]}), source, meta)


def test_status_text_for_every_source():
    assert tables.status_text(_table("committed", device="NVIDIA H200"), "the grid") == \
        "measured on NVIDIA H200 (committed results)"
    assert tables.status_text(_table("full"), "the grid") == "measured now at full size"
    partial = tables.status_text(_table("partial", done=12, total=40, devices=["NVIDIA H200", "cpu"]), "the grid")
    assert partial.startswith("partial: 12 of 40 full-size runs measured on NVIDIA H200, cpu")
    every_row = tables.status_text(_table("partial", done=40, total=40, devices=["cpu"]), "the grid")
    assert every_row.startswith("all 40 full-size runs measured on cpu") and "partial" not in every_row
    assert "toy size" in tables.status_text(_table("smoke"), "the grid")
    fallback = tables.status_text(_table("smoke-fallback"), "the quality check")
    assert fallback.startswith("pending: the quality check has not run at full size yet")


def test_status_text_refuses_bad_input():
    with pytest.raises(ValueError, match="done"):
        tables.status_text(_table("partial", total=40, devices=["x"]), "the grid")
    with pytest.raises(ValueError, match="unknown table source"):
        tables.status_text(_table("guess"), "the grid")
    with pytest.raises(ValueError, match="ProfileTable"):
        tables.status_text(pd.DataFrame(), "the grid")
    with pytest.raises(ValueError, match="empty"):
        tables.status_text(_table("full"), " ")


def test_figure_checks_catch_a_legend_over_data_overlapping_ticks_and_faint_lines():
    fig, ax = plots.subplots()
    ax.plot([0, 1, 2], [0, 1, 2], marker="o", label="a")
    ax.legend(loc="center")
    assert any("legend" in p and "covers" in p for p in plots.figure_problems(fig))
    with pytest.raises(ValueError, match="legend"):
        plots.glue_figure("fig_test", fig)
    ax.get_legend().remove()
    fig.legend(loc="outside lower center")
    assert plots.figure_problems(fig) == []

    fig, ax = plots.subplots(figsize=(2.0, 2.0))
    ax.set_xticks(range(6), [f"a long label {i}" for i in range(6)])
    assert any("x tick labels" in p for p in plots.figure_problems(fig))

    fig, ax = plots.subplots()
    ax.plot([0, 1], [0, 1], color=matplotlib.colormaps["Greens"](0.05), label="faint")
    ax.plot([0, 1], [1, 0], color=plots.sequential("Greens", 2, 3), label="dark")
    problems = plots.figure_problems(fig)
    assert len(problems) == 1 and "'faint'" in problems[0]
    assert plots.contrast("black") == pytest.approx(21.0) and plots.contrast("white") == pytest.approx(1.0)


def test_tables_over_the_row_limit_are_refused_and_counts_print_as_integers():
    with pytest.raises(ValueError, match="31 rows"):
        plots.glue_table("t", pd.DataFrame({"x": range(31)}), show=False)
    shown = plots.formatted(pd.DataFrame({"n": [1813.333, 2.0], "n_star": [927.4, 12350.0], "runs": [3.0, 4.0],
                                          "error": [0.25, 0.5], "distance": [1.0, 2.5]}))
    assert shown["n"].tolist() == ["1,813", "2"] and shown["n_star"].tolist() == ["927", "12,350"]
    assert shown["runs"].tolist() == ["3", "4"] and shown["error"].tolist() == ["0.250", "0.500"]
    assert shown["distance"].tolist() == ["1", "2.5"]


def test_series_colours_stay_visible():
    assert all(plots.contrast(plots.colour(i)) >= plots.MIN_LINE_CONTRAST for i in range(20))


def test_sequential_colours_skip_the_pale_end_of_a_colormap():
    for cmap in ("Greens", "viridis", "Blues"):
        shades = [plots.sequential(cmap, i, 6) for i in range(6)]
        assert all(plots.contrast(c) >= plots.MIN_LINE_CONTRAST for c in shades)
        assert len({tuple(c) for c in shades}) == 6


def test_table_cells_are_padded_so_adjacent_numbers_never_touch():
    html = plots.table(pd.DataFrame({"a": [0.368], "b": [0.378]})).to_html()
    assert "padding" in html and "text-align: right" in html


def test_labelled_names_datasets_and_models():
    frame = pd.DataFrame({"dataset": ["cifar10-jpg"], "model": ["probe"], "n": [3]})
    assert plots.labelled(frame).iloc[0].tolist() == ["CIFAR-10 32 px", "linear probe", 3]
    assert plots.labelled(pd.DataFrame({"n": [1]}))["n"].tolist() == [1]
