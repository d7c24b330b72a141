"""Writes the odd-format test images and Pillow's convert('RGB') of each (<name>.rgb, raw RGB).

Run from this folder with a Python that has Pillow and numpy; the outputs are committed.
"""
import json

import numpy as np
from PIL import Image

rng = np.random.default_rng(6)


def gradient(w, h):
    x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
    return np.stack([x, y, 255 - x], -1).astype(np.uint8)


def save(img, name, **kw):
    img.save(name, **kw)
    with Image.open(name) as back:
        rgb = back.convert("RGB")
        rgb_bytes = np.asarray(rgb).tobytes()
        meta[name] = {"width": rgb.width, "height": rgb.height, "mode": back.mode, "format": back.format,
                      "frames": getattr(back, "n_frames", 1)}
    with open(name + ".rgb", "wb") as f:
        f.write(rgb_bytes)


meta = {}
# Adobe CMYK JPEG (Pillow writes inverted CMYK with an Adobe marker, as Photoshop does).
save(Image.fromarray(gradient(24, 16)).convert("CMYK"), "cmyk_24x16.jpg", quality=95)
# Two-frame animated GIF: the first frame is what the pipeline sees.
frames = [Image.fromarray(np.full((10, 12, 3), c, np.uint8)).convert("P") for c in ((200, 30, 30), (30, 30, 200))]
frames[0].save("animated_12x10.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
with Image.open("animated_12x10.gif") as back:
    meta["animated_12x10.gif"] = {"width": back.width, "height": back.height, "mode": back.mode,
                                  "format": back.format, "frames": back.n_frames}
    with open("animated_12x10.gif.rgb", "wb") as f:
        f.write(np.asarray(back.convert("RGB")).tobytes())
# 1x1 images.
save(Image.fromarray(np.array([[[10, 200, 30]]], np.uint8)), "one_pixel.png")
save(Image.fromarray(np.array([[[10, 200, 30]]], np.uint8)), "one_pixel.jpg", quality=95)
with open("images.json", "w") as f:
    json.dump(meta, f, indent=1, sort_keys=True)
