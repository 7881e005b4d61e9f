"""Which device work runs on: one rule for the library, the command line and the notebooks.

    device = default_device()          # cuda when PyTorch sees a GPU, else cpu
    device = default_device('cuda')    # DeviceUnavailable, with the reason, when there is none
    describe_device(device)            # 'cuda (Tesla T4, 15 GiB)' / 'cpu (8 threads)': for log lines

Nothing is chosen at import time: callers resolve a device when they need one.
"""

import torch

AUTO = (None, 'auto')


class DeviceUnavailable(RuntimeError):
    """A device was asked for that this machine does not have; `reason` says why, in a few words."""

    def __init__(self, name, reason):
        super().__init__(f"device {name!r}: CUDA is not available here ({reason}); use 'cpu', or None for the default")
        self.reason = reason

#----------------------------------------------------------------------------

def cuda_unavailable_reason():
    """Why torch.cuda cannot be used here, or None when it can."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f'PyTorch {torch.__version__} is built without CUDA'
    return 'no CUDA GPU is visible (on Colab: Runtime > Change runtime type > GPU)'

def default_device(name=None):
    """`name` as a torch.device: None or 'auto' -> cuda when available, else cpu; 'cuda' (or 'cuda:1') only
    when CUDA is available (else DeviceUnavailable); anything else (cpu, meta, mps, ...) as torch reads it."""
    if name in AUTO:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda':
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise DeviceUnavailable(str(name), reason)
    return device

def describe_device(device):
    """A device and what it is, for a log line: 'cuda:0 (NVIDIA L4, 22 GiB)', 'cpu (2 threads)'."""
    device = torch.device(device)
    if device.type == 'cuda':
        index = device.index if device.index is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(index)
        return f'cuda:{index} ({p.name}, {p.total_memory / 2 ** 30:.0f} GiB)'
    if device.type == 'cpu':
        return f'cpu ({torch.get_num_threads()} threads)'
    return str(device)

def on_device(module, device):
    """`module` itself when its parameters and buffers are all on `device`, else a copy moved there: the
    caller's network stays where it was (Module.to would move it in place). None stays None."""
    if module is None:
        return None
    device = torch.device(device)
    tensors = [*module.parameters(), *module.buffers()]
    if all(_same_device(t.device, device) for t in tensors):
        return module
    import copy
    return copy.deepcopy(module).to(device)

def _same_device(a, b):
    """'cuda' and 'cuda:0' are one device when 0 is the current one."""
    if a.type != b.type:
        return False
    if a.type == 'cuda' and (a.index is None or b.index is None):
        return (a.index if a.index is not None else torch.cuda.current_device()) == \
               (b.index if b.index is not None else torch.cuda.current_device())
    return a.index == b.index
