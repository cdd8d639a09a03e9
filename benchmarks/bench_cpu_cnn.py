"""Training images/s of the CPU recipe (``cnn_cpu``) by precision, memory layout and compilation,
and the time it takes to reach 85 % CIFAR-10 test accuracy.

    .venv/bin/python benchmarks/bench_cpu_cnn.py                         # the throughput table (about 3 min)
    .venv/bin/python benchmarks/bench_cpu_cnn.py --no-compile --steps 40  # quicker, without torch.compile
    .venv/bin/python benchmarks/bench_cpu_cnn.py --accuracy 260 520       # + whole-pool runs (needs ../shared/data)

Throughput: the recipe trains ``--steps`` steps on random pixels (speed does not depend on the
content) in float32 and bfloat16 autocast, NCHW and channels-last, eager and ``torch.compile``
(its compile time reported apart, after one untimed warm-up run). Every row prints images/s and
the ratio to float32 / NCHW / eager measured in the same run, with the load average: on a shared
machine other jobs take cores and the ratios with them. Short runs undercount (a few steps time
the warm-up): keep ``--steps`` at 40 or more.

Accuracy (``--accuracy STEPS ...``): the recipe as configured trains on the paper pool of
CIFAR-10 (40,000 stored JPEGs) for each step budget and is scored on the test set; printed:
seconds, images/s and test accuracy per budget, and the first budget that reaches 85 %.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import time

import numpy as np


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def throughput(steps: int, compile_too: bool, threads: int) -> None:
    import torch

    from storage_scaling.learn import train

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (8192, 32, 32, 3), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, 8192))
    default = train.recipe("cnn_cpu", steps=steps)
    default_precision = train.autocast_precision(torch.device("cpu"), default)  # "auto" resolved here
    precisions = [p for p in ("fp32", "bf16") if train.cpu_autocast_problem(p) is None]
    print(f"cnn_cpu, batch {default.batch_size}, {steps} steps, {threads} threads; load average before {load_average()}")
    print(f"{'precision':10}{'layout':15}{'compile':9}{'images/s':>10}{'ratio':>8}   note")
    reference = None
    for precision, channels_last, compiled in itertools.product(precisions, (False, True),
                                                                (False, True) if compile_too else (False,)):
        config = train.recipe("cnn_cpu", steps=steps, cpu_precision=precision, channels_last=channels_last,
                              compile=compiled, threads=threads)
        note = ""
        if compiled:  # the first run pays for compilation; time a second one
            start = time.perf_counter()
            train.train(x, y, config=dataclasses.replace(config, steps=2), device="cpu")
            note = f"compiled in {time.perf_counter() - start:.0f} s"
        result = train.train(x, y, config=config, device="cpu")
        reference = reference or result.images_per_second
        if (precision, channels_last, compiled) == (default_precision, default.channels_last, default.compile):
            note = (note + "; " if note else "") + "the recipe's default"
        layout = "channels-last" if channels_last else "NCHW"
        print(f"{precision:10}{layout:15}{'yes' if compiled else 'no':9}{result.images_per_second:10.0f}"
              f"{result.images_per_second / reference:7.2f}x   {note}", flush=True)
    missing = sorted({"fp32", "bf16"} - set(precisions))
    if missing:
        print(f"skipped (no oneDNN support on this CPU): {missing}")
    print(f"load average after {load_average()}")


def accuracy(budgets: list[int], threads: int, target: float = 0.85) -> None:
    from storage_scaling import data
    from storage_scaling.learn import train

    pool = data.pool("cifar10-jpg")
    test = data.eval_set("cifar10-jpg")
    x, y = np.asarray(pool.decode()), pool.labels
    xt, yt = np.asarray(test.decode()), test.labels
    print(f"\nrecipe on the paper pool ({len(y):,} images), scored on the test set ({len(yt):,})")
    print(f"{'steps':>6}{'seconds':>9}{'images/s':>10}{'accuracy':>10}")
    reached = None
    for steps in budgets:
        r = train.train(x, y, xt, yt, train.recipe("cnn_cpu", steps=steps, threads=threads), seed=0, device="cpu")
        print(f"{steps:6d}{r.train_seconds:9.1f}{r.images_per_second:10.0f}{r.accuracy:10.2%}", flush=True)
        if reached is None and r.accuracy >= target:
            reached = (steps, r.train_seconds)
    print(f"time to {target:.0%}: " + (f"{reached[1]:.0f} s ({reached[0]} steps)" if reached
                                        else f"not reached with {budgets} steps"))


def main(argv=None) -> int:
    from storage_scaling import threads as thread_limits

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="steps per throughput run (default 60)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--threads", type=int, default=min(2, thread_limits.cores()))
    parser.add_argument("--accuracy", type=int, nargs="*", metavar="STEPS",
                        help="also train on the whole CIFAR-10 pool for these step budgets")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be positive, got {args.steps}")
    with thread_limits.limit(torch=args.threads):
        throughput(args.steps, not args.no_compile, args.threads)
        if args.accuracy:
            accuracy(args.accuracy, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
