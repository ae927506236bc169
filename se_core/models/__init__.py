"""Layer 3: checkpoints, the model registry, weights, library zoos, user models and pairs.

This package's ``__init__`` is the composition root (as ``timm/models/__init__.py`` is): the
modules below import only downward (checkpoints → registry → build/costs; weights → pairs), and the
plug-ins that push themselves into the registry and the pair table are imported here, once:
:mod:`~se_core.models.builtin` (this project's ResNets), :mod:`~se_core.models.zoo` (timm and
torchvision, loaded lazily), :mod:`~se_core.models.user_models` (``user:<id>`` pairs) and
:mod:`~se_core.models.ablation_models` (kept ablation trials, ``ablation:<sweep>/<trial_id>`` pairs).
"""
from se_core.models import ablation_models, builtin, user_models, zoo  # noqa: F401  (plug-ins register themselves)
