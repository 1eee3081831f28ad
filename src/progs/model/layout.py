"""The anchor attribute layout: the one place that knows how an anchor's attributes line up.

Per anchor, the coded attribute vector is ``feature (F) | scaling (6) | offsets (K x 3, flattened)``,
in that order: the context model predicts one mean and deviation per channel of it, one step per
block (f, s, o), and the codec writes the blocks in this order. Training (noise, rate, InfoNCE), the
context model and the codec all go through :class:`AttributeLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SCALING_DIM = 6  # log scales: 3 for the offsets, 3 for the Gaussians
BLOCK_NAMES = ("f", "s", "o")


@dataclass(frozen=True)
class AttributeLayout:
    feat_dim: int = 32
    n_offsets: int = 10

    @classmethod
    def from_dims(cls, dims: tuple[int, int, int] | list[int]) -> "AttributeLayout":
        """The layout whose block widths are ``dims`` = (F, 6, 3K) (as stored in a stream)."""
        f, s, o = (int(d) for d in dims)
        if s != SCALING_DIM or o % 3 or f <= 0 or o <= 0:
            raise ValueError(f"attribute blocks {tuple(dims)} are not (F, {SCALING_DIM}, 3K)")
        return cls(f, o // 3)

    @property
    def dims(self) -> tuple[int, int, int]:
        """Block widths (f, s, o)."""
        return (self.feat_dim, SCALING_DIM, 3 * self.n_offsets)

    @property
    def total(self) -> int:
        return sum(self.dims)

    @property
    def edges(self) -> tuple[int, int, int, int]:
        """Column boundaries of the blocks: block i is ``[edges[i], edges[i + 1])``."""
        f, s, o = self.dims
        return (0, f, f + s, f + s + o)

    def block(self, m: torch.Tensor, i: int) -> torch.Tensor:
        """Block ``i`` (0 = f, 1 = s, 2 = o) of an attribute matrix [N, D]."""
        e = self.edges
        return m[:, e[i] : e[i + 1]]

    def join(self, feature: torch.Tensor, scaling: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """[N, D] = feature | scaling | offsets (flattened); differentiable."""
        return torch.cat([feature, scaling, offsets.reshape(offsets.shape[0], -1)], dim=-1)

    def split(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(feature [N, F], scaling [N, 6], offsets [N, K, 3]) of an attribute matrix [N, D]."""
        e = self.edges
        return m[:, : e[1]], m[:, e[1] : e[2]], m[:, e[2] :].reshape(m.shape[0], self.n_offsets, 3)

    def per_channel(self, per_block: torch.Tensor) -> torch.Tensor:
        """Expand one value per block [N, 3] to one per channel [N, D]."""
        return torch.repeat_interleave(per_block, torch.tensor(self.dims, device=per_block.device), dim=1)
