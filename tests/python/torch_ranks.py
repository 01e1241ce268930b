"""One rank of a torch.distributed test of the cohort backend: run under mpirun, or as a
plain process with RANK and WORLD_SIZE, as `torch_ranks.py SCENARIO` (test_torch_backend.py
does). Each scenario checks what every rank
sees and prints "OK SCENARIO" on each rank when all of it held; anything else fails the run.

The launch contract comes from Open MPI's variables, as `cohort launch` under SLURM_MPI_TYPE=pmix would set
it; MASTER_ADDR/MASTER_PORT (the store torch's env:// rendezvous uses) come from the test.
"""
import datetime
import os
import sys
import warnings

import numpy as np
import torch
import torch.distributed as dist

os.environ.setdefault("RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
os.environ.setdefault("WORLD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))

import cohort.torch  # noqa: E402  registers the backend

# torch 1.13 warns that all_reduce_coalesced will be deprecated; it is what is tested here.
warnings.filterwarnings("ignore", message=".*all_reduce_coalesced will be deprecated")

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32, torch.int64,
          torch.uint8]
OPS = {"SUM": dist.ReduceOp.SUM, "AVG": dist.ReduceOp.AVG, "MIN": dist.ReduceOp.MIN,
       "MAX": dist.ReduceOp.MAX, "PRODUCT": dist.ReduceOp.PRODUCT}


def inputs(rank, n, dtype):
    """Rank `rank`'s input, as float64 NumPy: small whole numbers that every dtype holds
    exactly and whose products over four ranks stay below 256."""
    return ((np.arange(n) + 3 * rank) % 4 + 1).astype(np.float64)


def as_tensor(values, dtype):
    return torch.from_numpy(values.copy()).to(dtype)  # never the reference's own memory


def reference(op, rank_values, dtype):
    stack = np.stack(rank_values)
    if op == "SUM":
        out = stack.sum(0)
    elif op == "AVG":
        out = stack.sum(0)
        out = out // len(rank_values) if not dtype.is_floating_point else out / len(rank_values)
    elif op == "MIN":
        out = stack.min(0)
    elif op == "MAX":
        out = stack.max(0)
    else:
        out = stack.prod(0)
    return out


def same(got, want, dtype, what):
    got = got.to(torch.float64).numpy()
    # Whole numbers are exact in every type; averages are rounded once, to the type.
    tol = {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-6}.get(dtype, 1e-12)
    if not np.allclose(got, want, rtol=tol, atol=tol):
        raise AssertionError(f"{what} {dtype}: got {got[:8]}, want {want[:8]}")


def scenario_ops(rank, size):
    n = 1000  # several chunks of cohort's own paths for every width, and not a multiple of 4
    for dtype in DTYPES:
        everyone = [inputs(r, n, dtype) for r in range(size)]
        for name, op in OPS.items():
            t = as_tensor(everyone[rank], dtype)
            before = t.data_ptr()
            dist.all_reduce(t, op=op)
            assert t.data_ptr() == before, "all_reduce works in place"
            same(t, reference(name, everyone, dtype), dtype, f"all_reduce {name}")

        # In place on a view: only the view's elements of the larger tensor change.
        big = torch.zeros(n + 8, dtype=dtype)
        big[4:4 + n] = as_tensor(everyone[rank], dtype)
        dist.all_reduce(big[4:4 + n])
        same(big[4:4 + n], reference("SUM", everyone, dtype), dtype, "all_reduce of a view")
        assert big[:4].eq(0).all() and big[4 + n:].eq(0).all(), "the view's neighbours are untouched"

        coalesced = [as_tensor(everyone[rank][:10], dtype), as_tensor(everyone[rank][10:], dtype).view(-1, 10)]
        dist.all_reduce_coalesced(coalesced, op=dist.ReduceOp.MAX)
        same(torch.cat([c.reshape(-1) for c in coalesced]), reference("MAX", everyone, dtype), dtype,
             "all_reduce_coalesced")

        t = as_tensor(everyone[rank], dtype)
        dist.broadcast(t, src=size - 1)
        same(t, everyone[size - 1], dtype, "broadcast")

        gathered = [torch.empty(n, dtype=dtype) for _ in range(size)]
        dist.all_gather(gathered, as_tensor(everyone[rank], dtype))
        for r in range(size):
            same(gathered[r], everyone[r], dtype, f"all_gather block {r}")
        whole = torch.empty(size * n, dtype=dtype)
        dist.all_gather_into_tensor(whole, as_tensor(everyone[rank], dtype))
        same(whole, np.concatenate(everyone), dtype, "all_gather_into_tensor")

        blocks = n // size
        block_inputs = [everyone[rank][r * blocks:(r + 1) * blocks] for r in range(size)]
        out = torch.empty(blocks, dtype=dtype)
        dist.reduce_scatter(out, [as_tensor(b, dtype) for b in block_inputs])
        want = reference("SUM", [e[:size * blocks] for e in everyone], dtype)[rank * blocks:(rank + 1) * blocks]
        same(out, want, dtype, "reduce_scatter")
        out = torch.empty(blocks, dtype=dtype)
        dist.reduce_scatter_tensor(out, as_tensor(everyone[rank][:size * blocks], dtype), op=dist.ReduceOp.MIN)
        want = reference("MIN", [e[:size * blocks] for e in everyone], dtype)[rank * blocks:(rank + 1) * blocks]
        same(out, want, dtype, "reduce_scatter_tensor")
    dist.barrier()


def expect_error(what, call, *fragments):
    """`call` raises RuntimeError on this rank with every fragment in its message."""
    try:
        call()
    except RuntimeError as error:
        message = str(error)
        missing = [f for f in fragments if f not in message]
        if missing:
            raise AssertionError(f"{what}: the error lacks {missing}: {message}")
        print(f"rank {dist.get_rank()}: {what}: {message}", flush=True)
        return
    raise AssertionError(f"{what}: no error")


def still_works(size):
    t = torch.ones(4)
    dist.all_reduce(t)
    assert t.eq(size).all(), "the group works after an error"


def scenario_errors(rank, size):
    expect_error("sizes differ", lambda: dist.all_reduce(torch.ones(3 + rank)),
                 "cohort backend: allreduce", "different numbers of elements")
    still_works(size)

    def noncontiguous():
        t = torch.ones(4, 6)
        dist.all_reduce(t.t() if rank == 1 else t)
    expect_error("non-contiguous on rank 1", noncontiguous, "allreduce",
                 "not contiguous" if rank == 1 else "rank 1 passed a non-contiguous")
    still_works(size)

    expect_error("a reduction the backend lacks", lambda: dist.all_reduce(torch.ones(4, dtype=torch.int32),
                                                                          op=dist.ReduceOp.BAND),
                 "cohort backend: allreduce", "gloo has BAND")
    still_works(size)
    expect_error("a dtype the backend lacks", lambda: dist.all_reduce(torch.ones(4, dtype=torch.int16)),
                 "torch.Short", "is not one the cohort backend carries")
    still_works(size)
    expect_error("dtypes differ", lambda: dist.all_reduce(torch.ones(4, dtype=torch.float32 if rank else torch.float64)),
                 "different dtypes")
    still_works(size)
    expect_error("an operation the backend lacks", lambda: dist.all_to_all_single(torch.ones(size), torch.ones(size)),
                 "cohort backend: alltoall_base", "does not support it", "gloo")
    still_works(size)
    expect_error("all_gather with a short output list",
                 lambda: dist.all_gather([torch.empty(2)] * (size - 1 if rank == 0 else size), torch.ones(2)),
                 "allgather", "rank 0 passed a tensor list of the wrong length" if rank else "pass one per rank")
    still_works(size)


def scenario_async(rank, size):
    tensors = [torch.full((1000 * (i + 1),), float(i + rank)) for i in range(12)]
    works = [dist.all_reduce(t, async_op=True) for t in tensors]
    futures = [w.get_future() for w in works]
    chained = futures[3].then(lambda fut: fut.value()[0].sum().item())
    works[-1].wait()
    # Run in the order issued: the last one done means every earlier one is.
    assert all(w.is_completed() for w in works), "earlier work completed before later work"
    for i, (w, t) in enumerate(zip(works, tensors)):
        w.wait()
        expected = float(sum(i + r for r in range(size)))
        assert t.eq(expected).all(), f"async all_reduce {i}"
        assert futures[i].value()[0] is not None and futures[i].value()[0].data_ptr() == t.data_ptr()
    assert chained.wait() == 4000 * float(sum(3 + r for r in range(size)))
    # A future asked for only after the work is done comes done, with the work's tensors.
    late = torch.full((10,), float(rank))
    work = dist.all_reduce(late, async_op=True)
    work.wait()
    future = work.get_future()
    assert future.done() and future.value()[0].data_ptr() == late.data_ptr(), "late future"
    assert future.then(lambda f: f.value()[0].sum().item()).wait() == 10 * float(sum(range(size)))
    # An error reaches wait() and the future alike.
    bad = dist.all_reduce(torch.ones(2 + rank), async_op=True)
    expect_error("async sizes differ", bad.wait, "different numbers of elements")
    expect_error("async sizes differ, future", bad.get_future().wait, "different numbers of elements")
    # cohort bench torch's baseline, the communicator alone, queues behind earlier work too.
    t = torch.full((1000,), float(rank + 1))
    pending = dist.all_reduce(torch.ones(10), async_op=True)
    seconds = dist.group.WORLD._communicator_allreduce_seconds(t, 3)
    assert pending.is_completed() and seconds > 0, f"communicator allreduce: {seconds} s"
    assert t.eq(float(sum(r + 1 for r in range(size))) * size ** 2).all(), "communicator allreduce: 3 sums"
    still_works(size)


def scenario_groups(rank, size):
    assert size >= 3
    members = [0, size - 1]
    group = dist.new_group(members)
    odd = dist.new_group([r for r in range(size) if r % 2 == 1])
    t = torch.tensor([float(rank + 1)])
    if rank in members:
        dist.all_reduce(t, group=group)
        assert t.item() == 1 + size, f"sub-group all_reduce: {t.item()}"
        b = torch.tensor([float(rank)])
        dist.broadcast(b, src=size - 1, group=group)  # src is a global rank
        assert b.item() == size - 1
    if rank % 2 == 1:
        u = torch.tensor([rank])
        dist.all_reduce(u, group=odd)
        assert u.item() == sum(r for r in range(size) if r % 2 == 1)
    still_works(size)


def scenario_p2p(rank, size):
    peer = 1 - rank
    big = 4 << 20  # past Open MPI's eager limit: a blocking exchange would deadlock
    out = torch.full((big,), float(rank))
    into = torch.empty(big)
    # Both ranks send first, then receive.
    sends = dist.isend(out, peer, tag=7)
    recvs = dist.irecv(into, peer, tag=7)
    sends.wait()
    recvs.wait()
    assert into.eq(float(peer)).all(), "isend/irecv exchange"
    ops = [dist.P2POp(dist.isend, out[:10], peer), dist.P2POp(dist.irecv, into[:10], peer)]
    for w in dist.batch_isend_irecv(ops):
        w.wait()
    if rank == 0:
        dist.send(torch.arange(5, dtype=torch.int64), 1)
    else:
        got = torch.empty(5, dtype=torch.int64)
        dist.recv(got, 0)
        assert got.tolist() == [0, 1, 2, 3, 4]
    # A recv larger than its send fails on the receiver; the sender completes. (Without MPI
    # sends and receives are gloo's, which says so its own way.)
    if cohort.torch.bootstrap() == "tcp":
        return still_works(size)
    if rank == 0:
        dist.send(torch.ones(3), 1, tag=9)
    else:
        expect_error("recv larger than the send", lambda: dist.recv(torch.empty(4), 0, tag=9),
                     "recv from rank 0", "received 12 bytes into a tensor of 16")
    still_works(size)


def scenario_ddp(rank, size):
    """Twenty DDP steps with cohort and with gloo from the same start on the same data."""
    gloo = dist.new_group(list(range(size)), backend="gloo")
    results = {}
    for name, group in (("cohort", None), ("gloo", gloo)):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                    torch.nn.ReLU(), torch.nn.Linear(64, 8))
        ddp = torch.nn.parallel.DistributedDataParallel(model, process_group=group, bucket_cap_mb=0.01)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
        data = torch.Generator().manual_seed(100 + rank)
        for _ in range(20):
            x = torch.randn(16, 32, generator=data)
            y = torch.randn(16, 8, generator=data)
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(ddp(x), y).backward()
            optimizer.step()
        results[name] = [p.detach().clone() for p in model.parameters()]
    worst = max((a - b).abs().max().item() for a, b in zip(results["cohort"], results["gloo"]))
    print(f"rank {rank}: DDP 20 steps, largest parameter difference cohort vs gloo {worst:.3g}", flush=True)
    # fp32 sums of `size` gradients in another order differ in the last bits, and twenty
    # momentum steps carry that along: well under 1e-5 of parameters of order 0.1.
    assert worst <= 1e-5, f"cohort and gloo parameters differ by {worst}"
    # The ranks end equal, as DDP promises.
    mine = torch.cat([p.reshape(-1) for p in results["cohort"]])
    first = mine.clone()
    dist.broadcast(first, src=0)
    assert torch.equal(first, mine), "every rank holds the same parameters"


def scenario_bootstrap(rank, size):
    """How the ranks met, and that they carry a tensor."""
    print(f"bootstrap {cohort.torch.bootstrap()}", flush=True)
    t = torch.full((1000,), float(rank + 1))
    dist.all_reduce(t)
    assert t.eq(sum(range(1, size + 1))).all(), "all_reduce"


def scenario_timeout(rank, size):
    """Rank 1 never joins rank 0's all_reduce: rank 0's ends after the group's timeout (3 s)
    naming rank 1. A gloo group lines the ranks up afterwards."""
    gloo = dist.new_group(backend="gloo")
    if rank == 0:
        expect_error("a rank that never comes", lambda: dist.all_reduce(torch.ones(4)),
                     "rank(s) 1 did not arrive within 3 s")
        expect_error("the group after a timeout", lambda: dist.all_reduce(torch.ones(4)),
                     "an earlier collective of this group timed out")
    dist.barrier(group=gloo)


def routed_calls(rank, size, device):
    """Calls of every operation that a group hands to its device group, each taking the group
    and returning the tensors it wrote (on the CPU): the same on a cohort group and on a group
    of the device group's backend."""
    def mine(dtype=torch.float32):
        return (torch.arange(6, dtype=dtype) + 10 * rank + 1).to(device)

    def all_reduce(group):
        t = mine()
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
        return [t]

    def all_reduce_sum(group):
        t = mine(torch.int64)
        dist.all_reduce(t, group=group)
        return [t]

    def all_reduce_coalesced(group):
        ts = [mine(), mine()[:2]]
        dist.all_reduce_coalesced(ts, group=group)
        return ts

    def broadcast(group):
        t = mine()
        dist.broadcast(t, src=size - 1, group=group)
        return [t]

    def all_gather(group):
        out = [torch.empty(6, device=device) for _ in range(size)]
        dist.all_gather(out, mine(), group=group)
        return out

    def all_gather_into_tensor(group):
        out = torch.empty(6 * size, device=device)
        dist.all_gather_into_tensor(out, mine(), group=group)
        return [out]

    def reduce_scatter(group):
        out = torch.empty(6, device=device)
        dist.reduce_scatter(out, [mine() * (r + 1) for r in range(size)], group=group)
        return [out]

    def reduce_scatter_tensor(group):
        out = torch.empty(6, device=device)
        dist.reduce_scatter_tensor(out, torch.cat([mine() * (r + 1) for r in range(size)]), group=group)
        return [out]

    def reduce(group):
        t = mine()
        dist.reduce(t, dst=0, group=group)
        return [t] if rank == 0 else []

    def gather(group):
        out = [torch.empty(6, device=device) for _ in range(size)] if rank == 0 else None
        dist.gather(mine(), out, dst=0, group=group)
        return out or []

    def send_recv(group):
        t = mine()
        if rank == 0:
            dist.send(t, 1, group=group)
        elif rank == 1:
            dist.recv(t, 0, group=group)
        return [t]

    def barrier(group):
        dist.barrier(group=group)
        return []

    return {f.__name__: f for f in (all_reduce, all_reduce_sum, all_reduce_coalesced, broadcast, all_gather,
                                    all_gather_into_tensor, reduce_scatter, reduce_scatter_tensor, reduce, gather,
                                    send_recv, barrier)}


def outcome(call):
    """The tensors a call wrote, on the CPU, or the first line of its error."""
    try:
        return [t.cpu() for t in call()]
    except RuntimeError as error:
        return str(error).splitlines()[0]


def same_as(group, reference, rank, size, device):
    """Every routed call on `group` gives what it gives on `reference`, value for value or
    error for error."""
    for name, call in routed_calls(rank, size, device).items():
        got, want = outcome(lambda: call(group)), outcome(lambda: call(reference))
        if isinstance(got, str) or isinstance(want, str):
            assert got == want, f"{name}: {got!r}, where the device group's backend gives {want!r}"
            print(f"rank {rank}: {name}: the same error as {reference.name()}: {got}", flush=True)
        else:
            assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want)), \
                f"{name}: {got}, where the device group's backend gives {want}"


def scenario_devices(rank, size):
    """Under COHORT_TORCH_DEVICE_BACKEND=gloo, with the test hook that counts CPU tensors as a
    device's: every operation goes to the device group (gloo), gives what a gloo group gives,
    and reaches cohort's communicator not once; sub-groups have device groups of their own."""
    world = dist.group.WORLD
    assert world.device_backend == "gloo", world.device_backend
    gloo = dist.new_group(backend="gloo")
    pair = dist.new_group([0, size - 1])
    before = world._host_calls_for_testing()
    world._route_to_device_group_for_testing(True)
    same_as(world, gloo, rank, size, "cpu")
    assert world._host_calls_for_testing() == before, "a routed call reached cohort's communicator"
    if rank in (0, size - 1):
        assert pair.device_backend == "gloo"
        pair._route_to_device_group_for_testing(True)
        t = torch.tensor([float(rank + 1)])
        dist.all_reduce(t, group=pair)
        assert t.item() == 1 + size, f"sub-group's device group: {t.item()}"
        assert pair._host_calls_for_testing() == 0
        pair._route_to_device_group_for_testing(False)
    world._route_to_device_group_for_testing(False)
    # CPU tensors go to cohort's communicator again, and the counter sees them.
    still_works(size)
    assert world._host_calls_for_testing() == before + 1

    # A call that mixes CPU tensors with a device's fails on every rank. Meta tensors stand in
    # for CUDA ones: all_reduce_coalesced is one call that takes them beside CPU tensors.
    tensors = [torch.ones(4), torch.ones(4, device="meta" if rank == 1 else "cpu")]
    expect_error("CPU and meta tensors in one call", lambda: dist.all_reduce_coalesced(tensors),
                 "cohort backend: allreduce_coalesced",
                 "mixes tensors in CPU memory with tensors on meta" if rank == 1
                 else "rank 1 passed tensors in CPU memory and on a device in one call")
    still_works(size)


def scenario_no_device_group(rank, size):
    """Under COHORT_TORCH_DEVICE_BACKEND=none a tensor that is not a CPU one is refused on every
    rank, naming NCCL, and the test hook has nothing to route to."""
    world = dist.group.WORLD
    assert world.device_backend is None
    tensors = [torch.ones(4, device="meta" if rank == 1 else "cpu")]
    expect_error("a meta tensor without a device group", lambda: dist.all_reduce_coalesced(tensors),
                 "cohort backend: allreduce_coalesced",
                 "this group has no device group" if rank == 1 else "rank 1 passed a tensor that is not in CPU memory")
    expect_error("the test hook without a device group", lambda: world._route_to_device_group_for_testing(True),
                 "COHORT_TORCH_DEVICE_BACKEND=gloo")
    still_works(size)


def scenario_cuda(rank, size):
    """CUDA tensors through the cohort backend give an NCCL group's results without reaching
    cohort's communicator; CPU and CUDA tensors in separate calls of one group both work; one
    call that mixes them fails; a DDP step on CUDA ends where NCCL's does."""
    torch.cuda.set_device(rank % torch.cuda.device_count())
    world = dist.group.WORLD
    assert world.device_backend == "nccl", world.device_backend
    nccl = dist.new_group(backend="nccl")
    before = world._host_calls_for_testing()
    same_as(world, nccl, rank, size, "cuda")
    assert world._host_calls_for_testing() == before, "a CUDA call reached cohort's communicator"

    host, device = torch.full((4,), float(rank + 1)), torch.full((4,), float(rank + 1), device="cuda")
    dist.all_reduce(host)
    dist.all_reduce(device)
    total = float(sum(r + 1 for r in range(size)))
    assert host.eq(total).all() and device.cpu().eq(total).all(), "CPU and CUDA calls of one group"
    assert world._host_calls_for_testing() == before + 1, "the CPU call ran on cohort's communicator"
    expect_error("CPU and CUDA tensors in one call", lambda: dist.all_reduce_coalesced([host, device]),
                 "mixes tensors in CPU memory with tensors on cuda")
    still_works(size)

    results = {}
    for name, group in (("cohort", None), ("nccl", nccl)):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).cuda()
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.cuda.current_device()],
                                                        process_group=group)
        x = torch.randn(16, 32, generator=torch.Generator().manual_seed(100 + rank)).cuda()
        torch.nn.functional.mse_loss(ddp(x), torch.zeros(16, 8, device="cuda")).backward()
        results[name] = [p.grad.cpu() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(results["cohort"], results["nccl"])), \
        "a DDP step on CUDA: cohort's gradients are not NCCL's"


def main():
    scenario = sys.argv[1]
    timeout = {"timeout": datetime.timedelta(seconds=3)} if scenario == "timeout" else {}
    dist.init_process_group("cohort", init_method="env://", **timeout)
    rank, size = dist.get_rank(), dist.get_world_size()
    globals()[f"scenario_{scenario}"](rank, size)
    dist.destroy_process_group()
    print(f"OK {scenario}", flush=True)


if __name__ == "__main__":
    main()
