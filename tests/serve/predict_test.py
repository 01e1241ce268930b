#!/usr/bin/python3
"""`cohort serve predict` over HDF5 and .npy inputs, as one process and as two workers.

    predict_test.py COHORT_BIN

The models are TorchScript files made here with Python torch; inputs are written with h5py
and NumPy, and outputs read back with them. Two workers are two processes given
SLURM_PROCID=0/1, SLURM_NTASKS=2 and SLURM_STEP_ID, as srun would start them. A worker
killed mid-run is simulated with cohort's documented testing hook
COHORT_PREDICT_KILL_AFTER_SHARDS, which makes the process SIGKILL itself once it has written
that many shards.
"""
import os
import signal
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

COHORT = None
ROWS = 1000
BATCH = 32
SHARD_ROWS = 128  # 8 shards of 1000 rows


def run(args, env=None, check=True):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE"))}
    full_env.update(env or {})
    proc = subprocess.run([COHORT, "serve", "predict"] + args, capture_output=True, text=True, env=full_env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def worker(index, count):
    return {"SLURM_PROCID": str(index), "SLURM_NTASKS": str(count), "SLURM_STEP_ID": "0"}


class Predict(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        torch.manual_seed(0)
        mlp = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        cls.model = f"{cls.dir}/mlp.pt"
        torch.jit.script(mlp).save(cls.model)
        os.makedirs(f"{cls.dir}/repo/mlp/1")
        torch.jit.script(mlp).save(f"{cls.dir}/repo/mlp/1/model.pt")
        with open(f"{cls.dir}/repo/mlp/config.yaml", "w") as f:
            f.write("max_batch_size: 8\n"
                    "inputs: [{name: x, datatype: FP32, dims: [4]}]\n"
                    "outputs: [{name: y, datatype: FP32, dims: [3]}]\n")
        cls.x = np.random.default_rng(1).standard_normal((ROWS, 4)).astype(np.float32)
        with h5py.File(f"{cls.dir}/x.h5", "w") as f:
            f["data/features"] = cls.x
        np.save(f"{cls.dir}/x.npy", cls.x)
        np.save(f"{cls.dir}/x_big_endian.npy", cls.x.astype(">f4"))
        with torch.inference_mode():
            cls.expected = mlp(torch.from_numpy(cls.x)).numpy()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return f"{self.dir}/{self._testMethodName}-{name}"

    def predict(self, output, extra=(), env=None, check=True, input_name="x.h5"):
        return run(["--model", self.model, "--input", f"{self.dir}/{input_name}", "--output", output,
                    "--batch-size", str(BATCH), "--shard-rows", str(SHARD_ROWS)] + list(extra), env, check)

    def read(self, output):
        if output.endswith(".npy"):
            return np.load(output)
        with h5py.File(output) as f:
            return f["predictions"][()]

    def test_two_workers_equal_one_process_bit_for_bit(self):
        one, two = self.path("one.h5"), self.path("two.h5")
        self.predict(one)
        procs = [subprocess.Popen([COHORT, "serve", "predict", "--model", self.model, "--input", f"{self.dir}/x.h5",
                                   "--output", two, "--batch-size", str(BATCH), "--shard-rows", str(SHARD_ROWS)],
                                  env={**os.environ, **worker(i, 2)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in (0, 1)]
        outs = [p.communicate(timeout=120) for p in procs]
        self.assertEqual([p.returncode for p in procs], [0, 0], outs)
        # One of them joined; the other, finishing together with it, may say that it did.
        self.assertEqual(sum("serve predict: wrote " in out for out, _ in outs), 1, outs)
        for _, err in outs:
            self.assertIn("predicted 4 shard(s)", err)
        a, b = self.read(one), self.read(two)
        self.assertEqual(a.shape, (ROWS, 3))
        self.assertEqual(a.tobytes(), b.tobytes())
        np.testing.assert_allclose(a, self.expected, rtol=1e-5, atol=1e-6)
        self.assertEqual(sorted(os.listdir(two + ".parts")), ["plan.json", "written"])

    def test_a_batch_script_outside_any_step_is_one_worker(self):
        out = self.path("out.h5")
        proc = self.predict(out, env={"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "7"})
        self.assertIn("worker 0 of 1: predicted 8 shard(s)", proc.stderr)
        np.testing.assert_allclose(self.read(out), self.expected, rtol=1e-5, atol=1e-6)

    def test_npy_in_either_byte_order_and_out(self):
        ref = self.path("ref.h5")
        self.predict(ref)
        for name in ("x.npy", "x_big_endian.npy"):
            out = self.path(name)
            self.predict(out, input_name=name)
            self.assertEqual(np.load(out).tobytes(), self.read(ref).tobytes(), name)

    def test_a_killed_worker_redoes_only_its_unfinished_shards(self):
        out, ref = self.path("out.h5"), self.path("ref.h5")
        self.predict(ref)
        killed = self.predict(out, env={**worker(1, 2), "COHORT_PREDICT_KILL_AFTER_SHARDS": "1"}, check=False)
        self.assertEqual(killed.returncode, -signal.SIGKILL, killed.stderr)
        parts = sorted(os.listdir(out + ".parts"))
        self.assertIn("shard-000001.npy", parts)
        kept = os.stat(f"{out}.parts/shard-000001.npy").st_mtime_ns
        first = self.predict(out, env=worker(0, 2))
        self.assertIn("predicted 4 shard(s)", first.stderr)
        self.assertIn("5 of 8 shards done", first.stderr)
        self.assertEqual(os.stat(f"{out}.parts/shard-000001.npy").st_mtime_ns, kept)
        rerun = self.predict(out, env=worker(1, 2))
        self.assertIn("predicted 3 shard(s)", rerun.stderr)
        self.assertIn("1 of its shards were done before", rerun.stderr)
        self.assertEqual(self.read(out).tobytes(), self.read(ref).tobytes())
        # Worker 0 starting only now finds the output written and leaves it alone.
        written = os.stat(out).st_mtime_ns
        late = self.predict(out, env=worker(0, 2))
        self.assertIn("written already from all 8 shards; nothing to do", late.stdout)
        self.assertEqual(os.stat(out).st_mtime_ns, written)

    def test_a_model_folder_with_its_config_takes_its_batch_size(self):
        out = self.path("out.h5")
        run(["--model", f"{self.dir}/repo/mlp", "--input", f"{self.dir}/x.h5", "--output", out])
        np.testing.assert_allclose(self.read(out), self.expected, rtol=1e-5, atol=1e-6)
        too_big = run(["--model", f"{self.dir}/repo", "--input", f"{self.dir}/x.h5", "--output", self.path("b.h5"),
                       "--batch-size", "16"], check=False)
        self.assertEqual(too_big.returncode, 2)
        self.assertIn("at most 8 (max_batch_size)", too_big.stderr)

    def refused(self, args, *words, code=2):
        out = self.path("out.h5")
        proc = run(["--output", out] + args, check=False)
        self.assertEqual(proc.returncode, code, proc.stderr)
        self.assertEqual(proc.stderr.count("\n"), 1, proc.stderr)
        for word in words:
            self.assertIn(word, proc.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".parts"))

    def test_bad_inputs_are_refused_by_name_leaving_nothing(self):
        d = self.dir
        with h5py.File(f"{d}/two.h5", "w") as f:
            f["a"] = self.x
            f["b"] = self.x
        with h5py.File(f"{d}/double.h5", "w") as f:
            f["x"] = self.x.astype(np.float64)
        with h5py.File(f"{d}/wide.h5", "w") as f:
            f["x"] = np.zeros((10, 5), np.float32)
        np.save(f"{d}/fortran.npy", np.asfortranarray(self.x))
        with open(f"{d}/bad.npy", "wb") as f:
            f.write(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'")
        model = ["--model", self.model]
        self.refused(model + ["--input", f"{d}/missing.h5"], "missing.h5", "no such file")
        self.refused(model + ["--input", f"{d}/x.h5", "--input-dataset", "nope"], "nope", "data/features")
        self.refused(model + ["--input", f"{d}/two.h5"], "2 datasets", "--input-dataset")
        self.refused(model + ["--input", f"{d}/double.h5"], "float64", "FP32", "astype")
        self.refused(model + ["--input", f"{d}/wide.h5"], "wide.h5", "[5]", "do not fit the model")
        self.refused(["--model", f"{d}/repo/mlp", "--input", f"{d}/wide.h5"], "[-1, 4]")
        self.refused(model + ["--input", f"{d}/fortran.npy"], "fortran.npy", "ascontiguousarray")
        self.refused(model + ["--input", f"{d}/bad.npy"], "bad.npy", "cut short")
        self.refused(model + ["--input", f"{d}/x.h5.npy"], "x.h5.npy")
        self.refused(["--model", f"{d}/nomodel.pt", "--input", f"{d}/x.h5"], "nomodel.pt")
        self.refused(["--model", f"{d}/x.npy", "--input", f"{d}/x.h5"], "not a TorchScript model")
        self.refused(model, "--input")

    def test_an_existing_output_or_another_runs_shards_are_not_overwritten(self):
        mine = self.path("mine.h5")
        with h5py.File(mine, "w") as f:
            f["predictions"] = np.zeros(3)
        again = self.predict(mine, check=False)
        self.assertEqual(again.returncode, 2)
        self.assertIn("exists already", again.stderr)
        self.assertEqual(self.read(mine).tolist(), [0, 0, 0])
        out = self.path("out.h5")
        self.predict(out)
        os.remove(out)
        gone = self.predict(out, check=False)
        self.assertEqual(gone.returncode, 2)
        self.assertIn("was written, but it is gone", gone.stderr)
        half = self.path("half.h5")
        self.predict(half, env=worker(0, 2))
        other = run(["--model", self.model, "--input", f"{self.dir}/x.h5", "--output", half, "--shard-rows", "64"],
                    worker(1, 2), check=False)
        self.assertEqual(other.returncode, 2)
        self.assertIn("shard_rows was 128, now 64", other.stderr)
        self.assertEqual(len([n for n in os.listdir(half + ".parts") if n.startswith("shard-")]), 4)


if __name__ == "__main__":
    COHORT = sys.argv.pop(1)
    unittest.main(verbosity=2)
