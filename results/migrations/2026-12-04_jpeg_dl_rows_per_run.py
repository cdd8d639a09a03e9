"""Migration of 2026-12-04: chapter 7's table becomes a table of the runner (issue 29, item 5).

Before: ``results/jpeg_dl.csv``, written by ``learn/jpeg_dl.run`` (its own resumable store), one row
per (seed, variant, evaluation). After: ``results/jpeg_dl_cnn_cpu.csv``, the runner's table of the
``jpeg_dl`` experiment (``specs/jpeg_dl.full.toml``), one row per run (seed, variant) with every
evaluation as JSON, keyed by the run's parameters like every other table.

Nothing is re-run: each run's row is rebuilt from the old rows of its (seed, variant), its
provenance (code version, device, time) kept. The script checks that the new table, expanded again
(``jpeg_dl.evaluation_rows``), equals the old one value for value before it removes the old one.
Run once from the repository root: ``python results/migrations/2026-12-04_jpeg_dl_rows_per_run.py``.
"""

import json

import pandas as pd

from storage_scaling import paths, tables
from storage_scaling.experiments import kinds, runner, specs
from storage_scaling.learn import jpeg_dl
from storage_scaling.results import ResultsStore
from storage_scaling.results_integrity import check_row

EVALUATION = ("scored_on", "attack", "attack_mode", "eps_255", "eval_mode", "accuracy", "n_eval", "tta")
UNIT = ("train_seconds", "eval_seconds", "images_per_second", "final_loss", "n_train", "train_steps", "epochs",
        "torch_threads", "bpp_learned", "bpp_learned_scan", "bpp_seconds")


def plain(v):
    """A CSV value as the runner would have held it (numpy scalars to Python, NaN kept)."""
    return v.item() if hasattr(v, "item") else v


def main() -> None:
    results = paths.results_dir()
    old_csv, old_json = results / "jpeg_dl.csv", results / "jpeg_dl.json"
    old, meta = pd.read_csv(old_csv), json.loads(old_json.read_text())
    spec = specs.default_spec("jpeg_dl", "full")
    runs = specs.build_runs("jpeg_dl", spec)
    new_csv = kinds.result_path("jpeg_dl", "cnn_cpu", results)
    assert not new_csv.exists(), f"{new_csv} exists already"
    store = ResultsStore(new_csv)
    for run in runs:
        rows = old[(old["seed"] == run["seed"]) & (old["variant"] == run["variant"])]
        first = rows.iloc[0]
        assert int(first["batch_size"]) == run["batch_size"] and int(first["train_steps"]) == run["steps"]
        evaluations = [{k: plain(r[k]) for k in EVALUATION} for _, r in rows.iterrows()]
        clean = evaluations[0]
        assert clean["scored_on"] == "test" and clean["eval_mode"] in ("none", "soft")
        tables_text = first["tables_json"] if isinstance(first["tables_json"], str) else ""
        metrics = {"accuracy": clean["accuracy"], "error": 1.0 - clean["accuracy"], "n_test": clean["n_eval"],
                   "evaluations": json.dumps(evaluations, separators=(",", ":")),
                   **{k: plain(first[k]) for k in UNIT}, "tables_json": tables_text,
                   **{k: plain(first[k]) for k in jpeg_dl.REFERENCE_COLUMNS}}
        metrics = runner.row_metrics(run, metrics)
        check_row(run, metrics, str(new_csv))
        store.append(run, metrics, {k: str(first[k]) for k in ("code_version", "device", "finished_at")})
    frame = store.frame()
    table_params = specs.table_params("jpeg_dl", "full", "cnn_cpu")
    tables.write_table(new_csv.stem, frame, table_params, meta["seconds"], results_dir=results)
    new_json = new_csv.with_suffix(".json")
    written = json.loads(new_json.read_text())
    written.update({k: meta[k] for k in ("code_version", "device", "finished_at")},
                   migrated_from="results/jpeg_dl.csv (rows per evaluation), 2026-12-04")
    new_json.write_text(json.dumps(written, indent=2) + "\n")

    again = jpeg_dl.evaluation_rows(tables.load_committed(new_csv.stem, table_params, results).frame)
    assert list(again.columns) == list(old.columns), (list(again.columns), list(old.columns))
    # the learned steps sit on one row per JPEG-DL run: "" on the others here, an empty field (NaN) as read
    pd.testing.assert_frame_equal(again.reset_index(drop=True), old.fillna({"tables_json": ""}), check_dtype=False,
                                  check_exact=True)
    old_csv.unlink()
    old_json.unlink()
    print(f"{len(old)} rows of {old_csv.name} -> {len(frame)} runs in {new_csv.name}; expanded again, identical")


if __name__ == "__main__":
    main()
