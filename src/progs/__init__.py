"""progs: progressive, streamable coding of 3D Gaussian Splatting scenes (after ProGS).

The names a user needs, imported on first use so that ``import progs`` stays light::

    import progs

    scene = progs.load_scene("demo")  # or a COLMAP / transforms.json folder
    trainer = progs.Trainer(scene, progs.TrainConfig(iterations=600, levels=4))
    trainer.train()
    stream = progs.encode(trainer.model, background=scene.background)
    decoded = progs.decode(stream.data, max_lod=2)  # header + LoD 1..2
    progs.write_cloud("lod2.ply", progs.export_cloud(decoded.model))

Every name here is a re-export; the modules named in ``_WHERE`` hold the code and its documentation.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_WHERE = {
    # scenes
    "load_scene": "progs.io",
    "Scene": "progs.scene",
    "Camera": "progs.scene",
    "DatasetSpec": "progs.io.dataset",
    # training
    "TrainConfig": "progs.train.config",
    "Trainer": "progs.train.trainer",
    "ProGSModel": "progs.model.model",
    # coding
    "encode": "progs.codec.stream",
    "decode": "progs.codec.stream",
    "EncodeResult": "progs.codec.stream",
    "DecodeResult": "progs.codec.stream",
    "FormatError": "progs.codec.errors",
    # streaming
    "StreamClient": "progs.stream.client",
    # plain 3D Gaussians (splat files)
    "GaussianCloud": "progs.io.ply",
    "read_ply": "progs.io.ply",
    "read_splats": "progs.io.splats",
    "write_cloud": "progs.io.writers",
    "export_cloud": "progs.pipeline",
    "DistillConfig": "progs.train.distill",
    "fit_splats": "progs.fitting",
    # errors
    "ProgsError": "progs.errors",
    "InputError": "progs.errors",
}

__all__ = [
    "__version__",
    "load_scene",
    "Scene",
    "Camera",
    "DatasetSpec",
    "TrainConfig",
    "Trainer",
    "ProGSModel",
    "encode",
    "decode",
    "EncodeResult",
    "DecodeResult",
    "FormatError",
    "StreamClient",
    "GaussianCloud",
    "read_ply",
    "read_splats",
    "write_cloud",
    "export_cloud",
    "DistillConfig",
    "fit_splats",
    "ProgsError",
    "InputError",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use (__getattr__)
    from progs.codec.errors import FormatError
    from progs.codec.stream import DecodeResult, EncodeResult, decode, encode
    from progs.errors import InputError, ProgsError
    from progs.fitting import fit_splats
    from progs.io import load_scene
    from progs.io.dataset import DatasetSpec
    from progs.io.ply import GaussianCloud, read_ply
    from progs.io.splats import read_splats
    from progs.io.writers import write_cloud
    from progs.model.model import ProGSModel
    from progs.pipeline import export_cloud
    from progs.scene import Camera, Scene
    from progs.stream.client import StreamClient
    from progs.train.config import TrainConfig
    from progs.train.distill import DistillConfig
    from progs.train.trainer import Trainer


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'progs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
