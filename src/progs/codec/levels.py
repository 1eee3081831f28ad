"""One level's attributes in a LOD chunk: the context model's coding parameters per level, the
quantization of attributes into residual symbols around the predicted means, and their coding.

``LevelContext`` walks the levels in order (a level's parent terms come from the level before), so
the encoder, the decoder and the benchmarks compute the same parameters the same way:

    symbols  r = round(a / q - m)        (a: attribute, q: step of its block, m: predicted mean / q)
    values   a_hat = (r + m) · q

A level's attributes are two range-coder streams: features and scalings, then the offsets of the
Gaussians the hidden rule (:mod:`progs.model.visibility`) does not mark, which the decoder evaluates on
the features it has just decoded. ``encode_attributes`` / ``decode_attributes`` are the pair;
``attribute_symbols`` gives the symbols an encoder codes for a whole model (for analysis and benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from progs import octree
from progs.codec.attributes import decode_symbols, encode_symbols, ideal_bits
from progs.codec.bytes import ByteReader, ByteWriter
from progs.codec.mask import decode_mask, encode_mask
from progs.codec.prediction import MIN_ANCHORS, PRECISIONS, ParentPredictor, read_predictor, write_predictor
from progs.model.context import ContextModel
from progs.model.layout import BLOCK_NAMES
from progs.model.model import ProGSModel
from progs.model.visibility import level_hidden, level_mask_buckets, probe_cameras


def normalised_positions(grid: octree.OctreeGrid, keys: torch.Tensor, level: int) -> torch.Tensor:
    """Exact dyadic positions in [0, 1]^3 of voxel centres (float64)."""
    return (keys.double() + 0.5) / float(grid.resolution(level))


@dataclass
class LevelParams:
    mean: torch.Tensor  # [N, D] predicted means in symbol units (float64)
    bins: torch.Tensor  # [N, D] uint8 index into SCALE_BINS of the predicted deviation
    step: torch.Tensor  # [N, 3] step per attribute block (float64)
    parent: torch.Tensor | None = None  # [N] index of each anchor's parent in the previous level (level > 1)
    shift: torch.Tensor | None = None  # [N, D] integers: coded symbol = residual − shift (parent predictor)

    def coded_symbols(self, residuals: torch.Tensor) -> torch.Tensor:
        """The symbols the stream carries for lattice residuals ``residuals``."""
        return residuals if self.shift is None else residuals - self.shift

    def lattice_residuals(self, symbols: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`coded_symbols`."""
        return symbols if self.shift is None else symbols + self.shift


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
        terms = parent = None
        if level > 1 and self.prev_codes is not None and self.prev_terms is not None:
            # A level is in Morton order and a parent's code is its child's code >> 3.
            parent = torch.searchsorted(self.prev_codes, codes >> 3).clamp_(max=max(self.prev_codes.numel() - 1, 0))
            if keys.shape[0] and not bool(torch.equal(self.prev_codes[parent], codes >> 3)):
                raise ValueError("an anchor's parent is missing from the previous level")
            terms = self.prev_terms[parent]
        mean, bins, q = self.ctx.coding_params(h, terms, level=level)
        self.prev_codes, self.prev_terms = codes, self.ctx.parent_terms(h)
        return LevelParams(mean, bins, q, parent)


def quantize(ctx: ContextModel, attrs: torch.Tensor, p: LevelParams) -> torch.Tensor:
    """Residual symbols ``round(value · (1/q) − m)`` (float64 holding integers)."""
    return torch.round(attrs.double() * ctx.step_per_channel(1.0 / p.step) - p.mean)


def dequantize(ctx: ContextModel, residuals: torch.Tensor, p: LevelParams) -> torch.Tensor:
    """Attribute values ``(r + m) · q`` (float64), each block times its step."""
    x = residuals.double() + p.mean
    edges = ctx.layout.edges
    for i in range(3):
        x[:, edges[i] : edges[i + 1]] *= p.step[:, i : i + 1]
    return x


def block_bits(ctx: ContextModel, residuals: np.ndarray, bins: np.ndarray) -> list[float]:
    """Ideal code length in bits of each block (f, s, o) of a level's symbols."""
    e = ctx.layout.edges
    return [ideal_bits(residuals[:, e[i] : e[i + 1]], bins[:, e[i] : e[i + 1]]) for i in range(3)]


def level_components(
    ctx: ContextModel, sizes: dict[str, int], residuals: np.ndarray, bins: np.ndarray
) -> dict[str, int]:
    """Payload bytes per component (paper Fig. 6): the level byte and structure (``sizes["structure"]``),
    the parent predictor's table, the feature+scaling stream (``sizes["fs"]`` bytes) split between f and
    s in proportion to their ideal code lengths, and the offset stream, each as coded."""
    bits = block_bits(ctx, residuals, bins)[:2]
    tot = sum(bits) or 1.0
    out = {"structure": sizes["structure"], "prediction": sizes["prediction"]}
    out.update({name: int(round(sizes["fs"] * b / tot)) for name, b in zip(BLOCK_NAMES[:2], bits)})
    out[BLOCK_NAMES[2]] = sizes["o"]
    return out


def offset_channels(coded: torch.Tensor | None) -> torch.Tensor | None:
    """Per-Gaussian flags [N, K] as flags of their offset channels [N, 3K] (x, y, z of each)."""
    return None if coded is None else coded.repeat_interleave(3, dim=1)


def _coded_offsets(ctx: ContextModel, array: np.ndarray, coded_ch: torch.Tensor | None) -> np.ndarray:
    """The offset columns of ``array`` [N, D] at the coded channels ``coded_ch`` [N, 3K], anchor-major."""
    o = array[:, ctx.layout.edges[2] : ctx.layout.edges[3]]
    return o if coded_ch is None else o[coded_ch.numpy()]


def encode_attributes(
    w: ByteWriter, ctx: ContextModel, lv: LevelSymbols
) -> tuple[torch.Tensor, np.ndarray, dict[str, int]]:
    """Code one level's attributes (:func:`attribute_symbols`): the parent predictor's table, then two
    range-coder streams, features and scalings, then the offsets of the Gaussians ``lv.coded`` marks.
    Returns (the values a decoder rebuilds [N, D] float64, the coded symbols [N, D], bytes per part)."""
    symbols = lv.params.coded_symbols(lv.residuals).to(torch.int64).numpy()
    bins = lv.params.bins.numpy()
    fs = ctx.layout.edges[2]
    sizes = {}
    start = len(w)
    write_predictor(w, lv.predictor)
    sizes["prediction"] = len(w) - start
    start = len(w)
    encode_symbols(w, symbols[:, :fs], bins[:, :fs])
    sizes["fs"] = len(w) - start
    start = len(w)
    coded_ch = offset_channels(lv.coded)
    if lv.coded is not None:  # the rule's outcome, then the offsets of the coded Gaussians
        if lv.buckets is None:
            raise ValueError("coding the hidden-Gaussian mask needs its context buckets")
        encode_mask(w, (~lv.coded).numpy(), lv.buckets.numpy())
    encode_symbols(w, _coded_offsets(ctx, symbols, coded_ch), _coded_offsets(ctx, bins, coded_ch))
    sizes["o"] = len(w) - start
    return dequantize(ctx, lv.residuals, lv.params), symbols, sizes


MaskContext = Callable[[torch.Tensor], torch.Tensor]  # decoded features [N, F] float64 -> mask buckets [N, K]


def decode_attributes(
    r: ByteReader,
    ctx: ContextModel,
    level: int,
    p: LevelParams,
    parent_values: torch.Tensor | None,
    buckets_of: MaskContext | None,
) -> tuple[torch.Tensor, np.ndarray, dict[str, int], LevelParams]:
    """Read one level's attributes. ``p``: the context model's parameters; ``parent_values``: the
    previous level's decoded values [N_parent, D]; ``buckets_of`` gives the context of the coded mask of
    the Gaussians whose offsets the stream omits (None: every offset is coded, no mask). Returns (values [N, D] float64, the coded symbols,
    bytes per part, the parameters the symbols were coded with)."""
    layout = ctx.layout
    start = r.pos
    predictor = read_predictor(r, level, layout.total)
    sizes = {"prediction": r.pos - start}
    if predictor is not None:
        if parent_values is None or p.parent is None:
            raise r.fail("a parent predictor at a level without parents")
        p = predictor.apply(ctx, p, parent_values[p.parent])
    bins = p.bins.numpy()
    fs, n, D = layout.edges[2], bins.shape[0], bins.shape[1]
    start = r.pos
    symbols = np.zeros((n, D), dtype=np.int64)
    symbols[:, :fs] = decode_symbols(r, np.ascontiguousarray(bins[:, :fs]))
    sizes["fs"] = r.pos - start
    coded_ch = None
    start = r.pos
    if buckets_of is not None:
        features = layout.split(dequantize(ctx, p.lattice_residuals(torch.from_numpy(symbols).double()), p))[0]
        buckets = buckets_of(features).numpy() if n else np.zeros((0, layout.dims[2] // 3), dtype=np.int64)
        coded_ch = offset_channels(torch.from_numpy(~decode_mask(r, buckets)))
    o_sym = decode_symbols(r, np.ascontiguousarray(_coded_offsets(ctx, bins, coded_ch)))
    sizes["o"] = r.pos - start
    o = slice(fs, layout.edges[3])
    if coded_ch is None:
        symbols[:, o] = o_sym
    else:
        symbols[:, o][coded_ch.numpy()] = o_sym
    residuals = p.lattice_residuals(torch.from_numpy(symbols).double())
    if coded_ch is not None:  # a hidden Gaussian's offsets are residual 0 (not coded, not shifted)
        residuals[:, o] = torch.where(coded_ch, residuals[:, o], 0.0)
    return dequantize(ctx, residuals, p), symbols, sizes, p


@dataclass
class LevelSymbols:
    level: int
    keys: torch.Tensor  # [N, 3] Morton order
    attrs: torch.Tensor  # [N, D] float64, the model's attributes in the same order
    params: LevelParams  # the coding parameters (the parent predictor's where there is one)
    residuals: torch.Tensor  # [N, D] float64 holding integers (0 for the offsets of hidden Gaussians)
    coded: torch.Tensor | None  # [N, K] bool: the Gaussians whose offsets are coded (None: all)
    predictor: ParentPredictor | None = None
    buckets: torch.Tensor | None = None  # [N, K] the coded mask's contexts (with ``coded``)


def _choose_predictor(
    ctx: ContextModel, attrs: torch.Tensor, p: LevelParams, parent_values: torch.Tensor
) -> tuple[ParentPredictor | None, LevelParams]:
    """The parent predictor fitted on every channel at the precision (:data:`PRECISIONS`) that codes
    the features and scalings in the fewest bits, its table included; none where the context model
    alone needs fewer."""
    if p.parent is None or attrs.shape[0] < MIN_ANCHORS:
        return None, p
    fs = ctx.layout.edges[2]

    def bits(params: LevelParams) -> float:
        res = params.coded_symbols(quantize(ctx, attrs, params))[:, :fs].to(torch.int64).numpy()
        return ideal_bits(res, params.bins[:, :fs].numpy())

    best: tuple[float, ParentPredictor | None, LevelParams] = (bits(p), None, p)
    for pred in ParentPredictor.fit_each(ctx, attrs, p, parent_values, PRECISIONS):
        q = pred.apply(ctx, p, parent_values)
        w = ByteWriter()
        pred.write(w)
        total = bits(q) + 8 * len(w)
        if total < best[0]:
            best = (total, pred, q)
    return best[1], best[2]


def attribute_symbols(
    model: ProGSModel,
    cameras: torch.Tensor | None = None,
    predict: bool = True,
    context_cameras: torch.Tensor | None = None,
) -> Iterator[LevelSymbols]:
    """Per level, in coding order, the symbols the encoder codes for ``model``'s attributes with its
    context model as it is (call it on :func:`progs.codec.header.coding_model` for the exact stream),
    refined by a parent predictor (:mod:`progs.codec.prediction`) where that pays.

    ``cameras``: the probe camera centres [C, 3] (:func:`progs.model.visibility.probe_cameras`); the
    offsets of every neural Gaussian that the decoded model never draws from any of them
    (:func:`progs.model.visibility.level_hidden`, judged on the decoded features) are not coded and
    decode as residual 0, the prior's mean. None codes every offset. ``context_cameras``: the cameras
    of the coded mask's context (:func:`progs.model.visibility.level_mask_buckets`; needed to encode).
    ``predict=False``: no parent predictor (the context model's priors only; the decoded values are
    the same)."""
    a = model.anchors
    perm = octree.sort_canonical(a.keys, a.levels)
    keys_all, levels_all = a.keys[perm], a.levels[perm]
    attrs_all = a.attribute_matrix().detach()[perm].double()
    ctx = model.context
    walker = LevelContext(ctx, a.grid)
    layout = ctx.layout
    o = slice(layout.edges[2], layout.edges[3])
    prev_values: torch.Tensor | None = None
    for level in range(1, a.grid.num_levels + 1):
        sel = levels_all == level
        keys, attrs = keys_all[sel], attrs_all[sel]
        p_ctx = walker.params(keys, level)
        has_parents = predict and prev_values is not None and p_ctx.parent is not None
        parent_values = prev_values[p_ctx.parent] if has_parents else None
        predictor, p = (None, p_ctx) if parent_values is None else _choose_predictor(ctx, attrs, p_ctx, parent_values)
        residuals = quantize(ctx, attrs, p)
        coded = buckets = None
        if cameras is not None:
            features = layout.split(dequantize(ctx, residuals, p))[0]
            coded = ~level_hidden(model.generator, a.grid, keys, level, features, cameras)
            if context_cameras is not None:
                buckets = level_mask_buckets(model.generator, a.grid, keys, level, features, context_cameras)
            coded_ch = offset_channels(coded)
            if predictor is not None:  # the offsets' predictor, fitted on the offsets the stream carries
                mask = torch.ones_like(attrs, dtype=torch.bool)
                mask[:, o] = coded_ch
                refit = ParentPredictor.fit(
                    ctx, attrs, p_ctx, parent_values, mask, a_bits=predictor.a_bits, c_bits=predictor.c_bits
                )
                predictor = predictor.replace_columns(refit, o)
                p = predictor.apply(ctx, p_ctx, parent_values)
                residuals[:, o] = quantize(ctx, attrs, p)[:, o]
            residuals[:, o] = torch.where(coded_ch, residuals[:, o], 0.0)
        yield LevelSymbols(level, keys, attrs, p, residuals, coded, predictor, buckets)
        prev_values = dequantize(ctx, residuals, p)


def prior_comparison(model: ProGSModel, coded_bytes: dict[str, int], skip_hidden: bool) -> dict[str, dict[str, float]]:
    """Per block (f, s, o): bits per symbol actually coded (``coded_bytes``: payload bytes per block over
    all levels, as the stream's components give them) and the bits the same quantized values would
    need under one fitted Gaussian per channel (mean and deviation of the channel's values over all
    anchors, each value's own step as the bin width): the constant prior the context model must beat.
    ``skip_hidden`` (the stream's header flag): only the offsets the stream carries are counted.

    ``model`` is a decoded model (its attributes are the quantized values)."""
    from torch.special import ndtr

    cams = probe_cameras(model.grid, model.view_distance) if skip_hidden else None
    values, steps, coded = [], [], []
    for lv in attribute_symbols(model, cams, predict=False):  # the predictor moves no value: not fitted
        values.append(dequantize(model.context, lv.residuals, lv.params))
        steps.append(model.context.step_per_channel(lv.params.step))
        n_anchors, k = lv.keys.shape[0], model.generator.n_offsets
        coded.append(lv.coded if lv.coded is not None else torch.ones(n_anchors, k, dtype=torch.bool))
    a, q = torch.cat(values), torch.cat(steps)
    kept = {2: offset_channels(torch.cat(coded))}
    out: dict[str, dict[str, float]] = {}
    layout = model.context.layout
    for i, name in enumerate(BLOCK_NAMES):
        x, w = layout.block(a, i), layout.block(q, i)
        mask = kept.get(i, torch.ones_like(x, dtype=torch.bool))
        n = int(mask.sum())
        if n == 0:
            continue
        const_bits = 0.0
        for c in range(x.shape[1]):  # one Gaussian per channel, fitted to the symbols the stream carries
            xc, wc = x[mask[:, c], c], w[mask[:, c], c]
            if xc.numel() == 0:
                continue
            mu = xc.mean()
            sd = xc.std().clamp_min(1e-9) if xc.numel() > 1 else torch.ones_like(mu)
            p = ndtr((xc + wc / 2 - mu) / sd) - ndtr((xc - wc / 2 - mu) / sd)
            const_bits += float(-torch.log2(p.clamp_min(1e-12)).sum())
        out[name] = {
            "symbols": n,
            "coded_bits_per_symbol": 8.0 * coded_bytes.get(name, 0) / n,
            "constant_prior_bits_per_symbol": const_bits / n,
        }
    return out
