// CPU compositing of projected 3D Gaussians: gsplat's tile algorithm with OpenMP, forward and a
// hand-written backward.
//
// The semantics are exactly those of progs.render.reference.composite_reference (the test oracle):
//  * a Gaussian is considered for a pixel only if the pixel's tile lies in the Gaussian's tile
//    rectangle (progs.render.projection.tile_bounds, computed here with the same arithmetic);
//  * per tile, Gaussians are visited front to back in stable depth order (ties by index);
//  * sigma = 0.5 (A dx^2 + C dy^2) + B dx dy with dx = mean - pixel centre; sigma < 0 is skipped;
//  * alpha = min(ALPHA_MAX, opacity * exp(-sigma)); alpha < ALPHA_MIN is skipped;
//  * compositing stops (without drawing) at the first Gaussian for which T * (1 - alpha) <= T_MIN.
//
// Forward: per-Gaussian data are packed once; intersections (tile, Gaussian) are binned with a
// counting sort over tiles after one global stable radix sort by depth, so each tile's list is
// depth ordered. Each tile keeps per-pixel state and visits its Gaussians (outer loop) over the
// pixels of the Gaussian's exact support box inside the tile (inner loop): pixels outside the box
// have opacity * exp(-sigma) < ALPHA_MIN by a safety margin, so the reference skips them too.
// Backward walks each tile back to front (like gsplat's rasterize_to_pixels_bwd), recovering T by
// division, and writes each intersection's gradient into its own slot (no atomics, deterministic);
// slots are laid out Gaussian-major so the final reduction is a contiguous sum per Gaussian.

#include <torch/extension.h>

#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr int kPack = 8;  // mx, my, A, B, C, opacity, half-extent x, half-extent y

struct Params {
  int64_t width, height, tile, tiles_x, tiles_y;
  double alpha_max, alpha_min, t_min;
};

// Stable sort of `idx` by key: LSD radix sort for float keys, std::stable_sort otherwise.
template <typename scalar_t>
void stable_sort_by_depth(std::vector<int32_t>& idx, const scalar_t* depth) {
  if constexpr (std::is_same<scalar_t, float>::value) {
    const size_t n = idx.size();
    if (n < 64) {
      std::stable_sort(idx.begin(), idx.end(),
                       [&](int32_t a, int32_t b) { return depth[a] < depth[b]; });
      return;
    }
    std::vector<uint32_t> key(n), key2(n);
    std::vector<int32_t> idx2(n);
    for (size_t i = 0; i < n; ++i) {
      float d = depth[idx[i]];
      if (d == 0.0f) d = 0.0f;  // -0 == +0 for the comparison sort too
      uint32_t u;
      std::memcpy(&u, &d, 4);
      key[i] = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    }
    for (int shift = 0; shift < 32; shift += 8) {
      size_t count[257] = {0};
      for (size_t i = 0; i < n; ++i) count[((key[i] >> shift) & 255u) + 1]++;
      for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
      for (size_t i = 0; i < n; ++i) {
        size_t pos = count[(key[i] >> shift) & 255u]++;
        key2[pos] = key[i];
        idx2[pos] = idx[i];
      }
      key.swap(key2);
      idx.swap(idx2);
    }
  } else {
    std::stable_sort(idx.begin(), idx.end(),
                     [&](int32_t a, int32_t b) { return depth[a] < depth[b]; });
  }
}

template <typename scalar_t>
void pack_gaussians(const scalar_t* means2d, const scalar_t* conics, const scalar_t* opac,
                    int64_t N, const Params& P, scalar_t* pack) {
  const double inf = std::numeric_limits<double>::infinity();
  const scalar_t amin = static_cast<scalar_t>(P.alpha_min);
  at::parallel_for(0, N, 2048, [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; ++g) {
      scalar_t* q = pack + g * kPack;
      const scalar_t A = conics[3 * g], B = conics[3 * g + 1], C = conics[3 * g + 2];
      const scalar_t op = opac[g];
      q[0] = means2d[2 * g];
      q[1] = means2d[2 * g + 1];
      q[2] = A;
      q[3] = B;
      q[4] = C;
      q[5] = op;
      double ex, ey;
      if (!(op >= amin)) {
        ex = ey = -1.0;  // op * exp(-sigma) <= op < ALPHA_MIN everywhere: never drawn
      } else {
        const double s = std::log(static_cast<double>(op) / static_cast<double>(amin));
        const double a = A, bb = B, c = C;
        const double det = a * c - bb * bb;
        if (a > 0 && c > 0 && det > 0 && std::isfinite(det) && std::isfinite(s)) {
          // {d : 0.5 d^T Q d <= s} has half-extents sqrt(2 s Sigma_xx), sqrt(2 s Sigma_yy).
          ex = std::sqrt(2.0 * std::max(s, 0.0) * (c / det)) * 1.02 + 1.0;
          ey = std::sqrt(2.0 * std::max(s, 0.0) * (a / det)) * 1.02 + 1.0;
          if (!std::isfinite(ex)) ex = inf;
          if (!std::isfinite(ey)) ey = inf;
        } else {
          ex = ey = inf;  // not positive definite: evaluate the whole tile rectangle
        }
      }
      q[6] = static_cast<scalar_t>(ex);
      q[7] = static_cast<scalar_t>(ey);
    }
  });
}

// The pixel range [lo, hi] (inclusive) of the support box of a Gaussian clipped to [t0, t1).
inline void box_range(double m, double ext, int64_t t0, int64_t t1, int64_t& lo, int64_t& hi) {
  if (ext < 0) {
    lo = 1;
    hi = 0;
    return;
  }
  double l = std::ceil(m - ext - 0.5), h = std::floor(m + ext - 0.5);
  if (!(l > static_cast<double>(t0))) l = static_cast<double>(t0);
  if (!(h < static_cast<double>(t1 - 1))) h = static_cast<double>(t1 - 1);
  lo = static_cast<int64_t>(l);
  hi = static_cast<int64_t>(h);
}

struct Binning {
  torch::Tensor tile_offsets;  // [T + 1] int64
  torch::Tensor ids;           // [I] int32, Gaussian per intersection, tile-major, depth ordered
  torch::Tensor slots;         // [I] int64, Gaussian-major slot of the intersection
  torch::Tensor goff;          // [N + 1] int64, slot offsets per Gaussian
};

template <typename scalar_t>
Binning bin_gaussians(const scalar_t* means2d, const scalar_t* depths, const int32_t* radii,
                      int64_t N, const Params& P) {
  const int64_t T = P.tiles_x * P.tiles_y;
  std::vector<int32_t> rect(4 * N, 0);
  auto goff_t = torch::zeros({N + 1}, torch::kInt64);
  int64_t* goff = goff_t.data_ptr<int64_t>();
  std::vector<int32_t> order;
  order.reserve(N);
  const scalar_t ts = static_cast<scalar_t>(P.tile);
  for (int64_t g = 0; g < N; ++g) {
    int64_t cnt = 0;
    if (radii[g] > 0) {
      order.push_back(static_cast<int32_t>(g));
      // Same float arithmetic as projection.tile_bounds.
      const scalar_t r = static_cast<scalar_t>(radii[g]);
      const scalar_t mx = means2d[2 * g], my = means2d[2 * g + 1];
      auto cl = [](scalar_t v, int64_t hi) {
        const scalar_t h = static_cast<scalar_t>(hi);
        if (!(v > 0)) v = 0;  // also maps NaN to 0 (an empty rectangle)
        if (v > h) v = h;
        return static_cast<int32_t>(v);
      };
      const int32_t x0 = cl(std::floor((mx - r) / ts), P.tiles_x);
      const int32_t x1 = cl(std::ceil((mx + r) / ts), P.tiles_x);
      const int32_t y0 = cl(std::floor((my - r) / ts), P.tiles_y);
      const int32_t y1 = cl(std::ceil((my + r) / ts), P.tiles_y);
      rect[4 * g] = x0;
      rect[4 * g + 1] = y0;
      rect[4 * g + 2] = x1;
      rect[4 * g + 3] = y1;
      if (x1 > x0 && y1 > y0) cnt = static_cast<int64_t>(x1 - x0) * (y1 - y0);
    }
    goff[g + 1] = goff[g] + cnt;
  }
  const int64_t I = goff[N];
  stable_sort_by_depth<scalar_t>(order, depths);

  auto toff_t = torch::zeros({T + 1}, torch::kInt64);
  int64_t* toff = toff_t.data_ptr<int64_t>();
  for (int32_t g : order) {
    const int32_t* rc = &rect[4 * g];
    for (int32_t ty = rc[1]; ty < rc[3]; ++ty)
      for (int32_t tx = rc[0]; tx < rc[2]; ++tx) toff[ty * P.tiles_x + tx + 1]++;
  }
  for (int64_t t = 0; t < T; ++t) toff[t + 1] += toff[t];
  auto ids_t = torch::empty({I}, torch::kInt32);
  auto slots_t = torch::empty({I}, torch::kInt64);
  int32_t* ids = ids_t.data_ptr<int32_t>();
  int64_t* slots = slots_t.data_ptr<int64_t>();
  std::vector<int64_t> cursor(toff, toff + T);
  for (int32_t g : order) {
    const int32_t* rc = &rect[4 * g];
    int64_t s = goff[g];
    for (int32_t ty = rc[1]; ty < rc[3]; ++ty)
      for (int32_t tx = rc[0]; tx < rc[2]; ++tx) {
        const int64_t pos = cursor[ty * P.tiles_x + tx]++;
        ids[pos] = g;
        slots[pos] = s++;
      }
  }
  return {toff_t, ids_t, slots_t, goff_t};
}

Params make_params(int64_t width, int64_t height, int64_t tile, double alpha_max,
                   double alpha_min, double t_min) {
  TORCH_CHECK(width > 0 && height > 0, "image size must be positive");
  TORCH_CHECK(tile > 0 && tile <= 64, "tile size must be in 1..64");
  Params P;
  P.width = width;
  P.height = height;
  P.tile = tile;
  P.tiles_x = (width + tile - 1) / tile;
  P.tiles_y = (height + tile - 1) / tile;
  P.alpha_max = alpha_max;
  P.alpha_min = alpha_min;
  P.t_min = t_min;
  return P;
}

void check_inputs(const torch::Tensor& means2d, const torch::Tensor& conics,
                  const torch::Tensor& colors, const torch::Tensor& opacities,
                  const torch::Tensor& background) {
  const int64_t N = means2d.size(0);
  TORCH_CHECK(means2d.dim() == 2 && means2d.size(1) == 2, "means2d must be [N, 2]");
  TORCH_CHECK(conics.dim() == 2 && conics.size(0) == N && conics.size(1) == 3, "conics must be [N, 3]");
  TORCH_CHECK(colors.dim() == 2 && colors.size(0) == N, "colors must be [N, C]");
  TORCH_CHECK(opacities.dim() == 1 && opacities.size(0) == N, "opacities must be [N]");
  TORCH_CHECK(background.dim() == 1 && background.size(0) == colors.size(1), "background must be [C]");
  for (const auto* t : {&means2d, &conics, &colors, &opacities, &background}) {
    TORCH_CHECK(t->is_contiguous() && t->device().is_cpu(), "inputs must be contiguous CPU tensors");
    TORCH_CHECK(t->scalar_type() == means2d.scalar_type(), "inputs must share one floating dtype");
  }
}

template <typename scalar_t>
std::vector<torch::Tensor> forward_impl(const torch::Tensor& means2d, const torch::Tensor& conics,
                                        const torch::Tensor& colors, const torch::Tensor& opacities,
                                        const torch::Tensor& depths, const torch::Tensor& radii,
                                        const torch::Tensor& background, const Params& P) {
  const int64_t N = means2d.size(0), C = colors.size(1), W = P.width, H = P.height;
  const auto opts = means2d.options();
  const scalar_t* m2 = means2d.data_ptr<scalar_t>();
  const scalar_t* col = colors.data_ptr<scalar_t>();
  const scalar_t* bg = background.data_ptr<scalar_t>();

  Binning bins = bin_gaussians<scalar_t>(m2, depths.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(), N, P);
  std::vector<scalar_t> pack(static_cast<size_t>(N) * kPack);
  pack_gaussians<scalar_t>(m2, conics.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(), N, P, pack.data());

  auto image_t = torch::empty({H, W, C}, opts);
  auto alpha_t = torch::empty({H, W, 1}, opts);
  auto tfinal_t = torch::empty({H, W}, opts);
  auto last_t = torch::empty({H, W}, opts.dtype(torch::kInt32));
  scalar_t* image = image_t.data_ptr<scalar_t>();
  scalar_t* alpha_out = alpha_t.data_ptr<scalar_t>();
  scalar_t* tfinal = tfinal_t.data_ptr<scalar_t>();
  int32_t* last_out = last_t.data_ptr<int32_t>();
  const int64_t* toff = bins.tile_offsets.data_ptr<int64_t>();
  const int32_t* ids = bins.ids.data_ptr<int32_t>();

  const scalar_t amax = static_cast<scalar_t>(P.alpha_max);
  const scalar_t amin = static_cast<scalar_t>(P.alpha_min);
  const scalar_t tmin = static_cast<scalar_t>(P.t_min);
  const int64_t ntiles = P.tiles_x * P.tiles_y, ts = P.tile, npx = ts * ts;

#pragma omp parallel num_threads(num_threads())
  {
    std::vector<scalar_t> Tp(npx), acc(npx * C);
    std::vector<int32_t> last(npx);
    std::vector<uint8_t> done(npx);
#pragma omp for schedule(dynamic, 1)
    for (int64_t tile = 0; tile < ntiles; ++tile) {
      const int64_t tx0 = (tile % P.tiles_x) * ts, ty0 = (tile / P.tiles_x) * ts;
      const int64_t tx1 = std::min(tx0 + ts, W), ty1 = std::min(ty0 + ts, H);
      const int64_t live_total = (tx1 - tx0) * (ty1 - ty0);
      std::fill(Tp.begin(), Tp.end(), scalar_t(1));
      std::fill(acc.begin(), acc.end(), scalar_t(0));
      std::fill(last.begin(), last.end(), 0);
      std::fill(done.begin(), done.end(), 0);
      int64_t ndone = 0;
      const int64_t start = toff[tile], end = toff[tile + 1];
      for (int64_t k = start; k < end && ndone < live_total; ++k) {
        const int32_t g = ids[k];
        const scalar_t* q = &pack[static_cast<size_t>(g) * kPack];
        const scalar_t mx = q[0], my = q[1], A = q[2], B = q[3], Cc = q[4], op = q[5];
        int64_t bx0, bx1, by0, by1;
        box_range(mx, q[6], tx0, tx1, bx0, bx1);
        box_range(my, q[7], ty0, ty1, by0, by1);
        const scalar_t* cg = col + static_cast<int64_t>(g) * C;
        const int32_t kk = static_cast<int32_t>(k - start + 1);
        for (int64_t y = by0; y <= by1; ++y) {
          const scalar_t dy = my - (static_cast<scalar_t>(y) + scalar_t(0.5));
          const int64_t row = (y - ty0) * ts - tx0;
          for (int64_t x = bx0; x <= bx1; ++x) {
            const int64_t p = row + x;
            if (done[p]) continue;
            const scalar_t dx = mx - (static_cast<scalar_t>(x) + scalar_t(0.5));
            const scalar_t sigma = scalar_t(0.5) * (A * dx * dx + Cc * dy * dy) + B * dx * dy;
            if (sigma < 0) continue;
            const scalar_t a = std::min(amax, op * std::exp(-sigma));
            if (!(a >= amin)) continue;
            const scalar_t t = Tp[p];
            const scalar_t nt = t * (scalar_t(1) - a);
            if (nt <= tmin) {
              done[p] = 1;
              ++ndone;
              continue;
            }
            const scalar_t w = a * t;
            scalar_t* ap = &acc[p * C];
            for (int64_t c = 0; c < C; ++c) ap[c] += w * cg[c];
            Tp[p] = nt;
            last[p] = kk;
          }
        }
      }
      for (int64_t y = ty0; y < ty1; ++y)
        for (int64_t x = tx0; x < tx1; ++x) {
          const int64_t p = (y - ty0) * ts + (x - tx0), o = y * W + x;
          const scalar_t t = Tp[p];
          for (int64_t c = 0; c < C; ++c) image[o * C + c] = acc[p * C + c] + t * bg[c];
          alpha_out[o] = scalar_t(1) - t;
          tfinal[o] = t;
          last_out[o] = last[p];
        }
    }
  }
  return {image_t, alpha_t, tfinal_t, last_t, bins.tile_offsets, bins.ids, bins.slots, bins.goff};
}

template <typename scalar_t>
std::vector<torch::Tensor> backward_impl(
    const torch::Tensor& means2d, const torch::Tensor& conics, const torch::Tensor& colors,
    const torch::Tensor& opacities, const torch::Tensor& background, const torch::Tensor& v_image,
    const torch::Tensor& v_alpha, const torch::Tensor& tfinal_t, const torch::Tensor& last_t,
    const torch::Tensor& toff_t, const torch::Tensor& ids_t, const torch::Tensor& slots_t,
    const torch::Tensor& goff_t, const Params& P) {
  const int64_t N = means2d.size(0), C = colors.size(1), W = P.width;
  const int64_t H = P.height;
  const auto opts = means2d.options();
  const scalar_t* col = colors.data_ptr<scalar_t>();
  const scalar_t* bg = background.data_ptr<scalar_t>();
  const scalar_t* vimg = v_image.data_ptr<scalar_t>();
  const scalar_t* valpha = v_alpha.data_ptr<scalar_t>();
  const scalar_t* tfinal = tfinal_t.data_ptr<scalar_t>();
  const int32_t* last_in = last_t.data_ptr<int32_t>();
  const int64_t* toff = toff_t.data_ptr<int64_t>();
  const int32_t* ids = ids_t.data_ptr<int32_t>();
  const int64_t* slots = slots_t.data_ptr<int64_t>();
  const int64_t* goff = goff_t.data_ptr<int64_t>();
  const int64_t I = ids_t.size(0);
  const int64_t G = 6 + C;  // per slot: mx, my, A, B, C, opacity, colours

  std::vector<scalar_t> pack(static_cast<size_t>(N) * kPack);
  pack_gaussians<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                           opacities.data_ptr<scalar_t>(), N, P, pack.data());
  std::vector<scalar_t> gbuf(static_cast<size_t>(I) * G, scalar_t(0));

  const scalar_t amax = static_cast<scalar_t>(P.alpha_max);
  const scalar_t amin = static_cast<scalar_t>(P.alpha_min);
  const int64_t ntiles = P.tiles_x * P.tiles_y, ts = P.tile, npx = ts * ts;

#pragma omp parallel num_threads(num_threads())
  {
    std::vector<scalar_t> Tp(npx), Tf(npx), buf(npx * C), vi(npx * C), vfin(npx), vc(C);
    std::vector<int32_t> last(npx);
#pragma omp for schedule(dynamic, 1)
    for (int64_t tile = 0; tile < ntiles; ++tile) {
      const int64_t start = toff[tile], end = toff[tile + 1];
      if (start == end) continue;
      const int64_t tx0 = (tile % P.tiles_x) * ts, ty0 = (tile / P.tiles_x) * ts;
      const int64_t tx1 = std::min(tx0 + ts, W), ty1 = std::min(ty0 + ts, H);
      int32_t maxlast = 0;
      std::fill(last.begin(), last.end(), 0);
      for (int64_t y = ty0; y < ty1; ++y)
        for (int64_t x = tx0; x < tx1; ++x) {
          const int64_t p = (y - ty0) * ts + (x - tx0), o = y * W + x;
          last[p] = last_in[o];
          maxlast = std::max(maxlast, last[p]);
          Tp[p] = Tf[p] = tfinal[o];
          scalar_t bgdot = 0;
          for (int64_t c = 0; c < C; ++c) {
            vi[p * C + c] = vimg[o * C + c];
            bgdot += bg[c] * vimg[o * C + c];
            buf[p * C + c] = 0;
          }
          // d loss / d T_final, times T_final (d T_final / d alpha_i = -T_final / (1 - alpha_i)).
          vfin[p] = tfinal[o] * (valpha[o] - bgdot);
        }
      for (int64_t k = start + maxlast - 1; k >= start; --k) {
        const int32_t kk = static_cast<int32_t>(k - start);
        const int32_t g = ids[k];
        const scalar_t* q = &pack[static_cast<size_t>(g) * kPack];
        const scalar_t mx = q[0], my = q[1], A = q[2], B = q[3], Cc = q[4], op = q[5];
        int64_t bx0, bx1, by0, by1;
        box_range(mx, q[6], tx0, tx1, bx0, bx1);
        box_range(my, q[7], ty0, ty1, by0, by1);
        const scalar_t* cg = col + static_cast<int64_t>(g) * C;
        scalar_t g_mx = 0, g_my = 0, g_A = 0, g_B = 0, g_C = 0, g_op = 0;
        std::fill(vc.begin(), vc.end(), scalar_t(0));
        bool any = false;
        for (int64_t y = by0; y <= by1; ++y) {
          const scalar_t dy = my - (static_cast<scalar_t>(y) + scalar_t(0.5));
          const int64_t row = (y - ty0) * ts - tx0;
          for (int64_t x = bx0; x <= bx1; ++x) {
            const int64_t p = row + x;
            if (kk >= last[p]) continue;
            const scalar_t dx = mx - (static_cast<scalar_t>(x) + scalar_t(0.5));
            const scalar_t sigma = scalar_t(0.5) * (A * dx * dx + Cc * dy * dy) + B * dx * dy;
            if (sigma < 0) continue;
            const scalar_t vis = std::exp(-sigma);
            const scalar_t raw = op * vis;
            const scalar_t a = std::min(amax, raw);
            if (!(a >= amin)) continue;
            any = true;
            const scalar_t ra = scalar_t(1) / (scalar_t(1) - a);
            const scalar_t t = Tp[p] * ra;  // transmittance before this Gaussian
            Tp[p] = t;
            const scalar_t fac = a * t;
            const scalar_t* vip = &vi[p * C];
            scalar_t* bp = &buf[p * C];
            scalar_t v_a = vfin[p] * ra;
            for (int64_t c = 0; c < C; ++c) {
              vc[c] += fac * vip[c];
              v_a += (cg[c] * t - bp[c] * ra) * vip[c];
              bp[c] += cg[c] * fac;
            }
            if (raw <= amax) {
              const scalar_t v_sigma = -raw * v_a;
              g_A += scalar_t(0.5) * v_sigma * dx * dx;
              g_B += v_sigma * dx * dy;
              g_C += scalar_t(0.5) * v_sigma * dy * dy;
              g_mx += v_sigma * (A * dx + B * dy);
              g_my += v_sigma * (B * dx + Cc * dy);
              g_op += vis * v_a;
            }
          }
        }
        if (any) {
          scalar_t* o = &gbuf[static_cast<size_t>(slots[k]) * G];
          o[0] = g_mx;
          o[1] = g_my;
          o[2] = g_A;
          o[3] = g_B;
          o[4] = g_C;
          o[5] = g_op;
          for (int64_t c = 0; c < C; ++c) o[6 + c] = vc[c];
        }
      }
    }
  }

  auto v_means2d = torch::zeros({N, 2}, opts);
  auto v_conics = torch::zeros({N, 3}, opts);
  auto v_colors = torch::zeros({N, C}, opts);
  auto v_opac = torch::zeros({N}, opts);
  scalar_t* vm = v_means2d.data_ptr<scalar_t>();
  scalar_t* vq = v_conics.data_ptr<scalar_t>();
  scalar_t* vcol = v_colors.data_ptr<scalar_t>();
  scalar_t* vo = v_opac.data_ptr<scalar_t>();
  at::parallel_for(0, N, 1024, [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; ++g)
      for (int64_t s = goff[g]; s < goff[g + 1]; ++s) {
        const scalar_t* r = &gbuf[static_cast<size_t>(s) * G];
        vm[2 * g] += r[0];
        vm[2 * g + 1] += r[1];
        vq[3 * g] += r[2];
        vq[3 * g + 1] += r[3];
        vq[3 * g + 2] += r[4];
        vo[g] += r[5];
        for (int64_t c = 0; c < C; ++c) vcol[g * C + c] += r[6 + c];
      }
  });
  return {v_means2d, v_conics, v_colors, v_opac};
}

}  // namespace

std::vector<torch::Tensor> composite_forward(torch::Tensor means2d, torch::Tensor conics,
                                             torch::Tensor colors, torch::Tensor opacities,
                                             torch::Tensor depths, torch::Tensor radii,
                                             torch::Tensor background, int64_t width, int64_t height,
                                             int64_t tile, double alpha_max, double alpha_min,
                                             double t_min) {
  check_inputs(means2d, conics, colors, opacities, background);
  TORCH_CHECK(depths.dim() == 1 && depths.size(0) == means2d.size(0) && depths.is_contiguous() &&
                  depths.scalar_type() == means2d.scalar_type(),
              "depths must be a contiguous [N] tensor of the inputs' dtype");
  TORCH_CHECK(radii.dim() == 1 && radii.size(0) == means2d.size(0) && radii.is_contiguous() &&
                  radii.scalar_type() == torch::kInt32,
              "radii must be a contiguous [N] int32 tensor");
  TORCH_CHECK(means2d.size(0) < std::numeric_limits<int32_t>::max(), "too many Gaussians");
  const Params P = make_params(width, height, tile, alpha_max, alpha_min, t_min);
  if (means2d.scalar_type() == torch::kFloat64)
    return forward_impl<double>(means2d, conics, colors, opacities, depths, radii, background, P);
  TORCH_CHECK(means2d.scalar_type() == torch::kFloat32, "inputs must be float32 or float64");
  return forward_impl<float>(means2d, conics, colors, opacities, depths, radii, background, P);
}

std::vector<torch::Tensor> composite_backward(
    torch::Tensor means2d, torch::Tensor conics, torch::Tensor colors, torch::Tensor opacities,
    torch::Tensor background, torch::Tensor v_image, torch::Tensor v_alpha, torch::Tensor tfinal,
    torch::Tensor last, torch::Tensor tile_offsets, torch::Tensor ids, torch::Tensor slots,
    torch::Tensor goff, int64_t width, int64_t height, int64_t tile, double alpha_max,
    double alpha_min, double t_min) {
  check_inputs(means2d, conics, colors, opacities, background);
  const Params P = make_params(width, height, tile, alpha_max, alpha_min, t_min);
  TORCH_CHECK(v_image.is_contiguous() && v_image.numel() == height * width * colors.size(1) &&
                  v_image.scalar_type() == means2d.scalar_type(),
              "v_image must be a contiguous [H, W, C] tensor");
  TORCH_CHECK(v_alpha.is_contiguous() && v_alpha.numel() == height * width &&
                  v_alpha.scalar_type() == means2d.scalar_type(),
              "v_alpha must be a contiguous [H, W, 1] tensor");
  TORCH_CHECK(tile_offsets.numel() == P.tiles_x * P.tiles_y + 1, "tile_offsets do not match the image");
  if (means2d.scalar_type() == torch::kFloat64)
    return backward_impl<double>(means2d, conics, colors, opacities, background, v_image, v_alpha,
                                 tfinal, last, tile_offsets, ids, slots, goff, P);
  TORCH_CHECK(means2d.scalar_type() == torch::kFloat32, "inputs must be float32 or float64");
  return backward_impl<float>(means2d, conics, colors, opacities, background, v_image, v_alpha,
                              tfinal, last, tile_offsets, ids, slots, goff, P);
}
