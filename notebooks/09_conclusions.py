# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # How hard should you compress? What our runs say
#
# Every number of the conclusions chapter, from the same result tables as chapters 2 to 7 (no
# training, no fitting here): the best way to fill each budget with its paired intervals, the
# law's recommendation beside what won, when not to compress, what compressing the test set does,
# what more images cost in time, and the paper's and blog's claims with a verdict each. The
# computations are `storage_scaling.experiments.conclusions`.

# %% tags=["parameters"]
profile = "publish"
progress = False  # tqdm bars in the executed notebook

# %%
import math

import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from storage_scaling import experiments, paths, plots, tables
from storage_scaling.experiments import conclusions, report
from storage_scaling.learn import jpeg_dl

tables.check_profile(profile)
plots.use_style()
SCHEME_TABLES = ("budget", "original", "naive", "randomized")
t = {name: experiments.book_table(name, profile, progress) for name in (*SCHEME_TABLES, "cross", "grid", "blog")}
sources = {tt.source for tt in t.values()}
glue("concl_status", "from toy-size runs (the smoke profile): placeholders that show the chapter's shape, not results"
     if sources & {"smoke", "smoke-fallback"} else
     "from the committed full-size tables, some of them partial (their remaining runs are still to come)"
     if "partial" in sources else "from the committed full-size tables", display=False)
frames = {name: t[name].frame for name in SCHEME_TABLES}

# %% [markdown]
# ## The best way to fill each budget

# %%
best = conclusions.best_schemes(frames)
plots.glue_table("concl_table_best", conclusions.best_schemes_table(best, plots.label),
                 formats={"budget (MB)": "{:.2f}"})
glue("concl_best_text", " ".join(filter(None, (conclusions.best_schemes_sentence(best, plots.label),
                                                conclusions.pending_sentence(frames, plots.label)))), display=False)

diff = report.scheme_differences(frames)
glue("concl_short_text", conclusions.short_answer(best, diff, plots.label), display=False)

# %% [markdown]
# ## The law's recommendation beside what won

# %%
law_vs = conclusions.law_against_measured(t["budget"].frame, best)
display(plots.table(law_vs))  # per budget
plots.glue_table("concl_table_law", conclusions.law_against_measured_table(law_vs, plots.label))

# %% [markdown]
# ## When not to compress

# %%
sizes_path = paths.results_dir() / "compression_sizes.csv"
savings = conclusions.mild_compression_savings(pd.read_csv(sizes_path)) if sizes_path.is_file() else pd.DataFrame()
display(plots.table(savings))
saving = {r.dataset: r for r in savings.itertuples()}


def saving_text(ds: str) -> str:
    r = saving.get(ds)
    if r is None or not math.isfinite(r.saving):
        return "not measured"
    return (f"{plots.label(ds)}: JPEG XL at d = 1 takes {r.jxl_bytes:,.0f} bytes per image against "
            f"{r.stored_bytes:,.0f} for the stored files, a saving of {r.saving:.0%}; "
            f"{r.header_share:.0%} of a stored file is JPEG headers")


glue("concl_savings_food", saving_text("food101-64px"), display=False)
glue("concl_savings_cifar", saving_text("cifar10-jpg"), display=False)
kept = report.keeps_originals(report.with_model(t["budget"].frame))
kept_settings = sorted({f"{plots.label(d)}, {plots.label(m)}" for d, m, k in
                        zip(report.with_model(t["budget"].frame)["dataset"],
                            report.with_model(t["budget"].frame)["model"], kept) if k})
glue("concl_keep_text", ("The law fitted to our grid keeps the originals (its L* reaches the stored files' "
                         f"bytes) for: {'; '.join(kept_settings)}." if kept_settings else
                         "The law fitted to our grid never keeps the originals at our budgets."), display=False)

# %% [markdown]
# ## Compressing the test set

# %%
cross = conclusions.cross_reading(report.cross_summary(t["cross"].frame))
plots.glue_table("concl_table_cross", conclusions.cross_table(cross, plots.label),
                 formats={"trained and tested on originals (%)": "{:.1f}",
                          **{c: "{:+.1f}" for c in ("test set compressed, training not (points)",
                                                   "training compressed as well: change (points)",
                                                   "training compressed, test set not (points)")}})

# %% [markdown]
# ## What more images cost in time

# %%
cost = conclusions.training_cost(t["grid"].frame)
plots.glue_table("concl_table_cost", conclusions.training_cost_table(cost, plots.label),
                 formats={"s per run at the smallest n": "{:,.0f}", "s per run at the largest n": "{:,.0f}",
                          "exponent k of time ~ n^k": "{:.2f}"})

# %% [markdown]
# ## The claims, one verdict each

# %%
blog = report.blog_headline(report.blog_summary(t["blog"].frame))
claims = conclusions.claims(diff, best, blog, plots.label)
# JPEG-DL (chapter 7): its committed table in publish, the toy run chapter 7 left in the cache in smoke
jdl = experiments.book_table("jpeg_dl", profile, progress)
jdl_params = jpeg_dl.params("full" if jdl.source in ("committed", "full", "partial") else "smoke")
h = jpeg_dl.headline(jpeg_dl.evaluation_rows(jdl.frame), jdl_params)
claims = pd.concat([claims, conclusions.jpeg_dl_claims(h, plots.label(jdl_params["dataset"]) + ", "
                                                       + plots.label(jpeg_dl.params("full")["network"]))],
                   ignore_index=True)
claims = report.name_once(claims, ["setting"])
plots.glue_table("concl_table_claims", claims)
glue("concl_verdicts_text", conclusions.verdict_counts_sentence(claims), display=False)
display(Markdown(conclusions.verdict_counts_sentence(claims)))
