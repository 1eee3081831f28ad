"""The rasterizer backends against the pure-PyTorch oracle, finite differences and gsplat."""

from __future__ import annotations

import importlib.util
import math
import os
import shutil

import pytest
import torch

from progs import kernels
from progs.render import cpu, rasterize
from progs.render.projection import ALPHA_MIN, project_gaussians
from progs.render.reference import composite_reference
from progs.scene import Camera


def _kernel_or_skip() -> None:
    if os.environ.get("PROGS_DISABLE_CPU_KERNEL", "") not in ("", "0"):
        pytest.skip("C++ kernel disabled by PROGS_DISABLE_CPU_KERNEL")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler to build the CPU rasterizer")
    assert cpu.kernel_available(), f"C++ rasterizer failed to build: {kernels.kernel_error()}"


@pytest.fixture(scope="module")
def kernel() -> None:
    _kernel_or_skip()


def _camera(width: int, height: int, dtype: torch.dtype = torch.float32) -> Camera:
    w2c = torch.eye(4)
    w2c[:3, 3] = torch.tensor([0.05, -0.02, 0.0])
    return Camera(
        width, height, fx=0.9 * width, fy=0.95 * width, cx=width / 2 + 0.3, cy=height / 2 - 0.7, world_to_camera=w2c
    )


def _scene(
    n: int,
    cam: Camera,
    seed: int,
    px_sigma: float = 2.5,
    opacity: tuple[float, float] = (0.05, 1.0),
    channels: int = 3,
    nasty: bool = False,
    dtype: torch.dtype = torch.float32,
    border: float = -10.0,
):
    """Random Gaussians in the frustum (pixel sigma ~ px_sigma), centres at least ``border`` pixels inside
    the image (negative: up to that far outside); ``nasty`` mixes in Gaussians behind the camera,
    off-screen, with zero / 1e-8 scales, huge ones and near-duplicates in depth."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, generator=g) * 3 + 1.5
    u = torch.rand(n, generator=g) * (cam.width - 2 * border) + border
    v = torch.rand(n, generator=g) * (cam.height - 2 * border) + border
    x = (u - cam.cx) / cam.fx * z
    y = (v - cam.cy) / cam.fy * z
    means = torch.stack([x, y, z], -1)
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.4) * px_sigma * z[:, None] / cam.fx
    quats = torch.randn(n, 4, generator=g)
    opac = torch.rand(n, generator=g) * (opacity[1] - opacity[0]) + opacity[0]
    colors = torch.rand(n, channels, generator=g)
    if nasty and n >= 12:
        means[0, 2] = -2.0  # behind the camera
        means[1, 2] = 0.001  # in front of the near plane
        means[2, 0] = 50.0  # far off-screen
        means[3, 1] = -40.0
        scales[4] = 0.0  # degenerate: only the 0.3 px^2 low-pass remains
        scales[5] = 1e-8
        scales[6, :2] = 0.0
        scales[7] *= 25.0  # covers many tiles
        means[8] = means[9]  # identical depth: the stable order decides
        means[8, 0] += 0.01
        opac[10] = 1.0  # alpha clamped at ALPHA_MAX
        opac[11] = 1e-3  # below ALPHA_MIN everywhere
    bg = torch.rand(channels, generator=g)
    return [t.to(dtype) for t in (means, quats, scales, opac, colors, bg)]


def _composite_both(scene, cam):
    means, quats, scales, opac, colors, bg = scene
    p = project_gaussians(means, quats, scales, cam)
    args = (p.means2d, p.conics, colors, opac, p.depths, p.radii, cam.width, cam.height, bg)
    return cpu.composite(*args), composite_reference(*args)


# ---------------------------------------------------------------- forward: kernel == oracle


@pytest.mark.parametrize(
    "n,width,height,seed,kw",
    [
        (300, 61, 47, 0, {"nasty": True}),
        (500, 64, 64, 1, {"nasty": True, "px_sigma": 5.0}),
        (800, 50, 33, 2, {"opacity": (0.8, 1.0), "px_sigma": 4.0}),  # dense: early stop at T_MIN
        (200, 17, 100, 3, {"px_sigma": 0.4}),  # tiny footprints
        (1, 37, 29, 4, {}),
        (0, 40, 24, 5, {}),
        (150, 33, 21, 6, {"channels": 1}),
        (150, 33, 21, 7, {"channels": 5}),
    ],
)
def test_cpu_forward_matches_reference(kernel, n, width, height, seed, kw) -> None:
    cam = _camera(width, height)
    scene = _scene(n, cam, seed, **kw)
    (img, alpha), (rimg, ralpha) = _composite_both(scene, cam)
    assert img.shape == rimg.shape == (height, width, scene[4].shape[1])
    assert alpha.shape == (height, width, 1)
    assert (img - rimg).abs().max().item() <= 1e-4
    assert (alpha - ralpha).abs().max().item() <= 1e-4
    if n == 0:
        assert torch.equal(img, scene[5].expand_as(img)) and torch.all(alpha == 0)


def test_dense_scene_hits_the_stop_rule(kernel) -> None:
    cam = _camera(32, 32)
    scene = _scene(600, cam, 11, opacity=(0.9, 1.0), px_sigma=6.0)
    (img, alpha), (rimg, ralpha) = _composite_both(scene, cam)
    assert (1 - ralpha).min().item() < 1e-2  # the test really exercises the T_MIN cut-off
    assert (img - rimg).abs().max().item() <= 1e-4
    assert (alpha - ralpha).abs().max().item() <= 1e-4


def test_float64_kernel_matches_reference(kernel) -> None:
    cam = _camera(45, 38)
    scene = _scene(250, cam, 12, nasty=True, dtype=torch.float64)
    (img, alpha), (rimg, ralpha) = _composite_both(scene, cam)
    assert img.dtype == torch.float64
    assert (img - rimg).abs().max().item() <= 1e-10
    assert (alpha - ralpha).abs().max().item() <= 1e-10


# ---------------------------------------------------------------- gradients


def _grads(scene, cam, backend: str, seed: int = 99):
    params = [t.clone().requires_grad_(True) for t in scene]
    means, quats, scales, opac, colors, bg = params
    img, alpha, info = rasterize(means, quats, scales, opac, colors, cam, bg, backend=backend)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(img.shape, generator=g, dtype=img.dtype).to(img.device)
    wa = torch.randn(alpha.shape, generator=g, dtype=img.dtype).to(img.device)
    ((img * w).sum() + (alpha * wa).sum()).backward()
    return [p.grad for p in params] + [info["means2d"].grad]


@pytest.mark.parametrize("seed,kw", [(20, {"nasty": True}), (21, {"opacity": (0.7, 1.0), "px_sigma": 4.0})])
def test_cpu_gradients_match_reference(kernel, seed, kw) -> None:
    cam = _camera(48, 40)
    scene = _scene(400, cam, seed, **kw)
    got = _grads(scene, cam, "cpu")
    want = _grads(scene, cam, "reference")
    names = ["means", "quats", "scales", "opacities", "colors", "background", "means2d"]
    for name, a, b in zip(names, got, want):
        assert a is not None and b is not None, name
        scale = b.abs().max().item()
        assert scale > 0, name
        err = (a - b).abs().max().item()
        assert err <= 1e-3 * scale + 1e-5, f"{name}: max err {err:.3g} vs magnitude {scale:.3g}"


def _fd_check(
    scene,
    cam,
    backend: str,
    eps: float,
    rtol: float,
    atol: float,
    n_dirs: int = 6,
    analytic_dtype: torch.dtype | None = None,
) -> None:
    """Directional derivatives of a random linear functional of (image, alpha) along random directions,
    per parameter tensor: analytic gradients (computed in ``analytic_dtype``, default the scene's dtype)
    against central differences of the scene's dtype."""
    adt = analytic_dtype or scene[0].dtype
    grads = _grads([t.to(adt) for t in scene], cam, backend)[:6]
    g = torch.Generator().manual_seed(5)
    img0, alpha0, _ = rasterize(*scene[:5], cam, scene[5], backend=backend)
    wg = torch.Generator().manual_seed(99)
    w = torch.randn(img0.shape, generator=wg, dtype=adt).to(img0.dtype)
    wa = torch.randn(alpha0.shape, generator=wg, dtype=adt).to(img0.dtype)

    def loss(params) -> float:
        with torch.no_grad():
            img, alpha, _ = rasterize(*params[:5], cam, params[5], backend=backend)
            return ((img * w).sum() + (alpha * wa).sum()).item()

    for i, grad in enumerate(grads):
        for _ in range(n_dirs):
            d = torch.randn(scene[i].shape, generator=g, dtype=scene[i].dtype)
            plus = [t.clone() for t in scene]
            minus = [t.clone() for t in scene]
            plus[i] += eps * d
            minus[i] -= eps * d
            fd = (loss(plus) - loss(minus)) / (2 * eps)
            an = (grad.double() * d).sum().item()
            assert abs(fd - an) <= atol + rtol * max(abs(fd), abs(an)), f"param {i}: fd {fd} vs analytic {an}"


def _smooth_tiny_scene(dtype: torch.dtype):
    cam = _camera(24, 20)
    scene = _scene(7, cam, 31, px_sigma=3.0, opacity=(0.2, 0.8), dtype=dtype)
    return scene, cam


def test_reference_gradients_match_finite_differences_float64() -> None:
    scene, cam = _smooth_tiny_scene(torch.float64)
    _fd_check(scene, cam, "reference", eps=1e-6, rtol=1e-5, atol=1e-7)


def test_cpu_gradients_match_finite_differences_float64(kernel) -> None:
    scene, cam = _smooth_tiny_scene(torch.float64)
    _fd_check(scene, cam, "cpu", eps=1e-6, rtol=1e-5, atol=1e-7)


def test_cpu_gradients_match_finite_differences_float32(kernel) -> None:
    # float32 central differences are ruined by the ALPHA_MIN / tile steps at any usable eps, so the
    # float32 kernel's analytic gradients are checked against float64 central differences.
    scene, cam = _smooth_tiny_scene(torch.float64)
    scene = [t.float().double() for t in scene]  # representable in float32
    _fd_check(scene, cam, "cpu", eps=1e-6, rtol=2e-4, atol=2e-5, analytic_dtype=torch.float32)


def test_composite_background_gradient_and_alpha_only_loss(kernel) -> None:
    cam = _camera(30, 26)
    means, quats, scales, opac, colors, bg = _scene(120, cam, 41)
    p = project_gaussians(means, quats, scales, cam)
    res = []
    for fn in (cpu.composite, composite_reference):
        m2, cn, col, op, b = (t.detach().clone().requires_grad_(True) for t in (p.means2d, p.conics, colors, opac, bg))
        _, alpha = fn(m2, cn, col, op, p.depths, p.radii, cam.width, cam.height, b)
        alpha.square().sum().backward()  # image unused: only the alpha path carries gradient
        res.append([m2.grad, cn.grad, op.grad, col.grad, b.grad])
    for a, r in zip(*res):
        a = torch.zeros_like(r) if a is None else a
        r = torch.zeros_like(a) if r is None else r
        assert (a - r).abs().max().item() <= 1e-3 * max(r.abs().max().item(), 1e-6) + 1e-5


def test_auto_backend_on_cpu_uses_kernel(kernel) -> None:
    cam = _camera(32, 24)
    means, quats, scales, opac, colors, bg = _scene(50, cam, 51)
    img, alpha, info = rasterize(means, quats, scales, opac, colors, cam, bg)
    rimg, ralpha, _ = rasterize(means, quats, scales, opac, colors, cam, bg, backend="reference")
    assert (img - rimg).abs().max().item() <= 1e-4
    assert set(info) >= {"means2d", "radii", "depths"}


# ---------------------------------------------------------------- gsplat parity (CUDA only)
#
# gsplat 1.5.3 bounds each Gaussian by an opacity-aware box (ProjectionEWA3DGSFused.cu): half-widths
# ceil(e * sqrt(cov2d_xx)), ceil(e * sqrt(cov2d_yy)) with e = min(3.33, sqrt(2 ln(opacity * 255))), which
# holds exactly the pixels where opacity * exp(-d^2 / 2) >= 1/255, and culls a Gaussian whose box misses
# the image. Ours is the circle of radius ceil(3 sqrt(lambda_max)) (3 sigma). So:
# - gsplat culls only Gaussians that draw no pixel of the image (all in-image alphas < 1/255);
# - we cull only Gaussians whose in-image pixels all lie beyond 3 sigma (d^2 / 2 > 4.5), which gsplat
#   may still draw when e > 3, i.e. opacity > e^4.5 / 255 (~0.353): a faint fringe, alpha < 0.0111;
# - with opacity <= e^4.5 / 255 both composite exactly the same (pixel, Gaussian) pairs.
OPACITY_SAME_FOOTPRINT = math.exp(4.5) * ALPHA_MIN  # ~0.353: gsplat's extent e <= 3 sigma


def _gsplat_or_skip() -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA unavailable: gsplat parity needs a GPU")
    pytest.importorskip("gsplat", reason="gsplat not installed (pip install '.[cuda]')")


def _in_image_footprint(scene, cam: Camera, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For the Gaussians ``rows``: the smallest d^2 / 2 (Mahalanobis, with the 0.3 px^2 blur) and the largest
    alpha over the image's pixel centres, in float64."""
    means, quats, scales, opac = (t.double() for t in scene[:4])
    p = project_gaussians(means[rows], quats[rows], scales[rows], cam)
    ys, xs = torch.meshgrid(torch.arange(cam.height), torch.arange(cam.width), indexing="ij")
    px, py = xs.reshape(-1).double() + 0.5, ys.reshape(-1).double() + 0.5
    dx = p.means2d[:, None, 0] - px[None]
    dy = p.means2d[:, None, 1] - py[None]
    q = p.conics
    sigma = 0.5 * (q[:, None, 0] * dx * dx + q[:, None, 2] * dy * dy) + q[:, None, 1] * dx * dy
    sigma_min = sigma.min(dim=1).values
    return sigma_min, opac[rows] * torch.exp(-sigma_min)


def test_gsplat_parity() -> None:
    _gsplat_or_skip()
    cam = _camera(96, 80)
    # Opacity <= 0.9 keeps every alpha below both clamps (gsplat 0.999, ours 0.99); centres up to 10 px
    # outside the image put many footprints across its border, where the two culling rules differ.
    scene = _scene(2000, cam, 61, opacity=(0.05, 0.9))
    means, quats, scales, opac, colors, bg = scene
    ref, ref_a, ref_info = rasterize(means, quats, scales, opac, colors, cam, bg, backend="cpu")
    dev = torch.device("cuda")
    params = [t.to(dev).requires_grad_(True) for t in (means, quats, scales, opac, colors)]
    img, alpha, info = rasterize(*params, cam, bg.to(dev), backend="cuda")
    assert img.shape == ref.shape and alpha.shape == ref_a.shape
    assert img.is_cuda and info["radii"].shape == (2000,)
    # The two footprints differ only by fringes where alpha < 0.0111 (see above).
    for got, want in ((img, ref), (alpha, ref_a)):
        diff = (got.detach().cpu() - want).abs()
        assert diff.mean().item() <= 1e-3 and diff.max().item() <= 3e-2

    ours, theirs = ref_info["radii"] > 0, info["radii"].cpu() > 0
    assert ours.sum() > 1500 and theirs.sum() > 1500
    only_ours = torch.nonzero(ours & ~theirs).squeeze(1)
    only_gsplat = torch.nonzero(theirs & ~ours).squeeze(1)
    _, alpha_max = _in_image_footprint(scene, cam, only_ours)
    assert (alpha_max < ALPHA_MIN * (1 + 1e-4)).all(), "gsplat culled a Gaussian that draws in the image"
    sigma_min, _ = _in_image_footprint(scene, cam, only_gsplat)
    assert (sigma_min > 4.5 * (1 - 1e-5)).all(), "we culled a Gaussian that reaches the image within 3 sigma"
    assert (opac[only_gsplat] > OPACITY_SAME_FOOTPRINT * (1 - 1e-4)).all()
    # Where both footprints agree, the visible sets agree up to Gaussians that draw nothing.
    same = opac <= OPACITY_SAME_FOOTPRINT
    assert not (same[only_gsplat]).any()

    img.sum().backward()
    assert info["means2d"].grad is not None and info["means2d"].grad.shape == (2000, 2)


@pytest.mark.parametrize("seed", [62, 63])
def test_gsplat_gradient_parity(seed: int) -> None:
    """Gradients of every input (means, rotations, scales, opacities, colours, background and the
    screen-space means used for densification) from gsplat match the CPU kernel's.

    Opacity <= ~0.353 and centres inside the image make both backends composite the same (pixel,
    Gaussian) pairs (see above), so only float32 summation order differs, except where a pixel's alpha
    lies within rounding of the 1/255 cut-off: that flips one pair, and the gradient of that Gaussian
    alone. Hence: nearly every Gaussian matches tightly, and each tensor as a whole closely."""
    _gsplat_or_skip()
    cam = _camera(96, 80)
    scene = _scene(600, cam, seed, opacity=(0.05, OPACITY_SAME_FOOTPRINT * 0.99), border=8.0)
    want = _grads(scene, cam, "cpu")
    got = _grads([t.cuda() for t in scene], cam, "cuda")
    names = ["means", "quats", "scales", "opacities", "colors", "background", "means2d"]
    for name, a, b in zip(names, got, want):
        assert a is not None and b is not None, name
        rows = 1 if name == "background" else b.shape[0]  # one row per Gaussian
        a, b = a.detach().cpu().double().reshape(rows, -1), b.double().reshape(rows, -1)
        scale = b.abs().max().item()
        assert scale > 0, name
        rel_l2 = ((a - b).norm() / b.norm()).item()
        assert rel_l2 <= 1e-2, f"{name}: relative L2 error {rel_l2:.3g}"
        close = ((a - b).abs() <= 1e-3 * scale + 1e-6).all(dim=1).double().mean().item()
        assert close >= 0.99, f"{name}: only {close:.2%} of the Gaussians' gradients match"


def test_zero_gaussians_render_the_background_on_cpu_and_cuda(kernel) -> None:
    """A LoD with no visible anchor renders zero Gaussians: every backend gives the background and alpha 0,
    and a loss on that image back-propagates (the CUDA backend answers it without calling gsplat)."""
    from progs.render.cuda import _empty_render

    cam = _camera(24, 16)
    bg = torch.tensor([0.2, 0.5, 0.7])
    shapes = [(0, 3), (0, 4), (0, 3), (0,), (0, 3)]
    empty = [torch.zeros(s, requires_grad=True) for s in shapes]
    ref, ref_alpha, _ = rasterize(*empty, cam, bg, backend="cpu")
    assert torch.equal(ref.detach(), bg.expand(16, 24, 3)) and not ref_alpha.any()
    renders = [_empty_render(*empty, cam, bg)]
    if torch.cuda.is_available() and importlib.util.find_spec("gsplat") is not None:
        renders.append(
            rasterize(
                *[torch.zeros(s, device="cuda", requires_grad=True) for s in shapes], cam, bg.cuda(), backend="cuda"
            )
        )
    for img, alpha, info in renders:
        assert torch.equal(img.detach().cpu(), ref.detach()) and torch.equal(alpha.cpu(), ref_alpha.detach())
        assert info["means2d"].shape == (0, 2) and info["radii"].shape == (0,)
        img.sum().backward()


# ---------------------------------------------------------------- build failure


def test_build_failure_warns_once_and_falls_back(monkeypatch, tmp_path) -> None:
    saved = dict(kernels._state)
    monkeypatch.setattr(kernels, "_SOURCES", [tmp_path / "missing.cpp"])
    monkeypatch.setattr(kernels, "_PREBUILT", "progs._no_prebuilt_kernels")  # as an install without them
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.delenv("PROGS_DISABLE_CPU_KERNEL", raising=False)
    kernels._state.update(tried=False, module=None, error=None)
    try:
        with pytest.warns(RuntimeWarning, match="could not be built") as record:
            assert cpu.kernel_available() is False
            assert cpu.kernel_available() is False
        assert len([w for w in record if "could not be built" in str(w.message)]) == 1
        cam = _camera(20, 16)
        means, quats, scales, opac, colors, bg = _scene(10, cam, 71)
        img, _, _ = rasterize(means, quats, scales, opac, colors, cam, bg, backend="cpu")
        rimg, _, _ = rasterize(means, quats, scales, opac, colors, cam, bg, backend="reference")
        assert torch.equal(img, rimg)
    finally:
        kernels._state.clear()
        kernels._state.update(saved)
