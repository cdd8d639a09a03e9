"""The JPEG layer (JPEG-DL): transforms, soft quantiser, tables, joint training, attacks, bits per pixel."""

import numpy as np
import pytest
import skimage.data
import torch

from storage_scaling.learn import jpeg_layer as J
from storage_scaling.learn import train
from synthetic_images import FAST, stripes


def photos(size=40):
    """Three natural RGB crops (size not a multiple of 8: exercises the padding)."""
    return np.stack([skimage.data.astronaut()[100:100 + size, 150:150 + size],
                     skimage.data.chelsea()[50:50 + size, 100:100 + size],
                     skimage.data.coffee()[150:150 + size, 200:200 + size]])


def nchw(images):
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


def test_dct_then_inverse_is_the_identity_and_matches_scipy():
    from scipy.fft import dctn

    d = torch.tensor(J.dct_matrix(), dtype=torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    x = torch.randn(2, 3, 40, 24, dtype=torch.float64) * 100
    blocks, size = J.to_blocks(x)
    coeffs = d @ blocks @ d.T
    np.testing.assert_allclose(coeffs[0, 1, 2, 1].numpy(), dctn(x[0, 1, 16:24, 8:16].numpy(), norm="ortho"),
                               atol=1e-9)
    back = J.from_blocks(d.T @ coeffs @ d, size)
    assert back.shape == x.shape
    assert torch.allclose(back, x, atol=1e-9)
    # padding: a 13 x 21 image comes back cropped to its own size
    y = torch.randn(1, 3, 13, 21, dtype=torch.float64)
    blocks, size = J.to_blocks(y)
    assert blocks.shape == (1, 3, 2, 3, 8, 8)
    assert torch.allclose(J.from_blocks(d.T @ (d @ blocks @ d.T) @ d, size), y, atol=1e-9)


def test_colour_transform_round_trips_and_matches_jfif():
    assert np.allclose(J.YCBCR_TO_RGB @ J.RGB_TO_YCBCR, np.eye(3))
    # JFIF: R = Y + 1.402 Cr, B = Y + 1.772 Cb
    assert J.YCBCR_TO_RGB[0, 2] == pytest.approx(1.402, abs=1e-4)
    assert J.YCBCR_TO_RGB[2, 1] == pytest.approx(1.772, abs=1e-4)


def softmax_quantizer(z, step, hardness):
    """The paper's formula written out: softmax over the 5 nearest levels, expectation times step."""
    u = z / step
    levels = torch.round(u).detach().unsqueeze(-1) + torch.arange(-2, 3, dtype=z.dtype)
    p = torch.softmax(-hardness * (u.unsqueeze(-1) - levels) ** 2, dim=-1)
    return step * (p * levels).sum(-1)


def test_closed_form_soft_quantizer_is_the_softmax_formula_with_its_gradients():
    z = (torch.randn(4, 3, 64, dtype=torch.float64) * 30).requires_grad_(True)
    q = (torch.rand(3, 64, dtype=torch.float64) * 9 + 1).requires_grad_(True)
    for h in (0.5, 5.0, 300.0):
        ours, theirs = J.soft_quantize(z, q, h), softmax_quantizer(z, q, h)
        assert torch.allclose(ours, theirs, atol=1e-10)
        g_ours = torch.autograd.grad(ours.pow(2).sum(), (z, q))
        g_theirs = torch.autograd.grad(theirs.pow(2).sum(), (z, q))
        for a, b in zip(g_ours, g_theirs):
            assert torch.allclose(a, b, rtol=1e-8, atol=1e-8)
    assert torch.autograd.gradcheck(lambda a, b: J.soft_quantize(a, b, 3.0), (z[:1, :, :8], q[:, :8]))
    # no overflow at extreme hardness, ties included
    assert torch.isfinite(J.soft_quantize(torch.tensor([0.5, 1.5, -2.5, 3.2]), torch.tensor(1.0), 1e6)).all()


def test_soft_quantizer_tends_to_rounding_and_is_differentiable():
    z = torch.linspace(-20, 20, 801, dtype=torch.float64)
    step = torch.tensor(2.5, dtype=torch.float64)
    away_from_ties = ((z / step - torch.round(z / step)).abs() < 0.45)
    hard = J.hard_quantize(z, step)
    errors = [float((J.soft_quantize(z, step, h) - hard)[away_from_ties].abs().max()) for h in (1.0, 10.0, 100.0, 1e4)]
    assert all(a > b for a, b in zip(errors, errors[1:]))  # closer to rounding as hardness grows
    assert errors[-1] < 1e-6 and errors[0] > 0.1
    # differentiable with respect to both the input and the step, with non-zero gradients
    zz = torch.tensor([0.3, 1.7, -4.2, 7.9], dtype=torch.float64, requires_grad=True)
    q = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    out = J.soft_quantize(zz, q, 3.0)
    gz, gq = torch.autograd.grad(out.sum(), (zz, q))
    assert torch.all(gz != 0) and gq != 0
    assert torch.autograd.gradcheck(lambda a, b: J.soft_quantize(a, b, 3.0), (zz, q))
    # the slope at hardness 5: small on a level (2 h Var = 0.133), steep between two levels (2.5)
    at = torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(J.soft_quantize(at, torch.tensor(1.0, dtype=torch.float64), 5.0).sum(), at)
    assert slope.tolist() == pytest.approx([0.1332, 2.5, 0.1332], abs=1e-3)
    # hard rounding: zero gradient with respect to the input
    (gh,) = torch.autograd.grad(J.hard_quantize(zz, q).sum(), zz)
    assert torch.all(gh == 0)


def test_exactly_128_positive_trainable_steps_from_the_standard_tables():
    layer = J.JpegLayer(quality=50, max_step=255)
    trainable = [p for p in layer.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == 128
    steps = layer.steps().detach()
    assert steps.shape == (2, 8, 8) and torch.all(steps > 0)
    luma, chroma = J.standard_tables(50)  # quality 50 is the Annex K table itself
    np.testing.assert_array_equal(luma, J.ANNEX_K_LUMA)
    np.testing.assert_array_equal(chroma, J.ANNEX_K_CHROMA)
    assert torch.allclose(steps.double(), torch.tensor(np.stack([luma, chroma]), dtype=torch.float64), atol=1e-4)
    # libjpeg's scaling: quality 90 -> 20 % of the table (rounded), quality 10 -> 500 % (clamped to 255)
    assert J.standard_tables(90)[0][0, 0] == 3 and J.standard_tables(10)[1][7, 7] == 255
    # the largest initial step is a clamp
    clamped = J.JpegLayer(quality=50, max_step=10).steps().detach()
    assert float(clamped.max()) == pytest.approx(10, abs=1e-4) and float(clamped[0, 0, 2]) == pytest.approx(10, abs=1e-4)
    assert float(clamped[0, 0, 1]) == pytest.approx(10, abs=1e-4) and float(clamped[1].min()) == pytest.approx(10, abs=1e-4)
    assert float(J.JpegLayer(quality=95, max_step=10).steps().detach()[0, 0, 0]) == pytest.approx(2, abs=1e-4)
    assert J.JpegLayer().params() == {**J.DEFAULTS, "window": 5, "parametrisation": "softplus", "padding": "replicate"}


def test_steps_of_one_reproduce_integer_images_within_a_grey_level():
    images = photos()
    x = nchw(images)
    layer = J.JpegLayer(hardness=1e4)
    layer.set_steps(np.ones((2, 8, 8)))
    layer.requires_grad_(False)
    y = layer(x)
    assert y.shape == x.shape
    err = (y - x).detach()
    # Each DCT coefficient moves by at most half a step (0.5); the orthonormal inverse DCT keeps
    # that as ~0.29 RMS per YCbCr channel and the colour conversion makes it ~0.4-0.6 in RGB, so
    # single pixels may move by 2 grey levels but the image stays within one grey level RMS.
    assert float(err.pow(2).mean(dim=(0, 2, 3)).sqrt().max()) < 1.0
    assert float((err.abs() <= 1).float().mean()) > 0.9
    with J.quantizer_mode(layer, "hard"):
        hard = layer(x)
    assert float((hard - y).abs().mean()) < 1e-2  # hardness 1e4 is rounding (but for near-ties)
    # coarse steps do change the image (the layer really quantises)
    coarse = J.JpegLayer(quality=10, max_step=255, hard=True)
    assert float((coarse(x) - x).detach().abs().mean()) > 3


def test_layer_runs_in_float32_under_autocast():
    """bf16 would resolve a DC coefficient near 1,000 to 4 grey levels: the layer opts out."""
    x = nchw(photos(16))
    layer = J.JpegLayer(quality=90)
    with torch.no_grad():
        plain = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = layer(x)
    assert auto.dtype == torch.float32 and torch.equal(auto, plain)


def test_layer_matches_a_real_jpeg_encoder_in_hard_mode():
    """Hard mode with the standard tables is baseline JPEG without entropy coding: its pixels are
    close to Pillow's encode-decode at the same quality (libjpeg's integer DCTs differ slightly)."""
    from io import BytesIO

    from PIL import Image

    images = photos(32)
    layer = J.JpegLayer(quality=50, max_step=255, hard=True)
    ours = layer(nchw(images)).permute(0, 2, 3, 1).detach().numpy()
    theirs = np.stack([np.asarray(Image.open(BytesIO(J.encode(im, quality=50)))) for im in images]).astype(float)
    assert np.abs(ours - theirs).mean() < 1.5
    assert np.abs(images.astype(float) - theirs).mean() > 3 * np.abs(ours - theirs).mean()


def test_gradients_reach_the_input_in_soft_mode_and_not_in_hard_mode():
    x = nchw(photos(16)).requires_grad_(True)
    layer = J.JpegLayer(quality=75)
    out = layer(x)
    (g_soft,) = torch.autograd.grad(out.pow(2).mean(), x)
    assert float(g_soft.abs().sum()) > 0
    out = layer(x)
    (g_steps,) = torch.autograd.grad(out.pow(2).mean(), layer.raw)
    assert float(g_steps.abs().sum()) > 0 and g_steps.shape == (2, 8, 8)
    layer.hard = True
    (g_hard,) = torch.autograd.grad(layer(x).pow(2).mean(), x)
    assert float(g_hard.abs().sum()) == 0


def test_bad_input_is_refused_in_one_line():
    for kwargs, words in [(dict(quality=0), "quality"), (dict(quality=101), "quality"), (dict(quality=7.5), "quality"),
                          (dict(hardness=0), "hardness"), (dict(hardness=-1.0), "hardness"),
                          (dict(hardness=float("nan")), "hardness"), (dict(lr=0), "lr"), (dict(max_step=0), "max_step")]:
        with pytest.raises(ValueError, match=words) as info:
            J.JpegLayer(**kwargs)
        assert "\n" not in str(info.value)
    layer = J.JpegLayer()
    for bad in (torch.zeros(2, 1, 8, 8), torch.zeros(2, 4, 8, 8), torch.zeros(3, 8, 8), torch.zeros(1, 8, 8, 3)):
        with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
            layer(bad)
    with pytest.raises(ValueError, match="float"):
        layer(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="quality"):
        J.standard_tables(0)
    with pytest.raises(ValueError, match="jpeg_hardness|hardness"):
        train.recipe("airnet_small", steps=2, jpeg_layer=True, jpeg_hardness=0.0)
    with pytest.raises(ValueError, match="soft"):
        with J.quantizer_mode(layer, "medium"):
            pass




def test_jpeg_dl_trains_jointly_on_cpu_and_its_loss_falls():
    x, y = stripes(256, seed=0)
    xt, yt = stripes(200, seed=1)
    cfg = train.recipe("airnet_small", steps=40, jpeg_layer=True, jpeg_quality=50, jpeg_lr=0.05, **FAST)
    assert cfg.params()["jpeg_layer"] is True and cfg.params()["jpeg_quality"] == 50
    r = train.train(x, y, xt, yt, cfg, seed=0, keep_model=True)
    assert r.losses[-5:].mean() < 0.75 * r.losses[:5].mean()
    assert r.accuracy >= 0.8
    model = r.trained.model
    assert isinstance(model, J.JpegModel) and len(J.layers(model)) == 1
    tables = J.learned_tables(model)
    moved = np.abs(np.stack([tables["luma"], tables["chroma"]]) - np.stack([tables["luma_initial"],
                                                                             tables["chroma_initial"]]))
    assert moved.max() > 0.05  # the tables trained (on their own Adam)
    # the network's SGD groups do not hold the tables; the baseline has no layer
    base = train.train(x, y, xt, yt, train.recipe("airnet_small", steps=3, **FAST), seed=0, keep_model=True)
    assert not J.layers(base.trained.model)
    # the hard-rounding ablation evaluates the same model with rounding
    with J.quantizer_mode(model, "hard"):
        hard = r.trained.evaluate(xt, yt)
    assert 0 <= hard["accuracy"] <= 1 and not J.layers(model)[0].hard


def test_attacks_lower_accuracy_and_flow_through_the_soft_layer():
    from storage_scaling.learn import robustness

    x, y = stripes(256, seed=0)
    xt, yt = stripes(120, seed=1)
    cfg = train.recipe("airnet_small", steps=30, jpeg_layer=True, jpeg_quality=75, **FAST)
    trained = train.train(x, y, None, None, cfg, seed=0, keep_model=True).trained
    g_soft = robustness.input_gradient(trained, xt[:16], yt[:16], "soft")
    g_hard = robustness.input_gradient(trained, xt[:16], yt[:16], "hard")
    assert float(g_soft.abs().sum()) > 0 and float(g_hard.abs().sum()) == 0
    rows = robustness.robustness_curve(trained, xt, yt, eps=(2 / 255, 8 / 255, 32 / 255), batch_size=64,
                                       eval_mode="hard")
    clean = next(r["accuracy"] for r in rows if r["attack"] == "none")
    assert clean > 0.7 and {r["attack"] for r in rows} == {"none", "fgsm", "pgd"} and len(rows) == 7
    for r in rows:
        assert r["accuracy"] <= clean and r["n"] == 120
    assert all(r["attack_mode"] == ("none" if r["attack"] == "none" else "soft") and r["eval_mode"] == "hard"
               for r in rows)
    strongest = next(r["accuracy"] for r in rows if r["attack"] == "pgd" and r["eps_255"] == 32)
    assert strongest < clean - 0.2  # a large eps really attacks (the gradient is not masked)
    assert not J.layers(trained.model)[0].hard  # modes restored
    with pytest.raises(ValueError, match="attack"):
        robustness.robustness_curve(trained, xt, yt, attacks=("cw",))
    with pytest.raises(ValueError, match="eps"):
        robustness.robustness_curve(trained, xt, yt, eps=(2.0,))
    with pytest.raises(ValueError, match="attack_modes"):
        robustness.robustness_curve(trained, xt, yt, attack_modes=("soft", "identity"))


def test_straight_through_gradient_is_the_networks_gradient_at_the_layers_output():
    """BPDA: the quantiser keeps its value (soft or hard) but differentiates as the identity, so the
    input gradient is the bare network's gradient at what the layer put out: non-zero even in hard
    mode, where the true gradient is exactly zero."""
    from storage_scaling.learn import robustness

    x, y = stripes(128, seed=0)
    xt, yt = stripes(16, seed=1)
    cfg = train.recipe("airnet_small", steps=4, jpeg_layer=True, jpeg_quality=50, **FAST)
    trained = train.train(x, y, None, None, cfg, seed=0, keep_model=True).trained
    model = trained.model
    for mode in ("soft", "hard"):
        g = robustness.input_gradient(trained, xt, yt, mode, straight_through=True)
        pixels = torch.from_numpy(xt).permute(0, 3, 1, 2).float()
        with J.quantizer_mode(model, mode), torch.no_grad():
            seen = model.jpeg((pixels - model.mean) / model.std)  # the network's input, normalised
        seen.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model.net(seen).float(), torch.from_numpy(yt).long())
        (g_net,) = torch.autograd.grad(loss, seen)
        expected = g_net * 255.0 / model.std  # pixels in [0, 1] -> 0-255 -> normalised
        assert float(g.abs().sum()) > 0
        torch.testing.assert_close(g, expected, rtol=1e-3, atol=1e-6)
    assert not J.layers(model)[0].straight_through and not J.layers(model)[0].hard  # restored
    assert float(robustness.input_gradient(trained, xt, yt, "hard").abs().sum()) == 0


def test_a_straight_through_attack_is_its_own_row_and_baselines_are_attacked_once():
    from storage_scaling.learn import robustness

    x, y = stripes(128, seed=0)
    xt, yt = stripes(48, seed=1)
    jdl = train.train(x, y, None, None, train.recipe("airnet_small", steps=4, jpeg_layer=True, **FAST), seed=0,
                      keep_model=True).trained
    base = train.train(x, y, None, None, train.recipe("airnet_small", steps=4, **FAST), seed=0,
                       keep_model=True).trained
    rows = robustness.robustness_curve(jdl, xt, yt, eps=(4 / 255,), attack_modes=("soft", "bpda"), batch_size=48)
    assert sorted((r["attack_mode"], r["attack"]) for r in rows) == [
        ("bpda", "fgsm"), ("bpda", "pgd"), ("none", "none"), ("soft", "fgsm"), ("soft", "pgd")]
    only_soft = robustness.robustness_curve(jdl, xt, yt, eps=(4 / 255,), attack_modes="soft", batch_size=48)
    assert [r for r in rows if r["attack_mode"] != "bpda"] == only_soft  # BPDA rows come after, seeded alike
    rows = robustness.robustness_curve(base, xt, yt, eps=(4 / 255,), attack_modes=("soft", "bpda"), batch_size=48)
    assert {r["attack_mode"] for r in rows} == {"none"} and len(rows) == 3


def test_bits_per_pixel_with_custom_tables_matches_pillow_quality():
    images = photos(32)
    for q in (10, 50, 75, 95):
        tables = J.standard_tables(q)
        # Pillow's qtables are in natural (row-major) order: the same bytes as quality=q
        assert J.encode(images[0], tables=tables) == J.encode(images[0], quality=q)
        assert J.bits_per_pixel(images, tables=tables) == J.bits_per_pixel(images, quality=q)
    assert J.bits_per_pixel(images, quality=95) > J.bits_per_pixel(images, quality=50) > 0
    # learned steps are rounded and clamped to 1-255
    steps = np.stack(J.standard_tables(50)).astype(float) + 0.3
    steps[0, 0, 0], steps[1, 7, 7] = 0.2, 400.0
    luma, chroma = J.integer_tables(steps)
    assert luma[0, 0] == 1 and chroma[7, 7] == 255 and luma[0, 1] == 11
    layer = J.JpegLayer(quality=50, max_step=255)
    np.testing.assert_array_equal(np.stack(J.integer_tables(layer)), np.stack(J.standard_tables(50)))
    with pytest.raises(ValueError, match="either"):
        J.bits_per_pixel(images, tables=J.standard_tables(50), quality=50)
    with pytest.raises(ValueError, match="uint8"):
        J.bits_per_pixel(images.astype(float), quality=50)
