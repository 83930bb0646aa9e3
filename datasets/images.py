"""Image sets as labelled ``xr.DataArray`` s, and a torch ``Dataset`` over them.

Every loader returns ``xr.DataArray`` with dims ``(image, y, x)`` (grayscale) or ``(image, y, x, channel)``
(RGB, channel order R, G, B) and coordinates on ``image``: ``stimulus_id`` (a unique string, so model
features computed from the images align with neural assemblies), ``label`` (int, ``-1`` when unknown)
and, where known, ``class_name`` and ``file``. ``attrs['source']`` is the file or folder read.

* :func:`load_mnist` / :func:`read_idx`: MNIST and any IDX file (gzipped or not), ``uint8``.
* :func:`load_digits`: scikit-learn's 8 x 8 digits, ``float32`` in [0, 1].
* :func:`load_image_folder`: a folder of class subfolders (ImageNet layout) or a zip of images, ``uint8``.
* :class:`ImageDataset`: a ``torch.utils.data.Dataset`` yielding ``(tensor (C, H, W) float32 in [0, 1], label)``.
* :class:`ImageFolderDataset`: the same items from a folder or zip, each image decoded when it is asked for
  (for image sets larger than memory, and for data-parallel ranks that would each hold a copy).

``ImageDataset`` and ``ImageFolderDataset`` are created on first access so that importing this module does not
import torch.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from neuromodels.errors import DataFormatError

__all__ = [
    "read_idx",
    "load_mnist",
    "load_digits",
    "load_image_folder",
    "ImageDataset",
    "ImageFolderDataset",
    "IMAGE_EXTENSIONS",
]

if TYPE_CHECKING:
    # Created on first access by the module's __getattr__ (which imports torch); declared for __all__.
    ImageDataset: type
    ImageFolderDataset: type

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# The IDX type byte -> big-endian dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"

# ../shared/data/mnist-t10k beside a source checkout (the repository root is the parent of datasets/).
_REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST_DIR = _REPO_ROOT.parent / "shared" / "data" / "mnist-t10k"


# ----------------------------------------------------------------------------------------------------------
# IDX / MNIST


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number (whatever its extension)."""
    if not path.exists():
        raise DataFormatError(file=path, field="<path>", expected="an existing file", found="no such file")
    if path.is_dir():
        raise DataFormatError(file=path, field="<path>", expected="a file", found="a directory")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(file=path, field="<path>", expected="a readable file", found=str(exc)) from exc
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(file=path, field="<gzip>", expected="a complete gzip stream", found=str(exc)) from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a native-endian ``np.ndarray``.

    Layout: 2 zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions ``d``, ``d`` big-endian uint32 sizes, then the data, big-endian,
    C order. The data must be exactly ``prod(sizes) * itemsize`` bytes long.

    Raises
    ------
    DataFormatError
        naming the file and the field (``magic``, ``dims``, ``data``) for a bad magic number, a truncated
        header or a data length that does not match the sizes.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataFormatError(file=path, field="magic", expected="a 4-byte IDX magic number", found=f"{len(raw)} bytes")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataFormatError(
            "not an IDX file",
            file=path,
            field="magic",
            expected="0x0000 then a type byte in " + ", ".join(f"0x{t:02X}" for t in _IDX_TYPES),
            found="0x" + raw[:4].hex().upper(),
        )
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    if ndim == 0:
        raise DataFormatError(file=path, field="dims", expected="at least one dimension", found="0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(
            file=path,
            field="dims",
            expected=f"{ndim} dimension sizes ({header} header bytes)",
            found=f"a file of {len(raw)} bytes",
        )
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        raise DataFormatError(
            "truncated or padded data" if found < expected else "trailing bytes after the data",
            file=path,
            field="data",
            expected=f"{expected} bytes for shape {shape} of {dtype.name}",
            found=f"{found} bytes",
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise DataFormatError(file=folder, field=stem, expected=f"a file {stem} or {stem}.gz", found="none")


def load_mnist(
    path: str | os.PathLike[str] | None = None, *, split: str = "t10k", limit: int | None = None
) -> xr.DataArray:
    """MNIST images ``(image, y, x)`` uint8 (0 = background) with an integer ``label`` coordinate.

    Parameters
    ----------
    path
        A folder holding ``{split}-images-idx3-ubyte[.gz]`` and ``{split}-labels-idx1-ubyte[.gz]``, or the
        images file itself (the labels file is found beside it). ``None`` uses ``../shared/data/mnist-t10k``
        beside the repository when it exists (source checkouts of the team); otherwise pass a path.
    split
        ``"t10k"`` (10,000 test images) or ``"train"`` (60,000).
    limit
        Keep only the first ``limit`` images (the whole file is still checked).

    Raises
    ------
    DataFormatError
        when files are missing, malformed (see :func:`read_idx`), or the images and labels disagree.
    """
    if split not in ("t10k", "train"):
        raise DataFormatError(field="split", expected="'t10k' or 'train'", found=repr(split))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0):
        raise DataFormatError(field="limit", expected="None or a non-negative integer", found=repr(limit))
    if path is None:
        if not DEFAULT_MNIST_DIR.is_dir():
            raise DataFormatError(
                "pass the folder with the MNIST IDX files, e.g. load_mnist('path/to/mnist')",
                file=DEFAULT_MNIST_DIR,
                field="<path>",
                expected="a folder of MNIST IDX files",
                found="no such folder",
            )
        path = DEFAULT_MNIST_DIR
    path = Path(path)
    if path.is_dir():
        images_file = _find_idx(path, f"{split}-images-idx3-ubyte")
        labels_file = _find_idx(path, f"{split}-labels-idx1-ubyte")
    else:
        images_file = path
        if "images-idx3" not in path.name:
            raise DataFormatError(
                file=path, field="<path>", expected="a folder or a '*-images-idx3-ubyte[.gz]' file", found=path.name
            )
        labels_file = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        if not labels_file.is_file():
            raise DataFormatError(
                file=labels_file, field="<path>", expected="the labels file beside the images", found="no such file"
            )

    images = read_idx(images_file)
    labels = read_idx(labels_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(
            file=images_file,
            field="dims",
            expected="3-d uint8 images (n, rows, cols)",
            found=f"{images.ndim}-d {images.dtype}",
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataFormatError(
            file=labels_file, field="dims", expected="1-d uint8 labels", found=f"{labels.ndim}-d {labels.dtype}"
        )
    if len(labels) != len(images):
        raise DataFormatError(
            file=labels_file,
            field="dims",
            expected=f"{len(images)} labels (one per image)",
            found=f"{len(labels)} labels",
        )
    if labels.size and labels.max() > 9:
        raise DataFormatError(
            file=labels_file, field="data", expected="digit labels 0-9", found=f"label {int(labels.max())}"
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    n = len(images)
    return xr.DataArray(
        images,
        dims=("image", "y", "x"),
        coords={
            "stimulus_id": ("image", np.array([f"mnist-{split}-{i:05d}" for i in range(n)], dtype=object)),
            "label": ("image", labels.astype(np.int64)),
        },
        name="images",
        attrs={"source": str(images_file), "labels_file": str(labels_file), "split": split, "max_value": 255},
    )


# ----------------------------------------------------------------------------------------------------------
# scikit-learn digits


def load_digits() -> xr.DataArray:
    """scikit-learn's handwritten digits: 1,797 images ``(image, y, x)`` of 8 x 8, float32 in [0, 1].

    The original pixel values are integers 0-16; they are divided by 16 so that every loader's images share
    the [0, 1] (float) or 0-255 (uint8) convention of :class:`ImageDataset`.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).astype(np.float32)
    n = len(images)
    return xr.DataArray(
        images,
        dims=("image", "y", "x"),
        coords={
            "stimulus_id": ("image", np.array([f"digits-{i:04d}" for i in range(n)], dtype=object)),
            "label": ("image", np.asarray(bunch.target, dtype=np.int64)),
        },
        name="images",
        attrs={"source": "sklearn.datasets.load_digits", "max_value": 1.0, "original_max_value": 16},
    )


# ----------------------------------------------------------------------------------------------------------
# folders and zips of images


def _size_pair(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``size`` as (height, width)."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        pair = (int(size), int(size))
    else:
        try:
            pair = tuple(int(s) for s in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise DataFormatError(field="size", expected="an int or (height, width)", found=repr(size)) from None
        if len(pair) != 2:
            raise DataFormatError(field="size", expected="an int or (height, width)", found=repr(size))
    if min(pair) <= 0:
        raise DataFormatError(field="size", expected="positive sizes", found=repr(size))
    return pair  # type: ignore[return-value]


def _decode(data: bytes, where: str, size: tuple[int, int] | None, grayscale: bool) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("L" if grayscale else "RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataFormatError(file=where, field="<image>", expected="a readable image", found=str(exc)) from exc


def _names_in_folder(root: Path) -> list[str]:
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    return [p.relative_to(root).as_posix() for p in files]


def _names_in_zip(archive: zipfile.ZipFile) -> list[str]:
    return sorted(
        n
        for n in archive.namelist()
        if not n.endswith("/")
        and Path(n).suffix.lower() in IMAGE_EXTENSIONS
        and not n.startswith("__MACOSX/")
        and not any(part.startswith(".") for part in n.split("/"))
    )


class _ImageSource:
    """The image files of a folder or zip (see :func:`load_image_folder`): their sorted relative paths, labels
    and ids, and reading of one image on demand. A zip is opened on the first read in each process (so the
    object pickles into ``DataLoader`` workers and forked ranks) and kept open; :meth:`close` closes it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataFormatError(
                file=self.path, field="<path>", expected="a folder or a zip of images", found="no such path"
            )
        self.is_folder = self.path.is_dir()
        self._archive: zipfile.ZipFile | None = None
        self._pid: int | None = None
        self.names = _names_in_folder(self.path) if self.is_folder else _names_in_zip(self._zip())
        if not self.names:
            self.close()
            raise DataFormatError(
                file=self.path, field="<images>", expected=f"image files ({', '.join(IMAGE_EXTENSIONS)})", found="none"
            )
        self.class_names = [name.split("/")[0] if "/" in name else "" for name in self.names]
        self.classes = sorted({c for c in self.class_names if c})
        index = {c: i for i, c in enumerate(self.classes)}
        self.labels = np.array([index.get(c, -1) for c in self.class_names], dtype=np.int64)
        self.stimulus_ids = [os.path.splitext(n)[0] for n in self.names]

    def _zip(self) -> zipfile.ZipFile:
        if self._archive is None or self._pid != os.getpid():
            try:
                self._archive = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataFormatError(
                    file=self.path, field="<zip>", expected="a folder or a zip of images", found=str(exc)
                ) from exc
            self._pid = os.getpid()
        return self._archive

    def where(self, i: int) -> str:
        return f"{self.path}/{self.names[i]}" if self.is_folder else f"{self.path}:{self.names[i]}"

    def decode(self, i: int, size: tuple[int, int] | None, grayscale: bool) -> np.ndarray:
        """Image ``i`` as uint8 ``(y, x)`` (grayscale) or ``(y, x, 3)``, resized to ``size`` when given."""
        try:
            data = (self.path / self.names[i]).read_bytes() if self.is_folder else self._zip().read(self.names[i])
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise DataFormatError(
                file=self.where(i), field="<image>", expected="a readable file", found=str(exc)
            ) from exc
        return _decode(data, self.where(i), size, grayscale)

    def coords(self) -> dict[str, Any]:
        return {
            "stimulus_id": ("image", np.array(self.stimulus_ids, dtype=object)),
            "label": ("image", self.labels.copy()),
            "class_name": ("image", np.array(self.class_names, dtype=object)),
            "file": ("image", np.array(self.names, dtype=object)),
        }

    def close(self) -> None:
        if self._archive is not None and self._pid == os.getpid():
            self._archive.close()
        self._archive = self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_archive"] = state["_pid"] = None  # an open zip does not travel; the receiver opens its own
        return state


def _size_mismatch(
    source: _ImageSource, i: int, shape: tuple[int, ...], expected: tuple[int, ...], first: int
) -> DataFormatError:
    return DataFormatError(
        "pass size=(height, width) to resize images of different sizes",
        file=source.where(i),
        field="<size>",
        expected=f"shape {expected} (as {source.names[first]})",
        found=f"shape {shape}",
    )


def load_image_folder(
    path: str | os.PathLike[str], *, size: int | Sequence[int] | None = None, grayscale: bool = False
) -> xr.DataArray:
    """Images of a folder or a zip file as ``(image, y, x[, channel])`` uint8, all read into memory now
    (:class:`ImageFolderDataset` reads them one at a time, on demand).

    Layout: a folder of class subfolders (``root/cat/001.png``, ImageNet style) or a zip with the same
    structure; the class of an image is the first component of its path below the root (``cat``), and
    images directly in the root have no class. Classes are numbered in sorted order (``label`` 0, 1, ...;
    ``-1`` without a class) and named in ``class_name`` (``""`` without). ``stimulus_id`` is the relative
    path without its extension; ``file`` the relative path. Files are read in sorted path order; hidden
    files and ``__MACOSX/`` entries are skipped.

    Parameters
    ----------
    size
        ``None`` keeps the images' own size (all must be equal, else :class:`DataFormatError` naming the
        first one that differs); an int or ``(height, width)`` resizes each image (bilinear).
    grayscale
        Convert to one channel: dims ``(image, y, x)``; otherwise RGB (alpha dropped), ``channel`` = R, G, B.
    """
    want = _size_pair(size)
    source = _ImageSource(path)
    try:
        pixels: list[np.ndarray] = []
        for i in range(len(source.names)):
            image = source.decode(i, want, grayscale)
            if pixels and image.shape != pixels[0].shape:
                raise _size_mismatch(source, i, image.shape, pixels[0].shape, 0)
            pixels.append(image)
    finally:
        source.close()
    dims = ("image", "y", "x") if grayscale else ("image", "y", "x", "channel")
    coords = source.coords()
    if not grayscale:
        coords["channel"] = ("channel", np.array(["R", "G", "B"], dtype=object))
    return xr.DataArray(
        np.stack(pixels),
        dims=dims,
        coords=coords,
        name="images",
        attrs={"source": str(source.path), "max_value": 255, "classes": ",".join(source.classes)},
    )


# ----------------------------------------------------------------------------------------------------------
# torch Dataset (created on first access: importing this module must not import torch)


def _check_images(images: xr.DataArray) -> tuple[np.ndarray, np.ndarray, float]:
    source = images.attrs.get("source") if isinstance(images, xr.DataArray) else None
    if not isinstance(images, xr.DataArray):
        raise DataFormatError(
            field="<object>", expected="xarray.DataArray (image, y, x[, channel])", found=type(images).__name__
        )
    if images.dims not in (("image", "y", "x"), ("image", "y", "x", "channel")):
        raise DataFormatError(
            file=source, field="<dims>", expected="('image', 'y', 'x'[, 'channel'])", found=str(images.dims)
        )
    values = np.asarray(images.values)
    if values.dtype == np.uint8:
        scale = 255.0
    elif np.issubdtype(values.dtype, np.floating):
        if values.size and (not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1):
            raise DataFormatError(
                file=source,
                field="<values>",
                expected="float pixels in [0, 1] (or uint8)",
                found=f"range [{np.nanmin(values)}, {np.nanmax(values)}]",
            )
        scale = 1.0
    else:
        raise DataFormatError(file=source, field="<values>", expected="uint8 or float pixels", found=str(values.dtype))
    labels = (
        np.asarray(images["label"].values, dtype=np.int64)
        if "label" in images.coords
        else np.full(values.shape[0], -1, dtype=np.int64)
    )
    return values, labels, scale


def _make_image_dataset() -> type:
    from torch.utils.data import Dataset

    class ImageDataset(Dataset):
        """A map-style ``torch.utils.data.Dataset`` over an ``(image, y, x[, channel])`` DataArray.

        ``dataset[i]`` is ``(tensor, label)``: ``tensor`` float32 of shape ``(C, H, W)`` (``C = 1`` for
        grayscale) in [0, 1] (uint8 pixels divided by 255; float pixels must already be in [0, 1]), passed
        through ``transform`` when given; ``label`` the ``int`` of the ``label`` coordinate (``-1`` without).
        """

        def __init__(self, images: xr.DataArray, transform: Callable[[Any], Any] | None = None) -> None:
            values, labels, scale = _check_images(images)
            self.images = images
            self.transform = transform
            self._values = values
            self._labels = labels
            self._scale = scale

        def __len__(self) -> int:
            return int(self._values.shape[0])

        def __getitem__(self, index: int) -> tuple[Any, int]:
            tensor = _chw_tensor(self._values[index], self._scale)
            if self.transform is not None:
                tensor = self.transform(tensor)
            return tensor, int(self._labels[index])

    ImageDataset.__module__ = __name__
    ImageDataset.__qualname__ = "ImageDataset"
    return ImageDataset


def _chw_tensor(pixels: np.ndarray, scale: float) -> Any:
    """``(y, x[, channel])`` pixels as a float32 ``(C, H, W)`` tensor divided by ``scale``."""
    import torch

    chw = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
    return torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float32) / np.float32(scale))


def _first_image_shape(source: _ImageSource, size: tuple[int, int] | None, grayscale: bool) -> tuple[int, ...]:
    """The pixel shape every image must have: ``size``, or the first image's own (read from its header)."""
    if size is None:
        from PIL import Image, UnidentifiedImageError

        data = (source.path / source.names[0]).read_bytes() if source.is_folder else source._zip().read(source.names[0])
        try:
            with Image.open(io.BytesIO(data)) as im:  # the header only; pixels are decoded on access
                width, height = im.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise DataFormatError(
                file=source.where(0), field="<image>", expected="a readable image", found=str(exc)
            ) from exc
        size = (height, width)
    return tuple(size) if grayscale else (*size, 3)


def _make_image_folder_dataset() -> type:
    from torch.utils.data import Dataset

    class ImageFolderDataset(Dataset):
        """The images of a folder or zip (the layout of :func:`load_image_folder`) as a map-style
        ``torch.utils.data.Dataset`` that decodes each image when it is asked for: memory holds the file list,
        never the image set, so every data-parallel rank (and ``DataLoader`` worker) can open the whole set.

        ``dataset[i]`` is ``(tensor, label)`` exactly as ``ImageDataset(load_image_folder(path, size=...,
        grayscale=...))[i]``: float32 ``(C, H, W)`` in [0, 1] (uint8 / 255), through ``transform`` when given.
        ``stimulus_ids``, ``labels``, ``class_names``, ``classes`` and ``files`` describe the images without
        reading them. With ``size=None`` every image must have the first one's size (read from its header
        now); an image that differs raises :class:`DataFormatError` naming it when it is read.
        """

        def __init__(
            self,
            path: str | os.PathLike[str],
            *,
            size: int | Sequence[int] | None = None,
            grayscale: bool = False,
            transform: Callable[[Any], Any] | None = None,
        ) -> None:
            self._size = _size_pair(size)
            self.grayscale = bool(grayscale)
            self.transform = transform
            self._source = _ImageSource(path)
            self.shape = _first_image_shape(self._source, self._size, self.grayscale)
            self.stimulus_ids = list(self._source.stimulus_ids)
            self.labels = self._source.labels.copy()
            self.class_names = list(self._source.class_names)
            self.classes = list(self._source.classes)
            self.files = list(self._source.names)

        def __len__(self) -> int:
            return len(self.files)

        def __getitem__(self, index: int) -> tuple[Any, int]:
            index = int(index)
            if not -len(self) <= index < len(self):
                raise IndexError(f"image index {index} out of range for {len(self)} images")
            index %= len(self)
            pixels = self._source.decode(index, self._size, self.grayscale)
            if pixels.shape != self.shape:
                raise _size_mismatch(self._source, index, pixels.shape, self.shape, 0)
            tensor = _chw_tensor(pixels, 255.0)
            if self.transform is not None:
                tensor = self.transform(tensor)
            return tensor, int(self.labels[index])

        def close(self) -> None:
            """Close the zip file this process opened (it is reopened if the dataset is read again)."""
            self._source.close()

    ImageFolderDataset.__module__ = __name__
    ImageFolderDataset.__qualname__ = "ImageFolderDataset"
    return ImageFolderDataset


_DATASET_FACTORIES = {"ImageDataset": _make_image_dataset, "ImageFolderDataset": _make_image_folder_dataset}


def __getattr__(name: str) -> Any:
    if name in _DATASET_FACTORIES:
        cls = _DATASET_FACTORIES[name]()
        globals()[name] = cls  # pickling (DataLoader workers) finds the same class by name
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
