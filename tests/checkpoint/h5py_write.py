"""Writes a checkpoint with h5py and NumPy alone, following docs/checkpoint-format.md, for
the test that cohort loads it: step 5, emb = arange(18) / 4 as float32 [6, 3] and
count = 42 as a scalar int64. usage: h5py_write.py DIR"""
import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from h5py_read import crc32c  # noqa: E402

STEP = 5


def main(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{STEP:08d}"
    tmp = directory / f".{name}.tmp-h5py"
    tmp.mkdir()
    tensors = {"emb": np.arange(18, dtype=np.float32).reshape(6, 3) / np.float32(4), "count": np.int64(42)}
    metadata = {"epoch": 2, "hyperparameters": {"lr": 0.01}, "rng": {}, "attributes": {"writer": "h5py"}}
    with h5py.File(tmp / "state.h5", "w") as f:
        for key, value in tensors.items():
            f.create_dataset(f"tensors/{key}", data=value)
        f.attrs["cohort.format_version"] = np.int64(1)
        f.attrs["cohort.step"] = np.int64(STEP)
        f.attrs["cohort.world_size"] = np.int64(1)
        f.attrs["cohort.metadata"] = json.dumps(dict(metadata, step=STEP, world_size=1, time="2026-01-01T00:00:00Z"))
    manifest = {
        "format": "cohort-checkpoint",
        "format_version": 1,
        "step": STEP,
        "time": "2026-01-01T00:00:00Z",
        "world_size": 1,
        "files": [{"name": "state.h5", "bytes": os.path.getsize(tmp / "state.h5")}],
        "tensors": [
            {
                "name": key,
                "dtype": str(np.asarray(value).dtype),
                "shape": list(np.shape(value)),
                "sharding": "replicated",
                "bytes": np.asarray(value).nbytes,
                "crc32c": crc32c(np.ascontiguousarray(value).tobytes()),
            }
            for key, value in tensors.items()
        ],
        "metadata": metadata,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    os.rename(tmp, directory / name)
    (directory / "latest").write_text(name + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
