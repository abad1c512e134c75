"""The Kaggle anime-face set that chapters 3 and 5 train on at 64x64."""

from __future__ import annotations

import os
from pathlib import Path

from ganlib.data.errors import DataNotFoundError
from ganlib.data.folders import load_image_folder

ANIME_FACES_DATASET = "splcher/animefacedataset"
ANIME_SUBSET = 4992  # how many files the anime-face DCGAN project's notebook trained on


def anime_faces(
    path=None, subset: int | None = None, image_size: int = 64, return_report: bool = False
):
    """The Kaggle anime-face set (splcher/animefacedataset, 63,565 JPEGs) as uint8 (n, s, s, 3).
    Explained in chapter 5.

    path: the downloaded folder (its images are in an images/ subfolder, which
    is used when present), else the GANLIB_ANIME_FACES environment variable,
    else `kagglehub.dataset_download` when kagglehub is installed (optional:
    `pip install kagglehub` or `pip install "ganlib[kaggle]"`).
    subset: read only the first `subset` files in natural name order
    ("0_2000.jpg", "1_2000.jpg", ..., "10_2000.jpg", ...). subset=ANIME_SUBSET
    (4,992) is the number of files the anime-face DCGAN project's notebook trained on; the
    data set only gives that count, not which files, so this picks the first ones by name.
    Loaded, cached and checked by load_image_folder (centre crop, Lanczos).
    """
    if subset is not None and (
        isinstance(subset, bool) or not isinstance(subset, int) or subset < 1
    ):
        raise ValueError(f"subset must be a positive integer or None, got {subset!r}")
    source = path if path is not None else os.environ.get("GANLIB_ANIME_FACES")
    if not source:
        source = _download_anime_faces()
    folder = Path(source).expanduser()
    if (folder / "images").is_dir():
        folder = folder / "images"
    return load_image_folder(folder, image_size, limit=subset, return_report=return_report)


def _download_anime_faces() -> str:
    local = (
        "pass path= (or set the GANLIB_ANIME_FACES environment variable) to a downloaded copy of "
        f"the Kaggle data set {ANIME_FACES_DATASET}"
    )
    try:
        import kagglehub
    except ImportError:
        raise DataNotFoundError(
            f"the anime faces are not available: {local}, or install kagglehub "
            '(pip install kagglehub, or pip install "ganlib[kaggle]") to download it'
        ) from None
    try:
        return kagglehub.dataset_download(ANIME_FACES_DATASET)
    except Exception as error:  # noqa: BLE001 - network and credential failures vary
        raise DataNotFoundError(
            f"downloading {ANIME_FACES_DATASET} with kagglehub failed ({type(error).__name__}: {error}); "
            f"check the connection and Kaggle credentials, or {local}"
        ) from None
