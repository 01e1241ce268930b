"""Reads what `cohort ckpt export` wrote, with NumPy alone, and checks the values the
export test saved: w = arange(12) * 0.5 as float32 [3, 4], ids = arange(5) * 7 as int64,
half = [1.0, -2.5] as float16, flags = [True, False, True], lr = 0.125 (scalar float64).
usage: export_read.py FILE.npz|FILE.safetensors"""
import json
import struct
import sys

import numpy as np

EXPECTED = {
    "w": np.arange(12, dtype=np.float32).reshape(3, 4) * np.float32(0.5),
    "ids": np.arange(5, dtype=np.int64) * 7,
    "half": np.array([1.0, -2.5], dtype=np.float16),
    "flags": np.array([True, False, True]),
    "lr": np.array(0.125, dtype=np.float64),
}

SAFETENSORS_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I64": np.int64, "BOOL": np.bool_}


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__")
    assert meta["cohort.step"] == "9", meta
    data = raw[8 + n :]
    end = 0
    out = {}
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, stop = t["data_offsets"]
        assert begin == end, "safetensors needs the data without gaps"
        end = stop
        out[name] = np.frombuffer(data[begin:stop], dtype=SAFETENSORS_DTYPES[t["dtype"]]).reshape(t["shape"])
    assert end == len(data), "the data must be fully indexed"
    return out


def main(path):
    if path.endswith(".npz"):
        with np.load(path) as npz:
            got = {k: npz[k] for k in npz.files}
    else:
        got = read_safetensors(path)
    assert sorted(got) == sorted(EXPECTED), sorted(got)
    for name, want in EXPECTED.items():
        assert got[name].dtype == want.dtype, (name, got[name].dtype, want.dtype)
        assert got[name].shape == want.shape, (name, got[name].shape, want.shape)
        np.testing.assert_array_equal(got[name], want)
    print("read", path, "and its values match")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
