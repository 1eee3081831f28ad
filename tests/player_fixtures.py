"""Fixtures for the web player's browser test (web/test/player.test.mjs): a real stream, its manifest
with a starting view, a truncated copy, and progs' own render of every LoD from that view.

    python tests/player_fixtures.py OUT_DIR

Writes ``fox.progs`` (the GPU-trained fox capture of benchmarks/results/gpu), ``fox.progs.json`` (its
manifest; the view is the capture's first test camera when the fox data is present, else a camera
outside the scene's cube), ``fox-cut.progs`` (cut inside LoD 4, no manifest), ``fox.lodK.png`` (the
decoded LoD K rendered by progs from the view at the test's size) and ``player.json`` describing them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

WIDTH, HEIGHT = 240, 320  # the fox capture is portrait


def _views(grid) -> list[dict]:
    """Two cameras: the capture's first two test cameras when the fox data is present, else two
    cameras outside the scene's cube."""
    from progs.io.dataset import data_root
    from progs.stream.manifest import suggested_view

    centre = [o + grid.size / 2 for o in grid.origin]
    fox = data_root() / "fox"
    if (fox / "transforms.json").is_file():
        from progs.io import load_scene

        scene = load_scene(fox, downscale=8)
        return [suggested_view(v.camera, centre) for v in scene.test_views[:2]]
    d = 1.5 * grid.size
    return [
        {"eye": [centre[0], centre[1], centre[2] + d], "target": centre, "up": [0, 1, 0], "fov_x": 50},
        {"eye": [centre[0] + d, centre[1], centre[2]], "target": centre, "up": [0, 1, 0], "fov_x": 50},
    ]


def main(argv: list[str]) -> int:
    from progs.codec import decode
    from progs.eval.figures import save_image
    from progs.scene import Camera
    from progs.stream.manifest import manifest_for_stream, write_manifest

    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    data = (REPO / "benchmarks" / "results" / "gpu" / "h200_fox_6400.progs").read_bytes()
    (out / "fox.progs").write_bytes(data)
    res = decode(data, source="fox.progs")
    view, other = _views(res.model.grid)
    manifest = manifest_for_stream(data, "fox.progs")
    manifest["view"] = view
    write_manifest(out / "fox.progs.json", manifest)
    lod4 = manifest["lods"][3]
    (out / "fox-cut.progs").write_bytes(data[: lod4["offset"] + lod4["length"] // 2])
    camera = Camera.look_at(
        view["eye"], view["target"], view["up"], width=WIDTH, height=HEIGHT, fov_x_deg=view["fov_x"]
    )
    bg = torch.as_tensor(res.background if res.background is not None else (0.0, 0.0, 0.0), dtype=torch.float32)
    lods = []
    with torch.no_grad():
        for k in range(1, res.lods_decoded + 1):
            img = res.model.render(camera, lod=k, background=bg).image.clamp(0, 1)
            name = f"fox.lod{k}.png"
            save_image(img, out / name)
            lods.append({"lod": k, "reference": name, "cumulative_bytes": manifest["lods"][k - 1]["cumulative_bytes"]})
    # the finest LoD from a second camera: the player re-evaluates its Gaussians there
    camera2 = Camera.look_at(
        other["eye"], other["target"], other["up"], width=WIDTH, height=HEIGHT, fov_x_deg=other["fov_x"]
    )
    with torch.no_grad():
        save_image(res.model.render(camera2, background=bg).image.clamp(0, 1), out / "fox.view2.png")
    info = {
        "stream": "fox.progs",
        "cut": "fox-cut.progs",
        "cut_last_lod": 3,
        "width": WIDTH,
        "height": HEIGHT,
        "view": view,
        "header_bytes": manifest["header"]["length"],
        "lods": lods,
        "second_view": {"view": other, "reference": "fox.view2.png"},
    }
    (out / "player.json").write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
