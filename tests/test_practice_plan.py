"""`storage-scaling plan`: sizes, laws and their fitted ranges, the plan and its report."""

import json
import os
import re

import numpy as np
import pytest

from storage_scaling import cli, law
from storage_scaling.practice import laws, plan
from storage_scaling.practice.units import format_size, parse_size

TRUTH = law.LawParams(A=0.6, alpha=0.4, B=10.0, beta=0.7, E=0.02)  # errors in (0, 1) on the grid below


@pytest.mark.parametrize("text,value", [("500MB", 500e6), ("1.5GiB", 1.5 * 2 ** 30), ("10GB", 1e10),
                                        ("48.48e6", 48.48e6), ("2 kb", 2000.0), ("7", 7.0), (3e9, 3e9)])
def test_sizes_people_write(text, value):
    assert parse_size(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "ten GB", "5 parsecs", "-3MB", "0"])
def test_sizes_that_are_not(text):
    with pytest.raises(ValueError, match="--budget"):
        parse_size(text)


def test_format_size():
    assert format_size(512) == "512 B" and format_size(7090) == "7.09 kB" and format_size(48.48e6) == "48.5 MB"


@pytest.fixture
def law_file(tmp_path):
    runs = law.synthetic_grid(TRUTH, [2, 4, 8, 16, 32], [150, 300, 600, 1200, 2400], noise=0.01, seeds=2,
                              rng_seed=1)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    path = tmp_path / "law.json"
    rc = cli.main(["fit", str(tmp_path / "runs.csv"), "--bootstrap", "0", "--save-law", str(path)])
    assert rc == 0
    return path


def test_fit_save_law_round_trips_params_ranges_and_runs(law_file):
    saved = laws.load(str(law_file))
    raw = json.loads(law_file.read_text())
    assert raw["format"] == laws.FORMAT and len(raw["runs"]) == 50 and raw["provenance"]["code_version"]
    assert saved.n_range == (2.0, 32.0) and saved.L_range == (150.0, 2400.0)
    assert saved.storage_range == (300.0, 76800.0)
    assert saved.params.alpha == pytest.approx(TRUTH.alpha, rel=0.15) and not saved.borrowed
    assert saved.params.beta == pytest.approx(TRUTH.beta, rel=0.15)


def test_paper_law_is_borrowed_with_the_authors_grid_as_range():
    food = laws.load("paper:food101")
    assert food.borrowed and "BORROWED" in food.label and food.runs is None
    assert food.n_range == (3030.0, 60600.0) and food.L_range == (5621.0, 39966.0)
    p = laws.predict(food, 48.48e6, n_max=60_600)
    assert round(p.n) == 6838 and round(p.L) == 7090 and p.error == pytest.approx(0.464, abs=1e-3)  # paper §1.8
    assert p.error_interval is None  # published constants: no runs, no interval


def test_book_fit_reads_the_committed_table():
    names = laws.book_fits()
    assert "book:cifar10-jpg/probe" in names  # results/law_grid_bootstrap.csv
    saved = laws.load("book:cifar10-jpg/probe")
    assert saved.runs is not None and len(saved.runs) == 126 and saved.with_floor
    assert saved.n_range == (2000.0, 40000.0) and 100 < saved.L_range[0] < saved.L_range[1] < 1000
    with pytest.raises(ValueError, match="choose one of"):
        laws.load("book:cifar10-jpg/resnet1000")


@pytest.mark.parametrize("spec,message", [("nowhere.json", "no such law file"), ("paper:mnist", "no published law")])
def test_bad_law_names(spec, message):
    with pytest.raises(ValueError, match=message):
        laws.load(spec)


def test_a_law_without_an_interior_optimum_is_refused(tmp_path):
    flat = laws.SavedLaw("flat", law.LawParams(A=1.0, alpha=0.3, B=1.0, beta=0.0), False, (1, 10), (1, 10), (1, 100),
                         "test")
    flat.save(tmp_path / "flat.json")
    with pytest.raises(ValueError, match="beta = 0"):
        laws.load(str(tmp_path / "flat.json"))


def test_predict_intervals_contain_their_points(law_file):
    saved = laws.load(str(law_file))
    p = laws.predict(saved, 6_000, n_max=1000, points=[(10, 1000)], n_boot=30, seed=1)
    assert p.resamples > 20
    for value, (lo, hi) in ((p.n, p.n_interval), (p.L, p.L_interval), (p.error, p.error_interval),
                            (p.points[0]["error"], p.points[0]["interval"])):
        assert lo <= value * 1.05 and value * 0.95 <= hi and lo < hi


def test_range_problems_name_what_is_outside():
    saved = laws.paper()
    inside = plan.range_problems(saved, 48.48e6, 6838, 7090, (5000, 50000))
    assert inside == []
    out = plan.range_problems(saved, 1e6, 100, 10_000, (100, 1000))
    assert len(out) == 3 and "budget" in out[0] and "n = 100" in out[1] and "says nothing" in out[2]


def test_plan_on_a_folder_prints_writes_and_refuses_outside_the_range(photo_folder, tmp_path, law_file, capsys):
    report = tmp_path / "report"
    rc = cli.main(["plan", str(photo_folder), "--budget", "6kB", "--law", str(law_file), "--processes", "1",
                   "--bootstrap", "20", "--distances", "1", "2", "4", "8", "15", "--report", str(report)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = captured.out
    assert "storage-optimal: n = 12" in out and "original format" in out and "18 files listed" in out
    assert "converted:" in out and "2 skipped" in out
    assert "How hard should you compress?" in out  # points to the book's conclusions chapter
    result = json.loads((report / "plan.json").read_text())
    assert result["budget_bytes"] == 6_000 and result["images"]["usable_in_sample"] == 16
    assert {s["id"] for s in result["images"]["skipped"]} == {"a/notes.txt", "b/broken.jpg"}
    opt = result["optimum"]
    assert opt["n_interval"][0] <= opt["n_law"] <= opt["n_interval"][1]
    assert opt["error_interval"][0] <= opt["error"] <= opt["error_interval"][1]
    curve = result["size_curve"]
    assert np.all(np.diff(curve["mean"]) < 0)  # fewer bytes at larger distances
    L = opt["L_bytes"]
    # the distance giving L lies between the grid points whose mean sizes bracket L
    j = int(np.searchsorted(-np.asarray(curve["mean"]), -L))
    assert curve["mean"][j] <= L <= curve["mean"][j - 1] and opt["distance_note"] == ""
    assert curve["distance"][j - 1] <= opt["distance"] <= curve["distance"][j]
    assert opt["distance_interval"][0] <= opt["distance"] <= opt["distance_interval"][1]
    assert result["original_format"]["n"] == min(16, int(6_000 // result["original_format"]["L_bytes"]))
    assert result["original_format"]["error"] > opt["error"]
    md = (report / "plan.md").read_text()
    assert "plan.png" in md and "b/broken.jpg" in md and "composited over white" in md
    assert (report / "plan.png").read_bytes()[:4] == b"\x89PNG"
    # a budget far outside the law's storage range: refused before any image is encoded
    rc = cli.main(["plan", str(photo_folder), "--budget", "1GB", "--law", str(law_file), "--processes", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "OUTSIDE THE LAW'S FITTED RANGE" in err and "--extrapolate" in err


def test_extrapolate_plans_anyway_and_says_so_loudly(photo_folder, tmp_path, capsys):
    rc = cli.main(["plan", str(photo_folder), "--budget", "5MB", "--processes", "1", "--distances", "2", "15",
                   "--report", str(tmp_path / "r"), "--extrapolate"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "BORROWED" in captured.out and "WARNING: EXTRAPOLATING" in captured.out
    assert "says nothing about images of this size" in captured.out  # 96x80 crops are far below full-size L
    assert json.loads((tmp_path / "r" / "plan.json").read_text())["extrapolated"] is True


def test_plan_input_errors_are_one_line(photo_folder, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for args, message in ((["--budget", "1XB"], "is not a size"),
                          (["--budget", "1MB", "--law", "book:none/none"], "no committed fit"),
                          (["--budget", "1MB", "--sample", "0"], "--sample must be"),
                          (["--budget", "1MB", "--distances", "3"], "at least two different distances")):
        rc = cli.main(["plan", str(photo_folder), *args, "--report", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    rc = cli.main(["plan", str(tmp_path / "empty"), "--budget", "1MB", "--report", str(tmp_path / "r")])
    assert rc == 2 and "holds no files" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- issue 33 --------------------


@pytest.mark.parametrize("text,message", [("-5MB", "must be a positive size"), ("-3", "must be a positive size"),
                                          ("1e-3", "less than one byte"), ("0.5", "less than one byte")])
def test_negative_and_sub_byte_sizes_are_refused(text, message):
    """Issue 33, item 5: 1e-3 was accepted (and shown as '0 B'); -5MB said 'not a size'."""
    with pytest.raises(ValueError, match=message):
        parse_size(text)


def test_plan_negative_budget_is_one_line_naming_the_budget(photo_folder, tmp_path, capsys):
    """Issue 33, item 5: `--budget -5MB` got argparse's 'expected one argument'."""
    rc = cli.main(["plan", str(photo_folder), "--budget", "-5MB", "--report", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "--budget" in err and "must be a positive size" in err and "expected one argument" not in err
    assert not (tmp_path / "r").exists()


def test_report_folder_under_proc_is_one_clear_line(photo_folder, capsys):
    """Issue 33, item 5: an OUT (here the report folder) under /proc gave a raw [Errno 2]."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here")
    rc = cli.main(["plan", str(photo_folder), "--budget", "1MB", "--report", "/proc/storage-plan"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Errno" not in err
    assert "--report /proc/storage-plan cannot be written" in err and "choose" in err


def hand_sample(mean_sizes, grid, original=40_000, images=20, listed=None):
    """A SizeSample whose images take ``mean_sizes`` bytes at ``grid`` (+-10 % per image)."""
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.9, 1.1, size=(images, 1))
    sizes = np.round(scale * np.asarray(mean_sizes, float)[None, :]).astype(np.int64)
    return plan.SizeSample([f"img{k}" for k in range(images)], sizes, np.asarray(grid, float),
                           np.round(scale[:, 0] * original).astype(np.int64), np.full(images, 10_000, np.int64),
                           listed=listed or images, sampled=images)


def test_predicted_errors_above_one_are_clipped_said_and_drawn(tmp_path):
    """Issue 33, item 2: errors 1.047, 1.249, 2.527 were printed and the figure was blank."""
    sample = hand_sample([20_000, 9_000, 5_000], [1.0, 4.0, 15.0], images=20, listed=300)
    result = plan.make_plan(sample, laws.load("paper:food101"), 1e6, extrapolate=True, n_boot=0)
    assert result.prediction.above_one  # the borrowed law gives errors above 1 at 1 MB and 300 images
    text = "\n".join(plan.summary_lines(result))
    printed = [float(x) for x in re.findall(r"predicted error (\d+\.\d+)", text)]
    assert printed and max(printed) <= 1.0, text
    assert "above 1" in text and "outside" in text
    assert result.to_dict()["optimum"]["error"] <= 1.0
    fig = plan.figure(result)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    curves = [ln for ln in ax.get_lines() if len(ln.get_ydata()) > 2]
    assert len(curves) >= 3
    for line in curves:  # every scheme is drawn inside the axes, not above them
        y = np.asarray(line.get_ydata(), float)
        assert np.isfinite(y).any() and np.nanmin(y) <= hi and np.nanmax(y) <= hi, line.get_label()
    assert any("above 1" in t.get_text() for t in ax.texts + [ax.title]) or "above 1" in str(
        [h.get_label() for h in ax.get_lines()])


def test_capped_distance_keeps_only_the_images_that_fit(tmp_path):
    """Issue 33, item 1: L* beyond the largest distance kept every image (171 % of the budget)."""
    sample = hand_sample([20_000, 9_000, 5_000], [1.0, 4.0, 15.0], images=20, listed=300)
    budget = 1e6
    result = plan.make_plan(sample, laws.load("paper:food101"), budget, extrapolate=True, n_boot=0)
    assert result.prediction.L < 5_000 and result.distance == 15.0  # the law asks for less than d = 15 gives
    mean_15 = float(sample.sizes[:, -1].mean())
    assert result.n_optimum == int(budget // mean_15) < 300  # n shrinks to what fits at d = 15
    text = "\n".join(plan.summary_lines(result))
    assert f"keeps {result.n_optimum:,} of your images" in text and "largest distance" in text
    assert result.to_dict()["optimum"]["bytes"] <= budget


# ---------------------------------------------------------------- issue 33: adaptive sampling ---


def tiny_folder(root, n=400):
    """``n`` small PNGs in two classes (their pixels matter only to the time estimate)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(n):
        folder = root / ("a" if k % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(folder / f"{k:04d}.png")
    return root


def synthetic_sizes(task):
    """plan.measure_chunk with sizes from a model: image i takes s_i * 40 kB * exp(-d / 4), s_i
    log-normal (sd 0.25) from its id; the same numbers whichever distances are asked."""
    out = []
    for image_id in task.ids:
        s = float(np.exp(np.random.default_rng(abs(hash(image_id)) % 2 ** 32).normal(0, 0.25)))
        out.append({"id": image_id, "source_bytes": 50_000, "ok": True, "notes": [], "seconds": 0.001,
                    "pixels": 10_000, "sizes": [int(s * 40_000 * np.exp(-d / 4)) for d in task.grid]})
    return out


def settings(law_file, **kw):
    return plan.PlanSettings(law=str(law_file), bootstrap=0, extrapolate=True, **kw)


def test_adaptive_sampling_gives_the_exhaustive_distance_on_the_same_images(photo_folder, law_file):
    """The adaptive sample measures the grid distances on either side of the answer, so on the
    same images it chooses the distance that every image at every distance gives (and the
    distance compress --budget aims at), with fewer encodes."""
    from storage_scaling.practice import cluster, compress_folder as cf, images

    found = images.open_images(photo_folder)
    with cluster.open_pool(processes=1) as pool:
        full = plan.plan_images(found, 6_000, settings(law_file, exhaustive=True), pool, progress=False, log=lambda line: None)
        quick = plan.plan_images(found, 6_000, settings(law_file, precision=0.0), pool, progress=False,
                                 log=lambda line: None)
    info = quick.sample.sampling
    assert info["mode"] == "adaptive" and sorted(quick.sample.ids) == sorted(full.sample.ids)
    assert len(info["distances"]) < len(plan.DEFAULT_GRID) and info["encodes"] < info["exhaustive_encodes"]
    assert quick.distance == pytest.approx(full.distance, abs=1e-9)
    assert quick.n_optimum == full.n_optimum
    usable = len(found)
    assert cf.fit_budget(quick, usable, 6_000)["distance"] == pytest.approx(
        cf.fit_budget(full, usable, 6_000)["distance"], abs=1e-9)
    # the measured distances bracket the answer: its grid neighbours are among them
    assert plan.bracket(plan.DEFAULT_GRID, full.distance) <= set(info["distances"])


def test_adaptive_sampling_stops_early_within_the_curves_resolution(tmp_path, law_file, monkeypatch):
    monkeypatch.setattr(plan, "measure_chunk", synthetic_sizes)
    from storage_scaling.practice import cluster, images

    found = images.open_images(tiny_folder(tmp_path / "tiny"))
    with cluster.open_pool(processes=1) as pool:
        full = plan.plan_images(found, 2e6, settings(law_file, exhaustive=True), pool, progress=False,
                                log=lambda line: None)
        quick = plan.plan_images(found, 2e6, settings(law_file), pool, progress=False, log=lambda line: None)
        precise = plan.plan_images(found, 2e6, settings(law_file, precision=0.04), pool, progress=False,
                                   log=lambda line: None)
    grid = np.asarray(plan.DEFAULT_GRID)
    j = int(np.searchsorted(grid, full.distance))
    step = grid[min(j, len(grid) - 1)] - grid[max(j - 1, 0)]  # the grid's spacing around the answer
    assert abs(quick.distance - full.distance) <= step
    info = quick.sample.sampling
    assert info["encodes"] <= plan.cost_cap(len(found), 3) < full.sample.sampling["encodes"] / 4
    assert info["encodes"] < len(found)  # the plan costs less than compressing every image once
    assert "cost" in info["stopped"] or "+-" in info["stopped"]
    # an explicit --precision lifts the cost cap and samples until it is met
    assert precise.sample.sampling["relative_precision"] <= 0.04
    assert len(precise.sample.ids) > len(quick.sample.ids)
    assert abs(precise.distance - full.distance) <= step / 2


def test_time_estimate_is_printed_before_the_sample_starts(photo_folder, law_file, monkeypatch, capsys):
    real = plan.measure_chunk
    seen = []

    def watch(task):
        seen.append(capsys.readouterr().out)
        return real(task)

    monkeypatch.setattr(plan, "measure_chunk", watch)
    rc = cli.main(["plan", str(photo_folder), "--budget", "6kB", "--law", str(law_file), "--processes", "1",
                   "--bootstrap", "0", "--report", str(photo_folder.parent / "r")])
    out = capsys.readouterr().out
    assert rc == 0
    assert seen and seen[0].startswith("estimated time: ") and "to measure sizes" in seen[0]
    assert "compressing all 18 images once takes about" in seen[0]
    assert "sample (adaptive):" in out and "encodes, against" in out
    saved = json.loads((photo_folder.parent / "r" / "plan.json").read_text())
    assert saved["sampling"]["mode"] == "adaptive"


@pytest.mark.parametrize("args,message", [(["--precision", "2"], "--precision is a relative half-width"),
                                          (["--max-side", "3"], "--max-side must be")])
def test_bad_sampling_options_are_one_line(photo_folder, tmp_path, capsys, args, message):
    rc = cli.main(["plan", str(photo_folder), "--budget", "6kB", *args, "--report", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
