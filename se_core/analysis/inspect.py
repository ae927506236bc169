"""Everything the Inspect page computes: predictions, z, s, channel energy and gate interventions.

One call, :func:`inspect`, runs each model of a :class:`~se_core.models.pairs.LoadedPair` once on a
batch of images (each model with its own :class:`~se_core.data.images.Preprocess`) and returns an
:class:`InspectResult` of plain numpy arrays (picklable, so ``st.cache_data`` can keep it):

- top-5 predictions per model per image;
- z, the squeeze descriptor (channel means of the SE unit's input) at every site of *both*
  models: a vanilla net's ``.se`` ``nn.Identity`` placeholders sit exactly where the SE model
  recalibrates, so z is read at the same places (:func:`se_core.probe.sites.pair_sites` pairs them);
- s, the excitation gates of the SE model;
- per-channel energy, mean of x^2 over H x W, of every unit's input ("before") and output
  ("after"): for a standard SE unit with average squeeze, after = before * s^2 exactly.

:func:`intervene` reruns the SE model with some gates replaced (a :class:`GatePlan`: SE
switched off at chosen blocks today; any :class:`~se_core.probe.sites.Intervention`, e.g. class-mean
gates as ``mode='vector'`` via :func:`gate_vectors`, plugs in unchanged).

Never imports streamlit.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from se_core.data.images import Preprocess, denormalize, to_tensor
from se_core.models.registry import get_spec
from se_core.models.weights import LoadedModel, LoadedPair
from se_core.probe.hooks import Hook, borrowed_view, hooked
from se_core.probe.sites import Intervention, Site, capture, find_sites, pair_sites

TOP_K = 5
Role = Literal["se", "vanilla"]

__all__ = ["TOP_K", "Prediction", "ModelProbe", "InspectResult", "GatePlan", "InterventionResult",
           "preprocess_for", "PairCheck", "check_pair", "batch_tensor", "probe_model", "inspect", "switch_off", "gate_vectors",
           "intervene", "padded_matrix", "display_image", "CSV_COLUMNS"]

CSV_COLUMNS = ("image", "model", "site", "stage", "block", "channel", "z", "s", "energy_before", "energy_after")


# --------------------------------------------------------------------------- inputs


def preprocess_for(lm: LoadedModel) -> Preprocess:
    """The model's own preprocessing, from its checkpoint metadata (registry values fill gaps)."""
    meta = lm.meta
    try:
        spec = get_spec(lm.name)
    except KeyError:
        spec = None
    mean = tuple(meta.mean) or (spec.mean if spec else (0.0, 0.0, 0.0))
    std = tuple(meta.std) or (spec.std if spec else (1.0, 1.0, 1.0))
    size = tuple(meta.input_size) or (spec.input_size if spec else (224, 224))
    interpolation = str((meta.extra or {}).get("interpolation", "bilinear"))  # library models: e.g. timm's bicubic
    return Preprocess(size=size, mean=mean, std=std, resize=lm.resize,  # type: ignore[arg-type]
                      interpolation=interpolation)


@dataclass(frozen=True)
class PairCheck:
    """What comparing two models as a pair would mean: reasons it cannot be done, and differences to know."""

    refusals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _names(meta, k: int = 3) -> str:
    return ", ".join(meta.class_names[:k]) + (", …" if len(meta.class_names) > k else "")


def check_pair(se: LoadedModel, vanilla: LoadedModel) -> PairCheck:
    """Compare two loaded models before they become a pair: refused when they do not classify the same
    classes (count or names), warned when they expect different input (size, resize, normalisation),
    since each model is then fed through its own preprocessing on every page."""
    a, b = se.meta, vanilla.meta
    refusals, warnings = [], []
    if a.num_classes != b.num_classes:
        refusals.append(f"the SE model ({a.arch}) has {a.num_classes} outputs and the counterpart ({b.arch}) "
                        f"{b.num_classes}: they do not classify the same classes; choose a counterpart trained on "
                        "the same data set")
    elif a.class_names and b.class_names and set(a.class_names) != set(b.class_names):
        refusals.append(f"their class names differ (SE: {_names(a)}; counterpart: {_names(b)}); choose a counterpart "
                        "with the same label set, or give the same class names for both")
    pre_a, pre_b = preprocess_for(se).describe(), preprocess_for(vanilla).describe()
    if pre_a != pre_b:
        warnings.append(f"they expect different input (SE: {pre_a}; counterpart: {pre_b}); every page feeds each "
                        "model through its own preprocessing")
    return PairCheck(tuple(refusals), tuple(warnings))


def batch_tensor(images: Sequence[Image.Image], pre: Preprocess) -> torch.Tensor:
    """N x 3 x H x W normalized batch (raises :class:`~se_core.data.images.ImageError` on bad input)."""
    if not images:
        raise ValueError("no images to process")
    return torch.cat([to_tensor(img, pre) for img in images])


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image under one model, most probable first."""

    classes: tuple[str, ...]
    probs: tuple[float, ...]
    indices: tuple[int, ...]

    @property
    def label(self) -> str:
        return self.classes[0]


def _top(probs: np.ndarray, class_names: Sequence[str], k: int = TOP_K) -> list[Prediction]:
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [Prediction(tuple(class_names[i] for i in row), tuple(float(p[i]) for i in row), tuple(int(i) for i in row))
            for p, row in zip(probs, order)]


@dataclass(frozen=True)
class ModelProbe:
    """One model's view of a batch of images (arrays are N x ... numpy, float32)."""

    name: str
    role: Role
    class_names: tuple[str, ...]
    preprocess: Preprocess
    seen: np.ndarray  # N x H x W x 3 uint8: the denormalized input, what the model sees
    probs: np.ndarray  # N x K softmax
    top: tuple[Prediction, ...]
    sites: tuple[Site, ...]
    z: dict[str, np.ndarray]  # site name -> N x C
    s: dict[str, np.ndarray]  # gate site name -> N x C (SE model only)
    energy_before: dict[str, np.ndarray]  # site name -> N x C, mean x^2 of the unit's input
    energy_after: dict[str, np.ndarray]  # site name -> N x C, mean x^2 of the unit's output
    interventions: tuple[str, ...] = ()  # descriptions of gate changes this run had

    @property
    def gate_sites(self) -> tuple[Site, ...]:
        """Sites with excitation gates (empty for a vanilla model)."""
        return tuple(st for st in self.sites if st.name in self.s)

    def site(self, name: str) -> Site:
        for st in self.sites:
            if st.name == name:
                return st
        raise KeyError(f"{self.name} has no site {name!r}")

    def gate_matrix(self, index: int) -> tuple[list[str], np.ndarray]:
        """(site labels, blocks x max-channels gates of image ``index``; NaN past a block's width)."""
        sites = self.gate_sites
        return [st.label for st in sites], padded_matrix([self.s[st.name][index] for st in sites])

    def z_matrix(self, index: int) -> tuple[list[str], np.ndarray]:
        """(site labels, blocks x max-channels squeeze descriptors of image ``index``, NaN padded)."""
        return [st.label for st in self.sites], padded_matrix([self.z[st.name][index] for st in self.sites])


def padded_matrix(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Stack vectors of different lengths into a rows x max-length float matrix padded with NaN."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), np.nan, dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = np.asarray(r, dtype=np.float64)
    return out


@dataclass(frozen=True)
class InspectResult:
    """Both models on the same images; ``site_map`` pairs SE sites with vanilla sites."""

    names: tuple[str, ...]
    se: ModelProbe
    vanilla: ModelProbe
    site_map: dict[str, str] = field(default_factory=dict)

    def model(self, role: Role) -> ModelProbe:
        return self.se if role == "se" else self.vanilla

    def vanilla_site(self, se_site: str) -> str | None:
        """The vanilla site at the same place as SE site ``se_site`` (None if it has none)."""
        return self.site_map.get(se_site)

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (image, model, site, channel) with z, s and channel energy."""
        parts = []
        for mp in (self.se, self.vanilla):
            for st in mp.sites:
                z = mp.z[st.name]
                n, c = z.shape
                s = mp.s.get(st.name)
                eb, ea = mp.energy_before.get(st.name), mp.energy_after.get(st.name)
                nan = np.full((n, c), np.nan)
                parts.append(pd.DataFrame({
                    "image": np.repeat(np.asarray(self.names, dtype=object), c),
                    "model": mp.name,
                    "site": st.name,
                    "stage": st.stage,
                    "block": st.block,
                    "channel": np.tile(np.arange(c), n),
                    "z": z.reshape(-1),
                    "s": (s if s is not None and s.shape == z.shape else nan).reshape(-1),
                    "energy_before": (eb if eb is not None else nan).reshape(-1),
                    "energy_after": (ea if ea is not None else nan).reshape(-1),
                }))
        if not parts:
            return pd.DataFrame(columns=list(CSV_COLUMNS))
        return pd.concat(parts, ignore_index=True)[list(CSV_COLUMNS)]


# --------------------------------------------------------------------------- probing


def _energy(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().float()
    return x.pow(2).mean(dim=(2, 3)) if x.dim() == 4 else x.pow(2).reshape(x.shape[0], -1)


@contextmanager
def _energy_hooks(model: nn.Module, sites: Sequence[Site], before: dict, after: dict) -> Iterator[None]:
    """Record per-channel energy of each site's input and output, like :func:`~se_core.probe.sites.capture`.

    Same discipline as capture: records only this thread's forwards,
    removes its hooks in ``finally``. Registered after capture's hooks, so the output seen here
    already carries any gate intervention.
    """
    def hook_of(name: str, at_output: bool) -> Hook:
        def hook(mod, args, out):
            if isinstance(out, torch.Tensor):
                # an output-side (vanilla) site recalibrates nothing: its z is read at the output
                after[name] = _energy(out)
                before[name] = after[name] if at_output else _energy(args[0])
        return Hook(name, "forward", hook)

    with hooked(model, [hook_of(st.name, st.capture == "output") for st in sites]):
        yield


def _np(d: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.cpu().numpy().astype(np.float32) for k, v in d.items()}


@torch.no_grad()
def probe_model(lm: LoadedModel, images: Sequence[Image.Image], role: Role = "se",
                interventions: Sequence[Intervention] = ()) -> ModelProbe:
    """One forward of ``lm`` on all ``images``: predictions, z, s and energy at every site."""
    pre = preprocess_for(lm)
    x = batch_tensor(images, pre)
    sites = find_sites(lm.model)
    device = next(lm.model.parameters()).device
    before: dict[str, torch.Tensor] = {}
    after: dict[str, torch.Tensor] = {}
    # a borrowed view (shared weights, own hooks): concurrent sessions probing this cached model do not wait
    with borrowed_view(lm.model) as model, capture(model, sites, interventions) as res, \
            _energy_hooks(model, sites, before, after):
        res.logits = model(x.to(device)).float()
    probs = torch.softmax(res.logits, dim=1).cpu().numpy()
    names = lm.class_names
    return ModelProbe(
        name=lm.name, role=role, class_names=names, preprocess=pre,
        seen=np.stack([denormalize(t, pre) for t in x]), probs=probs, top=tuple(_top(probs, names)),
        sites=tuple(sites), z=_np(res.z), s=_np(res.s), energy_before=_np(before), energy_after=_np(after),
        interventions=tuple(_describe(i) for i in interventions))


def inspect(pair: LoadedPair, images: Sequence[Image.Image], names: Sequence[str] | None = None) -> InspectResult:
    """Both models of ``pair`` on ``images`` (one batched forward each)."""
    names = tuple(names) if names is not None else tuple(f"image {i + 1}" for i in range(len(images)))
    if len(names) != len(images):
        raise ValueError(f"{len(names)} names for {len(images)} images")
    se = probe_model(pair.se, images, "se")
    van = probe_model(pair.vanilla, images, "vanilla")
    return InspectResult(names, se, van, pair_sites(se.sites, van.sites))


# --------------------------------------------------------------------------- interventions


@dataclass(frozen=True)
class GatePlan:
    """A named set of gate replacements for the SE model (what an intervention control builds)."""

    label: str
    interventions: tuple[Intervention, ...] = ()

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(i.site for i in self.interventions)


def switch_off(sites: Sequence[str]) -> GatePlan:
    """SE switched off (s = 1) at ``sites``: the block passes its input through unscaled."""
    sites = tuple(dict.fromkeys(sites))
    return GatePlan(f"SE off at {len(sites)} block(s)" if sites else "no change",
                    tuple(Intervention(s, "off") for s in sites))


def gate_vectors(vectors: Mapping[str, np.ndarray | torch.Tensor], label: str) -> GatePlan:
    """Gates replaced by fixed per-channel vectors (e.g. the mean gates of one class)."""
    return GatePlan(label, tuple(Intervention(site, "vector", torch.as_tensor(np.asarray(v), dtype=torch.float32))
                                 for site, v in vectors.items()))


def _describe(i: Intervention) -> str:
    return f"{i.site}:{i.mode}" + ("" if i.mode in ("off", "vector") else f"={i.value}")


@dataclass(frozen=True)
class InterventionResult:
    """The SE model before and after a :class:`GatePlan` on the same images."""

    plan_label: str
    names: tuple[str, ...]
    original: ModelProbe
    changed: ModelProbe

    @property
    def flipped(self) -> np.ndarray:
        """Per image: whether the top-1 class changed."""
        return np.array([a.indices[0] != b.indices[0] for a, b in zip(self.original.top, self.changed.top)])

    def table(self) -> pd.DataFrame:
        """One row per image: top-1 before/after, their probabilities and the change of the original class."""
        rows = []
        for i, name in enumerate(self.names):
            a, b = self.original.top[i], self.changed.top[i]
            k = a.indices[0]
            rows.append({"image": name, "top-1 before": a.classes[0], "p before": a.probs[0],
                         "top-1 after": b.classes[0], "p after": b.probs[0],
                         "p(top-1 before) after": float(self.changed.probs[i, k]),
                         "changed": bool(a.indices[0] != b.indices[0])})
        return pd.DataFrame(rows)


def intervene(pair: LoadedPair, images: Sequence[Image.Image], plan: GatePlan,
              names: Sequence[str] | None = None, original: ModelProbe | None = None) -> InterventionResult:
    """Run the SE model with ``plan``'s gates; ``original`` (if given) saves the unchanged forward."""
    names = tuple(names) if names is not None else tuple(f"image {i + 1}" for i in range(len(images)))
    base = original if original is not None else probe_model(pair.se, images, "se")
    changed = base if not plan.interventions else probe_model(pair.se, images, "se", plan.interventions)
    return InterventionResult(plan.label, names, base, changed)


# --------------------------------------------------------------------------- display helpers


def display_image(img: Image.Image | np.ndarray, side: int = 160) -> Image.Image:
    """A copy sized for display: small images upscaled with nearest (pixels stay visible),
    large ones downscaled (antialiased) so the browser is not sent megapixels."""
    im = Image.fromarray(img) if isinstance(img, np.ndarray) else img
    w, h = im.size
    scale = side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale >= 1:
        return im.resize(size, Image.Resampling.NEAREST)
    return im.resize(size, Image.Resampling.LANCZOS)
