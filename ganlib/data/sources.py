"""SOURCE strings, as the command line names data sets: "toy-faces:2000", "cifar10:cat", a folder (chapter 5)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ganlib.common import (
    check_image_size,
)
from ganlib.data.anime import anime_faces
from ganlib.data.cifar10 import CIFAR10_CLASSES, cifar_class_index, load_cifar10
from ganlib.data.errors import DataNotFoundError
from ganlib.data.folders import load_image_folder
from ganlib.data.pipeline import resize_images
from ganlib.data.toy_faces import toy_faces

DEFAULT_TOY_FACES = 20000
SOURCES_HELP = "toy-faces[:N], cifar10:CLASS, anime-faces[:N] or a folder of images"


def load_source(spec: str, image_size: int = 64, with_report: bool = False):
    """Images named by a SOURCE string: (uint8 (n, image_size, image_size, 3), description).
    Explained in chapter 5.

    spec: "toy-faces" (20,000 faces) or "toy-faces:N"; "cifar10:CLASS" (a class
    name or index, upsampled with Lanczos when image_size is not 32);
    "anime-faces" or "anime-faces:N" (the first N files, see anime_faces); or
    the path of a folder of images. A bad spec is a ValueError with one line.
    with_report: also return the FolderReport of a folder source (None for the others),
    which lists the files that were skipped and why.
    """
    images, description, report = _load_source(spec, image_size)
    return (images, description, report) if with_report else (images, description)


def _parse_count(text: str, spec: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"bad source {spec!r}: the count after ':' must be a positive integer")
    return int(text)


def _load_source(spec: str, image_size: int = 64):
    """load_source plus the FolderReport of folder sources (else None)."""
    image_size = check_image_size(image_size)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty source: use {SOURCES_HELP}")
    spec = spec.strip()
    name, _, argument = spec.partition(":")
    if name == "toy-faces":
        n = _parse_count(argument, spec) if argument else DEFAULT_TOY_FACES
        images, _ = toy_faces(n, image_size)
        return images, f"toy faces ({n} procedural faces, seed 0)", None
    if name == "cifar10":
        if not argument:
            raise ValueError(
                f"bad source {spec!r}: name a class, e.g. cifar10:cat ({', '.join(CIFAR10_CLASSES)})"
            )
        index = cifar_class_index(argument)
        images = load_cifar10(index)
        return (
            resize_images(images, image_size),
            f"CIFAR-10 class {CIFAR10_CLASSES[index]} (train split)",
            None,
        )
    if name == "anime-faces":
        subset = _parse_count(argument, spec) if argument else None
        images, report = anime_faces(subset=subset, image_size=image_size, return_report=True)
        return images, f"Kaggle anime faces ({report.folder})", report
    folder = Path(spec).expanduser()
    if folder.is_dir():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the report below carries the skipped files
            images, report = load_image_folder(folder, image_size, return_report=True)
        return images, f"image folder {report.folder}", report
    if folder.exists():
        raise ValueError(f"{spec} is a file; a source folder must be a directory of images")
    if os.sep in spec or "/" in spec or spec.startswith((".", "~")):
        raise DataNotFoundError(f"image folder {spec} does not exist")
    raise ValueError(f"unknown source {spec!r} (and no folder of that name): use {SOURCES_HELP}")
