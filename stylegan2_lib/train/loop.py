"""The training loop (NVlabs stylegan2-ada-pytorch `training_loop.py`, single process or DDP):

    per step:  Gmain, [Greg every g_reg_interval], Dmain, [Dreg every d_reg_interval], G_ema update, ADA
    per tick:  metrics line, progress bar, finiteness check, callback
    per snap:  snapshot (G, D, G_ema + sample grid), then the resume state that names it

Lazy regularisation (Karras et al. 2020, Appendix B): a regulariser evaluated every k steps is scaled by k,
and Adam's lr and betas are corrected by c = k / (k + 1): lr * c, beta ** c.
"""

import copy
import dataclasses
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import images
from ..checkpoints import load, save
from ..data import ImageDataset
from ..discriminator import Discriminator, DiscriminatorConfig
from ..generator import Generator, GeneratorConfig
from . import state as run_state
from .augment import AdaController, AugmentPipe
from .loss import StyleGAN2Loss
from .options import ARCHITECTURE_OPTIONS, TrainOptions


class TrainingError(RuntimeError):
    """The run cannot start or cannot go on (bad options, non-finite losses); the message says why."""


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
# Networks: from a file (transfer learning) or from scratch; the architecture is the file's.

def _from_scratch(opts):
    if opts.resolution is None:
        raise TrainingError('training from scratch needs --resolution (or give --resume FILE)')
    arch = {k: getattr(opts, k) for k in ARCHITECTURE_OPTIONS if getattr(opts, k) is not None and k != 'resolution'}
    g_cfg = GeneratorConfig(img_resolution=opts.resolution, **arch)
    d_cfg = DiscriminatorConfig(img_resolution=opts.resolution, channel_base=g_cfg.channel_base, channel_max=g_cfg.channel_max)
    G = Generator(g_cfg)
    return G, Discriminator(d_cfg), copy.deepcopy(G), {}

def _check_requested_architecture(opts, cfg, path):
    given = {'resolution': cfg.img_resolution, 'z_dim': cfg.z_dim, 'w_dim': cfg.w_dim, 'mapping_layers': cfg.mapping_layers}
    for key, value in given.items():
        asked = getattr(opts, key)
        if asked is not None and asked != value:
            raise TrainingError(f'{path}: --{key.replace("_", "-")} {asked} disagrees with the network in the file ({value}); '
                                'the architecture comes from the file')
    if opts.channel_base is not None or opts.channel_max is not None:
        raise TrainingError(f'{path}: --channel-base/--channel-max cannot change a loaded network (its channels: {cfg.channels})')

def _placeholder_D(G_cfg):
    resolutions = [2 ** i for i in range(2, G_cfg.img_resolution.bit_length())]
    return Discriminator(DiscriminatorConfig(img_resolution=G_cfg.img_resolution, c_dim=G_cfg.c_dim,
                                             channels={r: G_cfg.channels[r] for r in resolutions},
                                             num_fp16_res=G_cfg.num_fp16_res, conv_clamp=G_cfg.conv_clamp))

def build_networks(opts):
    """(G, D, G_ema, source meta) for a new run."""
    if opts.resume is None:
        return _from_scratch(opts)
    ck = load(opts.resume)
    G0 = ck.G if ck.G is not None else ck.G_ema
    if G0 is None:
        raise TrainingError(f'{opts.resume}: the file holds no generator')
    _check_requested_architecture(opts, G0.cfg, opts.resume)
    if G0.c_dim > 0:
        raise TrainingError(f'{opts.resume}: conditional networks (c_dim {G0.c_dim}) cannot be fine-tuned on an unlabelled image folder')
    D = ck.D
    if D is None:
        warnings.warn(f'{opts.resume} has no discriminator: training starts from a freshly initialised one')
        D = _placeholder_D(G0.cfg)
    G_ema = ck.G_ema if ck.G_ema is not None else G0
    return copy.deepcopy(G0), copy.deepcopy(D), copy.deepcopy(G_ema), ck.meta

#----------------------------------------------------------------------------
# Freezing (FreezeD: Mo et al. 2020; FreezeG: the synthesis blocks that carry the source's structure).

def freeze(G, D, opts):
    for res in D.block_resolutions[: opts.freezed]:
        getattr(D, f'b{res}').requires_grad_(False)
    if opts.freeze_g:
        for block in G.synthesis.blocks():
            if block.resolution <= opts.freeze_g:
                block.requires_grad_(False)
    if opts.freeze_mapping:
        G.mapping.requires_grad_(False)

def make_optimizer(net, opts, reg_interval):
    ratio = reg_interval / (reg_interval + 1)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        return None
    return torch.optim.Adam(params, lr=opts.lr * ratio, betas=tuple(b ** ratio for b in opts.betas), eps=1e-8)

#----------------------------------------------------------------------------
# G_ema: exponential moving average with a half-life of ema_kimg (ramped up: at most ema_rampup of the
# images seen so far), beta = 0.5 ** (batch / half-life in images), as NVlabs.

@torch.no_grad()
def update_ema(G_ema, G, nimg, batch, opts):
    ema_nimg = (opts.ema_kimg if opts.ema_kimg is not None else batch * 10 / 32) * 1000
    if opts.ema_rampup is not None:
        ema_nimg = min(ema_nimg, nimg * opts.ema_rampup)
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)

#----------------------------------------------------------------------------
# Data: an endless stream of batches in per-epoch shuffled order (seed + epoch), starting at any image
# count, so a resumed run continues exactly where the snapshot was taken.

class EpochSampler(torch.utils.data.Sampler):
    def __init__(self, size, seed, start):
        self.size, self.seed, self.start = size, seed, start

    def __iter__(self):
        epoch, offset = divmod(self.start, self.size)
        while True:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch))
            yield from order[offset:].tolist()
            epoch, offset = epoch + 1, 0

def batches(dataset, opts, start_nimg, device):
    loader = torch.utils.data.DataLoader(dataset, batch_size=opts.batch, sampler=EpochSampler(len(dataset), opts.seed, start_nimg),
                                         num_workers=opts.workers, pin_memory=(device.type == 'cuda'), drop_last=True,
                                         persistent_workers=opts.workers > 0,
                                         generator=torch.Generator().manual_seed(opts.seed))  # not the global RNG
    for real in loader:
        yield real.to(device, non_blocking=True).to(torch.float32) / 127.5 - 1     # uint8 -> [-1, 1]

#----------------------------------------------------------------------------
# One training step: the four NVlabs phases, each with only its own network's trainable parameters
# requiring gradients. Returns per-step sums as tensors (no host-device sync).

def _trainable(opt):
    return [p for group in opt.param_groups for p in group['params']] if opt is not None else []

class Stepper:
    def __init__(self, loss, opt_G, opt_D, z_dim, opts, ada=None):
        self.loss, self.opt_G, self.opt_D, self.z_dim, self.opts, self.ada = loss, opt_G, opt_D, z_dim, opts, ada
        self.params = {'G': _trainable(opt_G), 'D': _trainable(opt_D)}
        for p in self.params['G'] + self.params['D']:
            p.requires_grad_(False)

    def _phase(self, net, opt, compute, gain):
        """Gradient step of `opt` on mean(loss) * gain; returns the statistic `compute` reports."""
        for p in self.params[net]:
            p.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        value, stat = compute()
        value.mean().mul(gain).backward()
        opt.step()
        for p in self.params[net]:
            p.requires_grad_(False)
        return stat.detach()

    def __call__(self, real, batch_idx):
        n, dev, o, loss = real.shape[0], real.device, self.opts, self.loss
        z = lambda: torch.randn([n, self.z_dim], device=dev)
        out = {}
        if self.opt_G is not None:
            out['loss_G'] = self._phase('G', self.opt_G, lambda: _with_sum(loss.G_main(z(), None)), 1)
            if o.pl_weight > 0 and batch_idx % o.g_reg_interval == 0:
                out['pl'] = self._phase('G', self.opt_G, lambda: loss.G_pl(z(), None), o.g_reg_interval)
        if self.opt_D is not None:
            out['loss_D'] = self._phase('D', self.opt_D, lambda: self._d_main(real, z()), 1)
            if loss.r1_gamma > 0 and batch_idx % o.d_reg_interval == 0:
                out['r1'] = self._phase('D', self.opt_D, lambda: loss.D_r1(real, None), o.d_reg_interval)
        return {k: v.sum() for k, v in out.items()}

    def _d_main(self, real, z):
        value, real_logits = self.loss.D_main(real, None, z, None)
        if self.ada is not None:
            self.ada.accumulate(real_logits)
        return value, value

def _with_sum(value):
    return value, value

#----------------------------------------------------------------------------
# Snapshots and resume.

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

def write_snapshot(run_dir, G, D, G_ema, counters, opts, extra_state):
    """Networks + grid first, then the resume state naming them (see state.py)."""
    stem = run_state.snapshot_stem(counters['nimg'], counters['epoch'])
    meta = {'nimg': counters['nimg'], 'kimg': counters['nimg'] / 1000, 'epoch': counters['epoch'], 'run_options': opts.to_dict(),
            'augment_p': extra_state.get('augment_p')}
    save(Path(run_dir) / f'{stem}.safetensors', G=G, D=D, G_ema=G_ema, meta=meta)
    images.save_image(Path(run_dir) / f'{stem}.png', _sample_grid(G_ema, opts.sample_seeds))
    run_state.write_state(run_dir, {'snapshot': f'{stem}.safetensors', **counters, **extra_state})
    return stem

def restore(run_dir, device):
    """(G, D, G_ema, state) of a run's last complete snapshot."""
    st = run_state.read_state(run_dir)
    ck = load(Path(run_dir) / st['snapshot'])
    return ck.G, ck.D, ck.G_ema, st

#----------------------------------------------------------------------------

def _device(opts):
    if opts.device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if opts.device == 'cuda' and not torch.cuda.is_available():
        raise TrainingError('--device cuda: CUDA is not available here')
    return torch.device(opts.device)

def _finite_or_stop(sums, counters, last_snapshot):
    bad = [k for k, v in sums.items() if not np.isfinite(v)]
    if bad:
        where = f'the last good snapshot is {last_snapshot}' if last_snapshot else 'no snapshot was written yet'
        raise TrainingError(f'non-finite {", ".join(bad)} at kimg {counters["nimg"] / 1000:.3f}: training stopped; {where} '
                            '(lower the learning rate or gamma, or check the data)')

def train(opts: TrainOptions, callback: Optional[Callable[[TickInfo], None]] = None):
    """Run (or continue) a training run; returns the run directory. `opts.resume` may be a run directory."""
    device = _device(opts)
    resuming = opts.resume is not None and run_state.is_run_dir(opts.resume)
    if resuming:
        run_dir = Path(opts.resume)
        stored = TrainOptions.from_dict(run_state.read_json(run_dir / run_state.OPTIONS_FILE))
        opts = dataclasses.replace(stored, kimg=opts.kimg, device=opts.device, workers=opts.workers, resume=stored.resume)
        G, D, G_ema, st = restore(run_dir, device)
        run_state.truncate_metrics(run_dir, st['nimg'])
    else:
        G, D, G_ema, _ = build_networks(opts)
        st = {'nimg': 0, 'batch_idx': 0, 'epoch': 0}
    dataset = ImageDataset(opts.data, G.img_resolution, xflip=opts.mirror)   # bad data: stop before writing anything
    if not resuming:
        run_dir = run_state.create_run_dir(opts.outdir, Path(opts.data).stem)
        run_state.write_json(run_dir / run_state.OPTIONS_FILE, opts.to_dict())
    torch.manual_seed(opts.seed)
    G, D, G_ema = G.to(device).train(), D.to(device).train(), G_ema.to(device).eval().requires_grad_(False)
    G.requires_grad_(True)
    D.requires_grad_(True)
    freeze(G, D, opts)
    opt_G, opt_D = make_optimizer(G, opts, opts.g_reg_interval), make_optimizer(D, opts, opts.d_reg_interval)
    pipe = AugmentPipe.preset(opts.augpipe, p=opts.p).to(device) if opts.aug != 'none' else None
    ada = (AdaController(pipe, target=opts.target, interval=opts.ada_interval, kimg=opts.ada_kimg, batch=opts.batch,
                         fixed=(opts.aug == 'fixed')) if pipe is not None else None)   # 'fixed' still measures r_t
    gamma = opts.gamma if opts.gamma is not None else 0.0002 * G.img_resolution ** 2 / opts.batch
    loss = StyleGAN2Loss(G, D, pipe, r1_gamma=gamma, style_mixing=opts.style_mixing, pl_weight=opts.pl_weight,
                         pl_batch_shrink=opts.pl_batch_shrink, pl_decay=opts.pl_decay, update_w_avg=not opts.freeze_mapping)
    if resuming:
        for opt, key in ((opt_G, 'opt_G'), (opt_D, 'opt_D')):
            if opt is not None:
                opt.load_state_dict(st[key])
        if pipe is not None:
            pipe.p.copy_(torch.as_tensor(st.get('augment_p', opts.p)))
        if ada is not None and st.get('ada') is not None:
            ada.load_state_dict(st['ada'])
        loss.pl_mean = torch.as_tensor(st['pl_mean'], device=device)
        _set_rng_state(st['rng'], device)
    stepper = Stepper(loss, opt_G, opt_D, G.z_dim, opts, ada)

    counters = {k: int(st[k]) for k in ('nimg', 'batch_idx', 'epoch')}
    total_nimg = int(opts.kimg * 1000)
    last_snapshot = st.get('snapshot')
    next_snap = (counters['nimg'] // int(opts.snap * 1000) + 1) * int(opts.snap * 1000)
    next_tick = counters['nimg'] + int(opts.tick * 1000)
    snap_epoch = counters['epoch']
    sums, counts = {}, {}
    tick_start, tick_nimg = time.time(), counters['nimg']
    bar = tqdm(total=opts.kimg, initial=counters['nimg'] / 1000, unit='kimg', desc=f'train {run_dir.name}', bar_format='{l_bar}{bar}| {n:.3f}/{total_fmt} kimg [{elapsed}<{remaining}{postfix}]')
    data = batches(dataset, opts, counters['nimg'], device)

    while counters['nimg'] < total_nimg:
        stats = stepper(next(data), counters['batch_idx'])
        counters['nimg'] += opts.batch
        counters['batch_idx'] += 1
        counters['epoch'] = counters['nimg'] // len(dataset)
        update_ema(G_ema, G, counters['nimg'], opts.batch, opts)
        if ada is not None and counters['batch_idx'] % opts.ada_interval == 0:
            ada.update()
        for k, v in stats.items():
            sums[k] = sums.get(k, 0) + v
            counts[k] = counts.get(k, 0) + (opts.batch if k.startswith('loss') else 1)
        bar.update(min(opts.batch / 1000, bar.total - bar.n))

        done = counters['nimg'] >= total_nimg
        epoch_snap = opts.snap_epochs is not None and counters['epoch'] >= snap_epoch + opts.snap_epochs
        snap_now = done or counters['nimg'] >= next_snap or epoch_snap
        if not (done or snap_now or counters['nimg'] >= next_tick):
            continue

        # Tick: one sync for the whole tick's statistics.
        values = {k: float(v) for k, v in sums.items()}
        _finite_or_stop(values, counters, last_snapshot)
        elapsed = time.time() - tick_start
        record = {'nimg': counters['nimg'], 'kimg': counters['nimg'] / 1000, 'epoch': counters['epoch'],
                  **{k: values[k] / max(counts[k], 1) for k in values},
                  'p': float(pipe.p) if pipe is not None else 0.0, 'r_t': ada.last_rt if ada is not None else None,
                  'sec_per_kimg': elapsed / max((counters['nimg'] - tick_nimg) / 1000, 1e-9),
                  'gpu_mem_gb': torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else None}
        run_state.append_metrics(run_dir, record)
        bar.set_postfix({k: f'{record[k]:.3g}' for k in ('loss_G', 'loss_D', 'p', 'sec_per_kimg') if record.get(k) is not None})
        sums, counts = {}, {}
        tick_start, tick_nimg = time.time(), counters['nimg']
        next_tick = counters['nimg'] + int(opts.tick * 1000)

        if snap_now:
            if not all(torch.isfinite(p).all() for p in G.parameters()):
                _finite_or_stop({'G parameters': float('nan')}, counters, last_snapshot)
            extra = {'opt_G': opt_G.state_dict() if opt_G else None, 'opt_D': opt_D.state_dict() if opt_D else None,
                     'augment_p': float(pipe.p) if pipe is not None else 0.0, 'ada': ada.state_dict() if ada is not None else None,
                     'pl_mean': float(loss.pl_mean), 'rng': _rng_state(device)}
            last_snapshot = write_snapshot(run_dir, G, D, G_ema, counters, opts, extra) + '.safetensors'
            next_snap = (counters['nimg'] // int(opts.snap * 1000) + 1) * int(opts.snap * 1000)
            snap_epoch = counters['epoch'] if epoch_snap else snap_epoch
        if callback is not None:
            callback(TickInfo(run_dir, counters['nimg'], counters['nimg'] / 1000, counters['epoch'], record, G_ema, done))
    bar.close()
    return run_dir
