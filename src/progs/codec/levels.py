"""One level's attributes in a LOD chunk: the context model's coding parameters per level, the
quantization of attributes into residual symbols around the predicted means, and their coding.

``LevelContext`` walks the levels in order (a level's parent terms come from the level before), so
the encoder, the decoder and the benchmarks compute the same parameters the same way:

    symbols  r = round(a / q - m)        (a: attribute, q: step of its block, m: predicted mean / q)
    values   a_hat = (r + m) · q

``encode_attributes`` / ``decode_attributes`` are the pair; ``attribute_symbols`` gives the symbols
an encoder codes for a whole model (for analysis and benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from progs import octree
from progs.codec.attributes import decode_symbols, encode_symbols, ideal_bits
from progs.codec.bytes import ByteReader, ByteWriter
from progs.model.context import ContextModel
from progs.model.layout import BLOCK_NAMES
from progs.model.model import ProGSModel
from progs.model.visibility import hidden_gaussians


def normalised_positions(grid: octree.OctreeGrid, keys: torch.Tensor, level: int) -> torch.Tensor:
    """Exact dyadic positions in [0, 1]^3 of voxel centres (float64)."""
    return (keys.double() + 0.5) / float(grid.resolution(level))


@dataclass
class LevelParams:
    mean: torch.Tensor  # [N, D] predicted means in symbol units (float64)
    bins: torch.Tensor  # [N, D] uint8 index into SCALE_BINS of the predicted deviation
    step: torch.Tensor  # [N, 3] step per attribute block (float64)


class LevelContext:
    """Computes each level's coding parameters, levels in order; the parent features of level l are
    the own features of level l-1 (a child's parent position is its parent anchor's position), so each
    anchor's hash-grid features are computed once."""

    def __init__(self, ctx: ContextModel, grid: octree.OctreeGrid):
        self.ctx, self.grid = ctx, grid
        self.prev_codes: torch.Tensor | None = None  # Morton codes of the previous level (ascending)
        self.prev_terms: torch.Tensor | None = None

    def params(self, keys: torch.Tensor, level: int) -> LevelParams:
        """Parameters of the anchors ``keys`` (Morton order) of ``level``; ``ValueError`` if a parent
        is missing from the previous level."""
        h = self.ctx.exact_features(normalised_positions(self.grid, keys, level))
        codes = octree.morton_encode(keys)
        terms = None
        if level > 1 and self.prev_codes is not None and self.prev_terms is not None:
            # A level is in Morton order and a parent's code is its child's code >> 3.
            parent = torch.searchsorted(self.prev_codes, codes >> 3).clamp_(max=max(self.prev_codes.numel() - 1, 0))
            if keys.shape[0] and not bool(torch.equal(self.prev_codes[parent], codes >> 3)):
                raise ValueError("an anchor's parent is missing from the previous level")
            terms = self.prev_terms[parent]
        mean, bins, q = self.ctx.coding_params(h, terms, level=level)
        self.prev_codes, self.prev_terms = codes, self.ctx.parent_terms(h)
        return LevelParams(mean, bins, q)


def quantize(ctx: ContextModel, attrs: torch.Tensor, p: LevelParams) -> torch.Tensor:
    """Residual symbols ``round(value · (1/q) − m)`` (float64 holding integers)."""
    return torch.round(attrs.double() * ctx.step_per_channel(1.0 / p.step) - p.mean)


def dequantize(ctx: ContextModel, residuals: torch.Tensor, p: LevelParams) -> torch.Tensor:
    """Attribute values ``(r + m) · q`` (float64), each block times its step."""
    x = residuals.double() + p.mean
    edges = ctx.layout.edges
    for i in range(3):
        x[:, edges[i]:edges[i + 1]] *= p.step[:, i:i + 1]
    return x


def block_bits(ctx: ContextModel, residuals: np.ndarray, bins: np.ndarray) -> list[float]:
    """Ideal code length in bits of each block (f, s, o) of a level's symbols."""
    e = ctx.layout.edges
    return [ideal_bits(residuals[:, e[i]:e[i + 1]], bins[:, e[i]:e[i + 1]]) for i in range(3)]


def level_components(ctx: ContextModel, n_struct: int, residuals: np.ndarray, bins: np.ndarray, payload: int) -> dict[str, int]:
    """Payload bytes per component (paper Fig. 6): the level byte and structure as coded; the attribute
    bytes split among f, s, o in proportion to their ideal code lengths (they share one coder stream)."""
    bits = block_bits(ctx, residuals, bins)
    tot = sum(bits) or 1.0
    out = {"structure": n_struct}
    out.update({name: int(round((payload - n_struct) * b / tot)) for name, b in zip(BLOCK_NAMES, bits)})
    return out


def encode_attributes(w: ByteWriter, ctx: ContextModel, lv: LevelSymbols) -> tuple[torch.Tensor, np.ndarray]:
    """Code one level's symbols (:func:`attribute_symbols`); returns (the values a decoder rebuilds [N, D]
    float64, the residual symbols)."""
    symbols = lv.residuals.to(torch.int64).numpy()
    encode_symbols(w, symbols, lv.params.bins.numpy())
    return dequantize(ctx, lv.residuals, lv.params), symbols


def decode_attributes(r: ByteReader, ctx: ContextModel, p: LevelParams) -> tuple[torch.Tensor, np.ndarray]:
    """Read one level's attributes; returns (values [N, D] float64, the residual symbols)."""
    symbols = decode_symbols(r, p.bins.numpy())
    return dequantize(ctx, torch.from_numpy(symbols), p), symbols


@dataclass
class LevelSymbols:
    level: int
    keys: torch.Tensor  # [N, 3] Morton order
    attrs: torch.Tensor  # [N, D] float64, the model's attributes in the same order
    params: LevelParams
    residuals: torch.Tensor  # [N, D] float64 holding integers


def attribute_symbols(model: ProGSModel, hide: torch.Tensor | None = None) -> Iterator[LevelSymbols]:
    """Per level, in coding order, the symbols the encoder codes for ``model``'s attributes with its
    context model as it is (call it on :func:`progs.codec.header.coding_model` for the exact stream).

    ``hide``: camera centres [C, 3]; the offsets of every neural Gaussian that the decoded model never
    draws from any of them (:func:`progs.model.visibility.hidden_gaussians`, judged on the decoded
    features) are coded as residual 0, the prior's mean. None codes every offset as it is."""
    a = model.anchors
    perm = octree.sort_canonical(a.keys, a.levels)
    keys_all, levels_all = a.keys[perm], a.levels[perm]
    attrs_all = a.attribute_matrix().detach()[perm].double()
    walker = LevelContext(model.context, a.grid)
    layout = model.context.layout
    for level in range(1, a.grid.num_levels + 1):
        sel = levels_all == level
        keys, attrs = keys_all[sel], attrs_all[sel]
        p = walker.params(keys, level)
        residuals = quantize(model.context, attrs, p)
        if hide is not None and keys.shape[0]:
            features = layout.split(dequantize(model.context, residuals, p).float())[0]
            hidden = hidden_gaussians(model.generator, a.grid.voxel_center(keys, level), levels_all[sel], features,
                                      hide, model.dist_scale)
            o = slice(layout.edges[2], layout.edges[3])
            residuals[:, o] = torch.where(hidden.repeat_interleave(3, dim=1), 0.0, residuals[:, o])
        yield LevelSymbols(level, keys, attrs, p, residuals)


def prior_comparison(model: ProGSModel, coded_bytes: dict[str, int]) -> dict[str, dict[str, float]]:
    """Per block (f, s, o): bits per symbol actually coded (``coded_bytes``: payload bytes per block over
    all levels, as the stream's components give them) and the bits the same quantized values would
    need under one fitted Gaussian per channel (mean and deviation of the channel's values over all
    anchors, each value's own step as the bin width): the constant prior the context model must beat.

    ``model`` is a decoded model (its attributes are the quantized values)."""
    from torch.special import ndtr

    values, steps = [], []
    for lv in attribute_symbols(model):
        values.append(dequantize(model.context, lv.residuals, lv.params))
        steps.append(model.context.step_per_channel(lv.params.step))
    a, q = torch.cat(values), torch.cat(steps)
    out: dict[str, dict[str, float]] = {}
    layout = model.context.layout
    for i, name in enumerate(BLOCK_NAMES):
        x, w = layout.block(a, i), layout.block(q, i)
        n = int(x.numel())
        if n == 0:
            continue
        mu = x.mean(0, keepdim=True)
        sd = x.std(0, keepdim=True).clamp_min(1e-9) if x.shape[0] > 1 else torch.ones_like(mu)
        p = ndtr((x + w / 2 - mu) / sd) - ndtr((x - w / 2 - mu) / sd)
        const_bits = float(-torch.log2(p.clamp_min(1e-12)).sum())
        out[name] = {"symbols": n, "coded_bits_per_symbol": 8.0 * coded_bytes.get(name, 0) / n,
                     "constant_prior_bits_per_symbol": const_bits / n}
    return out
