// The context model's exact (float64, bit-reproducible) coding path in C++:
//  * hashgrid_features mirrors progs.model.context._grid_interpolate(snap=True);
//  * coding_params mirrors ContextModel.coding_params_reference (steps, snapped means, scale bins)
//    with the transcendental functions of progs.model.exact_math.
// Both do the same IEEE-754 double operations in the same order as their PyTorch twins (the
// extension is built with -ffp-contract=off, so no fused multiply-add changes a rounding), and
// round with round-half-to-even like torch.round. Anchors are independent, so the OpenMP split
// cannot change a bit.
#include <torch/extension.h>

#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

constexpr int64_t kPrimes[3] = {1, 2654435761LL, 805459861LL};
constexpr double kActGrid = 1.0 / 4096.0;
constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52: (x + kMagic) - kMagic rounds half to even
constexpr double kTwo51 = 2251799813685248.0;  // 2^51
constexpr int64_t kMaxD = 256;

// Round half to even (what torch.round and std::nearbyint do) without a libm call: adding and
// subtracting 1.5 * 2^52 rounds in the FPU's default mode; values of magnitude >= 2^51 are integers.
inline double round_even(double x) {
  if (!(std::fabs(x) < kTwo51)) return x;  // integers already (and NaN passes through)
  const double t = x + kMagic;  // not folded away: without -ffast-math this is not an identity
  return t - kMagic;
}

inline double floor_fast(double x) {
  const double r = round_even(x);
  return r > x ? r - 1.0 : r;
}


// Interpolates one table (T rows of dim values) at one point of dimension d into out[0..dim).
// Templated on d and (when it is 4, the default) dim so that the corner loops unroll.
template <int d, int DIM>
inline void interpolate_t(const double* table, int64_t T, int64_t dim_rt, const double* p, int64_t res, double* out) {
  const int64_t dim = DIM > 0 ? DIM : dim_rt;
  const double resf = static_cast<double>(res);
  double w[3][2];
  int64_t c[3][2];
  for (int k = 0; k < d; ++k) {
    const double x = p[k] * resf;
    double base = floor_fast(x);
    if (base < 0.0) base = 0.0;
    if (base > resf - 1.0) base = resf - 1.0;
    const double frac = x - base;
    w[k][0] = 1.0 - frac;
    w[k][1] = frac;
    c[k][0] = static_cast<int64_t>(base);
    c[k][1] = c[k][0] + 1;
  }
  const int64_t side = res + 1;
  int64_t cells = 1;
  for (int k = 0; k < d; ++k) cells *= side;
  const bool dense = cells <= T;
  const bool pow2 = (T & (T - 1)) == 0;
  for (int64_t j = 0; j < dim; ++j) out[j] = 0.0;
  for (int corner = 0; corner < (1 << d); ++corner) {
    double wc = w[0][corner & 1];
    for (int k = 1; k < d; ++k) wc = wc * w[k][(corner >> k) & 1];
    int64_t idx;
    if (dense) {
      idx = 0;
      int64_t stride = 1;
      for (int k = 0; k < d; ++k) {
        idx = idx + c[k][(corner >> k) & 1] * stride;
        stride = stride * side;
      }
    } else {
      int64_t h = c[0][corner & 1] * kPrimes[0];
      for (int k = 1; k < d; ++k) h = h ^ (c[k][(corner >> k) & 1] * kPrimes[k]);
      idx = pow2 ? (h & (T - 1)) : (h % T);
    }
    const double* row = table + idx * dim;
    for (int64_t j = 0; j < dim; ++j) out[j] = out[j] + wc * row[j];
  }
  for (int64_t j = 0; j < dim; ++j) out[j] = round_even(out[j] / kActGrid) * kActGrid;
}

inline void interpolate(const double* table, int64_t T, int64_t dim, const double* p, int d, int64_t res, double* out) {
  if (d == 3) {
    if (dim == 4) interpolate_t<3, 4>(table, T, dim, p, res, out);
    else interpolate_t<3, 0>(table, T, dim, p, res, out);
  } else {
    if (dim == 4) interpolate_t<2, 4>(table, T, dim, p, res, out);
    else interpolate_t<2, 0>(table, T, dim, p, res, out);
  }
}

}  // namespace

// tables3 [G3, T3, dim], tables2 [G2 * 3, T2, dim] (per 2D level the xy, xz, yz planes), pos [N, 3]
// in [0, 1]: returns [N, dim * (G3 + 3 * G2)], the 3D levels first, then per 2D level its planes.
torch::Tensor hashgrid_features(torch::Tensor tables3, torch::Tensor tables2, torch::Tensor pos,
                                std::vector<int64_t> res3, std::vector<int64_t> res2) {
  TORCH_CHECK(tables3.dtype() == torch::kFloat64 && tables2.dtype() == torch::kFloat64 && pos.dtype() == torch::kFloat64,
              "hashgrid_features: float64 inputs expected");
  TORCH_CHECK(pos.dim() == 2 && pos.size(1) == 3, "hashgrid_features: pos must be [N, 3]");
  tables3 = tables3.contiguous();
  tables2 = tables2.contiguous();
  pos = pos.contiguous();
  const int64_t G3 = tables3.size(0), T3 = tables3.size(1), dim = tables3.size(2);
  const int64_t G2 = tables2.size(0) / 3, T2 = tables2.size(1);
  TORCH_CHECK(static_cast<int64_t>(res3.size()) == G3 && static_cast<int64_t>(res2.size()) == G2 && tables2.size(2) == dim,
              "hashgrid_features: table and resolution shapes disagree");
  const int64_t N = pos.size(0);
  const int64_t F = dim * (G3 + 3 * G2);
  auto out = torch::empty({N, F}, pos.options());
  const double* t3 = tables3.data_ptr<double>();
  const double* t2 = tables2.data_ptr<double>();
  const double* pp = pos.data_ptr<double>();
  double* o = out.data_ptr<double>();
  static const int planes[3][2] = {{0, 1}, {0, 2}, {1, 2}};
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const double* p = pp + i * 3;
    double* oi = o + i * F;
    for (int64_t g = 0; g < G3; ++g) interpolate(t3 + g * T3 * dim, T3, dim, p, 3, res3[g], oi + g * dim);
    for (int64_t g = 0; g < G2; ++g) {
      for (int pl = 0; pl < 3; ++pl) {
        const double q[2] = {p[planes[pl][0]], p[planes[pl][1]]};
        const int64_t t = g * 3 + pl;
        interpolate(t2 + t * T2 * dim, T2, dim, q, 2, res2[g], oi + G3 * dim + t * dim);
      }
    }
  }
  return out;
}

namespace {

constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;

inline double pow2i(double k) {
  const int64_t bits = (static_cast<int64_t>(k) + 1023) << 52;
  double out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

// progs.model.exact_math.exp
inline double exact_exp(double x, const double* coeffs, int n_coeffs) {
  if (x < -700.0) x = -700.0;
  if (x > 700.0) x = 700.0;
  const double k = floor_fast(x * kLog2e + 0.5);
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;
  double p = coeffs[n_coeffs - 1];
  for (int i = n_coeffs - 2; i >= 0; --i) p = p * r + coeffs[i];
  return p * pow2i(k);
}

// progs.model.exact_math.log1p (y in [0, 1])
inline double exact_log1p(double y, const double* inv_odd, int terms) {
  const double u = y / (2.0 + y);
  const double v = u * u;
  double s = inv_odd[terms - 1];
  for (int n = terms - 2; n >= 0; --n) s = s * v + inv_odd[n];
  return 2.0 * (u * s);
}

}  // namespace

// The context MLPs and the coding parameters, fused per anchor.
//   h [N, F]: the anchor's exact features; terms [N, H] or [0, H]: its parent's first-layer terms
//   (ContextModel.parent_terms; none for roots); w1t [F, H], b1 [H]: the own-feature half of the
//   stacked first layers (MLP_d's Hd units, then MLP_q's Hq units); w2dt [Hd, 2D], b2d [2D];
//   w2qt [Hq, 3], b2q [3]; leaky / act_clamp / act_grid: the hidden activation and its snapping.
//   The fixed-point weights and snapped inputs make every product and partial sum exact in
//   float64, so these sums equal PyTorch's matrix products bit for bit whatever their order.
// Then per anchor: step q per type from tanh(t); per channel the mean in symbol units snapped to
// mean_grid, and the scale bin of (softplus(z) + scale_floor) / q: the number of thresholds
// 2^(b // 8 + min_exponent) * octave_thresholds[b % 8], b < num_bins - 1, that are <= it.
// exp_coeffs / inv_odd: the series of progs.model.exact_math. Returns
// (mean in symbol units [N, D] float64, scale bin [N, D] uint8, step q [N, 3] float64).
std::vector<torch::Tensor> coding_params(torch::Tensor h, torch::Tensor terms, torch::Tensor w1t, torch::Tensor b1,
                                         torch::Tensor w2dt, torch::Tensor b2d, torch::Tensor w2qt, torch::Tensor b2q,
                                         const CodingConstants& constants) {
  const double leaky = constants.leaky, act_clamp = constants.act_clamp, act_grid = constants.act_grid;
  const std::vector<double>& q0 = constants.q0;
  const std::vector<int64_t>& attr_dims = constants.attr_dims;
  const std::vector<double>& octave_thresholds = constants.octave_thresholds;
  const int64_t min_exponent = constants.min_exponent, num_bins = constants.num_bins;
  const std::vector<double>& exp_coeffs = constants.exp_coeffs;
  const std::vector<double>& inv_odd = constants.inv_odd;
  const int64_t step_levels = constants.step_levels;
  const double mean_grid = constants.mean_grid, scale_floor = constants.scale_floor;
  for (const auto& x : {h, terms, w1t, b1, w2dt, b2d, w2qt, b2q})
    TORCH_CHECK(x.dtype() == torch::kFloat64, "coding_params: float64 inputs expected");
  TORCH_CHECK(octave_thresholds.size() == 8 && num_bins >= 1 && num_bins <= 256, "coding_params: 8 thresholds per octave, <= 256 bins");
  h = h.contiguous();
  terms = terms.contiguous();
  w1t = w1t.contiguous();
  b1 = b1.contiguous();
  w2dt = w2dt.contiguous();
  b2d = b2d.contiguous();
  w2qt = w2qt.contiguous();
  b2q = b2q.contiguous();
  const int64_t N = h.size(0), F = h.size(1), H = w1t.size(1), Hd = w2dt.size(0), Hq = w2qt.size(0);
  int64_t D = 0;
  for (auto a : attr_dims) D += a;
  TORCH_CHECK(q0.size() == 3 && attr_dims.size() == 3 && w1t.size(0) == F && b1.numel() == H && Hd + Hq == H &&
                  w2dt.size(1) == 2 * D && b2d.numel() == 2 * D && w2qt.size(1) == 3 && b2q.numel() == 3,
              "coding_params: shapes disagree");
  const bool has_terms = terms.size(0) > 0;
  TORCH_CHECK(!has_terms || (terms.size(0) == N && terms.size(1) == H), "coding_params: parent terms must be [N, H]");
  TORCH_CHECK(H <= 256, "coding_params: at most 256 hidden units");
  auto mean = torch::empty({N, D}, h.options());
  auto bins = torch::empty({N, D}, h.options().dtype(torch::kUInt8));
  auto q = torch::empty({N, 3}, h.options());
  const double* hp = h.data_ptr<double>();
  const double* tmp = has_terms ? terms.data_ptr<double>() : nullptr;
  const double* w1 = w1t.data_ptr<double>();
  const double* bb1 = b1.data_ptr<double>();
  const double* w2d = w2dt.data_ptr<double>();
  const double* bb2d = b2d.data_ptr<double>();
  const double* w2q = w2qt.data_ptr<double>();
  const double* bb2q = b2q.data_ptr<double>();
  const double* oth = octave_thresholds.data();
  const int64_t max_bin = num_bins - 1;
  double* mp = mean.data_ptr<double>();
  uint8_t* bp = bins.data_ptr<uint8_t>();
  double* qp = q.data_ptr<double>();
  const double* ec = exp_coeffs.data();
  const int nec = static_cast<int>(exp_coeffs.size());
  const double* io = inv_odd.data();
  const int nio = static_cast<int>(inv_odd.size());
  const double step_base = constants.step_base, step_log = constants.step_log;  // a power of two; ln(max q / Q0)
  const double max_k = static_cast<double>(step_levels);
  const double inv_grid = 1.0 / mean_grid;  // a power of two: exact
  TORCH_CHECK(D <= kMaxD, "coding_params: at most 256 attribute channels");
  std::vector<int> channel_type(D);
  {
    int64_t j = 0;
    for (int type = 0; type < 3; ++type)
      for (int64_t c = 0; c < attr_dims[type]; ++c) channel_type[j++] = type;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    // the MLPs: outputs in the inner loops (independent accumulators, vectorisable)
    double hid[256], dloc[2 * kMaxD], tloc[3];
    const double* hi = hp + i * F;
    for (int64_t k = 0; k < H; ++k) hid[k] = 0.0;
    for (int64_t f = 0; f < F; ++f) {
      const double x = hi[f];
      const double* w = w1 + f * H;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) hid[k] = hid[k] + x * w[k];
    }
    for (int64_t k = 0; k < H; ++k) {
      double v = hid[k];
      if (tmp != nullptr) v = v + tmp[i * H + k];
      v = v + bb1[k];
      v = v >= 0.0 ? v : v * leaky;
      v = v < -act_clamp ? -act_clamp : (v > act_clamp ? act_clamp : v);
      hid[k] = round_even(v / act_grid) * act_grid;
    }
    #pragma omp simd
    for (int64_t c = 0; c < 2 * D; ++c) dloc[c] = 0.0;
    for (int64_t k = 0; k < Hd; ++k) {
      const double x = hid[k];
      const double* w = w2d + k * 2 * D;
      #pragma omp simd
      for (int64_t c = 0; c < 2 * D; ++c) dloc[c] = dloc[c] + x * w[c];
    }
    #pragma omp simd
    for (int64_t c = 0; c < 2 * D; ++c) dloc[c] = dloc[c] + bb2d[c];
    for (int c = 0; c < 3; ++c) tloc[c] = 0.0;
    for (int64_t k = 0; k < Hq; ++k)
      for (int c = 0; c < 3; ++c) tloc[c] = tloc[c] + hid[Hd + k] * w2q[k * 3 + c];
    for (int c = 0; c < 3; ++c) tloc[c] = tloc[c] + bb2q[c];

    double qi[3], inv[3];
    for (int k = 0; k < 3; ++k) {
      const double x = tloc[k];
      const double a = 1.0 - 2.0 / (exact_exp(2.0 * std::fabs(x), ec, nec) + 1.0);
      const double th_ = x < 0 ? -a : a;
      // q = Q0 * 2^(3 tanh t) on the grid Q0 * k / step_base: k = round(exp(tanh(t) * step_log) * step_base)
      double kk = round_even(exact_exp(th_ * step_log, ec, nec) * step_base);
      if (kk < 1.0) kk = 1.0;
      if (kk > max_k) kk = max_k;
      qi[k] = q0[k] * kk / step_base;
      qp[i * 3 + k] = qi[k];
      inv[k] = 1.0 / qi[k];
    }
    // Channels in stages over small arrays (each loop independent across channels, so the
    // compiler can vectorise and pipeline it); the operations are exact_math's, in its order.
    const double* dm = dloc;
    const double* dz = dm + D;
    double iqc[kMaxD], x[kMaxD], kf[kMaxD], r[kMaxD], p[kMaxD], e[kMaxD], u[kMaxD], sv[kMaxD];
    #pragma omp simd
    for (int64_t j = 0; j < D; ++j) iqc[j] = inv[channel_type[j]];
    #pragma omp simd
    for (int64_t j = 0; j < D; ++j) {
      const double xm = dm[j] * iqc[j] * inv_grid;
      const double rm = std::fabs(xm) < kTwo51 ? (xm + kMagic) - kMagic : xm;
      mp[i * D + j] = rm * mean_grid;
    }
    #pragma omp simd
    for (int64_t j = 0; j < D; ++j) {
      double a = -std::fabs(dz[j]);
      a = a < -700.0 ? -700.0 : a;
      x[j] = a;
      const double y = a * kLog2e + 0.5;
      const double ry = (y + kMagic) - kMagic;
      kf[j] = ry > y ? ry - 1.0 : ry;
      r[j] = (a - kf[j] * kLn2Hi) - kf[j] * kLn2Lo;
    }
    #pragma omp simd
    for (int64_t j = 0; j < D; ++j) p[j] = ec[nec - 1];
    for (int c = nec - 2; c >= 0; --c)
      #pragma omp simd
      for (int64_t j = 0; j < D; ++j) p[j] = p[j] * r[j] + ec[c];
    #pragma omp simd
    for (int64_t j = 0; j < D; ++j) {
      const double biased = kf[j] + 4503599627371519.0;  // 2^52 + 1023 + k, exact
      uint64_t bits;
      std::memcpy(&bits, &biased, sizeof(bits));
      bits <<= 52;  // the low mantissa bits (1023 + k) become the exponent field: 2^k
      double pw;
      std::memcpy(&pw, &bits, sizeof(pw));
      e[j] = p[j] * pw;
    }
    #pragma omp simd
    for (int64_t j = 0; j < D; ++j) {
      u[j] = e[j] / (2.0 + e[j]);
      x[j] = u[j] * u[j];
      p[j] = io[nio - 1];
    }
    for (int c = nio - 2; c >= 0; --c)
      #pragma omp simd
      for (int64_t j = 0; j < D; ++j) p[j] = p[j] * x[j] + io[c];
    #pragma omp simd
    for (int64_t j = 0; j < D; ++j) {
      const double sp = (dz[j] > 0.0 ? dz[j] : 0.0) + 2.0 * (u[j] * p[j]);
      sv[j] = (sp + scale_floor) * iqc[j];
    }
    #pragma omp simd
    for (int64_t j = 0; j < D; ++j) {
      // The number of thresholds 2^(b//8 + min_exponent) * oth[b % 8] that are <= s (s > 0, normal):
      // 8 per whole octave below s's binary exponent, plus the octave thresholds <= its mantissa.
      uint64_t bits;
      std::memcpy(&bits, &sv[j], sizeof(bits));
      const int64_t e = static_cast<int64_t>((bits >> 52) & 0x7FF) - 1023;
      const uint64_t mbits = (bits & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;
      double m;
      std::memcpy(&m, &mbits, sizeof(m));
      int64_t count = 8 * (e - min_exponent);
      for (int k = 0; k < 8; ++k) count += (oth[k] <= m) ? 1 : 0;
      count = count < 0 ? 0 : (count > max_bin ? max_bin : count);
      bp[i * D + j] = static_cast<uint8_t>(count);
    }
  }
  return {mean, bins, q};
}

// Stable counting sort of uint8 scale bins: (order [N] int64 such that bins[order] is ascending and
// ties keep their index order, counts [256] int64) -- what numpy's argsort(kind="stable") and
// bincount give, in one O(N) pass.
std::vector<torch::Tensor> group_by_bin(torch::Tensor bins) {
  TORCH_CHECK(bins.dtype() == torch::kUInt8 && bins.dim() == 1, "group_by_bin: 1-D uint8 bins expected");
  bins = bins.contiguous();
  const int64_t N = bins.size(0);
  const uint8_t* b = bins.data_ptr<uint8_t>();
  auto counts = torch::zeros({256}, torch::dtype(torch::kInt64));
  int64_t* c = counts.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) ++c[b[i]];
  int64_t start[256];
  int64_t acc = 0;
  for (int k = 0; k < 256; ++k) {
    start[k] = acc;
    acc += c[k];
  }
  auto order = torch::empty({N}, torch::dtype(torch::kInt64));
  int64_t* o = order.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) o[start[b[i]]++] = i;
  return {order, counts};
}

// Inverse of group_by_bin for decoded symbol indices: sorted_idx [N] int32 holds, bin after bin
// (counts [256]), each symbol's categorical index i = r + T_b (escape: 2 T_b + 1; tails [256] holds
// T_b). Returns (residuals [N] int64 in the original order, escaped positions [E] int64 ascending);
// an escaped residual is left 0 for the caller to fill.
std::vector<torch::Tensor> ungroup_symbols(torch::Tensor order, torch::Tensor sorted_idx, torch::Tensor counts,
                                           torch::Tensor tails) {
  TORCH_CHECK(order.dtype() == torch::kInt64 && sorted_idx.dtype() == torch::kInt32 && counts.dtype() == torch::kInt64 &&
                  tails.dtype() == torch::kInt64 && counts.numel() == 256 && tails.numel() == 256 &&
                  order.numel() == sorted_idx.numel(),
              "ungroup_symbols: bad arguments");
  order = order.contiguous();
  sorted_idx = sorted_idx.contiguous();
  counts = counts.contiguous();
  tails = tails.contiguous();
  const int64_t N = order.numel();
  const int64_t* o = order.data_ptr<int64_t>();
  const int32_t* s = sorted_idx.data_ptr<int32_t>();
  const int64_t* c = counts.data_ptr<int64_t>();
  const int64_t* t = tails.data_ptr<int64_t>();
  auto out = torch::empty({N}, torch::dtype(torch::kInt64));
  int64_t* r = out.data_ptr<int64_t>();
  std::vector<int64_t> escaped;
  int64_t pos = 0;
  for (int b = 0; b < 256; ++b) {
    const int64_t T = t[b], esc = 2 * t[b] + 1, end = pos + c[b];
    TORCH_CHECK(end <= N, "ungroup_symbols: counts exceed the symbols");
    for (; pos < end; ++pos) {
      const int64_t v = s[pos];
      if (v == esc) {
        r[o[pos]] = 0;
        escaped.push_back(o[pos]);
      } else {
        r[o[pos]] = v - T;
      }
    }
  }
  std::sort(escaped.begin(), escaped.end());
  auto esc_t = torch::empty({static_cast<int64_t>(escaped.size())}, torch::dtype(torch::kInt64));
  if (!escaped.empty()) std::memcpy(esc_t.data_ptr<int64_t>(), escaped.data(), escaped.size() * sizeof(int64_t));
  return {out, esc_t};
}
