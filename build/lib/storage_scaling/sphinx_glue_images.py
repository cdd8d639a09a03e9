"""Sphinx extension: make figures glued across documents appear in the built HTML.

A chapter pastes a notebook's figure with ``{glue:any} key`` and ``:doc: ../executed/NN.ipynb``.
myst-nb (1.x) resolves that from the notebook's glue cache (``<output_folder>/<doc>.glue.json``)
into ``<img src=".../_images/<sha256 of the PNG>.png">`` but never writes that file: it assumes the
same bytes were also *displayed* in the notebook, so that rendering the notebook page copied them
into ``_images``. Our notebooks glue figures with ``display=False`` and then ``plt.show()`` them,
which renders the figure a second time; when the two renders differ (constrained layout with
colour bars settles differently on the second draw) the chapter points to an image that does not
exist. This extension writes every image of every glue cache into the HTML image folder under
the name myst-nb gives it, so a pasted figure is always the glued bytes, whatever the notebook
displays. ``storage_scaling.book.check_html`` fails the build if any ``<img>`` is still missing.
"""

from __future__ import annotations

import hashlib
import json
from binascii import a2b_base64
from mimetypes import guess_extension
from pathlib import Path

# the image types myst-nb's cross-document glue turns into <img> (myst_nb/ext/glue/crossref.py)
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "application/pdf")


def image_filename(mime_type: str, data_bytes: bytes) -> str:
    """The file name myst-nb gives a glued image: sha256 of the bytes plus the extension."""
    extension = guess_extension(mime_type) or "." + mime_type.rsplit("/")[-1]
    extension = ".jpeg" if extension == ".jpe" else extension
    return hashlib.sha256(data_bytes).hexdigest() + extension


def write_glued_images(glue_folder: Path, image_dir: Path) -> list[Path]:
    """Write each image of each ``*.glue.json`` under ``glue_folder`` into ``image_dir``.

    Returns the files written (existing files with the same name hold the same bytes: skipped).
    """
    written = []
    for cache in sorted(Path(glue_folder).rglob("*.glue.json")):
        for output in json.loads(cache.read_text()).values():
            data = output.get("data", {}) if isinstance(output, dict) else {}
            for mime_type in IMAGE_MIME_TYPES:
                if not isinstance(data.get(mime_type), str):
                    continue
                data_bytes = a2b_base64(data[mime_type])
                target = Path(image_dir) / image_filename(mime_type, data_bytes)
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data_bytes)
                    written.append(target)
    return written


def _on_build_finished(app, exception) -> None:
    if exception is not None or getattr(app.builder, "format", None) != "html":
        return
    config = getattr(app.env, "mystnb_config", None)
    if config is None or not config.output_folder:
        return
    write_glued_images(Path(config.output_folder), Path(app.builder.outdir) / app.builder.imagedir)


def setup(app):
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
