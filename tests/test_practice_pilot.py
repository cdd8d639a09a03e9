"""`storage-scaling pilot`: a toy probe grid on generated labelled images; its law feeds `plan`."""

import json
import shlex

import numpy as np
import pytest
from PIL import Image

from storage_scaling import cli, threads
from storage_scaling.practice import cluster, laws, pilot


def striped_classes(root, per_class=60, size=24, amplitude=6.0, seed=0):
    """Three classes that differ only by a fine, faint texture under noise: heavy compression
    erases it (error grows as L falls) and more training images help (error falls with n)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    patterns = {"vertical": (xx % 2) * 2 - 1, "horizontal": (yy % 2) * 2 - 1, "checker": ((xx + yy) % 2) * 2 - 1}
    for name, pattern in patterns.items():
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            image = (rng.uniform(60, 190, 3) + rng.uniform(-1, 1, 3) * (xx[..., None] / size - 0.5) * 80
                     + amplitude * pattern[..., None] + rng.normal(0, 18, (size, size, 3)))
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / name / f"{k:03d}.png")
    return root


TOY = pilot.Settings(ns=(6, 12, 24, 48), distances=(1.0, 4.0, 12.0), size=24, test_fraction=0.4, val_fraction=0.2,
                     centroids=16, kmeans_samples=5000, kmeans_iters=5)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy pilot, run once for the module: (folder, result, log lines)."""
    folder = striped_classes(tmp_path_factory.mktemp("toy") / "classes")
    logged = []
    with threads.limit(torch=1), cluster.open_pool(processes=1) as pool:  # before the per-test fixture
        result = pilot.run(folder, TOY, pool, progress=False, log=logged.append)
    return folder, result, logged


def test_toy_pilot_saves_a_law_that_plan_accepts(toy, tmp_path, capsys):
    folder, result, logged = toy
    assert "estimated time" in logged[1] and "3 classes" in logged[0]
    runs = result.runs
    assert len(runs) == 4 * 4 and set(runs["n"]) == {6, 12, 24, 48}
    by_format = runs.groupby("distance")["L"].mean()
    assert by_format[12.0] < by_format[4.0] < by_format[1.0] < by_format[0.0]
    assert runs.groupby("distance")["error"].mean()[12.0] > runs.groupby("distance")["error"].mean()[0.0]
    saved = result.saved
    assert saved.n_range == (6.0, 48.0) and saved.L_range == (runs["L"].min(), runs["L"].max())
    path = saved.save(tmp_path / "law.json")
    loaded = laws.load(str(path))  # refuses a law with no storage-optimal split
    assert loaded.params.as_dict() == pytest.approx(saved.params.as_dict()) and len(loaded.runs) == 16
    budget = float(np.sqrt(np.prod(saved.storage_range)))  # inside the fitted storage range
    rc = cli.main(["plan", str(folder), "--budget", f"{budget:.0f}", "--law", str(path), "--processes", "1",
                   "--sample", "12", "--bootstrap", "0", "--distances", "1", "4", "12", "--report",
                   str(tmp_path / "report"), "--extrapolate"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "your pilot law" in captured.out and "storage-optimal" in captured.out
    assert json.loads((tmp_path / "report" / "plan.json").read_text())["law"]["label"].startswith("your pilot law")


def test_pilot_command_refuses_a_folder_that_is_not_one_sub_folder_per_class(tmp_path, photo_folder, capsys):
    (photo_folder / "loose.jpg").write_bytes((photo_folder / "a" / "chelsea0.jpg").read_bytes())
    rc = cli.main(["pilot", str(photo_folder), "--save", str(tmp_path / "law.json"), "--processes", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "one sub-folder per class" in err and "loose.jpg" in err
    single = tmp_path / "single" / "only"
    single.mkdir(parents=True)
    (single / "x.jpg").write_bytes((photo_folder / "a" / "chelsea0.jpg").read_bytes())
    rc = cli.main(["pilot", str(tmp_path / "single"), "--save", str(tmp_path / "law.json"), "--processes", "1"])
    assert rc == 2 and "only 1 class" in capsys.readouterr().err
    assert not (tmp_path / "law.json").exists()


def test_pilot_settings_are_checked_before_any_work(tmp_path, capsys):
    folder = striped_classes(tmp_path / "classes", per_class=6)
    for args, message in ((["--distances", "0"], "--distances must be"), (["--seeds", "0"], "--seeds must be"),
                          (["--ns", "5"], "at least two training-set sizes"),
                          (["--ns", "5", "5000"], "the pool has")):
        rc = cli.main(["pilot", str(folder), "--save", str(tmp_path / "law.json"), "--processes", "1", *args])
        err = capsys.readouterr().err
        assert rc == 2 and message in err, (args, err)


# ---------------------------------------------------------------- issue 33 --------------------


def test_pilot_suggests_a_plan_command_that_runs(toy, tmp_path, capsys, monkeypatch):
    """Issue 33, item 4: pilot ended by suggesting a plan command that plan then refused."""
    folder, result, _ = toy
    monkeypatch.setattr(pilot, "run", lambda *a, **k: result)
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["pilot", str(folder), "--save", str(tmp_path / "law.json"), "--processes", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = [ln for ln in out.splitlines() if "storage-scaling plan" in ln]
    assert len(lines) == 1, out
    command = shlex.split(lines[0].split("next: ", 1)[1].split("  (", 1)[0])
    assert command[:2] == ["storage-scaling", "plan"] and "--law" in command
    rc = cli.main(command[1:] + ["--processes", "1", "--report", str(tmp_path / "report")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err  # the suggested command runs
    if "--extrapolate" not in command:
        assert "EXTRAPOLATING" not in captured.out


def test_pilot_with_a_law_plan_refuses_says_what_data_would_help(toy, tmp_path, capsys, monkeypatch):
    """Issue 33, item 4: a law with beta = 0 (no effect of L) was followed by a plan suggestion."""
    import dataclasses

    from storage_scaling import law

    folder, result, _ = toy
    flat = dataclasses.replace(result.saved, params=law.LawParams(A=0.5, alpha=0.3, B=0.0, beta=0.0, E=0.1))
    monkeypatch.setattr(pilot, "run", lambda *a, **k: dataclasses.replace(result, saved=flat))
    rc = cli.main(["pilot", str(folder), "--save", str(tmp_path / "law.json"), "--processes", "1"])
    captured = capsys.readouterr()
    assert rc == 3, captured
    assert "next:" not in captured.out and "--budget" not in captured.out  # no command that plan refuses
    assert "beta = 0" in captured.out and "--size" in captured.out and "--distances" in captured.out
    assert not (tmp_path / "law.json").exists() and (tmp_path / "law.csv").is_file()  # the runs are kept
