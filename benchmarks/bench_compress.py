"""Images per second of ``storage-scaling compress``: one process, every local core, a Dask cluster.

    .venv/bin/python benchmarks/bench_compress.py                 # 48 photo crops of 384x288, d = 4
    .venv/bin/python benchmarks/bench_compress.py --images 96 --size 512 384 --distance 2 --repeat 2

A folder of ``--images`` JPEG crops of scikit-image's bundled photos is written to a temporary
directory; ``compress`` then writes it three ways into fresh output folders: in this process
(``--processes 1``), on every local core (``--processes N``), and on a local Dask cluster of
``--dask-workers`` single-threaded workers. Worker processes and clusters are started and warmed
up (one untimed job: they import the codecs) before the clock, as a long job would see them.
The clock covers the whole job: listing, reading, encoding, verifying every output by decoding
it, writing files and manifest. The outputs must be byte-identical across the three. Printed:
images/s of each and the ratios to one process (the goal on 2 cores: >= 1.8x), with the load
average before and after, because on a shared machine other jobs take cores and the ratios
with them: read them beside the load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def make_folder(root: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` JPEG crops (quality 90) of the bundled photos, shifted so no two are equal."""
    import skimage.data
    from PIL import Image

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    w, h = size
    rng = np.random.default_rng(0)
    for k in range(count):
        photo = Image.fromarray(photos[k % len(photos)]).resize((max(w, 512) + 64, max(h, 384) + 64))
        x, y = rng.integers(0, 64, 2)
        folder = root / f"class{k % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        photo.crop((int(x), int(y), int(x) + w, int(y) + h)).save(folder / f"{k:04d}.jpg", quality=90)
    return root


def outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.jxl"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, nargs=2, default=(384, 288), metavar=("W", "H"))
    parser.add_argument("--distance", type=float, default=4.0)
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs of each way")
    args = parser.parse_args()

    from storage_scaling import provenance
    from storage_scaling.compress import codecs
    from storage_scaling.practice import cluster, compress_folder as cf

    cores = codecs.default_workers()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        tmp = Path(tmp)
        folder = make_folder(tmp / "images", args.images, tuple(args.size))
        opts = cf.Options(distance=args.distance)

        def timed(label, pool):
            best = float("inf")
            for r in range(args.repeat):
                out = tmp / f"{label}-{r}"
                start = time.perf_counter()
                summary = cf.run(folder, out, opts, pool=pool, progress=False)
                best = min(best, time.perf_counter() - start)
                if summary.ok != args.images:
                    raise AssertionError(f"{label}: {summary.ok} of {args.images} images written")
            return best, outputs(out)

        results = {}
        with cluster.open_pool(processes=1) as pool:
            results["1 process"] = timed("serial", pool)
        with cluster.open_pool(processes=cores) as pool:
            cf.run(folder, tmp / "warm", opts, pool=pool, progress=False)  # start the kept worker processes
            results[f"{cores} processes"] = timed("processes", pool)
        with cluster.open_pool(workers=args.dask_workers) as pool:
            cf.run(folder, tmp / "warm-dask", opts, pool=pool, progress=False)  # workers import the codecs
            results[f"Dask, {args.dask_workers} workers"] = timed("dask", pool)
    load_after = os.getloadavg()
    reference = results["1 process"][1]
    for label, (_, out) in results.items():
        if out != reference:
            raise AssertionError(f"{label}: the outputs differ from one process's")
    base = args.images / results["1 process"][0]
    print(f"compress: {args.images} JPEG crops of {args.size[0]}x{args.size[1]} at d = {args.distance:g}, effort "
          f"{codecs.DEFAULT_EFFORT}, outputs verified and byte-identical across the three ways")
    print(f"machine: {provenance.device()}, {cores} usable cores; load average before "
          f"{', '.join(f'{x:.2f}' for x in load_before)}, after {', '.join(f'{x:.2f}' for x in load_after)} "
          "(1, 5, 15 min): a load above the core count means other jobs shared the cores")
    print(f"{'way':<22}{'seconds':>10}{'images/s':>11}{'ratio':>8}")
    for label, (seconds, _) in results.items():
        rate = args.images / seconds
        print(f"{label:<22}{seconds:>10.2f}{rate:>11.2f}{rate / base:>7.2f}x")


if __name__ == "__main__":
    main()
