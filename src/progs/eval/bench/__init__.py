"""``progs bench``: reproducible benchmark suites (rate-distortion, baselines, bitstream, speed,
scaling, ablation, rasterizer) writing JSON, PNG plots and a Markdown summary. See ``runner``."""

from progs.eval.bench.runner import SUITES, run_bench

__all__ = ["SUITES", "run_bench"]
