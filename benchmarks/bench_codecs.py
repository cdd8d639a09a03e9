"""Encode and decode throughput per codec and setting, single-threaded and on all cores.

    .venv/bin/python benchmarks/bench_codecs.py                  # default sizes (~4-6 min on 2 cores)
    .venv/bin/python benchmarks/bench_codecs.py --quick          # a smaller run (~1 min)
    .venv/bin/python benchmarks/bench_codecs.py --n-small 4000 --n-large 60

Images: Food-101 64 px (a class-balanced sample of the train split) and the full-size Food-101
originals (up to 512 px). Each encoder runs with one thread per image; "parallel" runs one image
per worker on all cores, with worker processes (``codecs.encode_many``'s default) and with
threads, and prints the speed-up over the serial run. Bytes are checked identical across the
three ways of running. Timings are wall clock of one pass after a warm-up (worker start-up not
included), best of ``--repeat`` runs; on a shared machine, run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from storage_scaling import data, provenance

from storage_scaling.compress import codecs

PLAN = [("jxl", 1.0), ("jxl", 4.0), ("jxl", 10.0), ("jpeg", 75), ("webp", 75), ("avif", 60), ("jxl-transcode", None)]


REPEAT = 3


def timed(fn):
    """Best of REPEAT wall-clock runs (the least disturbed one on a shared machine) and the output."""
    best, out = float("inf"), None
    for _ in range(REPEAT):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench(images: data.ImageSet, pixels: list[np.ndarray], plan, workers: int, backends) -> list[dict]:
    megapixels = sum(p.shape[0] * p.shape[1] for p in pixels) / 1e6
    rows = []
    for codec, setting in plan:
        source = images if codec == "jxl-transcode" else pixels
        label = f"{codec}" + (f" {setting:g}" if setting is not None else "")
        # warm-up: start the kept worker pool and touch the code paths
        codecs.encode_many(source[:workers * 2] if codec != "jxl-transcode" else images.subset(range(workers * 2)),
                           codec, setting, workers=workers, progress=False)
        t_serial, ref = timed(lambda: codecs.encode_many(source, codec, setting, backend="serial", progress=False))
        row = {"set": images.dataset, "codec": label, "n": len(pixels), "mean_bytes": np.mean([len(b) for b in ref]),
               "enc_img_s_1": len(pixels) / t_serial, "enc_mp_s_1": megapixels / t_serial}
        for backend in backends:
            t_par, out = timed(lambda: codecs.encode_many(source, codec, setting, workers=workers,
                                                          backend=backend, progress=False))
            if out != ref:
                raise AssertionError(f"{label}: {backend} bytes differ from serial bytes")
            row[f"enc_img_s_{backend}"] = len(pixels) / t_par
            row[f"enc_speedup_{backend}"] = t_serial / t_par
        dec_codec = "jxl" if codec == "jxl-transcode" else codec
        t_dec1, _ = timed(lambda: codecs.decode_many(ref, dec_codec, backend="serial", progress=False))
        row["dec_img_s_1"] = len(pixels) / t_dec1
        row["dec_mp_s_1"] = megapixels / t_dec1
        for backend in backends:
            t_dec, _ = timed(lambda: codecs.decode_many(ref, dec_codec, workers=workers, backend=backend,
                                                        progress=False))
            row[f"dec_img_s_{backend}"] = len(pixels) / t_dec
            row[f"dec_speedup_{backend}"] = t_dec1 / t_dec
        rows.append(row)
        print(format_row(row, backends), flush=True)
    return rows


def header(backends) -> str:
    cols = ["set", "codec", "n", "B/img", "enc img/s 1c", "enc MP/s 1c"]
    cols += [f"enc x ({b[:4]})" for b in backends]
    cols += ["dec img/s 1c", "dec MP/s 1c"] + [f"dec x ({b[:4]})" for b in backends]
    return " | ".join(f"{c:>13}" for c in cols)


def format_row(r, backends) -> str:
    vals = [r["set"][:13], r["codec"], f"{r['n']}", f"{r['mean_bytes']:,.0f}", f"{r['enc_img_s_1']:,.0f}",
            f"{r['enc_mp_s_1']:.2f}"]
    vals += [f"{r[f'enc_speedup_{b}']:.2f}" for b in backends]
    vals += [f"{r['dec_img_s_1']:,.0f}", f"{r['dec_mp_s_1']:.2f}"]
    vals += [f"{r[f'dec_speedup_{b}']:.2f}" for b in backends]
    return " | ".join(f"{v:>13}" for v in vals)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-small", type=int, default=1000, help="Food-101 64 px images (default 1000)")
    parser.add_argument("--n-large", type=int, default=24, help="full-size originals (default 24, at most 300)")
    parser.add_argument("--workers", type=int, default=None, help="parallel workers (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="small run: 600 + 12 images, JPEG XL only")
    parser.add_argument("--backends", default="process,thread", help="parallel backends to compare")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell; the best is kept (default 3)")
    args = parser.parse_args(argv)
    global REPEAT
    REPEAT = max(1, args.repeat)
    workers = args.workers or codecs.default_workers()
    backends = [b for b in args.backends.split(",") if b]
    plan = PLAN
    if args.quick:
        args.n_small, args.n_large = 600, 12
        plan = [("jxl", 4.0), ("jxl", 10.0)]
    small = data.load("food101-64px", "train")
    small = small.subset(data.nested_subset(small.labels, args.n_small, seed=0))
    large = data.load("food101-originals", "sample")
    large = large.subset(data.nested_subset(large.labels, min(args.n_large, len(large)), seed=0))
    versions = codecs.versions()
    print(f"# {provenance.device()}, {workers} workers, load average {os.getloadavg()[0]:.2f} at start; "
          f"{versions['jxl']}, {versions['jpeg']}, {versions['webp']}, {versions['avif']}, "
          f"imagecodecs {versions['imagecodecs']}; JPEG XL effort {codecs.DEFAULT_EFFORT}, "
          f"AVIF speed {codecs.AVIF_SPEED}, WebP method {codecs.WEBP_METHOD}")
    print("# x (proc) / x (thre): speed-up of all cores over one core, with processes / threads")
    print(header(backends))
    rows = []
    for images in (small, large):
        pixels = list(images.decode())
        rows += bench(images, pixels, plan, workers, backends)
    target = [r for r in rows if r["codec"] in ("jxl 4", "jxl 1", "jxl 10")]
    if target and "process" in backends:
        best = min(r["enc_speedup_process"] for r in target)
        print(f"# JPEG XL effort 7 encoding, processes: speed-up {best:.2f}x at worst over "
              f"{len(target)} (set, distance) cells on {workers} workers (target >= 1.8x on 2 cores); "
              f"load average {os.getloadavg()[0]:.2f} at the end")
    codecs.shutdown_workers()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
