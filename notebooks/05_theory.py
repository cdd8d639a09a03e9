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
# # Theory: the multiresolution model, derived with sympy and checked by simulation
#
# The stylized model of {cite:p}`mentzer2024scaling` as the authors' code defines it: level
# $\ell$ of an "image" holds $q^\ell$ independent coefficients of variance $p^{-\ell}$; the
# target is $y=\langle\theta,x\rangle+\varepsilon$ with $\|\theta_\ell\|^2=r^\ell$ and
# $\mathrm{Var}\,\varepsilon=\tau^2$; compression keeps the $m$ coarsest levels, i.e.
# $L=(q^m-1)/(q-1)$ coefficients; ridge regression is fitted on what is kept.
#
# This notebook (1) derives the exponents with sympy, (2) simulates ridge regression
# (validation-tuned penalty, 50 repeats in the `full` profile) and (3) compares both with the
# deterministic-equivalent formula. Everything except the Monte-Carlo grid runs at full size in
# every profile. The computations live in `storage_scaling.theory`; this notebook calls them,
# plots and glues.

# %% tags=["parameters"]
profile = "publish"
p = 2.01
q = 2
r = 0.99
tau = 1.0
repeats = 50
n_val = 10_000
n_test = 10_000
seed = 2024

# %%
import numpy as np
import sympy as sp
from IPython.display import Markdown, Math, display

from storage_scaling import plots, tables, theory

tables.check_profile(profile)
plots.use_style()
model = theory.ModelParams(p=p, q=q, r=r, tau=tau)
sat = theory.ModelParams(p=p, q=q, r=theory.SATURATED_R, tau=tau)
full_params, smoke_params = theory.simulation_params(p, q, r, tau, repeats=repeats, n_val=n_val, n_test=n_test,
                                                     seed=seed)

# %% [markdown]
# ## 1. The constants of the model
#
# $\kappa=\log p/\log q$ is the spectral decay (the $k$-th eigenvalue of the covariance is
# $\asymp k^{-\kappa}$), $\beta=\log(p/r)/\log q$ the truncation exponent, and the estimation
# exponent is $\alpha=s/(1+s)$ with $s=\min(\beta,2\kappa)$ (derived below).

# %%
plots.glue_table("theory_table_constants", theory.constants_table(model),
                 formats={"value": lambda v: v if isinstance(v, str) else f"{v:.4g}"})
plots.glue_values("theory_", theory.constant_values(model))

# %% [markdown]
# ## 2. The derivation, step by step, in sympy
#
# **Step 1: the truncation term.** Level $\ell$ carries signal energy
# $\mathbb E\langle\theta_\ell,x_\ell\rangle^2=q^\ell\cdot(r/q)^\ell\cdot p^{-\ell}=(r/p)^\ell$.
# Dropping the levels $\ell\ge m$ leaves their energy as extra, unlearnable noise.

# %%
trunc = theory.sym_truncation()
assert trunc["check"] == 0
display(Math(r"\bar k_m = " + sp.latex(trunc["sum"]) + " = " + sp.latex(trunc["value"])
             + r" = " + sp.latex(trunc["closed_form"])))
display(Math(r"L(m) = \sum_{\ell<m} q^\ell = " + sp.latex(theory.sym_storage())))

# %% [markdown]
# **Step 2: the $L$ exponent.** $\log\bar k_m$ falls by $\log(p/r)$ per level while $\log L$
# grows by $\log q$ per level (for large $m$), so $\bar k_m\asymp L^{-\beta}$:

# %%
bet = theory.sym_beta()
display(Math(r"\frac{d\log\bar k_m}{dm} = " + sp.latex(bet["dlog_kbar_dm"])
             + r",\qquad \lim_{m\to\infty}\frac{d\log L}{dm} = " + sp.latex(bet["dlog_L_dm"])
             + r",\qquad \beta = " + sp.latex(bet["beta"])))

# %% [markdown]
# **Step 3: the bias of ridge.** With normalised penalty $\tilde\lambda=p^{-t}$ ridge learns the
# levels whose variance $p^{-\ell}$ exceeds $\tilde\lambda$ (levels $\ell<t$) up to a shrinkage
# bias $\tilde\lambda^2(rp)^\ell$ each, and misses the levels $\ell\ge t$ entirely. If $rp>1$
# both sums are dominated by the levels near the cut-off and the bias is $\asymp (r/p)^t$; if
# $rp<1$ the first sum is dominated by the coarsest level and the bias is stuck at
# $\asymp\tilde\lambda^2=e^{-2t\log p}$ (ridge *saturates*). So the bias is $e^{-at}$ with
# $a=\min(\log(p/r), 2\log p)$.

# %%
bias = theory.sym_bias_sums()
display(Math(r"\text{learned levels: }\sum_{\ell<t}\tilde\lambda^2 (rp)^\ell = " + sp.latex(bias["learned"])))
display(Math(r"\text{unlearned levels: }\sum_{\ell\ge t}(r/p)^\ell = " + sp.latex(bias["unlearned"])))

# %% [markdown]
# **Step 4: the $n$ exponent.** The effective dimension at cut-off $t$ is $q^t=e^{gt}$
# ($g=\log q$), so the variance is $\asymp e^{gt}/n$. Minimise bias + variance over $t$:

# %%
alp = theory.sym_alpha()
display(Math(r"E(t) = " + sp.latex(alp["error"]) + r",\qquad t_* = " + sp.latex(alp["t_star"])))
display(Math(r"E(t_*) = " + sp.latex(alp["error_at_t_star"]) + r",\qquad \alpha = \lim_{n\to\infty}"
             r"\frac{-\log E(t_*)}{\log n} = " + sp.latex(alp["alpha_general"])))
for what, sym, non_sat, sat_key, sat_form in (
        (r"\alpha", "", "alpha_non_saturated", "alpha_saturated", r"\frac{2\kappa}{1+2\kappa}"),
        (r"\lambda = n\,p^{-t_*}\propto n^{e}:\ e", "e", "lambda_exponent_non_saturated",
         "lambda_exponent_saturated", r"\frac{\kappa+1}{2\kappa+1}"),
        (r"d_* = q^{t_*}\propto n^{c}:\ c", "c", "dimension_exponent_non_saturated",
         "dimension_exponent_saturated", r"\frac{1}{1+2\kappa}")):
    display(Math(rf"{what}:\quad rp>1:\ {sp.latex(alp[non_sat])},\qquad rp<1:\ {sp.latex(alp[sat_key])} = {sat_form}"))

# %% [markdown]
# **Step 5: the storage-optimal split.** Minimise $An^{-\alpha}+BL^{-\beta}$ under $nL=s$:

# %%
split = theory.sym_optimal_split()
exps = theory.derived_exponents(model)
display(Math(r"n_*(s) = " + sp.latex(split["n_star"]) + r",\qquad L_*(s) = " + sp.latex(split["L_star"])))
display(Math(r"n_*\propto s^{" + sp.latex(split["n_exponent"]) + r"},\quad L_*\propto s^{"
             + sp.latex(split["L_exponent"]) + r"},\quad \mathrm{Err}-\tau^2\propto s^{-\nu},\ \nu = "
             + sp.latex(split["nu"])))
display(Markdown(f"At $p={p}$, $q={q}$, $r={r}$: $n_*\\propto s^{{{exps['n_share']:.3f}}}$, "
                 f"$L_*\\propto s^{{{exps['L_share']:.3f}}}$, $\\nu={exps['nu']:.3f}$."))

# %% [markdown]
# ## 3. Two parametrisations
#
# The surviving opening of Theorem 1 assumes $rp<1$ and $q/p<1$. With the code's numbers $q/p<1$
# holds but $rp$ is far above 1. **Literal** reading (the theorem's $r$ is the code's $r$): the
# theorem covers the *saturated* phase, where $\alpha=2\kappa/(1+2\kappa)$ and the paper's penalty
# exponent $(\kappa+1)/(2\kappa+1)$ is the optimal one; the code's simulation ($rp\approx 2$) lies
# outside it. **Per coordinate** (the theorem's $r$ is the code's $r/q$): both hypotheses hold.

# %%
plots.glue_table("theory_table_readings", theory.reading_table(model), precision=4)

# %% [markdown]
# ## 4. The simulation
#
# Per repeat: a validation and a test set, then nested training sets; ridge for the 20 penalties
# $\lambda=c\,n^{(\kappa+1)/(2\kappa+1)}$, $c\in10^{[-2,2]}$, from one eigendecomposition of
# $X^\top X$, the penalty chosen on the validation set. The levels beyond the largest $m$ enter
# $y$ as one Gaussian term of the right variance (see `theory.simulate`). `excess` is the
# population excess error of the tuned model, `excess_sampled` the same on `n_test` fresh samples.

# %%
table = tables.profile_table("theory_simulation", profile=profile, full_params=full_params,
                             smoke_params=smoke_params, compute=theory.simulation_table)
tables.banner(table)
sim = table.frame
summ = theory.simulation_summary(sim, model)
plots.glue_values("theory_", {
    **theory.simulation_values(sim, summ, model), "sim_seconds": float(table.meta.get("seconds", float("nan"))),
    "sim_source": table.source,
    "sim_source_text": {"committed": "committed full-size table `results/theory_simulation.csv`",
                        "full": "full-size table computed in this build",
                        "smoke": "toy-size smoke run (its numbers are not meaningful)",
                        "smoke-fallback": "toy-size placeholder: the full-size table is pending"}[table.source]})
display(plots.table(summ[["n", "m", "L", "mean", "se", "count", "de", "z", "rel_gap"]], precision=5))  # raw cells

# %% [markdown]
# ## 5. The deterministic equivalent
#
# $\lambda_*$ solves $\sum_{\ell<m}\frac{q^\ell p^{-\ell}}{p^{-\ell}+\lambda_*}+\frac{\lambda}{\lambda_*}=n$;
# then $D=\sum_{\ell<m}\frac{q^\ell p^{-2\ell}}{(p^{-\ell}+\lambda_*)^2}$, $V=\frac{D}{n-D}$,
# $\mathcal B=\frac{n\lambda_*^2}{n-D}\sum_{\ell<m}\frac{r^\ell p^{-\ell}}{(p^{-\ell}+\lambda_*)^2}$
# and $\mathrm{Err}-\tau^2\approx\bar k_m+\mathcal B+(\tau^2+\bar k_m)V$, minimised over the same
# 20 penalties as the simulation (the authors' "exact" curve).
#
# ## 6. Fits of the storage law (scipy `curve_fit`, linear space, no constant, as the authors did)

# %%
de_grid = theory.de_grid(model)
plots.glue_values("theory_", theory.de_reference_values(model))
exponents, values, fit_sim = theory.exponent_report(model, summ, de_grid)
plots.glue_values("theory_", values)
plots.glue_table("theory_table_exponents", exponents, caption=(
    "Exponents of the excess test error: ours (first four columns) and the values listed in the project's "
    "reference notes on the paper (last two; the paper's printed theorem was not retrievable). Slopes far out: "
    "n from 1e6 to 1e8 with 60 kept levels; L from 1,023 to 16,383 at n = 1e14."))

# %% [markdown]
# ## 7. The figure

# %%
n_curve = np.logspace(2, 5, 46)
fig, (ax_n, ax_L) = plots.subplots(1, 2, row_height=5.4)
for i, m in enumerate(theory.PAPER_M):
    color, L = plots.sequential("viridis", i, len(theory.PAPER_M)), model.kept_coefficients(m)
    ax_n.plot(n_curve, theory.de_optimal(n_curve, m, model, grid="paper")["excess"], color=color, label=f"{L:,}")
    ax_n.plot(n_curve, theory.excess_law((n_curve, L), *(fit_sim[k] for k in ("A", "alpha", "B", "beta"))),
              color=color, lw=1, ls=":")
    pts = summ[summ["m"] == m]
    ax_n.errorbar(pts["n"], pts["mean"], yerr=pts["se"], fmt="o", ms=4, color=color, capsize=2)
L_fine = np.logspace(np.log10(3), np.log10(511), 60)
for j, n in enumerate(theory.PAPER_N):
    color, de_n = plots.sequential("plasma", j, len(theory.PAPER_N), stop=0.9), de_grid[de_grid["n"] == n]
    ax_L.plot(de_n["L"], de_n["excess"], color=color, label=f"{n:,}")
    ax_L.plot(L_fine, theory.excess_law((n, L_fine), *(fit_sim[k] for k in ("A", "alpha", "B", "beta"))),
              color=color, lw=1, ls=":")
    pts = summ[summ["n"] == n]
    ax_L.errorbar(pts["L"], pts["mean"], yerr=pts["se"], fmt="o", ms=4, color=color, capsize=2)
for ax, x, title, legend in ((ax_n, "training samples n", "against n, one curve per L", "stored coefficients L"),
                             (ax_L, "stored coefficients per sample L", "against L, one curve per n",
                              "training samples n")):
    plots.log_ticks(ax)
    plots.log_ticks(ax, axis="y")
    ax.set(xlabel=x, ylabel="excess test error (MSE − τ²)", title=title)
    ax.legend(title=legend, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
fig.suptitle(f"p={p}, q={q}, r={r}, τ={tau}: simulation (dots ± 1 s.e., {int(summ['count'].min())} repeats),\n"
             "deterministic equivalent (solid), fitted law (dotted)")
plots.glue_figure("theory_fig_main", fig)

# %% [markdown]
# ## 8. Simulation against formula

# %%
agreement, values, text = theory.agreement_report(sim, summ, model, de_grid, full_params["c_num"])
plots.glue_values("theory_", values)
display(plots.table(agreement, precision=4, formats={"n": "{:,}", "L": "{:,}"}))  # raw points
display(Markdown(text))

# %% [markdown]
# ## 9. Where the law holds: ratio of the formula to $n^{-\alpha}+L^{-\beta}$
#
# Continuous minimisation over $\lambda$; left: the code's parameters ($rp>1$); right: the
# saturated phase $r=0.3$ ($rp<1$, the literal reading of the theorem). The dashed line is
# $n=L^{1+2\kappa}$.

# %%
maps = {"code's parameters": (model, theory.validity_map(model)), "saturated, r = 0.3": (sat, theory.validity_map(sat))}
fig, axes = plots.subplots(1, 2, row_height=4.2)
for ax, (name, (prm, vm)) in zip(axes, maps.items()):
    mesh = ax.pcolormesh(np.log10(vm["L"][0]), np.log10(vm["n"][:, 0]), np.log10(vm["ratio"]), cmap="coolwarm",
                         vmin=-1, vmax=1, shading="nearest")
    ax.plot(np.log10(vm["L"][0]), np.log10(vm["ridge"]), "k--", lw=1)
    ax.set(xlabel="log10 L (stored coefficients)", ylabel="log10 n (training samples)", ylim=(0, 12),
           title=f"{name}\nα={prm.alpha:.3f}, β={prm.beta:.3f}")
    ax.grid(False)
fig.colorbar(mesh, ax=axes, label=r"log10 [(Err − τ²) / ($n^{-α} + L^{-β}$)]", location="bottom", shrink=0.6)
fig.suptitle(r"Is the excess error within constant factors of $n^{-α} + L^{-β}$?")
plots.glue_figure("theory_fig_validity", fig)
plots.glue_values("theory_", theory.validity_values(maps["code's parameters"][1], maps["saturated, r = 0.3"][1], sat))

# %% [markdown]
# ## 10. Local slopes of the formula converge to the derived exponents

# %%
fig, ax = plots.subplots(1, 1, row_height=4.2)
for prm, name in ((model, f"r = {r} (rp > 1)"), (sat, "r = 0.3 (rp < 1)")):
    line, = ax.plot(*theory.local_slopes(prm, np.logspace(2, 10, 33)), marker=".", label=f"{name}: local slope")
    ax.axhline(prm.alpha, color=line.get_color(), ls="--", lw=1, label=f"{name}: derived α = {prm.alpha:.3f}")
plots.log_ticks(ax)
ax.set(xlabel="training samples n", ylabel="−d log(Err−τ²) / d log n",
       title=f"Local n-exponent of the formula ({theory.SLOPE_LEVELS} kept levels, best λ)")
ax.legend()
plots.glue_figure("theory_fig_slopes", fig)

# %% [markdown]
# ## 11. Exercise helpers: the two-dimensional case $q=4$
#
# With $q=4$ the hypothesis $q/p<1$ needs $p>4$: $p=4.02$ with $r=0.99$ (the analogue of the
# paper's choice) and the derived exponents; try other $(p, r)$ and check with the formula.

# %%
two_d, values = theory.two_d_example()
plots.glue_values("theory_", values)
plots.glue_table("theory_table_q4", two_d, precision=4)
try:
    theory.ModelParams(p=3.9, q=4, r=0.99)
except ValueError as err:
    print("p = 3.9 with q = 4 is rejected:", err)

# %% [markdown]
# ## 12. The theory on a real model: the probe's own features
#
# The probe tier is a ridge regression on fixed features, the setting of this model on real
# images. On the standardised features of the grid's whole pool (original format) we measure the
# model's three ingredients (`storage_scaling.feature_theory`): the covariance spectrum (the
# analogue of the level variances, $\lambda_k\sim k^{-\kappa}$); the one-vs-rest targets' energy
# per eigen-direction, cross-fitted between two halves of the images so the sampling noise cancels
# (the analogue of $r$: $e_k\sim k^{-(1+\beta)}$); and what compression does in that basis: the
# change of the same images' features when stored at distance $d$, and its target-relevant part
# for the ridge's own weights, against the bytes per image $L$. Intervals: half-samples of the
# images (20 blocks, half of them per replicate), widened to hold the estimate.

# %%
import pandas as pd  # noqa: E402

from storage_scaling import feature_theory, paths  # noqa: E402
from storage_scaling.experiments import kinds, report as ex_report  # noqa: E402
from storage_scaling.results import read_rows  # noqa: E402

ft_table = tables.profile_table("theory_features", profile=profile, full_params=feature_theory.FULL_PARAMS,
                                smoke_params=feature_theory.SMOKE_PARAMS, compute=feature_theory.measure_table)
tables.banner(ft_table)
ft = ft_table.frame
ft_params = ft_table.meta.get("params", feature_theory.FULL_PARAMS)
display(plots.table(ft[ft["kind"] != "curve"].dropna(axis=1, how="all")))  # every measured number

# %%
curves = ft[ft["kind"] == "curve"]
ft_sets = list(curves.groupby(["dataset", "model"]).groups)
fig, axes = plots.subplots(2 * len(ft_sets), 1, row_height=3.6, squeeze=False)  # one panel per row: legible
for row, (ds, model_name) in zip(axes.reshape(-1, 2), ft_sets):
    c = curves[(curves["dataset"] == ds) & (curves["model"] == model_name)]
    got = ft[(ft["dataset"] == ds) & (ft["kind"] == "exponent")].set_index("quantity")
    for ax, column, name, rng_key, expo in (
            (row[0], "eigenvalue", "eigenvalue λ_k", "eigen_range", got.loc["kappa", "estimate"]),
            (row[1], "target_energy", "target energy e_k (cross-fitted)", "energy_range",
             got.loc["beta_spectrum", "estimate"] + 1)):
        positive = c[c[column] > 0]
        ax.loglog(positive["k"], positive[column], "o", ms=3, label=f"measured ({len(c) - len(positive)} points ≤ 0 left out)")
        lo, hi = ft_params[rng_key]
        if np.isfinite(expo) and positive["k"].between(lo, hi).any():
            ax.loglog(*feature_theory.line_at(positive["k"], positive[column], expo, lo, hi), "k--", lw=1.5,
                      label=f"fit over k = {lo}..{hi}: slope −{expo:.2f}")
        ax.axvspan(lo, hi, color="0.9", zorder=0)
        ax.set(xlabel="eigen-direction k (largest eigenvalue first)", ylabel=name,
               title=f"{plots.label(ds)}, {plots.label(model_name)}: {name.split(' (')[0]}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22))
plots.glue_figure("theory_fig_features_spectrum", fig)

# %%
fig, axes = plots.subplots(2 * len(ft_sets), 1, row_height=3.8, squeeze=False)
rise_of = {}  # per dataset: the error rise's own decay in bytes, and the change over the rise
# the committed grid's error rise at the whole pool, beside the measured change (full-size measurements only)
grid_path = kinds.result_path("grid", "probe", paths.results_dir())
grid_rows = read_rows(grid_path) if grid_path.is_file() and ft_table.source in ("committed", "full") \
    else pd.DataFrame(columns=["dataset"])
for row, (ds, model_name) in zip(axes.reshape(-1, 2), ft_sets):
    c = curves[(curves["dataset"] == ds) & (curves["model"] == model_name)]
    comp = ft[(ft["dataset"] == ds) & (ft["kind"] == "compression")].sort_values("distance")
    change_cols = [col for col in c.columns if col.startswith("change d=") and c[col].notna().any()]
    for i, col in enumerate(change_cols):
        row[0].loglog(c["k"], c[col], color=plots.sequential("Blues", i, len(change_cols)), label=col.replace("change ", ""))
    row[0].axhline(1.0, color="k", lw=1, ls=":", label="a dropped level")
    row[0].set(xlabel="eigen-direction k", ylabel="mean squared change / λ_k",
               title=f"{plots.label(ds)}: feature change per direction, over its variance")
    row[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=4)
    ax = row[1]
    ax.errorbar(comp["mean_bytes"], comp["estimate"], yerr=[comp["estimate"] - comp["lo"], comp["hi"] - comp["estimate"]],
                fmt="o", label="target-relevant change (the originals' ridge weights)")
    b = ft[(ft["dataset"] == ds) & (ft["kind"] == "exponent")].set_index("quantity").loc["beta_bytes", "estimate"]
    if np.isfinite(b):
        ax.loglog(*feature_theory.line_at(comp["mean_bytes"], comp["estimate"], b, comp["mean_bytes"].min(),
                                          comp["mean_bytes"].max()), "k--", lw=1.5, label=f"fit: L^−{b:.2f}")
    g = grid_rows[grid_rows["dataset"] == ds]
    if len(g):
        g = g[g["n"] == g["n"].max()]
        means = g.groupby(["codec", "distance"], dropna=False)[["error", "mean_bytes"]].mean().reset_index()
        base = float(means.loc[means["codec"] == "original", "error"].iloc[0])
        lossy = means[means["codec"] != "original"]
        rise = lossy["error"] - base
        ax.loglog(lossy["mean_bytes"][rise > 0], rise[rise > 0], "s", mfc="none", color="C3",
                  label="test error rise over the original format (grid)")
        ratio = comp.set_index("distance")["estimate"] / lossy.set_index("distance")["error"].sub(base)
        rise_of[ds] = {"beta_rise": feature_theory.exponent_or_nan(lossy["mean_bytes"].to_numpy(), rise.to_numpy(),
                                                                   lossy["mean_bytes"].min(), lossy["mean_bytes"].max()),
                       "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max())}
    ax.set(xscale="log", yscale="log", xlabel="bytes per image L (B)", ylabel="change (squared score units) / error rise",
           title=f"{plots.label(ds)}: what compression costs the probe's predictor")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22))
plots.glue_figure("theory_fig_features_compression", fig)

# %% [markdown]
# **The learning curve.** The closed forms need power laws; the chapter's deterministic equivalent
# does not. Fed every measured eigenvalue and cross-fitted target energy (its noise: the targets'
# variance that no direction explains), it gives the ridge's test error at each training size, at
# the best penalty of the probe's own grid (`feature_theory.de_curve`). Compression enters as the
# model has it: the target-relevant change $\bar k$ becomes noise. First a check on the ridge itself:
# trained on the first half of the image blocks, scored on the second half.

# %%
de_check = ft[ft["kind"] == "de_check"]
de_curves = ft[ft["kind"] == "learning_curve"]
de_of = {}  # per dataset: how far the check's ridge sits from the deterministic equivalent
fig, axes = plots.subplots(2 * len(ft_sets), 1, row_height=3.6, squeeze=False)
for row, (ds, model_name) in zip(axes.reshape(-1, 2), ft_sets):
    chk = de_check[de_check["dataset"] == ds].sort_values("train_n")
    cur = de_curves[de_curves["dataset"] == ds]
    got = ft[(ft["dataset"] == ds) & (ft["kind"] == "exponent")].set_index("quantity")
    if len(chk):
        noise = float(chk["noise"].iloc[0])
        row[0].plot(chk["train_n"], chk["ridge_test"] - noise, "o", label="the ridge, scored on the held-out half")
        row[0].plot(chk["train_n"], chk["de_test"] - noise, "k-", label="deterministic equivalent, measured spectrum")
        row[0].set(xscale="log", yscale="log", xlabel="training images n",
                   ylabel="test MSE minus its noise floor", title=f"{plots.label(ds)}: the check on held-out images")
        plots.log_ticks(row[0], axis="x")
        plots.log_ticks(row[0], axis="y", fmt="{x:.3f}")
        row[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.22))
        gap = (chk["ridge_test"] - chk["de_test"]) / chk["ridge_test"]
        excess = (chk["ridge_test"] - noise) / (chk["de_test"] - noise)
        de_of[ds] = {"check_gap": float(gap.abs().max()), "excess_ratio_min": float(excess.min()),
                     "excess_ratio_max": float(excess.max()), "noise": noise,
                     "check_n_min": int(chk["train_n"].min()), "check_n_max": int(chk["train_n"].max())}
    formats = sorted(cur["distance"].dropna().unique())
    for i, dist in enumerate([np.nan, *formats]):
        part = cur[cur["distance"].isna()] if np.isnan(dist) else cur[cur["distance"] == dist]
        row[1].plot(part["train_n"], part["de_excess"], "o-" if np.isnan(dist) else "-", ms=3,
                    color="k" if np.isnan(dist) else plots.sequential("Blues", i - 1, len(formats)),
                    label="original" if np.isnan(dist) else f"d={dist:g}")
    a = got.loc["alpha_de"] if "alpha_de" in got.index else None
    title = f"{plots.label(ds)}: predicted learning curves"
    if a is not None and np.isfinite(a["estimate"]):
        title += f" (original: slope −{a['estimate']:.2f})"
    row[1].set(xscale="log", yscale="log", xlabel="training images n (the grid's sizes)",
               ylabel="predicted excess test MSE", title=title)
    if len(cur):
        plots.log_ticks(row[1], axis="x")
        plots.log_ticks(row[1], axis="y", fmt="{x:.3f}")
    row[1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=4)
plots.glue_figure("theory_fig_features_learning_curve", fig)

# %% [markdown]
# The prediction beside chapter 3's fit of the same probe's grid (robust fit with floor, 95 %
# bootstrap intervals). $\alpha$ is predicted two ways: from the spectral decays
# ($s=\min(\beta_{\rm spectrum},2\kappa)$, $\alpha=s/(1+s)$; the model counts kept coefficients),
# and as the slope of the deterministic equivalent's excess error over the grid's sizes; $\beta$
# from the target-relevant change against bytes, and $\nu=\alpha\beta/(\alpha+\beta)$ from the two.

# %%
boot_path = paths.results_dir() / "law_grid_bootstrap.csv"  # chapter 3's intervals (notebook 03 writes them)
boot = pd.read_csv(boot_path) if boot_path.is_file() else pd.DataFrame(
    columns=["dataset", "model", "kind", "fit", "quantity", "point", "lo", "hi"])
cmp = feature_theory.comparison(ft, boot)
shown = cmp.assign(setting=[f"{plots.label(d)}, {plots.label(m)}" for d, m in zip(cmp["dataset"], cmp["model"])])
shown = ex_report.name_once(pd.DataFrame({
    "setting": shown["setting"], "exponent": shown["exponent"], "route": shown["route"],
    "predicted from the features [95 %]": [f"{p:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(p) else "none (outside the model)"
                                           for p, lo, hi in zip(cmp["predicted"], cmp["predicted_lo"], cmp["predicted_hi"])],
    "fitted to the grid, chapter 3 [95 %]": [f"{p:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(p) else "no fit"
                                             for p, lo, hi in zip(cmp["fitted"], cmp["fitted_lo"], cmp["fitted_hi"])],
    "verdict": cmp["verdict"]}), ["setting"])
plots.glue_table("theory_table_features", shown)
exps = ft[ft["kind"] == "exponent"].set_index(["dataset", "quantity"])
plots.glue_values("theory_features_", {
    "text": feature_theory.comparison_sentence(cmp, ft, plots.label),
    "status": tables.status_text(ft_table, "the measurement"),
    "seconds": float(ft_table.meta.get("seconds", float("nan"))),
    "blocks": int(ft_params["blocks"]), "replicates": int(ft_params["replicates"]),
    "eigen_lo": int(ft_params["eigen_range"][0]), "eigen_hi": int(ft_params["eigen_range"][1]),
    "energy_lo": int(ft_params["energy_range"][0]), "energy_hi": int(ft_params["energy_range"][1])})
NAN = float("nan")
for ds, short in (("cifar10-jpg", "cifar"), ("food101-64px", "food")):  # the chapter's numbers per dataset
    rows = ft[ft["dataset"] == ds]
    de_alpha = cmp[(cmp["dataset"] == ds) & (cmp["route"] == feature_theory.ROUTES["alpha_de"])]
    de_of.setdefault(ds, {})["alpha_ratio"] = float(de_alpha["predicted"].iloc[0] / de_alpha["fitted"].iloc[0]) \
        if len(de_alpha) else NAN
    got = (lambda q: float(exps.loc[(ds, q), "estimate"])) if len(rows) else (lambda q: NAN)
    plots.glue_values(f"theory_features_{short}_", {
        "n": int(rows["n"].iloc[0]) if len(rows) else 0, "features": int(rows["features"].iloc[0]) if len(rows) else 0,
        "penalty": float(rows["penalty"].iloc[0]) if len(rows) else NAN,
        "kappa": got("kappa"), "beta_spectrum": got("beta_spectrum"), "beta_bytes": got("beta_bytes"),
        **rise_of.get(ds, {"beta_rise": NAN, "ratio_min": NAN, "ratio_max": NAN}),
        **{"check_gap": NAN, "excess_ratio_min": NAN, "excess_ratio_max": NAN, "noise": NAN, "check_n_min": 0,
           "check_n_max": 0, **de_of.get(ds, {})}})
