"""Pictures for people: contact sheets of views and image saving (atomic)."""

from __future__ import annotations

import math
import os

import torch
from PIL import Image, ImageDraw

from progs.atomic import atomic_path


def to_pil(image: torch.Tensor) -> Image.Image:
    """A [H, W, 3] float image in [0, 1] as an 8-bit PIL image."""
    arr = (image.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
    return Image.fromarray(arr)


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # what save_image writes, by suffix


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike[str]) -> None:
    """Save an image (PNG/JPEG by extension, PNG for any other name) without ever leaving a partial file."""
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    fmt = IMAGE_FORMATS.get(os.path.splitext(str(path))[1].lower(), "PNG")
    with atomic_path(path) as tmp:
        pil.save(tmp, format=fmt)


def contact_sheet(
    images: list[torch.Tensor], labels: list[str] | None = None, columns: int | None = None
) -> Image.Image:
    """Tile images (all the same size) into one picture, with optional labels under each tile."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    h, w = images[0].shape[:2]
    cols = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    label_h = 12 if labels else 0
    sheet = Image.new("RGB", (cols * w, rows * (h + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        sheet.paste(to_pil(img), (c * w, r * (h + label_h)))
        if labels:
            draw.text((c * w + 2, r * (h + label_h) + h), labels[i], fill=(0, 0, 0))
    return sheet
