"""Encode and decode images with imagecodecs, one image or a whole dataset at a time.

Codecs and their knob (``setting``):

=================  ===========================================  ==============================
codec              setting                                      notes
=================  ===========================================  ==============================
``"jxl"``          Butteraugli distance d in [0, 25]            effort 1-10 (default 7, the
                                                                paper's). ``d = 0`` means TRUE
                                                                lossless (``lossless=True``):
                                                                libjxl's ``distance=0`` alone is
                                                                not lossless.
``"jxl-transcode"`` none (lossless JPEG -> JPEG XL)             input: the JPEG *file*; the
                                                                paper's "original format" size
                                                                for JPEG sources.
``"jpeg"``         quality 1-100 (libjpeg-turbo)                4:2:0, optimised Huffman tables
``"webp"``         quality 0-100 (libwebp, ``lossless=False``)  method 4 (libwebp default)
``"avif"``         quality 0-100 (libavif, aom)                 speed 6 (imagecodecs' default,
                                                                speed 0, takes ~8 s per 512 px)
=================  ===========================================  ==============================

Every encoder runs single-threaded (``numthreads=1``) so that one image always gives the same
bytes; parallelism comes from encoding many images at once (:func:`encode_many`), which uses
worker processes by default. ``benchmarks/bench_codecs.py`` compares processes and threads:
imagecodecs releases the GIL inside the codecs, so threads help too, but on two cores JPEG XL
effort 7 gets about 2x from processes and 1.7-2x from threads. Worker processes raise glibc's
malloc thresholds (:func:`tune_malloc`): without that, a fresh process returns libjxl's buffers
to the kernel after every image and spends a third of its time in page faults.

Bad input is refused before any work starts with a ``ValueError`` naming the parameter or the
image (id and dataset): unknown codec, a distance outside [0, 25], a quality outside its range, an
array that is not uint8 RGB, or a stored file that is not a complete JPEG/PNG (a truncated JPEG
still *decodes* in libjpeg-turbo, with grey rows, so completeness is checked explicitly).

The module also does the "original format" accounting (:func:`jpeg_header_accounting`): what a
JPEG costs without the header segments (quantisation and Huffman tables, frame and scan headers)
that every file of a dataset repeats.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Sequence

import numpy as np

CODECS = ("jxl", "jxl-transcode", "jpeg", "webp", "avif")
DISTANCE_RANGE = (0.0, 25.0)
EFFORT_RANGE = (1, 10)
QUALITY_RANGE = {"jpeg": (1, 100), "webp": (0, 100), "avif": (0, 100)}
WEBP_METHOD = 4
AVIF_SPEED = 6
JPEG_SUBSAMPLING = "420"
DEFAULT_EFFORT = 7
STUDY_DISTANCES = (0.5, 15.0)  # the distances the study spans (the paper's grid: 1-15); the codec accepts DISTANCE_RANGE
DEFAULT_SETTING = {"jxl": 1.0, "jpeg": 75, "webp": 75, "avif": 60}  # used when setting=None

# Encoder settings written into every table, so a reader knows what produced the bytes.
ENCODER_SETTINGS = {
    "jxl": "libjxl via imagecodecs, effort 7 unless stated, 1 thread per image, no container",
    "jxl-transcode": "libjxl jpegxl_encode_jpeg (lossless, with JPEG reconstruction box), 1 thread",
    "jpeg": f"libjpeg-turbo, subsampling {JPEG_SUBSAMPLING}, optimised Huffman, 1 thread",
    "webp": f"libwebp lossy (lossless=False), method {WEBP_METHOD}, 1 thread",
    "avif": f"libavif, speed {AVIF_SPEED}, 8 bit, 1 thread",
}


def versions() -> dict[str, str]:
    """Library versions behind each codec (for tables and the book)."""
    import imagecodecs

    return {
        "imagecodecs": imagecodecs.__version__,
        "jxl": imagecodecs.jpegxl_version(),
        "jpeg": imagecodecs.jpeg8_version(),
        "webp": imagecodecs.webp_version(),
        "avif": imagecodecs.avif_version(),
    }


# ---------------------------------------------------------------------------------------------
# Validation (cheap, before any work)


def _where(image_id, dataset) -> str:
    if image_id is None and dataset is None:
        return "the image"
    return f"image {image_id!r} of dataset {dataset!r}"


def check_codec(codec: str, allowed: Sequence[str] = CODECS) -> str:
    if codec not in allowed:
        raise ValueError(f"unknown codec {codec!r}; choose one of {list(allowed)}")
    return codec


def check_effort(effort) -> int:
    if isinstance(effort, bool) or not float(effort).is_integer() or not (
            EFFORT_RANGE[0] <= effort <= EFFORT_RANGE[1]):
        raise ValueError(f"effort must be an integer in [{EFFORT_RANGE[0]}, {EFFORT_RANGE[1]}] "
                         f"(libjxl effort; 7 is the paper's and libjxl's default), got {effort!r}")
    return int(effort)


def check_settings(codec: str, setting, n: int | None = None) -> np.ndarray | None:
    """Validate a scalar or per-image setting; returns float64 array of length n (or None).

    For ``"jxl"`` the setting is the Butteraugli distance in [0, 25]; for ``"jpeg"``, ``"webp"``
    and ``"avif"`` a quality in the codec's range; ``"jxl-transcode"`` takes no setting (None).
    ``None`` for a lossy codec means its default (``DEFAULT_SETTING``: JPEG XL distance 1).
    """
    check_codec(codec, CODECS + ("original",))
    if codec in ("jxl-transcode", "original"):
        if setting is not None and not (np.ndim(setting) == 0 and setting == 0):
            raise ValueError(f"codec {codec!r} takes no setting (it is lossless); pass setting=None")
        return None
    name = "distance" if codec == "jxl" else "quality"
    lo, hi = DISTANCE_RANGE if codec == "jxl" else QUALITY_RANGE[codec]
    if setting is None:
        setting = DEFAULT_SETTING[codec]
    try:
        values = np.asarray(setting, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number or an array of numbers, got {setting!r}") from exc
    if values.ndim > 1:
        raise ValueError(f"{name} must be a scalar or a 1-D per-image array, got shape {values.shape}")
    if n is not None:
        if values.ndim == 1 and len(values) != n:
            raise ValueError(f"per-image {name} array has {len(values)} entries but there are {n} images")
        values = np.broadcast_to(values, (n,)).astype(np.float64)
    bad = ~np.isfinite(values) | (values < lo) | (values > hi)
    if np.any(bad):
        first = float(np.atleast_1d(values)[np.atleast_1d(bad)][0])
        raise ValueError(f"{name} {first:g} is outside [{lo}, {hi}] for codec {codec!r}"
                         + (f" ({int(np.sum(bad))} of {np.size(values)} per-image values)" if np.size(values) > 1 else ""))
    return np.atleast_1d(values)


def check_image(image, image_id=None, dataset=None) -> np.ndarray:
    """An image must be a non-empty uint8 array of shape (H, W, 3)."""
    where = _where(image_id, dataset)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{where} is a {type(image).__name__}, not a numpy array; decode it first")
    if image.dtype != np.uint8:
        raise ValueError(f"{where} has dtype {image.dtype}; convert to uint8 (0-255) RGB first")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{where} has shape {image.shape}; expected (H, W, 3) RGB "
                         "(convert grey or RGBA images to RGB first)")
    return image


def check_source(data: bytes, image_id=None, dataset=None) -> str:
    """A stored file must be a complete JPEG (SOI ... EOI) or PNG (signature ... IEND); returns kind."""
    where = _where(image_id, dataset)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"{where} is a {type(data).__name__}, not encoded file bytes")
    data = bytes(data)
    if data[:2] == b"\xff\xd8":
        if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
            raise ValueError(f"{where} is a truncated or corrupt JPEG (no end-of-image marker after "
                             f"{len(data)} bytes); replace the file")
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-12:]:
            raise ValueError(f"{where} is a truncated or corrupt PNG (no IEND chunk); replace the file")
        return "png"
    raise ValueError(f"{where} is neither a JPEG nor a PNG file (starts with {data[:4]!r}); "
                     "the stored file is corrupt")


# ---------------------------------------------------------------------------------------------
# One image


def encode(image, codec: str = "jxl", setting=None, *, effort: int = DEFAULT_EFFORT,
           image_id=None, dataset=None) -> bytes:
    """Encode one uint8 RGB image (or, for ``"jxl-transcode"``, one JPEG file) and return the bytes.

    ``setting`` is the codec's knob (see the module table); ``effort`` applies to JPEG XL only.
    """
    check_codec(codec)
    setting = check_settings(codec, setting)
    if codec == "jxl":
        check_effort(effort)
    if codec == "jxl-transcode":
        if check_source(image, image_id, dataset) != "jpeg":
            raise ValueError(f"{_where(image_id, dataset)} is not a JPEG; jxl-transcode needs JPEG files")
        return _encode_unchecked(bytes(image), codec, 0.0, effort)
    check_image(image, image_id, dataset)
    return _encode_unchecked(image, codec, float(setting[0]), effort)


def _encode_unchecked(image, codec: str, setting: float, effort: int) -> bytes:
    import imagecodecs

    if codec == "jxl":
        if setting == 0:
            return bytes(imagecodecs.jpegxl_encode(image, lossless=True, effort=effort, numthreads=1))
        return bytes(imagecodecs.jpegxl_encode(image, distance=setting, effort=effort, numthreads=1))
    if codec == "jxl-transcode":
        return bytes(imagecodecs.jpegxl_encode_jpeg(image, numthreads=1))
    if codec == "jpeg":
        return bytes(imagecodecs.jpeg8_encode(image, level=int(round(setting)),
                                              subsampling=JPEG_SUBSAMPLING, optimize=True))
    if codec == "webp":
        return bytes(imagecodecs.webp_encode(image, level=setting, lossless=False,
                                             method=WEBP_METHOD, numthreads=1))
    if codec == "avif":
        return bytes(imagecodecs.avif_encode(image, level=int(round(setting)), speed=AVIF_SPEED,
                                             numthreads=1))
    raise AssertionError(codec)


def sniff(bitstream: bytes) -> str:
    """The format of an encoded file from its first bytes: jxl, jpeg, png, webp or avif."""
    head = bytes(bitstream[:32])
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "jxl"
    if head[:2] == b"\xff\xd8":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and b"avi" in head[8:32]:
        return "avif"
    raise ValueError(f"unrecognised bitstream (starts with {head[:8]!r})")


def _imagecodecs():
    """imagecodecs, or None on a lean GPU host without it (Pillow then reads JPEG and PNG)."""
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs


def _decode_pixels(bitstream: bytes, kind: str) -> np.ndarray:
    ic = _imagecodecs()
    if ic is None:
        import io

        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(bytes(bitstream))).convert("RGB"))
    if kind in ("jxl", "jxl-transcode"):
        return ic.jpegxl_decode(bitstream, numthreads=1)
    if kind == "jpeg":
        return ic.jpeg8_decode(bitstream)
    if kind == "png":
        return ic.png_decode(bitstream)
    if kind == "webp":
        return ic.webp_decode(bitstream)
    return ic.avif_decode(bitstream, numthreads=1)


def decode(bitstream: bytes, codec: str | None = None, *, image_id=None, dataset=None) -> np.ndarray:
    """Decode one bitstream or stored file to uint8 RGB (H, W, 3); the codec is detected when not given.

    The package's one decoder: stored JPEG/PNG files (``data.ImageSet.decode``, the ``original``
    stores) and codec bitstreams all come through here. imagecodecs decodes; on a lean GPU host
    without it, Pillow reads JPEG and PNG (the same libjpeg-turbo pixels on the data packs) and
    any other format is refused with the package to install. A JPEG XL transcode decodes to
    pixels (libjxl's own JPEG reconstruction of the DCT coefficients; within a few grey levels of
    libjpeg-turbo's decode of the same file).
    """
    if codec is not None:
        check_codec(codec, CODECS + ("original", "png"))
    try:
        kind = codec if codec not in (None, "original") else sniff(bitstream)
        if kind not in ("jpeg", "png") and _imagecodecs() is None:
            raise ImportError(f"decoding {kind} needs imagecodecs (pip install imagecodecs); "
                              "without it only JPEG and PNG files can be read (through Pillow)")
        image = _decode_pixels(bitstream, kind)
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised naming the image
        raise ValueError(f"{_where(image_id, dataset)} could not be decoded ({exc}); "
                         "the file or bitstream is corrupt or truncated") from exc
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[-1] == 4:
        image = image[:, :, :3]
    if image.dtype != np.uint8:
        raise ValueError(f"{_where(image_id, dataset)} decoded to {image.dtype}, not 8-bit")
    return np.ascontiguousarray(image)


def decode_source(data: bytes, image_id=None, dataset=None) -> np.ndarray:
    """Decode a stored JPEG/PNG file, checking first that it is complete."""
    check_source(data, image_id, dataset)
    return decode(data, image_id=image_id, dataset=dataset)


# ---------------------------------------------------------------------------------------------
# Many images in parallel


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def parallel_map(func: Callable, tasks: list, *, workers: int | None = None, backend: str = "process",
                 progress: bool = True, desc: str = "", weights: Sequence[int] | None = None,
                 unit: str = "img") -> list:
    """``[func(t) for t in tasks]`` on ``workers`` processes or threads, in order, with a progress bar.

    ``func`` must be a module-level function (it is pickled for processes). Processes use the
    ``spawn`` start method, which is safe inside a Jupyter kernel, and are kept between calls
    (:func:`shutdown_workers` stops them); they die with this process, even one killed with
    SIGKILL (:func:`_die_with_parent`). ``weights[i]`` is how many
    items task i covers (for the progress bar). The first exception is re-raised as it is.
    """
    from tqdm import tqdm

    if backend not in ("process", "thread", "serial"):
        raise ValueError(f"backend must be 'process', 'thread' or 'serial', got {backend!r}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    weights = list(weights) if weights is not None else [1] * len(tasks)
    bar = tqdm(total=int(sum(weights)), desc=desc, unit=unit, disable=not progress,
               mininterval=2.0, smoothing=0.05)
    results: list = [None] * len(tasks)
    try:
        if backend == "serial" or workers == 1 or len(tasks) <= 1:
            for k, task in enumerate(tasks):
                results[k] = func(task)
                bar.update(weights[k])
            return results
        if backend == "process":
            pool, owned = _process_pool(workers), False
        else:
            pool, owned = ThreadPoolExecutor(max_workers=min(workers, len(tasks))), True
        futures = {pool.submit(func, task): k for k, task in enumerate(tasks)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    k = futures[future]
                    results[k] = future.result()  # re-raises the worker's error
                    bar.update(weights[k])
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            if owned:
                pool.shutdown(wait=True, cancel_futures=True)
        return results
    finally:
        bar.close()


_PROCESS_POOLS: dict[int, ProcessPoolExecutor] = {}


def _process_pool(workers: int) -> ProcessPoolExecutor:
    """A worker-process pool kept for the life of the interpreter (spawning costs ~1 s per call)."""
    pool = _PROCESS_POOLS.get(workers)
    if pool is None or getattr(pool, "_broken", False) or getattr(pool, "_shutdown_thread", False):
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                   initializer=_init_worker, initargs=(_Spawner(),))
        _PROCESS_POOLS[workers] = pool
    return pool


def process_pool(workers: int) -> ProcessPoolExecutor:
    """The kept pool of ``workers`` spawned processes (malloc tuned for libjxl), for callers that
    stream their own tasks (``practice.cluster``) instead of :func:`parallel_map`."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return _process_pool(int(workers))


class _Spawner:
    """Who spawns a worker: this process's pid, and whether the spawning thread is the main one.

    It is the pool's ``initargs``, and ``__reduce__`` runs when a worker is spawned (the spawn
    start method pickles the initializer's arguments in the thread that starts the worker), so it
    records the process and thread that really spawn each worker -- a ``ProcessPoolExecutor``
    with ``spawn`` starts workers lazily in whichever thread calls ``submit``, not when it is made.
    """

    def __init__(self, pid: int = 0, main_thread: bool = False):
        self.pid, self.main_thread = pid, main_thread

    def __reduce__(self):
        import threading

        return _Spawner, (os.getpid(), threading.current_thread() is threading.main_thread())


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0  # how often a worker without prctl checks that its parent is alive


def _init_worker(spawner: _Spawner | None = None) -> None:
    """Set up a worker process.

    * The worker dies with the process that spawned it (:func:`_die_with_parent`), even when that
      process is killed with SIGKILL and has no chance to stop its pool.
    * Ctrl-C is left to the parent (which cancels the pending work), so a Jupyter kernel
      interrupt or shutdown does not spray KeyboardInterrupt tracebacks from every worker.
    * glibc malloc keeps freed memory instead of returning it to the kernel. In a fresh process
      the mmap threshold is 128 kB, so every libjxl encode mmaps and unmaps its buffers and
      page-faults them in again: measured here, a third of a worker's time went to the kernel
      and two workers were barely faster than one.
    """
    import signal

    if spawner is not None:
        _die_with_parent(spawner.pid, spawner.main_thread)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_malloc()


def _die_with_parent(parent_pid: int, spawned_by_main_thread: bool) -> str:
    """Make this worker exit when its parent (pid ``parent_pid``) dies; returns how.

    A pool's workers otherwise outlive a parent killed with SIGKILL (or by the OOM killer): they
    wait forever on their task queue, whose pipe they hold both ends of, ~100 MB each. Once they
    are gone, multiprocessing's resource tracker sees EOF on its pipe (the parent and the workers
    were its only writers) and exits too.

    * ``"prctl"``: Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills this process the
      moment its parent dies. The kernel's "parent" is the *thread* that spawned the worker, so
      it is used only when that was the main thread (whose end is the process's end); a worker
      spawned by another thread would be killed when that thread ends, parent alive.
    * ``"watchdog"``: elsewhere (a worker spawned by another thread; macOS and other POSIX
      systems, which have no prctl) a daemon thread checks ``os.getppid()`` every
      :data:`PARENT_POLL_S` seconds: an orphan is re-parented to init (or a subreaper), so its
      parent pid changes.
    * ``"none"``: Windows, where ``os.getppid()`` keeps the dead parent's pid; nothing is done.

    Either way a parent that died before this ran (its death signal would then never come) is
    caught by the same check at once. The check assumes a worker is a direct child of the pool's
    process, which holds for the ``spawn`` start method used here (not for ``forkserver``).
    """
    import sys

    how = "none" if os.name != "posix" else "watchdog"
    if spawned_by_main_thread and sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(int(signal.SIGKILL)),
                          ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0:
                how = "prctl"
        except (OSError, AttributeError):
            pass  # no usable libc: fall back to the watchdog
    if how == "none":
        return how
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    if how == "watchdog":
        import threading

        def watch() -> None:
            import time

            while os.getppid() == parent_pid:
                time.sleep(PARENT_POLL_S)
            os._exit(1)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    return how


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds (M_MMAP_THRESHOLD 32 MB, M_TRIM_THRESHOLD 512 MB).

    Returns False where there is no glibc (the call is then a no-op)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(-3, 32 * 1024 * 1024) == 1  # M_MMAP_THRESHOLD
        return bool(libc.mallopt(-1, 512 * 1024 * 1024) == 1 and ok)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False


def shutdown_workers() -> None:
    """Stop the kept worker processes (they are also stopped at interpreter exit)."""
    while _PROCESS_POOLS:
        _, pool = _PROCESS_POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(n: int, workers: int, size: int | None = None, cost: float = 1.0) -> list[np.ndarray]:
    if size is None:  # a few chunks per worker for balance and progress; larger for cheap items
        size = int(np.clip(n // max(1, 8 * workers), 1, max(1, int(512 / cost))))
    return [np.arange(i, min(n, i + size)) for i in range(0, n, size)]


def _as_items(images, ids=None, dataset=None):
    """(items, kind, ids, dataset) from an ImageSet, a list of stored files or of uint8 arrays."""
    if hasattr(images, "encoded") and hasattr(images, "ids"):  # data.ImageSet
        return list(images.encoded), "source", list(images.ids), images.dataset
    items = list(images)
    ids = list(ids) if ids is not None else [str(i) for i in range(len(items))]
    if len(ids) != len(items):
        raise ValueError(f"ids has {len(ids)} entries but there are {len(items)} images")
    kind = "source" if items and isinstance(items[0], (bytes, bytearray, memoryview)) else "pixels"
    return items, kind, ids, dataset


def _validate_items(items, kind, ids, dataset, codec):
    for item, image_id in zip(items, ids):
        if kind == "source":
            src = check_source(item, image_id, dataset)
            if codec == "jxl-transcode" and src != "jpeg":
                raise ValueError(f"{_where(image_id, dataset)} is a {src.upper()}, not a JPEG; "
                                 "jxl-transcode needs JPEG files")
        else:
            if codec == "jxl-transcode":
                raise ValueError("jxl-transcode needs the stored JPEG files (an ImageSet or a list of "
                                 "bytes), not decoded pixels")
            check_image(item, image_id, dataset)


@dataclass(frozen=True)
class _EncodeTask:
    items: list
    kind: str
    ids: list
    dataset: str | None
    codec: str
    settings: list  # one float per item, or a list of floats per item (size grid)
    effort: int
    sizes_only: bool = False


def _run_encode_task(task: _EncodeTask) -> list:
    out = []
    for item, image_id, setting in zip(task.items, task.ids, task.settings):
        if task.codec == "jxl-transcode":
            try:
                out.append(_encode_unchecked(bytes(item), "jxl-transcode", 0.0, task.effort))
            except Exception as exc:  # noqa: BLE001
                raise ValueError(f"{_where(image_id, task.dataset)} could not be transcoded to JPEG XL "
                                 f"({exc}); the JPEG is corrupt") from exc
            continue
        pixels = decode(item, image_id=image_id, dataset=task.dataset) if task.kind == "source" else item
        if task.sizes_only:
            out.append([len(_encode_unchecked(pixels, task.codec, float(s), task.effort)) for s in setting])
        else:
            out.append(_encode_unchecked(pixels, task.codec, float(setting), task.effort))
    return out


def _pixels_per_item(items, kind) -> float:
    if not items:
        return 1.0
    first = items[0]
    if kind == "pixels":
        return float(first.shape[0] * first.shape[1])
    return float(len(first)) * 8.0  # JPEG at ~1-2 bits per pixel: a rough size proxy


def encode_many(images, codec: str = "jxl", setting=None, *, effort: int = DEFAULT_EFFORT,
                workers: int | None = None, backend: str = "process", ids=None, dataset=None,
                progress: bool = True, chunk_size: int | None = None) -> list[bytes]:
    """Encode a whole dataset on all cores and return the exact bytes of every image, in order.

    ``images``: a :class:`data.ImageSet` (its stored files are decoded inside the workers), a
    list of stored JPEG/PNG files, or a list / (N, H, W, 3) array of uint8 RGB images.
    ``setting``: one value for all images or a per-image array (e.g. a distance per image).
    ``backend``: ``"process"`` (default, best speed-up), ``"thread"`` or ``"serial"``; all give
    identical bytes. All inputs are validated before any encoding starts.
    """
    check_codec(codec)
    if codec == "jxl":
        check_effort(effort)
    items, kind, ids, dataset = _as_items(images, ids, dataset)
    settings = check_settings(codec, setting, len(items))
    settings = [0.0] * len(items) if settings is None else settings.tolist()
    _validate_items(items, kind, ids, dataset, codec)
    workers = default_workers() if workers is None else workers
    cost = _pixels_per_item(items, kind) / 4096.0
    tasks = [
        _EncodeTask([items[i] for i in idx], kind, [ids[i] for i in idx], dataset, codec,
                    [settings[i] for i in idx], effort)
        for idx in _chunks(len(items), workers, chunk_size, cost)
    ]
    parts = parallel_map(_run_encode_task, tasks, workers=workers, backend=backend, progress=progress,
                         desc=f"{codec} {dataset or ''}".strip(), weights=[len(t.items) for t in tasks])
    return [b for part in parts for b in part]


def encode_sizes(images, distances, *, effort: int = DEFAULT_EFFORT, workers: int | None = None,
                 backend: str = "process", ids=None, dataset=None, progress: bool = True,
                 chunk_size: int | None = None) -> np.ndarray:
    """JPEG XL size in bytes of every image at every distance: an (N, D) int64 array.

    Each image is decoded once and encoded at all D distances; only the sizes come back.
    """
    grid = check_settings("jxl", np.asarray(distances, dtype=np.float64).ravel())
    n = len(images)
    rows = encode_sizes_at(images, [grid] * n, effort=effort, workers=workers, backend=backend, ids=ids,
                           dataset=dataset, progress=progress, chunk_size=chunk_size)
    return np.asarray(rows, dtype=np.int64).reshape(n, len(grid))


def encode_sizes_at(images, distances_per_image, *, effort: int = DEFAULT_EFFORT, workers: int | None = None,
                    backend: str = "process", ids=None, dataset=None, progress: bool = True,
                    chunk_size: int | None = None) -> list[np.ndarray]:
    """JPEG XL sizes (bytes) of each image at its own distances (``distances_per_image[k]``, a
    possibly empty list for image ``k``): one int64 array per image. A lazily filled size table
    (``store.lazy_size_table``) encodes only the entries a budget search reads."""
    check_effort(effort)
    items, kind, ids, dataset = _as_items(images, ids, dataset)
    if len(distances_per_image) != len(items):
        raise ValueError(f"distances_per_image has {len(distances_per_image)} entries for {len(items)} images")
    wanted = [np.asarray(d, dtype=np.float64).ravel() for d in distances_per_image]
    if any(len(w) for w in wanted):
        check_settings("jxl", np.concatenate(wanted))  # one check of every distance, before any encoding
    _validate_items(items, kind, ids, dataset, "jxl")
    workers = default_workers() if workers is None else workers
    cost = _pixels_per_item(items, kind) / 4096.0 * max(1.0, float(np.mean([len(w) for w in wanted] or [1])))
    tasks = [
        _EncodeTask([items[i] for i in idx], kind, [ids[i] for i in idx], dataset, "jxl",
                    [wanted[i].tolist() for i in idx], effort, sizes_only=True)
        for idx in _chunks(len(items), workers, chunk_size, cost)
    ]
    parts = parallel_map(_run_encode_task, tasks, workers=workers, backend=backend, progress=progress,
                         desc=f"size table {dataset or ''}".strip(), weights=[len(t.items) for t in tasks])
    return [np.asarray(r, dtype=np.int64) for part in parts for r in part]


@dataclass(frozen=True)
class _DecodeTask:
    bitstreams: list
    ids: list
    dataset: str | None
    codec: str | None


def _run_decode_task(task: _DecodeTask) -> list:
    return [decode(b, task.codec, image_id=i, dataset=task.dataset) for b, i in zip(task.bitstreams, task.ids)]


def decode_many(bitstreams, codec: str | None = None, *, workers: int | None = None,
                backend: str = "thread", ids=None, dataset=None, progress: bool = True,
                chunk_size: int | None = None):
    """Decode many bitstreams in parallel: an (N, H, W, 3) uint8 array when all share a size, else a list."""
    bitstreams = list(bitstreams)
    ids = list(ids) if ids is not None else [str(i) for i in range(len(bitstreams))]
    workers = default_workers() if workers is None else workers
    tasks = [_DecodeTask([bitstreams[i] for i in idx], [ids[i] for i in idx], dataset, codec)
             for idx in _chunks(len(bitstreams), workers, chunk_size)]
    parts = parallel_map(_run_decode_task, tasks, workers=workers, backend=backend, progress=progress,
                         desc=f"decode {dataset or ''}".strip(), weights=[len(t.bitstreams) for t in tasks])
    images = [im for part in parts for im in part]
    if images and all(im.shape == images[0].shape for im in images):
        return np.stack(images)
    return images


# ---------------------------------------------------------------------------------------------
# "Original format" accounting: a JPEG without the header every file repeats

_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: markers without a length field


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """Split a JPEG file into (marker, bytes) parts; entropy-coded data is marker -1.

    Marker segments keep their 0xFFxx marker and length field; SOI and EOI are parts of their own.
    Handles progressive files (several SOS scans with tables between them).
    """
    data = bytes(data)
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file (no SOI marker)")
    parts: list[tuple[int, bytes]] = [(0xD8, data[:2])]
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ValueError(f"corrupt JPEG: expected a marker at byte {i}")
        while i + 1 < n and data[i + 1] == 0xFF:  # fill bytes
            i += 1
        marker = data[i + 1]
        if marker == 0xD9:
            parts.append((0xD9, data[i:i + 2]))
            if i + 2 < n:
                parts.append((-2, data[i + 2:]))  # trailing bytes after EOI, kept as-is
            break
        if marker in _STANDALONE:
            parts.append((marker, data[i:i + 2]))
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        end = i + 2 + length
        parts.append((marker, data[i:end]))
        i = end
        if marker == 0xDA:  # entropy-coded data runs to the next real marker
            j = i
            while True:
                j = data.find(b"\xff", j)
                if j < 0 or j + 1 >= n:
                    j = n
                    break
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    j += 2 if nxt != 0xFF else 1
                    continue
                break
            parts.append((-1, data[i:j]))
            i = j
    return parts


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_shape(data: bytes) -> tuple[int, int]:
    """(height, width) of a JPEG from its frame header, without decoding."""
    for marker, seg in jpeg_segments(data):
        if marker in _SOF:
            return int.from_bytes(seg[5:7], "big"), int.from_bytes(seg[7:9], "big")
    raise ValueError("JPEG without a frame header (SOF)")


def stored_shape(data: bytes) -> tuple[int, int]:
    """(height, width) of a stored JPEG (its frame header) or PNG (its IHDR chunk), without decoding."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    return jpeg_shape(data)


@dataclass(frozen=True)
class HeaderAccounting:
    """Sizes of JPEG files once the header segments they share are stored once (a dictionary).

    ``per_image``: each file's bytes without shared segments, plus a template reference;
    ``dictionary_bytes``: the shared segments, stored once for the whole set;
    ``amortized``: ``per_image + dictionary_bytes / N`` (what each file costs in this accounting);
    ``shared_per_image``: bytes of each file that the dictionary covers (SOI/EOI included);
    ``common_prefix``: length of the byte prefix identical across all files (a cross-check).
    """

    stored: np.ndarray
    per_image: np.ndarray
    shared_per_image: np.ndarray
    dictionary_bytes: int
    n_shared_segments: int
    n_templates: int
    reference_bytes: int
    common_prefix: int

    @property
    def amortized(self) -> np.ndarray:
        return self.per_image + self.dictionary_bytes / max(1, len(self.per_image))


def jpeg_header_accounting(encoded: Sequence[bytes], min_count: int = 2) -> HeaderAccounting:
    """What each JPEG costs without the header segments that other files of the set repeat.

    The choice, explained: a JPEG's header (JFIF APP0, quantisation tables DQT, Huffman tables
    DHT, frame header SOF and scan header SOS) depends only on the encoder settings and the image
    size, so in a dataset encoded with one setting at one size it is byte-for-byte the same in
    every file (about 623 bytes at quality 75 with standard Huffman tables). Any segment whose exact
    bytes occur in at least ``min_count`` files goes into a dictionary stored once; each file then
    keeps only its own segments and its entropy-coded data, plus a reference to which dictionary
    template (sequence of shared segments) rebuilds it: ``ceil(log2(T) / 8)`` bytes for T
    templates (0 when all files share one). SOI and EOI markers are implied. This is exact and
    lossless (the file is rebuilt bit for bit), and unlike a common-prefix cut it also catches
    shared segments after a differing one (e.g. a SOF that varies with the image size).
    """
    encoded = [bytes(b) for b in encoded]
    if not encoded:
        raise ValueError("no files given")
    split = [jpeg_segments(b) for b in encoded]
    counts = Counter()
    for parts in split:
        counts.update({seg for m, seg in parts if m >= 0 and m not in (0xD8, 0xD9)})
    shared = {seg for seg, c in counts.items() if c >= min_count}
    templates = Counter()
    own = np.empty(len(encoded), dtype=np.int64)
    covered = np.empty(len(encoded), dtype=np.int64)
    for k, parts in enumerate(split):
        template = []
        own_bytes = 0
        for pos, (m, seg) in enumerate(parts):
            if m in (0xD8, 0xD9):
                continue
            if m >= 0 and seg in shared:
                template.append((pos, hashlib.sha1(seg).digest()))
            else:
                own_bytes += len(seg)
        templates[tuple(template)] += 1
        own[k] = own_bytes
        covered[k] = len(encoded[k]) - own_bytes
    n_templates = len(templates)
    ref = 0 if n_templates <= 1 else math.ceil(math.log2(n_templates) / 8)
    prefix = os.path.commonprefix(encoded) if len(encoded) > 1 else encoded[0]
    return HeaderAccounting(
        stored=np.asarray([len(b) for b in encoded], dtype=np.int64),
        per_image=own + ref,
        shared_per_image=covered,
        dictionary_bytes=int(sum(len(s) for s in shared)) + 4,  # + SOI/EOI once
        n_shared_segments=len(shared),
        n_templates=n_templates,
        reference_bytes=ref,
        common_prefix=len(prefix),
    )
