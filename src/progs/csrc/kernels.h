// Declarations of progs' C++ kernels (defined in rasterize.cpp, context_exact.cpp, visibility.cpp and ssim.cpp).
#pragma once

#include <torch/extension.h>

#include <vector>

// Threads for the kernels' OpenMP loops: as many as torch uses (torch.set_num_threads, OMP_NUM_THREADS).
inline int num_threads() {
  int n = at::get_num_threads();
  return n > 0 ? n : 1;
}

std::vector<torch::Tensor> composite_forward(torch::Tensor means2d, torch::Tensor conics,
                                             torch::Tensor colors, torch::Tensor opacities,
                                             torch::Tensor depths, torch::Tensor radii,
                                             torch::Tensor background, int64_t width, int64_t height,
                                             int64_t tile, double alpha_max, double alpha_min,
                                             double t_min);
std::vector<torch::Tensor> composite_backward(
    torch::Tensor means2d, torch::Tensor conics, torch::Tensor colors, torch::Tensor opacities,
    torch::Tensor background, torch::Tensor v_image, torch::Tensor v_alpha, torch::Tensor tfinal,
    torch::Tensor last, torch::Tensor tile_offsets, torch::Tensor ids, torch::Tensor slots,
    torch::Tensor goff, int64_t width, int64_t height, int64_t tile, double alpha_max,
    double alpha_min, double t_min);
torch::Tensor hashgrid_features(torch::Tensor tables3, torch::Tensor tables2, torch::Tensor pos,
                                std::vector<int64_t> res3, std::vector<int64_t> res2);
// The constants of the exact coding path (progs.model.context builds one instance, once): the MLPs'
// leaky slope and activation grid, the base steps and attribute blocks, the scale-bin table, the
// exact_math polynomial coefficients, the step and mean grids.
struct CodingConstants {
  double leaky = 0.0, act_clamp = 0.0, act_grid = 0.0;
  std::vector<double> q0;
  std::vector<int64_t> attr_dims;
  std::vector<double> octave_thresholds;
  int64_t min_exponent = 0, num_bins = 0;
  std::vector<double> exp_coeffs, inv_odd;
  int64_t step_levels = 0;
  double step_base = 0.0, step_log = 0.0;
  double mean_grid = 0.0, scale_floor = 0.0;
};
std::vector<torch::Tensor> coding_params(torch::Tensor h, torch::Tensor terms, torch::Tensor w1t, torch::Tensor b1,
                                         torch::Tensor w2dt, torch::Tensor b2d, torch::Tensor w2qt, torch::Tensor b2q,
                                         const CodingConstants& constants);
std::vector<torch::Tensor> group_by_bin(torch::Tensor bins);
std::vector<torch::Tensor> ungroup_symbols(torch::Tensor order, torch::Tensor sorted_idx, torch::Tensor counts,
                                           torch::Tensor tails);
// The never-drawn rule (progs.model.visibility.hidden_gaussians) fused over anchors and probe cameras.
torch::Tensor hidden_rule(torch::Tensor pos, torch::Tensor fixed, torch::Tensor cams, torch::Tensor w_view,
                          torch::Tensor w_dist, torch::Tensor w2, torch::Tensor b2, double dist_scale,
                          double input_scale, double input_limit, double hidden_scale, double hidden_limit,
                          double threshold);
// The training loss's SSIM against a fixed target, fused (progs.train.losses.ssim_loss_map).
std::vector<torch::Tensor> ssim_forward(torch::Tensor x, torch::Tensor y, torch::Tensor window);
torch::Tensor ssim_backward(torch::Tensor grad, torch::Tensor x, torch::Tensor y, torch::Tensor stats,
                            torch::Tensor window);
