"""A library model with its weights, ready to probe; and this plug-in's registration of its weight kinds and pairs."""
from __future__ import annotations

import torch

from se_core.models.checkpoints import load_into
from se_core.models.pairs import PAIRS, register_pair
from se_core.models.weights import LoadedModel, WeightsMissing, WeightsRef, register_weights_kind
from se_core.models.zoo.catalog import LIBRARY_KINDS, ZOO_PAIRS
from se_core.models.zoo.files import expected_path, read_library_file, verify_hash, weights_status
from se_core.models.zoo.library import _build_library, _timm
from se_core.models.zoo.sites import prepare_sites
from se_core.models.zoo.specs import imagenet_pairs, library_meta, zoo_model

VERIFY_TORCHVISION_HASH = True
"""Check torchvision files against the SHA-256 prefix in their name (tests with random weights turn it off
here, in ``se_core.models.zoo.load``, where it is read)."""


def load_library_model(ref: WeightsRef, arch: str, device: torch.device | None = None) -> LoadedModel:
    """Build ``arch`` (random init), load ``ref``'s cached file into it, attach its sites.

    Raises :class:`~se_core.models.weights.WeightsMissing` (file not found: names it and the download
    command) or :class:`CheckpointError` (file unusable: says why, key by key for shapes).
    """
    zm = zoo_model(arch)
    status = weights_status(ref, arch)
    if status.found is None:
        raise WeightsMissing(status.message())
    path = status.found
    if ref.kind == "torchvision" and VERIFY_TORCHVISION_HASH:
        verify_hash(path)
    state = read_library_file(path)
    build_name = ref.location if zm.library == "timm" else zm.name
    model = _build_library(zm.library, build_name, 1000)
    load_into(model, state, what=str(path))
    prepare_sites(model, zm.site_family)
    prov = {"source": f"{zm.library} {ref.location}", "file": str(path), "library_version": _version(zm.library),
            **{k: v for k, v in status.info.items() if v not in (None, "")}}
    if "reported_top1" in prov:
        prov["reported_top1"] = f"{prov['reported_top1']} % (torchvision's metadata, not measured here)"
    meta = library_meta(arch, model, ref.location if zm.library == "torchvision" else None, provenance=prov)
    device = device or torch.device("cpu")
    return LoadedModel(arch, model.to(device).eval(), meta, int(meta.extra["resize"]), str(path))


def _version(library: str) -> str:
    if library == "timm":
        return f"timm {_timm().__version__}"
    import torchvision

    return f"torchvision {torchvision.__version__}"


def availability() -> list[dict]:
    """One row per catalog pair and role: model, weights, found file or the missing path and command."""
    rows = []
    for p in ZOO_PAIRS:
        spec = PAIRS.get(p.name)
        if spec is None:
            continue
        for role, arch, ref in (("SE", spec.se_arch, spec.se_weights), ("vanilla", spec.vanilla_arch, spec.vanilla_weights)):
            try:
                st = weights_status(ref, arch)
                rows.append({"pair": p.name, "role": role, "model": arch, "weights": f"{ref.kind} {ref.location}",
                             "available": st.ok, "file": str(st.found or st.expected[0]),
                             "command": "" if st.ok else st.command, "message": "" if st.ok else st.message(),
                             "recipe": st.info.get("recipe", "") or st.info.get("origin_url", "")})
            except (KeyError, ValueError, ImportError) as e:
                rows.append({"pair": p.name, "role": role, "model": arch, "weights": f"{ref.kind} {ref.location}",
                             "available": False, "file": "", "command": ref.how_to_get,
                             "message": f"cannot resolve {ref.location}: {e}", "recipe": ""})
    return rows


def state_dict_keys_hint(state: dict[str, torch.Tensor], limit: int = 8) -> str:
    """A few keys of a state dict, for messages about files that fit no architecture."""
    keys = list(state)
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} keys)" if len(keys) > limit else "")



# The zoo pushes itself in: its weight kinds and its pairs (the registry's resolver is added above).
for _kind in LIBRARY_KINDS:
    register_weights_kind(_kind, load_library_model, expected_path)
for _pair in imagenet_pairs():
    register_pair(_pair)
