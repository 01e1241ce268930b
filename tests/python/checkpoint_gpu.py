"""CUDA tensors through cohort.checkpoint: staged to the host once on save, loaded back onto
the device. Exits 77 (skipped) without a CUDA device."""
import sys
import tempfile

import torch

import cohort.checkpoint as ckpt


def main():
    if not torch.cuda.is_available():
        print("skipped: no CUDA device visible to torch")
        return 77
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 32).cuda()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(8, 64, device="cuda")).sum().backward()
    optimizer.step()
    with tempfile.TemporaryDirectory() as d:
        ckpt.save({"model": model.state_dict(), "optim": optimizer.state_dict()}, d, 1, async_=True).wait()
        other = torch.nn.Linear(64, 32).cuda()
        other_optimizer = torch.optim.Adam(other.parameters())
        state = {"model": other.state_dict(), "optim": other_optimizer.state_dict()}
        ckpt.load(state, d)
        other.load_state_dict(state["model"])
        other_optimizer.load_state_dict(state["optim"])
    for a, b in zip(model.parameters(), other.parameters()):
        assert b.is_cuda and torch.equal(a, b)
    for p, q in zip(model.parameters(), other.parameters()):
        sa, sb = optimizer.state[p], other_optimizer.state[q]
        assert sb["exp_avg"].is_cuda and torch.equal(sa["exp_avg"], sb["exp_avg"])
    print("CUDA state round trip: bit-exact, back on the device")
    return 0


if __name__ == "__main__":
    sys.exit(main())
