"""A user's images as the practitioner commands see them: what is there, and 8-bit RGB pixels.

An ``IMAGES`` argument is one of

* a **folder**, read recursively (hidden files and folders are left out); every file is a
  candidate, so a stray ``README.txt`` is counted and reported as "not an image", never fatal;
* a **Parquet pack** in the book's schema (``*.parquet``: an image column that is a struct
  ``{bytes, path}`` -- ``image`` or ``img`` -- and optionally ``label``), as in ``../shared/data``;
* a **list file**: any other file, one image path or URL per line (relative paths are relative
  to the list file; blank lines and ``#`` comments are ignored). Every listed file must exist, and
  a URL must be one fsspec can open here (:mod:`.remote`): both are one error before any work.
  Outputs keep the paths relative to the deepest folder that holds every listed file
  (:meth:`Images.layout`).

Each of the three may itself be a URL (``s3://bucket/photos``, ``memory://...``): the listing and
the bytes come through fsspec, read by this process only.

:func:`open_images` lists the candidates in a stable order (sorted ids) without reading them;
:meth:`Images.read` gives one file's bytes. A folder whose files all sit one level down, in two or
more sub-folders, is *labelled* (torchvision's ``ImageFolder`` layout): the sub-folder is the class.

:func:`to_rgb8` turns any file into the uint8 (H, W, 3) array the codecs take, or raises
:class:`Unusable` with the reason. It reads with Pillow, because users' files come in every mode:
greyscale and palette images are expanded, alpha is composited over white, CMYK is converted,
16-bit samples are reduced to 8 bits, the EXIF orientation is applied and animations give their
first frame; each such change is returned as a note, so that reports can count them. (The
package's one decoder, :func:`codecs.decode`, reads the book's own 8-bit RGB stores and every
codec bitstream; it is what verifies the outputs.)

Two guards, :class:`Limits`, are checked from the file's header before any pixel is decoded: the
pixel count (``--max-pixels``, which replaces Pillow's decompression-bomb limit so that it can be
raised) and the memory an image needs to be encoded (about :data:`PEAK_BYTES_PER_PIXEL` bytes per
pixel, measured with libjxl at effort 7: a 48 MP photo peaks at 4.7 GB) against one worker's share
of memory (``--worker-memory``). An image over either is :class:`TooLarge`, a skip that names the
option that would include it.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from . import remote

PACK_IMAGE_COLUMNS = ("image", "img")  # the book's packs: food101 uses "image", cifar10 "img"
DEFAULT_MAX_PIXELS = 200_000_000  # --max-pixels: 200 MP (Pillow's own guard refuses above 179 MP)
PEAK_BYTES_PER_PIXEL = 110  # libjxl effort 7, encode + check decode: 100-114 B/px at 0.75-7 MP; 98 at 48 MP
WORKER_OVERHEAD = 150e6  # a worker process before any image: Python, numpy, Pillow, the codecs
_PILLOW_LIMIT = threading.Lock()  # Pillow's pixel limit is a module global: one opener at a time

# notes returned by to_rgb8 (what was changed to make the target 8-bit RGB)
GREY = "greyscale expanded to RGB"
ALPHA = "alpha composited over white"
CMYK = "CMYK converted to RGB"
DEEP = "16-bit samples reduced to 8 bits"
PALETTE = "palette expanded to RGB"
ROTATED = "EXIF orientation applied"
FRAMES = "first frame of an animation"
OTHER_MODE = "colour mode converted to RGB"
RESIZED = "resized to --max-side"


class Unusable(Exception):
    """A file that cannot become an 8-bit RGB image (corrupt, truncated, not an image...)."""


class TooLarge(Unusable):
    """An image over a :class:`Limits` guard: skipped, and retried by a run with a higher limit."""

    def __init__(self, message: str, width: int, height: int):
        super().__init__(message)
        self.width, self.height = int(width), int(height)


class Unreadable(str):
    """Why a file could not be read, in place of its bytes (:meth:`Images.read_many`): the worker
    reports this reason instead of decoding an empty file."""


def stored_bytes(data) -> int:
    """Bytes of a file as read (0 for an :class:`Unreadable`)."""
    return 0 if isinstance(data, Unreadable) else len(data)


def memory_needed(width: int, height: int) -> float:
    """Bytes a worker needs to encode (and check) one image of this size: a measured estimate."""
    return float(width) * float(height) * PEAK_BYTES_PER_PIXEL + WORKER_OVERHEAD


def _megapixels(pixels: float) -> str:
    return f"{pixels / 1e6:,.1f} MP" if pixels >= 1e5 else f"{pixels:,.0f} pixels"


@dataclass(frozen=True)
class Limits:
    """The guards checked on each image's header (see the module docstring); ``memory`` None:
    no memory check."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    memory: float | None = None

    def check(self, width: int, height: int) -> None:
        from .units import format_size

        pixels = width * height
        need = memory_needed(width, height)
        if pixels > self.max_pixels:
            raise TooLarge(f"{width}x{height} = {_megapixels(pixels)}, above the limit of "
                           f"{_megapixels(self.max_pixels)} (--max-pixels, a guard against decompression bombs); "
                           f"raise --max-pixels to include it (it needs about {format_size(need)} of memory "
                           "to encode)", width, height)
        if self.memory is not None and need > self.memory:
            raise TooLarge(f"{width}x{height} ({_megapixels(pixels)}) needs about {format_size(need)} of memory to "
                           f"encode, more than one worker's share, {format_size(self.memory)} (--worker-memory); "
                           "run with fewer --processes, or give --worker-memory, to include it", width, height)

    def allows(self, width: int, height: int) -> bool:
        try:
            self.check(width, height)
        except TooLarge:
            return False
        return True


@dataclass(frozen=True)
class Item:
    """One candidate image: ``id`` is stable across runs (relative path, pack path or row)."""

    id: str
    path: str | None = None  # a file on disk or a URL (folder and list inputs)
    row: int | None = None  # a row of the pack (pack inputs)
    label: int | None = None
    size: int = 0  # bytes as stored (what the user pays for today)


@dataclass
class Images:
    """The candidates of one ``IMAGES`` argument, sorted by id; nothing is read until asked."""

    kind: str  # "folder", "pack" or "list"
    root: Path | str  # a local path, or a URL
    items: list[Item]
    classes: list[str] = field(default_factory=list)  # a labelled folder or pack
    labelled: bool = False
    _pack: object = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def sizes(self) -> np.ndarray:
        return np.fromiter((it.size for it in self.items), dtype=np.int64, count=len(self.items))

    def read(self, item: Item) -> bytes:
        """The stored bytes of one candidate (an unreadable file gives :class:`Unusable`)."""
        if item.path is not None:
            try:
                if remote.is_remote(item.path):
                    return remote.read_bytes(item.path)
                return Path(item.path).read_bytes()
            except (OSError, ValueError) as exc:
                raise Unusable(f"cannot read the file ({getattr(exc, 'strerror', None) or exc})") from exc
        return bytes(self._pack_column()[item.row].as_py()["bytes"] or b"")

    def read_many(self, items) -> list:
        """The stored bytes of several candidates, an :class:`Unreadable` reason for one that cannot
        be read (the worker reports it as unusable), so a chunk of tasks never stops on one bad file."""
        out = []
        for it in items:
            try:
                out.append(self.read(it))
            except Unusable as exc:
                out.append(Unreadable(str(exc)))
        return out

    def layout(self) -> dict[str, str]:
        """Each id's relative path for outputs that mirror the input: the id itself for a folder
        or a pack; for a list, the path relative to the deepest folder holding every listed file
        (never an absolute path mirrored into the output)."""
        if self.kind != "list" or not self.items:
            return {it.id: it.id for it in self.items}
        paths = [PurePosixPath(remote.key_path(it.path)) for it in self.items]
        base = PurePosixPath(os.path.commonpath([str(p.parent) for p in paths]))
        return {it.id: p.relative_to(base).as_posix() for it, p in zip(self.items, paths)}

    def _pack_column(self):
        if self._pack is None:
            table = _read_table(self.root)
            self._pack = table.column(_pack_image_column(table.schema.names, self.root))
        return self._pack

    def digest(self) -> str:
        """A short hash of the listing (ids and stored sizes): a resumed job checks it is unchanged."""
        h = hashlib.sha1()
        for it in self.items:
            h.update(f"{it.id}\0{it.size}\0{it.label}\n".encode())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        what = {"folder": "folder", "pack": "Parquet pack", "list": "list file"}[self.kind]
        labels = f", {len(self.classes)} classes" if self.labelled else ""
        return f"{what} {self.root} ({len(self.items):,} files{labels})"


def _pack_image_column(names, path) -> str:
    for name in PACK_IMAGE_COLUMNS:
        if name in names:
            return name
    raise ValueError(f"{path} is not a pack in the book's schema: it has columns {list(names)}, but no "
                     f"image column ({' or '.join(PACK_IMAGE_COLUMNS)}, a struct of bytes and path)")


def open_images(source, *, exclude: Path | None = None) -> Images:
    """List the candidates of a folder, Parquet pack or list file (one ValueError if it is none),
    each a local path, a ``file://`` URL or a URL fsspec opens (:mod:`.remote`).

    ``exclude`` is a folder never listed (the output folder of ``compress`` when it lies inside
    the input). An input without a single candidate is an error: there is nothing to work on.
    """
    if remote.is_remote(source):
        images = _open_remote(str(source))
        root = source
    else:
        root = remote.local_path(source)
        if not root.exists():
            raise ValueError(f"IMAGES {root} does not exist; give a folder of images, a .parquet pack or a "
                             "text file listing image paths")
        if root.is_dir():
            images = _open_folder(root.resolve(), exclude.resolve() if exclude else None)
        elif root.suffix.lower() == ".parquet":
            images = _open_pack(root.resolve())
        else:
            images = _open_list(root.resolve())
    if not images.items:
        raise ValueError(f"IMAGES {root} holds no files to work on (an empty "
                         f"{'folder' if images.kind == 'folder' else images.kind}); point at your images")
    return images


def _labelled_folder(root, files) -> Images:
    """A folder's candidates from ``(relative id, location, size)``: labelled when every file sits
    one level down, in two or more sub-folders."""
    rel = sorted(files)
    depths = {r.count("/") for r, _, _ in rel}
    class_names = sorted({r.split("/", 1)[0] for r, _, _ in rel}) if depths == {1} else []
    labelled = len(class_names) >= 2
    index = {c: k for k, c in enumerate(class_names)}
    items = [Item(r, path=str(where), label=index[r.split("/", 1)[0]] if labelled else None, size=size)
             for r, where, size in rel]
    return Images("folder", root, items, class_names if labelled else [], labelled)


def _open_folder(root: Path, exclude: Path | None) -> Images:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (exclude is None or (here / d).resolve() != exclude))
        for name in filenames:
            if name.startswith("."):
                continue
            f = here / name
            try:
                size = f.stat().st_size
            except OSError:
                size = 0
            files.append((f.relative_to(root).as_posix(), f, size))
    return _labelled_folder(root, files)


def _read_table(root):
    """A Parquet file as a table, from a local path or a URL."""
    import pyarrow.parquet as pq

    if remote.is_remote(root):
        fs, path = remote.filesystem(str(root))
        with fs.open(path, "rb") as f:
            return pq.read_table(f)
    return pq.read_table(root)


def _open_remote(url: str) -> Images:
    """A folder, pack or list file behind a URL."""
    fs, path = remote.filesystem(url)
    try:
        is_dir = fs.isdir(path)
        exists = is_dir or fs.exists(path)
    except Exception as exc:  # noqa: BLE001 - each filesystem raises its own types
        raise ValueError(f"IMAGES {url} cannot be read ({type(exc).__name__}: {exc}); check the URL and your "
                         "credentials") from exc
    if not exists:
        raise ValueError(f"IMAGES {url} does not exist; give a folder of images, a .parquet pack or a text file "
                         "listing image paths")
    if not is_dir:
        if path.lower().endswith(".parquet"):
            return _open_pack(url)
        return _open_list(url)
    base = path.rstrip("/")
    found = fs.find(base, detail=True)
    files = []
    for full, info in found.items():
        rel = full[len(base):].lstrip("/")
        if not rel or info.get("type") == "directory" or any(p.startswith(".") for p in rel.split("/")):
            continue
        files.append((rel, remote.join(url, rel), int(info.get("size") or 0)))
    return _labelled_folder(url.rstrip("/"), files)


def _open_pack(root) -> Images:
    try:
        table = _read_table(root)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise ValueError(f"{root} cannot be read as a Parquet pack ({exc})") from exc
    column = _pack_image_column(table.schema.names, root)
    values = table.column(column).to_pylist()
    labels = table.column("label").to_pylist() if "label" in table.schema.names else [None] * len(values)
    items = []
    for k, (value, label) in enumerate(zip(values, labels)):
        value = value or {}
        data = value.get("bytes") or b""
        items.append(Item(value.get("path") or f"row-{k:07d}", row=k,
                          label=None if label is None else int(label), size=len(data)))
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):  # repeated paths: the row number keeps ids unique
        items = [Item(f"{it.id}#row-{it.row}", row=it.row, label=it.label, size=it.size) for it in items]
    labelled = all(it.label is not None for it in items) and len({it.label for it in items}) >= 2
    classes = []
    if labelled:
        known = _classes_beside(root)
        top = max(it.label for it in items)
        classes = known if len(known) > top else [str(k) for k in range(top + 1)]
    images = Images("pack", root, sorted(items, key=lambda it: it.id), classes, labelled)
    images._pack = table.column(column)
    return images


def _classes_beside(root) -> list[str]:
    """The class names of ``classes.txt`` beside a pack (none when there is no such file)."""
    try:
        if remote.is_remote(root):
            text = remote.read_bytes(str(root).rsplit("/", 1)[0] + "/classes.txt").decode("utf-8")
        else:
            names = Path(root).parent / "classes.txt"
            text = names.read_text() if names.is_file() else ""
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    return [c for c in text.splitlines() if c]


def _open_list(root) -> Images:
    try:
        text = remote.read_bytes(root).decode("utf-8") if remote.is_remote(root) else Path(root).read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"IMAGES {root} is a file but neither a .parquet pack nor a text list of image paths "
                         "(it is not UTF-8 text); give a folder, a pack or a list file") from exc
    here = str(root).rsplit("/", 1)[0] if remote.is_remote(root) else None
    items, seen, missing = [], set(), []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry in seen:
            continue
        seen.add(entry)
        if remote.is_remote(entry) or (here and not remote.scheme(entry) and not entry.startswith("/")):
            url = entry if remote.is_remote(entry) else remote.join(here, entry)
            fs, path = remote.filesystem(url, f"IMAGES {root} line {number}:")
            try:
                info = fs.info(path)
                if info.get("type") == "directory":
                    raise IsADirectoryError(url)
                items.append(Item(entry, path=url, size=int(info.get("size") or 0)))
            except Exception:  # noqa: BLE001 - missing, forbidden, a folder: listed below
                missing.append((number, entry))
            continue
        path = remote.local_path(entry)
        path = Path(os.path.abspath(path if path.is_absolute() else Path(root).parent / path))
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise IsADirectoryError(str(path))
        except OSError:
            missing.append((number, entry))
            continue
        items.append(Item(entry, path=str(path), size=size))
    if missing:
        shown = "; ".join(f"line {k}: {e}" for k, e in missing[:3]) + ("; ..." if len(missing) > 3 else "")
        where = here if here else Path(root).parent
        raise ValueError(f"IMAGES {root}: {len(missing):,} of its {len(missing) + len(items):,} paths do not exist "
                         f"or are not files ({shown}); fix those lines or remove them (relative paths are "
                         f"relative to {where})")
    return Images("list", root, sorted(items, key=lambda it: it.id))


# ---------------------------------------------------------------------------------------------
# Pixels


SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8", "JPEG"), (b"II*\0", "TIFF"), (b"MM\0*", "TIFF"),
              (b"GIF8", "GIF"), (b"BM", "BMP"))


def _signature(data: bytes) -> str | None:
    """The format a file's first bytes announce (None when they announce none we know)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in SIGNATURES if data.startswith(magic)), None)


def _bit_depth(image, data: bytes) -> int:
    """Bits per sample where the file says so (PNG header, TIFF tag); 8 when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24:
        return int(data[24])
    tag = getattr(image, "tag_v2", None)
    if tag is not None and 258 in tag:
        bits = tag[258]
        return int(max(bits) if isinstance(bits, tuple) else bits)
    return 8


def _over_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32)
    return np.round(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def _open(data: bytes):
    """Pillow's lazy open (the header only) with its pixel limit lifted: :class:`Limits` decides."""
    from PIL import Image

    with _PILLOW_LIMIT:
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = before


def to_rgb8(data: bytes, limits: Limits | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """uint8 (H, W, 3) pixels of an image file and the notes on what was converted.

    Raises :class:`Unusable` (with a short reason) for a file that is not an image Pillow can
    decode, a truncated or corrupt one, or a sample format with no 8-bit meaning; and
    :class:`TooLarge` for an image over ``limits`` (default: :class:`Limits`, no memory check),
    checked on the header before any pixel is decoded. ``data`` may be an :class:`Unreadable`.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(data, Unreadable):
        raise Unusable(str(data))
    if not data:
        raise Unusable("empty file")
    limits = limits or Limits()
    notes: list[str] = []
    image = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Limits guards instead
            image = _open(data)
            limits.check(image.width, image.height)
            if getattr(image, "n_frames", 1) > 1:
                notes.append(FRAMES)
            image.load()  # decodes now: a truncated file fails here
            if image.getexif().get(0x0112, 1) not in (1, None):
                image = ImageOps.exif_transpose(image)
                notes.append(ROTATED)
    except Unusable:
        raise
    except UnidentifiedImageError as exc:
        kind = _signature(data)
        if kind:
            raise Unusable(f"corrupt {kind} (it starts like one, but its header cannot be read)") from exc
        raise Unusable("not an image (no decoder recognises the file)") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError,
            EOFError) as exc:
        kind = getattr(image, "format", None) or _signature(data) or "image"
        raise Unusable(f"corrupt or truncated {kind} "
                       f"({' '.join(str(exc).split()) or type(exc).__name__})") from exc
    mode = image.mode
    if _bit_depth(image, data) > 8:
        notes.append(DEEP)
    if mode == "RGB":
        pixels = np.asarray(image)
    elif mode in ("L", "1"):
        notes.append(GREY)
        pixels = np.asarray(image.convert("RGB"))
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(image).astype(np.float64)
        if grey.min(initial=0) < 0 or grey.max(initial=0) > 65535:
            raise Unusable(f"{mode} samples outside 0-65535 have no 8-bit meaning")
        deep = mode.startswith("I;16") or DEEP in notes or grey.max(initial=0) > 255
        top = 65535.0 if deep else 255.0
        if deep and DEEP not in notes:
            notes.append(DEEP)
        notes.append(GREY)
        pixels = np.repeat(np.round(grey * (255.0 / top)).astype(np.uint8)[..., None], 3, axis=2)
    elif mode == "CMYK":
        notes.append(CMYK)
        pixels = np.asarray(image.convert("RGB"))
    elif mode == "P":
        notes.append(PALETTE)
        if "transparency" in image.info:
            notes.append(ALPHA)
            pixels = _over_white(np.asarray(image.convert("RGBA")))
        else:
            pixels = np.asarray(image.convert("RGB"))
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        if mode in ("LA", "La"):
            notes.append(GREY)
        rgba = np.asarray(image.convert("RGBA"))
        if (rgba[..., 3] < 255).any():
            notes.append(ALPHA)
        pixels = _over_white(rgba)
    elif mode in ("YCbCr", "LAB", "HSV", "RGBX"):
        notes.append(OTHER_MODE)
        pixels = np.asarray(image.convert("RGB"))
    else:
        raise Unusable(f"unsupported sample format {mode!r} (e.g. floating-point); convert it to 8- or 16-bit")
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise Unusable(f"decoded to an array of shape {pixels.shape}, not an RGB image")
    return pixels, tuple(notes)


def square(pixels: np.ndarray, size: int) -> np.ndarray:
    """The centred square crop of an image resized to ``size`` x ``size`` (bicubic): the fixed
    resolution the probe needs, whatever the sizes of the stored images."""
    from PIL import Image

    h, w = pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(np.ascontiguousarray(pixels[top:top + side, left:left + side]))
    return np.asarray(crop.resize((size, size), Image.BICUBIC), dtype=np.uint8)


def limit_side(pixels: np.ndarray, max_side: int | None) -> tuple[np.ndarray, bool]:
    """The image shrunk (Lanczos, aspect kept) so that its longer side is at most ``max_side``
    pixels, and whether it was; never enlarged (``max_side`` None: unchanged)."""
    if not max_side:
        return pixels, False
    h, w = pixels.shape[:2]
    if max(h, w) <= max_side:
        return pixels, False
    from PIL import Image

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if w >= h:
        size = (max_side, size[1])
    else:
        size = (size[0], max_side)
    small = Image.fromarray(np.ascontiguousarray(pixels)).resize(size, Image.LANCZOS)
    return np.ascontiguousarray(np.asarray(small, dtype=np.uint8)), True


def is_jpeg(data) -> bool:
    """Whether a file's bytes start like a JPEG."""
    return not isinstance(data, Unreadable) and bytes(data[:3]) == b"\xff\xd8\xff"
