"""Weight averaging (emolens.training.averaging): equal-weight mean, batch-norm statistics recomputed."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")

from emolens.model_input import DEFAULT_INPUT  # noqa: E402
from emolens.training.augment import normalize_batch  # noqa: E402
from emolens.training.averaging import WeightAverage  # noqa: E402


def small_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))


def test_average_is_the_mean_of_the_members_parameters():
    nets = [small_net(s) for s in range(3)]
    avg = WeightAverage(nets[0])
    for net in nets:
        avg.add(net)
    assert avg.count == 3
    mean = sum(n[0].weight.detach() for n in nets) / 3
    torch.testing.assert_close(avg.model.module[0].weight.detach(), mean)


def test_finish_recomputes_batch_norm_statistics_on_the_faces():
    net = small_net(0)
    avg = WeightAverage(net)
    avg.add(net)
    faces = torch.randint(0, 256, (64, 48, 48), dtype=torch.uint8)
    out = avg.finish(faces, DEFAULT_INPUT, batch_size=32)
    assert not out.training
    with torch.no_grad():
        conv = out[0](normalize_batch(faces, DEFAULT_INPUT))
    # two equal batches: the cumulative average of their means is the mean over all faces
    torch.testing.assert_close(out[1].running_mean, conv.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert out[1].momentum == net[1].momentum  # restored after the pass


def test_finish_without_members_is_an_error():
    with pytest.raises(ValueError, match="no weights"):
        WeightAverage(small_net(0)).finish(torch.zeros((2, 48, 48), dtype=torch.uint8), DEFAULT_INPUT)
