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
for model in ("probe", "cnn_cpu"):
    glue(f"blog_{model}_seeds", len(next(b for b in FULL if b["model"] == model)["seeds"]), display=False)

# %% [markdown]
# ## The runs

# %%
t = experiments.book_table("blog", profile, progress)
tables.banner(t)
parts = t.meta.get("parts", [t])
# the banners as plain text for prose (a placeholder's without its parameter dump)
banner_text = " ".join(f"Pending: no committed table results/{p.name}.csv for the full-size parameters; the "
                       "numbers shown come from a toy-size run and are placeholders, not results."
                       if p.is_placeholder else p.banner_markdown().replace("**", "").replace("`", "")
                       for p in parts)
glue("blog_banner", banner_text, display=False)
glue("blog_status", tables.status_text(t, "the blog experiment"), display=False)
glue("blog_runs", int(len(t.frame)), display=False)
glue("blog_cpu_time", report.run_hours_sentence(report.run_hours({"blog": t.frame}), plots.label)
     if t.source in ("committed", "full", "partial") else "pending (no full-size rows yet)", display=False)
summary = report.blog_summary(t.frame)
shown = summary.drop(columns=["distance"]).assign(dataset=summary["dataset"].map(plots.label),
                                                 model=summary["model"].map(plots.label))
shown = shown.rename(columns={"n": "images kept", "n_ratio": "× original count", "mean_bytes": "mean bytes",
                              "accuracy": "test accuracy", "accuracy_min": "lowest seed",
                              "accuracy_max": "highest seed", "gain_points": "gain over original",
                              "gain_min": "gain, lowest seed", "gain_max": "gain, highest seed",
                              "pool_exhausted": "whole pool kept"})
plots.glue_table("blog_table", shown, show=True,
                 units={"budget": "B", "mean bytes": "B", "test accuracy": "mean of seeds",
                        "gain over original": "points"},
                 formats={"images kept": "{:,.0f}", "× original count": "{:.2f}", "mean bytes": "{:,.0f}",
                          "budget": "{:,.0f}", "test accuracy": "{:.1%}", "lowest seed": "{:.1%}",
                          "highest seed": "{:.1%}", "gain over original": "{:+.1f}", "gain, lowest seed": "{:+.1f}",
                          "gain, highest seed": "{:+.1f}"})
protocol_text = "; ".join(f"{plots.label(r.dataset)}, {plots.label(r.model)}: {r.protocol}"
                          for r in report.protocols(t.frame).itertuples())
glue("blog_protocol", protocol_text, display=False)
display(Markdown(f"Protocol of these rows: {protocol_text}."))

# %% [markdown]
# Accuracy against distance (the original format drawn at $d = 0$, as the blog did) and the
# images kept, as counts and as a multiple of the original-format count; one line per dataset
# and model. Points are means over seeds; bars span the lowest and highest seed.

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

fig_acc, ax = plots.subplots(1, 1, row_height=4.2)
for i, (ds, model) in enumerate(settings):
    part = summary[(summary["dataset"] == ds) & (summary["model"] == model)]
    x = part["distance"].fillna(0.0)
    ax.errorbar(x, 100 * part["accuracy"],
                yerr=[100 * (part["accuracy"] - part["accuracy_min"]), 100 * (part["accuracy_max"] - part["accuracy"])],
                marker="o", capsize=3, color=f"C{i}", label=names[ds, model])
ax.set_xticks(ticks, tick_labels)
ax.set_xlabel("format of the training images (JPEG XL Butteraugli distance)")
ax.set_ylabel("test accuracy (%)")
ax.set_title(f"Accuracy at one budget: the whole pool at d = {BUDGET_D:g}" + source)
ax.legend()
plots.glue_figure("blog_fig_accuracy", fig_acc)

fig_n, (ax_n, ax_r) = plots.subplots(1, 2, row_height=3.6 + 0.3 * len(settings))
for i, (ds, model) in enumerate(settings):
    part = summary[(summary["dataset"] == ds) & (summary["model"] == model)]
    x = part["distance"].fillna(0.0)
    ax_n.plot(x, part["n"], marker="o", color=f"C{i}", label=names[ds, model])
    ax_r.plot(x, part["n_ratio"], marker="o", color=f"C{i}")
ax_r.plot([10.0], [BLOG_RATIO], marker="*", ms=14, ls="none", color="k",
          label=f"the blog (Food-101 full size): ≈{BLOG_RATIO:g}×")
plots.log_ticks(ax_n, axis="y", fmt="plain")
ax_n.set_ylabel("training images kept")
ax_r.set_ylabel("images kept (× original-format count)")
for a in (ax_n, ax_r):
    a.set_xticks(ticks, ["orig."] + tick_labels[1:])
    a.set_xlabel("distance d")
fig_n.legend(*ax_n.get_legend_handles_labels(), loc="outside lower center", ncols=1)
ax_r.legend(loc="upper left")
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
                                    f"accuracy gain at d = {BUDGET_D:g} (points)", "best format (gain, points)"],
                       "the blog (quoted)": ["ViT (ImageNet-21k), fine-tuned; Food-101 full size",
                                             f"≈ {plots.fmt_bytes(BLOG_BUDGET)}", plots.thousands(BLOG_BASELINE),
                                             f"≈ {BLOG_RATIO:g}×", f"> {BLOG_GAIN:g}", "not reported"]})
for r in head.itertuples():
    claims[f"{plots.label(r.dataset)}, {plots.label(r.model)}"] = [
        f"{plots.label(r.model)}, no pretraining; {plots.label(r.dataset)}",
        plots.fmt_bytes(r.budget), plots.thousands(r.n_original), f"{plots.fmt(r.ratio, '.2f')}×",
        f"{plots.fmt(r.gain_points, '+.1f')} ({plots.fmt(r.gain_min, '+.1f')} to {plots.fmt(r.gain_max, '+.1f')})",
        f"{r.best_format or 'pending'} ({plots.fmt(r.best_gain_points, '+.1f')})"]
plots.glue_table("blog_table_claims", claims)
glue("blog_verdict", report.blog_verdict_sentence(head, BLOG_GAIN, BUDGET_D, plots.label), display=False)

# %% [markdown]
# The numbers the chapter quotes, one set per dataset and model of the full-size spec
# (`pending` where that table has no rows yet).

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
    display(Markdown(f"{plots.label(ds)}, {plots.label(model)}: " + ", ".join(f"{k} = {v}" for k, v in values.items())))
