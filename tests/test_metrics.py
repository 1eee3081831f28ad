import math

import numpy as np
import pytest
import torch

from progs.metrics import lpips, psnr, ssim


def test_psnr_known_value():
    a = torch.zeros(8, 8, 3)
    b = torch.full((8, 8, 3), 0.1)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)
    assert psnr(a, a) == math.inf


def _ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Independent SSIM: explicit Gaussian window sums with zero padding, as the 3DGS code computes it."""
    size, sigma = 11, 1.5
    g = np.exp(-((np.arange(size) - 5) ** 2) / (2 * sigma**2))
    g /= g.sum()
    w = np.outer(g, g)
    H, W, C = x.shape
    out = np.zeros((H, W, C))
    xp = np.pad(x, ((5, 5), (5, 5), (0, 0)))
    yp = np.pad(y, ((5, 5), (5, 5), (0, 0)))
    for i in range(H):
        for j in range(W):
            px = xp[i : i + size, j : j + size]
            py = yp[i : i + size, j : j + size]
            mx = (w[..., None] * px).sum((0, 1))
            my = (w[..., None] * py).sum((0, 1))
            sxx = (w[..., None] * px * px).sum((0, 1)) - mx**2
            syy = (w[..., None] * py * py).sum((0, 1)) - my**2
            sxy = (w[..., None] * px * py).sum((0, 1)) - mx * my
            c1, c2 = 0.01**2, 0.03**2
            out[i, j] = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(out.mean())


def test_ssim_matches_independent_implementation():
    rng = np.random.default_rng(0)
    x = rng.random((20, 17, 3))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    ours = ssim(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    assert ours == pytest.approx(_ssim_numpy(x, y), abs=1e-4)
    assert ssim(torch.tensor(x, dtype=torch.float32), torch.tensor(x, dtype=torch.float32)) == pytest.approx(
        1.0, abs=1e-6
    )
    assert ours < 0.99  # noise lowers SSIM


def test_lpips_is_reported_unavailable_not_zero():
    img = torch.rand(8, 8, 3)
    assert lpips(img, img) is None


@pytest.mark.parametrize("shape", [(48, 64, 3), (37, 53, 3), (5, 4, 3), (1, 1, 1)])
def test_the_training_loss_fused_ssim_equals_ssim_map(shape):
    """The training loss's SSIM (the C++ kernel on the CPU: a separable window, its own backward) is
    progs.metrics.ssim_map to float rounding, values and gradients, also on images smaller than the window."""
    import os

    from progs import kernels
    from progs.metrics import ssim_map
    from progs.train.losses import ssim_loss_map

    if os.environ.get("PROGS_DISABLE_CPU_KERNEL", "") not in ("", "0"):
        pytest.skip("C++ kernels disabled by PROGS_DISABLE_CPU_KERNEL")
    assert hasattr(kernels.load_kernel(), "ssim_forward"), kernels.kernel_error()
    gen = torch.Generator().manual_seed(shape[0])
    target = torch.rand(shape, generator=gen)
    image = (target + 0.2 * torch.randn(shape, generator=gen)).clamp(0, 1).requires_grad_()
    weights = torch.rand(shape, generator=gen)  # a loss that weighs every pixel differently
    ref = ssim_map(image, target)
    ours = ssim_loss_map(image, target)
    assert type(ours.grad_fn.next_functions[0][0]).__name__ == "_FusedSSIMBackward"  # the kernel ran
    torch.testing.assert_close(ours, ref, rtol=0, atol=2e-5)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), image)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), image)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-5 * float(g_ref.abs().max()))
    assert float(g_ref.abs().max()) > 0
