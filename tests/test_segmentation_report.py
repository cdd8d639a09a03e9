"""The segmentation chapter's summaries, on rows the test writes."""

import numpy as np
import pandas as pd
import pytest

from storage_scaling import law
from storage_scaling.experiments import segmentation_report as sr


def choice_rows():
    return pd.DataFrame({
        "dataset": sr.DATASET, "model": sr.MODEL, "n": [367, 367, 73, 73], "steps": [690, 690, 150, 300],
        "segmentation_scale": 2.0, "segmentation_width": [64, 32, 64, 64], "segmentation_epochs": 30,
        "segmentation_min_steps": [0, 0, 0, 300], "miou": [0.60, 0.55, 0.43, 0.51],
        "class_error": [0.29, 0.35, 0.48, 0.38], "decoder_seconds": [190.0, 60.0, 40.0, 76.0]})


def test_the_choice_table_names_what_each_run_changes_and_its_gain_at_the_same_n():
    t = sr.choice_table(choice_rows())
    assert t["run"].tolist() == ["the reference", "width 32", "n = 73", "n = 73, min steps 300"]
    assert t["mIoU change (points)"].tolist() == pytest.approx([0.0, -5.0, 0.0, 8.0])
    assert (t["decoder autocast"] == "fp32").all() and sr.choice_table(pd.DataFrame()).empty


def test_grid_error_table_gives_means_with_the_seed_range_original_first():
    rows = pd.DataFrame({"n": [10, 10, 10, 20], "codec": ["jxl", "jxl", "original", "jxl"],
                         "distance": [4.0, 4.0, np.nan, 4.0], "error": [0.5, 0.7, 0.4, 0.3], "seed": [0, 1, 0, 0]})
    t = sr.grid_error_table(rows, pool_size=20).set_index("n")
    assert list(t.columns) == ["share of the pool", "original", "d = 4"]
    assert t.loc[10, "d = 4"] == "0.600 [0.500, 0.700]" and t.loc[20, "d = 4"] == "0.300"
    assert t.loc[10, "share of the pool"] == "50%" and pd.isna(t.loc[20, "original"])


def test_the_papers_grid_is_its_cityscapes_law_at_its_cells():
    t = sr.paper_grid_table().set_index("n")
    f = law.PAPER_FITS["cityscapes"]
    n, L = 2975, law.PAPER_SIZE_TABLES["cityscapes"][1]
    by_hand = f["E"] + f["A"] * n ** -f["alpha"] + f["B"] * L ** -f["beta"]
    assert t.loc[2975, "d = 1"] == pytest.approx(by_hand) and list(t.index) == list(law.PAPER_N_GRIDS["cityscapes"])
    assert t.loc[595, "d = 15"] > t.loc[2975, "d = 15"] > t.loc[2975, "d = 1"]  # fewer images or bytes: more error


def test_class_iou_change_puts_the_classes_compression_hurts_first_on_top():
    rows = pd.DataFrame({"n": [367, 367, 367, 100], "distance": [1.0, 15.0, 15.0, 15.0],
                         "iou_sky": [0.9, 0.88, 0.86, 0.1], "iou_sign_symbol": [0.3, 0.1, 0.14, 0.0]})
    t = sr.class_iou_change(rows)
    assert t["class"].tolist() == ["sign symbol", "sky"]
    assert t["change (points)"].tolist() == pytest.approx([-18.0, -3.0])
    assert sr.class_iou_change(rows[rows["distance"] == 1.0]).empty  # no d = 15 cell: nothing to compare
