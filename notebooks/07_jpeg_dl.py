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
# # JPEG-DL: a trainable JPEG layer, its accuracy and its robustness, on a CPU
#
# For every seed the same network is trained twice under the same protocol, once as the baseline
# and once behind the trainable JPEG layer of `storage_scaling.learn.jpeg_layer` (128 steps on
# their own Adam). Each model is scored on the whole CIFAR-10 test split, and on a fixed subset of
# it under FGSM and PGD, the attacks differentiating through the *soft* layer and, for JPEG-DL,
# again straight through its quantiser (BPDA); the JPEG-DL model is also scored with hard rounding
# (the ablation). A real encoder (Pillow, no chroma subsampling)
# measures the bits per pixel of its learned tables. The computation is the runner's experiment
# `jpeg_dl` (`storage-scaling run jpeg_dl`, spec `specs/jpeg_dl.full.toml`, one row per seed and
# variant in `results/jpeg_dl_cnn_cpu.csv`); this notebook expands its rows, plots and glues.

# %% tags=["parameters"]
profile = "publish"
progress = False  # tqdm bars in the executed notebook
threads = 1  # PyTorch threads: 1 is fastest on a busy 2-core machine; 2 on an idle one

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from storage_scaling import data, experiments, plots, tables
from storage_scaling import threads as thread_limits
from storage_scaling.learn import jpeg_dl

tables.check_profile(profile)
plots.use_style()
full_params, smoke_params = jpeg_dl.params("full"), jpeg_dl.params("smoke")
with thread_limits.limit(torch=threads):  # what the smoke and full profiles train here
    t = experiments.book_table("jpeg_dl", profile, progress)
tables.banner(t)
p = full_params if t.source in ("committed", "full", "partial") else smoke_params
frame = jpeg_dl.evaluation_rows(t.frame)  # one row per (seed, variant, evaluation)
h = jpeg_dl.headline(frame, p)
source = "" if t.source in ("committed", "full") else f" ({t.source} rows)"
glue("jdl_status", tables.status_text(t, "the JPEG-DL experiment"), display=False)
glue("jdl_banner", "Pending: no committed table results/jpeg_dl_cnn_cpu.csv for the full-size parameters; the numbers "
     "shown come from a toy-size run and are placeholders, not results." if t.is_placeholder
     else t.banner_markdown().replace("**", "").replace("`", ""), display=False)

# %% [markdown]
# ## The protocol, as run

# %%
eps = [float(e) for e in p["eps_255"]]
eps_text = ", ".join(f"{e:g}" for e in eps[:-1]) + f" and {eps[-1]:g}"
n_train = int(frame["n_train"].iloc[0]) if len(frame) else 0
n_test = int(frame.loc[frame["scored_on"] == "test", "n_eval"].iloc[0]) if len(frame) else 0
protocol = {
    "network": plots.label(p["network"]), "steps": plots.thousands(p["steps"]),
    "batch": plots.thousands(frame["batch_size"].iloc[0]) if len(frame) else "pending",
    "epochs": plots.fmt(frame["epochs"].iloc[0] if len(frame) else np.nan, ".1f"),
    "n_train": plots.thousands(n_train), "n_test": plots.thousands(n_test),
    "attack_n": plots.thousands(p["attack_n"]), "seeds": str(len(p["seeds"])),
    "quality": str(p["jpeg_quality"]), "hardness": f"{p['jpeg_hardness']:g}", "max_step": f"{p['jpeg_max_step']:g}",
    "lr": f"{p['jpeg_lr']:g}", "eps": eps_text, "pgd_steps": str(p["pgd_steps"]),
    "threads": ", ".join(str(int(x)) for x in sorted(frame["torch_threads"].unique())) if len(frame) else "pending",
    "device": ", ".join(sorted(frame["device"].astype(str).unique())) if len(frame) else "pending",
}
plots.glue_values("jdl_", protocol)
display(Markdown("; ".join(f"{k} = {v}" for k, v in protocol.items())))

# %% [markdown]
# ## Clean accuracy: baseline against JPEG-DL
#
# Top-1 accuracy on the whole test split (with the recipe's test-time augmentation), over seeds.
# The difference is paired by seed (the same seed gives both models the same initial network
# weights, data order and augmentations).

# %%
acc = jpeg_dl.accuracy_summary(frame)
plots.glue_table("jdl_table_accuracy", acc.rename(columns={"arm": "model", "mean": "accuracy", "sd": "sd",
                                                            "min": "lowest seed", "max": "highest seed"}),
                 units={"accuracy": "mean of seeds", "sd": "points"},
                 formats={"accuracy": "{:.2%}", "sd": lambda v: plots.fmt(100 * v, ".2f", "–"),
                          "lowest seed": "{:.2%}", "highest seed": "{:.2%}"})


def pts(v, spec="+.2f"):
    return plots.fmt(v, spec)


numbers = {
    "acc_baseline": plots.percent(h["acc_baseline"], 2, "pending"),
    "acc_baseline_sd": pts(100 * h["acc_baseline_sd"], ".2f"),
    "acc_jpeg": plots.percent(h["acc_jpeg"], 2, "pending"), "acc_jpeg_sd": pts(100 * h["acc_jpeg_sd"], ".2f"),
    "acc_hard": plots.percent(h["acc_hard"], 2, "pending"),
    "diff": pts(h["diff_mean"]), "diff_sd": pts(h["diff_sd"], ".2f"),
    "diff_range": f"{pts(h['diff_min'])} to {pts(h['diff_max'])}",
    "hard_diff": pts(h["hard_diff_mean"]), "hard_diff_range": f"{pts(h['hard_diff_min'])} to {pts(h['hard_diff_max'])}",
}
plots.glue_values("jdl_", numbers)
display(Markdown(", ".join(f"{k} = {v}" for k, v in numbers.items())))

# %% [markdown]
# ## Robustness: accuracy under FGSM and PGD
#
# On the attack subset, without test-time augmentation; eps in grey levels of the 0-255 scale
# (eps 0 is the clean subset). The attack differentiates through the soft layer; "straight-through
# attack" differentiates the quantiser as the identity (BPDA), the test of an attenuated gradient;
# the table's "stronger of the two" keeps, per seed, the attack that left the lower accuracy;
# "hard rounding" scores the soft-gradient adversarial images with the layer rounding. Points:
# mean over seeds; bars: the lowest and highest seed.

# %%
rob = jpeg_dl.robustness_summary(frame)
styles = {"baseline": dict(color="C0", marker="o"), "JPEG-DL": dict(color="C1", marker="s"),
          jpeg_dl.BPDA_ARM: dict(color="C3", marker="v", ls=":"),
          "JPEG-DL, hard rounding at test": dict(color="C2", marker="^", ls="--")}
fig, axes = plots.subplots(1, 2, row_height=3.8, sharey=True)
for ax, attack in zip(axes, p["attacks"]):
    for arm, style in styles.items():
        clean_arm = arm.removesuffix(jpeg_dl.BPDA)  # an attack mode changes only the attacked images
        clean = rob[(rob["arm"] == clean_arm) & (rob["attack"] == "none")]
        part = pd.concat([clean, rob[(rob["arm"] == arm) & (rob["attack"] == attack)]]).sort_values("eps_255")
        if part.empty:
            continue
        ax.errorbar(part["eps_255"], 100 * part["mean"],
                    yerr=[100 * (part["mean"] - part["min"]), 100 * (part["max"] - part["mean"])],
                    capsize=3, label=arm, **style)
    ax.set_xticks([0.0] + eps)
    ax.set_xlabel("attack size eps (/255, grey levels)")
    ax.set_title(f"{attack.upper()}" + (f", {p['pgd_steps']} steps" if attack == "pgd" else ""))
axes[0].set_ylabel("top-1 accuracy on attacked images (%)")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
fig.suptitle(f"CIFAR-10, {plots.label(p['network'])}, {len(p['seeds'])} seeds, "
             f"{plots.thousands(p['attack_n'])} test images{source}")
plots.glue_figure("jdl_fig_robustness", fig)

plots.glue_table("jdl_table_robustness", jpeg_dl.robustness_table(frame),
                 units={"eps": "/255", "baseline": "accuracy"},
                 formats={"eps": "{:g}", "baseline": "{:.1%}"})
robust = {}
for attack in ("fgsm", "pgd"):
    robust[f"bpda_{attack}"] = jpeg_dl.bpda_verdict(h, attack)
    robust.update({f"{attack}_bpda_gain": pts(h.get(f"{attack}_bpda_gain_mean", np.nan), "+.1f"),
                   f"{attack}_bpda_gain_sd": pts(h.get(f"{attack}_bpda_gain_sd", np.nan), ".1f")})
    robust.update({f"{attack}_best_gain": pts(h.get(f"{attack}_best_gain", np.nan), "+.1f"),
                   f"{attack}_best_gain_sd": pts(h.get(f"{attack}_best_gain_sd", np.nan), ".1f"),
                   f"{attack}_best_eps": plots.fmt(h.get(f"{attack}_best_eps", np.nan), "g"),
                   f"{attack}_top_gain": pts(h.get(f"{attack}_top_gain", np.nan), "+.1f"),
                   f"{attack}_top_gain_sd": pts(h.get(f"{attack}_top_gain_sd", np.nan), ".1f"),
                   f"{attack}_top_gain_hard": pts(h.get(f"{attack}_top_gain_hard", np.nan), "+.1f")})
robust["top_eps"] = f"{max(eps):g}"
plots.glue_values("jdl_", robust)
display(Markdown(", ".join(f"{k} = {v}" for k, v in robust.items())))

# %% [markdown]
# ## The learned tables beside their initialisation
#
# Steps in DCT-coefficient units (the orthonormal DCT of 0-255 pixels); rows: vertical frequency,
# columns: horizontal frequency, DC at the top left. Learned: the mean over seeds of the trained
# (real-valued) steps.

# %%
learned = jpeg_dl.learned_steps(frame)
init = jpeg_dl.initial_steps(p)
mean_learned = np.mean(list(learned.values()), axis=0) if learned else np.full_like(init, np.nan)
names = ("luma (Y)", "chroma (Cb, Cr)")


def frequency_axes(ax):
    ax.set_xticks(range(8)), ax.set_yticks(range(8))
    ax.set_xlabel("horizontal frequency")
    ax.set_ylabel("vertical frequency")
    ax.grid(False)


fig_t, axes_t = plots.subplots(2, 2, figsize=(6.6, 6.4))  # colour bars overhang a little
for row, name in enumerate(names):
    top = float(np.nanmax([init[row].max(), np.nanmax(mean_learned[row]) if learned else 0]))
    for col, (what, m) in enumerate((("initial", init[row]), ("learned, mean of seeds", mean_learned[row]))):
        ax = axes_t[row, col]
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=top)
        if col == 0:  # integers fit the cells; the learned values are in the change figure below
            for (i, j), v in np.ndenumerate(m):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=9, color="w" if v < 0.6 * top else "k")
        ax.set_title(f"{name}, {what}")
        frequency_axes(ax)
    fig_t.colorbar(im, ax=axes_t[row, :], label="step (DCT units)", shrink=0.9)
fig_t.suptitle(f"Quantisation steps: quality {p['jpeg_quality']} clamped at {p['jpeg_max_step']:g}, then trained"
               + source.replace(" (", "\n("))
plots.glue_figure("jdl_fig_tables", fig_t)

change = mean_learned - init
span = float(np.nanmax(np.abs(change))) if learned and np.isfinite(change).any() else 1.0
fig_c, axes_c = plots.subplots(1, 2, row_height=3.5)
for ax, name, m in zip(axes_c, names, change):
    im = ax.imshow(m, cmap="RdBu_r", vmin=-span, vmax=span)
    ax.set_title(f"{name}: learned − initial")
    frequency_axes(ax)
fig_c.colorbar(im, ax=axes_c, label="change of step (DCT units)", shrink=0.9)
fig_c.suptitle(f"How the steps moved in training (mean of {len(learned)} seeds)" + source.replace(" (", "\n("))
plots.glue_figure("jdl_fig_table_change", fig_c)
moves = {"move_bound": plots.fmt(p["jpeg_lr"] * p["steps"] if p["steps"] else np.nan, ".1f"),
         "move_luma": pts(h["move_luma"]), "move_chroma": pts(h["move_chroma"]),
         "move_largest": pts(h["move_largest"], ".2f"), "move_grew": plots.percent(h["move_grew"], 0, "pending")}
plots.glue_values("jdl_", moves)
display(Markdown(", ".join(f"{k} = {v}" for k, v in moves.items())))

# %% [markdown]
# ## The hard-rounding ablation
#
# The JPEG-DL model scored with its soft quantiser (as trained) and with hard rounding, on clean
# test images and at the largest attack; differences paired by seed, in points.

# %%
ablation = [("clean, whole test split", *(h[k] for k in ("acc_jpeg", "acc_hard", "hard_diff_mean")))]
for attack in p["attacks"]:
    sub = rob[(rob["attack"] == attack) & (rob["eps_255"] == max(eps))].set_index("arm")["mean"]
    soft, hard = sub.get("JPEG-DL", np.nan), sub.get("JPEG-DL, hard rounding at test", np.nan)
    ablation.append((f"{attack.upper()} at eps {max(eps):g}/255", soft, hard, 100 * (hard - soft)))
plots.glue_table("jdl_table_ablation",
                 pd.DataFrame(ablation, columns=["scored on", "soft quantiser", "hard rounding", "difference"]),
                 units={"soft quantiser": "accuracy", "hard rounding": "accuracy", "difference": "points"},
                 formats={"soft quantiser": "{:.2%}", "hard rounding": "{:.2%}",
                          "difference": lambda v: plots.fmt(v, "+.2f", "–")})

# %% [markdown]
# ## Bits per pixel of a real JPEG encoder
#
# Pillow (libjpeg-turbo), baseline JPEG without chroma subsampling, on the scored test images;
# learned steps rounded to integers and clamped to 1-255. At 32 px the header (about 600 bytes,
# mostly the Huffman and quantisation tables) is several bits per pixel by itself, so the
# entropy-coded data are shown alone too. Raw RGB is 24 bpp.

# %%
plots.glue_table("jdl_table_bpp", jpeg_dl.bpp_summary(frame, p),
                 units={"whole file": "bpp", "entropy-coded data": "bpp", "lowest seed": "bpp",
                        "highest seed": "bpp"},
                 formats={c: lambda v: plots.fmt(v, ".2f", "–") for c in ("whole file", "entropy-coded data",
                                                                           "lowest seed", "highest seed")})
bpp = {k: plots.fmt(h[k], ".2f") for k in ("bpp_stored", "bpp_standard", "bpp_initial", "bpp_learned",
                                           "bpp_standard_scan", "bpp_initial_scan", "bpp_learned_scan")}
plots.glue_values("jdl_", bpp)

# %% [markdown]
# ## The layer at steps of 1: within one grey level in RMS, not at every pixel
#
# A cheap check at full size in every profile: 1,000 test images through the layer with every
# step 1 and hardness 10,000 (rounding). The colour conversion is not integer, so rounding the
# DCT coefficients moves single pixels by a few grey levels while the RMS change stays below one.

# %%
test_images = data.eval_set(p["dataset"], "test", limit=1000).decode()
ident = jpeg_dl.identity_error(test_images)
identity = {"identity_rms": f"{ident['rms']:.2f}", "identity_max": f"{ident['max']:.1f}",
            "identity_within": plots.percent(ident["within_one"], 1), "identity_n": plots.thousands(ident["n"])}
plots.glue_values("jdl_", identity)
display(Markdown(", ".join(f"{k} = {v}" for k, v in identity.items())))

# %% [markdown]
# ## The paper's claims beside ours
#
# The paper's column is quoted (Salamah et al., ICLR 2025; numbers from secondary summaries of
# the paper, `../shared/reference/paper-facts.md`); ours are measured here.

# %%
plots.glue_table("jdl_table_claims", pd.DataFrame(jpeg_dl.claims(h, p, plots.label(p["network"])),
                                                  columns=["", "the paper (quoted)", "ours"]))
paper = {f"paper_{k}": str(v) for k, v in jpeg_dl.PAPER.items()}
plots.glue_values("jdl_", paper)

# %% [markdown]
# ## CPU time

# %%
cpu = {"train_baseline_s": plots.fmt(h["train_baseline_s"], ",.0f"),
       "train_jpeg_s": plots.fmt(h["train_jpeg_s"], ",.0f"), "slowdown": plots.fmt(h["slowdown"], ".2f"),
       "total_min": plots.fmt(h["total_s"] / 60, ",.1f")}
plots.glue_values("jdl_", cpu)
display(Markdown(f"Training per seed: baseline {cpu['train_baseline_s']} s, JPEG-DL {cpu['train_jpeg_s']} s "
                 f"({cpu['slowdown']}×); the whole run (training, attacks, encoding): {cpu['total_min']} min "
                 f"on {protocol['device']} with {protocol['threads']} PyTorch thread(s)."))
