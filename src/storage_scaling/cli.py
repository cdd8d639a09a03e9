"""Command-line entry: ``storage-scaling <subcommand> ...`` (also ``python -m storage_scaling.cli``).

Subcommands (one function each, ``cmd_<name>``):

* ``fit``: fit the storage scaling law Err = E + A n^-alpha + B L^-beta to a CSV of runs
  (columns n, L or mean_bytes, the error metric, optionally seed) and print the parameters with
  bootstrap intervals and the storage-optimal allocation for the given budgets::

      storage-scaling fit data.csv --budget 48.48e6 --budget 96.96e6 [--metric error]
                                   [--with-floor] [--bootstrap 1000]

Errors in the input are reported on stderr with exit status 2; a fit that does not converge exits
with status 3.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# One BLAS thread unless the user chose otherwise (set before numpy/scipy load): the fits are
# many tiny L-BFGS-B problems, which a threaded OpenBLAS slows down badly on a busy machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _fmt(x: float) -> str:
    if x != x:  # NaN
        return "nan"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.4g}"
    return f"{x:,.4f}" if ax < 10 else f"{x:,.1f}"


def cmd_fit(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import law

    path = Path(args.csv)
    if not path.is_file():
        raise ValueError(f"no such CSV file: {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} as CSV: {exc}") from exc
    budgets = [float(b) for b in (args.budget or [])]
    for b in budgets:
        if not b > 0:
            raise ValueError(f"--budget must be a positive number of bytes, got {b!r}")
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0 resamples, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1), got {args.level}")
    data = law.law_data(frame, metric=args.metric, n_col=args.n_col, L_col=args.L_col,
                        one_minus=args.one_minus, with_floor=args.with_floor)
    fit = law.fit_law(data, method=args.method, with_floor=args.with_floor)
    boot = None
    if args.bootstrap:
        boot = law.bootstrap(data, method=args.method, with_floor=args.with_floor,
                             n_boot=args.bootstrap, budgets=budgets, seed=args.seed,
                             level=args.level, point=fit, n_max=args.n_max)
    out = sys.stdout
    print(f"Storage scaling law  Err = E + A n^-alpha + B L^-beta   ({path.name}: {len(data)} runs, "
          f"{len(data.cells)} (n, L) cells, metric {data.metric!r})", file=out)
    print(f"fit: {fit.method} ({'with' if fit.with_floor else 'without'} floor E), R^2 = {fit.r2:.4f}",
          file=out)
    tab = boot.intervals().set_index("quantity") if boot is not None else None
    pct = f"{args.level:.0%}"
    header = f"  {'parameter':<10}{'value':>14}" + (f"{pct + ' interval':>30}" if tab is not None else "")
    print(header, file=out)
    names = list(fit.fitted_names()) + ["nu"]
    for name in names:
        value = fit.params.nu if name == "nu" else getattr(fit.params, name)
        line = f"  {name:<10}{_fmt(value):>14}"
        if tab is not None:
            line += f"{'[' + _fmt(tab.loc[name, 'lo']) + ', ' + _fmt(tab.loc[name, 'hi']) + ']':>30}"
        if name in fit.at_bound:
            line += "   (on its bound: not identified by these data)"
        print(line, file=out)
    if boot is not None:
        print(f"  bootstrap: {boot.n_resamples} resamples of the runs, {boot.n_failed} left out", file=out)
    if budgets:
        calc = law.storage_calculator(fit.params, budgets, boot=boot, n_max=args.n_max, level=args.level)
        print("optimal allocation (closed form)", file=out)
        for _, r in calc.iterrows():
            line = (f"  s = {r['budget_MB']:,.3f} MB: n* = {r['n']:,.0f}, L* = {r['L_bytes']:,.0f} bytes, "
                    f"predicted error {r['error']:.4f}")
            if "n_lo" in r:
                line += (f"  [n {r['n_lo']:,.0f}-{r['n_hi']:,.0f}; L {r['L_bytes_lo']:,.0f}-"
                         f"{r['L_bytes_hi']:,.0f}; error {r['error_lo']:.4f}-{r['error_hi']:.4f}]")
            if r["note"]:
                line += f"  ({r['note']})"
            print(line, file=out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storage-scaling",
        description="Storage scaling law tools (companion of Mentzer & Montanari 2024).")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    fit = sub.add_parser("fit", help="fit Err = E + A n^-alpha + B L^-beta to a CSV of runs",
                         description="Fit the storage scaling law to a CSV with columns n, L (bytes "
                                     "per image; or mean_bytes), an error metric in (0, 1] and "
                                     "optionally seed; print parameters with bootstrap intervals "
                                     "and the optimal (n, L) for each budget.")
    fit.add_argument("csv", help="CSV file, one row per training run")
    fit.add_argument("--budget", action="append", type=float, metavar="BYTES",
                     help="storage budget in bytes (repeatable), e.g. 48.48e6")
    fit.add_argument("--metric", default="error", help="error column to fit (default: error)")
    fit.add_argument("--one-minus", action="store_true",
                     help="the metric column is an accuracy/F1: fit 1 - metric")
    fit.add_argument("--n-col", default="n", help="column with the number of images (default: n)")
    fit.add_argument("--L-col", default=None, help="column with bytes per image (default: L, else mean_bytes)")
    fit.add_argument("--with-floor", action="store_true", help="fit the irreducible error E too")
    fit.add_argument("--method", choices=("robust", "paper"), default="robust",
                     help="robust: Huber on log error, L-BFGS multi-start (default); "
                          "paper: the authors' linear-space curve_fit")
    fit.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                     help="bootstrap resamples for intervals (0 = none; default 1000)")
    fit.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    fit.add_argument("--n-max", type=float, default=None, help="pool size: cap n* at this many images")
    fit.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    fit.set_defaults(func=cmd_fit)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .law import ConvergenceError

    try:
        return args.func(args)
    except ConvergenceError as exc:
        print(f"storage-scaling {args.command}: fit did not converge: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"storage-scaling {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
