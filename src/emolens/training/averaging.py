"""Stochastic weight averaging (SWA): one net from the weights of a run's last epochs.

The average of the end-of-epoch weights over the last K epochs of a run (Izmailov et al.,
2018) sits nearer the centre of the flat region the schedule's tail wanders in than any
single epoch does. Batch-norm statistics of the averaged weights are not the average of the
members' statistics, so they are recomputed afterwards with one pass over the training faces
(un-augmented, in order: deterministic).

The training loop uses this for ``swa_epochs`` in a recipe; ``benchmarks/weight_average.py``
uses the same code on saved per-epoch checkpoints, so both give the same net.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

from emolens.model_input import InputSpec
from emolens.training.augment import normalize_batch


class WeightAverage:
    """Running equal-weight average of a net's parameters (buffers are recomputed, not averaged)."""

    def __init__(self, net: torch.nn.Module):
        self.model = AveragedModel(net, use_buffers=False)

    @property
    def count(self) -> int:
        return int(self.model.n_averaged)

    def add(self, net: torch.nn.Module) -> None:
        self.model.update_parameters(net)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)

    @torch.no_grad()
    def finish(self, images: torch.Tensor, spec: InputSpec, batch_size: int = 512) -> torch.nn.Module:
        """The averaged net with batch-norm statistics recomputed on ``images`` (uint8 faces)."""
        if self.count == 0:
            raise ValueError("no weights were added to the average")
        net = self.model.module
        bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if bns:
            momenta = {}
            for bn in bns:
                bn.reset_running_stats()
                momenta[bn] = bn.momentum
                bn.momentum = None  # cumulative average over all batches
            net.train()
            for i in range(0, len(images), batch_size):
                x = normalize_batch(images[i:i + batch_size], spec).contiguous(memory_format=torch.channels_last)
                net(x)
            for bn in bns:
                bn.momentum = momenta[bn]
        net.eval()
        return net
