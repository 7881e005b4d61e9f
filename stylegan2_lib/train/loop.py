"""The training loop (NVlabs stylegan2-ada-pytorch `training_loop.py`), in one process or data parallel over
several (torchrun; see distributed.py):

    per step:  Gmain, [Greg every g_reg_interval], Dmain, [Dreg every d_reg_interval], G_ema update, ADA
    per tick:  metrics line, progress bar, finiteness check, callback
    per snap:  snapshot (G, D, G_ema + sample grid), then the resume state that names it

Lazy regularisation (Karras et al. 2020, Appendix B): a regulariser evaluated every k steps is scaled by k,
and Adam's lr and betas are corrected by c = k / (k + 1): lr * c, beta ** c.
"""

import dataclasses
import itertools
import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import images
from ..checkpoints import load, save
from ..data import ImageDataset
from ..devices import DeviceUnavailable, default_device
from ..generator import Generator
from . import distributed, speed
from . import state as run_state
from .augment import AdaController, AugmentPipe
from .loss import StyleGAN2Loss
from .measure import SnapshotMetrics
from .networks import build_networks, freeze, make_optimizer, update_ema
from .options import TrainingError, TrainOptions


@dataclasses.dataclass
class TickInfo:
    """What a per-tick callback receives."""
    run_dir:  Path
    nimg:     int
    kimg:     float
    epoch:    int
    metrics:  dict
    G_ema:    Generator
    done:     bool

#----------------------------------------------------------------------------
# Data: an endless stream of batches in per-epoch shuffled order (seed + epoch), starting at any image
# count, so a resumed run continues exactly where the snapshot was taken. With several ranks, each global
# batch of `batch` images is cut into one slice per rank: together the ranks read what one process would.

class EpochSampler(torch.utils.data.Sampler):
    def __init__(self, size, seed, start, batch=None, rank=0, world_size=1):
        self.size, self.seed, self.start = size, seed, start
        self.batch, self.rank, self.world_size = batch, rank, world_size

    def _order(self):
        epoch, offset = divmod(self.start, self.size)
        while True:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch))
            yield from order[offset:].tolist()
            epoch, offset = epoch + 1, 0

    def __iter__(self):
        if self.world_size == 1:
            yield from self._order()
            return
        order, local = self._order(), self.batch // self.world_size
        while True:
            chunk = list(itertools.islice(order, self.batch))
            yield from chunk[self.rank * local: (self.rank + 1) * local]

def batches(dataset, opts, start_nimg, device, ranks=distributed.Ranks()):
    sampler = EpochSampler(len(dataset), opts.seed, start_nimg, opts.batch, ranks.rank, ranks.world_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=distributed.local_batch(opts.batch, ranks), sampler=sampler,
                                         num_workers=opts.workers, pin_memory=(device.type == 'cuda'), drop_last=True,
                                         persistent_workers=opts.workers > 0,
                                         generator=torch.Generator().manual_seed(opts.seed))  # not the global RNG
    for real in loader:
        yield real.to(device, non_blocking=True).to(torch.float32) / 127.5 - 1     # uint8 -> [-1, 1]

#----------------------------------------------------------------------------
# One training step: the four NVlabs phases, each with only its own network's trainable parameters
# requiring gradients. Returns per-step sums as tensors (no host-device sync). With several ranks, every
# phase averages its gradients over the ranks before the optimiser step, together with what the phase
# updates outside the optimiser (G's w_avg in Gmain, the path-length mean in Greg): one collective.

def _trainable(opt):
    return [p for group in opt.param_groups for p in group['params']] if opt is not None else []

class PhaseResult(NamedTuple):
    """What a phase computes: the per-sample loss it backpropagates and the per-sample statistic it reports."""
    loss: torch.Tensor
    stat: torch.Tensor

class Stepper:
    def __init__(self, loss, opt_G, opt_D, z_dim, opts, ada=None, ranks=distributed.Ranks()):
        self.loss, self.opt_G, self.opt_D, self.z_dim, self.opts, self.ada = loss, opt_G, opt_D, z_dim, opts, ada
        self.ranks = ranks
        self.params = {'G': _trainable(opt_G), 'D': _trainable(opt_D)}
        self.opt = {'G': opt_G, 'D': opt_D}
        w_avg = getattr(loss.G.mapping, 'w_avg', None)
        self.tracked = [w_avg] if loss.update_w_avg and w_avg is not None else []
        for p in self.params['G'] + self.params['D']:
            p.requires_grad_(False)

    def phases(self, batch_idx):
        """[(statistic, network, interval, phase)] of this step: Gmain and Dmain always, the regularisers every
        g_reg_interval / d_reg_interval steps (lazy regularisation: their loss is scaled by the interval)."""
        o, todo = self.opts, []
        if self.opt_G is not None:
            todo.append(('loss_G', 'G', 1, self.g_main))
            if o.pl_weight > 0 and batch_idx % o.g_reg_interval == 0:
                todo.append(('pl', 'G', o.g_reg_interval, self.g_pl))
        if self.opt_D is not None:
            todo.append(('loss_D', 'D', 1, self.d_main))
            if self.loss.r1_gamma > 0 and batch_idx % o.d_reg_interval == 0:
                todo.append(('r1', 'D', o.d_reg_interval, self.d_r1))
        return todo

    # The four phases. Each draws its own latents, in the order NVlabs's loop does.
    def _z(self, real):
        return torch.randn([real.shape[0], self.z_dim], device=real.device)

    def g_main(self, real):
        loss = self.loss.G_main(self._z(real), None)
        return PhaseResult(loss, loss)

    def g_pl(self, real):
        return PhaseResult(*self.loss.G_pl(self._z(real), None))

    def d_main(self, real):
        loss, real_logits = self.loss.D_main(real, None, self._z(real), None)
        if self.ada is not None:
            self.ada.accumulate(real_logits)
        return PhaseResult(loss, loss)

    def d_r1(self, real):
        return PhaseResult(*self.loss.D_r1(real, None))

    def shared(self, name):
        """What a phase updates outside its optimiser, averaged over the ranks with its gradients."""
        return {'loss_G': self.tracked, 'pl': [self.loss.pl_mean]}.get(name, [])

    def _step(self, name, net, interval, phase, real):
        """One gradient step of network `net` on mean(loss) * interval; the phase's statistic, summed."""
        for p in self.params[net]:
            p.requires_grad_(True)
        opt = self.opt[net]
        opt.zero_grad(set_to_none=True)
        result = phase(real)
        result.loss.mean().mul(interval).backward()
        bad = distributed.finish_gradients_(self.ranks, self.params[net], self.shared(name) if self.ranks.enabled else ())
        opt.step()
        for p in self.params[net]:
            p.requires_grad_(False)
        self.nonfinite = self.nonfinite + bad.to(self.nonfinite.device)
        return result.stat.detach().sum()

    def __call__(self, real, batch_idx):
        """Per-step sums of each phase's statistic and the count of phases whose gradients held a non-finite
        entry, as device tensors (no host-device sync)."""
        self.nonfinite = torch.zeros([], device=real.device)
        out = {name: self._step(name, net, interval, phase, real) for name, net, interval, phase in self.phases(batch_idx)}
        return {**out, 'nonfinite_grads': self.nonfinite}

# What --metrics adds to a snapshot's line and meta (train/measure.py).
MEASURED = ('kid', 'fid', 'copy_fraction', 'copy_flagged', 'metrics_features', 'metrics_sec')

# How each statistic is reported per tick: the losses per image, the penalties per step, and in total the
# number of optimiser steps whose gradients held a non-finite entry (replaced; see finish_gradients_).
PER_IMAGE = ('loss_G', 'loss_D')
TOTALS = ('nonfinite_grads',)

#----------------------------------------------------------------------------
# Snapshots and resume. The RNG state (and ADA's partial sums) differ between ranks: rank 0 stores every
# rank's, and a resumed run with the same number of ranks gives each its own back.

def _sample_grid(G_ema, n_seeds):
    with torch.no_grad():
        imgs = images.generate_images(G_ema, list(range(n_seeds)), truncation_psi=1.0, noise_mode='const', progress=False)
    return images.make_grid(images.to_uint8(imgs))

def _rng_state(device):
    state = {'torch': torch.get_rng_state()}
    if device.type == 'cuda':
        state['cuda'] = torch.cuda.get_rng_state(device)
    return state

def _set_rng_state(state, device):
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and device.type == 'cuda':
        torch.cuda.set_rng_state(state['cuda'], device)

def write_snapshot(run_dir, G, D, G_ema, counters, opts, extra_state, scores=None):
    """Networks + grid first, then the resume state naming them (see state.py)."""
    stem = run_state.snapshot_stem(counters['nimg'], counters['epoch'])
    meta = {'nimg': counters['nimg'], 'kimg': counters['nimg'] / 1000, 'epoch': counters['epoch'], 'run_options': opts.to_dict(),
            'augment_p': extra_state.get('augment_p'), 'metrics': scores or {}}
    save(Path(run_dir) / f'{stem}.safetensors', G=G, D=D, G_ema=G_ema, meta=meta)
    images.save_image(Path(run_dir) / f'{stem}.png', _sample_grid(G_ema, opts.sample_seeds))
    run_state.write_state(run_dir, {'snapshot': f'{stem}.safetensors', **counters, **extra_state})
    return stem

def restore(run_dir, device):
    """(G, D, G_ema, state) of a run's last complete snapshot."""
    st = run_state.read_state(run_dir)
    ck = load(Path(run_dir) / st['snapshot'])
    return ck.G, ck.D, ck.G_ema, st

def _rank_state(st, ranks):
    """This rank's stored {'rng', 'ada'}; None when the state was written by another number of ranks."""
    stored = int(st.get('world_size', 1))
    if stored == ranks.world_size:
        return st['ranks'][ranks.rank] if ranks.enabled else {'rng': st['rng'], 'ada': st.get('ada')}
    if ranks.is_main:
        warnings.warn(f'resuming with {ranks.world_size} process(es) a run saved by {stored}: the random streams are '
                      'reseeded deterministically (from --seed, the step and the rank) and ADA\'s current interval restarts; '
                      'the run goes on, but not bitwise as it would have with the same number of processes')
    return None

def _resume(st, ranks, opts, device, opt_G, opt_D, pipe, ada, loss):
    for opt, key in ((opt_G, 'opt_G'), (opt_D, 'opt_D')):
        if opt is not None:
            opt.load_state_dict(st[key])
    if pipe is not None:
        pipe.p.copy_(torch.as_tensor(st.get('augment_p', opts.p)))
    mine = _rank_state(st, ranks)
    ada_state = mine['ada'] if mine is not None else st.get('ada')
    if ada is not None and ada_state is not None:
        ada.load_state_dict(ada_state if mine is not None else {**ada_state, 'sum': 0.0, 'count': 0, 'steps': 0})
    loss.pl_mean = torch.as_tensor(st['pl_mean'], device=device)
    if mine is not None:
        _set_rng_state(mine['rng'], device)
    else:
        torch.manual_seed(distributed.rank_seed(opts.seed + int(st['batch_idx']), ranks))

#----------------------------------------------------------------------------

def _device(opts, ranks):
    try:
        device = default_device(opts.device)
    except DeviceUnavailable as e:
        raise TrainingError(f'--device {opts.device}: CUDA is not available here ({e.reason})') from None
    if device.type != 'cuda' or not ranks.enabled:
        return device
    if ranks.local_rank >= torch.cuda.device_count():
        raise TrainingError(f'LOCAL_RANK {ranks.local_rank}: this machine has {torch.cuda.device_count()} CUDA device(s); '
                            'start at most one process per GPU (torchrun --nproc_per_node)')
    return torch.device('cuda', ranks.local_rank)

def _resolve(opts):
    """(options, run directory or None): a resumed run keeps its stored options, except where and how fast it runs."""
    if opts.resume is None or not run_state.is_run_dir(opts.resume):
        return opts, None
    run_dir = Path(opts.resume)
    stored = TrainOptions.from_dict(run_state.read_json(run_dir / run_state.OPTIONS_FILE))
    return dataclasses.replace(stored, kimg=opts.kimg, device=opts.device, workers=opts.workers, precision=opts.precision,
                               tf32=opts.tf32, resume=stored.resume), run_dir

def _new_run_dir(opts, ranks):
    """Rank 0 creates the run directory and writes the options; every rank gets its path."""
    run_dir = None
    if ranks.is_main:
        run_dir = run_state.create_run_dir(opts.outdir, Path(opts.data).stem)
        run_state.write_json(run_dir / run_state.OPTIONS_FILE, opts.to_dict())
    return Path(distributed.broadcast_object(ranks, str(run_dir) if run_dir is not None else None))

def _peak_gib_since_last_tick(device):
    """Peak GPU memory of this tick (as NVlabs: the peak counter restarts every tick, not at process start)."""
    if device.type != 'cuda':
        return None
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30
    torch.cuda.reset_peak_memory_stats(device)
    return peak

def _finite_or_stop(sums, counters, last_snapshot):
    bad = [k for k, v in sums.items() if not np.isfinite(v)]
    if bad:
        where = f'the last good snapshot is {last_snapshot}' if last_snapshot else 'no snapshot was written yet'
        raise TrainingError(f'non-finite {", ".join(bad)} at kimg {counters["nimg"] / 1000:.3f}: training stopped; {where} '
                            '(lower the learning rate or gamma, or check the data; with --precision fp16 (the default on '
                            'CUDA), float16 may have overflowed: resume with --precision fp32, or bf16 on Ampere or newer)')

def train(opts: TrainOptions, callback: Optional[Callable[[TickInfo], None]] = None):
    """Run (or continue) a training run; returns the run directory. `opts.resume` may be a run directory.

    Started by torchrun (WORLD_SIZE > 1), every process calls this: data parallel over the processes, with
    `opts.batch` the global batch (see distributed.py); rank 0 alone writes files, shows progress and calls
    `callback`."""
    ranks = distributed.from_env()
    opts, run_dir = _resolve(opts)
    distributed.local_batch(opts.batch, ranks)                # the global batch must split evenly over the ranks
    device = _device(opts, ranks)
    speed.check_precision(opts.precision, device)
    with distributed.session(ranks, device), speed.cuda_flags(opts.precision, device, opts.tf32):
        return _Run(opts, run_dir, ranks, device).run(callback)

#----------------------------------------------------------------------------

class _Run:
    """One training run: networks, optimisers, losses and counters; ticks and snapshots."""

    def __init__(self, opts, run_dir, ranks, device):
        self.opts, self.ranks, self.device = opts, ranks, device
        self.resuming = run_dir is not None
        if self.resuming:
            G, D, G_ema, st = restore(run_dir, device)
            if ranks.is_main:
                run_state.truncate_metrics(run_dir, st['nimg'])
        else:
            torch.manual_seed(opts.seed)                      # --seed also fixes from-scratch initial weights
            G, D, G_ema, _ = build_networks(opts)
            st = {'nimg': 0, 'batch_idx': 0, 'epoch': 0}
        G, D, G_ema = self._precision(G, D, G_ema)
        # Bad data: stop before anything is written.
        self.dataset = ImageDataset(opts.data, G.img_resolution, xflip=opts.mirror, progress=ranks.is_main)
        self.run_dir = run_dir if self.resuming else _new_run_dir(self.opts, ranks)
        torch.manual_seed(distributed.rank_seed(opts.seed, ranks))
        self._setup(G, D, G_ema, st)
        self.counters = {k: int(st[k]) for k in ('nimg', 'batch_idx', 'epoch')}
        self.last_snapshot = st.get('snapshot')
        distributed.write_debug_digest(ranks, 'start', self.counters['nimg'], self.G, self.D, self.G_ema)

    def _precision(self, G, D, G_ema):
        """The networks with the fp16 blocks this run uses (speed.fp16_setting), the number written to the run's
        options, and one line saying which blocks run in which dtype."""
        opts, device = self.opts, self.device
        n, clamp, changed = speed.fp16_setting(opts.precision, device, G.cfg, opts.num_fp16_res)
        G, D, G_ema = (speed.with_fp16_setting(net, n, clamp) for net in (G, D, G_ema))
        if opts.precision == 'fp16':
            self.opts = dataclasses.replace(opts, num_fp16_res=n)
        self.precision_summary = speed.describe(opts.precision, device, G, D, opts.tf32, changed)
        if self.ranks.is_main:
            tqdm.write(self.precision_summary)
        return G, D, G_ema

    def _setup(self, G, D, G_ema, st):
        opts, device, ranks = self.opts, self.device, self.ranks
        G, D, G_ema = G.to(device).train(), D.to(device).train(), G_ema.to(device).eval().requires_grad_(False)
        distributed.broadcast_modules(ranks, G, D, G_ema)
        G.requires_grad_(True)
        D.requires_grad_(True)
        freeze(G, D, opts)
        speed.use_channels_last(opts.precision, device, G, D)
        opt_G, opt_D = make_optimizer(G, opts, opts.g_reg_interval), make_optimizer(D, opts, opts.d_reg_interval)
        pipe = AugmentPipe.preset(opts.augpipe, p=opts.p).to(device) if opts.aug != 'none' else None
        ada = (AdaController(pipe, target=opts.target, interval=opts.ada_interval, kimg=opts.ada_kimg, batch=opts.batch,
                             fixed=(opts.aug == 'fixed')) if pipe is not None else None)   # 'fixed' still measures r_t
        gamma = opts.gamma if opts.gamma is not None else 0.0002 * G.img_resolution ** 2 / opts.batch
        loss = StyleGAN2Loss(G, D, pipe, r1_gamma=gamma, style_mixing=opts.style_mixing, pl_weight=opts.pl_weight,
                             pl_batch_shrink=opts.pl_batch_shrink, pl_decay=opts.pl_decay, update_w_avg=not opts.freeze_mapping,
                             **speed.loss_precision(opts.precision, device))
        if self.resuming:
            _resume(st, ranks, opts, device, opt_G, opt_D, pipe, ada, loss)
        self.G, self.D, self.G_ema, self.opt_G, self.opt_D, self.pipe, self.ada, self.loss = G, D, G_ema, opt_G, opt_D, pipe, ada, loss
        self.stepper = Stepper(loss, opt_G, opt_D, G.z_dim, opts, ada, ranks)
        self.measure = SnapshotMetrics(opts, self.dataset, device) if opts.metrics else None

    def run(self, callback):
        opts, counters = self.opts, self.counters
        total_nimg, snap_nimg = int(opts.kimg * 1000), int(opts.snap * 1000)
        next_snap = (counters['nimg'] // snap_nimg + 1) * snap_nimg
        next_tick = counters['nimg'] + int(opts.tick * 1000)
        snap_epoch = counters['epoch']
        self.sums, self.counts = {}, {}
        self.tick_start, self.tick_nimg = time.time(), counters['nimg']
        _peak_gib_since_last_tick(self.device)                  # the first tick's peak: this run's alone
        bar = tqdm(total=opts.kimg, initial=counters['nimg'] / 1000, unit='kimg', desc=f'train {self.run_dir.name}',
                   disable=not self.ranks.is_main, bar_format='{l_bar}{bar}| {n:.3f}/{total_fmt} kimg [{elapsed}<{remaining}{postfix}]')
        data = batches(self.dataset, opts, counters['nimg'], self.device, self.ranks)

        while counters['nimg'] < total_nimg:
            self._step(next(data))
            bar.update(min(opts.batch / 1000, bar.total - bar.n))
            done = counters['nimg'] >= total_nimg
            epoch_snap = opts.snap_epochs is not None and counters['epoch'] >= snap_epoch + opts.snap_epochs
            snap_now = done or counters['nimg'] >= next_snap or epoch_snap
            if not (done or snap_now or counters['nimg'] >= next_tick):
                continue
            record = self._tick(measure=snap_now)
            bar.set_postfix({k: f'{record[k]:.3g}' for k in ('loss_G', 'loss_D', 'p', 'sec_per_kimg') if record.get(k) is not None})
            next_tick = counters['nimg'] + int(opts.tick * 1000)
            if snap_now:
                self._snapshot({k: record[k] for k in record if k in MEASURED})
                next_snap = (counters['nimg'] // snap_nimg + 1) * snap_nimg
                snap_epoch = counters['epoch'] if epoch_snap else snap_epoch
            if callback is not None and self.ranks.is_main:
                callback(TickInfo(self.run_dir, counters['nimg'], counters['nimg'] / 1000, counters['epoch'], record, self.G_ema,
                                  done))
        bar.close()
        distributed.write_debug_digest(self.ranks, 'end', counters['nimg'], self.G, self.D, self.G_ema)
        distributed.barrier(self.ranks)
        return self.run_dir

    def _step(self, real):
        opts, counters = self.opts, self.counters
        stats = self.stepper(real, counters['batch_idx'])
        counters['nimg'] += opts.batch
        counters['batch_idx'] += 1
        counters['epoch'] = counters['nimg'] // len(self.dataset)
        update_ema(self.G_ema, self.G, counters['nimg'], opts.batch, opts)
        if self.ada is not None and counters['batch_idx'] % opts.ada_interval == 0:
            self.ada.update()
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0) + v
            self.counts[k] = self.counts.get(k, 0) + (opts.batch if k in PER_IMAGE else 1)

    def _tick(self, measure=False):
        """Metrics line (rank 0) of the statistics summed over the ranks: one sync for the whole tick; at a
        snapshot also the run's --metrics (rank 0), whose time counts in neither this tick nor the next."""
        counters, device = self.counters, self.device
        values = {k: float(v) for k, v in distributed.sum_values(self.ranks, self.sums).items()}
        _finite_or_stop(values, counters, self.last_snapshot)
        elapsed = time.time() - self.tick_start
        record = {'nimg': counters['nimg'], 'kimg': counters['nimg'] / 1000, 'epoch': counters['epoch'],
                  **{k: values[k] if k in TOTALS else values[k] / max(self.counts[k], 1) for k in values},
                  'p': float(self.pipe.p) if self.pipe is not None else 0.0, 'r_t': self.ada.last_rt if self.ada is not None else None,
                  'sec_per_kimg': elapsed / max((counters['nimg'] - self.tick_nimg) / 1000, 1e-9),
                  'gpu_mem_gb': _peak_gib_since_last_tick(device)}
        if measure and self.measure is not None and self.ranks.is_main:
            record.update(self.measure(self.G_ema))
        if self.ranks.is_main:
            run_state.append_metrics(self.run_dir, record)
        self.sums, self.counts = {}, {}
        self.tick_start, self.tick_nimg = time.time(), counters['nimg']
        return record

    def _snapshot(self, scores=None):
        """Rank 0 writes the networks (their meta with the snapshot's --metrics scores), the grid and the resume
        state with every rank's RNG state."""
        if not all(torch.isfinite(p).all() for p in self.G.parameters()):
            _finite_or_stop({'G parameters': float('nan')}, self.counters, self.last_snapshot)
        pipe, ada = self.pipe, self.ada
        extra = {'opt_G': self.opt_G.state_dict() if self.opt_G else None, 'opt_D': self.opt_D.state_dict() if self.opt_D else None,
                 'augment_p': float(pipe.p) if pipe is not None else 0.0, 'ada': ada.state_dict() if ada is not None else None,
                 'pl_mean': float(self.loss.pl_mean), 'rng': _rng_state(self.device)}
        if self.ranks.enabled:
            extra['world_size'] = self.ranks.world_size
            extra['ranks'] = distributed.gather_objects(self.ranks, {'rng': extra['rng'], 'ada': extra['ada']})
        if self.ranks.is_main:
            write_snapshot(self.run_dir, self.G, self.D, self.G_ema, self.counters, self.opts, extra, scores)
        self.last_snapshot = run_state.snapshot_stem(self.counters['nimg'], self.counters['epoch']) + '.safetensors'
