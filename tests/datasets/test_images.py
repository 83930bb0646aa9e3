"""Image sets: MNIST (IDX), scikit-learn digits, folders and zips of images, and the torch ImageDataset."""

from __future__ import annotations

# Exact equality in this file compares integer labels and pixels decoded losslessly, and arrays read back: the same on
# every CPU.
import gzip
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from neuromodels.datasets import images as images_module
from neuromodels.datasets.images import load_digits, load_image_folder, load_mnist, read_idx
from neuromodels.errors import DataFormatError

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MNIST_DIR = SHARED_DATA / "mnist-t10k"
COWLEY_ZIP = SHARED_DATA / "cowley2023-v4" / "images_images_210325.zip"

# Published class frequencies of the MNIST test set.
T10K_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    if not MNIST_DIR.is_dir():
        pytest.skip(f"MNIST test files not found at {MNIST_DIR} (present in the team's checkouts and CI only)")
    return MNIST_DIR


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(mnist_dir)


def _idx_bytes(array: np.ndarray, type_byte: int) -> bytes:
    header = bytes([0, 0, type_byte, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------------
# IDX and MNIST


def test_mnist_t10k_images_and_labels(mnist, mnist_dir):
    assert mnist.dims == ("image", "y", "x") and mnist.shape == (10000, 28, 28) and mnist.dtype == np.uint8
    labels_raw = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    labels = np.frombuffer(labels_raw, dtype=np.uint8, offset=8)
    np.testing.assert_array_equal(mnist["label"].values, labels)
    assert np.bincount(mnist["label"].values).tolist() == T10K_LABEL_COUNTS
    assert int(mnist["label"][0]) == 7
    images_raw = gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    first = np.frombuffer(images_raw, dtype=np.uint8, offset=16, count=784).reshape(28, 28)
    np.testing.assert_array_equal(mnist.values[0], first)
    np.testing.assert_array_equal(mnist.values[-1], np.frombuffer(images_raw[-784:], dtype=np.uint8).reshape(28, 28))
    assert mnist.attrs["source"].endswith("t10k-images-idx3-ubyte.gz")
    assert len(set(mnist["stimulus_id"].values)) == 10000


def test_mnist_from_uncompressed_files_and_limit(tmp_path, mnist, mnist_dir):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    plain = load_mnist(tmp_path / "t10k-images-idx3-ubyte", limit=100)
    assert plain.shape == (100, 28, 28)
    np.testing.assert_array_equal(plain.values, mnist.values[:100])
    np.testing.assert_array_equal(plain["label"].values, mnist["label"].values[:100])


def test_mnist_default_path_is_the_shared_folder_or_a_clear_error(monkeypatch, tmp_path, mnist_dir):
    assert load_mnist(limit=3)["label"].values.tolist() == [7, 2, 1]
    monkeypatch.setattr(images_module, "DEFAULT_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataFormatError, match="pass the folder"):
        load_mnist()


@pytest.mark.parametrize(
    ("type_byte", "dtype"),
    [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)],
)
def test_read_idx_round_trips_every_type(tmp_path, type_byte, dtype):
    shift = 0 if np.dtype(dtype).kind == "u" else 5  # negative values for the signed types
    array = (np.arange(24) - shift).reshape(2, 3, 4).astype(dtype)
    path = tmp_path / "a.idx"
    path.write_bytes(_idx_bytes(array, type_byte))
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    gz = tmp_path / "a.idx.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(read_idx(gz), array)


def test_corrupt_idx_files_name_file_and_field(tmp_path):
    good = _idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8), 0x08)
    cases = {
        "bad_magic": (b"\x00\x01" + good[2:], "magic"),
        "bad_type": (good[:2] + b"\x07" + good[3:], "magic"),
        "truncated_data": (good[:-1], "data"),
        "trailing_data": (good + b"\x00", "data"),
        "truncated_header": (good[:9], "dims"),
        "tiny": (b"\x00\x00", "magic"),
    }
    for name, (data, field) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataFormatError) as info:
            read_idx(path)
        assert info.value.field == field and info.value.file == str(path), name
    broken_gzip = tmp_path / "broken.gz"
    broken_gzip.write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(DataFormatError) as info:
        read_idx(broken_gzip)
    assert info.value.field == "<gzip>" and str(broken_gzip) in str(info.value)
    with pytest.raises(DataFormatError, match="no such file"):
        read_idx(tmp_path / "missing")


def test_mnist_images_and_labels_must_agree(tmp_path):
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(images, 0x08))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([1, 2, 3], dtype=np.uint8), 0x08))
    with pytest.raises(DataFormatError, match="4 labels") as info:
        load_mnist(tmp_path)
    assert info.value.file.endswith("t10k-labels-idx1-ubyte")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([1, 2, 3, 12], dtype=np.uint8), 0x08))
    with pytest.raises(DataFormatError, match="label 12"):
        load_mnist(tmp_path)
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, split="train")


# ----------------------------------------------------------------------------------------------------------
# digits


def test_digits():
    from sklearn.datasets import load_digits as sklearn_digits

    digits = load_digits()
    reference = sklearn_digits()
    assert digits.shape == (1797, 8, 8) and digits.dtype == np.float32
    np.testing.assert_array_equal(digits["label"].values, reference.target)
    np.testing.assert_allclose(digits.values * 16, reference.images, atol=1e-5)
    assert float(digits.min()) == 0.0 and float(digits.max()) == 1.0


# ----------------------------------------------------------------------------------------------------------
# folders and zips


def _write_class_folder(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    written = {}
    for cls in ("dog", "cat"):
        (root / cls).mkdir(parents=True)
        for k in range(2):
            pixels = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
            (root / cls / f"{k}.png").write_bytes(_png(pixels))
            written[f"{cls}/{k}"] = pixels
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"junk")
    return written


def test_image_folder_labels_from_subfolders(tmp_path):
    written = _write_class_folder(tmp_path)
    images = load_image_folder(tmp_path)
    assert images.dims == ("image", "y", "x", "channel") and images.shape == (4, 6, 5, 3)
    assert images["stimulus_id"].values.tolist() == ["cat/0", "cat/1", "dog/0", "dog/1"]
    assert images["label"].values.tolist() == [0, 0, 1, 1]
    assert images["class_name"].values.tolist() == ["cat", "cat", "dog", "dog"]
    for i, sid in enumerate(images["stimulus_id"].values):
        np.testing.assert_array_equal(images.values[i], written[sid])  # PNG is lossless

    gray = load_image_folder(tmp_path, grayscale=True, size=(3, 4))
    assert gray.dims == ("image", "y", "x") and gray.shape == (4, 3, 4) and gray.dtype == np.uint8


def test_image_folder_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "small.png").write_bytes(_png(np.zeros((4, 4), dtype=np.uint8)))
    (tmp_path / "a" / "wide.png").write_bytes(_png(np.zeros((4, 9), dtype=np.uint8)))
    with pytest.raises(DataFormatError, match="size=") as info:
        load_image_folder(tmp_path)
    assert "wide.png" in info.value.file
    assert load_image_folder(tmp_path, size=4).shape == (2, 4, 4, 3)
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataFormatError, match="readable image"):
        load_image_folder(tmp_path, size=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="image files"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(DataFormatError, match="no such path"):
        load_image_folder(tmp_path / "missing")


def test_zip_with_class_folders(tmp_path):
    with zipfile.ZipFile(tmp_path / "set.zip", "w") as archive:
        archive.writestr("b/x.png", _png(np.full((2, 2), 7, dtype=np.uint8)))
        archive.writestr("a/y.png", _png(np.full((2, 2), 9, dtype=np.uint8)))
        archive.writestr("top.png", _png(np.full((2, 2), 1, dtype=np.uint8)))
        archive.writestr("__MACOSX/a/._y.png", b"resource fork")
    images = load_image_folder(tmp_path / "set.zip", grayscale=True)
    assert images["stimulus_id"].values.tolist() == ["a/y", "b/x", "top"]
    assert images["label"].values.tolist() == [0, 1, -1]
    assert images.values[:, 0, 0].tolist() == [9, 7, 1]
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataFormatError):
        load_image_folder(tmp_path / "bad.zip")


def test_cowley_images_zip():
    if not COWLEY_ZIP.is_file():
        pytest.skip(
            f"Cowley et al. 2023 images not found at {COWLEY_ZIP} (present in the team's checkouts and CI only)"
        )
    from PIL import Image

    images = load_image_folder(COWLEY_ZIP)
    assert images.shape == (640, 112, 112, 3) and images.dtype == np.uint8
    assert images["stimulus_id"].values[0] == "image0001" and images["stimulus_id"].values[-1] == "image0640"
    assert (images["label"].values == -1).all()
    with zipfile.ZipFile(COWLEY_ZIP) as archive, Image.open(io.BytesIO(archive.read("image0640.jpg"))) as im:
        np.testing.assert_array_equal(images.values[-1], np.asarray(im.convert("RGB")))


# ----------------------------------------------------------------------------------------------------------
# ImageDataset


def test_image_dataset_shapes_scaling_and_loader(tmp_path, mnist):
    import torch
    from torch.utils.data import DataLoader, Dataset

    from neuromodels.datasets import ImageDataset

    dataset = ImageDataset(mnist[:64])
    assert isinstance(dataset, Dataset) and len(dataset) == 64
    tensor, label = dataset[0]
    assert tensor.shape == (1, 28, 28) and tensor.dtype == torch.float32 and label == 7
    np.testing.assert_allclose(tensor.numpy()[0], mnist.values[0] / 255.0, rtol=1e-6)
    batch, labels = next(iter(DataLoader(dataset, batch_size=16)))
    assert batch.shape == (16, 1, 28, 28) and labels.tolist() == mnist["label"].values[:16].tolist()

    _write_class_folder(tmp_path)
    rgb = ImageDataset(load_image_folder(tmp_path), transform=lambda t: t * 2)
    tensor, label = rgb[3]
    assert tensor.shape == (3, 6, 5) and label == 1 and float(tensor.max()) <= 2.0 and float(tensor.max()) > 1.0

    digits = ImageDataset(load_digits())
    tensor, label = digits[1]
    assert tensor.shape == (1, 8, 8) and label == 1 and 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
    with pytest.raises(DataFormatError, match=r"\[0, 1\]"):
        ImageDataset(load_digits() * 16)


def test_images_module_does_not_import_torch():
    code = "import sys, neuromodels.datasets.images; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ----------------------------------------------------------------------------------------------------------
# ImageFolderDataset: the same items, decoded on demand


def _zip_of(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.rglob("*.png")):
            archive.write(file, file.relative_to(folder).as_posix())
    return target


@pytest.mark.parametrize("options", [{}, {"size": (3, 4)}, {"grayscale": True}, {"size": 5, "grayscale": True}])
@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_image_folder_dataset_equals_the_eager_one(tmp_path, options, kind):
    import pickle

    import torch

    from neuromodels.datasets import ImageDataset, ImageFolderDataset

    _write_class_folder(tmp_path / "set")
    path = tmp_path / "set" if kind == "folder" else _zip_of(tmp_path / "set", tmp_path / "set.zip")
    eager_images = load_image_folder(path, **options)
    eager = ImageDataset(eager_images)
    lazy = ImageFolderDataset(path, **options)
    assert len(lazy) == len(eager) == 4
    assert lazy.stimulus_ids == eager_images["stimulus_id"].values.tolist()
    assert lazy.labels.tolist() == eager_images["label"].values.tolist() and lazy.classes == ["cat", "dog"]
    for i in range(-4, 4):
        (a, label_a), (b, label_b) = lazy[i], eager[i]
        assert torch.equal(a, b) and label_a == label_b
    # a copy in another process (DataLoader worker, forked rank) reopens the zip itself
    copy = pickle.loads(pickle.dumps(lazy))
    assert torch.equal(copy[2][0], eager[2][0])
    batch, labels = next(iter(torch.utils.data.DataLoader(lazy, batch_size=4)))
    assert torch.equal(batch, torch.stack([eager[i][0] for i in range(4)])) and labels.tolist() == [0, 0, 1, 1]
    with pytest.raises(IndexError):
        lazy[4]
    lazy.close()


def test_image_folder_dataset_reads_nothing_up_front(tmp_path, monkeypatch):
    from neuromodels.datasets import ImageFolderDataset

    _write_class_folder(tmp_path)
    decoded: list[str] = []
    real_decode = images_module._decode
    monkeypatch.setattr(
        images_module, "_decode", lambda data, where, *rest: decoded.append(where) or real_decode(data, where, *rest)
    )
    dataset = ImageFolderDataset(tmp_path)
    assert decoded == []  # construction decodes no image (only the first one's header is read, for its size)
    assert not any(isinstance(v, np.ndarray) and v.ndim >= 3 for v in vars(dataset).values())
    dataset[2]
    assert decoded == [f"{tmp_path}/dog/0.png"]


def test_image_folder_dataset_names_an_image_of_another_size_when_read(tmp_path):
    from neuromodels.datasets import ImageFolderDataset

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "small.png").write_bytes(_png(np.zeros((4, 4), dtype=np.uint8)))
    (tmp_path / "a" / "wide.png").write_bytes(_png(np.zeros((4, 9), dtype=np.uint8)))
    dataset = ImageFolderDataset(tmp_path, grayscale=True)
    assert dataset.shape == (4, 4) and dataset[0][0].shape == (1, 4, 4)
    with pytest.raises(DataFormatError, match="size=") as info:
        dataset[1]
    assert info.value.file.endswith("wide.png")
    with pytest.raises(DataFormatError, match="no such path"):
        ImageFolderDataset(tmp_path / "missing")


def test_every_name_in_all_resolves():
    # ImageDataset and ImageFolderDataset are created on first access (they need torch)
    pytest.importorskip("torch")
    for name in images_module.__all__:
        assert getattr(images_module, name) is not None
    assert images_module.ImageDataset.__name__ == "ImageDataset"
    assert images_module.ImageFolderDataset.__module__ == "neuromodels.datasets.images"
