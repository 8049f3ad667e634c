"""Sharpness-aware minimisation (SAM; Foret et al. 2021, arXiv 2010.01412) around any optimizer.

SAM minimises the loss at the worst point within a radius ``rho`` of the weights rather than
at the weights themselves: after the usual backward pass it moves the weights up the
gradient by ``rho * g / ||g||``, takes the gradient there, moves back, and lets the optimizer
step with that second gradient. Each step costs two forward and backward passes. Foret et
al. report it most robust under label noise, which FER2013 has (its label is the FER+
majority emotion on 63% of PublicTest faces).

Usage in a training step (``loss_at_current_weights`` re-runs the forward pass)::

    loss.backward()
    sam.climb()
    opt.zero_grad()
    with sam.frozen_batch_norm_statistics():
        loss_at_current_weights().backward()
    sam.return_to_weights()
    opt.step()
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


class SharpnessAware:
    def __init__(self, net: nn.Module, rho: float):
        if rho <= 0:
            raise ValueError(f"SAM radius rho must be > 0, got {rho}")
        self.net, self.rho = net, rho
        self._saved: list[tuple[torch.Tensor, torch.Tensor]] = []  # (parameter, its value before climb())

    @torch.no_grad()
    def climb(self) -> None:
        """Move the weights by ``rho`` along their current gradient (the first-order worst point)."""
        if self._saved:
            raise RuntimeError("climb() called twice without return_to_weights()")
        params = [p for p in self.net.parameters() if p.grad is not None]
        if not params:
            raise RuntimeError("climb() needs gradients: call backward() first")
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in params]))
        scale = self.rho / (norm + 1e-12)
        for p in params:
            self._saved.append((p, p.detach().clone()))
            p.add_(p.grad * scale.to(p.grad.dtype))

    @torch.no_grad()
    def return_to_weights(self) -> None:
        """Undo climb(): the weights are back where they were; their gradients stay the climbed ones."""
        for p, before in self._saved:
            p.copy_(before)
        self._saved = []

    @contextmanager
    def frozen_batch_norm_statistics(self) -> Iterator[None]:
        """The second forward pass normalises with its batch as usual but leaves the running
        statistics (used at inference) as the first pass set them."""
        norms = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [m.momentum for m in norms]
        for m in norms:
            m.momentum = 0.0
        try:
            yield
        finally:
            for m, momentum in zip(norms, saved):
                m.momentum = momentum
