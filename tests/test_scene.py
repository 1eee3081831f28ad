import math

import torch

from progs.scene import Camera, split_train_test


def test_look_at_projects_target_to_image_centre():
    cam = Camera.look_at([3.0, -2.0, 1.5], [0.1, 0.2, 0.3], [0, 0, 1], width=160, height=120, fov_x_deg=60)
    uv, z = cam.project(torch.tensor([[0.1, 0.2, 0.3]]))
    assert torch.allclose(uv[0], torch.tensor([80.0, 60.0]), atol=1e-3)
    assert z[0] > 0
    assert math.isclose(cam.fov_x, math.radians(60), rel_tol=1e-6)
    # a point above the target appears higher in the image (smaller v): image y points down
    uv_up, _ = cam.project(torch.tensor([[0.1, 0.2, 0.8]]))
    assert uv_up[0, 1] < 60.0
    assert torch.allclose(cam.center, torch.tensor([3.0, -2.0, 1.5]), atol=1e-5)


def test_scaled_camera_keeps_projection_consistent():
    cam = Camera.look_at([0, -4, 1], [0, 0, 0], width=1080, height=1920)
    small = cam.scaled(8)
    assert (small.width, small.height) == (135, 240)
    p = torch.tensor([[0.3, 0.1, -0.2]])
    uv, _ = cam.project(p)
    uv_s, _ = small.project(p)
    assert torch.allclose(uv_s, uv / 8, atol=1e-3)


def test_split_every_eighth_view_is_test():
    train, test = split_train_test([f"{i}" for i in range(20)])
    assert test == [0, 8, 16]
    assert sorted(train + test) == list(range(20))
