"""What every part of ganlib shares: image sizes, value ranges, atomic file writes, argument checks.

NumPy only, and the bottom layer: it imports nothing else from ganlib.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import numbers
import os
import uuid
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_SIZES", "to_uint8", "value_range_of", "WriteError"]

# The sizes the book's convolutional models are built for (chapters 2-8).
IMAGE_SIZES = (32, 64)
# The smallest image a loader or the toy faces will make.
MIN_IMAGE_SIZE = 16


def check_int(value, name, low=0):
    """`value` as an int when it is an integer >= low, else ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
    return int(value)


def check_image_size(image_size, sizes=None, what="image_size"):
    """`image_size` as an int: one of `sizes`, or any integer >= 16 when sizes is None.

    Models pass sizes=IMAGE_SIZES (32 or 64); loaders and the toy faces take any size >= 16.
    """
    if sizes is None:
        if (
            isinstance(image_size, bool)
            or not isinstance(image_size, numbers.Integral)
            or image_size < MIN_IMAGE_SIZE
        ):
            raise ValueError(
                f"{what} must be an integer of at least {MIN_IMAGE_SIZE} "
                f"(the book uses 32 or 64), got {image_size!r}"
            )
        return int(image_size)
    if isinstance(image_size, bool) or image_size not in sizes:
        raise ValueError(
            f"{what} must be {' or '.join(map(str, sizes))}, got {image_size!r}; "
            f"resize the data to one of them"
        )
    return int(image_size)


def value_range_of(images, value_range=None):
    """(low, high) of `images`: (0, 255) for uint8, else `value_range`, else a guess (chapter 3).

    The guess: floats with a negative value are [-1, 1] (a tanh generator), other floats
    [0, 1] (a sigmoid one). Pass value_range whenever you know it: a [-1, 1] image that
    happens to have no negative pixel would be guessed wrong.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return 0.0, 255.0
    if not (np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.integer)):
        raise ValueError(f"images must be uint8 or float, got dtype {images.dtype}")
    if value_range is None:
        if np.issubdtype(images.dtype, np.integer):
            return 0.0, 255.0
        value_range = (-1.0, 1.0) if images.size and images.min() < 0 else (0.0, 1.0)
    return check_value_range(value_range)


def check_value_range(value_range):
    """`value_range` as (low, high) floats with low < high, else a ValueError that says so."""
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be (low, high), got {value_range!r}") from None
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    return low, high


def to_uint8(images, value_range=None) -> np.ndarray:
    """Images as uint8 [0, 255] (chapter 1).

    images: array (..., h, w, c), uint8 or float. value_range: (low, high) of the
    input; None guesses it (see `value_range_of`).
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    low, high = value_range_of(images, value_range)
    scaled = (images.astype(np.float32) - low) / (high - low)
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def to_float255(images, value_range=None) -> np.ndarray:
    """float32 copy of `images` on the 0..255 scale, unrounded (see `value_range_of`)."""
    images = np.asarray(images)
    low, high = value_range_of(images, value_range)
    scaled = (images.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0.0, 255.0)


def temporary_name(path) -> Path:
    """A hidden sibling of `path` that no other process or thread will pick: .NAME.PID.RANDOM.tmp."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


class WriteError(OSError):
    """A file ganlib could not write: the message names the file and says what to do (chapter 5).

    An OSError (its `errno` and `filename` are those of the failure), so code that
    catches OSError still does; the command line prints it as one `ganlib: error:` line.
    """

    def __str__(self):
        return str(self.args[0]) if self.args else super().__str__()


def _write_advice(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full; free some space (or write to another disk) and try again"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is not writable; make it writable or write somewhere else"
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a file stands where a folder is needed; move it or choose another path"
    return "check the disk and the folder, then try again"


def write_error(path, error: OSError) -> WriteError:
    """A WriteError for `error` raised while writing `path`, naming the file and what to do."""
    if isinstance(error, WriteError):
        return error
    reason = error.strerror or str(error) or type(error).__name__
    failed = WriteError(f"could not write {path} ({reason}): {_write_advice(error)}")
    failed.errno, failed.strerror, failed.filename = error.errno, error.strerror, str(path)
    return failed


def check_writable(folder) -> Path:
    """Create `folder` if needed and write and remove a small file in it; WriteError if that fails.

    Run before work whose results go into `folder`, so a read-only folder, a full disk
    or a path that names a file is reported before anything is computed.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteError(
            f"{folder} is a file, not a folder; choose a folder name (a new one is created)"
        )
    probe = temporary_name(folder / "write-test")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as file:
            file.write(b"ganlib write test\n")
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        raise write_error(folder, error) from error
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return folder


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file for writing; on success flush it to disk and rename it to `path`.

    A process killed at any moment leaves either the old file or the new one, never
    half a file; on an exception the temporary file is removed and `path` is untouched.
    An OSError while writing (a full disk, a read-only folder) becomes a WriteError
    naming `path` and what to do.
    """
    path = Path(path)
    temporary = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError):
            raise write_error(path, error) from error
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        handle = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def atomic_save(path, save):
    """Call save(temporary) and rename the finished file to `path`, for writers that take a name.

    Keras chooses its file format from the name (.keras, .weights.h5), so the temporary
    name keeps `path`'s suffixes; like `atomic_write`, a process killed midway leaves the
    old file or the new one, never half a file, and an OSError becomes a WriteError.
    """
    path = Path(path)
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    temporary = path.with_name(f".{stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffixes}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise write_error(path, error) from error
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    return path


def cache_root(cache_dir=None) -> Path:
    """Where ganlib caches downloads and trained helper networks: cache_dir, else
    $GANLIB_CACHE, else ~/.cache/ganlib."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("GANLIB_CACHE") or Path.home() / ".cache" / "ganlib").expanduser()


def lazy_exports(module_globals, names):
    """(__getattr__, __dir__) for a package whose public names load from their submodule on first use.

    module_globals: the package's globals(); names: {public name: submodule}. Keeps `import ganlib.metrics.distances` free of
    TensorFlow even though `ganlib.metrics` also holds TensorFlow code.
    """
    package = module_globals["__name__"]

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        module_globals[name] = value
        return value

    def __dir__():
        return sorted({*module_globals, *names})

    return __getattr__, __dir__
