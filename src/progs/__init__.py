"""progs: progressive, streamable coding of 3D Gaussian Splatting scenes (after ProGS)."""

__version__ = "0.1.0"
