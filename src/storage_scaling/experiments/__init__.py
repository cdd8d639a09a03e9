"""Every experiment of the paper as data: spec files expanded into runs, and the resumable runner.

* :mod:`.kinds`   one class per experiment (grid, budget, original, naive, randomized, cross, select,
                  quality, blog): how a dataset block becomes runs, and what a run trains on;
* :mod:`.inputs`  what a model receives: a run's images as stores and rows, its storage metrics, and
                  the held-out 20 % stored the same way;
* :mod:`.specs`   the spec files ``specs/<experiment>.<profile>.toml`` (every knob of every run,
                  recorded in each result row), their key checks and their expansion into runs;
* :mod:`.runner`  trains each run's model (a plug-in of :mod:`storage_scaling.learn.learners`) once,
                  scores it and appends one row per run to ``<result file>_<model>.csv``;
* :mod:`.command` ``storage-scaling run EXPERIMENT`` (alias: ``python -m storage_scaling.experiments``).

Adding an experiment: a class in :mod:`.kinds` plus its two spec files. Adding a model: a class
in :mod:`storage_scaling.learn.learners` plus blocks naming it in the spec files.
"""

from .kinds import EVAL_KEYS, EXPERIMENTS, ORIGINAL, get, result_path, table_name
from .runner import (book_table, book_tables, committed_rows, default_results_path, execute_group, recorded_rows,
                     results_folder, rows_for, run_experiment, run_table, setting_progress, table)
from .specs import build_runs, check_spec, default_spec, models_of, restrict, spec_file, table_params

__all__ = [
    "EVAL_KEYS", "EXPERIMENTS", "ORIGINAL", "book_table", "book_tables", "build_runs", "check_spec", "committed_rows",
    "default_results_path", "default_spec", "execute_group", "get", "models_of", "recorded_rows", "restrict", "result_path",
    "results_folder", "rows_for", "run_experiment", "run_table", "setting_progress", "spec_file", "table",
    "table_name", "table_params",
]
