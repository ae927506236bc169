"""SE / vanilla model pairs the dashboard compares, and where their weights come from.

A :class:`PairSpec` names two registered architectures and a :class:`WeightsRef` for each.
:func:`load_pair` returns both models ready for inference, or raises :class:`WeightsMissing`
whose message says exactly which file is missing and how to get it; nothing is downloaded.
The shipped default is the project's own CIFAR-10 ResNet-20 pair in ``data/checkpoints``;
ImageNet pairs from timm and torchvision are registered by :mod:`se_core.models.zoo` (weights from
those libraries' local caches), and pairs a user builds from their own checkpoints live in
:mod:`se_core.models.user_models` under names ``user:<id>``, a :class:`PairSource`: ``PAIRS[name]``
resolves those too, but they are not listed (each dashboard session lists its own). Plug-ins add
themselves; this module imports none of them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from se_core.models.build import build_from_checkpoint, spec_meta
from se_core.models.checkpoints import CheckpointError, CheckpointMeta
from se_core.models.registry import get_spec
from se_core.models.weights import LoadedModel, LoadedPair, PairSpec, ShippedRuns, WeightsMissing, WeightsRef, weights_kind


@dataclass(frozen=True)
class PairSource:
    """Pairs resolved by name on demand rather than registered (a user's own, ``user:<id>``; a kept ablation
    trial, ``ablation:<sweep>/<trial_id>``). ``listed``, when given, names the ones every picker offers
    (:func:`listed_pairs`); the user source has none (each dashboard session lists its own)."""

    spec: Callable[[str], PairSpec]
    exists: Callable[[str], bool]
    load: Callable[[str, torch.device | None], LoadedPair]
    listed: Callable[[], list[str]] | None = None


_SOURCES: dict[str, PairSource] = {}


def register_pair_source(prefix: str, source: PairSource) -> None:
    """Resolve names starting with ``prefix`` through ``source`` (added by :mod:`se_core.models.user_models`)."""
    _SOURCES[prefix] = source


def listed_pairs() -> list[str]:
    """The pairs the sources list (e.g. every kept ablation trial with its twin), in registration order."""
    out: list[str] = []
    for source in _SOURCES.values():
        if source.listed is not None:
            try:
                out += [n for n in source.listed() if n not in out]
            except OSError:  # an unreadable folder lists nothing rather than breaking every page
                continue
    return out


def _source(name: object) -> PairSource | None:
    if isinstance(name, str):
        for prefix, source in _SOURCES.items():
            if name.startswith(prefix):
                return source
    return None


class PairTable(dict):
    """Registered pairs; a lookup of an unregistered name that a pair source owns (``user:<id>``)
    resolves that pair's spec without listing it."""

    def __missing__(self, key: str) -> PairSpec:
        source = _source(key)
        if source is not None:
            return source.spec(key)
        raise KeyError(key)


PAIRS: PairTable = PairTable()


def register_pair(spec: PairSpec) -> PairSpec:
    if spec.name in PAIRS:
        raise ValueError(f"pair {spec.name!r} is already registered")
    PAIRS[spec.name] = spec
    return spec


def _own_pair(name: str, title: str, runs: ShippedRuns, se: tuple[str, str], vanilla: tuple[str, str],
              note: str) -> PairSpec:
    """A pair trained by this project: each model's weights are ``data/checkpoints/<run>.safetensors``, a copy
    of its seed-0 run's final weights made by ``python -m se_core.release``; ``se``/``vanilla`` are
    (run, the command that trains it)."""
    def ref(run: str, command: str) -> WeightsRef:
        return WeightsRef("file", f"checkpoints/{run}.safetensors", f"{command} && python -m se_core.release")
    return register_pair(PairSpec(name=name, title=title, se_arch="se_resnet20_cifar", vanilla_arch="resnet20_cifar",
                                  se_weights=ref(*se), vanilla_weights=ref(*vanilla),
                                  dataset="CIFAR-10 (JPEG q75)", note=note, shipped=runs))


_TRAIN60 = "python -m se_core.train --arch {arch} --seed 0 --epochs 60 --out data/runs/{run}"
DEFAULT_PAIR = _own_pair(
    "cifar10-resnet20", "CIFAR-10 ResNet-20 vs SE-ResNet-20 (this project, shipped)",
    ShippedRuns("runs", "cifar10_resnet20", "results"),
    ("se_resnet20-s0", _TRAIN60.format(arch="se_resnet20_cifar", run="se_resnet20-s0")),
    ("resnet20-s0", _TRAIN60.format(arch="resnet20_cifar", run="resnet20-s0")),
    "Trained here by se_core.runs.train (seed 0, 60 epochs); provenance in data/checkpoints/PROVENANCE.md.",
).name

SE8_PAIR = _own_pair(
    "cifar10-resnet20-se8", "CIFAR-10 ResNet-20 vs SE-ResNet-20, 8 hidden units, SE without weight decay "
    "(this project, shipped)",
    ShippedRuns("runs-e30", "cifar10_resnet20_se8", "results-se8"),
    ("se_resnet20_h8_sewd0_e30-s0", "bash sweeps/final_e30.sh se:0"),
    ("resnet20_e30-s0", "bash sweeps/final_e30.sh vanilla:0"),
    "The #15 pair (docs/training.md, 'A second pair in which SE does its job'): SE units of at least 8 hidden "
    "units whose parameters are not weight-decayed, so that no block freezes; 30 epochs, seed 0; provenance in "
    "data/checkpoints/PROVENANCE.md.",
).name


def shipped_pairs() -> list[PairSpec]:
    """The project's own pairs (those with :attr:`PairSpec.shipped`), the default first."""
    return [p for p in PAIRS.values() if p.shipped is not None]


def pick_device() -> torch.device:
    """GPU when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resize_for(meta: CheckpointMeta, arch: str) -> int | None:
    """Shorter-side resize before the centre crop: the checkpoint's (library transform), else the registry's."""
    r = (meta.extra or {}).get("resize")
    if isinstance(r, int) and r >= max(meta.input_size or (0,)):
        return r
    try:
        return get_spec(arch).resize
    except KeyError:
        return None


def random_model(arch: str, seed: int = 0, device: torch.device | None = None) -> LoadedModel:
    """``arch`` randomly initialised (seeded), labelled as untrained: a stand-in counterpart, not a result."""
    spec = get_spec(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build()
    meta = replace(spec_meta(spec, model, spec.default_se),
                   provenance={"weights": f"random initialisation, seed {seed}: NOT trained"})
    device = device or pick_device()
    return LoadedModel(arch, model.to(device).eval(), meta, resize_for(meta, arch), f"random init (seed {seed})")


def load_weights(ref: WeightsRef, arch: str, device: torch.device | None = None) -> LoadedModel:
    """Build ``arch`` and load ``ref``'s weights; :class:`WeightsMissing` when not on disk."""
    device = device or pick_device()
    kind = weights_kind(ref.kind)
    if kind is not None:
        return kind.load(ref, arch, device)
    if ref.kind == "random":
        return random_model(arch, int(ref.location or 0), device)
    if ref.kind != "file":
        raise ValueError(f"unknown weights kind {ref.kind!r}")
    path = ref.path()
    if not path.is_file():
        raise WeightsMissing(f"weights for {arch} not found: {path} is missing. "
                             + (f"Create it with: {ref.how_to_get}" if ref.how_to_get else "Put the file there."))
    model, meta = build_from_checkpoint(path)
    if meta.arch != arch:
        raise CheckpointError(f"{path.name} holds a {meta.arch}, expected {arch}")
    return LoadedModel(arch, model.to(device).eval(), meta, resize_for(meta, arch), str(path))


def is_known(name: str) -> bool:
    """Whether ``name`` is a registered pair or a stored user pair."""
    if name in PAIRS:
        return True
    source = _source(name)
    return source is not None and source.exists(name)


def weights_stamp(name: str) -> tuple:
    """What identifies the weights pair ``name`` loads now: each model's weights file with its modification
    time and size (``None`` for one not on disk). A model cache keyed by it reloads a pair whose files were
    re-trained or newly shipped under the same name; ``()`` when the name resolves to no pair."""
    try:
        spec = PAIRS[name]
        refs = (spec.se_weights, spec.vanilla_weights)
        stamp = []
        for ref in refs:
            path = ref.path() if ref.kind != "random" else None
            st = path.stat() if path is not None and path.is_file() else None
            stamp.append((ref.kind, ref.location, st and st.st_mtime_ns, st and st.st_size))
        return tuple(stamp)
    except (KeyError, ValueError, OSError):
        return ()


def load_pair(name: str = DEFAULT_PAIR, device: torch.device | None = None) -> LoadedPair:
    """Both models of pair ``name`` on ``device`` (default: GPU if present, else CPU)."""
    source = _source(name)
    if source is not None and name not in PAIRS:
        return source.load(name, device)
    try:
        spec = PAIRS[name]
    except KeyError:
        raise KeyError(f"unknown pair {name!r}; known: {', '.join(PAIRS)}") from None
    device = device or pick_device()
    return LoadedPair(spec, load_weights(spec.se_weights, spec.se_arch, device),
                      load_weights(spec.vanilla_weights, spec.vanilla_arch, device), device)

