"""Models as plug-ins: what the experiment runner trains, named by one key (the ``model`` column).

The runner never knows how a model learns. It hands the model the decoded uint8 pixels of a
run's training set and asks for a fitted object that scores any image set. A model is:

``key``                       the name in specs, result rows and table paths (``airnet``, ...);
``params(overrides)``         every knob of a run as a flat dict of plain values (recorded in each row;
                              ``overrides`` is the spec block's ``train`` table), refusing unknown keys;
``fit(pixels, labels, params, num_classes, seed, device)``
                              -> a :class:`Fitted` with ``evaluate(pixels, labels) -> metrics``,
                              ``metrics`` of the training itself (seconds, steps, ...) and ``device``.

Adding a model is one class registered in :data:`MODELS`; nothing in the runner changes. Today's
models are the neural networks of :mod:`models`, trained by :mod:`train` (``airnet`` for 32 px,
``resnet18_64`` for 64 px, and their small smoke-size variants).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol


class Fitted(Protocol):
    metrics: dict  # about the training: train_seconds, images_per_second, steps, ...
    device: object

    def evaluate(self, pixels, labels) -> dict: ...


class Model(Protocol):
    key: str

    def params(self, overrides: dict) -> dict: ...

    def fit(self, pixels, labels, params: dict, num_classes: int, seed: int, device=None) -> Fitted: ...


@dataclass
class _TrainedNetwork:
    trained: object  # train.Trained
    metrics: dict

    @property
    def device(self):
        return self.trained.device

    def evaluate(self, pixels, labels) -> dict:
        return self.trained.evaluate(pixels, labels)


@dataclass(frozen=True)
class Network:
    """A neural network of :mod:`models` trained from scratch by :func:`train.train`."""

    key: str

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

    def fit(self, pixels, labels, params: dict, num_classes: int, seed: int, device=None) -> _TrainedNetwork:
        from . import train

        config = train.recipe(self.key, **{k: params[k] for k in self.override_keys() if k in params})
        result = train.train(pixels, labels, config=config, seed=seed, num_classes=num_classes, device=device,
                             keep_model=True)
        budget = {"steps": result.steps} if config.protocol == "fixed_epochs" else {"epochs": result.epochs}
        return _TrainedNetwork(result.trained, {**budget, "n_train": result.n_train,
                                                "train_seconds": result.train_seconds,
                                                "images_per_second": result.images_per_second,
                                                "final_loss": result.final_loss})


def _networks() -> dict[str, Callable[[], Model]]:
    from . import models

    return {name: (lambda name=name: Network(name)) for name in models.NETWORKS}


def registry() -> dict[str, Callable[[], Model]]:
    """Model key -> constructor. Networks come from :data:`models.NETWORKS`."""
    return {**_networks()}


def get(key: str) -> Model:
    """The model plug-in for ``key``; an unknown key names the known ones."""
    known = registry()
    if key not in known:
        raise ValueError(f"unknown model {key!r}; choose one of {sorted(known)}")
    return known[key]()
