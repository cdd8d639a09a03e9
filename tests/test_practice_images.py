"""Users' images: what a folder, pack or list holds, and every file mode to 8-bit RGB."""

import io
import os

import imagecodecs
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import skimage.data
from PIL import Image

from storage_scaling.practice import images


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def test_rgb_jpeg_png_webp_and_tiff_pass_unchanged():
    photo = skimage.data.astronaut()[:40, :50]
    png = images.to_rgb8(encoded(Image.fromarray(photo), "PNG"))
    assert png[1] == () and np.array_equal(png[0], photo)
    for fmt in ("TIFF", "WEBP", "JPEG"):
        pixels, notes = images.to_rgb8(encoded(Image.fromarray(photo), fmt))
        assert pixels.shape == photo.shape and pixels.dtype == np.uint8 and notes == ()


def test_alpha_is_composited_over_white():
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200  # red 200
    rgba[:, :6, 3] = 0  # transparent half
    rgba[:, 6:, 3] = 255
    pixels, notes = images.to_rgb8(encoded(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert images.ALPHA in notes
    assert (pixels[:, :6] == 255).all()  # white where transparent
    assert (pixels[:, 6:, 0] == 200).all() and (pixels[:, 6:, 1:] == 0).all()
    half = rgba.copy()
    half[..., 3] = 128
    mixed, _ = images.to_rgb8(encoded(Image.fromarray(half, "RGBA"), "PNG"))
    assert mixed[0, 0].tolist() == [227, 127, 127]  # 200*a + 255*(1-a), 0*a + 255*(1-a), a = 128/255
    opaque, notes = images.to_rgb8(encoded(Image.fromarray(rgba[..., :3]).convert("RGBA"), "PNG"))
    assert images.ALPHA not in notes  # an alpha channel that hides nothing is not reported


def test_cmyk_grey_palette_and_sixteen_bit_are_converted_and_noted():
    cmyk, notes = images.to_rgb8(encoded(Image.new("CMYK", (8, 6), (0, 255, 255, 0)), "JPEG", quality=100))
    assert notes == (images.CMYK,) and cmyk.shape == (6, 8, 3)
    assert cmyk[3, 3, 0] > 240 and cmyk[3, 3, 1] < 15 and cmyk[3, 3, 2] < 15  # no magenta/yellow ink -> red
    grey, notes = images.to_rgb8(encoded(Image.new("L", (5, 4), 77), "PNG"))
    assert notes == (images.GREY,) and (grey == 77).all()
    palette = Image.new("P", (5, 4), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal, notes = images.to_rgb8(encoded(palette, "PNG"))
    assert images.PALETTE in notes and pal[0, 0].tolist() == [10, 20, 30]
    deep = np.full((6, 7, 3), 65535, np.uint16)
    deep[0, 0] = (0, 257 * 100, 65535)
    rgb16, notes = images.to_rgb8(imagecodecs.png_encode(deep))
    assert images.DEEP in notes and rgb16[0, 0].tolist() == [0, 100, 255] and rgb16.dtype == np.uint8
    grey16 = np.ascontiguousarray(deep[..., 1])
    for data in (imagecodecs.png_encode(grey16), imagecodecs.tiff_encode(grey16)):
        g, notes = images.to_rgb8(data)
        assert images.DEEP in notes and images.GREY in notes and g[0, 0].tolist() == [100, 100, 100]
    t16, notes = images.to_rgb8(imagecodecs.tiff_encode(deep))
    assert images.DEEP in notes and t16[0, 0].tolist() == [0, 100, 255]


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"hello, this is text", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "corrupt"),
])
def test_unusable_files_say_why(data, reason):
    with pytest.raises(images.Unusable, match=reason):
        images.to_rgb8(data)


def test_truncated_jpeg_is_unusable():
    whole = encoded(Image.fromarray(skimage.data.coffee()[:64, :64]), "JPEG")
    with pytest.raises(images.Unusable, match="truncated"):
        images.to_rgb8(whole[: len(whole) // 2])


def test_folder_is_listed_recursively_and_sorted_with_labels(photo_folder):
    found = images.open_images(photo_folder)
    ids = [it.id for it in found.items]
    assert ids == sorted(ids) and found.kind == "folder"
    assert "a/notes.txt" in ids and "a/.DS_Store" not in ids  # every file counts, hidden ones do not
    assert found.labelled and found.classes == ["a", "b"]
    assert {it.label for it in found.items if it.id.startswith("b/")} == {1}
    assert all(it.size == (photo_folder / it.id).stat().st_size for it in found.items)
    assert found.read(found.items[0]) == (photo_folder / ids[0]).read_bytes()
    # a file at the top level: not one sub-folder per class any more
    (photo_folder / "top.jpg").write_bytes((photo_folder / ids[0]).read_bytes())
    assert not images.open_images(photo_folder).labelled


def test_pack_and_list_inputs(tmp_path, photo_folder):
    files = sorted(p for p in photo_folder.rglob("*.jpg"))
    table = pa.table({"image": [{"bytes": p.read_bytes(), "path": p.relative_to(photo_folder).as_posix()} for p in files],
                      "label": [0 if "/a/" in str(p) else 1 for p in files]})
    pq.write_table(table, tmp_path / "pack.parquet")
    pack = images.open_images(tmp_path / "pack.parquet")
    assert pack.kind == "pack" and len(pack) == len(files) and pack.labelled
    first = pack.items[0]
    assert pack.read(first) == (photo_folder / first.id).read_bytes()
    listing = tmp_path / "list.txt"
    listing.write_text("# my images\n\n" + "\n".join(str(p) for p in files[:3]) + "\n")
    listed = images.open_images(listing)
    assert listed.kind == "list" and len(listed) == 3
    gone = listed.items[0]
    os.unlink(gone.path)  # gone after listing (a missing file in the list itself is refused up front)
    with pytest.raises(images.Unusable, match="cannot read"):
        listed.read(gone)
    assert isinstance(listed.read_many([gone])[0], images.Unreadable)
    bad = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), bad)
    with pytest.raises(ValueError, match="no image column"):
        images.open_images(bad)


def test_empty_and_missing_inputs_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        images.open_images(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        images.open_images(tmp_path / "nowhere")
    (tmp_path / "binary.bin").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(ValueError, match="neither a .parquet pack nor a text list"):
        images.open_images(tmp_path / "binary.bin")


def test_square_crops_the_centre_and_resizes():
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 20:60] = 255  # the centred 40x40 square is white
    out = images.square(image, 16)
    assert out.shape == (16, 16, 3) and out.min() > 250


# ---------------------------------------------------------------- issue 33 --------------------


def test_pixel_limit_is_ours_and_can_be_raised(monkeypatch):
    """Issue 33, item 5: Pillow's decompression-bomb guard skipped a 20000x15000 PNG with no way to
    raise the limit. Here Pillow's own limit is lowered to 1,000 pixels to stand for it."""
    from PIL import Image as PILImage

    data = encoded(Image.fromarray(skimage.data.astronaut()[:60, :80]), "PNG")  # 4,800 pixels
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)
    pixels, _ = images.to_rgb8(data, images.Limits(max_pixels=10_000))
    assert pixels.shape == (60, 80, 3)
    assert PILImage.MAX_IMAGE_PIXELS == 1000  # Pillow's setting is left as it was
    with pytest.raises(images.TooLarge, match=r"80x60 .* --max-pixels") as info:
        images.to_rgb8(data, images.Limits(max_pixels=4_000))
    assert (info.value.width, info.value.height) == (80, 60)


def test_memory_guard_names_what_an_image_needs(monkeypatch):
    """Issue 33, item 5: a 48 MP JPEG peaked at 4.7 GB in one worker with nothing to guard memory."""
    data = encoded(Image.fromarray(skimage.data.astronaut()[:100, :100]), "JPEG")
    need = images.memory_needed(100, 100)
    assert need == pytest.approx(100 * 100 * images.PEAK_BYTES_PER_PIXEL + images.WORKER_OVERHEAD)
    assert images.memory_needed(8000, 6000) == pytest.approx(4.7e9, rel=0.25)  # what the issue measured
    with pytest.raises(images.TooLarge, match=r"needs about .* --worker-memory"):
        images.to_rgb8(data, images.Limits(memory=need / 2))
    assert images.to_rgb8(data, images.Limits(memory=need * 2))[0].shape == (100, 100, 3)


def test_an_unreadable_file_keeps_its_reason():
    """Issue 33, item 5: a file that could not be read was reported as 'empty file'."""
    reason = images.Unreadable("cannot read the file (No such file or directory)")
    with pytest.raises(images.Unusable, match="No such file"):
        images.to_rgb8(reason)


def test_list_with_a_url_fsspec_cannot_open_or_a_missing_file_is_refused_in_one_line(tmp_path, photo_folder):
    """Issue 33, item 5: a URL or a missing file in a path list was reported as 'empty file', and
    s3://bucket/x became s3:/bucket/x. URLs fsspec opens are read now (test_practice_outputs); one
    it cannot open here is one line naming it as written."""
    real = photo_folder / "a" / "chelsea0.jpg"
    listing = tmp_path / "list.txt"
    listing.write_text(f"{real}\nnosuchproto://bucket/x.jpg\n")
    with pytest.raises(ValueError, match=r"line 2: nosuchproto://bucket/x\.jpg: fsspec cannot open") as info:
        images.open_images(listing)
    assert "\n" not in str(info.value)
    listing.write_text(f"{real}\n{tmp_path / 'gone.jpg'}\nalso-gone.jpg\n")
    with pytest.raises(ValueError, match=r"2 of its 3 paths do not exist .*line 2: .*gone\.jpg"):
        images.open_images(listing)


def test_list_layout_is_relative_to_the_common_folder(tmp_path, photo_folder):
    """Issue 33, item 5: a path list mirrored absolute paths into OUT."""
    listing = tmp_path / "elsewhere" / "list.txt"
    listing.parent.mkdir()
    files = [photo_folder / "a" / "chelsea0.jpg", photo_folder / "b" / "coffee1.jpg"]
    listing.write_text("\n".join(str(f) for f in files) + "\n")
    found = images.open_images(listing)
    assert sorted(found.layout().values()) == ["a/chelsea0.jpg", "b/coffee1.jpg"]
    folder = images.open_images(photo_folder)
    assert all(folder.layout()[it.id] == it.id for it in folder.items)
