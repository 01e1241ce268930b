"""cohort's HDF5 checkpoints for PyTorch (and NumPy) state.

    import cohort.checkpoint as ckpt
    state = {"model": model.state_dict(), "optim": optimizer.state_dict(), "epoch": epoch}
    ckpt.save(state, "/scratch/run1/ckpt", step)            # every rank; collective
    ...
    info = ckpt.load_latest(state, "/scratch/run1/ckpt")   # fills `state` in place
    if info:
        model.load_state_dict(state["model"]); optimizer.load_state_dict(state["optim"])

Each tensor becomes the dataset /tensors/<dotted path> ("model.layers.0.weight",
"optim.state.3.exp_avg"); everything else in `state` (ints, floats, strings, None, and the
dicts, lists and tuples around them) is kept as JSON in the checkpoint's metadata, so that
load() rebuilds the same structure. docs/python.md says more.

Ranks: one process needs nothing. Several ranks must be MPI's (srun --mpi=pmix, mpirun);
ranks that only torchrun's variables describe get an InputError saying so.
"""
import atexit
import json
import math
import os
import sys

from cohort import _cohort
from cohort._cohort import Error, InputError

__all__ = ["save", "load", "load_latest", "latest_step", "steps", "Sharded", "Error", "InputError"]

# The metadata attributes this module writes: the state's structure, and the caller's own.
_TREE = "python.state"
_USER = "python.metadata"


class Sharded:
    """A tensor split by rows over the ranks: each rank saves and loads its own block.

    The stored tensor is the ranks' blocks concatenated in rank order; a load on another
    number of ranks hands each rank the block its tensor's shape asks for.
    """

    __slots__ = ("tensor",)

    def __init__(self, tensor):
        if not (_is_torch(tensor) or _is_numpy(tensor)):
            raise InputError(f"Sharded: {type(tensor).__name__} is not a torch tensor or a NumPy array")
        self.tensor = tensor

    def __repr__(self):
        return f"Sharded({self.tensor!r})"


def _is_torch(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_numpy(x):
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(x, numpy.ndarray)


def _is_tensor(x):
    return isinstance(x, Sharded) or _is_torch(x) or _is_numpy(x)


def _unwrap(x):
    return (x.tensor, "rows") if isinstance(x, Sharded) else (x, "replicated")


def _describe(tensor):
    """(kind, dtype name, shape) of a torch tensor or a NumPy array."""
    if _is_torch(tensor):
        return "torch", str(tensor.dtype).removeprefix("torch."), list(tensor.shape)
    return "numpy", tensor.dtype.name, list(tensor.shape)


def _host(tensor):
    """A C-ordered, native-endian host tensor holding `tensor`'s values: `tensor` itself when
    it already is one (no copy), else a copy made once."""
    if _is_torch(tensor):
        t = tensor.detach()
        if t.device.type != "cpu" or not t.is_contiguous():
            t = t.cpu().contiguous()
        return t, t.data_ptr()
    numpy = sys.modules["numpy"]
    a = tensor
    if not a.flags.c_contiguous or not a.dtype.isnative:
        a = numpy.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
    return a, a.__array_interface__["data"][0]


def _where(path):
    return ".".join(str(p) for p in path) if path else "the state"


def _check_key(key, path):
    # JSON keeps str and int keys apart (optimizer state is keyed by int); nothing else survives.
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise InputError(f"{_where(path + [repr(key)])}: key {key!r} is a {type(key).__name__}; "
                         "checkpoint keys are strings or ints")


def _value_node(value, path):
    if value is None or isinstance(value, (bool, int, str)):
        return {"value": value}
    if isinstance(value, float):
        return {"value": value} if math.isfinite(value) else {"float": repr(value)}
    raise InputError(f"{_where(path)}: a {type(value).__module__}.{type(value).__qualname__} cannot be "
                     "checkpointed: give tensors, arrays, dicts, lists, tuples, numbers, strings or None")


class _Flattened:
    """A state as the checkpointer takes it: tensors by dotted name, and the structure."""

    def __init__(self):
        self.specs = []   # (name, dtype, shape, sharding, address) for the binding
        self.keep = []    # host copies that must outlive the C++ call
        self.names = {}   # name → path, to refuse two paths with one name

    def add(self, value, path):
        name = ".".join(str(p) for p in path)
        if name in self.names:
            raise InputError(f"{name}: two entries of the state get this tensor name "
                             f"({_where(self.names[name])} and {_where(path)}): rename one")
        self.names[name] = path
        tensor, sharding = _unwrap(value)
        kind, dtype, shape = _describe(tensor)
        host, address = _host(tensor)
        self.keep.append(host)
        self.specs.append((name, dtype, shape, sharding, address))
        # Its dtype, shape and sharding are the manifest's to record: the node says only
        # where the tensor goes and what kind of object it was.
        return {"tensor": name, "kind": kind}

    def walk(self, value, path):
        if _is_tensor(value):
            return self.add(value, path)
        if isinstance(value, dict):
            items = []
            for key, child in value.items():
                _check_key(key, path)
                items.append([key, self.walk(child, path + [key])])
            return {"dict": items}
        if isinstance(value, (list, tuple)):
            children = [self.walk(child, path + [i]) for i, child in enumerate(value)]
            return {"tuple" if isinstance(value, tuple) else "list": children}
        return _value_node(value, path)


def _flatten(state):
    if not isinstance(state, dict):
        raise InputError(f"state: a {type(state).__name__}; give a dict, as {{'model': model.state_dict()}}")
    flat = _Flattened()
    tree = flat.walk(state, [])
    return flat, tree


def _metadata_json(tree, metadata):
    attributes = {_TREE: tree}
    if metadata is not None:
        attributes[_USER] = metadata
    try:
        return json.dumps(attributes, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"metadata: {e}: give JSON values (dicts, lists, numbers, strings, None)") from None


# One C++ checkpointer per directory: it orders asynchronous saves and keeps their threads.
_checkpointers = {}


@atexit.register
def _close():
    # Saves still in flight finish before the interpreter (and MPI after it) goes away: a
    # script that ends right after save(async_=True) still commits its last checkpoint.
    while _checkpointers:
        _, held = _checkpointers.popitem()
        held[1].wait()


def _retention(retention):
    if retention is None:
        return (0, 0)
    if isinstance(retention, int) and not isinstance(retention, bool):
        return (retention, 0)
    if isinstance(retention, dict) and set(retention) <= {"keep_last", "keep_every"}:
        return (retention.get("keep_last", 0), retention.get("keep_every", 0))
    raise InputError(f"retention={retention!r}: give keep_last as an int, or "
                     "{'keep_last': 3, 'keep_every': 1000}")


def _checkpointer(dir, retention=None):
    key = os.path.abspath(os.fspath(dir))
    rules = _retention(retention) if retention is not None else None
    held = _checkpointers.get(key)
    if held is None or (rules is not None and held[0] != rules):
        # A new rule replaces the checkpointer; the old one finishes its saves as it goes.
        held = (rules or (0, 0), _cohort.Checkpointer(key, *(rules or (0, 0))))
        _checkpointers[key] = held
    return held[1]


def save(state, dir, step, *, async_=False, metadata=None, retention=None):
    """Saves `state` as checkpoint `step` of `dir` and commits it; collective.

    Returns {"step", "path", "bytes", "pruned"}; with async_=True, a handle whose wait()
    returns that and whose done() tells without blocking. An asynchronous save has copied
    the tensors when it returns: the caller may change them at once. `metadata` is any JSON
    value, handed back by load(); `retention` keeps the newest N (an int) or
    {"keep_last": N, "keep_every": M} and prunes the rest after the commit.
    """
    flat, tree = _flatten(state)
    text = _metadata_json(tree, metadata)
    ckpt = _checkpointer(dir, retention)
    if async_:
        return ckpt.save_async(step, flat.specs, text)
    return ckpt.save(step, flat.specs, text)


def latest_step(dir):
    """The newest committed step in `dir`, or None when it holds none."""
    found = _cohort.committed_steps(os.fspath(dir))
    return found[-1] if found else None


def steps(dir):
    """The committed steps in `dir`, oldest first."""
    return _cohort.committed_steps(os.fspath(dir))


def _decode(node, given, path, stored, slots, after):
    """The value at `path` as checkpoint `node` has it, reusing `given` where it is the same
    kind of thing: tensors are filled in place by the load, and dicts and lists are updated
    in place by `after`, once the load has succeeded."""
    if "tensor" in node:
        return _tensor_slot(node, given, stored, slots, after)
    if "dict" in node:
        old = given if isinstance(given, dict) else {}
        saved_keys = {key for key, _ in node["dict"]}
        for key, child in old.items():
            if key not in saved_keys and _holds_tensor(child):
                raise InputError(f"{_where(path + [key])}: the state has it, the checkpoint does not")
        new = {key: _decode(child, old.get(key), path + [key], stored, slots, after) for key, child in node["dict"]}
        if given is old:
            after.append(lambda: given.update(new))
            return given
        return new
    for kind in ("list", "tuple"):
        if kind in node:
            old = given if isinstance(given, (list, tuple)) and len(given) == len(node[kind]) else None
            children = [_decode(child, old[i] if old else None, path + [i], stored, slots, after)
                        for i, child in enumerate(node[kind])]
            if kind == "tuple":
                return tuple(children)
            if isinstance(given, list):
                after.append(lambda: given.__setitem__(slice(None), children))
                return given
            return children
    if "float" in node:
        return float(node["float"])
    return node["value"]


def _holds_tensor(value):
    if _is_tensor(value):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v) for v in value)
    return False


def _tensor_slot(node, given, stored, slots, after):
    name = node["tensor"]
    if name not in stored:
        raise InputError(f"{name}: the state has this tensor, the checkpoint does not")
    dtype, shape, sharding = stored[name]
    if given is None:
        if sharding == "rows":
            raise InputError(f"{name}: a sharded tensor: give it in the state as Sharded(tensor), "
                             "shaped as this rank's rows")
        given = _empty(node["kind"], dtype, shape)
    elif not _is_tensor(given):
        raise InputError(f"{name}: the checkpoint holds a tensor here, the state a {type(given).__name__}")
    tensor, sharding = _unwrap(given)
    _, dtype, shape = _describe(tensor)
    host, address = _host(tensor)
    if host is not tensor and not (_is_torch(tensor) and host.data_ptr() == tensor.data_ptr()):
        after.append(lambda: _copy_back(tensor, host))
    slots.append((name, dtype, shape, sharding, address))
    return given


def _empty(kind, dtype, shape):
    if kind == "torch":
        import torch
        return torch.empty(shape, dtype=getattr(torch, dtype))
    import numpy
    return numpy.empty(shape, dtype=dtype)


def _copy_back(tensor, host):
    if _is_torch(tensor):
        tensor.detach().copy_(host)
    else:
        tensor[...] = host


def _finish(after):
    for step in after:
        step()


def _plan(state, contents):
    """The slots that load `contents` (a checkpoint's attributes and tensors) into `state`,
    and what to do once the load has succeeded."""
    attributes, stored = contents
    if not isinstance(state, dict):
        raise InputError(f"state: a {type(state).__name__}; give the dict to fill")
    tree = attributes.get(_TREE)
    if tree is None:
        # Saved from C++ (or h5py): no structure to rebuild, so the state's own structure
        # names the tensors, and only they are loaded.
        tree = _flatten(state)[1]
    slots, after = [], []
    _decode(tree, state, [], stored, slots, after)
    return slots, after


def _layout(contents):
    """What a load plans from: the structure with its values, and the tensors."""
    attributes, stored = contents
    return attributes.get(_TREE), stored


def _contents(dir, step):
    attributes, stored = _cohort.checkpoint_contents(os.fspath(dir), step)
    return json.loads(attributes), stored


def _result(info):
    attributes = json.loads(info.pop("attributes"))
    info["metadata"] = attributes.get(_USER)
    return info


def load(state, dir, *, step=None):
    """Fills `state` in place from checkpoint `step` of `dir` (the newest when None); collective.

    Tensors in `state` are written in place and must match the checkpoint's names, dtypes
    and shapes; tensors the state lacks (an optimizer that has not stepped yet) and every
    other value are put in. Returns {"step", "path", "metadata", "saved_world_size", …}.
    """
    if step is None:
        step = latest_step(dir)
        if step is None:
            raise InputError(f"{os.fspath(dir)}: no checkpoint to load (no committed step-XXXXXXXX in it)")
    slots, after = _plan(state, _contents(dir, step))
    info = _checkpointer(dir).load(step, slots)
    _finish(after)
    return _result(info)


def load_latest(state, dir):
    """Like load(), from the newest checkpoint that verifies; None when `dir` holds none.

    A damaged newer checkpoint is passed over, with a warning on stderr; the result's
    "skipped" lists each as (step, reason).
    """
    ckpt = _checkpointer(dir)
    for candidate in reversed(steps(dir)):
        try:
            contents = _contents(dir, candidate)
        except Error:
            continue  # an unreadable manifest: the C++ fallback reports it
        slots, after = _plan(state, contents)
        info = ckpt.load(None, slots)
        if info is None:
            return None
        if info["step"] != candidate and _layout(_contents(dir, info["step"])) != _layout(contents):
            # The fallback landed on a checkpoint whose structure, values or tensors differ
            # from the one planned for: load that one as it is.
            skipped = info["skipped"]
            info = load(state, dir, step=info["step"])
            info["skipped"] = skipped
            return info
        _finish(after)
        return _result(info)
    return ckpt.load(None, [])
