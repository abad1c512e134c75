"""Datasets and input pipelines: every source the book trains on, as uint8 arrays.

- `toy_faces` (toy_faces.py): procedural faces with five known factors, the offline default;
  `decode_toy_faces` (toy_decode.py) reads the factors back.
- `load_image_folder` (folders.py): any folder of images, decoded in parallel and cached.
- `load_cifar10` (cifar10.py) and `anime_faces` (anime.py): the book's two real data sets.
- `image_dataset` (pipeline.py): a uint8 array as a shuffled, batched, scaled tf.data.Dataset.
- `load_source` (sources.py): the SOURCE strings of the command line.

Every loader returns uint8 RGB arrays (n, size, size, 3); scaling to a model's value
range happens only in `image_dataset`, the one place that imports TensorFlow.
"""

from ganlib.data.anime import ANIME_FACES_DATASET, ANIME_SUBSET, anime_faces
from ganlib.data.cifar10 import CIFAR10_CLASSES, load_cifar10
from ganlib.data.errors import DataNotFoundError
from ganlib.data.folders import IMAGE_EXTENSIONS, FolderReport, clear_image_cache, load_image_folder
from ganlib.data.pipeline import image_dataset, resize_images
from ganlib.data.ring import ring_centres, ring_density, sample_ring
from ganlib.data.sources import DEFAULT_TOY_FACES, SOURCES_HELP, load_source
from ganlib.data.toy_decode import decode_toy_faces
from ganlib.data.toy_faces import (
    BACKGROUNDS,
    EYE_COLOURS,
    FACTOR_LEVELS,
    FACTOR_NAMES,
    FACTOR_SIZES,
    HAIR_COLOURS,
    HAIR_STYLES,
    NUM_COMBINATIONS,
    SKIN_TONES,
    toy_faces,
)

__all__ = [
    "ring_centres",
    "ring_density",
    "sample_ring",
    "toy_faces",
    "decode_toy_faces",
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "FACTOR_LEVELS",
    "NUM_COMBINATIONS",
    "HAIR_COLOURS",
    "EYE_COLOURS",
    "HAIR_STYLES",
    "SKIN_TONES",
    "BACKGROUNDS",
    "load_image_folder",
    "clear_image_cache",
    "FolderReport",
    "IMAGE_EXTENSIONS",
    "load_cifar10",
    "CIFAR10_CLASSES",
    "anime_faces",
    "ANIME_FACES_DATASET",
    "ANIME_SUBSET",
    "image_dataset",
    "resize_images",
    "load_source",
    "DEFAULT_TOY_FACES",
    "SOURCES_HELP",
    "DataNotFoundError",
]
