#!/usr/bin/python3
"""The export step: a training run's newest good checkpoint to a model repository for
`cohort serve`, with the test accuracy computed offline from the same weights.

    /usr/bin/python3 export.py --ckpt-dir ckpt --data data.h5 --repository models [--name fashion-mnist]

Rebuilds the network from the checkpoint's metadata (train.py records the architecture
there), loads the weights with cohort.checkpoint (the newest checkpoint that verifies),
scores the test split, and writes REPOSITORY/NAME/config.yaml and REPOSITORY/NAME/V/model.pt
(TorchScript), V one above the newest version already there, as Triton lays a repository
out: input `image` FP32 [1, 28, 28] and output `logits` FP32 [10] per row, batches of up to
256 rows, dynamic batching on. Prints `offline_test_accuracy=…`, and writes it with the
version to --metrics-file (the figure alone to --accuracy-file), for comparing with what the
served model answers.
"""
import argparse
import json
import pathlib
import sys

import torch

import cohort.checkpoint as ckpt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import train  # noqa: E402  the networks and the data reader

CONFIG = """\
# Made by export.py from {ckpt} step {step}.
max_batch_size: 256
inputs:
  - {{name: image, datatype: FP32, dims: [1, 28, 28]}}
outputs:
  - {{name: logits, datatype: FP32, dims: [10]}}
dynamic_batching: {{max_queue_delay_us: 500, preferred_batch_sizes: [64, 128]}}
"""


class Served(torch.nn.Module):
    """The network with the V2 names: `image` in, `logits` out."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt-dir", required=True, type=pathlib.Path)
    p.add_argument("--data", required=True, type=pathlib.Path)
    p.add_argument("--repository", required=True, type=pathlib.Path)
    p.add_argument("--name", default="fashion-mnist")
    p.add_argument("--metrics-file", type=pathlib.Path)
    p.add_argument("--accuracy-file", type=pathlib.Path, help="write the offline test accuracy alone here")
    args = p.parse_args()

    step = ckpt.latest_step(args.ckpt_dir)
    if step is None:
        sys.exit(f"export: {args.ckpt_dir} holds no checkpoint: train first (train.py --ckpt-dir {args.ckpt_dir})")
    # The architecture first, then a network of that shape to load the weights into.
    probe = {}
    info = ckpt.load(probe, args.ckpt_dir, step=step)
    arch = info.get("metadata") or {}
    if "model" not in arch:
        sys.exit(f"export: {info['path']} does not record its architecture (train.py's metadata)")
    net = train.build(arch)
    state = {"model": net.state_dict()}
    loaded = ckpt.load_latest(state, args.ckpt_dir)
    net.load_state_dict(state["model"])
    net.eval()
    test_x, test_y = train.load_split(args.data, "test")
    _, accuracy = train.evaluate(net, test_x, test_y)

    folder = args.repository / args.name
    versions = [int(d.name) for d in folder.glob("*") if d.is_dir() and d.name.isdigit()]
    version = max(versions, default=0) + 1
    (folder / str(version)).mkdir(parents=True)
    torch.jit.script(Served(net)).save(str(folder / str(version) / "model.pt"))
    (folder / "config.yaml").write_text(CONFIG.format(ckpt=args.ckpt_dir, step=loaded["step"]))
    print(f"export: {folder}/{version}/model.pt from {loaded['path']} ({arch['model']}, width {arch['width']})")
    print(f"offline_test_accuracy={accuracy:.4f}", flush=True)
    if args.accuracy_file:
        args.accuracy_file.write_text(f"{accuracy:.4f}\n")
    if args.metrics_file:
        args.metrics_file.write_text(json.dumps({"offline_test_accuracy": accuracy, "version": version,
                                                 "checkpoint": str(loaded["path"])}, indent=2) + "\n")


if __name__ == "__main__":
    main()
