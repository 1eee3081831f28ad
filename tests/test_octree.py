"""Property tests of progs.octree: key maths, Morton order, the strict invariant, structure coding."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from progs import octree as ot
from progs.errors import ProgsError
from progs.octree import OctreeError, OctreeGrid

FAST = settings(max_examples=40, deadline=None)


# ---------------------------------------------------------------------------------------- strategies

coords = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=32)
point_lists = st.lists(st.tuples(coords, coords, coords), min_size=1, max_size=150)


@st.composite
def grids(draw: st.DrawFn, max_base: int = 3, max_levels: int = 4) -> OctreeGrid:
    b = draw(st.integers(0, max_base))
    levels = draw(st.integers(1, max_levels))
    origin = draw(st.tuples(coords, coords, coords))
    size = draw(st.floats(min_value=1e-2, max_value=1e3))
    return OctreeGrid(origin, size, b, levels)


@st.composite
def raw_anchors(draw: st.DrawFn) -> tuple[OctreeGrid, torch.Tensor, torch.Tensor]:
    """Random keys at random levels (duplicates likely, ancestors missing)."""
    grid = draw(grids())
    n = draw(st.integers(0, 60))
    levels = draw(st.lists(st.integers(1, grid.num_levels), min_size=n, max_size=n))
    keys = [draw(st.tuples(*(st.integers(0, grid.resolution(lv) - 1),) * 3)) for lv in levels]
    return grid, torch.tensor(keys, dtype=torch.int64).reshape(-1, 3), torch.tensor(levels, dtype=torch.int64)


@st.composite
def strict_anchors(draw: st.DrawFn) -> tuple[OctreeGrid, torch.Tensor, torch.Tensor]:
    grid, keys, levels = draw(raw_anchors())
    keys, levels = ot.complete_upward(keys, levels)
    return grid, keys, levels


def key_set(keys: torch.Tensor, levels: torch.Tensor | None = None) -> set[tuple[int, ...]]:
    if levels is None:
        return {tuple(k) for k in keys.tolist()}
    return {(lv, *k) for k, lv in zip(keys.tolist(), levels.tolist(), strict=True)}


# ---------------------------------------------------------------------------------------- key maths


def morton_reference(x: int, y: int, z: int) -> int:
    code = 0
    for i in range(ot.MAX_DEPTH):
        code |= ((x >> i) & 1) << (3 * i) | ((y >> i) & 1) << (3 * i + 1) | ((z >> i) & 1) << (3 * i + 2)
    return code


key21 = st.integers(0, (1 << ot.MAX_DEPTH) - 1)


@FAST
@given(st.lists(st.tuples(key21, key21, key21), min_size=0, max_size=50))
def test_morton_round_trip_and_reference(keys: list[tuple[int, int, int]]) -> None:
    k = torch.tensor(keys, dtype=torch.int64).reshape(-1, 3)
    codes = ot.morton_encode(k)
    assert codes.dtype == torch.int64
    assert bool((codes >= 0).all())
    assert codes.tolist() == [morton_reference(*t) for t in keys]
    assert torch.equal(ot.morton_decode(codes), k)


@FAST
@given(st.lists(st.tuples(key21, key21, key21), min_size=1, max_size=50))
def test_morton_of_child_extends_parent_code(keys: list[tuple[int, int, int]]) -> None:
    k = torch.tensor(keys, dtype=torch.int64)
    assert torch.equal(ot.morton_encode(k), (ot.morton_encode(ot.parent_keys(k)) << 3) | ot.octant(k))


def test_morton_rejects_out_of_range() -> None:
    with pytest.raises(OctreeError, match="Morton"):
        ot.morton_encode(torch.tensor([[0, 8, 0]]), bits=3)
    with pytest.raises(OctreeError):
        ot.morton_encode(torch.tensor([[-1, 0, 0]]))
    assert ot.morton_encode(torch.tensor([[7, 7, 7]]), bits=3).item() == 511


@FAST
@given(st.lists(st.tuples(key21, key21, key21), min_size=1, max_size=40), st.data())
def test_parent_child_octant_identities(keys: list[tuple[int, int, int]], data: st.DataObject) -> None:
    k = torch.tensor(keys, dtype=torch.int64)
    oct_ = ot.octant(k)
    assert bool(((oct_ >= 0) & (oct_ < 8)).all())
    assert torch.equal(ot.child_keys(ot.parent_keys(k), oct_), k)
    # bit order: x is bit 0, y bit 1, z bit 2
    assert oct_.tolist() == [(x & 1) | (y & 1) << 1 | (z & 1) << 2 for x, y, z in keys]
    parents = k >> 1
    octs = torch.tensor(data.draw(st.lists(st.integers(0, 7), min_size=len(keys), max_size=len(keys))))
    kids = ot.child_keys(parents, octs)
    assert torch.equal(ot.parent_keys(kids), parents)
    assert torch.equal(ot.octant(kids), octs)
    up = data.draw(st.integers(0, 5))
    assert torch.equal(ot.ancestor_keys(k, up), k >> up)


def test_octant_offsets_table() -> None:
    assert ot.OCTANT_OFFSETS.tolist() == [
        [0, 0, 0],
        [1, 0, 0],
        [0, 1, 0],
        [1, 1, 0],
        [0, 0, 1],
        [1, 0, 1],
        [0, 1, 1],
        [1, 1, 1],
    ]


@FAST
@given(
    st.lists(st.tuples(*(st.integers(0, 15),) * 3), max_size=40),
    st.lists(st.tuples(*(st.integers(-2, 17),) * 3), max_size=40),
)
def test_lookup_index_matches_dict(keys: list[tuple[int, int, int]], queries: list[tuple[int, int, int]]) -> None:
    first: dict[tuple[int, int, int], int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    got = ot.lookup_index(
        torch.tensor(queries, dtype=torch.int64).reshape(-1, 3), torch.tensor(keys, dtype=torch.int64).reshape(-1, 3)
    )
    assert got.tolist() == [first.get(q, -1) for q in queries]


@FAST
@given(raw_anchors())
def test_sort_canonical_orders_by_level_then_morton(case: tuple[OctreeGrid, torch.Tensor, torch.Tensor]) -> None:
    _, keys, levels = case
    perm = ot.sort_canonical(keys, levels)
    assert sorted(perm.tolist()) == list(range(len(levels)))
    pairs = list(zip(levels[perm].tolist(), ot.morton_encode(keys[perm]).tolist(), strict=True))
    assert pairs == sorted(pairs)
    sk, p2 = ot.sort_morton(keys)
    assert torch.equal(sk, keys[p2])
    assert ot.morton_encode(sk).tolist() == sorted(ot.morton_encode(keys).tolist())


# ---------------------------------------------------------------------------------------- grid


def test_grid_levels_and_limits() -> None:
    g = OctreeGrid((0.0, 0.0, 0.0), 8.0, 2, 3)
    assert [g.resolution(lv) for lv in (1, 2, 3)] == [4, 8, 16]
    assert g.cell_size(3) == 0.5
    assert g.depth(3) == 4
    with pytest.raises(OctreeError):
        g.resolution(0)
    with pytest.raises(OctreeError):
        g.resolution(4)
    with pytest.raises(OctreeError, match="too deep"):
        OctreeGrid((0.0, 0.0, 0.0), 1.0, 18, 5)
    OctreeGrid((0.0, 0.0, 0.0), 1.0, 17, 5)  # 21 bits: fine
    with pytest.raises(OctreeError):
        OctreeGrid((0.0, 0.0, 0.0), 0.0, 1, 1)
    assert issubclass(OctreeError, ProgsError)


@FAST
@given(grids(max_base=6), st.lists(st.tuples(coords, coords, coords), min_size=1, max_size=40), st.data())
def test_voxel_of_and_voxel_center_agree(
    grid: OctreeGrid, pts: list[tuple[float, float, float]], data: st.DataObject
) -> None:
    level = data.draw(st.integers(1, grid.num_levels))
    p = torch.tensor(pts, dtype=torch.float64)
    keys = grid.voxel_of(p, level)
    res = grid.resolution(level)
    assert keys.dtype == torch.int64
    assert bool(((keys >= 0) & (keys < res)).all())
    cell = grid.cell_size(level)
    centre = grid.voxel_center(keys, level, dtype=torch.float64)
    lo, hi = grid.bounds
    inside = ((p >= lo) & (p < hi)).all(dim=1)
    tol = 1e-9 * (grid.size + max(abs(v) for v in grid.origin))
    # points inside the cube lie in their cell
    assert bool(((p - centre).abs()[inside] <= cell / 2 + tol).all())
    # the centre of a cell maps back to that cell, at this level and (>>) at coarser ones
    assert torch.equal(grid.voxel_of(centre, level), keys)
    for coarser in range(1, level):
        assert torch.equal(grid.voxel_of(centre, coarser), keys >> (level - coarser))
    assert grid.voxel_center(keys, level).dtype == torch.float32


@FAST
@given(point_lists)
def test_from_points_cube_is_centred_and_covers_the_robust_box(pts: list[tuple[float, float, float]]) -> None:
    p = torch.tensor(pts, dtype=torch.float64)
    grid = OctreeGrid.from_points(p, num_levels=2, base_depth=1)
    lo, hi = ot.robust_bounds(p)
    glo, ghi = grid.bounds
    assert bool((glo <= lo + 1e-9).all()) and bool((ghi >= hi - 1e-9).all())
    extent = float((hi - lo).max())
    if extent > 0:
        assert grid.size == pytest.approx(extent * 1.05)
        assert torch.allclose((glo + ghi) / 2, (lo + hi) / 2, atol=1e-9 * (1 + extent))


def test_from_points_clips_outliers() -> None:
    gen = torch.Generator().manual_seed(1)
    p = torch.rand(10_000, 3, generator=gen, dtype=torch.float64)
    p[:5] = 1e6  # a few wild SfM outliers
    grid = OctreeGrid.from_points(p, num_levels=3, base_depth=2)
    assert grid.size < 1.2
    assert bool((grid.voxel_of(p, 3) < grid.resolution(3)).all())


def test_from_bounds() -> None:
    g = OctreeGrid.from_bounds([0, 0, 0], [2, 1, 4], num_levels=2, base_depth=3)
    assert g.size == 4.0 and g.origin == (-1.0, -1.5, 0.0)
    with pytest.raises(OctreeError):
        OctreeGrid.from_bounds([0, 0, 0], [-1, 1, 1], num_levels=2, base_depth=3)


@settings(max_examples=5, deadline=None)
@given(st.integers(2_000, 8_000), st.floats(1e-3, 1e4), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_default_base_depth_matches_spacing_on_uniform_cloud(n: int, scale: float, levels: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    p = torch.rand(n, 3, generator=gen, dtype=torch.float64) * scale
    grid = OctreeGrid.from_points(p, num_levels=levels)
    assert grid.base_depth > 0  # not clamped for these sizes
    ratio = grid.cell_size(levels) / ot.nearest_neighbour_spacing(p)
    assert 0.5 <= ratio <= 2.0


def test_default_base_depth_clamps_and_rejects_degenerate() -> None:
    p = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert ot.default_base_depth(p, 6) == 0
    with pytest.raises(OctreeError, match="coincide"):
        ot.default_base_depth(torch.zeros(5, 3), 3)


@FAST
@given(st.lists(st.tuples(*(st.integers(-20, 20),) * 3), min_size=1, max_size=60), st.floats(1e-3, 1e3))
def test_nearest_neighbour_distances_are_exact(pts: list[tuple[int, int, int]], scale: float) -> None:
    p = torch.tensor(pts, dtype=torch.float64) * scale
    got = ot.nearest_neighbour_distances(p)
    d = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1).sqrt()
    d[d == 0] = math.inf
    ref = d.min(dim=1).values
    assert torch.equal(torch.isinf(got), torch.isinf(ref))
    fin = torch.isfinite(ref)
    assert torch.allclose(got[fin], ref[fin], rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------- invariant


@FAST
@given(point_lists, st.integers(0, 6), st.integers(1, 4))
def test_points_complete_upward_is_strict(pts: list[tuple[float, float, float]], b: int, levels: int) -> None:
    p = torch.tensor(pts, dtype=torch.float64)
    grid = OctreeGrid.from_points(p, num_levels=levels, base_depth=b)
    leaf_keys = grid.voxel_of(p, levels)
    keys, lv = ot.complete_upward(leaf_keys, torch.full((len(pts),), levels))
    ot.validate_strict_octree(keys, lv, grid)
    assert ot.is_strict_octree(keys, lv, grid)
    # level l holds exactly the ancestors of the finest voxels
    for level in range(1, levels + 1):
        expect = key_set(leaf_keys >> (levels - level))
        assert key_set(keys[lv == level]) == expect
    # canonical order
    assert torch.equal(ot.sort_canonical(keys, lv), torch.arange(len(lv)))
    # the leaves are exactly the finest level
    assert torch.equal(ot.leaf_mask(keys, lv), lv == levels)


@FAST
@given(raw_anchors())
def test_complete_upward_mixed_levels(case: tuple[OctreeGrid, torch.Tensor, torch.Tensor]) -> None:
    grid, keys, levels = case
    k2, l2 = ot.complete_upward(keys, levels)
    ot.validate_strict_octree(k2, l2, grid)
    assert key_set(keys, levels) <= key_set(k2, l2)
    assert len(key_set(k2, l2)) == len(l2)  # no duplicates
    # minimal: every added anchor is an ancestor of an input anchor
    needed = set()
    for k, lv in zip(keys.tolist(), levels.tolist(), strict=True):
        for up in range(lv):
            needed.add((lv - up, *(c >> up for c in k)))
    assert key_set(k2, l2) == needed
    k3, l3 = ot.complete_upward(k2, l2)  # idempotent
    assert torch.equal(k3, k2) and torch.equal(l3, l2)
    # prefixes are LoDs: anchors of level <= l form a strict octree
    for lod in range(1, grid.num_levels + 1):
        m = l2 <= lod
        ot.validate_strict_octree(k2[m], l2[m], grid)


@FAST
@given(strict_anchors(), st.data())
def test_pruning_needs_descendants(case: tuple[OctreeGrid, torch.Tensor, torch.Tensor], data: st.DataObject) -> None:
    grid, keys, levels = case
    inner = torch.nonzero(~ot.leaf_mask(keys, levels)).squeeze(1).tolist()
    assume(inner)
    victim = data.draw(st.sampled_from(inner))
    alone = torch.ones(len(levels), dtype=torch.bool)
    alone[victim] = False
    with pytest.raises(OctreeError, match="no parent"):
        ot.validate_strict_octree(keys[alone], levels[alone], grid)
    assert not ot.is_strict_octree(keys[alone], levels[alone], grid)
    remove = ~alone
    gone = ot.descendants_mask(keys, levels, remove)
    ot.validate_strict_octree(keys[~gone], levels[~gone], grid)
    # removed = the victim and everything below it, nothing else
    vk, vl = keys[victim], int(levels[victim])
    below = (levels >= vl) & (ot.ancestor_keys(keys, 0) >> (levels - vl).clamp(min=0)[:, None] == vk).all(dim=1)
    assert torch.equal(gone, below)


@FAST
@given(strict_anchors(), st.data())
def test_descendants_mask_of_random_sets_keeps_invariant(
    case: tuple[OctreeGrid, torch.Tensor, torch.Tensor], data: st.DataObject
) -> None:
    grid, keys, levels = case
    remove = torch.tensor(
        data.draw(st.lists(st.booleans(), min_size=len(levels), max_size=len(levels))), dtype=torch.bool
    )
    gone = ot.descendants_mask(keys, levels, remove)
    assert bool(gone[remove].all())
    ot.validate_strict_octree(keys[~gone], levels[~gone], grid)


@FAST
@given(strict_anchors())
def test_leaf_mask_and_parent_index_brute_force(case: tuple[OctreeGrid, torch.Tensor, torch.Tensor]) -> None:
    _, keys, levels = case
    where = {(lv, *k): i for i, (k, lv) in enumerate(zip(keys.tolist(), levels.tolist(), strict=True))}
    pidx = ot.parent_index(keys, levels).tolist()
    for i, (k, lv) in enumerate(zip(keys.tolist(), levels.tolist(), strict=True)):
        assert pidx[i] == where.get((lv - 1, *(c >> 1 for c in k)), -1)
    leaves = ot.leaf_mask(keys, levels).tolist()
    has_child = {p for p in pidx if p >= 0}
    assert leaves == [i not in has_child for i in range(len(levels))]


@FAST
@given(strict_anchors(), st.data())
def test_duplicates_and_orphans_are_reported(
    case: tuple[OctreeGrid, torch.Tensor, torch.Tensor], data: st.DataObject
) -> None:
    grid, keys, levels = case
    assume(len(levels) > 0)
    i = data.draw(st.integers(0, len(levels) - 1))
    dk, dl = torch.cat([keys, keys[i : i + 1]]), torch.cat([levels, levels[i : i + 1]])
    with pytest.raises(OctreeError, match=rf"duplicate anchors at level {int(levels[i])}"):
        ot.validate_strict_octree(dk, dl, grid)
    # an orphan: a child whose parent voxel is not present
    level = data.draw(st.integers(2, max(2, grid.num_levels)))
    assume(level <= grid.num_levels)
    res = grid.resolution(level)
    key = data.draw(st.tuples(*(st.integers(0, res - 1),) * 3))
    present = key_set(keys, levels)
    assume((level - 1, *(c >> 1 for c in key)) not in present and (level, *key) not in present)
    ok = torch.cat([keys, torch.tensor([key])]), torch.cat([levels, torch.tensor([level])])
    with pytest.raises(OctreeError, match=rf"no parent at level {level - 1}"):
        ot.validate_strict_octree(*ok, grid)


def test_validate_messages_for_ranges_and_shapes() -> None:
    g = OctreeGrid((0.0, 0.0, 0.0), 1.0, 1, 2)
    with pytest.raises(OctreeError, match=r"level outside 1\.\.2"):
        ot.validate_strict_octree(torch.tensor([[0, 0, 0]]), torch.tensor([3]), g)
    with pytest.raises(OctreeError, match=r"outside its 2\^3 grid"):
        ot.validate_strict_octree(torch.tensor([[2, 0, 0]]), torch.tensor([1]), g)
    with pytest.raises(OctreeError, match=r"shape"):
        ot.validate_strict_octree(torch.tensor([[0, 0]]), torch.tensor([1]), g)
    with pytest.raises(OctreeError, match=r"integer"):
        ot.validate_strict_octree(torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([1]), g)
    with pytest.raises(
        OctreeError, match=r"no parent at level 1 \(first: voxel \(3, 1, 0\), missing parent \(1, 0, 0\)\)"
    ):
        ot.validate_strict_octree(torch.tensor([[0, 0, 0], [3, 1, 0]]), torch.tensor([1, 2]), g)
    ot.validate_strict_octree(torch.zeros(0, 3, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), g)


# ---------------------------------------------------------------------------------------- structure coding


@FAST
@given(strict_anchors(), st.randoms(use_true_random=False))
def test_occupancy_round_trip(case: tuple[OctreeGrid, torch.Tensor, torch.Tensor], rnd) -> None:  # type: ignore[no-untyped-def]
    grid, keys, levels = case
    for level in range(1, grid.num_levels):
        parents = keys[levels == level]
        children = keys[levels == level + 1]
        shuffled = children[torch.tensor(rnd.sample(range(len(children)), len(children)), dtype=torch.int64)]
        occ = ot.children_occupancy(parents, shuffled)
        assert occ.dtype == torch.uint8 and occ.shape == (len(parents),)
        assert torch.equal(occ, ot.children_occupancy(parents, children))  # order independent
        rebuilt = ot.children_from_occupancy(parents, occ)
        assert key_set(rebuilt) == key_set(children) and len(rebuilt) == len(children)
        # canonical order: parents in the given order, octants ascending
        pidx = ot.lookup_index(rebuilt >> 1, parents)
        slots = (pidx * 8 + ot.octant(rebuilt)).tolist()
        assert slots == sorted(slots)
        perm = ot.canonical_child_order(parents, shuffled)
        assert torch.equal(shuffled[perm], rebuilt)
        # popcount of the bytes is the child count of each parent
        assert sum(bin(v).count("1") for v in occ.tolist()) == len(children)
        # in a complete_upward set every non-finest parent with children has a non-zero byte
        inner = ~ot.leaf_mask(keys, levels)[levels == level]
        assert torch.equal(occ != 0, inner)


def test_occupancy_rejects_orphans_and_duplicates() -> None:
    parents = torch.tensor([[0, 0, 0], [1, 0, 0]])
    with pytest.raises(OctreeError, match="no parent"):
        ot.children_occupancy(parents, torch.tensor([[4, 0, 0]]))
    with pytest.raises(OctreeError, match="duplicate child"):
        ot.children_occupancy(parents, torch.tensor([[1, 1, 0], [1, 1, 0]]))
    with pytest.raises(OctreeError, match="duplicate parent"):
        ot.children_occupancy(torch.tensor([[0, 0, 0], [0, 0, 0]]), torch.tensor([[1, 1, 0]]))
    occ = ot.children_occupancy(parents, torch.tensor([[1, 1, 0], [3, 0, 1], [2, 0, 0]]))
    assert occ.tolist() == [0b00001000, 0b00000001 | 0b00100000]
    assert ot.children_from_occupancy(parents, occ).tolist() == [[1, 1, 0], [2, 0, 0], [3, 0, 1]]


def test_complete_upward_handles_a_million_anchors() -> None:
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(1_000_000, 3, generator=gen, dtype=torch.float64)
    grid = OctreeGrid((0.0, 0.0, 0.0), 1.0, 4, 5)  # what default_base_depth picks for this cloud
    keys = grid.voxel_of(pts, 5)
    k2, l2 = ot.complete_upward(keys, torch.full((1_000_000,), 5))  # speed: see `progs bench`
    assert ot.is_strict_octree(k2, l2, grid)
    assert int((l2 == 1).sum()) == 16**3
