"""Images from a directory of PNG/JPEG files, optionally one sub-folder per class.

Layouts:
  * ``DIR/<class>/<image>``: labelled; classes are the sub-folders that contain
    images, sorted by name (labels 0..K-1, class_names = folder names).
  * ``DIR/<image>``: unlabelled.
Mixing both (loose images next to class folders) is refused as ambiguous.
Names starting with "." (hidden files, .ipynb_checkpoints) are skipped, and
images are only looked for one level deep inside a class folder.

Colour: if every image is greyscale (pillow modes 1, L, LA, and 16-bit grey) the
data set is grey (C=1); otherwise every image is converted to RGB (C=3). Alpha is
dropped. 16-bit grey PNGs are scaled by 65535 (their full range), never clipped at 255.
"""
from pathlib import Path

import numpy as np
from PIL import Image

from jsynth.data.dataset import Dataset
from jsynth.data.errors import DataError

_EXTENSIONS = (".png", ".jpg", ".jpeg")
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")  # how pillow opens 16-bit grey PNGs
_GREY_MODES = ("1", "L", "LA") + _WIDE_GREY_MODES


def _image_files(directory: Path) -> list[Path]:
    """Sorted image files directly inside directory (extension check ignores case)."""
    return sorted(
        p for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _EXTENSIONS
    )


def _find_files(directory: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Return (files, labels, class_names); labels is empty when unlabelled."""
    loose = _image_files(directory)
    class_dirs = sorted(
        p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    classes = [(d, _image_files(d)) for d in class_dirs]
    classes = [(d, files) for d, files in classes if files]
    if classes and loose:
        raise DataError(
            f"Image folder {directory} mixes images ({loose[0].name}, ...) with class "
            f"sub-folders ({', '.join(d.name for d, _ in classes[:5])}); put every image "
            "in a class folder for labelled data, or remove the sub-folders for unlabelled data."
        )
    if classes:
        files = [f for _, class_files in classes for f in class_files]
        labels = [i for i, (_, class_files) in enumerate(classes) for _ in class_files]
        return files, labels, tuple(d.name for d, _ in classes)
    if loose:
        return loose, [], ()
    raise DataError(
        f"Image folder {directory} holds no images: expected {'/'.join(_EXTENSIONS)} files "
        "directly inside it (unlabelled) or inside one sub-folder per class (labelled)."
    )


def _check_sizes(sizes: list[tuple[int, int]], files: list[Path]) -> None:
    """Raise when images differ in size and no image_size was given to unify them."""
    for size, path in zip(sizes, files):
        if size != sizes[0]:
            raise DataError(
                f"Images differ in size: {files[0]} is {sizes[0][0]}x{sizes[0][1]} but "
                f"{path} is {size[0]}x{size[1]} (width x height). Set image_size "
                "(`jsynth train ... --set image_size=64`) to resize every image to one square size."
            )


def _read(path: Path, mode: str, image_size: int | None) -> np.ndarray:
    """Decode one image to float32 (H, W) or (H, W, 3) in [0, 1]."""
    try:
        with Image.open(path) as image:
            if mode == "L" and image.mode in _WIDE_GREY_MODES:
                # convert("L") would clip 16-bit values at 255: scale the full range instead.
                image = Image.fromarray(np.asarray(image, dtype=np.float32) / 65535.0, mode="F")
            else:
                image = image.convert(mode)
            if image_size is not None and image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32)
            return np.clip(pixels, 0.0, 1.0) if image.mode == "F" else pixels / 255.0
    # Truncated or corrupt data only shows up when pixels are decoded.
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"Image {path} could not be decoded ({e}); fix or remove it.") from e


def load_folder(directory: str | Path, image_size: int | None = None) -> Dataset:
    """Load every PNG/JPEG image under a directory.

    Args:
      directory: the folder (see the module docstring for the layouts).
      image_size: when given, every image is resized (bilinear) to
        image_size x image_size, ignoring aspect ratio; when None, all images
        must already share one size.

    Returns:
      A Dataset of shape (N, H, W, 1 or 3) in [0, 1], files in sorted order,
      labelled when the folder has class sub-folders.

    Raises:
      DataError: missing or empty folder, unreadable image, or differing sizes
        without image_size.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(f"Image folder {directory} does not exist or is not a directory.")
    if image_size is not None and (
        not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1
    ):
        raise DataError(f"image_size must be a positive integer, got {image_size!r}.")
    files, labels, class_names = _find_files(directory)

    # First pass reads headers only (cheap), to choose the colour mode and
    # catch size mismatches before decoding thousands of images.
    modes, sizes = [], []
    for path in files:
        try:
            with Image.open(path) as image:
                modes.append(image.mode)
                sizes.append(image.size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"Image {path} is not a readable PNG/JPEG ({e}); fix or remove it.") from e
    if image_size is None:
        _check_sizes(sizes, files)
    mode = "L" if all(m in _GREY_MODES for m in modes) else "RGB"

    pixels = np.stack([_read(path, mode, image_size) for path in files])
    if mode == "L":
        pixels = pixels[..., None]
    name = f"folder:{directory}"
    if not labels:
        return Dataset(images=pixels, labels=None, num_classes=0, name=name)
    return Dataset(
        images=pixels,
        labels=np.asarray(labels, np.int32),
        num_classes=len(class_names),
        name=name,
        class_names=class_names,
    )
