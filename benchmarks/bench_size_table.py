"""The budget schemes' size tables, whole against lazily filled, in one process (issue 30, item 2).

    python benchmarks/bench_size_table.py                              # Food-101 64 px, 1,000 images
    python benchmarks/bench_size_table.py --dataset cifar10-jpg --n 2000
    python benchmarks/bench_size_table.py --smoke                      # 60 images, proves it runs

A storage-optimal run searches one distance for its subset and a randomized run a range of
per-image distances, both on a table of every image's JPEG XL size at the 59 distances from 0.5 to
15. The whole table (``store.size_table``) encodes every entry first; the lazy one
(``store.lazy_size_table``, what the experiments use) encodes the entries the searches read. For a
nested subset of the pool this runs, each in an empty cache of its own, the searches of the full
specs (the zero-gain distance, then the randomized range and the single distance at five budgets,
1.1 to 5 times the subset's bytes at d = 15, which ask for distances from about 14 down to about
2) on both tables, checks that every answer is the same and prints encodes, seconds and the ratio. Prints the CPU model: speeds differ between
machines of the same kind.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

MULTIPLES = (1.1, 1.5, 2.13, 3.0, 5.0)  # budgets: the subset's own bytes at d = 15 times these


def cpu_model() -> str:
    from bench_ridge_head import cpu_model as model  # run from benchmarks/ or with it on the path

    return model()


def searches(sizes, grid, images, multiples=MULTIPLES) -> dict:
    """The answers of the budget searches of one run per budget on one table (plain values)."""
    from storage_scaling.compress import budget

    originals = images.stored_bytes.astype(float)
    l15 = float(budget.total_at(sizes, grid, 15.0)) / len(images)
    zero = budget.zero_gain_distance(sizes, grid, originals)
    ranks = budget.permutation_ranks(len(images), 2024)
    out = {"zero_below": zero}
    for m in multiples:
        s = m * len(images) * l15
        fit = budget.randomized_range_for_budget(sizes, grid, s, ranks, (0.5, 15.0), zero, originals)
        out[f"randomized x{m}"] = (fit.d_min, fit.d_max, fit.estimated_bytes)
        out[f"distance x{m}"] = budget.distance_for_budget(sizes, grid, s)
    return out


def timed(make, images, multiples) -> tuple[dict, int, float]:
    """(answers, encodes, seconds) of the searches on a table ``make(cache)`` in an empty cache."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        sizes, grid = make(Path(cache))
        answers = searches(sizes, grid, images, multiples)
        encodes = sizes.size if isinstance(sizes, np.ndarray) else sizes.encoded
        return answers, encodes, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="food101-64px")
    parser.add_argument("--n", type=int, default=1000, help="images: a nested subset of the paper pool (seed 0)")
    parser.add_argument("--smoke", action="store_true", help="60 images")
    args = parser.parse_args(argv)
    from storage_scaling import data
    from storage_scaling.compress import store

    n = 60 if args.smoke else args.n
    pool = data.pool(args.dataset, "paper")
    images = pool.subset(np.sort(data.nested_subset(pool.labels, n, 0)))
    print(f"CPU: {cpu_model()}; {args.dataset}, {n} images, grid of {len(store.DEFAULT_GRID)} distances")
    whole = lambda cache: store.size_table(images, cache_dir=cache, progress=False)  # noqa: E731

    def lazy(cache):
        table = store.lazy_size_table(images, cache_dir=cache, progress=False)
        return table, table.grid

    rows, answers = [], {}
    answers["whole"], encodes, seconds = timed(whole, images, MULTIPLES)
    rows.append(("whole table, every budget", encodes, seconds))
    answers["lazy"], encodes, seconds = timed(lazy, images, MULTIPLES)
    rows.append(("lazy, every budget in one cache", encodes, seconds))
    single = [timed(lazy, images, (m,)) for m in MULTIPLES]
    for m, (found, _, _) in zip(MULTIPLES, single):
        if any(found[k] != answers["whole"][k] for k in found):
            raise SystemExit(f"a lazy table answered budget x{m} otherwise than the whole table: {found}")
    rows.append(("lazy, one budget (mean)", int(np.mean([e for _, e, _ in single])),
                 float(np.mean([t for _, _, t in single]))))
    if answers["whole"] != answers["lazy"]:
        raise SystemExit(f"the answers differ:\nwhole {answers['whole']}\nlazy  {answers['lazy']}")
    print(f"{'table':34s} {'encodes':>10s} {'seconds':>9s} {'of the whole':>13s}")
    for kind, encodes, seconds in rows:
        print(f"{kind:34s} {encodes:10,d} {seconds:9.1f} {encodes / rows[0][1]:12.0%}")
    print(f"every answer the same ({len(answers['lazy'])} searches); a run of the experiments searches one budget "
          "on its subset, and the cache is shared by the runs of a dataset")


if __name__ == "__main__":
    main()
