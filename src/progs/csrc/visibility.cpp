// The never-drawn rule of progs.model.visibility.hidden_gaussians, fused: per anchor and probe
// camera, the view inputs (IEEE-754 - * + / sqrt, in the PyTorch twin's order; built with
// -ffp-contract=off) snapped to 2^-12 with round-half-to-even, then the opacity MLP in integer
// arithmetic held in doubles (every product and sum an integer below 2^53, so exact in any order).
// Same verdicts as the PyTorch path, bit for bit; anchors are independent (OpenMP over anchors).
#include <torch/extension.h>

#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

torch::Tensor hidden_rule(torch::Tensor pos, torch::Tensor fixed, torch::Tensor cams, torch::Tensor w_view,
                          torch::Tensor w_dist, torch::Tensor w2, torch::Tensor b2, double dist_scale,
                          double input_scale, double input_limit, double hidden_scale, double hidden_limit,
                          double threshold) {
  TORCH_CHECK(pos.dtype() == torch::kFloat64 && fixed.dtype() == torch::kFloat64 && cams.dtype() == torch::kFloat64,
              "hidden_rule: float64 inputs");
  pos = pos.contiguous();
  fixed = fixed.contiguous();
  cams = cams.contiguous();
  w_view = w_view.to(torch::kFloat64).contiguous();
  w_dist = w_dist.to(torch::kFloat64).contiguous();
  w2 = w2.to(torch::kFloat64).contiguous();
  b2 = b2.to(torch::kFloat64).contiguous();
  const int64_t N = pos.size(0), H = fixed.size(1), C = cams.size(0), K = w2.size(0);
  TORCH_CHECK(w_view.size(0) == H && w_view.size(1) == 3 && w_dist.size(0) == H && w2.size(1) == H && b2.size(0) == K,
              "hidden_rule: shapes do not match");
  auto out = torch::zeros({N, K}, torch::dtype(torch::kBool));
  const double* P = pos.data_ptr<double>();
  const double* F = fixed.data_ptr<double>();
  const double* Cm = cams.data_ptr<double>();
  const double* WV = w_view.data_ptr<double>();
  const double* WD = w_dist.data_ptr<double>();
  const double* W2 = w2.data_ptr<double>();
  const double* B2 = b2.data_ptr<double>();
  bool* O = out.data_ptr<bool>();
  // an input in units of 2^-12: round half to even, clamped to ±input_limit
  const auto snap = [=](double v) { return std::min(std::max(std::nearbyint(v * input_scale), -input_limit), input_limit); };
#pragma omp parallel
  {
    std::vector<double> h(H), best(K);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      std::fill(best.begin(), best.end(), -std::numeric_limits<double>::infinity());
      const double* f = F + n * H;
      for (int64_t c = 0; c < C; ++c) {
        const double x = P[3 * n] - Cm[3 * c], y = P[3 * n + 1] - Cm[3 * c + 1], z = P[3 * n + 2] - Cm[3 * c + 2];
        const double xx = x * x, yy = y * y, zz = z * z;
        double dist = std::sqrt((xx + yy) + zz);
        dist = std::max(dist, 1e-8);
        const double v0 = snap(x / dist), v1 = snap(y / dist), v2 = snap(z / dist), r = snap(dist / dist_scale);
        for (int64_t j = 0; j < H; ++j) {
          const double pre = f[j] + ((v0 * WV[3 * j] + v1 * WV[3 * j + 1]) + v2 * WV[3 * j + 2]) + r * WD[j];
          h[j] = std::min(std::nearbyint(std::max(pre, 0.0) * hidden_scale), hidden_limit);
        }
        for (int64_t k = 0; k < K; ++k) {
          const double* w = W2 + k * H;
          double s = B2[k];
          for (int64_t j = 0; j < H; ++j) s += h[j] * w[j];
          best[k] = std::max(best[k], s);
        }
      }
      for (int64_t k = 0; k < K; ++k) O[n * K + k] = best[k] < threshold;
    }
  }
  return out;
}
