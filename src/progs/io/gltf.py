"""glTF 2.0 binary (``.glb``) files with the ``KHR_gaussian_splatting`` extension, via pygltflib.

One mesh with one ``POINTS`` primitive whose ``extensions.KHR_gaussian_splatting`` object is
``{"kernel": "ellipse", "colorSpace": "srgb_rec709_display", "projection": "perspective",
"sortingMethod": "cameraDistance"}`` and whose attributes are (all float32 accessors):

- ``POSITION`` (VEC3, with min/max), ``KHR_gaussian_splatting:ROTATION`` (VEC4, unit quaternion in
  glTF's x, y, z, w order), ``KHR_gaussian_splatting:SCALE`` (VEC3, linear),
  ``KHR_gaussian_splatting:OPACITY`` (SCALAR, linear in [0, 1]);
- ``KHR_gaussian_splatting:SH_DEGREE_0_COEF_0`` and ``KHR_gaussian_splatting:SH_DEGREE_l_COEF_n``
  (VEC3, RGB) for l = 1..degree, n = 0..2l: the INRIA coefficients in their own order (m = -l..l),
  which is the extension's order;
- ``COLOR_0`` (VEC4): the degree-0 colour decoded from sRGB to linear, with the opacity as alpha, for
  viewers that fall back to a point cloud.

Positions are written in the scene's own frame (no conversion to glTF's +Y-up axes).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from progs.atomic import atomic_path
from progs.errors import optional_import
from progs.io.ply import GaussianCloud

EXTENSION = "KHR_gaussian_splatting"
PREFIX = EXTENSION + ":"
FLOAT = 5126
ARRAY_BUFFER = 34962
POINTS = 0
_TYPES = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}


def sh_attribute_names(degree: int) -> list[str]:
    """The SH attribute semantics of degrees 0..``degree`` in the order of the INRIA coefficients."""
    return [f"{PREFIX}SH_DEGREE_{l}_COEF_{n}" for l in range(degree + 1) for n in range(2 * l + 1)]


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _columns(cloud: GaussianCloud) -> dict[str, np.ndarray]:
    def f32(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())

    quats = torch.nn.functional.normalize(cloud.quats, dim=-1, eps=1e-12)
    cols: dict[str, np.ndarray] = {
        "POSITION": f32(cloud.means),
        PREFIX + "ROTATION": f32(quats[:, [1, 2, 3, 0]]),
        PREFIX + "SCALE": f32(cloud.scales),
        PREFIX + "OPACITY": f32(cloud.opacities),
    }
    coeffs = torch.cat([cloud.sh_dc[:, None, :], cloud.sh_rest], dim=1)  # [N, B, 3]
    for i, name in enumerate(sh_attribute_names(cloud.sh_degree)):
        cols[name] = f32(coeffs[:, i, :])
    rgb = _srgb_to_linear(np.clip(f32(cloud.colors), 0.0, 1.0))
    cols["COLOR_0"] = np.ascontiguousarray(np.concatenate([rgb, f32(cloud.opacities)[:, None]], axis=1), np.float32)
    return cols


def cloud_to_gltf(cloud: GaussianCloud):
    """A ``pygltflib.GLTF2`` holding ``cloud`` (binary blob set)."""
    g = optional_import("pygltflib", "export", "writing glTF")

    blob = bytearray()
    accessors, views, attributes = [], [], {}
    for name, arr in _columns(cloud).items():
        width = 1 if arr.ndim == 1 else arr.shape[1]
        views.append(g.BufferView(buffer=0, byteOffset=len(blob), byteLength=arr.nbytes, target=ARRAY_BUFFER))
        blob += arr.astype("<f4").tobytes()
        acc = g.Accessor(bufferView=len(views) - 1, componentType=FLOAT, count=len(cloud), type=_TYPES[width])
        if name == "POSITION":
            acc.min = [float(v) for v in arr.min(axis=0)] if len(cloud) else [0.0] * 3
            acc.max = [float(v) for v in arr.max(axis=0)] if len(cloud) else [0.0] * 3
        accessors.append(acc)
        attributes[name] = len(accessors) - 1
    ext = {
        "kernel": "ellipse",
        "colorSpace": "srgb_rec709_display",
        "projection": "perspective",
        "sortingMethod": "cameraDistance",
    }
    prim = g.Primitive(attributes=g.Attributes(**attributes), mode=POINTS, extensions={EXTENSION: ext})
    gltf = g.GLTF2(
        asset=g.Asset(version="2.0", generator="progs"),
        scene=0,
        scenes=[g.Scene(nodes=[0])],
        nodes=[g.Node(mesh=0)],
        meshes=[g.Mesh(primitives=[prim])],
        accessors=accessors,
        bufferViews=views,
        buffers=[g.Buffer(byteLength=len(blob))],
        extensionsUsed=[EXTENSION],
    )
    gltf.set_binary_blob(bytes(blob))
    return gltf


def write_glb(path: str | os.PathLike, cloud: GaussianCloud) -> None:
    """Write ``cloud`` as a ``.glb`` with ``KHR_gaussian_splatting`` (atomically)."""
    data = b"".join(cloud_to_gltf(cloud).save_to_bytes())
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
