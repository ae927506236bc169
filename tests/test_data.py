"""Data sources behind one API, tensor augmentation, and deterministic sharded batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from support import needs_cifar

from se_core.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from se_core.data.datasets import (
    BatchStream,
    DataError,
    ImageSet,
    augment,
    cifar10_jpeg,
    holdout_indices,
    image_folder,
    is_holdout,
    load_dataset,
    torchvision_cifar10,
)


@pytest.fixture(scope="module")
def test_set() -> ImageSet:
    return cifar10_jpeg("test")


@needs_cifar
def test_cifar_jpeg_cache(test_set: ImageSet) -> None:
    assert test_set.images.shape == (10000, 32, 32, 3) and test_set.images.dtype == torch.uint8
    assert torch.equal(test_set.labels.bincount(), torch.full((10,), 1000))
    assert test_set.classes == CIFAR10_CLASSES and "JPEG q75" in test_set.name
    x, y = test_set[1500]
    assert x.shape == (3, 32, 32) and y == 1  # class-sorted: images 1000..1999 are automobiles


def test_augment_is_a_crop_and_flip_drawn_from_the_generator() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    a = augment(x, torch.Generator().manual_seed(3), pad=2)
    b = augment(x, torch.Generator().manual_seed(3), pad=2)
    assert torch.equal(a, b) and a.shape == x.shape
    # every output row is a (possibly flipped, shifted) window of the zero-padded input
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for n in range(2):
        windows = [padded[n, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(a[n], w) or torch.equal(a[n], w.flip(-1)) for w in windows)


@needs_cifar
def test_batch_stream_shards_are_disjoint_and_deterministic(test_set: ImageSet) -> None:
    small = test_set.subset(torch.arange(0, 10000, 50))
    kw = dict(batch_size=16, mean=CIFAR10_MEAN, std=CIFAR10_STD, train=True, seed=1, epoch=2)
    r0, r1 = BatchStream(small, rank=0, world=2, **kw), BatchStream(small, rank=1, world=2, **kw)
    assert set(r0.order.tolist()).isdisjoint(r1.order.tolist()) and len(r0) == len(r1)
    again = BatchStream(small, rank=0, world=2, **kw)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(r0, again))
    other_epoch = BatchStream(small, rank=0, world=2, **{**kw, "epoch": 3})
    assert not torch.equal(r0.order, other_epoch.order)


def test_image_folder_and_load_dataset(tmp_path) -> None:
    for c, colour in (("cats", (200, 10, 10)), ("ships", (10, 10, 200))):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.new("RGB", (40 + i, 30), colour).save(tmp_path / c / f"{i}.png")
    (tmp_path / "cats" / "broken.png").write_bytes(b"not an image")
    ds = load_dataset(str(tmp_path), size=(32, 32))
    assert ds.classes == ("cats", "ships") and len(ds) == 6 and "1 unreadable" in ds.name
    assert ds.images.shape == (6, 32, 32, 3)
    assert np.allclose(ds.images[0].float().mean((0, 1)).numpy(), (200, 10, 10), atol=1)
    with pytest.raises(DataError, match="no class sub-folders"):
        image_folder(tmp_path / "cats")


def test_torchvision_cifar_offline_message(tmp_path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        torchvision_cifar10(tmp_path, "test")


def test_holdout_split_is_stratified_disjoint_and_fixed() -> None:
    labels = torch.arange(103) % 4  # 26, 26, 26, 25 per class
    kept, held = holdout_indices(labels, 10)
    assert len(held) == 10 and len(kept) == 93
    assert set(kept.tolist()).isdisjoint(held.tolist()) and set(kept.tolist()) | set(held.tolist()) == set(range(103))
    assert labels[held].bincount().tolist() == [3, 3, 2, 2]  # as equal as 10 / 4 allows
    again_kept, again_held = holdout_indices(labels, 10)
    assert torch.equal(held, again_held) and torch.equal(kept, again_kept)  # every run holds out the same images
    assert not torch.equal(held, holdout_indices(labels, 10, seed=1)[1])
    for bad in (0, 103):
        with pytest.raises(DataError, match="hold out between 1 and 102"):
            holdout_indices(labels, bad)
    with pytest.raises(DataError, match="more images than class"):
        holdout_indices(torch.tensor([0, 0, 0, 0, 1]), 2)


@needs_cifar
def test_load_dataset_holdout_on_cifar_never_touches_the_test_set() -> None:
    assert is_holdout("cifar10-jpeg@val=5000") and not is_holdout("cifar10-jpeg")
    train, val = load_dataset("cifar10-jpeg@val=5000", "train"), load_dataset("cifar10-jpeg@val=5000", "test")
    full = cifar10_jpeg("train")
    assert len(train) == 45_000 and len(val) == 5_000
    assert val.labels.bincount().tolist() == [500] * 10
    assert "validation" in val.name and "held out" in train.name and val.name.startswith("CIFAR-10 (JPEG q75)")
    # the validation images are training images, and none of them is in the training part
    _, held = holdout_indices(full.labels, 5000)
    assert torch.equal(val.images, full.images[held])


def test_cutout_zeroes_one_clipped_square_and_nothing_else() -> None:
    x = torch.rand(64, 3, 12, 12) + 1.0  # no zeros of its own
    plain = augment(x, torch.Generator().manual_seed(5), pad=0)  # flips only: no zeros from padding
    cut = augment(x, torch.Generator().manual_seed(5), pad=0, cutout=6)
    zero = cut == 0
    assert torch.equal(cut[~zero], plain[~zero])  # the flips are the same draws as without cutout
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # every channel of the square
    areas = zero[:, 0].sum((1, 2))
    assert int(areas.max()) == 36 and int(areas.min()) >= 9  # 6 x 6, or clipped at a border to >= 3 x 3
    for m in zero[:, 0]:
        ys, xs = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        assert int(m.sum()) == len(ys) * len(xs)  # a rectangle
        assert torch.equal(ys, torch.arange(int(ys[0]), int(ys[-1]) + 1))
    assert (areas < 36).any()  # some squares are clipped
