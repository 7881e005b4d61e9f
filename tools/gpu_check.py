"""GPU self-check of stylegan2_lib: every CUDA path checked and timed in one command, in a few minutes on one GPU.

    python tools/gpu_check.py                                  # on a GPU (T4 / L4 / A100 / H100 ...), paper256 at 256x256
    python tools/gpu_check.py --json out.json                  # also every number as JSON
    python tools/gpu_check.py --device cpu --quick             # the CPU run CI keeps working: small networks, the fp16
                                                               # blocks emulated in float16, the kernels' CPU build

Prints one line per check, `PASS|FAIL|SKIP <check>: <details>`, then a timing table (Markdown, as the README's
GPU section shows it) and a summary; exit status 1 if a check failed. Random paper256-shaped networks (channel_base
16384, channel_max 512, 8 mapping layers, num_fp16_res 4, conv_clamp 256: NVlabs's transfer-learning config),
seeded; nothing is downloaded.

Checks, in order, cheap ones first (each skipped once --budget seconds are spent):
  env              torch / CUDA / GPU / bf16 / ninja / nvcc / why the kernels cannot build (if so)
  kernels_build    the JIT build of ops/cuda (first, so no timing below includes it)
  kernels_correct  impl='cuda' against 'ref': float32 / float16 / bfloat16, forward and backward, channels-last;
                   float64 gradcheck and gradgradcheck (R1's double backward)
  kernels_reach    kernel calls in one G and one D pass with the default ops (every activation and FIR)
  forward          float32 (TF32 off) default ops vs the reference ops and vs the CPU; fp16 blocks vs float32
  tf32_flags       TF32 off unless asked, cudnn.allow_tf32 readable during a run, every flag restored
  bf16_gate        --precision bf16 refused exactly where the GPU has no native bfloat16
  sync_free_step   two steps under torch.cuda.set_sync_debug_mode('error'): no host-device sync
  generator_speed  images/s at --batch: float32 and fp16 blocks, on the reference ops, the PyTorch fast ops and
                   the default (kernels on CUDA)
  projection       project() steps/s on the device; stylize() projects on the device by default
  explorer         blend explorer latency: first view, a new swap point, a seed added, 'compare'
  train_fp16/_bf16/_fp32   sg.train() for a few ticks from a saved network: s/kimg, peak GiB, non-finite
                   gradient steps (from the run's metrics), finite losses
  train_step       one full step (four phases + Adam) at batch 8 and 16 in fp16 (kernels and PyTorch ops) /
                   bf16 / fp32: time, peak memory
  phases           the four training phases (Gmain, Greg, Dmain, Dreg) in fp16 blocks and bf16 autocast vs
                   float32: finite, gradients agree (cosine)
"""

import argparse
import collections
import contextlib
import dataclasses
import importlib
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np                                                      # noqa: E402
import torch                                                            # noqa: E402

import stylegan2_lib as sg                                              # noqa: E402
from stylegan2_lib import layers, ops                                   # noqa: E402
from stylegan2_lib.devices import default_device                        # noqa: E402
from stylegan2_lib.ops import cuda_build, cuda_ops                      # noqa: E402
from stylegan2_lib.train import speed                                   # noqa: E402

RESULTS = []        # (status, name, detail)
NUMBERS = {}        # name -> JSON-able measurements
TABLE = []          # (what, setting, value) rows of the timing table


class Skip(Exception):
    pass

#----------------------------------------------------------------------------
# Harness.

class Check:
    def __init__(self, args):
        self.args = args
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == 'cuda'
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix='sg2-gpu-check-'))
        self.work.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()
        self.kernels = None                 # the extension, once built (or the CPU emulation build)
        self.half = self.cuda or args.emulate_half is not None

    def run(self, name, fn):
        if time.time() - self.t0 > self.args.budget:
            return self.report('SKIP', name, f'time budget of {self.args.budget:.0f} s spent')
        t = time.time()
        try:
            with self.emulation():
                ok, detail = fn()
            self.report('PASS' if ok else 'FAIL', name, f'{detail} [{time.time() - t:.1f} s]')
        except Skip as e:
            self.report('SKIP', name, str(e))
        except Exception as e:                                       # noqa: BLE001 (report and go on)
            first = str(e).splitlines()[0][:400] if str(e) else ''
            self.report('FAIL', name, f'{type(e).__name__}: {first} [{time.time() - t:.1f} s]')
            traceback.print_exc(limit=8)

    def report(self, status, name, detail):
        RESULTS.append((status, name, detail))
        print(f'{status:<4} {name}: {detail}', flush=True)

    def emulation(self):
        half = self.args.emulate_half
        return layers.emulate_half_blocks(getattr(torch, half)) if half and not self.cuda else contextlib.nullcontext()

    def kernel_impl(self):
        """A context in which the kernels are the selected ops on this device (the default on CUDA)."""
        return contextlib.nullcontext() if self.cuda else ops.use_impl('cuda')

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.dev)

    def timed(self, fn, iters, warmup=2):
        """Median seconds of fn() (CUDA events on a GPU)."""
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(iters):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize(self.dev)
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
        return statistics.median(times)

    def nets(self, seed=0, num_fp16_res=4, conv_clamp=256):
        torch.manual_seed(seed)
        a = self.args
        kw = dict(img_resolution=a.res, channel_base=a.channel_base, channel_max=a.channel_max,
                  num_fp16_res=num_fp16_res, conv_clamp=conv_clamp)
        return sg.Generator(z_dim=a.z_dim, w_dim=a.z_dim, mapping_layers=a.mapping_layers, **kw), sg.Discriminator(**kw)

    def peak_gib(self):
        return torch.cuda.max_memory_allocated(self.dev) / 2 ** 30 if self.cuda else float('nan')

    def reset_peak(self):
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.dev)


def rel(a, b):
    """max |a - b| / max |b| and mean |a - b| / mean |b| (in float32, on the CPU)."""
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return (float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)),
            float((a - b).abs().mean() / b.abs().mean().clamp_min(1e-12)))


@contextlib.contextmanager
def tf32_off(check):
    """Exact float32 for accuracy comparisons (restores every flag)."""
    with speed.cuda_flags('fp32', check.dev, tf32=False):
        yield

#----------------------------------------------------------------------------
# Checks.

def env(c):
    facts = [f'stylegan2_lib {getattr(sg, "__version__", "?")}', f'torch {torch.__version__}', f'CUDA {torch.version.cuda}',
             f'python {platform.python_version()}']
    if c.cuda:
        p = torch.cuda.get_device_properties(c.dev)
        facts.append(f'{p.name} sm_{p.major}{p.minor} {p.total_memory / 2 ** 30:.1f} GiB')
        NUMBERS['gpu'] = p.name
    else:
        facts.append(f'{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)'
                     + (f', fp16 blocks emulated in {c.args.emulate_half}' if c.args.emulate_half else ''))
    reason = cuda_build.unavailable_reason()
    facts += [f'native bf16 {speed.native_bf16(c.dev)}', f'ninja {shutil.which("ninja") or "-"}', f'nvcc {shutil.which("nvcc") or "-"}',
              f'kernels: {"can build" if reason is None else reason}']
    NUMBERS['env'] = facts
    return True, ', '.join(facts)


def kernels_build(c):
    t = time.time()
    if c.args.skip_kernels:
        raise Skip('--skip-kernels')
    if not c.cuda:
        if not c.args.kernel_emulation:
            raise Skip('no CUDA device (--kernel-emulation checks the kernels\' CPU build)')
        ext = cuda_build.build_cpu_emulation()
        cuda_ops._KERNEL_DEVICE = 'cpu'
        cuda_ops._extension = lambda: ext
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            ext = cuda_build.extension()
        if ext is None:
            return False, f'no kernels: {"; ".join(str(w.message)[:300] for w in caught) or cuda_build.failure()}'
    c.kernels = ext
    NUMBERS['kernel_build_s'] = time.time() - t
    TABLE.append(('CUDA kernels', 'JIT build (first use; cached after)', f'{NUMBERS["kernel_build_s"]:.0f} s'))
    return True, f'built or loaded in {NUMBERS["kernel_build_s"]:.1f} s'


def need_kernels(c):
    if c.kernels is None:
        raise Skip('no kernels (see kernels_build)')


def kernels_correct(c):
    need_kernels(c)
    dev, gen = c.dev, torch.Generator().manual_seed(0)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
    dtypes = [torch.float32, torch.float16] + ([torch.bfloat16] if speed.native_bf16(dev) or not c.cuda else [])
    worst = collections.defaultdict(float)
    f2, f1 = ops.setup_filter([1, 3, 3, 1]).to(dev), ops.setup_filter([1, 3, 3, 1], separable=True).to(dev)

    def err(got, want):
        return float((got.float() - want).abs().max()) / max(float(want.abs().max()), 1.0)

    def compare(key, fn_cuda, fn_ref, x0, dt):
        x0 = x0.to(dt)                                     # the reference sees the same rounded inputs
        for channels_last in (False, True):
            x = (x0.contiguous(memory_format=torch.channels_last) if channels_last else x0.clone()).requires_grad_(True)
            xr = x0.float().requires_grad_(True)
            y, yr = fn_cuda(x), fn_ref(xr)
            dy = torch.randn(y.shape, generator=gen).to(dev)
            (gx,), (gxr,) = torch.autograd.grad(y, x, dy.to(dt)), torch.autograd.grad(yr, xr, dy)
            worst[key] = max(worst[key], max(err(y.detach(), yr.detach()), err(gx, gxr)) / tol[dt])

    for dt in dtypes:
        name = str(dt).replace('torch.', '')
        for act in ops.activation_funcs:
            for clamp in (None, 0.5):
                x0 = torch.randn(4, 16, 9, 7, generator=gen).to(dev)
                b = torch.randn(16, generator=gen).to(dev, dt)
                compare(f'bias_act {name}', lambda x: ops.bias_act(x, b, act=act, clamp=clamp, impl='cuda'),
                        lambda x: ops.bias_act(x, b.float(), act=act, clamp=clamp, impl='ref'), x0, dt)
        for f in (f2, f1):
            for kw in (dict(up=2, padding=[2, 1, 2, 1], gain=4), dict(down=2, padding=1), dict(padding=[1, 2, 0, 1])):
                x0 = torch.randn(2, 8, 11, 9, generator=gen).to(dev)
                compare(f'upfirdn2d {name}', lambda x: ops.upfirdn2d(x, f, impl='cuda', **kw),
                        lambda x: ops.upfirdn2d(x, f, impl='ref', **kw), x0, dt)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, generator=gen).to(dev).requires_grad_(True)
    b = torch.randn(3, dtype=torch.float64, generator=gen).to(dev).requires_grad_(True)
    f64 = ops.setup_filter([1, 3, 3, 1]).to(dev, torch.float64)
    gc = torch.autograd.gradcheck(lambda x, b: ops.bias_act(x, b, act='lrelu', clamp=0.8, impl='cuda'), (x, b))
    ggc = torch.autograd.gradgradcheck(lambda x, b: ops.bias_act(x, b, act='softplus', impl='cuda'), (x, b))
    ggu = torch.autograd.gradgradcheck(lambda x: ops.upfirdn2d(x, f64, up=2, padding=[2, 1, 2, 1], impl='cuda'), (x,))
    ok = all(v <= 1 for v in worst.values()) and gc and ggc and ggu
    return ok, ('worst error / tolerance: ' + ', '.join(f'{k} {v:.2f}' for k, v in worst.items())
                + f'; gradcheck {gc}, gradgradcheck bias_act {ggc} upfirdn2d {ggu}')


def kernels_reach(c):
    need_kernels(c)
    calls = collections.Counter()
    real = c.kernels

    class Counting:
        def bias_act(self, *a):
            calls['bias_act'] += 1
            return real.bias_act(*a)

        def upfirdn2d(self, *a):
            calls['upfirdn2d'] += 1
            return real.upfirdn2d(*a)

    saved = cuda_ops._extension
    cuda_ops._extension = lambda: Counting()
    G, D = c.nets()
    G, D = G.eval().to(c.dev), D.eval().to(c.dev)
    try:
        with torch.no_grad(), c.kernel_impl():
            img = G(torch.randn(2, G.z_dim, device=c.dev), None, noise_mode='const')
            g_calls = dict(calls)
            calls.clear()
            D(img, None)
            d_calls = dict(calls)
    finally:
        cuda_ops._extension = saved
    blocks = G.synthesis.blocks()
    want_g = {'bias_act': G.mapping.num_layers + len(G.synthesis.noise_layers()) + len(blocks), 'upfirdn2d': 2 * (len(blocks) - 1)}
    want_d = {'bias_act': 1 + 3 * len(D.block_resolutions) + 2, 'upfirdn2d': 2 * len(D.block_resolutions)}
    return g_calls == want_g and d_calls == want_d, f'G {g_calls} (expected {want_g}); D {d_calls} (expected {want_d})'


def forward(c):
    G, D = c.nets()
    G, D = G.eval().to(c.dev), D.eval().to(c.dev)
    z = torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(1)).to(c.dev)
    parts, ok = [], True
    with torch.no_grad(), tf32_off(c):
        ws = G.mapping(z, None, truncation_psi=0.7)
        default = G.synthesis(ws, noise_mode='const', force_fp32=True)
        with ops.use_impl('ref'):
            ref = G.synthesis(ws, noise_mode='const', force_fp32=True)
            d_ref = D(ref, None, force_fp32=True)
        d_default = D(ref, None, force_fp32=True)
        g_err, d_err = rel(default, ref)[0], rel(d_default, d_ref)[0]
        ok &= bool(torch.isfinite(default).all()) and g_err < 2e-3 and d_err < 2e-3
        parts.append(f'float32 default vs reference ops: G max rel {g_err:.1e}, D {d_err:.1e}')
        if c.cuda:
            cpu = sg.Generator(G.cfg).eval()
            cpu.load_state_dict(G.state_dict())
            dev_err = rel(default[:2], cpu.synthesis(ws[:2].cpu(), noise_mode='const', force_fp32=True))[0]
            ok &= dev_err < 2e-3
            parts.append(f'{c.dev.type} vs cpu {dev_err:.1e}')
        if c.half:
            for n in (8, 1):                                  # batch 1 takes the grouped (fused) modulated conv
                half = G.synthesis(ws[:n], noise_mode='const')
                mx, mean = rel(half, ref[:n])
                ok &= bool(torch.isfinite(half).all()) and mx < 0.05 and mean < 0.01
                parts.append(f'fp16 blocks vs float32 at batch {n}: max rel {mx:.1e}, mean rel {mean:.1e}')
            l16 = D(ref, None)
            dmx = rel(l16, d_ref)[0]
            ok &= bool(torch.isfinite(l16).all()) and dmx < 0.05
            parts.append(f'D logits fp16 vs float32 max rel {dmx:.1e}')
    return ok, '; '.join(parts)


def generator_speed(c):
    G, _ = c.nets()
    G = G.eval().to(c.dev)
    n = c.args.batch
    ws = G.mapping(torch.randn(n, G.z_dim, device=c.dev), None, truncation_psi=0.7)
    paths = [('reference ops', 'ref'), ('PyTorch fast ops', 'fast'), ('default' + (' (kernels)' if c.cuda else ''), None)]
    rows, ips = [], {}
    for precision, force in (('float32', True), ('fp16 blocks', False)):
        if not force and not c.half:
            continue
        for label, impl in paths:
            ctx = ops.use_impl(impl) if impl else contextlib.nullcontext()
            with torch.no_grad(), ctx:
                s = c.timed(lambda: G.synthesis(ws, noise_mode='const', force_fp32=force), iters=c.args.iters)
            ips[precision, label] = n / s
            rows.append(f'{precision} {label} {n / s:.1f} img/s')
    for (precision, label), v in ips.items():
        base = ips[precision, 'reference ops']
        TABLE.append((f'G.synthesis, batch {n}', f'{precision}, {label}', f'{v:.1f} img/s ({v / base:.2f}x ref)'))
    NUMBERS['generator_img_per_s'] = {f'{p} / {l}': v for (p, l), v in ips.items()}
    return True, '; '.join(rows)


def _loss(G, D, precision, c, r1_gamma=1.0, pipe=None):
    from stylegan2_lib.train.loss import StyleGAN2Loss
    return StyleGAN2Loss(G, D, pipe, r1_gamma=r1_gamma, **speed.loss_precision(precision, c.dev))


def phases(c):
    if not c.half:
        raise Skip('fp16 blocks run on CUDA only (--emulate-half float16 on the CPU)')
    precisions = ['fp16', 'fp32'] + (['bf16'] if speed.native_bf16(c.dev) or not c.cuda else [])
    grads, finite, times = {}, {}, {}
    n = c.args.batch
    for precision in precisions:
        G, D = c.nets()
        G, D = G.train().to(c.dev), D.train().to(c.dev)
        speed.use_channels_last(precision, c.dev, G, D)
        loss = _loss(G, D, precision, c)
        gen = torch.Generator().manual_seed(3)
        real = (torch.rand(n, 3, c.args.res, c.args.res, generator=gen) * 2 - 1).to(c.dev)
        z = torch.randn(n, G.z_dim, generator=gen).to(c.dev)
        todo = (('Gmain', G, lambda: loss.G_main(z, None)), ('Greg', G, lambda: loss.G_pl(z, None)[0]),
                ('Dmain', D, lambda: loss.D_main(real, None, z, None)[0]), ('Dreg', D, lambda: loss.D_r1(real, None)[0]))
        with tf32_off(c):
            for name, net, fn in todo:
                G.requires_grad_(net is G)
                D.requires_grad_(net is D)
                torch.manual_seed(4)                          # the same noise and mixing in every precision
                t = time.perf_counter()
                value = fn()
                value.mean().backward()
                c.sync()
                times[precision, name] = time.perf_counter() - t
                flat = torch.cat([p.grad.flatten().float() for p in net.parameters() if p.grad is not None])
                grads[precision, name] = flat
                finite[precision, name] = bool(torch.isfinite(flat).all() and torch.isfinite(value).all())
                net.zero_grad(set_to_none=True)
    parts, ok = [], True
    for precision in precisions:
        if precision == 'fp32':
            continue
        for name in ('Gmain', 'Greg', 'Dmain', 'Dreg'):
            cos = float(torch.nn.functional.cosine_similarity(grads[precision, name].nan_to_num(), grads['fp32', name], dim=0))
            ok &= finite[precision, name] and cos > 0.95
            parts.append(f'{precision} {name} finite={finite[precision, name]} cos={cos:.4f}')
    return ok, '; '.join(parts)


def _stepper(c, G, D, precision, batch, pipe_p=0.2):
    from stylegan2_lib.train.augment import AugmentPipe
    from stylegan2_lib.train.loop import Stepper
    from stylegan2_lib.train.networks import make_optimizer
    from stylegan2_lib.train.options import TrainOptions
    opts = TrainOptions(data='-', outdir='-', batch=batch, precision=precision)
    speed.use_channels_last(precision, c.dev, G, D)
    pipe = AugmentPipe.preset('bgc', p=pipe_p).to(c.dev)
    loss = _loss(G, D, precision, c, r1_gamma=0.0002 * c.args.res ** 2 / batch, pipe=pipe)
    return Stepper(loss, make_optimizer(G, opts, 4), make_optimizer(D, opts, 16), G.z_dim, opts)


def train_step(c):
    out, ok = [], True
    configs = [('fp16', None), ('fp16', 'fast'), ('bf16', None), ('fp32', None)]
    batches = (8, 16) if not c.args.quick else (c.args.batch,)
    for precision, impl in configs:
        if precision == 'bf16' and not (speed.native_bf16(c.dev) or c.args.emulate_half):
            continue
        if impl == 'fast' and not c.cuda:
            continue
        for n in batches:
            G, D = c.nets()
            c.reset_peak()
            G, D = G.to(c.dev).train(), D.to(c.dev).train()
            stepper = _stepper(c, G, D, precision, n)
            real = torch.rand(n, 3, c.args.res, c.args.res, device=c.dev) * 2 - 1
            label = f'{precision}{" (PyTorch ops)" if impl else ""}'
            try:
                with speed.cuda_flags(precision, c.dev), (ops.use_impl(impl) if impl else contextlib.nullcontext()):
                    full = c.timed(lambda: stepper(real, 0), iters=3, warmup=1)      # batch 0: all four phases
                    plain = c.timed(lambda: stepper(real, 1), iters=3, warmup=1)     # Gmain + Dmain only
                    stats = stepper(real, 0)
                # NVlabs's lazy regularisation: Greg every 4 steps, Dreg every 16 -> about 1 full step in 16, the
                # rest between; estimate s/kimg from the two measured kinds of step.
                s_per_kimg = (plain + (full - plain) * (1 / 4 + 1 / 16) / 2) * 1000 / n
                gib = c.peak_gib()
                finite = all(bool(torch.isfinite(v)) for v in stats.values())
                ok &= finite and float(stats['nonfinite_grads']) == 0
                out.append(f'{label} batch {n}: {full * 1000:.0f} ms full step, {plain * 1000:.0f} ms plain, ~{s_per_kimg:.1f} s/kimg, '
                           f'{gib:.2f} GiB peak, finite={finite}')
                TABLE.append((f'training step, batch {n}', label, f'{full * 1000:.0f} ms (all 4 phases), {plain * 1000:.0f} ms '
                              f'(Gmain+Dmain), ~{s_per_kimg:.1f} s/kimg' + (f', {gib:.1f} GiB peak' if c.cuda else '')))
                NUMBERS[f'train_step {label} batch {n}'] = dict(full_s=full, plain_s=plain, s_per_kimg=s_per_kimg, peak_gib=gib)
            except torch.cuda.OutOfMemoryError:
                out.append(f'{label} batch {n}: out of memory')
                ok &= n > 8
            del G, D, stepper, real
    return ok, '; '.join(out)


def sync_free_step(c):
    if not c.cuda:
        raise Skip('CUDA only (torch.cuda.set_sync_debug_mode)')
    G, D = c.nets()
    G, D = G.to(c.dev).train(), D.to(c.dev).train()
    stepper = _stepper(c, G, D, 'fp16', c.args.batch, pipe_p=0.5)
    real = torch.rand(c.args.batch, 3, c.args.res, c.args.res, device=c.dev) * 2 - 1
    where = None
    with speed.cuda_flags('fp16', c.dev):
        stepper(real, 0)                                # warm-up: cuDNN autotuning, allocator
        c.sync()
        torch.cuda.set_sync_debug_mode('error')
        try:
            stepper(real, 1)
            stepper(real, 0)
        except RuntimeError as e:
            frames = [f for f in traceback.extract_tb(e.__traceback__) if 'stylegan2_lib' in f.filename]
            where = f'{frames[-1].filename.split("stylegan2_lib/")[-1]}:{frames[-1].lineno}' if frames else str(e)[:200]
        finally:
            torch.cuda.set_sync_debug_mode('default')
    return where is None, 'two steps (all four phases) without a host-device sync' if where is None else f'a sync at {where}'


def _dataset(c):
    folder = c.work / 'faces'
    if not folder.exists():
        from PIL import Image
        folder.mkdir()
        rng = np.random.RandomState(0)
        r = c.args.res
        yy, xx = np.mgrid[:r, :r]
        for i in range(32):
            img = np.full([r, r, 3], rng.randint(150, 255, 3), np.uint8)
            cx, cy, rad = r // 2 + rng.randint(-3, 4), r // 2 + rng.randint(-3, 4), r * rng.randint(9, 13) // 32
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < rad ** 2] = rng.randint(0, 200, 3)
            Image.fromarray(img).save(folder / f'{i:02d}.png')
    src = c.work / 'source.safetensors'
    if not src.exists():
        G, D = c.nets()
        sg.save(src, G=G, D=D, G_ema=G)
    return folder, src


def train_with(precision):
    def fn(c):
        from stylegan2_lib.train import TrainOptions, TrainingError, train
        from stylegan2_lib.train.state import read_metrics
        if precision == 'bf16':
            try:
                speed.check_precision('bf16', c.dev)
            except TrainingError as e:
                raise Skip(f'refused, as it should be here: {str(e)[:120]}')
        folder, src = _dataset(c)
        steps = 16 if c.args.quick else 48
        kimg = steps * c.args.batch / 1000
        opts = TrainOptions(data=str(folder), outdir=str(c.work / f'runs-{precision}'), resume=str(src), kimg=kimg, snap=kimg,
                            tick=kimg / 3, batch=c.args.batch, workers=2, sample_seeds=4, p=0.2, precision=precision,
                            device=c.args.device)
        run = train(opts)
        m = read_metrics(run)
        finite = all(math.isfinite(r[k]) for r in m for k in ('loss_G', 'loss_D'))
        bad = sum(r.get('nonfinite_grads', 0) for r in m)
        last = m[-1]
        mem = f", {last['gpu_mem_gb']:.2f} GiB peak" if last.get('gpu_mem_gb') is not None else ''
        TABLE.append((f'sg.train, batch {c.args.batch} (ADA, data loading)', precision,
                      f"{last['sec_per_kimg']:.1f} s/kimg (last tick){mem}"))
        NUMBERS[f'train_{precision}'] = dict(sec_per_kimg=last['sec_per_kimg'], gpu_mem_gb=last.get('gpu_mem_gb'), nonfinite_grad_steps=bad)
        return finite, (f"{len(m)} ticks, losses finite={finite}, last tick {last['sec_per_kimg']:.1f} s/kimg{mem}, "
                        f'steps with non-finite gradients (replaced) {bad}')
    return fn


def tf32_flags(c):
    b = torch.backends
    before = speed.tf32_flags(), b.cudnn.benchmark
    seen = []
    for tf32 in (False, True):
        with speed.cuda_flags('fp32', torch.device('cuda'), tf32=tf32):        # flags only: any machine
            seen.append((b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32))
    after = speed.tf32_flags(), b.cudnn.benchmark
    ok = seen == [(False, False), (True, True)] and after == before
    return ok, f'cudnn / matmul allow_tf32 during a run: off by default {seen[0]}, --tf32 {seen[1]}; restored exactly: {after == before}'


def bf16_gate(c):
    if not c.cuda:
        raise Skip('CUDA only')
    from stylegan2_lib.train.options import TrainingError
    try:
        speed.check_precision('bf16', c.dev)
        refused = False
    except TrainingError:
        refused = True
    major = torch.cuda.get_device_capability(c.dev)[0]
    return refused == (major < 8), f'sm_{major}x: --precision bf16 refused: {refused}'


def projection(c):
    project_mod, stylize_mod = (importlib.import_module(f'stylegan2_lib.{m}') for m in ('project', 'stylize'))  # not sg.project()
    G, D = c.nets()
    G, D = G.to(c.dev), D.to(c.dev)
    target = (np.random.RandomState(0).rand(c.args.res, c.args.res, 3) * 255).astype(np.uint8)
    stamps = []
    steps = 12 if c.args.quick else 40
    r = project_mod.project(G, target, steps=steps, loss='discriminator', D=D, progress=False,
                            callback=lambda *a: (c.sync(), stamps.append(time.perf_counter())))
    per = (stamps[-1] - stamps[4]) / (len(stamps) - 5)
    ok = r.ws.device.type == c.dev.type and all(math.isfinite(x) for x in r.loss)
    TABLE.append((f'projection at {c.args.res}', 'discriminator distance, W', f'{1 / per:.1f} steps/s (1000 steps: {per * 1000 / 60:.1f} min)'))
    NUMBERS['projection_steps_per_s'] = 1 / per
    # The photo path as notebook 04 and the CLI call it: networks loaded with sg.load's default device (the CPU),
    # then stylize() with no device given must project on the GPU when there is one.
    src = c.work / 'proj.safetensors'
    sg.save(src, G=G, D=D, G_ema=G)
    base = sg.load(src)
    seen = {}
    original = stylize_mod.project
    def spy(Gx, *a, **k):
        seen['device'] = next(Gx.parameters()).device
        return original(Gx, *a, **k)
    stylize_mod.project = spy
    try:
        stylize_mod.stylize(target, base.G_ema, styled=base.G_ema, resolution=16, steps=2, loss='pixel', align=False, progress=False)
    finally:
        stylize_mod.project = original
    wanted = default_device().type
    nb_ok = seen['device'].type == wanted
    return ok and nb_ok, (f'project() {1 / per:.1f} steps/s on {r.ws.device}; stylize() with sg.load\'s networks projects on '
                          f'{seen["device"]} (expected {wanted})')


def explorer(c):
    from stylegan2_lib.blend_views import BlendViews, ViewState
    G0, _ = c.nets(0)
    G1, _ = c.nets(1)
    views = BlendViews(G0.eval(), {'tuned': G1.eval()}, device=c.args.device)
    swaps = G0.synthesis.block_resolutions
    v = ViewState(snapshot=0, resolution=swaps[-3], seeds=(0, 1, 2, 3), truncation_psi=0.7)
    times = {}
    cols = None
    for label, state in (('first view', v), ('swap move (new)', dataclasses.replace(v, resolution=swaps[-2])),
                         ('swap move (seen)', v), ('seed added', dataclasses.replace(v, seeds=(0, 1, 2, 3, 4))),
                         ('smooth blend', dataclasses.replace(v, width=1.0))):
        t = time.perf_counter()
        cols = views.columns(state)
        times[label] = time.perf_counter() - t
    t = time.perf_counter()
    views.compare(v)
    times['compare (all swaps)'] = time.perf_counter() - t
    for k in ('swap move (new)', 'seed added', 'compare (all swaps)'):
        TABLE.append((f'explorer at {c.args.res}, 4 seeds', k, f'{times[k] * 1000:.0f} ms'))
    NUMBERS['explorer_ms'] = {k: s * 1000 for k, s in times.items()}
    ok = all(col.dtype == np.uint8 for col in cols.values()) and (not c.cuda or times['swap move (new)'] < 1.0)
    return ok, ', '.join(f'{k} {s * 1000:.0f} ms' for k, s in times.items()) + f' on {views.device}'

#----------------------------------------------------------------------------

# Cheap checks first: on an H200 the whole list took about 4 minutes, `phases` and `train_step` most of it.
CHECKS = [('env', env), ('kernels_build', kernels_build), ('kernels_correct', kernels_correct), ('kernels_reach', kernels_reach),
          ('forward', forward), ('tf32_flags', tf32_flags), ('bf16_gate', bf16_gate), ('sync_free_step', sync_free_step),
          ('generator_speed', generator_speed), ('projection', projection), ('explorer', explorer),
          ('train_fp16', train_with('fp16')), ('train_bf16', train_with('bf16')), ('train_fp32', train_with('fp32')),
          ('train_step', train_step), ('phases', phases)]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--res', type=int, default=256)
    ap.add_argument('--channel-base', type=int, default=16384)
    ap.add_argument('--channel-max', type=int, default=512)
    ap.add_argument('--z-dim', type=int, default=512)
    ap.add_argument('--mapping-layers', type=int, default=8)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--iters', type=int, default=10, help='timed repeats per measurement')
    ap.add_argument('--budget', type=float, default=280, help='seconds; checks not started by then are skipped')
    ap.add_argument('--quick', action='store_true', help='CPU run for CI: small networks and runs (sets the sizes below '
                                                         'unless given), fp16 blocks emulated in float16, the kernels\' CPU build')
    ap.add_argument('--emulate-half', choices=['float16', 'bfloat16'], default=None,
                    help='on the CPU: run the fp16 blocks in this dtype, as CUDA would (layers.emulate_half_blocks)')
    ap.add_argument('--kernel-emulation', action='store_true', help="on the CPU: check the kernels' CPU build")
    ap.add_argument('--skip-kernels', action='store_true')
    ap.add_argument('--workdir', default=None)
    ap.add_argument('--only', nargs='+', default=None, metavar='CHECK', help='run only these checks (names as printed)')
    ap.add_argument('--json', default=None, help='write every result and number here')
    args = ap.parse_args(argv)
    if args.quick:
        given = set(a.split('=')[0] for a in (argv if argv is not None else sys.argv[1:]))
        small = {'--res': ('res', 16), '--channel-base': ('channel_base', 128), '--channel-max': ('channel_max', 16),
                 '--z-dim': ('z_dim', 16), '--mapping-layers': ('mapping_layers', 2), '--batch': ('batch', 4),
                 '--iters': ('iters', 2), '--emulate-half': ('emulate_half', 'float16')}
        for flag, (name, value) in small.items():
            if flag not in given:
                setattr(args, name, value)
        args.kernel_emulation = args.kernel_emulation or not args.skip_kernels
    return args


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings('ignore', message='.*TypedStorage.*')
    if args.device == 'cuda' and not torch.cuda.is_available():
        print(f'FAIL env: --device cuda but no CUDA device here (torch {torch.__version__}, CUDA {torch.version.cuda}); '
              'run with --device cpu --quick for the CPU check')
        return 1
    c = Check(args)
    for name, fn in CHECKS:
        if args.only is None or name in args.only:
            c.run(name, lambda fn=fn: fn(c))
    print()
    print(f'| measured on {NUMBERS.get("gpu", args.device)} | setting | result |')
    print('| --- | --- | --- |')
    for what, setting, value in TABLE:
        print(f'| {what} | {setting} | {value} |')
    counts = collections.Counter(s for s, _, _ in RESULTS)
    print(f"\nSUMMARY: {counts.get('PASS', 0)} passed, {counts.get('FAIL', 0)} failed, {counts.get('SKIP', 0)} skipped "
          f'in {time.time() - c.t0:.0f} s', flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(results=RESULTS, numbers=NUMBERS, table=TABLE, args=vars(args)), indent=1,
                                              default=str))
    return 1 if counts.get('FAIL') else 0


if __name__ == '__main__':
    sys.exit(main())
