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
# # Plan your own dataset: a worked example on the Food-101 originals
#
# What `storage-scaling plan` and `storage-scaling compress` do, on the 300 full-size Food-101
# originals standing for a dataset of 60,600 images (Food-101's training pool), at the paper's
# smallest Food-101 budget, with the paper's Food-101 law (borrowed). The table
# `results/plan_food101_originals.csv` holds every image's bytes at each distance and the real
# bytes of `compress` at the planned distance (`storage_scaling.practice.worked_example`); this
# notebook turns it into the plan, plots and glues.

# %% tags=["parameters"]
profile = "publish"
images = 300  # originals measured in the full profile (all of them)
smoke_images = 8
workers = None  # encoder processes (None: all cores)
progress = False

# %%
from functools import partial

from IPython.display import Markdown, display

from storage_scaling import plots, tables
from storage_scaling.practice import plan, worked_example as example

tables.check_profile(profile)
plots.use_style()
full_params, smoke_params = example.example_params(images), example.example_params(smoke_images)
table = tables.profile_table(example.TABLE, profile=profile, full_params=full_params, smoke_params=smoke_params,
                             compute=partial(example.example_table, workers=workers, progress=progress))
tables.banner(table)
params = full_params if table.source in ("committed", "full") else smoke_params
report = example.example_report(table.frame, params)

# %% [markdown]
# ## The plan, as the command prints it

# %%
for line in plan.summary_lines(report.plan):
    print(line)

# %% [markdown]
# ## Bytes per image of the sample, and predicted error against storage

# %%
plots.glue_table("plan_table_sizes", report.sizes, units={"mean bytes": "B"}, formats={"mean bytes": "{:,.0f}"})
fig, ax = plots.subplots(1, 1, figsize=(6.8, 4.2))  # tick labels overhang the axes a little
plan.draw_schemes(report.plan, ax)
plots.glue_figure("plan_fig_schemes", fig)

# %%
numbers = dict(report.numbers, status=tables.status_text(table, "the worked example"))
plots.glue_values("plan_", numbers)
display(Markdown(f"*{numbers['status']}*"))
