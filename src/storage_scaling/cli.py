"""The one command line: ``storage-scaling <subcommand> ...`` (also ``python -m storage_scaling.cli``).

Subcommands, each with ``--help`` and examples. A practitioner starts with the first three
(:mod:`storage_scaling.practice`):

* ``plan``     how hard to compress your own images for a storage budget;
* ``compress`` write them compressed (``--dry-run`` first says what it would write);
* ``pilot``    fit your own law on your labelled images, for ``plan --law``.

The book's own tools follow:

* ``fit``     fit the storage scaling law Err = E + A n^-alpha + B L^-beta to a CSV of runs and
              print the parameters with bootstrap intervals and the optimal split per budget::

                  storage-scaling fit data.csv --budget 48.48e6 [--with-floor | --no-floor] [--n-max 60600]

              Both forms (with and without the floor E) are fitted and the one with the lower BIC
              is kept (:func:`storage_scaling.law.choose_form` says why BIC).
* ``tables``  compute the compression chapter's tables (:mod:`storage_scaling.compress.compression_tables`);
* ``run``     run (or resume) a training experiment from its spec file (:mod:`storage_scaling.experiments`);
* ``scenes``  predict chapter 11's scenes with the grid's kept segmenters (:mod:`storage_scaling.experiments.scenes`);
* ``book``    run the notebooks with papermill and build the book (:mod:`storage_scaling.book`;
              ``python -m storage_scaling.book`` is an alias);
* ``gpu``     prepare, rehearse (``--dry-run``) and run a time-boxed session on a borrowed GPU host
              (:mod:`storage_scaling.gpu_session`), and the airbench comparison (``gpu bench``).

Bad input is one line on stderr with exit status 2 (``--debug`` shows the traceback); a failed
notebook or book build, and a compression over its budget or with no image written, exit with 1;
a fit that does not converge, and a fitted law with no storage-optimal split, exit with 3.
Subcommands load their heavy dependencies only when they run: ``fit`` needs neither PyTorch nor
the codecs. Help texts are plain text: the docstrings they come from lose their reST markup
(:func:`plain`).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

from .threads import single_blas_thread  # noqa: E402

single_blas_thread()  # before numpy/scipy load: the fits are many tiny L-BFGS-B problems

from .errors import DEBUG_FLAG, run_main  # noqa: E402  (after the thread setting)

PROG = "storage-scaling"


def _fmt(x: float) -> str:
    if x != x:  # NaN
        return "nan"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.4g}"
    return f"{x:,.4f}" if ax < 10 else f"{x:,.1f}"


def _outside(value: float, lo: float, hi: float, name: str = "") -> str:
    """A warning when a point estimate lies outside its own percentile interval (a skewed or
    biased bootstrap distribution): such an interval must not be read as the estimate's range."""
    if lo <= value <= hi or not (lo == lo and hi == hi):
        return ""
    rel = max(abs(value), abs(lo), abs(hi)) * 1e-9  # printing precision, not a real disagreement
    if lo - rel <= value <= hi + rel:
        return ""
    what = f" of {name}" if name else ""
    return f"   (point estimate{what} outside its bootstrap interval: skewed resamples, read with care)"


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
        if not (b > 0 and math.isfinite(b)):
            raise ValueError(f"--budget must be a positive finite number of bytes, got {b!r}")
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0 resamples, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1), got {args.level}")
    n_max = args.n_max
    if n_max is not None and not (math.isfinite(n_max) and n_max >= 1):
        raise ValueError(f"--n-max is the pool size, a number of images >= 1; got {n_max!r}")
    save_to = None
    if args.save_law:
        save_to = Path(args.save_law).expanduser()
        if save_to.is_dir() or not save_to.parent.is_dir():
            raise ValueError(f"--save-law {save_to}: give a file name in an existing folder (e.g. my_law.json)")
    with_floor = {"floor": True, "no-floor": False, None: None}[args.floor]
    data = law.law_data(frame, metric=args.metric, n_col=args.n_col, L_col=args.L_col,
                        one_minus=args.one_minus, with_floor=bool(with_floor), source=str(path))
    choice = law.choose_form(data, method=args.method, with_floor=with_floor)
    fit = choice.fit
    if budgets:
        # before the bootstrap: a law with alpha, beta, A or B at (or near) 0 has no optimum to report
        try:
            fit.params.allocation(budgets, n_max=n_max)
        except ValueError as exc:
            message = " ".join(str(exc).split()).removeprefix("the optimal allocation is not defined: ")
            print(f"{PROG} fit: the law fitted to {path} has no storage-optimal allocation: {message}; "
                  "these runs do not identify the law: check the metric column, add runs over a wider "
                  "range of n and L, or drop --budget to see the fitted parameters", file=sys.stderr)
            return 3
    boot = None
    if args.bootstrap:
        boot = law.bootstrap(data, method=args.method, with_floor=fit.with_floor,
                             n_boot=args.bootstrap, budgets=budgets, seed=args.seed,
                             level=args.level, point=fit, n_max=n_max, progress=True)
    notes = law.identification_notes(fit, data, boot=boot)
    out = sys.stdout
    print(f"Storage scaling law  Err = E + A n^-alpha + B L^-beta   ({path.name}: {len(data)} runs, "
          f"{len(data.cells)} (n, L) cells, metric {data.metric!r})", file=out)
    flag = "--with-floor" if fit.with_floor else "--no-floor"
    if choice.forced:
        how = f"forced by {flag}; " + choice.reason[len("forced; "):]
    else:
        how = f"chosen by {choice.reason}. Force a form with --with-floor / --no-floor"
    print(f"form: {'with' if fit.with_floor else 'without'} floor E", file=out)
    print(f"  why: {how}", file=out)
    print(f"fit: {fit.method} ({'with' if fit.with_floor else 'without'} floor E), R^2 = {fit.r2:.4f}",
          file=out)
    tab = boot.intervals().set_index("quantity") if boot is not None else None
    pct = f"{args.level:.0%}"
    header = f"  {'parameter':<10}{'value':>14}" + (f"{pct + ' interval':>30}" if tab is not None else "")
    print(header, file=out)
    names = list(fit.fitted_names()) + ["nu"]
    for name in names:
        undefined = name == "nu" and not (fit.params.alpha > 0 and fit.params.beta > 0)
        value = float("nan") if undefined else fit.params.nu if name == "nu" else getattr(fit.params, name)
        line = f"  {name:<10}{_fmt(value):>14}"
        if tab is not None:
            lo, hi = float(tab.loc[name, "lo"]), float(tab.loc[name, "hi"])
            line += f"{'[' + _fmt(lo) + ', ' + _fmt(hi) + ']':>30}"
            line += _outside(value, lo, hi)
        if name in fit.at_bound:
            line += "   (on its bound: not identified by these data)"
        if undefined:
            line += "   (not defined: alpha or beta is 0)"
        print(line, file=out)
    if boot is not None:
        print(f"  bootstrap: {boot.n_resamples} resamples of the runs, {boot.n_failed} left out", file=out)
    for note in notes:
        print(f"  note: {note}", file=out)
    if save_to is not None:
        from .practice import laws

        laws.from_fit(fit, data, label=f"your law fitted on {path.name}", source=str(path.resolve())).save(save_to)
        print(f"law saved to {save_to} (use it with: storage-scaling plan IMAGES --budget S --law {save_to})", file=out)
    if budgets:
        calc = law.storage_calculator(fit.params, budgets, boot=boot, n_max=n_max, level=args.level)
        print("optimal allocation (closed form)", file=out)
        for _, r in calc.iterrows():
            line = (f"  s = {r['budget_MB']:,.3f} MB: n* = {r['n']:,.0f}, L* = {r['L_bytes']:,.0f} bytes, "
                    f"predicted error {r['error']:.4f}")
            if "n_lo" in r:
                line += (f"  [n {r['n_lo']:,.0f}-{r['n_hi']:,.0f}; L {r['L_bytes_lo']:,.0f}-"
                         f"{r['L_bytes_hi']:,.0f}; error {r['error_lo']:.4f}-{r['error_hi']:.4f}]")
                line += "".join(_outside(r[c], r[f"{c}_lo"], r[f"{c}_hi"], c)
                                for c in ("n", "L_bytes", "error"))
            if r["note"]:
                line += f"  ({r['note']})"
            print(line, file=out)
    return 0


START_HERE = ("Start here with your own images: storage-scaling plan IMAGES --budget 10GB says how many to keep "
              "and how hard to compress them; storage-scaling compress IMAGES OUT --budget 10GB --dry-run shows "
              "what would be written, and without --dry-run writes it; storage-scaling pilot fits your own law "
              "on labelled images. The other commands reproduce the book.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Storage scaling law tools (companion of Mentzer & Montanari 2024). " + START_HERE)
    parser.add_argument(DEBUG_FLAG, action="store_true", help="show the traceback of an input error")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    from .practice import compress_folder, pilot, plan  # the practitioner's commands first

    for name, module, help_text in (
            ("plan", plan, "start here: plan your own image dataset under a storage budget"),
            ("compress", compress_folder, "write your image dataset compressed (JPEG XL), resumable, in parallel"),
            ("pilot", pilot, "fit your own storage scaling law on your labelled images (linear probe, CPU)")):
        command = sub.add_parser(name, help=help_text, description=module.__doc__, epilog=module.EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.add_argument(DEBUG_FLAG, action="store_true", help="show the traceback of an input error")
        command.set_defaults(func=module.cmd)

    fit = sub.add_parser("fit", help="fit Err = E + A n^-alpha + B L^-beta to a CSV of runs",
                         description="Fit the storage scaling law to a CSV with columns n, L (bytes "
                                     "per image; or mean_bytes), an error metric in (0, 1] and "
                                     "optionally seed; print parameters with bootstrap intervals "
                                     "and the optimal (n, L) for each budget. Both forms (with and "
                                     "without the floor E) are fitted and the one with the lower "
                                     "BIC is kept unless --with-floor or --no-floor forces one. Bad "
                                     "input (a flat error column too): one line on stderr, exit 2 "
                                     "(--debug: traceback); no convergence, or a fitted law with no "
                                     "optimum for --budget (alpha, beta, A or B near 0): exit 3.")
    fit.add_argument("csv", help="CSV file, one row per training run")
    fit.add_argument("--budget", action="append", type=float, metavar="BYTES",
                     help="storage budget in bytes (repeatable), e.g. 48.48e6")
    fit.add_argument("--metric", default="error", help="error column to fit (default: error)")
    fit.add_argument("--one-minus", action="store_true",
                     help="the metric column is an accuracy/F1: fit 1 - metric")
    fit.add_argument("--n-col", default="n", help="column with the number of images (default: n)")
    fit.add_argument("--L-col", default=None, help="column with bytes per image (default: L, else mean_bytes)")
    form = fit.add_mutually_exclusive_group()
    form.add_argument("--with-floor", dest="floor", action="store_const", const="floor",
                      help="force the form with the irreducible error E (default: fit both forms "
                           "and keep the one with the lower BIC)")
    form.add_argument("--no-floor", dest="floor", action="store_const", const="no-floor",
                      help="force the form without E (the paper's Food-101 form)")
    fit.add_argument("--method", choices=("robust", "paper"), default="robust",
                     help="robust: Huber on log error, L-BFGS multi-start (default); "
                          "paper: the authors' linear-space curve_fit")
    fit.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                     help="bootstrap resamples for intervals (0 = none; default 1000)")
    fit.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    fit.add_argument("--n-max", type=float, default=None, help="pool size: cap n* at this many images (in the bootstrap intervals too)")
    fit.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    fit.add_argument("--save-law", default=None, metavar="FILE",
                     help="save the chosen fit, its fitted ranges and runs as a law file (JSON) for "
                          "storage-scaling plan --law FILE")
    fit.add_argument(DEBUG_FLAG, action="store_true", help="show the traceback of an input error")
    fit.set_defaults(func=cmd_fit, floor=None)

    from .compress.compression_tables import add_tables_parser  # `storage-scaling tables`: chapter 1's tables

    add_tables_parser(sub)

    from . import results_integrity

    checks = sub.add_parser("results", help="check the results tables against their row schema, or repair them",
                            description=results_integrity.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    results_integrity.add_arguments(checks)
    checks.set_defaults(func=results_integrity.cmd)

    from .experiments import command as run_command

    run = sub.add_parser("run", help="run (or resume) an experiment from its spec file",
                         description="Run (or resume) a training experiment: its spec file says every knob of "
                                     "every run; rows are appended to results/<file>_<model>.csv as runs finish.",
                         epilog=run_command.EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_command.add_arguments(run)
    run.set_defaults(func=run_command.run)

    from .experiments import scenes

    scene_parser = sub.add_parser("scenes", help="predict chapter 11's scenes with the grid's kept segmenters "
                                                 "(after run grid)",
                                  description=scenes.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scenes.add_arguments(scene_parser)
    scene_parser.set_defaults(func=scenes.cmd)

    from . import book

    book_parser = sub.add_parser("book", help="run the notebooks with papermill and build the book",
                                 description=book.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    book.add_arguments(book_parser)
    book_parser.set_defaults(func=book.cmd)

    from . import gpu_session

    gpu = sub.add_parser("gpu", help="prepare, rehearse and run a time-boxed session on a borrowed GPU host",
                         description=gpu_session.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gpu_session.add_arguments(gpu)
    gpu.set_defaults(func=gpu_session.dispatch)
    plain_help(parser)
    return parser


_ROLE = re.compile(r":(?:func|mod|class|meth|data|attr|exc|obj|ref|doc|envvar|term|py:\w+):"
                   r"`~?\.*([^`<]+?)\s*(?:<[^`]*>)?`")


_EMPHASIS = re.compile(r"(?<![\w*])(\*\*|\*)(\S(?:[^*\n]*\S)?)\1(?![\w*])")


def plain(text: str | None) -> str | None:
    """A docstring as plain help text: reST roles become their target (:func:`law.fit` -> law.fit),
    double backquotes and emphasis stars go, and a literal block's ``::`` becomes one colon."""
    if not text:
        return text
    text = _ROLE.sub(lambda m: m.group(1), text)
    text = text.replace("``", "")
    text = _EMPHASIS.sub(lambda m: m.group(2), text)
    return re.sub(r"(?<=\S)::(?=\s*$)", ":", text, flags=re.M)


def plain_help(parser: argparse.ArgumentParser) -> None:
    """:func:`plain` on every description, epilog and option help of ``parser`` and its subcommands."""
    parser.description, parser.epilog = plain(parser.description), plain(parser.epilog)
    for action in parser._actions:
        action.help = plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain(choice.help)
            for sub in action.choices.values():
                plain_help(sub)


# values that may start with "-" (then refused by their own checks)
VALUE_OPTIONS = ("--budget", "--max-pixels", "--worker-memory", "--shard-size", "--max-side", "--precision")


def join_negative_values(argv: list[str]) -> list[str]:
    """``--budget -5MB`` as ``--budget=-5MB``: argparse takes a value starting with "-" for an option
    ("expected one argument"); joined, it reaches the size check, which says what is wrong."""
    out, k = [], 0
    while k < len(argv):
        arg = argv[k]
        nxt = argv[k + 1] if k + 1 < len(argv) else ""
        if arg in VALUE_OPTIONS and len(nxt) > 1 and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] == "."):
            out.append(f"{arg}={nxt}")
            k += 2
            continue
        out.append(arg)
        k += 1
    return out


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors as one line (a ValueError for :func:`errors.run_main`), not a usage
    block; ``--help`` still prints the full help."""

    def error(self, message):
        raise ValueError(f"{message}; see {self.prog} --help")


def _main(argv: list[str]) -> int:
    from .law import ConvergenceError

    args = build_parser().parse_args(join_negative_values(list(argv)))
    try:
        return args.func(args)
    except ConvergenceError as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG} {args.command}: fit did not converge: {message}", file=sys.stderr)
        return 3



def main(argv=None) -> int:
    """Entry point: bad input is one line on stderr and exit status 2 (the traceback with
    ``--debug``); work that fails (a notebook, a compression over its budget) exits with 1; a fit
    that does not converge exits with status 3."""
    from .book import BookBuildFailed, NotebookFailed
    from .practice import Failed

    return run_main(_main, argv, PROG, failures=(NotebookFailed, BookBuildFailed, Failed))


if __name__ == "__main__":
    raise SystemExit(main())
