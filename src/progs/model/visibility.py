"""Which neural Gaussians can never be seen: their offsets are not coded at all (format 5).

A neural Gaussian is drawn only where its opacity head, ``tanh(MLP_opacity)``, is above zero; the
head sees the anchor's feature, level, view direction and camera distance, but not the offsets. On a
trained demo model about half of all (anchor, offset) pairs stay below zero from every camera, so
their offsets change no image. Encoder and decoder both mark the pairs whose opacity stays below
``-HIDDEN_MARGIN`` from every camera of a fixed probe set around the scene (cube-sphere directions at
0.5, 1 and 2 × the viewing distance), judged on the *decoded* features, levels and header weights;
the stream then carries the offsets of the other Gaussians only, and the decoder sets the hidden ones
to the prior's mean.

Encoder and decoder must reach the same verdict on every machine, so the rule is evaluated in exact
arithmetic: the inputs are snapped to multiples of 2^-12, the weights are taken as 12-bit fixed-point
mantissas (the header's 8-bit weights are exactly representable so) and used as integers, and every
product and sum is an integer held in float64 well below 2^53, so any summation order (any BLAS, any
thread count, FMA or not) gives the same bits. The probe cameras use square roots and divisions only
(no sin/cos), which IEEE-754 rounds identically everywhere.
"""

from __future__ import annotations

import torch

from progs.kernels import load_kernel
from progs.model.exact_math import fixed_point
from progs.model.gaussians import GaussianGenerator
from progs.octree import OctreeGrid

HIDDEN_MARGIN = 0.02  # opacity logit below which a Gaussian counts as hidden (the renderer keeps tanh > 0)
FACE_SAMPLES = 5  # probe directions per cube-face edge: 6 · 5² = 150 directions per radius
RADII = (0.5, 1.0, 2.0)  # × the viewing distance
INPUT_BITS = 12  # inputs and hidden activations are snapped to multiples of 2^-12
INPUT_LIMIT = float(2**20)  # |snapped input| ≤ 2^20 units (256 in value): bounds every exact sum
HIDDEN_LIMIT = float(2**30)  # hidden activations ≤ 2^30 units
# The rule costs ~0.1 ms per anchor on one CPU core (450 cameras × the opacity MLP); the encoder applies
# it only to models up to this many anchors. The decoder does not evaluate it: the stream codes its
# outcome, with the context of :func:`mask_buckets` (18 of the cameras).
RULE_MAX_ANCHORS = 50_000
CONTEXT_FACE_SAMPLES = 1  # the mask's context: the face centres at the three radii (18 of the rule's cameras)
# The mask's context buckets: how far (in logit units) below -HIDDEN_MARGIN the highest logit from the
# context cameras stays: [0, 1/8), [1/8, 1/4), ... [4, inf) -> buckets 0..6.
BUCKET_EDGES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
NUM_BUCKETS = len(BUCKET_EDGES) + 1


def cube_sphere_directions(n: int = FACE_SAMPLES) -> torch.Tensor:
    """Unit vectors [6 n², 3] (float64) through the centres of an n × n grid on each cube face."""
    t = (torch.arange(n, dtype=torch.float64, device="cpu") + 0.5) * (2.0 / n) - 1.0
    u, v = torch.meshgrid(t, t, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    one = torch.ones_like(u)
    faces = []
    for axis in range(3):
        for sign in (1.0, -1.0):
            cols = [u, v]
            cols.insert(axis, sign * one)
            faces.append(torch.stack(cols, dim=-1))
    d = torch.cat(faces)
    norm = torch.sqrt((d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) + d[:, 2] * d[:, 2])
    return d / norm[:, None]


def probe_cameras(
    grid: OctreeGrid, view_distance: float | None, device: torch.device | str = "cpu", face_samples: int = FACE_SAMPLES
) -> torch.Tensor:
    """Camera centres [C, 3] (float64) to test visibility from: cube-sphere directions around the
    octree cube's centre at ``RADII`` × ``view_distance`` (1.5 × the cube size when unknown)."""
    centre = grid.origin_tensor.double() + grid.size / 2
    d = float(view_distance) if view_distance else 1.5 * grid.size
    dirs = cube_sphere_directions(face_samples)
    return torch.cat([centre + dirs * (r * d) for r in RADII]).to(device)


def _snap(x: torch.Tensor, limit: float = INPUT_LIMIT) -> torch.Tensor:
    """Integers round(x · 2^12) (float64), clamped to ±limit."""
    return torch.round(x * float(2**INPUT_BITS)).clamp_(-limit, limit)


def _integer_layer(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A linear layer as (weight mantissas W, bias in units of 2^-(12 + e), e) with value(W) = W · 2^-e:
    an input snapped to 2^-12 units gives x·W + b as an integer in units of 2^-(12 + e)."""
    w_mant, e = fixed_point(weight.detach().double().cpu().numpy())
    b_mant, eb = fixed_point(bias.detach().double().cpu().numpy())
    w = torch.from_numpy(w_mant).double()
    b = torch.round(torch.from_numpy(b_mant).double() * 2.0 ** (INPUT_BITS + e - eb))
    return w, b, e


def _opacity_terms(generator: GaussianGenerator, levels: torch.Tensor, features: torch.Tensor):
    """The integer opacity head: (camera-independent first-layer terms [N, H], view weights [H, 3],
    distance weights [H], W2, b2, e1, e2), in the units of the module docstring."""
    device = features.device
    mlp = generator.mlp_opacity
    w1, b1, e1 = _integer_layer(mlp[0].weight, mlp[0].bias)
    w2, b2, e2 = _integer_layer(mlp[2].weight, mlp[2].bias)
    w1, b1, w2, b2 = w1.to(device), b1.to(device), w2.to(device), b2.to(device)
    cols = generator.input_slices()
    # the feature and level terms do not depend on the camera: computed once per anchor
    level_col = (levels.to(device) - 1).clamp(0, generator.levels - 1)
    level_term = w1[:, cols["level"]].T[level_col] * float(2**INPUT_BITS)
    fixed = _snap(features.double()) @ w1[:, cols["feature"]].T + level_term + b1  # units 2^-(12 + e1)
    return fixed, w1[:, cols["view"]], w1[:, cols["distance"].start], w2, b2, e1, e2


@torch.no_grad()
def highest_logits(
    generator: GaussianGenerator,
    positions: torch.Tensor,
    levels: torch.Tensor,
    features: torch.Tensor,
    cameras: torch.Tensor,
    dist_scale: float,
    batch: int = 16,
) -> tuple[torch.Tensor, int]:
    """``(highest [N, K], e2)``: each Gaussian's highest opacity logit over ``cameras``, an integer in
    units of 2^-(12 + e2) (float64; exact, module docstring). PyTorch only (the decoder's 18 context
    cameras; the encoder's 450-camera rule uses the fused kernel of :func:`hidden_gaussians`)."""
    n, k = positions.shape[0], generator.n_offsets
    device = positions.device
    fixed, w_view, w_dist, w2, b2, e1, e2 = _opacity_terms(generator, levels, features)
    pos = positions.double()
    highest = torch.full((n, k), -torch.inf, dtype=torch.float64, device=device)
    for i in range(0, cameras.shape[0], batch):
        vec = pos[None] - cameras[i : i + batch, None].to(device, torch.float64)  # [C, N, 3]
        x, y, z = vec.unbind(-1)
        dist = torch.sqrt((x * x + y * y) + z * z).clamp_min(1e-8)
        view = _snap(vec / dist[..., None])
        ratio = _snap(dist / float(dist_scale))[..., None]
        pre = fixed[None] + view @ w_view.T + ratio * w_dist  # integers in units of 2^-(12 + e1)
        h = torch.round(torch.relu(pre) * 2.0**-e1).clamp_(max=HIDDEN_LIMIT)  # units of 2^-12
        out = h @ w2.T + b2  # integers in units of 2^-(12 + e2)
        highest = torch.maximum(highest, out.amax(0))
    return highest, e2


@torch.no_grad()
def hidden_gaussians(
    generator: GaussianGenerator,
    positions: torch.Tensor,
    levels: torch.Tensor,
    features: torch.Tensor,
    cameras: torch.Tensor,
    dist_scale: float,
    margin: float = HIDDEN_MARGIN,
    batch: int = 16,
    use_kernel: bool = True,
) -> torch.Tensor:
    """[N, K] bool: True where the Gaussian's opacity logit stays below ``-margin`` from every camera.

    Exact: the same inputs give the same verdicts on every machine (module docstring). The generator's
    opacity weights are taken at 12-bit fixed point (a no-op for a decoded or coding model, whose weights
    have the header's 8 bits). On the CPU the fused C++ kernel computes it (same verdicts, bit for bit;
    ``use_kernel=False``: PyTorch)."""
    device = positions.device
    n, k = positions.shape[0], generator.n_offsets
    if n == 0:
        return torch.zeros(0, k, dtype=torch.bool, device=device)
    ext = load_kernel() if use_kernel and device.type == "cpu" else None
    if ext is not None:
        fixed, w_view, w_dist, w2, b2, e1, e2 = _opacity_terms(generator, levels, features)
        threshold = -margin * 2.0 ** (INPUT_BITS + e2)
        return ext.hidden_rule(
            positions.double(),
            fixed,
            cameras.to(device, torch.float64),
            w_view,
            w_dist,
            w2,
            b2,
            float(dist_scale),
            float(2**INPUT_BITS),
            INPUT_LIMIT,
            2.0**-e1,
            HIDDEN_LIMIT,
            threshold,
        )
    highest, e2 = highest_logits(generator, positions, levels, features, cameras, dist_scale, batch)
    return highest < -margin * 2.0 ** (INPUT_BITS + e2)


def mask_buckets(highest: torch.Tensor, e2: int, margin: float = HIDDEN_MARGIN) -> torch.Tensor:
    """[N, K] int64: -1 where a context camera draws the Gaussian (it is not hidden: no mask bit), else
    the bucket 0..6 of how far below ``-margin`` its highest logit stays (``BUCKET_EDGES``, logit units)."""
    unit = 2.0 ** (INPUT_BITS + e2)
    depth = -margin * unit - highest  # > 0 below the threshold (integers and exact multiples of unit)
    edges = torch.tensor([e * unit for e in BUCKET_EDGES], dtype=torch.float64, device=highest.device)
    buckets = torch.searchsorted(edges, depth.contiguous(), right=True)
    return torch.where(depth > 0, buckets, torch.full_like(buckets, -1))


def _level_inputs(grid: OctreeGrid, keys: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions [N, 3] (float64 voxel centres) and levels [N] of one level's anchors."""
    return grid.voxel_center(keys, level, dtype=torch.float64), torch.full((keys.shape[0],), level, dtype=torch.int64)


def level_hidden(
    generator: GaussianGenerator,
    grid: OctreeGrid,
    keys: torch.Tensor,
    level: int,
    features: torch.Tensor,
    cameras: torch.Tensor,
) -> torch.Tensor:
    """[N, K] hidden verdicts of one octree level's anchors (``keys`` [N, 3], decoded ``features`` [N, F]
    float64), as encoder and decoder both compute them."""
    return hidden_gaussians(generator, *_level_inputs(grid, keys, level), features, cameras, float(grid.size))


def level_mask_buckets(
    generator: GaussianGenerator,
    grid: OctreeGrid,
    keys: torch.Tensor,
    level: int,
    features: torch.Tensor,
    cameras: torch.Tensor,
) -> torch.Tensor:
    """[N, K] mask contexts (:func:`mask_buckets`) of one level's anchors from the context cameras
    (``probe_cameras(..., face_samples=CONTEXT_FACE_SAMPLES)``), as encoder and decoder both compute them."""
    if keys.shape[0] == 0:
        return torch.zeros(0, generator.n_offsets, dtype=torch.int64)
    positions, levels = _level_inputs(grid, keys, level)
    return mask_buckets(*highest_logits(generator, positions, levels, features, cameras, float(grid.size)))
