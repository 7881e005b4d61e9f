"""Data-parallel training over several processes with PyTorch's own engine (torch.distributed), one process
per GPU, started by torchrun:

    torchrun --nproc_per_node 4 -m stylegan2_lib train --batch 32 ...     # 8 images per GPU and step

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; train() then joins the process group
(nccl on CUDA, gloo on the CPU), runs rank r on cuda:LOCAL_RANK, and destroys the group when it ends, also on
errors. A process group the caller initialised itself is used as it is and left alone. Without WORLD_SIZE
(or with WORLD_SIZE=1) nothing here runs and training is the plain single-process loop.

What each rank does (NVlabs stylegan2-ada-pytorch / stylegan3 `training_loop.py`):

  - reads its own slice of every global batch: the ranks share one per-epoch shuffled order, and rank r takes
    images [r * b, (r + 1) * b) of each global batch of --batch images (b = --batch / WORLD_SIZE), so the ranks
    together see exactly the images a single process would;
  - seeds its RNG with seed * WORLD_SIZE + rank, so the ranks draw different latents, noise and augmentations;
  - starts from rank 0's parameters and buffers (broadcast);
  - averages gradients over the ranks after every phase's backward, before the optimiser step.

Why not the torch.nn.parallel.DistributedDataParallel wrapper: its reducer is driven by autograd hooks of a
plain backward(); it does not support torch.autograd.grad (its documentation says so) nor the create_graph=True
double backward that R1 and path-length regularisation need (pytorch/pytorch#63812: backward(create_graph=True)
through DDP raises; #47562: gradient penalties through DDP give wrong gradients), and one phase calls D twice
(fakes and reals). NVlabs's stylegan3 trainer drops the wrapper and all-reduces the gradients itself, and so
does this one, in every phase alike: ONE all_reduce per phase of a flat vector holding every trainable
gradient of the phase's network plus the running statistics the phase updates outside the optimiser (G's
w_avg, the path-length mean), which so stay identical on every rank too. Wrapping only the main phases in
DDP would overlap gradient traffic with backward, at the price of a second synchronisation path for the
regularisation phases and find_unused_parameters / static-graph settings for the two D calls; for
StyleGAN2-sized networks on one node the single collective per phase is cheap next to the phase itself.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from .options import TrainingError

DIGEST_ENV = 'STYLEGAN2_LIB_DEBUG_RANK_DIGESTS'     # debugging / tests: each rank writes a digest of its state

#----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Ranks:
    rank:        int = 0
    world_size:  int = 1
    local_rank:  int = 0
    owns_group:  bool = False                       # train() initialised the process group (and destroys it)

    @property
    def enabled(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0

def _env_int(name, default):
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, '') else default
    except ValueError:
        raise ValueError(f'{name}={value!r} in the environment is not an integer') from None

def from_env():
    """The caller's process group if it has one, else torchrun's environment, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), _env_int('LOCAL_RANK', dist.get_rank()), owns_group=False)
    world_size = _env_int('WORLD_SIZE', 1)
    if world_size <= 1:
        return Ranks()
    if not dist.is_available():
        raise RuntimeError(f'WORLD_SIZE={world_size}, but this PyTorch build has no torch.distributed')
    return Ranks(_env_int('RANK', 0), world_size, _env_int('LOCAL_RANK', 0), owns_group=True)

def local_batch(batch, ranks):
    if batch % ranks.world_size != 0:
        raise TrainingError(f'--batch {batch} is the global batch over all {ranks.world_size} processes and must be a '
                            f'multiple of {ranks.world_size} (e.g. --batch {max(batch // ranks.world_size, 1) * ranks.world_size})')
    return batch // ranks.world_size

def rank_seed(seed, ranks):
    """Seed of this rank's RNG (NVlabs: seed * world_size + rank); the plain seed for a single process."""
    return seed * ranks.world_size + ranks.rank

#----------------------------------------------------------------------------

@contextlib.contextmanager
def session(ranks, device):
    """Join the process group for the duration of training (nccl on CUDA, gloo on the CPU)."""
    if not ranks.owns_group:
        yield
        return
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    dist.init_process_group(backend='nccl' if device.type == 'cuda' else 'gloo', rank=ranks.rank, world_size=ranks.world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()

def barrier(ranks):
    if ranks.enabled:
        dist.barrier()

#----------------------------------------------------------------------------

@torch.no_grad()
def broadcast_modules(ranks, *modules):
    """Every rank starts from rank 0's parameters and buffers."""
    if ranks.enabled:
        for module in modules:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

@torch.no_grad()
def finish_gradients_(ranks, params, shared=()):
    """Before the optimiser step, in place: with several ranks, average the gradients of `params` and the tensors
    `shared` over the ranks (one all_reduce of one flat float32 vector; a missing gradient counts as zeros, so
    every rank sends the same layout); then replace non-finite gradient entries, NaN by 0 and +-inf by +-1e5, as
    NVlabs does: one inf from a float16 backward would otherwise turn Adam's moments into NaN for good.
    Returns a 0-dim tensor, 1 where some entry was non-finite (no host-device sync)."""
    if ranks.enabled:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    else:
        grads = [p.grad for p in params if p.grad is not None]
    tensors = grads + list(shared)
    if not tensors:
        return torch.zeros([])
    flat = torch.cat([t.reshape(-1).to(torch.float32) for t in tensors])
    if ranks.enabled:
        dist.all_reduce(flat)
        flat /= ranks.world_size
    n = sum(g.numel() for g in grads)
    bad = flat[:n].isfinite().logical_not().any().to(torch.float32)
    flat[:n].nan_to_num_(nan=0.0, posinf=1e5, neginf=-1e5)
    for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        t.copy_(part.reshape(t.shape))
    if ranks.enabled:
        for p, g in zip(params, grads):
            p.grad = g
    return bad

def sum_values(ranks, values):
    """{name: device scalar} summed over the ranks (one collective; every rank has the same names)."""
    if not ranks.enabled or not values:
        return values
    names = sorted(values)
    flat = torch.stack([values[k].to(torch.float32) for k in names])
    dist.all_reduce(flat)
    return dict(zip(names, flat.unbind()))

def broadcast_object(ranks, obj):
    """Rank 0's `obj` on every rank."""
    if not ranks.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]

def gather_objects(ranks, obj):
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not ranks.enabled:
        return [obj]
    out = [None] * ranks.world_size
    dist.all_gather_object(out, obj)
    return out

#----------------------------------------------------------------------------
# Debugging: with STYLEGAN2_LIB_DEBUG_RANK_DIGESTS=DIR, every rank writes DIR/rank<r>-start.json once its
# networks and RNG are set up (resumed) and DIR/rank<r>-end.json when the run ends: a digest of its networks
# (the same on every rank while the ranks stay in step) and of its CPU RNG state (its own on every rank).
# Nothing is written without the variable.

def state_digest(*modules):
    h = hashlib.sha256()
    for module in modules:
        for name, t in module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().to('cpu', torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()

def rng_digest(state=None):
    return hashlib.sha256((torch.get_rng_state() if state is None else state).numpy().tobytes()).hexdigest()

def write_debug_digest(ranks, tag, nimg, *modules):
    folder = os.environ.get(DIGEST_ENV)
    if not folder:
        return
    record = {'rank': ranks.rank, 'world_size': ranks.world_size, 'nimg': nimg, 'networks': state_digest(*modules),
              'rng': rng_digest()}
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f'rank{ranks.rank}-{tag}.json').write_text(json.dumps(record) + '\n')
