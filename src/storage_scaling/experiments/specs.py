"""Specs: the readable files that say every knob of an experiment's runs, and their expansion.

A spec is ``{"datasets": [block, ...]}``; a block names a ``dataset`` and a ``model`` (a key of
:mod:`storage_scaling.learn.learners`), the data (pool, subset sizes, formats, seeds) and the model's
``train`` overrides. The defaults are package files ``specs/<experiment>.<profile>.toml`` (TOML
has no null: the original format is the string ``"original"``, an absent key is its default).
Unknown keys anywhere are refused with the valid ones, and every value is checked against what its key
accepts (:data:`COMMON_BLOCK_KEYS`, each experiment's ``keys``; the model's ``train`` settings against
the types of its configuration), before any data is read.

A spec may also hold ``overrides`` (what ``storage-scaling run NAME --set KEY=VALUE`` adds): values
set in every block, ``train.KEY`` reaching into its ``train`` table. They are checked like the
blocks' own keys, and every run records them (its ``overrides`` parameter, :func:`overrides_label`),
so a run with an override is never a run of the spec without it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import json
import numbers
import re
import tomllib
from importlib import resources

from .. import data
from ..compress import codecs
from ..results import canonical, run_key
from . import kinds, values

PROFILES = ("smoke", "full")
OVERRIDES = "overrides"  # the spec key of the values set in every block, and the runs' parameter recording them
SPEC_KEYS = ("datasets", OVERRIDES)
NAMING_KEYS = ("dataset", "model")  # what a block is; --datasets and --models choose among blocks, never set
ALL = ", or absent for all"
COMMON_BLOCK_KEYS: dict[str, values.Value] = {  # the keys of every block, and what each accepts
    "dataset": values.Text("a dataset name", '"cifar10-jpg"', required=True),
    "model": values.Text("a model name", '"probe"', required=True),
    "pool": values.Scalar(texts=("paper", "all"), example='"paper"'),
    # smoke runs: the first k classes, the first images of the nested order, a subset of the scoring set
    "classes": values.Scalar("integer", 2, none=True, none_words=ALL, example="5"),
    "pool_limit": values.Scalar("integer", 1, none=True, none_words=ALL, example="400"),
    "test_n": values.Scalar("integer", 1, none=True, none_words=ALL, example="300"),
    "eval_split": values.Scalar(texts=("test", "val"), example='"test"'),
    "effort": values.Scalar("integer", *codecs.EFFORT_RANGE, name="libjxl effort", example="7"),
    "seeds": kinds.SEEDS,
    "train": values.Table("a table of the model's settings", "{ steps = 12 }"),  # checked by the model
}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"experiments have profiles {PROFILES}, not {profile!r}")
    return profile


def spec_file(name: str, profile: str):
    return resources.files(__package__).joinpath("specs", f"{kinds.get(name).name}.{check_profile(profile)}.toml")


def default_spec(name: str, profile: str) -> dict:
    """The spec of experiment ``name`` in ``profile`` (from its package file), as a fresh dict."""
    return tomllib.loads(spec_file(name, profile).read_text())


def block_keys(name: str) -> tuple[str, ...]:
    """The keys a dataset block of experiment ``name`` may hold."""
    return tuple(COMMON_BLOCK_KEYS) + tuple(kinds.get(name).keys)


def check_values(name: str, block: dict, where: str) -> None:
    """Every value of a block against what its key accepts (a required key must be there);
    ``where`` names the block in a message."""
    for key, value in {**COMMON_BLOCK_KEYS, **kinds.get(name).keys}.items():
        if key in block:
            value.check(key, block[key], where)
        elif value.required:
            raise value.missing(key, where)


SETTING_TYPES = {"int": ("an integer", lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)),
                 "float": ("a number", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)),
                 "str": ("a string", lambda v: isinstance(v, str)),
                 "bool": ("true or false", lambda v: isinstance(v, bool))}


def setting_types(model) -> dict[str, str]:
    """The declared type of each ``train`` setting of a model (its configuration's annotations, e.g.
    ``"int | None"``); empty for a model whose configuration is not known here."""
    from ..learn import learners

    if isinstance(model, learners.Network):
        from ..learn.train import TrainConfig as config
    elif isinstance(model, learners.Probe):
        from ..learn.probe import ProbeConfig as config
    elif isinstance(model, learners.Pretrained):
        from ..learn.pretrained import PretrainedConfig as config
    elif isinstance(model, learners.Segmenter):
        from ..learn.segmentation import SegmentationConfig as config
    else:
        return {}
    return {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            for f in dataclasses.fields(config)}


def check_settings(model, overrides: dict, where: str) -> None:
    """The types of a block's ``train`` settings (their ranges: the model's ``params``)."""
    types = setting_types(model)
    for key, value in overrides.items():
        parts = [p.strip() for p in types.get(key, "").split("|")]
        if not all(p in SETTING_TYPES or p == "None" for p in parts) or (value is None and "None" in parts):
            continue
        if not any(SETTING_TYPES[p][1](value) for p in parts if p != "None"):
            words = " or ".join(SETTING_TYPES[p][0] for p in parts if p != "None")
            raise ValueError(f"{key} in 'train' of {where} must be {words}{' (or null)' if 'None' in parts else ''}; "
                             f"got {value!r}")


def _refuse_unknown(keys, valid, where: str) -> None:
    unknown = sorted(set(keys) - set(valid), key=str)
    if unknown:
        hints = [f"{m[0]!r} for {k!r}" for k in unknown
                 for m in [difflib.get_close_matches(str(k), valid, n=1)] if m]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ValueError(f"unknown key(s) {unknown} in {where}{hint}; valid keys: {sorted(valid)}")


def parse_set(items) -> dict:
    """``--set KEY=VALUE`` arguments as an ``overrides`` table: each value parsed as a TOML value
    (``seeds=[0]``, ``train.lr=0.2``, ``pool="all"``; a bare word such as ``zero_below=auto`` is a
    string). A malformed argument is one line naming it."""
    out = {}
    for item in items or ():
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--set {item!r} must be KEY=VALUE, e.g. --set seeds=[0] or --set train.steps=100")
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError as exc:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text.strip()):
                raise ValueError(f"--set {item!r}: {text.strip()!r} is not a TOML value ({exc}); write lists as "
                                 "[0, 1], strings in quotes") from exc
            value = text.strip()
        out[key] = value
    return out


def with_overrides(spec: dict, overrides: dict) -> dict:
    """The spec with ``overrides`` added to its own (a later value of a key replaces an earlier one)."""
    return {**spec, OVERRIDES: {**spec.get(OVERRIDES, {}), **overrides}} if overrides else spec


def overrides_label(overrides: dict) -> str:
    """The overrides as a run records them: ``KEY=VALUE`` (JSON values) sorted by key, joined by "; "."""
    return "; ".join(f"{k}={json.dumps(overrides[k], sort_keys=True, default=str)}" for k in sorted(overrides))


def effective_block(block: dict, overrides: dict) -> dict:
    """A block with the spec's overrides set in it (``train.KEY`` in its ``train`` table), as a new dict."""
    out = copy.deepcopy(block)
    for key, value in overrides.items():
        head, dot, setting = key.partition(".")
        if dot:
            out[head] = {**out.get(head, {}), setting: copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_overrides(name: str, spec: dict) -> dict:
    """The spec's overrides, each key refused before any work unless a block may hold it (whether
    each block's model has a ``train.KEY`` setting: :func:`_check_block_overrides`)."""
    from ..learn import learners

    overrides = spec.get(OVERRIDES, {})
    where = f"the overrides (--set) of the {name!r} spec"
    if not isinstance(overrides, dict):
        raise ValueError(f"{where} must be a table of KEY = VALUE, not {overrides!r}")
    models = []
    for b in spec["datasets"]:
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):  # refused by name later
            models.append(learners.get(b["model"]))
    settings = sorted({f"train.{k}" for m in models for k in m.override_keys()})
    _refuse_unknown(overrides, [k for k in block_keys(name) if k not in NAMING_KEYS + ("train",)] + settings, where)
    return overrides


def _check_block_overrides(name: str, overrides: dict, model, where: str) -> None:
    for key in overrides:
        setting = key[len("train."):] if key.startswith("train.") else None
        if setting is not None and setting not in model.override_keys():
            raise ValueError(f"{key} in the overrides (--set) of the {name!r} spec: model {model.key!r} of {where} "
                             f"has no setting {setting!r}; its settings: {sorted(model.override_keys())} (run the "
                             "blocks of other models alone with --models)")


def check_spec(name: str, spec) -> dict:
    """Refuse a malformed spec before any work: its shape, every key against the valid ones, every
    value against what its key accepts (type and range, :func:`check_values`), the experiment's rules
    between keys, and the model's ``train`` settings (:func:`check_settings`, then the model's own
    checks); each block as the spec's ``overrides`` leave it. Each refusal is one line naming the
    block and the key."""
    from ..learn import learners

    kinds.get(name)
    if not isinstance(spec, dict):
        raise ValueError(f"a spec of experiment {name!r} is an object {{\"datasets\": [{{...}}, ...]}}, "
                         f"not a {type(spec).__name__}")
    _refuse_unknown(spec, SPEC_KEYS, f"the spec of experiment {name!r}")
    blocks = spec.get("datasets")
    if not isinstance(blocks, list) or not blocks:
        raise ValueError(f"experiment {name!r} needs a spec with a non-empty 'datasets' list (one object per "
                         "dataset)")
    set_everywhere = _check_overrides(name, spec)
    for i, block in enumerate(blocks):
        where = f"datasets[{i}] of the {name!r} spec"
        if not isinstance(block, dict):
            raise ValueError(f"{where} must be an object with keys such as 'dataset' and 'model', not {block!r}")
        if isinstance(block.get("dataset"), str):
            where = f"datasets[{i}] ({block['dataset']}) of the {name!r} spec"
        _refuse_unknown(block, block_keys(name), where)
        for key in NAMING_KEYS:
            if key not in block:
                raise ValueError(f"{where} needs {key!r}")
        if not isinstance(block.get("train", {}), dict):
            raise ValueError(f"'train' in {where} must be an object of the model's settings, not {block['train']!r}")
        block = effective_block(block, set_everywhere)
        overrides = block.get("train", {})
        check_values(name, block, where)
        try:
            task = data.spec(block["dataset"]).task
            model = learners.get(block["model"])
        except ValueError as exc:
            raise ValueError(f"{exc} (in {where})") from exc
        if model.task != task:
            fitting = sorted(k for k, make in learners.registry().items() if make().task == task)
            raise ValueError(f"model {block['model']!r} learns {model.task}, and dataset {block['dataset']!r} is a "
                             f"{task} dataset (in {where}); its models: {fitting}")
        _check_block_overrides(name, set_everywhere, model, where)
        kinds.get(name).check_block(block, where)  # the experiment's rules between keys
        hint = " (set the model with the block's 'model' key)" if "network" in overrides else ""
        _refuse_unknown(overrides, model.override_keys(), f"'train' of {where}{hint}")
        check_settings(model, overrides, where)
        if kinds.get(name).with_model_params:
            try:
                model.params(overrides)
            except ValueError as exc:
                raise ValueError(f"'train' of {where}: {exc}") from exc
    return spec


def models_of(spec: dict) -> list[str]:
    return list(dict.fromkeys(b["model"] for b in spec["datasets"]))


def matching_blocks(spec: dict, datasets=None, models=None) -> list[dict]:
    """The spec's blocks of some datasets and/or models (all of them when both are None)."""
    return [b for b in spec["datasets"]
            if (not datasets or b["dataset"] in set(datasets)) and (not models or b["model"] in set(models))]


def restrict(spec: dict, datasets=None, models=None) -> dict:
    """The spec's blocks of some datasets and/or models (runs keep their identity, so the whole spec
    later resumes from these rows)."""
    blocks = matching_blocks(spec, datasets, models)
    if not blocks:
        raise ValueError(f"no block of this spec has dataset in {list(datasets or [])} and model in "
                         f"{list(models or [])} (it has {[(b['dataset'], b['model']) for b in spec['datasets']]})")
    return {**spec, "datasets": blocks}


def base_params(name: str, block: dict) -> dict:
    """Parameters every run of a dataset block shares, including every knob of the model."""
    from ..learn import learners

    data.spec(block["dataset"])  # unknown dataset -> ValueError
    params = {
        "experiment": name, "dataset": block["dataset"], "model": block["model"], "pool": block.get("pool", "paper"),
        "classes": block.get("classes"), "pool_limit": block.get("pool_limit"), "test_n": block.get("test_n"),
        "eval_split": block.get("eval_split", "test"), "effort": int(block.get("effort", 7)),
        "test_codec": "original", "test_distance": None,
    }
    if kinds.get(name).with_model_params:
        params.update(learners.get(block["model"]).params(block.get("train", {})))
    return params


def build_runs(name: str, spec: dict, checked: bool = False) -> list[dict]:
    """Expand a spec into its runs (plain dicts). Raises ValueError for any bad input: the spec is
    checked here (:func:`check_spec`) unless the caller has just checked this very spec
    (``checked=True``: the command checks every spec before any experiment starts)."""
    experiment = kinds.get(name)
    if not checked:
        check_spec(name, spec)
    overrides = spec.get(OVERRIDES, {})
    runs: list[dict] = []
    for block in spec["datasets"]:
        block = effective_block(block, overrides)
        base = base_params(name, block)
        if overrides:  # recorded: a run with an override is not the run of the spec without it
            base[OVERRIDES] = overrides_label(overrides)
        the_pool = data.pool(block["dataset"], base["pool"], base["classes"], base["pool_limit"])
        runs += experiment.expand(block, base, the_pool, [int(s) for s in block.get("seeds", [0])])
    keys = [run_key(r) for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"experiment {name!r}: the spec lists the same run twice")
    return runs


def table_params(name: str, profile: str, model: str, spec: dict | None = None) -> dict:
    """The parameters one experiment's table of one model is identified by (``tables.profile_table``)."""
    spec = restrict(spec if spec is not None else default_spec(name, profile), models=[model])
    return {"experiment": kinds.get(name).name, "profile": profile, "model": model,
            "spec": json.loads(canonical(spec))}
