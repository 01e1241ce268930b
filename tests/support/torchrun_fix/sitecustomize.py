"""Makes Debian's torchrun (python3-torch 1.13) start under Python 3.11, for the tests.

torch 1.13 predates Python 3.11, whose Flag iteration leaves out members whose value is 0:
its Std.from_str("0") gives None, so torchrun fails at its own default of --redirects 0
("'NoneType' object has no attribute 'get'"). On PYTHONPATH, this file mends Std.from_str
when torch's module defines it, and otherwise imports nothing: every other program on the
path starts as before.
"""
import importlib.abc
import importlib.util
import re
import sys

_MODULE = "torch.distributed.elastic.multiprocessing.api"


def _mend(module):
    std = module.Std

    def from_str(cls, vm):
        if re.match(module._VALUE_REGEX, vm):
            return cls(int(vm))
        if re.match(module._MAPPING_REGEX, vm):
            return {int(k): cls(int(v)) for k, v in (pair.split(":") for pair in vm.split(","))}
        raise ValueError(f"{vm} does not match: <{module._VALUE_REGEX}> or <{module._MAPPING_REGEX}>")

    std.from_str = classmethod(from_str)


class _Mender(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _mend(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Mender())
