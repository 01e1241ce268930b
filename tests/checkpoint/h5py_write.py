"""Writes a checkpoint with h5py and NumPy alone, following docs/checkpoint-format.md, for
the test that cohort loads it: step 5, emb = arange(18) / 4 as float32 [6, 3] and
count = 42 as a scalar int64.

usage: h5py_write.py DIR [--version 2|1]

Version 2 (the default) is what cohort writes today, as 2 ranks would: rows 0-3 of emb in
rank-00000.h5, rows 4-5 in rank-00001.h5, count in state.h5 itself, and state.h5 an index of
virtual datasets over the rank files. Version 1 is the older single file, which cohort
still loads."""
import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from h5py_read import crc32c  # noqa: E402

STEP = 5
TIME = "2026-01-01T00:00:00Z"
TENSORS = {"emb": np.arange(18, dtype=np.float32).reshape(6, 3) / np.float32(4), "count": np.int64(42)}
METADATA = {"epoch": 2, "hyperparameters": {"lr": 0.01}, "rng": {}, "attributes": {"writer": "h5py"}}
# The rows of emb each rank holds, as a sharded tensor's rows are split.
ROWS = [(0, 4), (4, 6)]


def root_attributes(f: h5py.File, version: int, world_size: int) -> None:
    f.attrs["cohort.format_version"] = np.int64(version)
    f.attrs["cohort.step"] = np.int64(STEP)
    f.attrs["cohort.world_size"] = np.int64(world_size)
    f.attrs["cohort.metadata"] = json.dumps(dict(METADATA, step=STEP, world_size=world_size, time=TIME))


def tensor_entry(key: str, value, sharding: str) -> dict:
    value = np.asarray(value)
    return {
        "name": key,
        "dtype": str(value.dtype),
        "shape": list(value.shape),
        "sharding": sharding,
        "bytes": value.nbytes,
        "crc32c": crc32c(np.ascontiguousarray(value).tobytes()),
        "compressed": False,
    }


def offset_of(path: Path, key: str) -> int:
    # HDF5 places a dataset's data when it is written; read back where, from the closed file.
    with h5py.File(path, "r") as f:
        return f[f"tensors/{key}"].id.get_offset()


def piece(file: str, row: int, value, offset: int) -> dict:
    value = np.asarray(value)
    return {"file": file, "row": row, "shape": list(value.shape), "offset": offset, "bytes": value.nbytes,
            "crc32c": crc32c(np.ascontiguousarray(value).tobytes())}


def write_version_2(tmp: Path) -> dict:
    emb, count = TENSORS["emb"], TENSORS["count"]
    pieces = []
    for rank, (first, end) in enumerate(ROWS):
        name = f"rank-{rank:05d}.h5"
        with h5py.File(tmp / name, "w") as f:
            f.create_dataset("tensors/emb", data=emb[first:end])  # contiguous, h5py's default
            f.attrs["cohort.format_version"] = np.int64(2)
            f.attrs["cohort.step"] = np.int64(STEP)
            f.attrs["cohort.rank"] = np.int64(rank)
        pieces.append(piece(name, first, emb[first:end], offset_of(tmp / name, "emb")))
    with h5py.File(tmp / "state.h5", "w") as f:
        layout = h5py.VirtualLayout(shape=emb.shape, dtype=emb.dtype)
        for p in pieces:
            # Relative names: HDF5 finds the rank files beside state.h5 wherever it is moved.
            source = h5py.VirtualSource(p["file"], "tensors/emb", shape=tuple(p["shape"]))
            layout[p["row"]:p["row"] + p["shape"][0]] = source
        f.create_virtual_dataset("tensors/emb", layout)
        f.create_dataset("tensors/count", data=count)  # a scalar lives in the index itself
        root_attributes(f, 2, len(ROWS))
    emb_entry = dict(tensor_entry("emb", emb, "rows"), pieces=pieces)
    count_entry = dict(tensor_entry("count", count, "replicated"),
                       pieces=[piece("state.h5", 0, count, offset_of(tmp / "state.h5", "count"))])
    files = ["state.h5"] + [f"rank-{rank:05d}.h5" for rank in range(len(ROWS))]
    return {"world_size": len(ROWS), "files": files, "tensors": [emb_entry, count_entry]}


def write_version_1(tmp: Path) -> dict:
    with h5py.File(tmp / "state.h5", "w") as f:
        for key, value in TENSORS.items():
            f.create_dataset(f"tensors/{key}", data=value)
        root_attributes(f, 1, 1)
    tensors = [tensor_entry(key, value, "replicated") for key, value in TENSORS.items()]
    return {"world_size": 1, "files": ["state.h5"], "tensors": tensors}


def main(directory: Path, version: int) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{STEP:08d}"
    # Written in a hidden directory and renamed into place: the rename is the commit.
    tmp = directory / f".{name}.tmp-h5py"
    tmp.mkdir()
    written = write_version_2(tmp) if version == 2 else write_version_1(tmp)
    manifest = {
        "format": "cohort-checkpoint",
        "format_version": version,
        "step": STEP,
        "time": TIME,
        "world_size": written["world_size"],
        "files": [{"name": f, "bytes": os.path.getsize(tmp / f)} for f in written["files"]],
        "tensors": written["tensors"],
        "metadata": METADATA,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    os.rename(tmp, directory / name)
    (directory / "latest").write_text(name + "\n")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    version = 2
    if len(args) == 3 and args[1] == "--version" and args[2] in ("1", "2"):
        version = int(args[2])
    elif len(args) != 1:
        sys.exit("usage: h5py_write.py DIR [--version 2|1]")
    sys.exit(main(Path(args[0]), version))
