"""Image data sets as uint8 tensors, from three sources behind one API (:func:`load_dataset`).

- ``cifar10-jpeg`` (default): the shipped ``shared/data/cifar10-jpeg.tar.gz``, decoded once
  into a uint8 cache keyed by the tarball's md5, so no epoch ever decodes JPEG again.
  Results on it are labelled "CIFAR-10 (JPEG q75)".
- ``torchvision-cifar10:ROOT``: torchvision's ``CIFAR10`` (downloads only when asked and online).
- any ``ImageFolder`` directory (``class/xxx.png``): decoded through :mod:`se_core.data.images`,
  resized to the model's input size.
- any of these with ``@val=N`` appended (e.g. ``cifar10-jpeg@val=5000``): N training images,
  stratified by class and fixed for every run, are held out; split ``train`` is the rest and
  split ``test`` is the held-out set. Schedules and other choices are made on it, so the test set
  is never used to tune.

Batches come from :class:`BatchStream`: augmentation (pad-4 random crop + flip, optional cutout) on tensors,
order and augmentation drawn from ``(seed, epoch)`` so a resumed run sees the same batches,
and each rank of a ``torchrun`` job takes a disjoint shard.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from se_core.config import cache_dir, cifar_tarball
from se_core.util.files import file_digest
from se_core.data.constants import CIFAR10_CLASSES
from se_core.data.images import ImageError, decode_image

JPEG_LABEL = "CIFAR-10 (JPEG q75)"


class DataError(ValueError):
    """A data set that cannot be used; the message says what to do."""


@dataclass
class ImageSet:
    """uint8 images (N x H x W x 3), int64 labels, class names, a name and a content digest."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    digest: str

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """``(uint8 3 x H x W image, label)``: a map-style ``torch.utils.data.Dataset`` for any of the
        three sources, for users who want a ``DataLoader``; training uses :class:`BatchStream`."""
        return self.images[i].permute(2, 0, 1), int(self.labels[i])

    def subset(self, idx: Sequence[int] | torch.Tensor, name: str | None = None) -> "ImageSet":
        idx = torch.as_tensor(idx, dtype=torch.long)
        h = hashlib.md5(self.digest.encode() + idx.numpy().tobytes()).hexdigest()[:16]
        return ImageSet(self.images[idx], self.labels[idx], self.classes, name or f"{self.name}[{len(idx)}]", h)


def md5_file(path: str | os.PathLike) -> str:
    """The tarball's MD5, the digest its PROVENANCE.md quotes (and the name of its decoded cache)."""
    return file_digest(path, "md5")


_NAME_RE = re.compile(r"(?:^|/)(train|test)/([^/]+)/(\d+)\.(?:jpe?g|png)$", re.I)


def _decode_tarball(tarball: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from PIL import Image

    items: dict[str, list[tuple[int, int, np.ndarray]]] = {"train": [], "test": []}
    cls_index = {c: i for i, c in enumerate(CIFAR10_CLASSES)}
    with tarfile.open(tarball, "r:gz") as tf:
        for member in tf:
            m = _NAME_RE.search(member.name)
            if not member.isfile() or not m:
                continue
            split, cls, num = m.group(1), m.group(2), int(m.group(3))
            if cls not in cls_index:
                raise DataError(f"{tarball.name}: unknown class folder {cls!r}")
            data = tf.extractfile(member).read()  # type: ignore[union-attr]
            arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)
            items[split].append((cls_index[cls], num, arr))
    out = {}
    for split, rows in items.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        out[split] = (np.stack([r[2] for r in rows]), np.array([r[0] for r in rows], dtype=np.int64))
    return out


def cifar10_jpeg(split: str = "train", tarball: str | os.PathLike | None = None) -> ImageSet:
    """The shipped CIFAR-10 JPEG set, decoded once into ``.cache/cifar10-jpeg-<md5>/``."""
    tarball = Path(tarball or cifar_tarball())
    if not tarball.is_file():
        raise DataError(f"CIFAR-10 JPEG tarball not found at {tarball}; set SE_LENS_CIFAR_TARBALL to its path")
    md5 = md5_file(tarball)
    cache = cache_dir() / f"cifar10-jpeg-{md5}"
    files = {s: cache / f"{s}.npz" for s in ("train", "test")}
    if not all(f.is_file() for f in files.values()):
        decoded = _decode_tarball(tarball)
        cache.mkdir(parents=True, exist_ok=True)
        for s, (x, y) in decoded.items():
            tmp = cache / f".{s}.{os.getpid()}.npz"
            np.savez(tmp, images=x, labels=y)
            os.replace(tmp, files[s])
    with np.load(files[split]) as z:
        x, y = torch.from_numpy(z["images"]), torch.from_numpy(z["labels"])
    return ImageSet(x, y, CIFAR10_CLASSES, f"{JPEG_LABEL} {split}", f"{md5}:{split}")


def torchvision_cifar10(root: str | os.PathLike, split: str = "train", download: bool = False) -> ImageSet:
    """torchvision's ``CIFAR10``; offline without local files gives a message saying what to do."""
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(str(root), train=(split == "train"), download=download)
    except RuntimeError as e:
        raise DataError(f"torchvision CIFAR10 not found under {root} ({str(e).splitlines()[0]}); put the extracted "
                        "'cifar-10-batches-py' folder there, or run once online with download=True") from None
    except OSError as e:
        raise DataError(f"torchvision CIFAR10 could not be downloaded ({e}); this machine looks offline: copy "
                        f"'cifar-10-batches-py' into {root} instead") from None
    x = torch.from_numpy(np.asarray(ds.data, dtype=np.uint8))
    y = torch.as_tensor(ds.targets, dtype=torch.long)
    h = hashlib.md5(x[:: max(1, len(x) // 256)].numpy().tobytes()).hexdigest()
    return ImageSet(x, y, tuple(ds.classes), f"torchvision CIFAR-10 {split}", h)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def image_folder(root: str | os.PathLike, size: tuple[int, int] = (32, 32), max_images: int | None = None) -> ImageSet:
    """An ``ImageFolder`` layout (``root/class/image``), each image decoded and resized to ``size``.

    Unreadable files are skipped and counted in the set's name, never fatal.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory; point at a folder with one sub-folder per class")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise DataError(f"{root} has no class sub-folders; lay it out as {root}/<class>/<image>")
    imgs, labels, skipped = [], [], 0
    h = hashlib.md5()
    for ci, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                continue
            data = f.read_bytes()
            try:
                img = decode_image(data).resize((size[1], size[0]))
            except ImageError:
                skipped += 1
                continue
            h.update(hashlib.md5(data).digest())
            imgs.append(np.asarray(img, dtype=np.uint8))
            labels.append(ci)
            if max_images and len(imgs) >= max_images:
                break
    if not imgs:
        raise DataError(f"{root}: no readable images in its class folders ({skipped} unreadable)")
    name = f"ImageFolder {root.name}" + (f" ({skipped} unreadable skipped)" if skipped else "")
    return ImageSet(torch.from_numpy(np.stack(imgs)), torch.as_tensor(labels), classes, name, h.hexdigest())


HOLDOUT_SEED = 0
"""Seed of the held-out split: the same validation images for every run and seed."""
_HOLDOUT = re.compile(r"^(?P<base>.*)@val=(?P<n>\d+)$")


def data_label(train_set_name: str) -> str:
    """``'CIFAR-10 (JPEG q75) train'`` (or ``... train minus N held out``) -> ``'CIFAR-10 (JPEG q75)'``."""
    return re.sub(r" train( minus \d+ held out)?$", "", train_set_name)


def is_holdout(spec: str) -> bool:
    """Whether ``spec`` names a held-out validation split (``...@val=N``)."""
    return bool(_HOLDOUT.match(spec))


def holdout_indices(labels: torch.Tensor, n: int, seed: int = HOLDOUT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) indices: ``n`` images held out, as equal a share of each class as ``n`` allows."""
    labels = torch.as_tensor(labels)
    if not 0 < n < len(labels):
        raise DataError(f"@val={n}: hold out between 1 and {len(labels) - 1} of the {len(labels)} training images")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    classes = labels.unique(sorted=True)
    by_class = [order[labels[order] == c] for c in classes]
    quota = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]
    short = [int(c) for c, idx, q in zip(classes, by_class, quota) if len(idx) <= q]
    if short:
        raise DataError(f"@val={n} needs more images than class(es) {short} have; hold out fewer")
    held = torch.cat([idx[:q] for idx, q in zip(by_class, quota)]).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held] = False
    return mask.nonzero().flatten(), held


def load_dataset(spec: str = "cifar10-jpeg", split: str = "test", size: tuple[int, int] = (32, 32)) -> ImageSet:
    """One entry point: ``cifar10-jpeg``, ``torchvision-cifar10:ROOT`` or an ImageFolder path,
    each optionally ``@val=N`` (split ``test`` is then N held-out training images)."""
    m = _HOLDOUT.match(spec)
    if m:
        base, n = m["base"], int(m["n"])
        full = load_dataset(base, "train", size)
        kept, held = holdout_indices(full.labels, n)
        stem = data_label(full.name)
        if split == "train":
            return full.subset(kept, f"{stem} train minus {n} held out")
        return full.subset(held, f"{stem} validation ({n} held-out training images)")
    if spec in ("", "cifar10-jpeg"):
        return cifar10_jpeg(split)
    if spec.startswith("torchvision-cifar10:"):
        return torchvision_cifar10(spec.split(":", 1)[1], split)
    return image_folder(spec, size)


def normalize(x_uint8_nhwc: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              channels_last: bool = False) -> torch.Tensor:
    """uint8 N x H x W x 3 -> normalized float N x 3 x H x W."""
    x = x_uint8_nhwc.permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    x = (x - m) / s
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4, cutout: int = 0) -> torch.Tensor:
    """Pad-``pad`` random crop and horizontal flip of N x C x H x W, drawn from ``gen``; with ``cutout``
    > 0, also zero a ``cutout`` x ``cutout`` square at a random centre, clipped at the border (DeVries &
    Taylor 2017; zero is the data set mean, the input being normalized). ``cutout=0`` draws nothing
    more from ``gen``, so runs without it see exactly the batches they always did."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = dx[:, None] + torch.arange(w)[None]
    cols = torch.where(flip[:, None], cols.flip(1), cols).view(n, 1, 1, w).expand(n, c, h, w)
    out = out.gather(3, cols)
    if cutout > 0:
        cy = torch.randint(0, h, (n, 1), generator=gen) - cutout // 2
        cx = torch.randint(0, w, (n, 1), generator=gen) - cutout // 2
        ys, xs = torch.arange(h)[None], torch.arange(w)[None]
        in_y = (ys >= cy) & (ys < cy + cutout)
        in_x = (xs >= cx) & (xs < cx + cutout)
        out = out.masked_fill((in_y[:, :, None] & in_x[:, None, :])[:, None], 0.0)
    return out


class BatchStream:
    """Deterministic batches of one epoch: order and augmentation from ``(seed, epoch)``.

    With ``world > 1`` each rank takes every ``world``-th sample of the shuffled order
    (dropping the tail so all ranks see equally many batches, as DDP needs).
    """

    def __init__(self, data: ImageSet, batch_size: int, mean: Sequence[float], std: Sequence[float], *,
                 train: bool, seed: int = 0, epoch: int = 0, rank: int = 0, world: int = 1,
                 channels_last: bool = False, drop_last: bool | None = None, cutout: int = 0) -> None:
        self.data, self.batch_size, self.mean, self.std = data, batch_size, mean, std
        self.train, self.channels_last, self.cutout = train, channels_last, cutout
        self.gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        n = len(data)
        order = torch.randperm(n, generator=self.gen) if train else torch.arange(n)
        if world > 1:
            per = n // world if train else -(-n // world)
            order = order[rank::world][:per]
        self.order = order
        self.drop_last = train if drop_last is None else drop_last

    def __len__(self) -> int:
        n = len(self.order)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(len(self)):
            idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
            x = normalize(self.data.images[idx], self.mean, self.std)
            if self.train:
                x = augment(x, self.gen, cutout=self.cutout)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.data.labels[idx]
