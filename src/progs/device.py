"""Where training and rendering run: the ``--device`` option as a :class:`torch.device`.

``auto`` is CUDA when :func:`torch.cuda.is_available`, else the CPU; ``cuda`` (or ``cuda:N``) on a
machine without CUDA is a one-line :class:`DeviceError`. Coding never uses this: the encoder and the
decoder always run on the CPU (float64 exact paths), so streams do not depend on the training device.

Random draws follow one rule: a :class:`torch.Generator` lives on a device and its draws are made
there (:func:`uniform`) and then moved to where they are used, so a CPU run is bit-identical whether
or not it could have used a GPU.
"""

from __future__ import annotations

import torch
from torch import nn

from progs.errors import ProgsError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
CPU = torch.device("cpu")


class DeviceError(ProgsError):
    """A device was asked for that this machine does not have."""


def cuda_available() -> bool:
    """Whether PyTorch can use a CUDA GPU here (one place, so tests can pretend either way)."""
    return torch.cuda.is_available()


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` (or a :class:`torch.device`) as a device this machine has.

    ``None`` means ``auto``. Raises :class:`DeviceError` for an unknown name or a CUDA device that is
    not available."""
    if name is None or name == "auto":
        return torch.device("cuda") if cuda_available() else CPU
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {name!r} (use {', '.join(DEVICE_CHOICES)})") from None
    if device.type == "cpu":
        return CPU
    if device.type != "cuda":
        raise DeviceError(f"unsupported device {str(device)!r} (use {', '.join(DEVICE_CHOICES)})")
    if not cuda_available():
        raise DeviceError(
            f"--device {device}: CUDA is not available on this machine "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'no'}); use --device cpu"
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for a module without tensors)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return CPU


def uniform(shape: tuple[int, ...] | torch.Size, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """U[0, 1) float32 of ``shape`` drawn by ``gen`` on its own device, placed on ``device``."""
    return torch.rand(shape, generator=gen, device=gen.device).to(device)


def randperm(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """A random permutation of ``0..n-1`` (int64) drawn by ``gen`` on its own device, placed on ``device``."""
    return torch.randperm(n, generator=gen, device=gen.device).to(device)


def randint(high: int, shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform int64 in ``0..high-1`` of ``shape`` drawn by ``gen`` on its own device, placed on ``device``."""
    return torch.randint(0, high, shape, generator=gen, device=gen.device).to(device)
