"""The value types every model loader shares, and the table of weight kinds plug-ins add to.

A :class:`PairSpec` names two registered architectures and a :class:`WeightsRef` for each; a
loader returns :class:`LoadedModel` and :class:`LoadedPair`. Kinds beyond ``file`` and ``random``
(``timm``, ``torchvision``) are added by the module that knows them (:mod:`se_core.models.zoo`)
with :func:`register_weights_kind`, so this module imports no loader.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from se_core.config import data_dir
from se_core.models.checkpoints import CheckpointMeta

USER_PREFIX = "user:"
"""Names of pairs a user builds from their own checkpoints (:mod:`se_core.models.user_models`)."""


class WeightsMissing(FileNotFoundError):
    """Trained weights are not on disk; the message names the file and how to get it."""


@dataclass(frozen=True)
class WeightsRef:
    """Where one model's weights live, by ``kind``:

    - ``file``: a checkpoint path (relative to the data dir, or absolute);
    - ``timm``: timm pretrained weights ``name.tag`` (e.g. ``seresnet50.a1_in1k``), from timm's cache;
    - ``torchvision``: a torchvision weights enum member (e.g. ``RegNet_Y_400MF_Weights.IMAGENET1K_V2``);
    - ``random``: no weights, a random initialisation seeded by ``int(location)`` (labelled as untrained).
    """

    kind: str
    location: str
    how_to_get: str = ""

    def path(self) -> Path:
        """The file these weights are (or would be) read from."""
        if self.kind in _KINDS:
            return _KINDS[self.kind].path(self)
        p = Path(self.location)
        return p if p.is_absolute() else data_dir() / p


@dataclass(frozen=True)
class ShippedRuns:
    """Where a pair trained by this project keeps its runs and results in ``data/``, so release,
    the shipped statistics and the Models page treat every such pair alike."""

    runs: str
    """data-relative folder of the pair's training runs (``runs/<run>/``, one per model and seed)"""
    results: str
    """stem of its results tables in ``data/results/`` (``<stem>.csv``, ``<stem>_summary.csv``, ...)"""
    docs_block: str
    """name of the results block in ``docs/training.md`` that ``python -m se_core.release`` fills"""


@dataclass(frozen=True)
class PairSpec:
    name: str
    title: str
    se_arch: str
    vanilla_arch: str
    se_weights: WeightsRef
    vanilla_weights: WeightsRef
    dataset: str
    note: str = ""
    shipped: ShippedRuns | None = None
    """Set for the project's own pairs: their weights are the seed-0 runs in ``shipped.runs``."""


@dataclass
class LoadedModel:
    """A model in eval mode with what is needed to feed and label it."""

    name: str
    model: nn.Module
    meta: CheckpointMeta
    resize: int | None = None
    source: str = ""

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.meta.class_names) or tuple(str(i) for i in range(self.meta.num_classes))


@dataclass
class LoadedPair:
    spec: PairSpec
    se: LoadedModel
    vanilla: LoadedModel
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


@dataclass(frozen=True)
class WeightsKind:
    """How weights of one ``WeightsRef.kind`` are found and loaded."""

    load: Callable[[WeightsRef, str, torch.device], LoadedModel]
    path: Callable[[WeightsRef], Path]


_KINDS: dict[str, WeightsKind] = {}


def register_weights_kind(kind: str, load: Callable[[WeightsRef, str, torch.device], LoadedModel],
                          path: Callable[[WeightsRef], Path]) -> None:
    """Add a weights kind (a second registration of one kind is an error)."""
    if kind in _KINDS or kind in ("file", "random"):
        raise ValueError(f"weights kind {kind!r} is already registered")
    _KINDS[kind] = WeightsKind(load, path)


def weights_kind(kind: str) -> WeightsKind | None:
    """The registered loader of ``kind``, or None (``file``, ``random`` and unknown kinds)."""
    return _KINDS.get(kind)
