"""``progs bench``: reproducible benchmark suites (rate-distortion, baselines, bitstream, speed,
scaling, ablation, rasterizer) writing JSON, PNG plots and a Markdown summary; entry point
:func:`progs.bench.runner.run_bench`."""
