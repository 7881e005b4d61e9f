"""Project an image into a generator's latent space (NVlabs stylegan2-ada-pytorch `projector.py`, plus W+).

Optimise w (one [1, 1, w_dim] row broadcast to every layer, or with `w_plus=True` one row per layer, as
rosinality's / Pinkney's `--w_plus`) and the per-layer noise maps so that G.synthesis(w, noise) matches
the target under a perceptual distance:

- start at the W average, with Gaussian noise of std w_std * 0.05 added to w, decaying as (1 - t / 0.75)^2;
- Adam (betas 0.9, 0.999), lr 0.1 ramped up over the first 5% of steps (linear) and down over the last 25%
  (cosine);
- noise regularisation (Karras et al. 2020, Appendix B): the squared autocorrelation of every noise map at
  one-pixel shifts, at every scale of a pyramid down to 8x8, times `noise_reg` (1e5); after each step
  the noise maps are renormalised to zero mean and unit variance.
"""

import dataclasses
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import files
from .perceptual import DiscriminatorDistance, PixelDistance, load_vgg16


@dataclasses.dataclass
class Projection:
    ws:      torch.Tensor            # [1, num_ws, w_dim], the final latent (every row equal unless w_plus)
    noise:   list                    # per-layer noise maps [1, 1, r, r], in G.synthesis.noise_layers() order
    loss:    list                    # distance per step
    method:  str                     # which distance was used ('vgg', 'discriminator', 'pixel')

#----------------------------------------------------------------------------

def pick_distance(loss, D=None, vgg_path=None, lpips_path=None):
    """'vgg' | 'discriminator' | 'pixel' | 'auto' (vgg when its weights are present, else discriminator)."""
    if loss == 'auto':
        try:
            return load_vgg16(vgg_path, lpips_path), 'vgg'
        except FileNotFoundError:
            if D is None:
                return PixelDistance(scales=3), 'pixel'
            return DiscriminatorDistance(D), 'discriminator'
    if loss == 'vgg':
        return load_vgg16(vgg_path, lpips_path, download_missing=vgg_path is None), 'vgg'
    if loss == 'discriminator':
        if D is None:
            raise ValueError("loss='discriminator' needs the discriminator (D=...)")
        return DiscriminatorDistance(D), 'discriminator'
    if loss == 'pixel':
        return PixelDistance(scales=3), 'pixel'
    raise ValueError(f"loss must be 'auto', 'vgg', 'discriminator' or 'pixel', got {loss!r}")

#----------------------------------------------------------------------------
# What a target image may be, and how its values are read (one rule, stated in project()'s docstring):
# integers (uint8 and other integer dtypes) are pixels in [0, 255]; floats are in [-1, 1], the range of the
# generator's images, and a float image outside it is refused, not guessed to be [0, 255]. (The generator's
# raw output overshoots [-1, 1]; x.clamp(-1, 1) is the image it shows, as images.to_uint8 clamps.) A [0, 1]
# float image cannot be told from a [-1, 1] one: give it as x * 2 - 1. Arrays and PIL images are [H, W, 3]
# and resized to the generator's size; tensors are [3, H, W] or [1, 3, H, W] at the generator's size.

FLOAT_SLACK = 0.01                  # rounding: a float image may reach 1.01 in magnitude

def _checked_range(x, kind):
    """`x` (array or tensor) with its range checked: [0, 255] for integers, [-1, 1] for floats."""
    floating = x.dtype.is_floating_point if isinstance(x, torch.Tensor) else np.issubdtype(x.dtype, np.floating)
    empty = (x.numel() if isinstance(x, torch.Tensor) else x.size) == 0
    lo, hi = (0.0, 0.0) if empty else (float(x.min()), float(x.max()))
    if floating and not (-1 - FLOAT_SLACK <= lo and hi <= 1 + FLOAT_SLACK):      # NaN fails too
        raise ValueError(f'a float {kind} is read as [-1, 1], the range of the generator\'s images; this one spans '
                         f'[{lo:.4g}, {hi:.4g}]: give [0, 255] pixels as uint8, [0, 1] ones as x * 2 - 1, and the '
                         f'generator\'s raw output as x.clamp(-1, 1)')
    if not floating and not (0 <= lo and hi <= 255):
        raise ValueError(f'an integer {kind} is read as [0, 255] pixels; this one spans [{lo:.0f}, {hi:.0f}]')
    return x, floating

def target_tensor(target, resolution, device):
    """A PIL image, an [H, W, 3] array or a [3, H, W] / [1, 3, H, W] tensor -> [1, 3, R, R] in [-1, 1]
    (integers read as [0, 255], floats as [-1, 1]; see above)."""
    if isinstance(target, torch.Tensor):
        t, floating = _checked_range(target.detach().cpu(), 'tensor')
        t = t.squeeze(0) if t.ndim == 4 and t.shape[0] == 1 else t
        t = t.to(torch.float32) if floating else t.to(torch.float32) / 127.5 - 1
    else:
        from PIL import Image
        if not isinstance(target, Image.Image):
            a, floating = _checked_range(np.asarray(target), 'array')
            target = Image.fromarray(np.floor(a * 127.5 + 128).clip(0, 255).astype(np.uint8) if floating else a.astype(np.uint8))
        img = target.convert('RGB')
        if img.size != (resolution, resolution):
            img = img.resize((resolution, resolution), Image.LANCZOS)
        t = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1) / 127.5 - 1
    if t.shape != (3, resolution, resolution):
        raise ValueError(f'target must be a {resolution}x{resolution} RGB image ([3, H, W] or [1, 3, H, W] as a tensor), '
                         f'got {list(getattr(target, "shape", t.shape))}')
    return t.unsqueeze(0).to(device)

def w_statistics(G, n=10000, seed=123):
    """Mean [1, 1, w_dim] and scalar std of w over n latents (NVlabs: RandomState(123))."""
    z = torch.from_numpy(np.random.RandomState(seed).randn(n, G.z_dim)).to(torch.float32)
    dev = next(G.parameters()).device
    with torch.no_grad():
        w = torch.cat([G.mapping(z[i: i + 1000].to(dev), None)[:, :1] for i in range(0, n, 1000)])
    mean = w.mean(dim=0, keepdim=True)
    return mean, float(((w - mean).square().sum() / n).sqrt())

def noise_regularisation(noise):
    """Sum over maps and pyramid levels of squared one-pixel autocorrelations (noise maps [1, 1, r, r])."""
    reg = 0
    for v in noise:
        while True:
            reg = reg + (v * torch.roll(v, shifts=1, dims=3)).mean() ** 2 + (v * torch.roll(v, shifts=1, dims=2)).mean() ** 2
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, kernel_size=2)
    return reg

def learning_rate(t, initial=0.1, rampdown=0.25, rampup=0.05):
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * np.cos(ramp * np.pi)
    return initial * ramp * min(1.0, t / rampup)

#----------------------------------------------------------------------------

def project(G, target, steps=1000, w_plus=False, loss='auto', D=None, noise_reg=1e5, initial_lr=0.1,
            initial_noise_factor=0.05, noise_ramp=0.75, seed=0, vgg_path=None, lpips_path=None,
            callback: Optional[Callable] = None, progress=True):
    """Fit (ws, noise) so that G.synthesis(ws, noise=noise) looks like `target`; returns a Projection.
    `target`: a PIL image, a uint8 [H, W, 3] array or [3, H, W] tensor of [0, 255] pixels, or a float one in
    [-1, 1], the generator's range (`project(G, G(z, None).clamp(-1, 1))` projects G's own image); a float
    image outside [-1, 1] is refused, not guessed at. callback(step, ws, noise, distance) is called every step
    (e.g. for live previews)."""
    device = next(G.parameters()).device
    G = G.eval().requires_grad_(False)
    distance, method = pick_distance(loss, D, vgg_path, lpips_path)
    distance = distance.to(device)
    with torch.no_grad():
        target_feats = [f.detach() for f in distance.features(target_tensor(target, G.img_resolution, device))]
    w_avg, w_std = w_statistics(G)
    gen = torch.Generator().manual_seed(seed)
    w_opt = (w_avg.repeat([1, G.num_ws, 1]) if w_plus else w_avg).clone().to(device).requires_grad_(True)
    noise = [torch.randn([1, 1, l.resolution, l.resolution], generator=gen).to(device).requires_grad_(True)
             for l in G.synthesis.noise_layers()]
    opt = torch.optim.Adam([w_opt] + noise, betas=(0.9, 0.999), lr=initial_lr)
    history = []
    bar = tqdm(range(steps), desc=f'project ({method}, {device.type})', disable=not progress)
    for step in bar:
        t = step / steps
        for group in opt.param_groups:
            group['lr'] = learning_rate(t, initial_lr)
        w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp) ** 2
        ws = w_opt + torch.randn(w_opt.shape, generator=gen).to(device) * w_noise_scale
        ws = ws.expand([1, G.num_ws, -1]) if not w_plus else ws
        img = G.synthesis(ws, noise=noise, force_fp32=True)
        dist = distance(img, target_feats).sum()
        total = dist + noise_reg * noise_regularisation(noise)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            for v in noise:                                            # keep every map N(0, 1)
                v -= v.mean()
                v *= v.square().mean().rsqrt()
        history.append(float(dist.detach()))
        bar.set_postfix(dist=f'{history[-1]:.4g}')
        if callback is not None:
            callback(step, w_opt.detach(), noise, history[-1])
    ws = w_opt.detach().expand([1, G.num_ws, -1]).clone() if not w_plus else w_opt.detach().clone()
    return Projection(ws=ws, noise=[v.detach().clone() for v in noise], loss=history, method=method)

def save_projected_w(path, ws):
    """NVlabs projector.py's output: an npz with key 'w' of shape [1, num_ws, w_dim] (their generate.py reads it)."""
    import io
    buf = io.BytesIO()
    np.savez(buf, w=ws.detach().cpu().numpy().astype(np.float32))
    files.atomic_write_bytes(path, buf.getvalue())
