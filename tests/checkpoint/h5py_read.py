"""Reads a cohort checkpoint with h5py and NumPy alone, as docs/checkpoint-format.md
describes, and checks it against what tests/checkpoint/mpi_test.cpp saved:
w[row, col] = value_at(3, row * 5 + col), ids[row] = row, scale = 2.5, written by 2 ranks.
Also recomputes each tensor's CRC32C from the manifest's definition."""
import json
import sys
from pathlib import Path

import h5py
import numpy as np

STEP = 3


def crc32c(data: bytes) -> int:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ table[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def main(path: Path) -> int:
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "cohort-checkpoint", manifest["format"]
    assert manifest["step"] == STEP and manifest["world_size"] == 2, manifest

    with h5py.File(path / "state.h5", "r") as f:
        assert f.attrs["cohort.step"] == STEP
        assert f.attrs["cohort.world_size"] == 2
        meta = json.loads(f.attrs["cohort.metadata"])
        assert meta["epoch"] == 1 and meta["attributes"]["written_by"] == 2, meta

        index = np.arange(37 * 5, dtype=np.float64).reshape(37, 5)
        expected_w = (STEP * 1000.0 + (index % 997) * 0.5).astype(np.float32)
        w = f["tensors/w"][...]
        assert w.dtype == np.float32 and w.shape == (37, 5), (w.dtype, w.shape)
        np.testing.assert_array_equal(w, expected_w)
        np.testing.assert_array_equal(f["tensors/ids"][...], np.arange(37, dtype=np.int64))
        assert f["tensors/scale"][()] == np.float32(2.5)

        for t in manifest["tensors"]:
            data = f["tensors/" + t["name"]][...]
            assert str(data.dtype) == t["dtype"], (t, data.dtype)
            assert list(data.shape) == t["shape"], (t, data.shape)
            got = crc32c(np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes())
            assert got == t["crc32c"], (t["name"], hex(got), hex(t["crc32c"]))
    print("h5py read", path, "and its values and checksums match")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
