"""Shared notebook helpers: one figure style, log-axis ticks, number formats, labels, one table style.

Every chapter shows its figures at the book's column width (about 700 px). A figure drawn wider
is shrunk to fit, and its text with it: a 13-inch figure at 100 dpi shows 10-point labels at
about 5 points. So figures here are drawn at the column width (:data:`COLUMN_WIDTH_IN` inches at
:data:`DPI`), at most two panels per row (:func:`subplots`), with fonts of at least
:data:`MIN_FONT_PT` points, and :func:`check_legible` measures what a reader will actually see.

Tables go through :func:`table`: no pandas index column, units in the headers, thousands
separators. Numbers in prose go through :func:`thousands`, :func:`fmt_bytes`, :func:`percent`.
Display names of datasets and models live in :data:`LABELS` (read them with :func:`label`).

matplotlib (and seaborn for the theme) are imported here; the package's computing modules never
import this one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

COLUMN_PX = 700  # width of the book's text column, CSS pixels
DPI = 100  # figure.dpi: inline PNGs are drawn at this many pixels per inch
COLUMN_WIDTH_IN = COLUMN_PX / DPI  # a figure this wide is shown at its natural size
MIN_FONT_PT = 9.0  # smallest text a reader should have to read, at rendered size
MAX_PANELS_PER_ROW = 2
MAX_TABLE_ROWS = 30  # a chapter table a reader takes in at a glance; raw rows stay in the executed notebook
MIN_LINE_CONTRAST = 2.0  # WCAG contrast of a labelled line or marker against the axes background

# The dataset and model names of result tables, as the book prints them.
LABELS: dict[str, str] = {
    # our image sets
    "cifar10-jpg": "CIFAR-10 32 px",
    "food101-64px": "Food-101 64 px",
    "food101-originals": "Food-101 full size",
    "camvid-240x180": "CamVid 240x180",
    # the paper's tasks (law.PAPER_FITS keys)
    "food101": "Food-101",
    "cityscapes": "Cityscapes",
    "isaid": "iSAID",
    # models
    "airnet": "AirNet",
    "resnet18_64": "ResNet-18",
    "probe": "linear probe",
    "pretrained": "frozen EfficientNet-Lite0",
    "segmenter": "EfficientNet-Lite0 + decoder",
    "cnn_cpu": "CPU CNN (not converged)",
    "airnet_small": "small AirNet",
    "resnet10_64": "ResNet-10",
}


def label(key) -> str:
    """The display name of a dataset or model key; an unknown key is shown as itself."""
    return LABELS.get(str(key), str(key))


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``dataset`` and ``model`` keys (where present) as the book names them."""
    return frame.assign(**{c: frame[c].map(label) for c in ("dataset", "model") if c in frame.columns})


# --------------------------------------------------------------------------------------------
# Style
# --------------------------------------------------------------------------------------------

STYLE_RC = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.figsize": (COLUMN_WIDTH_IN, 0.62 * COLUMN_WIDTH_IN),
    "figure.constrained_layout.use": True,
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 9.5,
    "legend.title_fontsize": 9.5,
    "figure.titlesize": 12,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.alpha": 0.5,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
    "legend.framealpha": 0.85,
}
PALETTE = "colorblind"  # seaborn's colour-blind-safe palette, used for every C0..C9


def use_style() -> None:
    """Set the book's figure style (call once, at the top of every notebook)."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, rc=STYLE_RC)
    mpl.rcParams.update(STYLE_RC)  # seaborn's context scales fonts; ours are absolute


SERIES_COLOURS = ("C0", "C1", "C2", "C3", "C4", "C5", "C7", "C9")  # the palette without its pale pink and yellow


def colour(i: int) -> str:
    """The ``i``-th colour for one line per level (cycling): the palette's colours that stay visible
    on a white axes (contrast >= :data:`MIN_LINE_CONTRAST`)."""
    return SERIES_COLOURS[int(i) % len(SERIES_COLOURS)]


def sequential(cmap: str, i: int, count: int, stop: float = 1.0):
    """The ``i``-th of ``count`` colours spread over a sequential colormap (up to ``stop``), for
    one line per level of an ordered quantity (L, n). Only the part of the map that stays visible
    on a white axes is used (contrast >= :data:`MIN_LINE_CONTRAST`): the pale end of "Greens" or
    the yellow end of "viridis" would make a line disappear."""
    import matplotlib as mpl

    if not 0 <= i < count:
        raise ValueError(f"colour index {i} outside 0..{count - 1}")
    lo, hi = _visible_range(cmap, float(stop))
    return mpl.colormaps[cmap](lo + (hi - lo) * i / max(count - 1, 1))


@functools.lru_cache(maxsize=None)
def _visible_range(cmap: str, stop: float) -> tuple[float, float]:
    """The part of ``cmap`` up to ``stop`` whose colours keep their contrast on white (computed once)."""
    import matplotlib as mpl

    cm = mpl.colormaps[cmap]
    x = np.linspace(0.0, stop, 256)
    visible = x[[contrast(cm(v)) >= MIN_LINE_CONTRAST + 0.05 for v in x]]
    return (float(visible.min()), float(visible.max())) if visible.size else (0.0, stop)


def subplots(nrows: int = 1, ncols: int = 1, *, row_height: float = 3.4, **kwargs):
    """``plt.subplots`` at the column width, refusing more than two panels per row.

    ``row_height`` is in inches per row of panels; other keyword arguments go to plt.subplots.
    """
    import matplotlib.pyplot as plt

    if int(ncols) < 1 or int(nrows) < 1:
        raise ValueError(f"nrows and ncols must be >= 1, got nrows={nrows!r}, ncols={ncols!r}")
    if int(ncols) > MAX_PANELS_PER_ROW:
        raise ValueError(f"ncols={ncols} panels per row would shrink text below reading size at the "
                         f"book's {COLUMN_PX} px column; use at most {MAX_PANELS_PER_ROW} and more rows")
    kwargs.setdefault("figsize", (COLUMN_WIDTH_IN, row_height * nrows))
    kwargs.setdefault("constrained_layout", True)
    return plt.subplots(nrows, ncols, **kwargs)


def rendered_scale(fig, column_px: int = COLUMN_PX) -> float:
    """How much the book shrinks ``fig``: column width over the PNG's width (tight box), at most 1."""
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    width_px = (box.width + 0.2) * fig.dpi  # savefig's tight box adds 0.1 inch on each side
    return min(1.0, column_px / width_px)


def smallest_text(fig, column_px: int = COLUMN_PX) -> tuple[float, str]:
    """The smallest visible text of ``fig`` as the reader sees it: (points, the text)."""
    from matplotlib.text import Text

    scale = rendered_scale(fig, column_px)
    sizes = [(t.get_fontsize() * scale, t.get_text()) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and t.get_figure() is not None]
    return min(sizes) if sizes else (math.inf, "")


def check_legible(fig, name: str = "figure", min_pt: float = MIN_FONT_PT,
                  column_px: int = COLUMN_PX):
    """Raise ValueError when ``fig`` would be hard to read in the book: any text below ``min_pt``
    points in the column, a legend drawn over data, tick labels that overlap, or a labelled line
    too faint to see (:func:`figure_problems`)."""
    pt, text = smallest_text(fig, column_px)
    if pt < min_pt - 1e-9:
        raise ValueError(f"{name}: text {text!r} renders at {pt:.1f} pt in the {column_px} px column "
                         f"(minimum {min_pt:g} pt); use fewer panels per row, a narrower figure or "
                         "larger fonts")
    problems = figure_problems(fig)
    if problems:
        raise ValueError(f"{name}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


def _luminance(rgb) -> float:
    c = np.asarray(rgb[:3], dtype=float)
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2])


def contrast(colour, background="white") -> float:
    """WCAG contrast ratio of ``colour`` (alpha blended onto ``background``) against ``background``."""
    from matplotlib.colors import to_rgba

    fg, bg = np.array(to_rgba(colour)), np.array(to_rgba(background))
    blended = fg[3] * fg[:3] + (1 - fg[3]) * bg[:3]
    hi, lo = sorted((_luminance(blended), _luminance(bg[:3])), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _data_points(ax) -> np.ndarray:
    """Display coordinates of every plotted vertex of ``ax`` (lines, markers, scatter points; not
    reference lines drawn across the axes)."""
    from matplotlib.collections import PathCollection
    from matplotlib.lines import Line2D

    pts = []
    for artist in ax.get_children():
        if not artist.get_visible():
            continue
        if isinstance(artist, Line2D) and artist.get_transform() is ax.transData:  # not axhline/axvline
            xy = artist.get_xydata()
            if len(xy):
                pts.append(artist.get_transform().transform(xy))
        elif isinstance(artist, PathCollection) and len(artist.get_offsets()):
            pts.append(artist.get_offset_transform().transform(artist.get_offsets()))
    pts = [p[np.all(np.isfinite(p), axis=1)] for p in pts]
    return np.concatenate(pts) if pts else np.empty((0, 2))


def _overlapping(boxes) -> tuple | None:
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a.overlaps(b) and min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1:
                return a, b
    return None


def figure_problems(fig) -> list[str]:
    """What a reader would trip over, as sentences: a legend inside an axes that covers plotted
    points, tick labels of one axis that overlap, a labelled line or marker whose colour has a
    contrast below :data:`MIN_LINE_CONTRAST` against the axes (a near-white shade of a sequential
    colormap). Checked on the drawn figure, in display coordinates."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        title = ax.get_title() or ax.get_ylabel() or "an axes"
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            box = legend.get_window_extent(renderer)
            pts = _data_points(ax)
            inside = ((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)).sum()
            if inside:
                problems.append(f"the legend of {title!r} covers {inside} plotted point(s); place it outside the "
                                "axes (fig.legend(loc='outside lower center') or ax.legend(bbox_to_anchor=...))")
        for axis, ticks in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
            boxes = [t.get_window_extent(renderer) for t in ticks if t.get_visible() and t.get_text().strip()]
            clash = _overlapping(boxes)
            if clash:
                problems.append(f"{axis} tick labels of {title!r} overlap; use fewer ticks, shorter labels or "
                                "a larger figure")
        face = ax.get_facecolor()
        for line in ax.get_lines():
            lab = line.get_label()
            if not line.get_visible() or not lab or lab.startswith("_"):
                continue
            colours = [line.get_color()] if line.get_linestyle() not in ("None", "", " ") else []
            if line.get_marker() not in (None, "None", "", " "):
                colours.append(line.get_markerfacecolor())
            worst = min((contrast(c, face) for c in colours if c not in ("none", "None")), default=np.inf)
            if worst < MIN_LINE_CONTRAST:
                problems.append(f"the line {lab!r} of {title!r} is too faint (contrast {worst:.2f} against the "
                                f"axes, minimum {MIN_LINE_CONTRAST:g}); start sequential colours darker")
    return problems


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------

def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def thousands(x, decimals: int = 0, missing: str = "n/a") -> str:
    """12345.6 -> '12,346' (``decimals`` after the point); None or NaN -> ``missing``."""
    return format(float(x), f",.{int(decimals)}f") if _finite(x) else missing


def fmt_bytes(x, missing: str = "n/a") -> str:
    """Bytes in decimal units (1 kB = 1,000 B, as the paper's MB budgets), at most three
    significant digits from kB up: '512 B', '7.09 kB', '50 kB', '48.5 MB'."""
    if not _finite(x):
        return missing
    x = float(x)
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= size:
            v = x / size
            text = f"{v:,.{max(0, 2 - int(math.floor(math.log10(abs(v)))))}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{x:,.0f} B"


def percent(x, decimals: int = 1, missing: str = "n/a") -> str:
    """0.1234 -> '12.3%'."""
    return format(float(x), f".{int(decimals)}%") if _finite(x) else missing


def fmt(x, spec: str = ".3f", missing: str = "pending") -> str:
    """``format(x, spec)``, or ``missing`` for None / NaN (a result that has not run yet)."""
    return format(float(x), spec) if _finite(x) else missing


# --------------------------------------------------------------------------------------------
# Log-axis ticks
# --------------------------------------------------------------------------------------------

def _check_span(lo, hi):
    if not (_finite(lo) and _finite(hi)) or lo <= 0 or hi <= lo:
        raise ValueError(f"a log axis needs 0 < lo < hi, got lo={lo!r}, hi={hi!r}")


def log_tick_values(lo: float, hi: float, steps: Sequence[float] = (1, 2, 5)) -> list[float]:
    """The values ``step * 10**k`` inside [lo, hi] (1-2-5 per decade by default)."""
    _check_span(lo, hi)
    k0, k1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    vals = sorted({float(f"{t * 10.0 ** k:.12g}") for k in range(k0, k1 + 1) for t in steps})
    return [v for v in vals if lo * (1 - 1e-12) <= v <= hi * (1 + 1e-12)]


def _plain(x: float) -> str:
    """Thousands separators, and as many decimals as a value below 1 needs (0.05, 0.25)."""
    if abs(x) >= 1 or x == 0:
        return thousands(x, 0 if float(x).is_integer() else 1)
    return f"{x:.6f}".rstrip("0").rstrip(".")


FORMATTERS = {"plain": _plain, "bytes": fmt_bytes, "percent": lambda x: percent(x, 0)}


STEP_CHOICES = ((1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9), (1, 1.5, 2, 3, 4, 5, 6, 8), (1, 2, 5), (1, 3), (1,))


def _label_width_in(text: str, size_pt: float) -> float:
    """Rough width of a tick label: 0.6 em per character (DejaVu Sans digits are 0.64 em)."""
    return 0.6 * len(text) * size_pt / 72


def choose_ticks(lo: float, hi: float, length_in: float, label=str, *, size_pt: float = 10.0,
                 horizontal: bool = True, max_ticks: int = 8) -> list[float]:
    """The densest ticks of :data:`STEP_CHOICES` (thinned to every k-th decade if need be) whose
    labels do not collide on an axis ``length_in`` inches long: side by side on x (labels'
    widths plus a gap), stacked on y (1.6 line heights), at most ``max_ticks``."""
    _check_span(lo, hi)
    decades = math.log10(hi / lo)
    for steps in STEP_CHOICES:
        ticks = log_tick_values(lo, hi, steps)
        for thin in (1, 2, 3, 4, 5) if steps == (1,) else (1,):
            t = ticks[::thin]
            if len(t) > max_ticks:
                continue
            pos = np.log10(t) / decades * length_in
            if horizontal:
                widths = [_label_width_in(label(v), size_pt) for v in t]
                need = [(a + b) / 2 + 0.12 for a, b in zip(widths, widths[1:])]
            else:
                need = [1.6 * size_pt / 72] * (len(t) - 1)
            if all(g >= n for g, n in zip(np.diff(pos), need)):
                return t
    decades_ticks = log_tick_values(lo, hi, (1,))
    return decades_ticks[::max(1, math.ceil(len(decades_ticks) / 3))]


def log_ticks(ax, lo: float | None = None, hi: float | None = None, axis: str = "x", fmt="plain",
              steps: Sequence[float] | None = None) -> list[float]:
    """Readable ticks on a log axis: 1,000 / 2,000 / 5,000 instead of 10^3, 2x10^3.

    [lo, hi] defaults to the axis's current view (call after plotting); ``steps`` per decade
    default to :func:`choose_ticks` for the axis's length, so labels do not collide. ``fmt`` is 'plain' (thousands separators), 'bytes' (B/kB/MB),
    'percent', a format string such as '{x:.2f}', or a function of the value. Minor tick labels
    are removed. Returns the ticks set.
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    if isinstance(fmt, str) and fmt in FORMATTERS:
        func = FORMATTERS[fmt]
    elif isinstance(fmt, str) and "{x" in fmt:
        func = lambda v, spec=fmt: spec.format(x=v)  # noqa: E731
    elif callable(fmt):
        func = fmt
    else:
        raise ValueError(f"fmt must be one of {sorted(FORMATTERS)}, a format string with {{x}} or a "
                         f"function; got {fmt!r}")
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    view = ax.get_xlim() if axis == "x" else ax.get_ylim()
    lo = min(view) if lo is None else lo
    hi = max(view) if hi is None else hi
    if steps is None:  # as many ticks as fit without their labels colliding
        import matplotlib as mpl

        box = ax.get_position()
        length_in = (box.width * ax.figure.get_figwidth() if axis == "x" else box.height * ax.figure.get_figheight())
        size = mpl.font_manager.FontProperties(size=mpl.rcParams[f"{axis}tick.labelsize"]).get_size_in_points()
        ticks = choose_ticks(lo, hi, length_in, func, size_pt=size, horizontal=axis == "x")
    else:
        ticks = log_tick_values(lo, hi, steps)
    if len(ticks) < 2:  # a very narrow span: its two ends, at two significant digits
        k = 10.0 ** (math.floor(math.log10(lo)) - 1)
        ends = [float(f"{math.ceil(lo / k) * k:.12g}"), float(f"{math.floor(hi / k) * k:.12g}")]
        ticks = sorted(set(ticks) | set(ends)) if ends[0] < ends[1] else ticks
    which = ax.xaxis if axis == "x" else ax.yaxis
    which.set_ticks(ticks)
    which.set_major_formatter(FuncFormatter(lambda v, pos: func(v)))
    which.set_minor_formatter(NullFormatter())
    return ticks


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

def with_units(frame: pd.DataFrame, units: Mapping[str, str]) -> pd.DataFrame:
    """Rename columns to 'name (unit)'; a unit for a column that does not exist is an error."""
    missing = [c for c in units if c not in frame.columns]
    if missing:
        raise ValueError(f"units given for column(s) {missing} that the table lacks; it has {list(frame.columns)}")
    return frame.rename(columns={c: f"{c} ({u})" for c, u in units.items()})


def _default_format(series: pd.Series, precision: int):
    if pd.api.types.is_bool_dtype(series):
        return lambda v: "yes" if v else "no"
    if pd.api.types.is_integer_dtype(series):
        return lambda v: thousands(v, 0, missing="–")
    if pd.api.types.is_float_dtype(series):
        vals = series.to_numpy(float)
        finite = vals[np.isfinite(vals)]
        if finite.size and np.all(finite == np.round(finite)):
            return lambda v: thousands(v, 0, missing="–")  # counts, steps and bytes stored as floats
        if is_count(series.name):
            return lambda v: thousands(v, 0, missing="–")  # a mean count is still read as a count
        if is_distance(series.name):  # 2.5, not 2.500: a distance has the precision it was set with
            return lambda v: _trim(thousands(v, precision)) if _finite(v) else "–"
        return lambda v: thousands(v, precision, missing="–")
    return lambda v: v if _present(v) else "–"  # text: a row that lacks the column shows a dash, not 'nan'


COUNT_WORDS = ("n", "runs", "seeds", "images", "steps", "encodes", "count")


def is_count(name) -> bool:
    """Whether a column holds counts (printed as integers even when averaged): ``n``, ``n_star``,
    ``runs``, ``images kept``..."""
    words = str(name).lower().replace("_", " ").replace("*", "").split()
    return bool(words) and (words[0] in COUNT_WORDS or words[-1] in COUNT_WORDS)


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def is_distance(name) -> bool:
    """Whether a column holds Butteraugli distances (``distance``, ``d``, ``d_min``, ``budget_distance``)."""
    words = str(name).lower().replace("_", " ").split()
    return bool(words) and ("distance" in words or words[0] == "d")


def formatted(frame: pd.DataFrame, *, units: Mapping[str, str] | None = None,
              formats: Mapping[str, object] | None = None, precision: int = 3) -> pd.DataFrame:
    """The strings the book shows for ``frame``: one string column per column, headers with
    units ('budget (MB)'), thousands separators, NaN as '–', and a fresh 0..n-1 index.

    ``formats`` maps a column (before units are added) to a format string ('{:.4g}') or a
    function; other numeric columns get thousands separators and ``precision`` decimals
    (integer-valued floats of 1,000 or more print as integers; booleans as yes/no). Text columns
    are left as they are, except that a missing cell shows "–".
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"the table must be a pandas DataFrame, got {type(frame).__name__}")
    formats = dict(formats or {})
    unknown = [c for c in formats if c not in frame.columns]
    if unknown:
        raise ValueError(f"formats given for column(s) {unknown} that the table lacks; it has {list(frame.columns)}")
    out = frame.reset_index(drop=True).copy()
    for col in out.columns:
        f = formats.get(col)
        if isinstance(f, str):
            func = lambda v, spec=f: "–" if not _present(v) else spec.format(v)  # noqa: E731
        elif callable(f):
            func = f
        else:
            func = _default_format(out[col], precision)
        out[col] = [func(v) for v in out[col]]
    return with_units(out, dict(units or {}))


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def table(frame: pd.DataFrame, *, units: Mapping[str, str] | None = None,
          formats: Mapping[str, object] | None = None, precision: int = 3,
          caption: str | None = None):
    """The book's one table style: :func:`formatted` strings in a pandas Styler without the
    index column, numbers right-aligned, an optional caption. Glue or display the result."""
    shown = formatted(frame, units=units, formats=formats, precision=precision)
    numeric = [c for c, orig in zip(shown.columns, frame.columns)
               if pd.api.types.is_numeric_dtype(frame[orig]) and not pd.api.types.is_bool_dtype(frame[orig])]
    styler = shown.style.hide(axis="index").set_table_styles(
        [{"selector": "td, th", "props": "padding: 0.25em 0.7em"}])  # numbers of adjacent columns never touch
    if numeric:
        styler = styler.set_table_styles({c: [{"selector": "td", "props": "text-align: right"}] for c in numeric},
                                         overwrite=False)
    if caption:
        styler = styler.set_caption(caption)
    return styler


def glue_table(key: str, frame: pd.DataFrame, *, show: bool = True, **style):
    """Style ``frame`` with :func:`table`, glue it under ``key`` and (by default) display it.

    A chapter table has at most :data:`MAX_TABLE_ROWS` rows: summarise, and show raw rows in the
    executed notebook with ``display(plots.table(frame))`` instead of gluing them."""
    from IPython.display import display
    from myst_nb import glue

    if len(frame) > MAX_TABLE_ROWS:
        raise ValueError(f"table {key!r} has {len(frame)} rows; a chapter shows at most {MAX_TABLE_ROWS}: glue a "
                         "summary and display the raw rows in the notebook only (display(plots.table(frame)))")
    styled = table(frame, **style)
    glue(key, styled, display=False)
    if show:
        display(styled)


def glue_figure(key: str, fig):
    """Check that ``fig`` is legible at the column width, then glue it under ``key``."""
    from myst_nb import glue

    check_legible(fig, key)
    glue(key, fig, display=False)


def glue_values(prefix: str, values: Mapping[str, object]) -> None:
    """Glue every ``name: value`` of a report dict as ``<prefix><name>`` (numbers and strings)."""
    from myst_nb import glue

    for name, value in values.items():
        glue(f"{prefix}{name}", value, display=False)
