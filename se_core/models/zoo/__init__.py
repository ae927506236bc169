"""ImageNet SE / vanilla pairs from timm and torchvision, with weights found where those libraries keep them.

Nothing here downloads unless asked: :mod:`se_core.models.zoo.download` fetches a pair's files into
those caches on request (``python -m se_core.zoo download PAIR``, the Models page's button). Weights
are looked up, in order, in

1. the library's own cache: timm's Hugging Face hub files under ``$HF_HUB_CACHE`` (else
   ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) as
   ``models--timm--<name>.<tag>/snapshots/<revision>/model.safetensors``, or, for timm weights
   without a hub copy and for every torchvision weight, torch hub's
   ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``;
2. ``<data dir>/weights/<same file name>``, for machines where the file was copied by hand.

When neither exists, :class:`~se_core.models.weights.WeightsMissing` names both paths and the one-line
command that downloads the file on a machine with internet access. Files are read through
:mod:`se_core.models.checkpoints` (safetensors, or ``torch.load(weights_only=True)``), shapes are
compared key by key before loading, and torchvision files are checked against the SHA-256
prefix in their name, as torchvision itself does.

Class names come from the libraries' metadata (torchvision ``weights.meta['categories']``,
timm ``ImageNetInfo``) and preprocessing from their own eval transforms (timm
``create_transform(**resolve_model_data_config(model))``, torchvision ``weights.transforms()``).

Sites: a vanilla ImageNet net has no ``.se`` placeholders, so :func:`vanilla_sites` names, per
family, the layer whose *output* its SE twin recalibrates (timm ResNet: ``layerX.Y.bn3``;
RegNet: the 3x3 group conv, ``f.b`` / ``conv2``; MobileNet/MnasNet: the depthwise conv's
activated output) and :func:`prepare_sites` attaches them (see
:func:`se_core.probe.sites.attach_sites`), so every page probes them like SE sites. Mobile families
are labelled by resolution (stage = log2 of the output stride, block = index at that stride),
so MobileNetV3 pairs with MobileNetV2 and EfficientNet-B0 with MnasNet where their blocks
really correspond.

Besides the catalog, any timm or torchvision model can be named as ``timm:<name>`` or
``torchvision:<builder>`` (e.g. ``timm:seresnet18``), which is how a checkpoint of another
project's model is loaded without code changes. timm and torchvision are imported on first
use only (each costs seconds).
"""
from __future__ import annotations

from se_core.models.zoo.catalog import (
    LIBRARY_KINDS,
    MOBILE_FAMILIES,
    PROBE_SIZE,
    ZOO,
    ZOO_PAIRS,
    Library,
    ZooModel,
    ZooPair,
)
from se_core.models.zoo.download import DownloadCancelled, DownloadError, Planned, fetch, fetch_all, plan_file, plan_pair
from se_core.models.zoo.files import (
    WeightsStatus,
    expected_path,
    local_weights_dir,
    read_library_file,
    torch_hub_checkpoints,
    verify_hash,
    weights_status,
)
from se_core.models.zoo.library import timm_cfg, tv_weights
from se_core.models.zoo.load import availability, load_library_model, state_dict_keys_hint
from se_core.models.zoo.sites import detect_family, model_sites, prepare_sites, vanilla_sites
from se_core.models.zoo.specs import (
    LibraryPreprocess,
    imagenet_pairs,
    library_meta,
    timm_class_names,
    timm_preprocess,
    tv_preprocess,
    zoo_model,
)
from se_core.models.zoo.twins import default_weights, twin_of

__all__ = ["default_weights", "twin_of", "DownloadCancelled", "DownloadError", "LIBRARY_KINDS", "Planned", "Library", "LibraryPreprocess", "MOBILE_FAMILIES", "PROBE_SIZE", "WeightsStatus", "ZOO", "ZOO_PAIRS", "ZooModel", "ZooPair", "availability", "detect_family", "expected_path", "fetch", "fetch_all", "imagenet_pairs", "library_meta", "load_library_model", "local_weights_dir", "model_sites", "plan_file", "plan_pair", "prepare_sites", "read_library_file", "state_dict_keys_hint", "timm_cfg", "timm_class_names", "timm_preprocess", "torch_hub_checkpoints", "tv_preprocess", "tv_weights", "vanilla_sites", "verify_hash", "weights_status", "zoo_model"]
