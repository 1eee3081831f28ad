"""Evaluation: image metrics, per-LoD tables, rate-distortion curves and benchmarks."""
