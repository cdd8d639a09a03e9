"""Chapter 11's predicted scenes (``experiments.scenes``): the grid's kept whole-pool segmenters
applied to one scene, on synthetic scenes this test makes (no ``../shared/data``)."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic_images import SCENE_VOID, forget_packs, scenes, use_pack, use_segmentation_pack, write_segmentation_pack
from storage_scaling import data
from storage_scaling.experiments import runner
from storage_scaling.experiments import scenes as scene_figure
from storage_scaling.learn import pretrained

pytestmark = pytest.mark.skipif(not pretrained.installed(), reason=f"needs the package {pretrained.PACKAGE} "
                                f"(`{pretrained.INSTALL}`)")

NAME = "synthetic-scene-figure"


@pytest.fixture(scope="module")
def grid_spec(tmp_path_factory):
    """A two-distance grid of the segmenter on 64 x 48 synthetic scenes, run once: its whole-pool
    models are kept in this module's cache."""
    root = tmp_path_factory.mktemp("data")
    mp = pytest.MonkeyPatch()
    write_segmentation_pack(root, NAME, {"train": scenes(30, 0), "val": scenes(6, 1), "test": scenes(8, 2)})
    use_pack(mp, root, "unused", "", tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("results"))
    use_segmentation_pack(mp, NAME, "test scenes, 64 x 48 PNG")
    spec = {"datasets": [{"dataset": NAME, "model": "segmenter", "pool": "paper", "effort": 3, "seeds": [0],
                          "ns": [10, 30], "distances": ["original", 2.0, 12.0],
                          "train": {"scale": 1.0, "epochs": 40, "width": 8, "feature_batch": 16}}]}
    runner.run_experiment("grid", "smoke", results_path=tmp_path_factory.mktemp("rows") / "grid.csv", spec=spec,
                          progress=False)
    yield spec
    mp.undo()
    forget_packs()


def test_the_richest_scene_shows_the_most_classes(grid_spec):
    test = data.load_cached(NAME, "test")
    masks = data.masks_of(NAME, test.ids)
    counts = [len(set(np.unique(m)) - {SCENE_VOID}) for m in masks]
    assert counts[scene_figure.richest_scene(test)] == max(counts)


def test_predictions_are_the_kept_models_labels_and_survive_a_round_trip(grid_spec, tmp_path):
    result = scene_figure.predict(NAME, "segmenter", [2.0, 12.0], spec=grid_spec, profile="smoke")
    test = data.load_cached(NAME, "test")
    assert result["predictions"].shape == (2, 48, 64) and result["predictions"].dtype == np.uint8
    assert result["scene_id"] == str(test.ids[scene_figure.richest_scene(test)])
    assert len(set(result["training_keys"])) == 2  # one model per distance
    # the synthetic scenes are easy (about 97 % of pixels right): misplaced or other labels score about half
    truth = data.masks_of(NAME, [result["scene_id"]])[0]
    scored = truth != SCENE_VOID
    for labels in result["predictions"]:
        assert (labels[scored] == truth[scored]).mean() > 0.85, (labels[scored] == truth[scored]).mean()
    scene_figure.write(result, tmp_path)
    back = scene_figure.read(tmp_path)
    np.testing.assert_array_equal(back["predictions"], result["predictions"])
    assert back["distances"] == [2.0, 12.0] and back["code_version"]
    pixels, size = scene_figure.stored_scene(NAME, back["split"], back["scene_id"], 12.0, back["effort"])
    lighter, smaller = scene_figure.stored_scene(NAME, back["split"], back["scene_id"], 2.0, back["effort"])
    assert pixels.shape == lighter.shape == (48, 64, 3) and size < smaller


def test_a_distance_without_a_kept_model_is_refused_before_any_work(grid_spec, tmp_path):
    with pytest.raises(ValueError, match=r"no whole-pool run at d = 7.0.*distances are \[2.0, 12.0\]"):
        scene_figure.predict(NAME, "segmenter", [2.0, 7.0], spec=grid_spec, profile="smoke")
    other_seed = {"datasets": [{**grid_spec["datasets"][0], "seeds": [1]}]}
    with pytest.raises(ValueError, match=r"no kept whole-pool segmenter .* run `storage-scaling run grid"):
        scene_figure.predict(NAME, "segmenter", [2.0], seed=1, spec=other_seed, profile="smoke")


def test_a_mask_file_that_disagrees_with_its_record_is_refused(grid_spec, tmp_path):
    result = scene_figure.predict(NAME, "segmenter", [2.0, 12.0], spec=grid_spec, profile="smoke")
    scene_figure.write({**result, "predictions": result["predictions"][:1]}, tmp_path)
    record = scene_figure.paths(tmp_path)[1]
    with pytest.raises(ValueError, match="delete both"):
        scene_figure.read(tmp_path)
    assert record.is_file()


def test_the_smoke_profile_draws_the_smoke_grids_distances():
    from storage_scaling.experiments import specs

    blocks = specs.matching_blocks(specs.default_spec("grid", "smoke"), ["camvid-240x180"], ["segmenter"])
    lossy = {float(d) for d in blocks[0]["distances"] if d != "original"}
    assert scene_figure.default_distances("smoke") == sorted(lossy) and scene_figure.default_distances("full") == [
        1.0, 7.0, 15.0]
