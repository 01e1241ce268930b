# A model repository REPO holding `slow`: some 20 ms a request on one CPU, so that a few
# clients keep requests waiting in the serve cluster tests. TorchScript reads the class's
# source, so this is a file.
#   serve_slow_model.py REPO
import os, sys, torch
repo = sys.argv[1]
os.makedirs(f"{repo}/slow/1", exist_ok=True)
class Slow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(256, 256) / 16)
    def forward(self, x):
        h = x.repeat(1, 64)
        for _ in range(2000):
            h = torch.tanh(h @ self.w)
        return h[:, :2]
torch.jit.script(Slow()).save(f"{repo}/slow/1/model.pt")
with open(f"{repo}/slow/config.yaml", "w") as f:
    f.write("max_batch_size: 8\ninputs: [{name: x, datatype: FP32, dims: [4]}]\n"
            "outputs: [{name: y, datatype: FP32, dims: [2]}]\n")
