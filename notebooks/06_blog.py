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
# # The blog's fixed-budget experiment: accuracy against distance at one budget
#
# The Granica blog (Part 2) fixed one storage budget, filled it with Food-101 images at the
# original format and at JPEG XL distances 2, 4, 6, 8 and 10, and fine-tuned the same model with
# the same number of steps on each. Our `blog` experiment does the same on our pools: the budget
# is the whole training pool stored at $d = 10$ (effort 7); at each format we keep the largest
# random subset that fits (a prefix of the seed's nested, class-balanced order), train each with
# the same protocol (the probe's one classifier fit, its penalty chosen on the held-out 20 %
# stored the same way; a network's fixed step budget), and score on the official test split at
# its original format. Rows: `results/training_blog_<model>.csv`, one table per model.

# %% tags=["parameters"]
profile = "publish"
progress = False  # tqdm bars in the executed notebook

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from storage_scaling import experiments, plots, tables
from storage_scaling.compress import compression_tables as ct
from storage_scaling.experiments import report

plots.use_style()

# The blog's numbers, quoted as published (compress/compression_tables.py; ../shared/reference/paper-facts.md
# §2.2). They are the blog's claims about its own setting, not our measurements.
BLOG_RATIO, BLOG_BASELINE, BLOG_GAIN, BLOG_BUDGET = (ct.BLOG_RATIO, ct.BLOG_BASELINE, ct.BLOG_GAIN_POINTS,
                                                     ct.BLOG_BUDGET_BYTES)
glue("blog_claim_ratio", BLOG_RATIO, display=False)
glue("blog_claim_baseline", BLOG_BASELINE, display=False)
glue("blog_claim_gain", BLOG_GAIN, display=False)
glue("blog_claim_budget_mb", BLOG_BUDGET / 1e6, display=False)

# What our full-size spec runs (the design, not a result): distances, budget distance, seeds per model
FULL = experiments.default_spec("blog", "full")["datasets"]
distances = [d for d in FULL[0]["distances"] if d != experiments.ORIGINAL]
BUDGET_D = float(FULL[0].get("budget_distance", 10.0))
glue("blog_distances", ", ".join(f"{d:g}" for d in distances[:-1]) + f" and {distances[-1]:g}", display=False)
glue("blog_budget_distance", BUDGET_D, display=False)
for model in dict.fromkeys(b["model"] for b in FULL):
    glue(f"blog_{model}_seeds", len(next(b for b in FULL if b["model"] == model)["seeds"]), display=False)

# %% [markdown]
# ## The runs

# %%
t = experiments.book_table("blog", profile, progress)
tables.banner(t)
# the chapter's box: the GPU tier's models without rows and the command that runs them (no toy numbers)
gpu = report.not_run_models("blog", t.frame.iloc[:0] if t.is_placeholder else t.frame)
if gpu:
    names = " and ".join(f"{plots.label(b['model'])} on {plots.label(b['dataset'])}" for b in FULL if b["model"] in gpu)
    note = tables.note_box(f"The GPU tier ({names}) has not run this experiment, so this page shows none of its "
                           "numbers. On a machine with a GPU, from the repository root (it resumes where it stopped):",
                           ["storage-scaling run blog --profile full"], title="The GPU tier has not run")
else:
    note = tables.note_box("Every model of the full-size spec has rows: " + tables.status_text(t, "the blog experiment")
                           + ".", title="Every tier has run")
glue("blog_note", note, display=False)
display(note)
glue("blog_status", tables.status_text(t, "the blog experiment"), display=False)
glue("blog_runs", int(len(t.frame)), display=False)
glue("blog_cpu_time", report.run_hours_sentence(report.run_hours({"blog": t.frame}), plots.label)
     if t.source in ("committed", "full", "partial") else "pending (no full-size rows yet)", display=False)
summary = report.blog_summary(t.frame)
# the chapter's table: one row per format, the seed range beside each mean
shown = pd.DataFrame({
    "dataset": summary["dataset"].map(plots.label), "model": summary["model"].map(plots.label),
    "format": summary["format"], "images kept": summary["n"], "× original count": summary["n_ratio"],
    "test accuracy (%), mean [seed range]": report.mean_range(100 * summary["accuracy"], 100 * summary["accuracy_min"],
                                                              100 * summary["accuracy_max"], ".1f"),
    "gain over original (points), mean [seed range]": report.mean_range(summary["gain_points"], summary["gain_min"],
                                                                        summary["gain_max"], "+.1f")})
shown = report.name_once(shown, ["dataset", "model"])  # a setting is named once
plots.glue_table("blog_table", shown, show=True, formats={"images kept": "{:,.0f}", "× original count": "{:.2f}"})
display(plots.table(summary))  # every column (budget, mean bytes, seeds), as computed
protocol_text = "; ".join(f"{plots.label(r.dataset)}, {plots.label(r.model)}: {r.protocol}"
                          for r in report.protocols(t.frame).itertuples())
glue("blog_protocol", protocol_text, display=False)
display(Markdown(f"Protocol of these rows: {protocol_text}."))

# %% [markdown]
# Accuracy against distance (the original format drawn at $d = 0$, as the blog did) and the
# images kept, as counts and as a multiple of the original-format count; one line per dataset
# and model (models of one dataset that keep the same images share a line). Points are means over
# seeds; bars span the lowest and highest seed.

# %%
settings = list(summary.groupby(report.SETTING).groups)
ticks = [0.0] + distances
tick_labels = ["original"] + [f"{d:g}" for d in distances]
source = "" if t.source in ("committed", "full") else f" ({t.source} rows)"
# each line names its dataset, model, seeds and protocol (networks: the step budget every format gets)
rows_by = report.with_model(t.frame).groupby(report.SETTING)
how = {key: (f"{int(g['steps'].iloc[0]):,} steps each" if "steps" in g and g["steps"].notna().any()
             else "one ridge fit each") for key, g in rows_by}
names = {(ds, model): f"{plots.label(ds)}, {plots.label(model)}: {int(g['seeds'].max())} seeds, {how[ds, model]}"
         for (ds, model), g in summary.groupby(report.SETTING)}

STYLES = [("o", "-"), ("s", "--"), ("D", ":"), ("^", "-."), ("v", (0, (5, 1, 1, 1)))]
offset = {key: 0.1 * (i - (len(settings) - 1) / 2) for i, key in enumerate(settings)}  # error bars side by side


def style(i):
    """Colour, marker and line style of the i-th line: each line differs from the others in all three."""
    marker, line = STYLES[i % len(STYLES)]
    return dict(marker=marker, ls=line, color=plots.colour(i), mfc="none" if i % 2 else plots.colour(i),
                mew=1.5)  # open markers alternate


fig_acc, ax = plots.subplots(1, 1, row_height=4.2 + 0.3 * len(settings))
for i, (ds, model) in enumerate(settings):
    part = summary[(summary["dataset"] == ds) & (summary["model"] == model)]
    x = part["distance"].fillna(0.0) + offset[ds, model]
    ax.errorbar(x, 100 * part["accuracy"],
                yerr=[100 * (part["accuracy"] - part["accuracy_min"]), 100 * (part["accuracy_max"] - part["accuracy"])],
                capsize=3, label=names[ds, model], **style(i))
ax.set_xticks(ticks, tick_labels)
ax.set_xlabel("format of the training images (JPEG XL Butteraugli distance)")
ax.set_ylabel("test accuracy (%)")
ax.set_title(f"Accuracy at one budget: the whole pool at d = {BUDGET_D:g}" + source)
fig_acc.legend(loc="outside lower center", ncols=1)
plots.glue_figure("blog_fig_accuracy", fig_acc)

# The images kept depend on the dataset, the budget and the seed, not on the model: models of one
# dataset whose counts agree (within 1 %) share one line, so that no line hides under another.
kept_lines = []
for ds, group in summary.groupby("dataset", sort=False):
    models = list(dict.fromkeys(group["model"]))
    counts = group.pivot_table(index="format", columns="model", values="n")
    if len(models) > 1 and bool((counts.max(axis=1) <= 1.01 * counts.min(axis=1)).all()):
        shared = group.groupby("format", sort=False)[["distance", "n", "n_ratio"]].mean()
        kept_lines.append((f"{plots.label(ds)}: {' and '.join(plots.label(m) for m in models)} (the same images)",
                           shared, settings.index((ds, models[0]))))
    else:
        kept_lines += [(names[ds, m], group[group["model"] == m], settings.index((ds, m))) for m in models]

fig_n, (ax_n, ax_r) = plots.subplots(1, 2, row_height=3.6 + 0.3 * (len(kept_lines) + 1))
for name, part, i in kept_lines:  # a setting keeps its style of the accuracy figure
    x = part["distance"].fillna(0.0)
    ax_n.plot(x, part["n"], label=name, **style(i))
    ax_r.plot(x, part["n_ratio"], **style(i))
ax_r.plot([10.0], [BLOG_RATIO], marker="*", ms=14, ls="none", color="k",
          label=f"the blog (Food-101 full size): ≈{BLOG_RATIO:g}×")
plots.log_ticks(ax_n, axis="y", fmt="plain")
ax_n.set_ylabel("training images kept")
ax_r.set_ylabel("images kept (× original-format count)")
for a in (ax_n, ax_r):
    a.set_xticks(ticks, ["orig."] + tick_labels[1:])
    a.set_xlabel("distance d")
handles, labels = ax_n.get_legend_handles_labels()
star, star_label = ax_r.get_legend_handles_labels()
fig_n.legend(handles + star, labels + star_label, loc="outside lower center", ncols=1)
fig_n.suptitle(f"Images that fit in the budget (the whole pool at d = {BUDGET_D:g})" + source)
plots.glue_figure("blog_fig_images", fig_n)

# %% [markdown]
# ## Beside the blog's claims
#
# The blog's column is quoted (Food-101 at full size, an ImageNet-21k ViT fine-tuned with the same
# steps at every distance; its gain comes from a secondary summary of the blog); ours are
# measured, one column per dataset and model.

# %%
head = report.blog_headline(summary, BUDGET_D)
claims = pd.DataFrame({"quantity": ["model and images", "budget", "images at the original format",
                                    f"images at d = {BUDGET_D:g} (× original)",
                                    f"accuracy gain at d = {BUDGET_D:g} (points), mean [seed range]",
                                    "best format (gain, points)"],
                       "the blog (quoted)": ["ViT (ImageNet-21k), fine-tuned; Food-101 full size",
                                             f"≈ {plots.fmt_bytes(BLOG_BUDGET)}", plots.thousands(BLOG_BASELINE),
                                             f"≈ {BLOG_RATIO:g}×", f"> {BLOG_GAIN:g}", "not reported"]})
for r in head.itertuples():
    claims[f"{plots.label(r.dataset)}, {plots.label(r.model)}"] = [
        f"{plots.label(r.model)}, {'ImageNet features' if r.model == 'pretrained' else 'no pretraining'}; "
        f"{plots.label(r.dataset)}",
        plots.fmt_bytes(r.budget), plots.thousands(r.n_original), f"{plots.fmt(r.ratio, '.2f', missing='not run')}×",
        report.mean_range([r.gain_points], [r.gain_min], [r.gain_max], "+.1f", missing="not run")[0],
        f"{r.best_format or 'not run'} ({plots.fmt(r.best_gain_points, '+.1f', missing='not run')})"]
plots.glue_table("blog_table_claims", claims)
glue("blog_verdict", report.blog_verdict_sentence(head, BLOG_GAIN, BUDGET_D, plots.label), display=False)

# %% [markdown]
# The numbers the chapter quotes, one set per dataset and model of the full-size spec that has rows.

# %%
SHORT = {"cifar10-jpg": "cifar", "food101-64px": "food"}
for ds, model in dict.fromkeys((b["dataset"], b["model"]) for b in FULL):
    row = head[(head["dataset"] == ds) & (head["model"] == model)]
    r = row.iloc[0] if len(row) else pd.Series(dtype=object)
    get = lambda col: r.get(col, np.nan)  # noqa: E731
    values = {"budget": plots.fmt_bytes(get("budget"), missing="pending"),
              "n_original": plots.thousands(get("n_original"), missing="pending"),
              "n_at": plots.thousands(get("n_at"), missing="pending"),
              "ratio": plots.fmt(get("ratio"), ".2f"),
              "acc_original": plots.percent(get("accuracy_original"), missing="pending"),
              "acc_at": plots.percent(get("accuracy_at"), missing="pending"),
              "gain": plots.fmt(get("gain_points"), "+.1f"),
              "gain_range": (f"{plots.fmt(get('gain_min'), '+.1f')} to {plots.fmt(get('gain_max'), '+.1f')}"
                             if np.isfinite(float(get("gain_min"))) else "pending"),
              "best": str(get("best_format")) if isinstance(get("best_format"), str) else "pending",
              "best_gain": plots.fmt(get("best_gain_points"), "+.1f")}
    plots.glue_values(f"blog_{SHORT[ds]}_{model}_", values)
    if len(row):  # a setting without rows is named in the box above instead
        display(Markdown(f"{plots.label(ds)}, {plots.label(model)}: " + ", ".join(f"{k} = {v}" for k, v in values.items())))
