// Python bindings of progs' C++ kernels (one extension module: progs._kernels, built by setup.py when
// the package is installed, or progs_kernels, built by progs.kernels on first use).
#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "progs C++ kernels: CPU Gaussian compositing (forward, backward), exact hash-grid features, fused SSIM";
#ifdef PROGS_BUILD_DIGEST
  // what the module was built from (progs.kernels.build_digest): a prebuilt module is used only if it matches
  m.attr("build_digest") = static_cast<unsigned long long>(PROGS_BUILD_DIGEST);
#endif
  m.def("forward", &composite_forward,
        "composite projected Gaussians: returns image, alpha, T_final, last, tile_offsets, ids, slots, goff");
  m.def("backward", &composite_backward, "gradients w.r.t. means2d, conics, colors, opacities");
  // These take and return tensors only: they run without the GIL, so other Python threads (a
  // viewer's web server, say) keep running while a stream decodes.
  const auto nogil = pybind11::call_guard<pybind11::gil_scoped_release>();
  m.def("hashgrid_features", &hashgrid_features, nogil,
        "exact float64 hash-grid interpolation snapped to 2^-12 (the context model's coding path)");
  pybind11::class_<CodingConstants>(m, "CodingConstants", pybind11::module_local(), "the constants of the exact coding path")
      .def(pybind11::init<>())
      .def_readwrite("leaky", &CodingConstants::leaky)
      .def_readwrite("act_clamp", &CodingConstants::act_clamp)
      .def_readwrite("act_grid", &CodingConstants::act_grid)
      .def_readwrite("q0", &CodingConstants::q0)
      .def_readwrite("attr_dims", &CodingConstants::attr_dims)
      .def_readwrite("octave_thresholds", &CodingConstants::octave_thresholds)
      .def_readwrite("min_exponent", &CodingConstants::min_exponent)
      .def_readwrite("num_bins", &CodingConstants::num_bins)
      .def_readwrite("exp_coeffs", &CodingConstants::exp_coeffs)
      .def_readwrite("inv_odd", &CodingConstants::inv_odd)
      .def_readwrite("step_levels", &CodingConstants::step_levels)
      .def_readwrite("step_base", &CodingConstants::step_base)
      .def_readwrite("step_log", &CodingConstants::step_log)
      .def_readwrite("mean_grid", &CodingConstants::mean_grid)
      .def_readwrite("scale_floor", &CodingConstants::scale_floor);
  m.def("coding_params", &coding_params, nogil,
        "the context MLPs fused with the exact steps, snapped means (symbol units) and scale bins");
  m.def("hidden_rule", &hidden_rule, nogil,
        "the never-drawn rule: [N, K] bool, opacity logit below the threshold from every probe camera (exact)");
  m.def("ssim_forward", &ssim_forward, nogil,
        "per-pixel SSIM of [C, H, W] images (separable Gaussian window, zero padding) and the filtered statistics");
  m.def("ssim_backward", &ssim_backward, nogil, "gradient of ssim_forward's map with respect to its first image");
  m.def("group_by_bin", &group_by_bin, nogil, "stable counting sort of uint8 scale bins: (order, counts)");
  m.def("ungroup_symbols", &ungroup_symbols, nogil,
        "decoded categorical indices, grouped by bin, back to residuals in anchor order (+ escaped positions)");
}
