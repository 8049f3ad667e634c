"""Batched tensor augmentation: a whole uint8 batch in, a normalised float batch out.

Everything is tensor ops on the batch (no per-image Python), driven by an explicit
``torch.Generator`` so a seeded run is reproducible: horizontal flips, small rotations,
scale and shift (one affine grid sample), brightness and contrast changes (brightness
optionally in a few fixed levels, as Xu et al.'s 7) and Gaussian blur as in Xu et al., and
random erasing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from emolens.model_input import InputSpec


class AugmentConfig(BaseModel):
    """``[augment]`` of a recipe; each value range-checked (a probability is 0..1)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True)

    flip: float = Field(0.5, ge=0, le=1)        # probability of a horizontal flip
    rotate: float = Field(10.0, ge=0, le=180)   # max rotation, degrees
    scale: float = Field(0.1, ge=0, lt=1)       # scale in [1 - s, 1 + s]
    shift: float = Field(0.08, ge=0, le=1)      # translation, fraction of the side
    brightness: float = Field(0.25, ge=0, le=1)  # additive offset in [-b, b] (on the 0..1 scale)
    brightness_levels: int = Field(0, ge=0, le=255)  # 0: any offset in [-b, b]; k >= 2: one of k evenly spaced (Xu et al.: 7)
    contrast: float = Field(0.25, ge=0, le=1)   # contrast factor in [1 - c, 1 + c]
    blur: float = Field(0.15, ge=0, le=1)       # probability of a Gaussian blur (sigma 0.5..1.5 px)
    erase: float = Field(0.25, ge=0, le=1)      # probability of erasing one random rectangle

    @model_validator(mode="after")
    def _levels(self) -> "AugmentConfig":
        if self.brightness_levels == 1:
            raise ValueError("brightness_levels = 1 is no choice of offset: use 0 (any offset in [-brightness, "
                             "brightness]) or 2 or more evenly spaced levels")
        if self.brightness_levels and self.brightness == 0:
            raise ValueError(f"brightness_levels = {self.brightness_levels} needs brightness > 0 (the largest "
                             "offset the levels span)")
        return self


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))


def augment_batch(images: torch.Tensor, cfg: AugmentConfig, spec: InputSpec, gen: torch.Generator) -> torch.Tensor:
    """``(B, H, W)`` uint8 -> augmented, normalised ``(B, 1, H, W)`` float32."""
    x = images.float().div_(255.0).unsqueeze(1)
    b = x.shape[0]
    if cfg.flip > 0:
        flip = torch.rand(b, generator=gen) < cfg.flip
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if cfg.rotate > 0 or cfg.scale > 0 or cfg.shift > 0:
        angle = _uniform(b, -cfg.rotate, cfg.rotate, gen) * (math.pi / 180)
        scale = _uniform(b, 1 - cfg.scale, 1 + cfg.scale, gen)
        tx = _uniform(b, -cfg.shift, cfg.shift, gen) * 2
        ty = _uniform(b, -cfg.shift, cfg.shift, gen) * 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.contrast > 0 or cfg.brightness > 0:
        mean = x.mean(dim=(2, 3), keepdim=True)
        c = _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast, gen).view(-1, 1, 1, 1)
        if cfg.brightness_levels:  # one of k evenly spaced offsets from -b to b
            level = torch.randint(cfg.brightness_levels, (b,), generator=gen).float()
            o = (level / (cfg.brightness_levels - 1) * 2 - 1).mul_(cfg.brightness).view(-1, 1, 1, 1)
        else:
            o = _uniform(b, -cfg.brightness, cfg.brightness, gen).view(-1, 1, 1, 1)
        x = ((x - mean) * c + mean + o).clamp_(0, 1)
    if cfg.blur > 0:
        blur = torch.rand(b, generator=gen) < cfg.blur
        if blur.any():
            sigma = float(_uniform(1, 0.5, 1.5, gen))
            x = torch.where(blur.view(-1, 1, 1, 1), gaussian_blur(x, sigma), x)
    if cfg.erase > 0:
        h, w = x.shape[-2:]
        erase = (torch.rand(b, generator=gen) < cfg.erase).view(-1, 1, 1)
        eh = (_uniform(b, 0.1, 0.4, gen) * h).view(-1, 1, 1)
        ew = (_uniform(b, 0.1, 0.4, gen) * w).view(-1, 1, 1)
        y0 = torch.rand(b, generator=gen).view(-1, 1, 1) * (h - eh)
        x0 = torch.rand(b, generator=gen).view(-1, 1, 1) * (w - ew)
        yy = torch.arange(h).view(1, -1, 1)
        xx = torch.arange(w).view(1, 1, -1)
        box = erase & (yy >= y0) & (yy < y0 + eh) & (xx >= x0) & (xx < x0 + ew)
        fill = torch.rand(b, generator=gen).view(-1, 1, 1)
        x = torch.where(box.unsqueeze(1), fill.unsqueeze(1), x)
    return (x - spec.mean) / spec.std


def normalize_batch(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """``(B, H, W)`` uint8 -> normalised ``(B, 1, H, W)`` float32, no augmentation."""
    return (images.float().div(255.0).unsqueeze(1) - spec.mean) / spec.std
