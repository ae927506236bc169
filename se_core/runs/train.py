"""Trainer for SE and vanilla networks: ``python -m se_core.train``.

- SGD with momentum (Nesterov optional), one-cycle or cosine schedule computed from the global
  step (so resuming needs no scheduler state), label smoothing, weight decay.
- Fast on CPU: channels_last and bf16 autocast where the CPU supports it.
- A checkpoint every epoch (``last.safetensors``: weights, optimizer buffers and the run's
  history in its metadata, written atomically). A run killed at any point, SIGKILL included,
  restarts from it and ends with the same weights as an uninterrupted run: batch order and
  augmentation come from ``(seed, epoch)`` only.
- Per epoch: ``metrics.csv`` (epoch, train loss/acc, test loss/acc, lr, seconds, img/s) and
  ``gates.json`` (per SE block: mean, std, histogram and class selectivity of the gates on a
  fixed probe batch of test images), so one can watch excitation develop during training.
- ``torchrun --nproc_per_node=N python -m se_core.train ...`` trains with DDP (gloo on CPU,
  nccl on GPU); rank 0 writes the same files. Inside a Ray Train worker group (a data-parallel
  ablation trial) the process group is already up and is used as it is.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from se_core import config
from se_core.analysis.evaluate import autocast_ctx, eval_subset_indices, evaluate
from se_core.analysis.movement import still_share
from se_core.analysis.selectivity import class_selectivity
from se_core.data.datasets import BatchStream, ImageSet, data_label, is_holdout, load_dataset, normalize
from se_core.models.checkpoints import CheckpointMeta, read_checkpoint, save_checkpoint, save_tensors
from se_core.models.registry import get_spec
from se_core.nn.se import SEConfig, SqueezeExcite
from se_core.probe.sites import capture, find_sites
from se_core.util.files import atomic_write_bytes
from se_core.util.provenance import git_commit, hardware

METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "img_per_s")
HIST_BINS = 20


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``se`` overrides the architecture's default SE config (``'none'``-free:
    pass a vanilla arch such as ``resnet20_cifar`` for no SE)."""

    arch: str = "se_resnet20_cifar"
    se: SEConfig | None = None
    epochs: int = 60
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    schedule: str = "onecycle"
    warmup_frac: float = 0.15
    seed: int = 0
    precision: str = "auto"
    channels_last: bool = True
    data: str = "cifar10-jpeg"
    train_subset: int | None = None
    test_subset: int | None = None
    probe_per_class: int = 50
    cutout: int = 0
    se_weight_decay: float | None = None
    """Weight decay of the SE units' own parameters; ``None`` = ``weight_decay``. With decay, an SE unit
    whose gates earn little gradient shrinks towards a constant gate (docs/training.md, candidate C)."""

    def __post_init__(self) -> None:
        if self.schedule not in ("onecycle", "cosine"):
            raise ValueError(f"schedule must be 'onecycle' or 'cosine', got {self.schedule!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.se_weight_decay is not None and self.se_weight_decay < 0:
            raise ValueError(f"se_weight_decay must be >= 0 (or None = weight_decay), got {self.se_weight_decay}")
        if self.cutout < 0:
            raise ValueError(f"cutout is a square's side in pixels (0 = off), got {self.cutout}")
        get_spec(self.arch)

    def se_config(self) -> SEConfig | None:
        spec = get_spec(self.arch)
        return self.se if self.se is not None else spec.default_se

    def to_dict(self) -> dict:
        """Plain dict of the config. Fields added after runs were shipped (:data:`ADDED_FIELDS`) appear only
        when set, so an older run's config, its resume check and its sweep trial id stay what they were."""
        d = asdict(self)
        d["se"] = None if self.se is None else self.se.to_dict()
        for k, default in ADDED_FIELDS.items():
            if d[k] == default:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        if d.get("se") is not None:
            d["se"] = SEConfig.from_dict(d["se"])
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown train config field(s): {sorted(unknown)}")
        return cls(**d)


ADDED_FIELDS: dict[str, object] = {"cutout": 0, "se_weight_decay": None}
"""TrainConfig fields newer than the shipped runs, with the default at which :meth:`TrainConfig.to_dict` leaves them out."""


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate at optimizer step ``step`` of ``total``.

    one-cycle: linear warm-up from lr/25 to lr over ``warmup_frac``, then cosine to 0;
    cosine: linear warm-up from 0 over ``warmup_frac``, then cosine to 0.
    """
    warm = max(1, int(cfg.warmup_frac * total))
    start = cfg.lr / 25 if cfg.schedule == "onecycle" else 0.0
    if step < warm:
        return start + (cfg.lr - start) * step / warm
    t = (step - warm) / max(1, total - warm)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(t, 1.0)))


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA with bf16 or on CPUs with native bf16 (AVX-512 BF16/AMX), else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"


COMPILE_MODES = ("auto", "on", "off")
COMPILE_MIN_STEPS = 2000
"""``--compile auto`` compiles only runs of at least this many optimizer steps: compilation costs
60-90 s on a 2-core CPU (``bench/se_train_overhead.py``), which a short run never wins back."""


def compiler_available(device: torch.device) -> bool:
    """Whether inductor can build kernels here: a C++ compiler on CPU, Triton on CUDA."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    import shutil

    return any(shutil.which(c) for c in ("c++", "g++", "clang++"))


def resolve_compile(mode: str, device: torch.device, total_steps: int) -> bool:
    """Whether the training forward runs under ``torch.compile``: ``on``/``off`` as said; ``auto``
    when the run is long enough to pay for compiling (:data:`COMPILE_MIN_STEPS`) and a compiler exists.

    Compiled is the fastest configuration measured for both ResNet-20 and SE-ResNet-20 on this
    project's CPUs (``docs/benchmarks.md``); evaluation, gate snapshots and probes stay eager.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {COMPILE_MODES}, got {mode!r}")
    if mode != "auto":
        return mode == "on"
    return total_steps >= COMPILE_MIN_STEPS and compiler_available(device)


def probe_indices(data: ImageSet, per_class: int) -> torch.Tensor:
    """The fixed probe batch: the first ``per_class`` test images of every class."""
    idx = [torch.nonzero(data.labels == k).flatten()[:per_class] for k in range(len(data.classes))]
    return torch.cat(idx)


@torch.no_grad()
def gate_snapshot(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict:
    """Per SE block: mean, std, histogram and class selectivity of the gates on ``x``, and the share of
    channels whose gate is still across these images (:func:`se_core.analysis.movement.still_share`)."""
    was = model.training
    model.eval()
    sites = [s for s in find_sites(model) if s.gate]
    with capture(model, sites, keep_z=False) as res:
        model(x)
    model.train(was)
    out = {}
    for st in sites:
        s = res.s[st.name]
        lo, hi = {"Sigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0)}.get(
            type(getattr(dict(model.named_modules())[st.name], st.gate)).__name__, (0.0, max(1.0, float(s.max()))))
        hist = torch.histc(s.flatten(), bins=HIST_BINS, min=lo, max=hi)
        out[st.name] = {"mean": float(s.mean()), "std": float(s.std()), "hist": [int(v) for v in hist.tolist()],
                        "range": [lo, hi], "selectivity": float(class_selectivity(s, y, num_classes).mean()),
                        "still": still_share(s.double().std(0, unbiased=False).cpu().numpy())}
    return out


def _write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def _optim_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for pid, st in opt.state_dict()["state"].items():
        if st.get("momentum_buffer") is not None:
            out[f"optim.{pid}.momentum_buffer"] = st["momentum_buffer"]
    return out


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """The optimizer's parameter groups: one, unless ``cfg.se_weight_decay`` gives the SE units' own
    parameters a decay of their own (then they form a second group, after the rest)."""
    se_ids = {id(p) for m in model.modules() if isinstance(m, SqueezeExcite) for p in m.parameters()}
    if cfg.se_weight_decay is None or not se_ids:
        return [{"params": list(model.parameters())}]
    rest = [p for p in model.parameters() if id(p) not in se_ids]
    se = [p for p in model.parameters() if id(p) in se_ids]
    return [{"params": rest}, {"params": se, "weight_decay": cfg.se_weight_decay}]


def _load_optim(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    ids = [p for g in sd["param_groups"] for p in g["params"]]
    sd["state"] = {pid: {"momentum_buffer": tensors[f"optim.{pid}.momentum_buffer"]}
                   for pid in ids if f"optim.{pid}.momentum_buffer" in tensors}
    opt.load_state_dict(sd)


@dataclass
class RunResult:
    out_dir: Path
    metrics: list[dict]
    final: dict
    resumed_from: int = 0
    meta: dict = field(default_factory=dict)


def train(cfg: TrainConfig, out_dir: str | os.PathLike, *, threads: int | None = None,
          progress: bool = True, stop_after_epochs: int | None = None, compile: str = "auto") -> RunResult:
    """Train (or resume) one run into ``out_dir``; returns its metrics and final evaluation.

    ``compile`` (``auto``/``on``/``off``, see :func:`resolve_compile`) is how the run executes,
    not what it trains: it is recorded per segment in the provenance, outside the config, so
    trial ids and the resume check do not depend on it.

    ``stop_after_epochs`` ends the process early after that many epochs of this call (tests use
    it to simulate an interruption at an epoch boundary).
    """
    import torch.distributed as dist

    out = Path(out_dir)
    place = config.dist()
    world, rank = place.world, place.rank
    device = torch.device(f"cuda:{place.local_rank}" if torch.cuda.is_available() else "cpu")
    if threads:
        torch.set_num_threads(threads)
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    precision = resolve_precision(cfg.precision, device)
    spec = get_spec(cfg.arch)
    se = cfg.se_config()
    mean, std = spec.mean, spec.std

    train_set = load_dataset(cfg.data, "train", spec.input_size)
    test_set = load_dataset(cfg.data, "test", spec.input_size)
    data_md5 = train_set.digest.split(":")[0]  # the source's digest (a subset gets a derived one)
    data_name = data_label(train_set.name)
    if cfg.train_subset:
        train_set = train_set.subset(torch.randperm(len(train_set), generator=torch.Generator().manual_seed(1234))[: cfg.train_subset])
    if cfg.test_subset:
        test_set = test_set.subset(eval_subset_indices(len(test_set), cfg.test_subset))
    pidx = probe_indices(test_set, cfg.probe_per_class)
    probe_x, probe_y = normalize(test_set.images[pidx], mean, std), test_set.labels[pidx]

    torch.manual_seed(cfg.seed)
    model = spec.build(se if spec.takes_se else None, num_classes=len(train_set.classes)).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay)
    per_rank_batch = max(1, cfg.batch_size // world)
    steps_per_epoch = len(BatchStream(train_set, per_rank_batch, mean, std, train=True, rank=rank, world=world))
    total_steps = steps_per_epoch * cfg.epochs

    history: dict = {"metrics": [], "gates": [], "wall": 0.0}
    start_epoch = 0
    last = out / "last.safetensors"
    if last.is_file():
        tensors, _ = read_checkpoint(last)
        from safetensors import safe_open
        with safe_open(str(last), "pt") as f:
            state = json.loads(f.metadata()["trainer"])
        if TrainConfig.from_dict(state["config"]).to_dict() != cfg.to_dict():
            raise ValueError(f"{out} holds a run with a different config; use another --out or delete it")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _load_optim(opt, tensors)
        history, start_epoch = state["history"], state["epoch"]
    # Every call that trains records what ran it, so a run resumed across sessions says so.
    compiled = resolve_compile(compile, device, total_steps)
    # precision too: ``auto`` resolves per machine, so a run resumed on another CPU can change it
    segment = {"start_epoch": start_epoch, "commit": git_commit(), "hardware": hardware(), "world_size": world,
               "precision": precision, "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
               "compile": f"{compile}: {'on' if compiled else 'off'}"}
    history.setdefault("segments", []).append(segment)
    ddp_model: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        ddp_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    fwd_model: nn.Module = ddp_model
    if compiled:  # inductor keeps compiled kernels in its on-disk cache, so a resumed run compiles faster
        fwd_model = torch.compile(ddp_model)

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "config.json", json.dumps(cfg.to_dict(), indent=2).encode())
        _write_metrics(out / "metrics.csv", history["metrics"])
    crit = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    done_this_call, warm_images = 0, 0
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        ddp_model.train()
        stream = BatchStream(train_set, per_rank_batch, mean, std, train=True, seed=cfg.seed, epoch=epoch,
                             rank=rank, world=world, channels_last=cfg.channels_last, cutout=cfg.cutout)
        sums = torch.zeros(3, dtype=torch.float64)
        bar = None
        if progress and rank == 0:
            from tqdm import tqdm
            bar = tqdm(total=len(stream), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                       mininterval=1.0 if sys.stderr.isatty() else 30.0, leave=sys.stderr.isatty(), file=sys.stderr)
        step = epoch * steps_per_epoch
        for i, (x, y) in enumerate(stream):
            lr = lr_at(cfg, step + i, total_steps)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            t_step = time.perf_counter()
            with autocast_ctx(precision, device):
                logits = fwd_model(x)
            loss = crit(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if compiled and "compile_warmup_s" not in segment:  # the first step compiles; report it apart
                segment["compile_warmup_s"] = round(time.perf_counter() - t_step, 1)
                warm_images = len(y)
            sums[0] += loss.detach().item() * len(y)
            sums[1] += (logits.detach().argmax(1) == y).sum().item()
            sums[2] += len(y)
            if bar is not None:
                el = time.perf_counter() - t0
                bar.set_postfix(loss=f"{sums[0] / sums[2]:.3f}", acc=f"{100 * sums[1] / sums[2]:.1f}",
                                img_s=f"{sums[2] * world / el:.0f}", refresh=False)
                bar.update(1)
        if bar is not None:
            bar.close()
        if world > 1:
            dist.all_reduce(sums)
        train_seconds = time.perf_counter() - t0
        warmup = segment.get("compile_warmup_s", 0.0) if epoch == start_epoch else 0.0
        timed_images = sums[2].item() - (warm_images * world if warmup else 0)  # every rank compiled a first batch
        ev = evaluate(model, test_set, mean, std, precision=precision, rank=rank, world=world, device=device,
                      channels_last=cfg.channels_last)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": round(sums[0].item() / sums[2].item(), 5),
               "train_acc": round(100 * sums[1].item() / sums[2].item(), 3), "test_loss": round(ev["loss"], 5),
               "test_acc": round(ev["top1"], 3), "lr": round(lr, 6), "seconds": round(seconds, 2),
               "img_per_s": round(timed_images / max(1e-9, train_seconds - warmup), 1)}
        history["metrics"].append(row)
        history["wall"] += seconds
        if rank == 0:
            gates = gate_snapshot(model, probe_x.to(device), probe_y.to(device), len(test_set.classes))
            history["gates"].append({"epoch": epoch + 1, "sites": gates})
            state = {"epoch": epoch + 1, "config": cfg.to_dict(), "history": history}
            tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
            tensors.update(_optim_tensors(opt))
            save_tensors(last, tensors, {"trainer": json.dumps(state)})
            _write_metrics(out / "metrics.csv", history["metrics"])
            atomic_write_bytes(out / "gates.json", json.dumps(history["gates"]).encode())
            print(f"epoch {epoch + 1}/{cfg.epochs} " + " ".join(f"{k}={v}" for k, v in row.items() if k != "epoch"),
                  file=sys.stderr, flush=True)
        if world > 1:
            dist.barrier()
        done_this_call += 1
        if stop_after_epochs is not None and done_this_call >= stop_after_epochs and epoch + 1 < cfg.epochs:
            if own_group:
                dist.destroy_process_group()
            return RunResult(out, history["metrics"], {}, start_epoch)

    final: dict = {}
    if rank == 0:
        final = evaluate(model, test_set, mean, std, precision="fp32", device=device)
        ev_key = "val" if is_holdout(cfg.data) else "test"
        provenance = {
            "command": " ".join([os.path.basename(sys.executable), "-m", "se_core.train", *sys.argv[1:]])
            if sys.argv and sys.argv[0].endswith("train.py") else " ".join(sys.argv),
            "commit": git_commit(), "seed": cfg.seed, "hardware": hardware(), "world_size": world,
            "precision": precision, "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "wall_time_s": round(history["wall"], 1), "data": data_name,
            "data_md5": data_md5, "epochs": cfg.epochs, "eval_set": test_set.name,
            f"{ev_key}_top1_fp32": round(final["top1"], 2), f"{ev_key}_n": final["n"],
            "segments": history["segments"],
        }
        meta = CheckpointMeta(arch=cfg.arch, se_config=None if se is None else se.to_dict(),
                              num_classes=len(train_set.classes), class_names=tuple(train_set.classes), mean=mean,
                              std=std, input_size=spec.input_size, provenance=provenance,
                              extra={"train_config": cfg.to_dict()})
        save_checkpoint(out / "model.safetensors", model, meta)
        atomic_write_bytes(out / "final.json", json.dumps({"final": final, "provenance": provenance}, indent=2).encode())
    if world > 1:
        dist.barrier()
    if own_group:  # without this, gloo's threads can abort ("terminate called ...") at interpreter exit
        dist.destroy_process_group()
    return RunResult(out, history["metrics"], final, start_epoch)


def parse_se(text: str | None) -> SEConfig | None:
    """``'reduction=8,min_hidden=8,gate=tanh,stages=2+3'`` -> SEConfig; ``None``/``''`` -> None."""
    if not text:
        return None
    kw: dict = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        k, v = k.strip(), v.strip()
        if k in ("reduction", "min_hidden"):
            kw[k] = int(v)
        elif k == "stages":
            kw[k] = tuple(int(s) for s in v.replace("+", " ").split())
        else:
            kw[k] = v
    return SEConfig(**kw)


def train_command(cfg: TrainConfig, out: str, threads: int | None = 1) -> str:
    """The ``python -m se_core.train`` command that trains (or resumes) ``cfg`` into ``out``: every field
    that differs from the defaults, so a resume passes the trainer's same-config check."""
    d, flags = TrainConfig(), ["python", "-m", "se_core.train", "--arch", cfg.arch]
    if cfg.se is not None:
        se, base = cfg.se.to_dict(), SEConfig().to_dict()
        parts = [f"{k}={'+'.join(map(str, v)) if k == 'stages' else v}" for k, v in se.items()
                 if v != base.get(k) and v is not None]
        flags += ["--se", ",".join(parts) or f"reduction={cfg.se.reduction}"]
    for f in fields(TrainConfig):
        v = getattr(cfg, f.name)
        if f.name in ("arch", "se") or v == getattr(d, f.name):
            continue
        if f.name == "nesterov":
            flags.append("--no-nesterov")
        elif f.name == "channels_last":
            flags.append("--no-channels-last")
        else:
            flags += ["--" + f.name.replace("_", "-"), str(v)]
    if threads:
        flags += ["--threads", str(threads)]
    return shlex.join([*flags, "--out", out])


def parse_command(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """The trainer's command line -> (TrainConfig, the parsed flags); ValueError/KeyError for a bad config."""
    ap = argparse.ArgumentParser(prog="python -m se_core.train", description="Train an SE or vanilla network (resumable).")
    d = TrainConfig()
    ap.add_argument("--arch", default=d.arch)
    ap.add_argument("--se", default=None, help="SE overrides, e.g. 'reduction=8,gate=tanh,stages=2+3,integration=pre'")
    for name in ("epochs", "batch_size", "seed", "probe_per_class", "cutout"):
        ap.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("lr", "momentum", "weight_decay", "label_smoothing", "warmup_frac"):
        ap.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    ap.add_argument("--se-weight-decay", type=float, default=None,
                    help="weight decay of the SE units' parameters (default: --weight-decay)")
    ap.add_argument("--no-nesterov", action="store_true")
    ap.add_argument("--schedule", default=d.schedule, choices=("onecycle", "cosine"))
    ap.add_argument("--precision", default=d.precision, choices=("auto", "bf16", "fp32"))
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--data", default=d.data, help="cifar10-jpeg, torchvision-cifar10:ROOT or an ImageFolder path; "
                    "append @val=N to evaluate on N held-out training images instead of the test set")
    ap.add_argument("--train-subset", type=int, default=None)
    ap.add_argument("--test-subset", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads per process")
    ap.add_argument("--out", required=True, help="run directory (resumed when it holds last.safetensors)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--compile", default="auto", choices=COMPILE_MODES,
                    help=f"torch.compile the training forward: auto = for runs of >= {COMPILE_MIN_STEPS} steps "
                    "where a compiler exists (default), on, off")
    a = ap.parse_args(argv)
    cfg = TrainConfig(arch=a.arch, se=parse_se(a.se), epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                      momentum=a.momentum, nesterov=not a.no_nesterov, weight_decay=a.weight_decay,
                      label_smoothing=a.label_smoothing, schedule=a.schedule, warmup_frac=a.warmup_frac,
                      seed=a.seed, precision=a.precision, channels_last=not a.no_channels_last, data=a.data,
                      train_subset=a.train_subset, test_subset=a.test_subset, probe_per_class=a.probe_per_class,
                      cutout=a.cutout, se_weight_decay=a.se_weight_decay)
    return cfg, a


def main(argv: list[str] | None = None) -> int:
    try:
        cfg, a = parse_command(argv)
    except (ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res = train(cfg, a.out, threads=a.threads, progress=not a.no_progress, compile=a.compile)
    if res.final:
        print(json.dumps({"top1": res.final["top1"], "n": res.final["n"], "out": str(res.out_dir)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
