"""The segmentation model on scenes the test draws: the backbone's four strides, a decoder that
learns a two-region scene with void ignored, the same seed giving the same model, bad knobs refused."""

import math

import numpy as np
import pytest

from storage_scaling.learn import pretrained, segmentation as seg

pytestmark = pytest.mark.skipif(not pretrained.installed(), reason=f"needs {pretrained.PACKAGE} ({pretrained.INSTALL})")
VOID = 2


def scenes(n, seed, size=48):
    """Two regions split at a random column (label 0 left: dark red; 1 right: light blue, with
    noise), and a 4-pixel top strip of random colours labelled void."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(n):
        cut = rng.integers(size // 4, 3 * size // 4)
        masks[i] = (np.arange(size)[None, :] >= cut)
        colour = np.where(masks[i][..., None] == 1, [90, 170, 230], [150, 30, 30])
        images[i] = np.clip(colour + rng.normal(0, 12, (size, size, 3)), 0, 255)
        images[i, :4] = rng.integers(0, 256, (4, size, 3))
        masks[i, :4] = VOID
    return images, masks


def test_features_come_at_strides_4_to_32_of_the_scaled_image():
    images, _ = scenes(3, 0, size=40)
    for scale in (1.0, 2.0):
        got = seg.extract(images, seg.SegmentationConfig(scale=scale, precision="fp32", feature_batch=2))
        side = 40 * scale
        assert [f.shape for f in got] == [(3, c, math.ceil(side / s), math.ceil(side / s))
                                          for c, s in zip(seg.CHANNELS, (4, 8, 16, 32))]
        assert all(f.dtype == np.float16 and np.isfinite(f.astype(np.float32)).all() for f in got)


def test_the_decoder_learns_a_two_region_scene_with_void_ignored():
    config = seg.SegmentationConfig(scale=1.0, precision="fp32", width=16, epochs=15, batch_size=8, lr=1e-2)
    images, masks = scenes(24, 1)
    decoder = seg.fit(seg.extract(images, config), masks, num_classes=2, void=VOID, config=config)
    test_images, test_masks = scenes(8, 2)
    features = seg.extract(test_images, config)
    m = seg.evaluate(decoder, features, test_masks, 2, VOID)
    # the void strip is label 2 of a 2-class model: a loss that did not ignore it would fail outright
    assert m["miou"] > 0.9 and m["classes_scored"] == 2
    again = seg.fit(seg.extract(images, config), masks, num_classes=2, void=VOID, config=config)
    assert (seg.predict(again, features, (48, 48)) == seg.predict(decoder, features, (48, 48))).all()


def test_bad_knobs_and_shapes_are_refused_before_any_work():
    with pytest.raises(ValueError, match=r"epochs=0 must be an integer >= 1; scale=-1 must be a number in \(0, 8\]"):
        seg.SegmentationConfig(epochs=0, scale=-1).validate()
    with pytest.raises(ValueError, match="precision='fp8'"):
        seg.SegmentationConfig(precision="fp8").validate()
    with pytest.raises(ValueError, match=r"uint8 \(N, H, W, 3\)"):
        seg.extract(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="the 4 arrays of extract"):
        seg.fit([np.zeros((2, 24, 4, 4), np.float16)], np.zeros((2, 16, 16), np.uint8), 2, None)
    assert seg.SegmentationConfig().params()["segmentation_scale"] == 2.0


def test_cached_flat_features_unflatten_to_the_strides_and_a_fitted_model_round_trips():
    import torch

    config = seg.SegmentationConfig(scale=1.5, precision="fp32", width=8, epochs=2, batch_size=4)
    images, masks = scenes(6, 3, size=40)
    features = seg.extract(images, config)
    shapes = seg.feature_shapes(40, 40, config)
    assert shapes == [f.shape[1:] for f in features]  # 60 px: strides 15, 8, 4, 2 (rounded up)
    back = seg.unflatten(seg.flatten(features), shapes)
    assert all((a == b).all() for a, b in zip(back, features))
    with pytest.raises(ValueError, match="another scale or image size"):
        seg.unflatten(seg.flatten(features), seg.feature_shapes(48, 40, config))
    info = {}
    decoder = seg.fit(features, masks, num_classes=2, void=VOID, config=config, info=info)
    assert info["steps"] == config.steps(6) == 4 and info["final_loss"] > 0
    fitted = seg.FittedSegmenter(config, decoder, 2, VOID, info)
    tensors, state = fitted.to_state()
    again = seg.FittedSegmenter.from_state({k: v.clone() for k, v in tensors.items()}, state)
    assert (again.confusion(features, masks) == fitted.confusion(features, masks)).all()
    assert all(torch.equal(tensors[k], v) for k, v in again.to_state()[0].items())


def test_min_steps_is_a_floor_on_whole_epochs():
    assert seg.SegmentationConfig(epochs=3, batch_size=16).steps(40) == 9  # 3 epochs of 3 batches
    assert seg.SegmentationConfig(epochs=3, batch_size=16, min_steps=20).steps(40) == 20


def test_a_bf16_decoder_learns_the_scene_too_and_says_so():
    from storage_scaling.learn.train import cpu_autocast_problem

    if cpu_autocast_problem("bf16"):
        pytest.skip("this CPU has no native bf16 (decoder_precision='bf16' is refused here)")
    config = seg.SegmentationConfig(scale=1.0, precision="fp32", decoder_precision="bf16", width=16, epochs=15,
                                    batch_size=8, lr=1e-2)
    images, masks = scenes(24, 1)
    info = {}
    decoder = seg.fit(seg.extract(images, config), masks, num_classes=2, void=VOID, config=config, info=info)
    test_images, test_masks = scenes(8, 2)
    assert seg.evaluate(decoder, seg.extract(test_images, config), test_masks, 2, VOID)["miou"] > 0.9
    assert info["decoder_autocast"] == "bf16"
