"""C++/OpenMP compositing kernel (placeholder until the kernel lands: reports unavailable)."""

from __future__ import annotations


def kernel_available() -> bool:
    return False
