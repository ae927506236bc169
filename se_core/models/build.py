"""Rebuild the model a checkpoint file describes: the one entry point for checkpoint files
(dashboard uploads, the ``evaluate``/``stats`` CLIs, ``python -m se_core.checkpoints check FILE``).

CLI: ``python -m se_core.checkpoints check FILE [--arch NAME]`` prints one line describing the
model (exit 0) or one error line (exit 2), never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from se_core.models.checkpoints import CheckpointError, CheckpointMeta, load_into, read_checkpoint
from se_core.models.registry import ModelSpec, get_spec
from se_core.nn.se import SEConfig
from se_core.probe.sites import Site, find_sites


def build_from_checkpoint(path: str | os.PathLike, arch: str | None = None, se: SEConfig | None = None, *,
                          num_classes: int | None = None,
                          class_names: tuple[str, ...] | None = None) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode, CPU).

    The single entry point for checkpoint files (dashboard uploads, ``evaluate``/``stats`` CLIs).
    ``arch``/``se``/``num_classes``/``class_names`` fill in what a file without SE Lens metadata
    lacks: ``se`` defaults to the architecture's default SE design, ``num_classes`` to the row
    count of the file's classifier weight, class names and preprocessing to the architecture's
    (for timm/torchvision models: the library's metadata and eval transform). Shapes are checked
    before loading and every mismatch is named.
    """
    state, meta = read_checkpoint(path)
    name = os.path.basename(path)
    if meta is None:
        if arch is None:
            raise CheckpointError(f"{name} has no SE Lens metadata; choose its architecture (and SE config) "
                                  "explicitly (CLI: --arch NAME)")
        try:
            spec = get_spec(arch)
        except KeyError as e:
            raise CheckpointError(str(e.args[0])) from None
        if se is not None and not spec.takes_se:
            raise CheckpointError(f"{arch} fixes its own SE design; an SE config cannot be applied to it")
        se_used = (se if se is not None else spec.default_se) if spec.takes_se else None
        try:
            model = spec.build(se_used, num_classes=num_classes or spec.num_classes)
            n = num_classes or _classifier_rows(model, state)
            if n and n != _outputs(model):
                model = spec.build(se_used, num_classes=n)
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{name}: {arch} cannot be built with these settings ({e})") from None
        meta = spec_meta(spec, model, se_used)
        if class_names is not None:
            if len(class_names) != meta.num_classes:
                raise CheckpointError(f"{name}: {len(class_names)} class names given for a model with "
                                      f"{meta.num_classes} outputs; give one name per output")
            meta = replace(meta, class_names=tuple(class_names))
        meta = replace(meta, provenance={"note": "file without SE Lens metadata; architecture, SE config and class "
                                                 "names chosen by the user", **meta.provenance})
    else:
        try:
            spec = get_spec(meta.arch)
        except KeyError as e:
            raise CheckpointError(str(e.args[0])) from None
        try:
            se_cfg = SEConfig.from_dict(meta.se_config) if meta.se_config else None
            model = spec.build(se_cfg if spec.takes_se else None, num_classes=meta.num_classes)
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{name}: its metadata describes a model that cannot be built ({e}); "
                                  "re-save it with se_core.models.checkpoints.save_checkpoint") from None
    load_into(model, state, what=name)
    return model.eval(), meta


def spec_meta(spec: ModelSpec, model: nn.Module, se: SEConfig | None) -> CheckpointMeta:
    """What a model built from ``spec`` (with SE config ``se``) is, when no file says so: the spec's
    own :attr:`~ModelSpec.describe`, else its class names (when they fit the model's outputs),
    normalisation and input size."""
    if spec.describe is not None:
        return spec.describe(model)
    n = _outputs(model) or spec.num_classes
    return CheckpointMeta(arch=spec.name, se_config=None if se is None else se.to_dict(), num_classes=n,
                          class_names=spec.class_names if len(spec.class_names) == n else (),
                          mean=spec.mean, std=spec.std, input_size=spec.input_size)


def se_units(model: nn.Module) -> list[Site]:
    """The model's SE units, wherever the probe finds them (our SE unit, timm's and torchvision's)."""
    return [s for s in find_sites(model) if s.gate]


def se_label(model: nn.Module, meta: CheckpointMeta) -> str:
    """What SE a model has, as the CLI and every page say it: its recorded config when there is one, else
    the SE units the probe finds (a library model fixes its own design), else none."""
    units = se_units(model)
    if meta.se_config:
        try:
            text = SEConfig.from_dict(meta.se_config).label()
        except (TypeError, ValueError):
            text = json.dumps(meta.se_config, sort_keys=True)
        return f"{text} ({len(units)} SE units)" if units else text
    if units:
        kinds = sorted({type(dict(model.named_modules())[s.name]).__name__ for s in units})
        return f"{len(units)} SE units ({', '.join(kinds)}), design fixed by the architecture"
    return "none (vanilla)"


def _classifier(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The last ``nn.Linear`` (the classifier of every registered architecture)."""
    found = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            found = (n, m)
    return found


def _outputs(model: nn.Module) -> int:
    c = _classifier(model)
    return int(c[1].out_features) if c else 0


def _classifier_rows(model: nn.Module, state: dict) -> int | None:
    """Rows of the file's classifier weight, when the file has the model's classifier key."""
    c = _classifier(model)
    w = state.get(f"{c[0]}.weight") if c else None
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() == 2 else None


def describe(path: str | os.PathLike, arch: str | None = None) -> str:
    """One line describing a checkpoint (used by the CLI and the Models page); ``arch`` names the
    architecture of a file without SE Lens metadata."""
    model, meta = build_from_checkpoint(path, arch=arch)
    n = sum(p.numel() for p in model.parameters())
    se = "SE " + se_label(model, meta) if meta.se_config or se_units(model) else "vanilla"
    return f"ok {meta.arch} {se} params={n:,} classes={meta.num_classes} input={meta.input_size[0]}x{meta.input_size[1]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m se_core.checkpoints", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="check that FILE is a usable checkpoint")
    check.add_argument("file")
    check.add_argument("--arch", default=None, help="registered architecture, for files without SE Lens metadata")
    args = ap.parse_args(argv)
    try:
        print(describe(args.file, args.arch))
        return 0
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the CLI promises one line, never a traceback
        print(f"error: {Path(args.file).name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
    return 2
