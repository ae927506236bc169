"""The user's own checkpoints: uploaded or named files of any registered architecture, paired for comparison.

A file is stored under the user cache (``$SE_LENS_USER_DIR``, default ``<repo>/.cache/user_models``)
as ``files/<sha256>.<suffix>``: content-addressed, written atomically, and only ever read
through :func:`se_core.models.build.build_from_checkpoint` (safetensors, or ``.pt``/``.pth`` via
``torch.load(weights_only=True)``); nothing in it is executed.

Loading goes through the same single entry point as the CLIs, ``build_from_checkpoint(path,
arch=..., se=..., class_names=...)``: the file's SE Lens metadata decides the architecture, SE
config and class names; without metadata the caller names them (the dashboard asks), shapes
are compared key by key before any weight is loaded, and every mismatch is named. Any timm or
torchvision classifier can be named ``timm:<name>`` / ``torchvision:<name>``, so a checkpoint of
another project's model whose SE modules follow timm's or torchvision's structure is probed
without code changes; an "SE" model with no recognisable SE unit is refused with a listing of
what the model does contain (:func:`se_core.probe.sites.describe_structure`).

A pair is a :class:`UserPairRecipe` (how to rebuild each of the two models: an uploaded file,
the weights of a registered pair, or a seeded random initialisation), named
``user:<first 12 hex of its SHA-256>``. Recipes are kept in memory and as JSON next to the files,
so a ``?pair=user:...`` link survives a server restart; the name is derived from the content, so
two sessions registering the same pair share it harmlessly. Access is guarded by a lock.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from se_core.config import USER_DIR_ENV, user_dir
from se_core.models.arch_guess import guess_arch
from se_core.models.build import build_from_checkpoint
from se_core.models.checkpoints import CheckpointError, CheckpointMeta, read_checkpoint
from se_core.models.pairs import PAIRS, PairSource, load_weights, pick_device, random_model, register_pair_source, resize_for
from se_core.models.registry import get_spec, list_models
from se_core.models.weights import USER_PREFIX, LoadedModel, LoadedPair, PairSpec, WeightsMissing, WeightsRef
from se_core.models.zoo import default_weights, twin_of, weights_status
from se_core.nn.se import SEConfig
from se_core.probe.sites import describe_structure, find_sites
from se_core.util.files import atomic_write_bytes, file_digest

SUFFIXES = (".safetensors", ".pt", ".pth")
MAX_FILE_BYTES = 2 * 1024**3
"""Largest checkpoint accepted (2 GiB; ResNet-50 in fp32 is ~100 MB)."""
MAX_LISTED = 50
"""At most this many saved user pairs are listed in the sidebar (the newest)."""
_NAME = re.compile(r"^user:[0-9a-f]{12}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_LOCK = threading.Lock()
_RECIPES: dict[str, UserPairRecipe] = {}

Source = Literal["upload", "weights", "random"]


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class StoredFile:
    """A checkpoint saved under the user cache by its SHA-256; ``name`` is what the user called it."""

    path: Path
    sha256: str
    name: str
    size: int


def _suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise CheckpointError(f"{name}: '{suffix or 'no extension'}' files are refused (they may hold pickled code); "
                              "use .safetensors, or a .pt/.pth state dict")
    return suffix


def store_bytes(name: str, data: bytes) -> StoredFile:
    """Save uploaded bytes as ``files/<sha256><suffix>`` (atomic; never executed); refuses other suffixes."""
    suffix = _suffix(name)
    if not data:
        raise CheckpointError(f"{name}: the file is empty; upload the checkpoint again")
    if len(data) > MAX_FILE_BYTES:
        raise CheckpointError(f"{name}: {len(data):,} bytes is more than the {MAX_FILE_BYTES:,} accepted")
    sha = hashlib.sha256(data).hexdigest()
    path = user_dir() / "files" / f"{sha}{suffix}"
    if not path.is_file() or path.stat().st_size != len(data):
        atomic_write_bytes(path, data)
    return StoredFile(path, sha, Path(name).name, len(data))


def store_file(path: str | os.PathLike) -> StoredFile:
    """Copy a named local file into the cache (so a later edit of the original cannot change a registered pair)."""
    src = Path(path)
    _suffix(src.name)
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file")
    if src.stat().st_size > MAX_FILE_BYTES:
        raise CheckpointError(f"{src.name}: {src.stat().st_size:,} bytes is more than the {MAX_FILE_BYTES:,} accepted")
    sha = file_digest(src)
    dst = user_dir() / "files" / f"{sha}{src.suffix.lower()}"
    if not dst.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    return StoredFile(dst, sha, src.name, dst.stat().st_size)


def stored_path(file: str) -> Path:
    """The cache path of a stored file named ``<sha256><suffix>`` (refuses anything else)."""
    stem, suffix = Path(file).stem, Path(file).suffix.lower()
    if Path(file).name != file or not _SHA.match(stem) or suffix not in SUFFIXES:
        raise CheckpointError(f"{file!r} is not a stored checkpoint name")
    return user_dir() / "files" / file


# --------------------------------------------------------------------------- what a file holds


@dataclass(frozen=True)
class FileReport:
    """What a stored checkpoint says about itself, so the dashboard asks only for what is missing."""

    file: StoredFile
    meta: CheckpointMeta | None
    n_tensors: int
    n_values: int
    suggested_se: SEConfig | None
    keys: tuple[str, ...] = field(default=(), repr=False)
    guessed_arch: str | None = None
    """Without metadata: the architecture whose state dict the file matches exactly (:func:`guess_arch`)."""

    @property
    def has_meta(self) -> bool:
        return self.meta is not None


_SE_FC1 = re.compile(r"^layer(\d+)\.(\d+)\.se\.fc1\.weight$")


def suggest_se_config(state: dict[str, torch.Tensor]) -> SEConfig | None:
    """A guess of reduction ratio, hidden-width floor and SE stages from ``layer{s}.{b}.se.fc1.weight``
    shapes (this project's nets): the first of r = 16 (the paper's), then the ratios the shapes show
    most often, that with ``min_hidden`` 1 (else the smallest floor that does) gives every unit's width.

    Squeeze, gate, integration and site leave no trace in the shapes; the defaults are kept.
    """
    widths, ratios, stages = set(), Counter(), set()
    for k, v in state.items():
        m = _SE_FC1.match(k)
        if m and v.dim() >= 2 and v.shape[0] > 0:
            stages.add(int(m.group(1)))
            c, h = int(v.shape[1]), int(v.shape[0])
            widths.add((c, h))
            ratios[max(1, c // h)] += 1
    if not ratios:
        return None
    all_stages = {int(m.group(1)) for k in state for m in [re.match(r"^layer(\d+)\.", k)] if m}
    stage_sel = None if stages >= all_stages else tuple(sorted(stages))
    candidates = [16] + [r for r, _ in ratios.most_common() if r != 16]
    for floor in [1] + sorted({h for _, h in widths} - {1}):
        for r in candidates:
            cfg = SEConfig(reduction=r, min_hidden=floor, stages=stage_sel)
            if all(cfg.hidden(c) == h for c, h in widths):
                return cfg
    return SEConfig(reduction=ratios.most_common(1)[0][0], stages=stage_sel)


def inspect_file(stored: StoredFile) -> FileReport:
    """Read the file (safely) and summarise it, guessing the architecture of a file without metadata;
    :class:`CheckpointError` says why it is unusable, naming the user's file (not its stored hash name)."""
    try:
        state, meta = read_checkpoint(stored.path)
    except CheckpointError as e:
        raise CheckpointError(str(e).replace(stored.path.name, stored.name)) from None
    suggested = suggest_se_config(state) if meta is None else None
    guess = guess_arch(state, stored.name, suggested) if meta is None else None
    return FileReport(stored, meta, len(state), sum(int(v.numel()) for v in state.values()), suggested, tuple(state),
                      guess)


def load_user_model(path: str | os.PathLike, arch: str | None = None, se: SEConfig | None = None,
                    class_names: Sequence[str] | None = None, *, require_se: bool = False,
                    device: torch.device | None = None, label: str | None = None) -> LoadedModel:
    """A checkpoint as a :class:`~se_core.models.pairs.LoadedModel`, through ``build_from_checkpoint``.

    ``arch``/``se``/``class_names`` are used when the file has no SE Lens metadata. With
    ``require_se`` (the SE side of a pair) a model without a recognisable SE unit is refused,
    naming the module types it has.
    """
    path = Path(path)
    shown = label or path.name
    try:
        model, meta = build_from_checkpoint(path, arch, se,
                                            class_names=tuple(class_names) if class_names else None)
    except CheckpointError as e:
        raise CheckpointError(str(e).replace(path.name, shown)) from None
    if arch is not None and meta.arch != arch:
        raise CheckpointError(f"{shown}: its metadata says it is a {meta.arch}, not a {arch}; choose {meta.arch} "
                              "or another file")
    if require_se and not any(s.gate for s in find_sites(model)):
        raise CheckpointError(
            f"{shown}: no SE unit found in {meta.arch}. An SE unit is recognised by a reduce layer (fc1, conv_reduce, "
            "reduce, se_reduce), an expand layer (fc2, conv_expand, expand, se_expand) and a gate child "
            f"(scale_activation, gate, sigmoid); this model has: {describe_structure(model)}. Choose an architecture "
            "with SE units, or use this file as the vanilla model.")
    device = device or pick_device()
    return LoadedModel(meta.arch, model.to(device).eval(), meta, resize_for(meta, meta.arch), str(path))


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class ModelRecipe:
    """How to rebuild one model of a user pair (JSON-serialisable).

    - ``upload``: the stored file ``file`` (``<sha256><suffix>``); ``arch``/``se``/``class_names``
      fill in what its metadata lacks.
    - ``weights``: ``arch`` with the weights a registered pair uses (``weights`` = (kind, location)).
    - ``random``: ``arch`` randomly initialised with ``seed`` (clearly labelled as untrained).
    """

    source: Source
    arch: str
    file: str = ""
    se: dict | None = None
    class_names: tuple[str, ...] = ()
    weights: tuple[str, str] = ("", "")
    seed: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        if self.source not in ("upload", "weights", "random"):
            raise ValueError(f"unknown model source {self.source!r}")
        if self.source == "upload":
            stored_path(self.file)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "weights", tuple(self.weights))

    def ref(self) -> WeightsRef:
        if self.source == "upload":
            return WeightsRef("file", str(stored_path(self.file)), "upload it again on the Models page")
        if self.source == "weights":
            return WeightsRef(self.weights[0], self.weights[1], _how_to_get(*self.weights))
        return WeightsRef("random", str(self.seed))

    def describe(self) -> str:
        if self.source == "upload":
            return f"your file {self.label or self.file[:12]} (sha256 {self.file[:12]}…)"
        if self.source == "weights":
            return f"{self.weights[0]} weights {Path(self.weights[1]).name}"
        return f"random initialisation (seed {self.seed}), NOT trained"

    def load(self, role: str, device: torch.device | None = None) -> LoadedModel:
        if self.source == "upload":
            path = stored_path(self.file)
            if not path.is_file():
                raise WeightsMissing(f"the uploaded file {self.label or self.file} is no longer in {path.parent}; "
                                     "upload it again on the Models page")
            se = SEConfig.from_dict(self.se) if self.se else None
            return load_user_model(path, self.arch, se, self.class_names or None, require_se=role == "se",
                                   device=device, label=self.label or None)
        lm = load_weights(self.ref(), self.arch, device) if self.source == "weights" else \
            random_model(self.arch, self.seed, device)
        if role == "se" and not any(s.gate for s in find_sites(lm.model)):
            raise CheckpointError(f"{self.arch} has no SE unit ({describe_structure(lm.model)}); choose an SE model")
        return lm


def _how_to_get(kind: str, location: str) -> str:
    for p in PAIRS.values():
        for ref in (p.se_weights, p.vanilla_weights):
            if (ref.kind, ref.location) == (kind, location):
                return ref.how_to_get
    return ""


@dataclass(frozen=True)
class UserPairRecipe:
    """A user pair: its SE model, its vanilla counterpart, and a title."""

    se: ModelRecipe
    vanilla: ModelRecipe
    title: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UserPairRecipe:
        d = json.loads(text)
        return cls(ModelRecipe(**d["se"]), ModelRecipe(**d["vanilla"]), d.get("title", ""))

    @property
    def name(self) -> str:
        """``user:<12 hex>`` from the recipe's content (same pair, same name)."""
        return USER_PREFIX + hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def spec(self) -> PairSpec:
        title = self.title or f"Yours: {self.se.arch} ({self.se.label or 'uploaded'}) vs {self.vanilla.arch}"
        return PairSpec(self.name, title, self.se.arch, self.vanilla.arch, self.se.ref(), self.vanilla.ref(),
                        "your checkpoint", f"SE model: {self.se.describe()}. Vanilla model: {self.vanilla.describe()}.")


def _recipe_path(name: str) -> Path:
    return user_dir() / "pairs" / f"{name.removeprefix(USER_PREFIX)}.json"


def register_user_pair(recipe: UserPairRecipe) -> str:
    """Keep ``recipe`` (memory and disk) and return its pair name ``user:<id>``."""
    name = recipe.name
    with _LOCK:
        _RECIPES[name] = recipe
    path = _recipe_path(name)
    if not path.is_file():
        atomic_write_bytes(path, recipe.to_json().encode())
    return name


def user_pair_recipe(name: str) -> UserPairRecipe:
    """The recipe of user pair ``name``; ``KeyError`` if unknown (names are validated before any file access)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise KeyError(f"{name!r} is not a user pair name (user:<12 hex digits>)")
    with _LOCK:
        if name in _RECIPES:
            return _RECIPES[name]
    path = _recipe_path(name)
    try:
        recipe = UserPairRecipe.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError, CheckpointError):
        raise KeyError(f"unknown user pair {name!r}; register it again on the Models page") from None
    if recipe.name != name:
        raise KeyError(f"user pair {name!r} does not match its stored recipe; register it again")
    with _LOCK:
        _RECIPES[name] = recipe
    return recipe


def user_pair_exists(name: str) -> bool:
    try:
        user_pair_recipe(name)
        return True
    except KeyError:
        return False


def list_user_pairs(limit: int = MAX_LISTED) -> list[str]:
    """The user pairs saved in this server's store (``pairs/*.json``), oldest first, the newest ``limit``;
    recipes that no longer read are left out."""
    try:
        files = [(p.stat().st_mtime_ns, p) for p in (user_dir() / "pairs").glob("*.json")]
    except OSError:
        return []
    names = [USER_PREFIX + p.stem for _, p in sorted(files)]
    return [n for n in names if _NAME.match(n) and user_pair_exists(n)][-limit:]


def user_pair_spec(name: str) -> PairSpec:
    return user_pair_recipe(name).spec()


def load_user_pair(name: str, device: torch.device | None = None) -> LoadedPair:
    """Both models of user pair ``name`` (the SE side must have SE units)."""
    recipe = user_pair_recipe(name)
    device = device or pick_device()
    return LoadedPair(recipe.spec(), recipe.se.load("se", device), recipe.vanilla.load("vanilla", device), device)


# --------------------------------------------------------------------------- choices for the dashboard


@dataclass(frozen=True)
class VanillaChoice:
    """One possible vanilla counterpart: a recipe (for ``upload`` the file is added later) and a label."""

    label: str
    recipe: ModelRecipe
    available: bool = True
    detail: str = ""
    pair: str = ""
    """The registered pair these weights belong to (its Download button fetches them), if any."""
    command: str = ""
    """A shell command that gets the weights, when they are missing."""


def _weights_pair(ref: WeightsRef) -> str:
    return next((p.name for p in PAIRS.values() for r in (p.se_weights, p.vanilla_weights)
                 if (r.kind, r.location) == (ref.kind, ref.location)), "")


def _weights_choice(arch: str, ref: WeightsRef, label: str) -> VanillaChoice:
    if ref.kind in ("timm", "torchvision"):
        try:
            st = weights_status(ref, arch)
            ok, where = st.ok, str(st.found or st.expected[0])
        except (KeyError, ValueError, ImportError) as e:
            ok, where = False, str(e)
    else:
        ok, where = ref.path().is_file(), str(ref.path())
    return VanillaChoice(label + ("" if ok else " (not on disk)"), ModelRecipe("weights", arch, weights=(ref.kind, ref.location)),
                         ok, where, _weights_pair(ref), ref.how_to_get or _how_to_get(ref.kind, ref.location))


def _random_choice(arch: str) -> VanillaChoice:
    return VanillaChoice(f"{arch}: random initialisation (untrained)", ModelRecipe("random", arch), True,
                         "no weights: a stand-in to see the vanilla structure, not a result")


def vanilla_choices(se_arch: str | None = None) -> list[VanillaChoice]:
    """Counterparts of ``se_arch``, the natural one first.

    First its twin (:func:`~se_core.models.zoo.twin_of`: same library and family, SE taken out, e.g.
    ``timm:seresnet18`` → ``timm:resnet18``) with the library's own weights, then that twin untrained;
    then the vanilla model of a registered pair with that SE model, the same family, and models that
    take the same input and classes; networks for another data set (a CIFAR net for an ImageNet
    model) come last.
    """
    try:
        se_spec = get_spec(se_arch) if se_arch else None
    except KeyError:
        se_spec = None

    def fit(arch: str) -> int:
        """0: same family; 1: same classes and input size; 2: neither (another data set)."""
        spec = get_spec(arch)
        if se_spec is None:
            return 1
        if spec.family == se_spec.family:
            return 0
        return 1 if (spec.num_classes, spec.input_size) == (se_spec.num_classes, se_spec.input_size) else 2

    out: list[tuple[tuple[int, int], VanillaChoice]] = []
    twin = twin_of(se_arch) if se_arch else None
    if twin:
        ref = default_weights(twin)
        if ref is not None:
            out.append(((0, 0), _weights_choice(twin, ref, f"{twin}: the library's {ref.location} weights (natural twin)")))
        # a registered twin's weights come with its pairs (rank 1, 0); its random init follows them
        out.append(((0, 1) if ref is not None or ":" in twin else (1, 1), _random_choice(twin)))
    seen = {twin}
    for p in PAIRS.values():
        arch, ref = p.vanilla_arch, p.vanilla_weights
        if (arch, ref.kind, ref.location) in seen:
            continue
        seen.add((arch, ref.kind, ref.location))
        rank = (1, 0) if p.se_arch == se_arch else (2 + 2 * fit(arch), 0)
        out.append((rank, _weights_choice(arch, ref, f"{arch}: weights of pair '{p.name}'")))
    for arch in list_models():
        if not get_spec(arch).has_se and arch != twin:
            out.append(((3 + 2 * fit(arch), 0), _random_choice(arch)))
    return [c for _, c in sorted(out, key=lambda rc: rc[0])]

register_pair_source(USER_PREFIX, PairSource(user_pair_spec, user_pair_exists, load_user_pair))

__all__ = ["FileReport", "guess_arch", "ModelRecipe", "StoredFile", "UserPairRecipe", "VanillaChoice", "inspect_file", "list_user_pairs",
           "load_user_model", "load_user_pair", "register_user_pair", "store_bytes", "store_file", "stored_path",
           "suggest_se_config", "user_dir", "user_pair_exists", "user_pair_recipe", "user_pair_spec",
           "vanilla_choices", "USER_DIR_ENV"]
