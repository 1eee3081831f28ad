"""What a scene is made from: :class:`DatasetSpec`, a small typed description that a run records in
its ``run.json`` and loads again (``spec.load()``), so training, evaluation and benchmarks never
need to know file formats.

Kinds:

- ``demo``: the embedded procedural scene, rendered from ``views`` cameras at ``size`` pixels;
- ``folder``: a COLMAP or transforms.json dataset at ``path`` (format detected on load); lens
  distortion is removed on load unless ``undistort`` is False (:mod:`progs.io.undistort`);
- ``ply``: a 3DGS scene at ``path`` in any format :func:`progs.io.splats.read_splats` reads (INRIA or
  compressed PLY, SPZ, .splat, SOG, streamed SOG at level ``lod``) rendered from ``views`` orbit cameras
  at ``size`` pixels (the teacher of ``progs fit``), with world ``up`` axis and ``background``.

Every option works for every kind: ``downscale`` divides the loaded images (a rendered kind renders
at ``size / downscale`` directly), ``test_every`` picks every n-th view as a test view. Options that
a kind does not have (``views`` for a folder, say) are refused with a one-line error.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from progs.errors import InputError
from progs.scene import Camera, Scene

DATA_ENV = "PROGS_DATA"


def data_root() -> Path:
    """Where datasets named by a bare name (``fox``) live: ``$PROGS_DATA`` (``progs --data-root`` sets it),
    else ``shared/data`` beside a source checkout, else ``../shared/data`` from the working folder."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file():
        return checkout.parent / "shared" / "data"
    return Path("..") / "shared" / "data"


def find_dataset(name: str | os.PathLike) -> Path:
    """``name`` as a path when it exists, else the folder of that name under :func:`data_root`; a
    missing dataset is one line that names both places."""
    path = Path(name)
    if path.exists():
        return path
    under_root = data_root() / path
    if not path.is_absolute() and under_root.exists():
        return under_root
    raise InputError(
        f"{name}: no such dataset folder (expected a COLMAP or transforms.json folder, or 'demo'; "
        f"also looked for {under_root}: set the data root with --data-root or ${DATA_ENV})"
    )


KINDS = ("demo", "folder", "ply")
UP_AXES = ("x", "y", "z", "-x", "-y", "-z")
_RENDERED = ("views", "size")
_OWN_OPTIONS = {
    "demo": {*_RENDERED, "seed"},
    "folder": {"path", "undistort"},
    "ply": {"path", *_RENDERED, "up", "background", "lod"},
}


@dataclass(frozen=True)
class DatasetSpec:
    kind: str
    path: str | None = None
    downscale: float = 1.0
    test_every: int = 8
    views: int = 60
    size: int = 128
    seed: int = 0
    up: str = "z"
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    undistort: bool = True
    lod: int | None = None

    def __post_init__(self) -> None:
        where = self.path or self.kind
        if self.kind not in KINDS:
            raise InputError(f"{where}: unknown dataset kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        if self.kind != "demo" and not self.path:
            raise InputError(f"a {self.kind} dataset needs a path")
        if not (isinstance(self.downscale, (int, float)) and math.isfinite(self.downscale) and self.downscale >= 1):
            raise InputError(f"{where}: downscale must be a number >= 1, got {self.downscale!r}")
        if not (isinstance(self.test_every, int) and self.test_every >= 2):
            raise InputError(f"{where}: test_every must be an integer >= 2, got {self.test_every!r}")
        if self.views < 2 or self.size < 8:
            raise InputError(f"{where}: a rendered dataset needs at least 2 views of at least 8 pixels")
        if self.up not in UP_AXES:
            raise InputError(f"{where}: up must be one of {', '.join(UP_AXES)}, got {self.up!r}")
        if len(self.background) != 3 or not all(0.0 <= float(c) <= 1.0 for c in self.background):
            raise InputError(f"{where}: background must be 3 numbers in [0, 1], got {self.background!r}")
        object.__setattr__(self, "background", tuple(float(c) for c in self.background))
        object.__setattr__(self, "downscale", float(self.downscale))

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, kind: str, **options: Any) -> "DatasetSpec":
        """A spec of ``kind`` with ``options``; an option that kind does not take is refused."""
        shared = {"downscale", "test_every"}
        allowed = _OWN_OPTIONS.get(kind, set()) | shared
        for name, value in options.items():
            if name not in {f.name for f in fields(cls)}:
                raise InputError(f"unknown dataset option {name!r}")
            if value is not None and name not in allowed and value != getattr(cls, name, None):
                raise InputError(f"option {name!r} does not apply to a {kind} dataset")
        return cls(kind, **{k: v for k, v in options.items() if v is not None})

    @classmethod
    def from_argument(cls, text: str | os.PathLike, **options: Any) -> "DatasetSpec":
        """From a command-line DATASET: the word ``demo`` or a dataset folder (or transforms file)."""
        if str(text) == "demo":
            return cls.create("demo", **options)
        path = Path(text)
        if path.suffix.lower() == ".ply":
            raise InputError(f"{text}: a PLY is a Gaussian cloud, not a dataset with posed images (use `progs fit`)")
        return cls.create("folder", path=str(find_dataset(text).resolve()), **options)

    # -- run.json ----------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["background"] = list(self.background)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "DatasetSpec":
        """Inverse of :meth:`to_json`; also reads the untyped specs of runs before 2026-11-27."""
        if not isinstance(d, dict):
            raise InputError(f"dataset spec must be an object, got {d!r}")
        d = dict(d)
        if d.get("kind") == "path":
            d["kind"] = "folder"
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"dataset spec has unknown fields {unknown}")
        if "background" in d:
            d["background"] = tuple(d["background"])
        return cls(**d)

    # -- loading -----------------------------------------------------------------------------------------

    def _rendered_size(self) -> int:
        return max(8, int(round(self.size / self.downscale)))

    def viewpoint(self) -> tuple[Any, Camera | None]:
        """The scene's background and its first test view's camera, without rendering a teacher: for a
        splat scene only the splats are read (the orbit is computed); other kinds are loaded."""
        if self.kind == "ply":
            import torch

            from progs.io.splats import read_splats
            from progs.io.teacher import teacher_orbit

            cloud = read_splats(self.path, lod=self.lod)
            cams = teacher_orbit(cloud, self.views, self._rendered_size(), self.up)
            return torch.tensor(self.background, dtype=torch.float32), (cams[0] if cams else None)
        scene = self.load()
        return scene.background, scene.first_camera()

    def load(self) -> Scene:
        """The scene this spec describes (``InputError`` naming the file on bad input)."""
        if self.kind == "demo":
            from progs.io.demo_scene import load_demo_scene

            return load_demo_scene(
                views=self.views, size=self._rendered_size(), seed=self.seed, test_every=self.test_every
            )
        if self.kind == "ply":
            from progs.io.splats import read_splats
            from progs.io.teacher import scene_from_cloud

            cloud = read_splats(self.path, lod=self.lod)
            return scene_from_cloud(
                cloud,
                views=self.views,
                size=self._rendered_size(),
                up=self.up,
                background=self.background,
                test_every=self.test_every,
            )
        from progs.io import load_scene

        return load_scene(self.path, downscale=self.downscale, test_every=self.test_every, undistort=self.undistort)
