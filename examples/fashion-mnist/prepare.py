#!/usr/bin/python3
"""The data step: Fashion-MNIST's IDX files to normalised train/validation/test splits in HDF5.

    /usr/bin/python3 prepare.py --out data.h5 [--validation 5000] [--limit N] [--seed 0]

Reads the four gzipped IDX files of Debian's dataset-fashion-mnist package (or --source),
checks their magic numbers and sizes, scales the pixels to [0, 1] and normalises them with
the training set's mean and standard deviation, and holds --validation training images out,
chosen by --seed. Writes one HDF5 file with the datasets train/images (N, 1, 28, 28 float32),
train/labels (N int64), and the same under validation/ and test/; its attributes record the
source files' SHA-256, the normalisation and the split. Prints the file's SHA-256, the
artifact's digest. --limit keeps the first N training images (a tenth of them for validation at most) and N/6
test images: a quick run.
"""
import argparse
import gzip
import hashlib
import os
import pathlib
import struct
import sys

import h5py
import numpy as np

SOURCE = pathlib.Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def fail(message):
    print(f"prepare: {message}", file=sys.stderr)
    sys.exit(2)


def read_idx(path, rank):
    """An IDX file's array (http://yann.lecun.com/exdb/mnist/: magic 0x0000_08_RANK, sizes)."""
    try:
        data = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        fail(f"{path} is missing: install Debian's dataset-fashion-mnist package "
             "(apt-get install dataset-fashion-mnist), or give its folder with --source")
    except (OSError, EOFError) as e:
        fail(f"{path}: not a readable gzip file ({e})")
    if len(data) < 4 + 4 * rank:
        fail(f"{path}: {len(data)} bytes, too short for an IDX header")
    magic, = struct.unpack(">I", data[:4])
    if magic != 0x0800 | rank:
        fail(f"{path}: magic number {magic:#010x}, not an unsigned-byte IDX file of rank {rank} "
             f"({0x0800 | rank:#010x})")
    shape = struct.unpack(f">{rank}I", data[4:4 + 4 * rank])
    body = data[4 + 4 * rank:]
    if len(body) != int(np.prod(shape)):
        fail(f"{path}: the header says {shape} ({int(np.prod(shape))} bytes) but {len(body)} follow")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--source", type=pathlib.Path, default=SOURCE)
    parser.add_argument("--validation", type=int, default=5000, help="training images held out")
    parser.add_argument("--limit", type=int, default=0, help="keep only this many training images")
    parser.add_argument("--seed", type=int, default=0, help="chooses the validation images")
    args = parser.parse_args()

    arrays = {k: read_idx(args.source / f, 3 if k.endswith("images") else 1) for k, f in FILES.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            fail(f"the {split} set has {len(arrays[f'{split}_images'])} images "
                 f"but {len(arrays[f'{split}_labels'])} labels")
    train_x, train_y = arrays["train_images"], arrays["train_labels"]
    test_x, test_y = arrays["test_images"], arrays["test_labels"]
    if args.limit:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
        keep = max(args.limit // 6, 1)
        test_x, test_y = test_x[:keep], test_y[:keep]
    held = min(args.validation, len(train_x) // 10) if args.limit else args.validation
    if not 0 < held < len(train_x):
        fail(f"--validation {args.validation}: must leave training images ({len(train_x)} in all)")

    order = np.random.default_rng(args.seed).permutation(len(train_x))
    val_idx, train_idx = np.sort(order[:held]), np.sort(order[held:])
    scaled = train_x[train_idx].astype(np.float32) / 255.0
    mean, std = float(scaled.mean()), float(scaled.std())

    def normalise(x):
        return ((x.astype(np.float32) / 255.0 - mean) / std)[:, None, :, :]

    splits = {
        "train": (normalise(train_x[train_idx]), train_y[train_idx]),
        "validation": (normalise(train_x[val_idx]), train_y[val_idx]),
        "test": (normalise(test_x), test_y),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + f".partial-{os.getpid()}")
    with h5py.File(partial, "w") as f:
        for name, (x, y) in splits.items():
            f.create_dataset(f"{name}/images", data=x)
            f.create_dataset(f"{name}/labels", data=y.astype(np.int64))
        f.attrs["mean"], f.attrs["std"] = mean, std
        f.attrs["seed"] = args.seed
        f.attrs["classes"] = CLASSES
        for key, name in FILES.items():
            f.attrs[f"sha256.{name}"] = hashlib.sha256((args.source / name).read_bytes()).hexdigest()
    os.replace(partial, args.out)  # a reader never sees half a file
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    sizes = ", ".join(f"{name} {len(y)}" for name, (_, y) in splits.items())
    print(f"prepare: {args.out}: {sizes}; mean {mean:.4f}, std {std:.4f}; sha256 {digest}")


if __name__ == "__main__":
    main()
