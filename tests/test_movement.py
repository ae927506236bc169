"""Gate movement (se_core.analysis.movement, ExcitationStats.movement_frame) and its chart: a dead SE unit is seen as frozen."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dashboard.figures import common, style
from se_core.analysis import stats as S
from se_core.analysis.movement import FROZEN_SHARE, STILL_STD, is_frozen, still_share
from se_core.data.constants import CIFAR10_MEAN, CIFAR10_STD
from se_core.data.datasets import ImageSet
from se_core.nn.resnet import cifar_resnet
from se_core.nn.se import SEConfig


def test_still_share_and_frozen() -> None:
    assert still_share(np.array([0.0, 0.005, 0.02, 0.5])) == 0.5
    assert still_share(np.array([STILL_STD])) == 0.0  # strictly below the threshold is still
    assert is_frozen(0.51) and not is_frozen(FROZEN_SHARE) and not is_frozen(0.0)
    assert np.isnan(still_share(np.array([])))


def _images(n: int = 64, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    # one random colour per image plus a little noise: channel means differ a lot between images
    colour = torch.randint(0, 256, (n, 1, 1, 3), generator=g).float()
    x = (colour + 20 * torch.randn(n, 16, 16, 3, generator=g)).clamp(0, 255).to(torch.uint8)
    return ImageSet(x, torch.arange(n) % 10, tuple(f"c{i}" for i in range(10)), f"random{n}", f"rand-{seed}-{n}")


def test_a_dead_unit_is_frozen_and_a_live_one_is_not() -> None:
    """A unit whose hidden ReLU never fires (fc1 bias far below zero) gives s = sigmoid(fc2 bias) for
    every image: all its channels still, the block frozen; the untouched blocks move."""
    torch.manual_seed(0)
    net = cifar_resnet(8, SEConfig(reduction=4)).eval()
    with torch.no_grad():
        net.layer2[0].se.fc1.bias.fill_(-1e4)
        for m in net.modules():  # make the live units clearly input-dependent
            if hasattr(m, "fc2") and m is not net.layer2[0].se:
                m.fc1.weight.mul_(4)
                m.fc2.weight.mul_(4)
    stats = S.compute_stats(net, _images(), CIFAR10_MEAN, CIFAR10_STD, batch_size=32)
    frame = stats.movement_frame().set_index("site")
    assert frame.loc["layer2.0.se", "still_share"] == 1.0 and frame.loc["layer2.0.se", "frozen"]
    assert frame.loc["layer2.0.se", "max_std"] < 1e-6
    live = frame.drop(index="layer2.0.se")
    assert not live["frozen"].any() and (live["median_std"] > STILL_STD).all()
    # the numbers are the per-channel std over all images
    std = np.sqrt(stats.var("layer1.0.se"))
    assert frame.loc["layer1.0.se", "median_std"] == pytest.approx(float(np.median(std)))
    assert list(frame["channels"]) == [s.channels for s in stats.gate_sites]


def test_gate_movement_chart() -> None:
    frame = pd.DataFrame(
        {"site": ["a.se", "b.se"], "label": ["s1.b0", "s1.b1"], "median_std": [0.001, 0.05],
         "still_share": [0.9, 0.1], "frozen": [True, False]})
    fig = common.gate_movement(frame)
    (bar,) = fig.data
    assert list(bar.y) == [0.9, 0.1] and list(bar.x) == ["s1.b0", "s1.b1"]
    assert bar.marker.color[0] == style.FROZEN_COLOR and bar.marker.color[1] == style.PAIR_COLORS["se"]
    assert list(bar.text) == ["frozen", ""] and fig.layout.meta["chart"] == "gate_movement"
    assert fig.layout.shapes[0].y0 == FROZEN_SHARE
