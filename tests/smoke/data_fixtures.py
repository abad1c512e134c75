"""The real data sets' layouts, made from toy faces: what the GPU modes read in the smoke tests.

A reader's download arrives as a folder of Kaggle anime-face JPEGs (images/0_2000.jpg, ...)
and as CIFAR-10's `cifar-10-batches-py` folder of pickled batches; these writers make
small folders of the same layout, so that the chapters' loading code runs as it would
on the real files, offline.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from ganlib.data import toy_faces

CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def write_anime_faces(root, n=256, size=64) -> Path:
    """root/images/{i}_2000.jpg: n toy faces saved as JPEG, as the Kaggle set names its files."""
    folder = Path(root) / "images"
    folder.mkdir(parents=True, exist_ok=True)
    faces, _ = toy_faces(n, image_size=size, seed=7)
    for i, face in enumerate(faces):
        Image.fromarray(face).save(folder / f"{i}_2000.jpg", quality=90)
    return Path(root)


def write_cifar10(root, per_class_per_batch=4) -> Path:
    """root/cifar-10-batches-py: five training batches and a test batch in CIFAR-10's pickle layout.

    Each batch holds `per_class_per_batch` images of every class (toy faces at 32 px,
    tinted by class), stored as the real files store them: a dict with bytes keys,
    uint8 data (n, 3072) channel-first, a list of int labels; batches.meta names the classes.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    labels = [label for label in range(10) for _ in range(per_class_per_batch)]
    for index, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        faces, _ = toy_faces(len(labels), image_size=32, seed=100 + index)
        tint = (np.asarray(labels)[:, None, None, None] * 25).astype(np.uint8)
        images = (faces // 2 + tint // 2).astype(np.uint8)
        batch = {
            b"batch_label": name.encode(),
            b"labels": list(labels),
            b"data": images.transpose(0, 3, 1, 2).reshape(len(labels), 3072),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(len(labels))],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [name.encode() for name in CIFAR_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder
