#!/usr/bin/python3
"""Reference data for tests/test_common_preprocess.cpp and tests/test_common_image.cpp.

Writes, next to this script (preprocess/) and into ../image/:
  preprocess/imagenet_227.png           a real ImageNet validation image (the first of the
                                        subset's images.tar), decoded by Pillow, as PNG
  preprocess/imagenet_227_eval224.png   torchvision Resize(256) + CenterCrop(224) of it
  preprocess/gray_61x47.png             a grayscale (mode L) crop of it
  preprocess/gray_61x47_eval224.png     the ImageFolder path: convert("RGB"), Resize(256), CenterCrop(224)
  preprocess/synthetic_*.png            Pillow / torchvision results on synthetic images that the
                                        C++ test rebuilds from the same formula (synthetic() below)
  preprocess/synthetic_61x47_r40_c32.npy  float32 [3, 32, 32]: Resize(40), CenterCrop(32), ToTensor,
                                        Normalize(ImageNet mean, std) of synthetic(61, 47)
  image/*                               tiny images with known pixels in several formats

Needs Pillow, numpy, torch and torchvision (Debian 12: /usr/bin/python3 with python3-pil,
python3-numpy; torchvision 0.14). Run: /usr/bin/python3 tests/data/preprocess/make_reference.py
[path/to/images.tar]; the tar defaults to ../shared/data/imagenet-val-subset/images.tar beside
the repository. Outputs are deterministic: rerunning rewrites identical files.
"""
import io
import os
import sys
import tarfile

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
IMAGE_DIR = os.path.join(HERE, "..", "image")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def synthetic(width, height):
    """An RGB test image with sharp and smooth structure; the C++ test has the same formula."""
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(3), indexing="ij")
    v = (x * 7 + y * 13 + c * 71 + ((x * y) % 31) * 5) % 256
    return Image.fromarray(v.astype(np.uint8), "RGB")


def save_png(image, name):
    image.save(os.path.join(HERE, name), optimize=True)


def eval224(image):
    return T.Compose([T.Resize(256), T.CenterCrop(224)])(image)


def preprocess_references(tar_path):
    with tarfile.open(tar_path) as tf:
        first = sorted(m.name for m in tf.getmembers() if m.isfile())[0]
        photo = Image.open(io.BytesIO(tf.extractfile(first).read())).convert("RGB")
    print(f"ImageNet image: {first} {photo.size}")
    save_png(photo, "imagenet_227.png")
    save_png(eval224(photo), "imagenet_227_eval224.png")

    gray = photo.crop((80, 90, 141, 137)).convert("L")  # 61x47
    save_png(gray, "gray_61x47.png")
    save_png(eval224(Image.open(os.path.join(HERE, "gray_61x47.png")).convert("RGB")), "gray_61x47_eval224.png")

    # Direct Image.resize(BILINEAR): strong downscale, upscale, one pass skipped each way.
    for (w, h), (ow, oh) in [((500, 375), (123, 97)), ((5, 7), (13, 11)), ((61, 47), (61, 20)),
                             ((61, 47), (20, 47))]:
        save_png(synthetic(w, h).resize((ow, oh), Image.BILINEAR), f"synthetic_{w}x{h}_to_{ow}x{oh}.png")
    # The torchvision eval pipeline: downscale, 1x1, tiny, extreme aspect, size kept by Resize,
    # a .5 crop offset (banker's rounding).
    for w, h in [(500, 375), (1, 1), (3, 2), (300, 20), (257, 300), (256, 301)]:
        save_png(eval224(synthetic(w, h)), f"synthetic_{w}x{h}_eval224.png")
    # CenterCrop larger than the image: torchvision pads with zeros.
    save_png(T.CenterCrop(40)(synthetic(31, 17)), "synthetic_31x17_crop40.png")

    tensor = T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor(), T.Normalize(MEAN, STD)])(synthetic(61, 47))
    np.save(os.path.join(HERE, "synthetic_61x47_r40_c32.npy"), tensor.numpy().astype("<f4"))


def image_fixtures():
    """Tiny images whose pixels tests/test_common_image.cpp states as known answers."""
    os.makedirs(IMAGE_DIR, exist_ok=True)
    save = lambda image, name, **kw: image.save(os.path.join(IMAGE_DIR, name), **kw)
    rgb = np.zeros((3, 4, 3), np.uint8)  # R = 10 + 60x, G = 20 + 80y, B = 255 - 30(x + y)
    for y in range(3):
        for x in range(4):
            rgb[y, x] = (10 + 60 * x, 20 + 80 * y, 255 - 30 * (x + y))
    save(Image.fromarray(rgb, "RGB"), "rgb_4x3.png")
    save(Image.fromarray(rgb[:2, :3].copy(), "RGB"), "rgb_3x2.bmp")
    gray = np.array([[5, 45, 85], [125, 165, 205]], np.uint8)  # 40 * (3y + x) + 5
    save(Image.fromarray(gray, "L"), "gray_3x2.png")
    save(Image.fromarray(np.dstack([gray[:, :2], [[0, 255], [128, 7]]]).astype(np.uint8), "LA"), "gray_alpha_2x2.png")
    rgba = np.dstack([rgb[:2, :2], [[0, 64], [128, 255]]]).astype(np.uint8)
    save(Image.fromarray(rgba, "RGBA"), "rgba_2x2.png")
    palette = Image.new("P", (4, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 17, 34, 51] + [0] * (256 * 3 - 12))
    palette.putdata([3, 2, 1, 0])
    save(palette, "palette_4x1.png")
    save(Image.new("RGB", (16, 16), (200, 100, 50)), "solid_16x16.jpg", quality=95)
    save(Image.new("L", (8, 8), 128), "gray_8x8.jpg", quality=95)


def main():
    tar_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        REPO, "..", "shared", "data", "imagenet-val-subset", "images.tar")
    print(f"Pillow {Image.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}")
    preprocess_references(tar_path)
    image_fixtures()


if __name__ == "__main__":
    main()
