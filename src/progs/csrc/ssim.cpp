// SSIM for the training loss, fused: the per-pixel SSIM map of an image against a fixed target and its
// gradient with respect to the image (progs.train.losses). The semantics are those of
// progs.metrics.ssim_map (the test oracle): a Gaussian window filtering each channel with zero padding
// (same size out), K1 = 0.01, K2 = 0.03. The window is separable, so each filtered map costs two 1-D
// passes of `window` taps instead of one 2-D pass of window² taps; the forward's five filtered
// statistics are kept for the backward, which filters three maps of its own.
//
// Forward: with F the filter, mu_x = F(x), mu_y = F(y), sxx = F(x²) - mu_x², syy = F(y²) - mu_y²,
// sxy = F(xy) - mu_x mu_y, S = A B / (C D), A = 2 mu_x mu_y + c1, B = 2 sxy + c2, C = mu_x² + mu_y² + c1,
// D = sxx + syy + c2.
// Backward: F is its own adjoint (a symmetric window, zero padding), so with g = dL/dS,
//   dL/dx = F(g dS/dmu_x) + 2x F(g dS/dF(x²)) + y F(g dS/dF(xy)), where
//   dS/dmu_x = 2 mu_y (B - A) / (C D) + 2 mu_x S (1/D - 1/C), dS/dF(x²) = -S / D, dS/dF(xy) = 2 A / (C D).
#include <omp.h>

#include <vector>

#include "kernels.h"

namespace {

// out = F(in) for `maps` planes of h × w floats (zero padding): rows, then columns.
void gaussian_filter(const float* in, float* out, int64_t maps, int64_t h, int64_t w, const std::vector<float>& g) {
  const int64_t r = static_cast<int64_t>(g.size()) / 2;
  const int64_t taps = static_cast<int64_t>(g.size());
  std::vector<float> horiz(static_cast<size_t>(maps * h * w));
#pragma omp parallel num_threads(num_threads())
  {
    std::vector<float> row(static_cast<size_t>(w + 2 * r), 0.0f);
    // rows: horizontal pass into `horiz`
#pragma omp for schedule(static)
    for (int64_t mr = 0; mr < maps * h; ++mr) {
      const float* src = in + mr * w;
      float* dst = horiz.data() + mr * w;
      std::copy(src, src + w, row.begin() + r);
      for (int64_t j = 0; j < w; ++j) dst[j] = 0.0f;
      for (int64_t k = 0; k < taps; ++k) {
        const float gk = g[static_cast<size_t>(k)];
        const float* s = row.data() + k;
        for (int64_t j = 0; j < w; ++j) dst[j] += gk * s[j];
      }
    }
    // columns: vertical pass into `out`, a whole row at a time
#pragma omp for schedule(static)
    for (int64_t mr = 0; mr < maps * h; ++mr) {
      const int64_t m = mr / h, i = mr % h;
      const float* plane = horiz.data() + m * h * w;
      float* dst = out + mr * w;
      for (int64_t j = 0; j < w; ++j) dst[j] = 0.0f;
      for (int64_t k = 0; k < taps; ++k) {
        const int64_t ii = i + k - r;
        if (ii < 0 || ii >= h) continue;
        const float gk = g[static_cast<size_t>(k)];
        const float* s = plane + ii * w;
        for (int64_t j = 0; j < w; ++j) dst[j] += gk * s[j];
      }
    }
  }
}

std::vector<float> window_of(const torch::Tensor& window) {
  TORCH_CHECK(window.dim() == 1 && window.numel() % 2 == 1 && window.device().is_cpu(),
              "ssim: the window must be an odd number of taps on the CPU");
  auto wc = window.to(torch::kFloat32).contiguous();
  return std::vector<float>(wc.data_ptr<float>(), wc.data_ptr<float>() + wc.numel());
}

constexpr float C1 = 0.01f * 0.01f;
constexpr float C2 = 0.03f * 0.03f;

// SSIM's four factors at pixel i of the filtered statistics s (5 planes of n): S = a b / (c d).
struct Factors {
  float mx, my, a, b, c, d;
};
inline Factors factors(const float* s, int64_t n, int64_t i) {
  const float mx = s[i], my = s[n + i];
  const float sxx = s[2 * n + i] - mx * mx, syy = s[3 * n + i] - my * my, sxy = s[4 * n + i] - mx * my;
  return {mx, my, 2.0f * mx * my + C1, 2.0f * sxy + C2, mx * mx + my * my + C1, sxx + syy + C2};
}

}  // namespace

// x, y: [C, H, W] float32; window: the 1-D Gaussian taps. Returns (ssim [C, H, W], stats [5, C, H, W]:
// mu_x, mu_y, F(x²), F(y²), F(xy)) — the stats are what ssim_backward needs.
std::vector<torch::Tensor> ssim_forward(torch::Tensor x, torch::Tensor y, torch::Tensor window) {
  TORCH_CHECK(x.dim() == 3 && x.sizes() == y.sizes(), "ssim_forward: x and y must be [C, H, W] of one shape");
  TORCH_CHECK(x.device().is_cpu() && y.device().is_cpu(), "ssim_forward: CPU tensors only");
  x = x.to(torch::kFloat32).contiguous();
  y = y.to(torch::kFloat32).contiguous();
  const int64_t c = x.size(0), h = x.size(1), w = x.size(2), n = c * h * w;
  const std::vector<float> g = window_of(window);
  auto planes = torch::empty({5, c, h, w}, x.options());
  float* p = planes.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float* yp = y.data_ptr<float>();
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float a = xp[i], b = yp[i];
    p[i] = a;
    p[n + i] = b;
    p[2 * n + i] = a * a;
    p[3 * n + i] = b * b;
    p[4 * n + i] = a * b;
  }
  auto stats = torch::empty_like(planes);
  gaussian_filter(p, stats.data_ptr<float>(), 5 * c, h, w, g);
  auto out = torch::empty({c, h, w}, x.options());
  const float* s = stats.data_ptr<float>();
  float* o = out.data_ptr<float>();
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const Factors f = factors(s, n, i);
    o[i] = (f.a * f.b) / (f.c * f.d);
  }
  return {out, stats};
}

// dL/dx for the map of ssim_forward(x, y), given dL/dssim `grad` [C, H, W] and its `stats`.
torch::Tensor ssim_backward(torch::Tensor grad, torch::Tensor x, torch::Tensor y, torch::Tensor stats,
                            torch::Tensor window) {
  grad = grad.to(torch::kFloat32).contiguous();
  x = x.to(torch::kFloat32).contiguous();
  y = y.to(torch::kFloat32).contiguous();
  TORCH_CHECK(x.dim() == 3 && grad.sizes() == x.sizes() && y.sizes() == x.sizes(),
              "ssim_backward: grad, x and y must be [C, H, W] of one shape");
  TORCH_CHECK(grad.device().is_cpu() && x.device().is_cpu() && y.device().is_cpu() && stats.device().is_cpu(),
              "ssim_backward: CPU tensors only");
  TORCH_CHECK(stats.dim() == 4 && stats.size(0) == 5 && stats.size(1) == x.size(0) && stats.size(2) == x.size(1) &&
                  stats.size(3) == x.size(2) && stats.scalar_type() == torch::kFloat32,
              "ssim_backward: stats must be ssim_forward's [5, C, H, W] float32");
  stats = stats.contiguous();
  const int64_t c = x.size(0), h = x.size(1), w = x.size(2), n = c * h * w;
  const std::vector<float> g = window_of(window);
  auto parts = torch::empty({3, c, h, w}, x.options());
  float* q = parts.data_ptr<float>();
  const float* s = stats.data_ptr<float>();
  const float* gp = grad.data_ptr<float>();
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const Factors f = factors(s, n, i);
    const float cd = f.c * f.d;
    const float ssim = f.a * f.b / cd;
    const float gi = gp[i];
    q[i] = gi * (2.0f * f.my * (f.b - f.a) / cd + 2.0f * f.mx * ssim * (1.0f / f.d - 1.0f / f.c));
    q[n + i] = gi * (-ssim / f.d);
    q[2 * n + i] = gi * (2.0f * f.a / cd);
  }
  auto filtered = torch::empty_like(parts);
  gaussian_filter(q, filtered.data_ptr<float>(), 3 * c, h, w, g);
  auto dx = torch::empty({c, h, w}, x.options());
  const float* f = filtered.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float* yp = y.data_ptr<float>();
  float* dp = dx.data_ptr<float>();
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) dp[i] = f[i] + 2.0f * xp[i] * f[n + i] + yp[i] * f[2 * n + i];
  return dx;
}
