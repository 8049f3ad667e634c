"""training/sam.py: the sharpness-aware step's climb, return and batch-norm statistics."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")

from torch import nn  # noqa: E402

from emolens.training.sam import SharpnessAware  # noqa: E402


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def loss_of(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 0]))


def flat(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_climb_moves_the_weights_by_rho_along_the_gradient_and_return_restores_them():
    net, x = tiny_net(), torch.randn(4, 1, 8, 8)
    loss_of(net, x).backward()
    grad = torch.cat([p.grad.flatten() for p in net.parameters()])
    before = flat(net)
    sam = SharpnessAware(net, rho=0.05)
    sam.climb()
    moved = flat(net) - before
    assert torch.linalg.vector_norm(moved).item() == pytest.approx(0.05, rel=1e-4)
    torch.testing.assert_close(moved, 0.05 * grad / torch.linalg.vector_norm(grad), rtol=1e-3, atol=1e-7)
    sam.return_to_weights()
    assert torch.equal(flat(net), before)


def test_the_step_gradient_is_the_gradient_at_the_climbed_weights():
    net, x = tiny_net(), torch.randn(4, 1, 8, 8)
    net.eval()  # batch norm from running statistics: the loss is a plain function of the weights
    loss_of(net, x).backward()
    grad = [p.grad.clone() for p in net.parameters()]
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grad]))
    expected = tiny_net().eval()
    with torch.no_grad():
        for p, g in zip(expected.parameters(), grad):
            p.add_(0.1 * g / norm)
    loss_of(expected, x).backward()

    sam = SharpnessAware(net, rho=0.1)
    sam.climb()
    net.zero_grad()
    loss_of(net, x).backward()
    sam.return_to_weights()
    for p, q in zip(net.parameters(), expected.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
    assert not torch.equal(net[0].weight.grad, grad[0])


def test_the_second_pass_leaves_batch_norm_running_statistics_alone():
    net, x = tiny_net(), torch.randn(4, 1, 8, 8)
    bn = net[1]
    loss_of(net, x).backward()
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    sam = SharpnessAware(net, rho=0.05)
    sam.climb()
    with sam.frozen_batch_norm_statistics():
        loss_of(net, x * 3 + 1).backward()
    sam.return_to_weights()
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    assert bn.momentum == 0.1
    net(x)  # outside the block the statistics move again
    assert not torch.equal(bn.running_mean, mean)


def test_misuse_is_a_clear_error():
    net = tiny_net()
    with pytest.raises(ValueError, match="rho"):
        SharpnessAware(net, rho=0)
    sam = SharpnessAware(net, rho=0.05)
    with pytest.raises(RuntimeError, match="backward"):
        sam.climb()
    loss_of(net, torch.randn(4, 1, 8, 8)).backward()
    sam.climb()
    with pytest.raises(RuntimeError, match="twice"):
        sam.climb()
