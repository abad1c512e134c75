"""Any folder of images as a uint8 array, decoded in parallel and cached (chapter 3)."""

from __future__ import annotations

import collections
import dataclasses
import errno
import functools
import hashlib
import json
import os
import re
import stat
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ganlib.common import (
    atomic_write,
    cache_root,
    check_image_size,
    temporary_name,
)
from ganlib.data.errors import DataNotFoundError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Version 2 records a hash of the array, so a cache changed after it was written is noticed.
_CACHE_VERSION = 2
# The most pixels one image may have when decoded (JPEGs count at the reduced scale they
# decode at): a 144-megapixel PNG would take over a gigabyte per decoding thread. Larger
# files are skipped with a reason; raise this to read them.
MAX_IMAGE_PIXELS = 64_000_000
_CACHE_FOLDER = ".ganlib-cache"
# The decoded folders this process keeps, least recently used first:
# (folder, size, crop, limit, file signature) -> (images, report).
_MEMORY_CACHE: collections.OrderedDict = collections.OrderedDict()
# Its bounds: a notebook that loads folder after folder would otherwise keep every one.
# The least recently used folders go first; the one just loaded always stays.
MEMORY_CACHE_MAX_ENTRIES = 8
MEMORY_CACHE_MAX_BYTES = 2 * 1024**3
_WARN_NAMES = 5  # how many skipped files a warning names


@dataclasses.dataclass(frozen=True)
class FolderReport:
    """What load_image_folder read (chapter 3): `files` (relative paths of the images, in
    array order), `skipped` ((relative path, reason) pairs), `source` ("decoded",
    "disk cache" or "memory") and `cache_file` (the .npy, or None)."""

    folder: Path
    image_size: int
    crop: str
    files: tuple
    skipped: tuple
    source: str
    cache_file: Path | None

    def summary(self, names: int = _WARN_NAMES) -> str:
        """One line naming the first `names` skipped files and why."""
        if not self.skipped:
            return "no files skipped"
        listed = ", ".join(f"{path} ({reason})" for path, reason in self.skipped[:names])
        more = f" and {len(self.skipped) - names} more" if len(self.skipped) > names else ""
        return f"skipped {len(self.skipped)} unreadable file(s): {listed}{more}"


def _natural_key(text: str):
    """Sort key that orders '2.jpg' before '10.jpg'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _scan(folder: Path) -> tuple[list[list], list[tuple]]:
    """([relative path (POSIX), size, mtime in ns] of every file with an image extension
    under folder, recursively, in natural order of the paths; (relative path, reason) of
    what cannot be listed). The sizes and times are what the cache is checked against.

    A bad entry is skipped, never fatal: a broken symbolic link, a link loop, a link back
    to a folder already listed, a folder that cannot be read, a special file (a FIFO
    named .png would block the reader).
    """
    rows, skipped, pending = [], [], [(str(folder), "")]
    seen = {os.path.realpath(folder)}
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as error:
            if not prefix:
                raise
            skipped.append((prefix.rstrip("/"), f"folder not readable: {_reason(error)}"))
            continue
        for entry in entries:
            name = prefix + entry.name
            try:
                is_dir = entry.is_dir()  # follows symbolic links
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name == _CACHE_FOLDER:
                    continue
                real = os.path.realpath(entry.path)
                if real in seen:
                    skipped.append((name, "link to a folder already read (a symbolic link loop?)"))
                    continue
                seen.add(real)
                pending.append((entry.path, f"{name}/"))
                continue
            try:
                info = entry.stat()  # follows symbolic links
            except OSError as error:
                if entry.is_symlink() or entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    skipped.append((name, _link_reason(entry, error)))
                continue
            if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            if not stat.S_ISREG(info.st_mode):
                skipped.append((name, "not a regular file"))
                continue
            rows.append([name, info.st_size, info.st_mtime_ns])
    return sorted(rows, key=lambda row: _natural_key(row[0])), sorted(
        skipped, key=lambda item: _natural_key(item[0])
    )


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def _link_reason(entry, error: OSError) -> str:
    if entry.is_symlink():
        try:
            target = os.readlink(entry.path)
        except OSError:
            target = "?"
        if error.errno == errno.ELOOP:
            return f"symbolic link loop ({target})"
        if isinstance(error, FileNotFoundError):
            return f"broken symbolic link: {target} does not exist"
        return f"symbolic link to {target}: {_reason(error)}"
    return _reason(error)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: alpha composited on white, 16-bit scaled (not clipped) to 8 bits."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, np.float64)
        if image.mode == "F":
            high = 1.0 if values.size and values.max() <= 1.0 else 255.0
        elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
            high = 65535.0
        else:
            high = 255.0
        gray = np.clip(np.rint(values * (255.0 / high)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _read_image(path: Path, image_size: int, crop: str) -> np.ndarray:
    """One file as uint8 (image_size, image_size, 3); raises on anything unreadable.

    GIFs give their first frame; EXIF orientation is applied; "center" crops the
    largest centred square before resizing, "none" resizes the whole picture.
    Resizing uses Lanczos filtering.
    """
    with Image.open(path) as image:
        # JPEGs decode at a reduced scale (still at least twice the target): much faster.
        image.draft("RGB", (2 * image_size, 2 * image_size))
        width, height = image.size  # from the header: nothing is decoded yet
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over the "
                f"{MAX_IMAGE_PIXELS / 1e6:g} a file may have (folders.MAX_IMAGE_PIXELS)"
            )
        image.load()  # truncated files fail here, not later
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    if crop == "center":
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(image, np.uint8)


def _try_read(path: Path, image_size: int, crop: str):
    """(array, None) or (None, reason): a bad file must never stop a run."""
    try:
        if path.stat().st_size == 0:
            return None, "empty file"
        return _read_image(path, image_size, crop), None
    except Exception as error:  # noqa: BLE001 - any decoder failure means "skip this file"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, reason[:120]


def _default_cache_dir(folder: Path) -> Path:
    """Where a folder's disk cache goes when load_image_folder gets no cache_dir:
    $GANLIB_CACHE/folders/<hash of the folder path> when $GANLIB_CACHE is set, else
    <folder>/.ganlib-cache when writable, else ~/.cache/ganlib/folders/<hash>."""
    shared = cache_root() / "folders" / hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    if os.environ.get("GANLIB_CACHE"):
        return shared
    local = folder / _CACHE_FOLDER
    try:
        local.mkdir(exist_ok=True)
        probe = temporary_name(local / "write-test")  # unique, so parallel runs can't collide
        probe.write_bytes(b"")
        probe.unlink()
        return local
    except OSError:
        return shared  # cache_root() is ~/.cache/ganlib here: $GANLIB_CACHE is unset


def load_image_folder(
    path,
    image_size: int = 64,
    crop: str = "center",
    cache_dir=None,
    workers: int | None = None,
    *,
    limit: int | None = None,
    return_report: bool = False,
):
    """Every image under a folder, recursively, as uint8 (n, image_size, image_size, 3) (chapter 3).

    Files ending in .jpg/.jpeg/.png/.bmp/.gif/.webp (any case) are read in
    natural name order ('2.jpg' before '10.jpg'); GIFs give their first frame;
    EXIF orientation is applied; grayscale, palette, RGBA (composited on white),
    CMYK and 16-bit images become 8-bit RGB. crop: "center" takes the largest
    centred square, "none" squeezes the whole picture; both resize with Lanczos.
    limit: read only the first `limit` files of that order.

    Files are decoded on `workers` threads (default: one per CPU) with a progress
    bar, and the result is cached on disk as one .npy plus a JSON manifest, in
    the first of: cache_dir; `$GANLIB_CACHE/folders/<hash of the folder path>/`
    when that variable is set; `<folder>/.ganlib-cache/` when the folder is
    writable; `~/.cache/ganlib/folders/<hash>/`. It is also kept in memory for
    this process, up to MEMORY_CACHE_MAX_ENTRIES folders and
    MEMORY_CACHE_MAX_BYTES bytes (module constants; the least recently used go
    first; clear_image_cache() empties it). Either cache is used only when no
    file was added, removed or modified since. The returned array is shared with
    the memory cache and read-only: copy it before changing it.

    Unreadable, truncated, empty and non-image files are skipped and named in
    one warning. With return_report=True returns (images, FolderReport).
    Raises DataNotFoundError (a FileNotFoundError and ValueError) for a missing
    folder and ValueError when no file could be read.
    """
    image_size = check_image_size(image_size)
    if crop not in ("center", "none"):
        raise ValueError(f'crop must be "center" or "none", got {crop!r}')
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    folder = Path(path).expanduser().resolve()
    if not folder.exists():
        raise DataNotFoundError(f"image folder {folder} does not exist: check the path")
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder of images")
    signature, unlisted = _scan(folder)
    signature = signature[:limit]
    files = [name for name, _, _ in signature]
    if not files:
        also = f"; skipped {unlisted[0][0]} ({unlisted[0][1]})" if unlisted else ""
        raise ValueError(
            f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}, "
            f"searched recursively{also}"
        )
    key = (
        str(folder),
        image_size,
        crop,
        limit,
        hashlib.sha1(json.dumps([signature, unlisted]).encode()).hexdigest(),
    )
    if key in _MEMORY_CACHE:
        _MEMORY_CACHE.move_to_end(key)
        images, report = _MEMORY_CACHE[key]
        report = dataclasses.replace(report, source="memory")
    else:
        images, report = _load_or_decode(
            folder, files, signature, image_size, crop, cache_dir, workers, limit
        )
        if unlisted:  # entries that could not even be listed (broken links, loops)
            skipped = sorted([*report.skipped, *unlisted], key=lambda item: _natural_key(item[0]))
            report = dataclasses.replace(report, skipped=tuple(skipped))
        images.flags.writeable = False
        _remember(key, images, report)
    if report.skipped:
        warnings.warn(f"load_image_folder({folder}): {report.summary()}", stacklevel=2)
    if not len(images):
        raise ValueError(
            f"none of the {len(files)} image files under {folder} could be read; {report.summary()}"
        )
    return (images, report) if return_report else images


def _remember(key, images, report):
    """Put a decoded folder in the memory cache, dropping the least recently used
    ones until MEMORY_CACHE_MAX_ENTRIES and MEMORY_CACHE_MAX_BYTES hold again."""
    _MEMORY_CACHE[key] = (images, report)
    _MEMORY_CACHE.move_to_end(key)
    total = sum(cached.nbytes for cached, _ in _MEMORY_CACHE.values())
    while len(_MEMORY_CACHE) > 1 and (
        len(_MEMORY_CACHE) > MEMORY_CACHE_MAX_ENTRIES or total > MEMORY_CACHE_MAX_BYTES
    ):
        _, (dropped, _) = _MEMORY_CACHE.popitem(last=False)
        total -= dropped.nbytes


def _load_or_decode(folder, files, signature, image_size, crop, cache_dir, workers, limit):
    cache_dir = (
        Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir(folder)
    )
    stem = f"images-{image_size}-{crop}" + (f"-first{limit}" if limit else "")
    array_file, manifest_file = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    manifest = {
        "version": _CACHE_VERSION,
        "image_size": image_size,
        "crop": crop,
        "files": signature,
    }
    cached = _read_cache(array_file, manifest_file, manifest)
    if isinstance(cached, str):
        warnings.warn(
            f"the image cache {array_file} {cached}; decoding {folder} again and rewriting it",
            stacklevel=3,
        )
        cached = None
    if cached is not None:
        images, kept, skipped = cached
        return images, FolderReport(
            folder, image_size, crop, kept, skipped, "disk cache", array_file
        )

    images, kept, skipped = _decode_all(folder, files, image_size, crop, workers)
    manifest["kept"] = list(kept)
    manifest["skipped"] = [list(item) for item in skipped]
    manifest["blake2b"] = _array_hash(images)
    written = _write_cache(array_file, manifest_file, images, manifest)
    return images, FolderReport(
        folder, image_size, crop, kept, skipped, "decoded", array_file if written else None
    )


def _decode_all(folder, files, image_size, crop, workers):
    from tqdm.auto import tqdm

    workers = workers or os.cpu_count() or 1
    read = functools.partial(_try_read, image_size=image_size, crop=crop)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(
            tqdm(
                pool.map(read, [folder / name for name in files]),
                total=len(files),
                desc=f"decoding {folder.name}",
                unit="img",
                disable=len(files) < 500,
                file=sys.stderr,
            )
        )
    kept = tuple(name for name, (array, _) in zip(files, results, strict=True) if array is not None)
    skipped = tuple(
        (name, reason)
        for name, (array, reason) in zip(files, results, strict=True)
        if array is None
    )
    arrays = [array for array, _ in results if array is not None]
    images = np.stack(arrays) if arrays else np.zeros((0, image_size, image_size, 3), np.uint8)
    return images, kept, skipped


def _array_hash(images: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((images.dtype.str, images.shape)).encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


def _read_cache(array_file: Path, manifest_file: Path, expected: dict):
    """(images, kept, skipped) when the cache matches `expected`; None when there is no
    cache for these files; a sentence saying what is wrong when there is one but its
    array is damaged or was changed after it was written (then it is rebuilt)."""
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, ValueError):
        return None  # none yet, or a manifest cut short: rebuilt like a missing one
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in expected.items()):
        return None  # made for other files, settings or an older ganlib
    try:
        kept = tuple(manifest["kept"])
        skipped = tuple(tuple(item) for item in manifest["skipped"])
        images = np.load(array_file, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - any failure to read it means "rebuild"
        return f"cannot be read ({type(error).__name__}: {str(error)[:100]})"
    size = expected["image_size"]
    if images.dtype != np.uint8 or images.shape != (len(kept), size, size, 3):
        return (
            f"holds {images.dtype} {images.shape}, not the {len(kept)} images of "
            f"{size}x{size} its manifest lists"
        )
    if manifest.get("blake2b") != _array_hash(images):
        return "does not match the hash its manifest recorded (changed after it was written)"
    return images, kept, skipped


def _write_cache(array_file: Path, manifest_file: Path, images: np.ndarray, manifest: dict) -> bool:
    """Write atomically (temporary file, then rename); a cache that can't be written is not an error."""
    try:
        with atomic_write(array_file) as handle:
            np.save(handle, images, allow_pickle=False)
        with atomic_write(manifest_file, "w") as handle:
            handle.write(json.dumps(manifest))
        return True
    except OSError as error:
        warnings.warn(
            f"could not write the image cache in {array_file.parent}: {error}", stacklevel=3
        )
        return False


def clear_image_cache():
    """Forget the folders decoded in this process (chapter 3); the on-disk caches stay."""
    _MEMORY_CACHE.clear()
