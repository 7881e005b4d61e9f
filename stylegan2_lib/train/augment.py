"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"; NVlabs stylegan2-ada-pytorch `training/augment.py`).

    pipe = AugmentPipe.preset('bgc', p=0.0).to(device)     # D sees pipe(reals) and pipe(fakes)
    ada = AdaController(pipe, target=0.6, interval=4, kimg=500, batch=32)
    ada.accumulate(real_logits)                             # every D step (no host-device sync)
    ada.update()                                            # every `interval` steps: p += sign(r_t - target) * step

Each transform is applied to each sample independently with probability p * multiplier (the paper's
stochastic non-leaking augmentation, Section 2.2 and Appendix B). The 'bgc' group, in NVlabs's order:

    pixel blitting   xflip, rotate90, xint             integer 3x3 matrix, applied as an exact pixel permutation
    geometric        scale, rotate, aniso, xfrac       composed with the blit into one 3x3 matrix per sample,
                                                       applied in ONE resampling pass
    colour           brightness, contrast, lumaflip,   one 4x4 matrix per sample, one multiply-add
                     hue, saturation

Matrices map output pixels to input pixels (G_inv in NVlabs), in pixel units centred on the image centre,
x to the right and y down. Every random draw is made on the host with torch's CPU generator (the global
one unless a `generator` is given), so forward never waits on the GPU, which rows need which pass is known
without a sync, and a run's RNG state covers the augmentation too. For the same reason `p` stays a CPU
scalar buffer whatever device the pipe is moved to. Samples that draw nothing are returned bitwise
unchanged, and at p = 0 the input tensor itself is returned.
"""

import dataclasses
import math

import numpy as np
import torch

from .. import ops

#----------------------------------------------------------------------------
# Symlet-6 wavelet low-pass filter (orthogonal: downsample(upsample(x)) = x), NVlabs `wavelets['sym6']`.

SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

#----------------------------------------------------------------------------
# Preset groups (NVlabs `augpipe_specs`): b = blit, g = general geometric, c = colour.

BLIT = ('xflip', 'rotate90', 'xint')
GEOM = ('scale', 'rotate', 'aniso', 'xfrac')
COLOUR = ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')
PRESETS = {
    'b': BLIT, 'g': GEOM, 'c': COLOUR,
    'bg': BLIT + GEOM, 'bgc': BLIT + GEOM + COLOUR,
}

#----------------------------------------------------------------------------
# Batched homogeneous matrices from per-sample tensors (float64, host): rows of scalars or [N] tensors.

def _matrix(*rows):
    n = next(x.shape[0] for row in rows for x in row if isinstance(x, torch.Tensor))
    cols = [x if isinstance(x, torch.Tensor) else torch.full([n], float(x), dtype=torch.float64)
            for row in rows for x in row]
    return torch.stack(cols, dim=-1).reshape(n, len(rows), len(rows[0]))      # [N, R, C]

def translate2d(tx, ty):
    return _matrix([1, 0, tx], [0, 1, ty], [0, 0, 1])

def scale2d(sx, sy):
    return _matrix([sx, 0, 0], [0, sy, 0], [0, 0, 1])

def rotate2d(cos, sin):
    return _matrix([cos, -sin, 0], [sin, cos, 0], [0, 0, 1])

def translate3d(t):
    return _matrix([1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1])

def scale3d(s):
    return _matrix([s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1])

#----------------------------------------------------------------------------
# Colour matrices around the luma axis v = [1, 1, 1] / sqrt(3) (NVlabs's axis), [N] -> [N, 4, 4].

LUMA = torch.tensor([1, 1, 1, 0], dtype=torch.float64) / math.sqrt(3)

def _luma_projector():
    return torch.outer(LUMA, LUMA)                                              # [4, 4]

# Householder reflection I - 2 v v^T where flip = 1: negates the luma component, keeps chroma.
def luma_flip3d(flip):
    return torch.eye(4, dtype=torch.float64) - 2 * _luma_projector() * flip.reshape(-1, 1, 1)

# Rotation by theta around v (Rodrigues): turns the chroma, keeps luma.
def hue_rotate3d(theta):
    vx = vy = vz = 1 / math.sqrt(3)
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix([vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                   [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                   [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                   [0, 0, 0, 1])

# v v^T + (I - v v^T) s: scales the chroma by s (0 gives grey), keeps luma.
def saturation3d(s):
    P = _luma_projector()
    return P + (torch.eye(4, dtype=torch.float64) - P) * s.reshape(-1, 1, 1)

#----------------------------------------------------------------------------
# The random draws of one call (host tensors): pass them back to forward to replay a call exactly.

@dataclasses.dataclass
class Draws:
    blit: torch.Tensor          # [N, 3, 3] integer-valued: x-flip @ rotate90 @ integer translation
    geom: torch.Tensor          # [N, 3, 3] scale @ rotate @ aniso @ rotate @ fractional translation
    colour: torch.Tensor        # [N, 4, 4] saturation @ hue @ lumaflip @ contrast @ brightness
    applied: dict               # transform name -> bool [N]: which samples drew it

    # Row indices for each pass: exact blit only, resampling (any general geometric draw), colour.
    def rows(self):
        geom = torch.zeros(self.blit.shape[0], dtype=torch.bool)
        for name in GEOM:
            geom |= self.applied.get(name, geom)
        eye3, eye4 = torch.eye(3, dtype=torch.float64), torch.eye(4, dtype=torch.float64)
        blit = (self.blit != eye3).flatten(1).any(1) & ~geom
        colour = (self.colour != eye4).flatten(1).any(1)
        return [torch.nonzero(m).flatten() for m in (blit, geom, colour)]

#----------------------------------------------------------------------------
# Host tensor -> device without a sync: cast on the host, then pinned memory and a non-blocking copy on
# CUDA (a cast during the copy would stage through pageable memory).

def _to_device(t, device, dtype=None):
    t = t.to(dtype) if dtype is not None else t
    if device.type == 'cuda':
        t = t.pin_memory()
    return t.to(device=device, non_blocking=True)

#----------------------------------------------------------------------------
# Run fn on images[rows] only (out of place, differentiable); the other rows stay bitwise unchanged.

def _apply_rows(images, rows, fn):                                              # [NCHW]
    if rows.numel() == 0:
        return images
    if rows.numel() == images.shape[0]:
        return fn(images, rows)
    idx = _to_device(rows, images.device)
    return images.index_copy(0, idx, fn(images.index_select(0, idx), rows))

#----------------------------------------------------------------------------
# Mirror padding as F.pad(mode='reflect') does it (about the first and last pixel centres, no edge
# repeat), for integer indices and for continuous coordinates, any distance out.

def _reflect(i, n):
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i > n - 1, period - i, i)

#----------------------------------------------------------------------------
# Apply [n, 3, 3] matrices to centred pixel coordinates vx [W], vy [H] -> (ux, uy) [n, H, W]. Elementwise
# on purpose: a matmul could run in TF32 on CUDA and move coordinates by a fraction of a pixel.

def _affine(M, vx, vy):
    m = M[:, :2, :, None, None]                                                 # [n, 2, 3, 1, 1]
    ux = m[:, 0, 0] * vx + m[:, 0, 1] * vy[:, None] + m[:, 0, 2]
    uy = m[:, 1, 0] * vx + m[:, 1, 1] * vy[:, None] + m[:, 1, 2]
    return ux, uy

#----------------------------------------------------------------------------
# Exact pass: an integer-valued matrix is a pixel permutation; gather the pixels (reflect at borders).
# Centred coordinates are integers or half-integers, so the arithmetic is exact. rotate90 assumes a square
# image (on a non-square one it still runs, reflecting what falls outside).

def blit(images, M):                                                            # [nCHW], [n, 3, 3] -> [nCHW]
    n, C, H, W = images.shape
    dev = images.device
    vx = torch.arange(W, dtype=torch.float32, device=dev) - (W - 1) / 2
    vy = torch.arange(H, dtype=torch.float32, device=dev) - (H - 1) / 2
    ux, uy = _affine(M.to(torch.float32), vx, vy)                               # [n, H, W]
    ix = _reflect(torch.round(ux + (W - 1) / 2).long(), W)
    iy = _reflect(torch.round(uy + (H - 1) / 2).long(), H)
    idx = (iy * W + ix).reshape(n, 1, H * W).expand(n, C, H * W)
    return images.reshape(n, C, H * W).gather(2, idx).reshape(n, C, H, W)

#----------------------------------------------------------------------------
# Resampling pass, NVlabs's scheme (ADA paper, Appendix B): reflect-pad, upsample 2x with the sym6 wavelet,
# bilinear grid_sample at 2x, downsample 2x with the same filter. Chosen over a plain bilinear grid_sample
# at 1x, which blurs, and aliases when a transform shrinks the image: D would see reals and fakes through
# that blur whenever p > 0. The 2x supersampling with an orthogonal wavelet keeps them sharp. Cost: 4x the
# pixels for grid_sample plus two separable 12-tap FIR passes, paid only by the rows that drew a general
# geometric transform (on a 2-core CPU, under 10% of the tiny 32x32 test D's forward and backward).
# Instead of NVlabs's data-dependent padding (a host-device sync), the pad is fixed and sources further out
# are mirrored into the image (as F.pad(mode='reflect') of any width would), so an identity matrix
# reproduces the input up to float rounding.

def resample(images, M, f, e):                                                  # [nCHW], [n, 3, 3] -> [nCHW]
    n, C, H, W = images.shape
    dtype = torch.promote_types(images.dtype, torch.float32)
    P = f.shape[0] // 4                                                         # 3 for the 12-tap sym6
    x = reflect_pad(images.to(dtype), 2 * P)                                   # [n, C, H+4P, W+4P]
    x = ops.upsample2d(x, f, up=2)                                              # [n, C, 2(H+4P), 2(W+4P)]
    grid = _sample_grid(M.to(dtype), H, W, P, e)                                # [n, 2(H+2P), 2(W+2P), 2]
    x = grid_sample(x, grid)
    x = ops.downsample2d(x, f, down=2, padding=-2 * P, flip_filter=True)       # [nCHW]
    return x.to(images.dtype)

# Bilinear grid_sample (border padding, align_corners=False), differentiable to any order in the image. The
# sampling is linear in the image, y = A x, so its gradient is dx = A^T dy (PyTorch's grid_sampler_2d_backward)
# and the gradient of that with respect to dy is A again: one more forward. R1 differentiates D(aug(x)) twice
# through this, and PyTorch's CUDA builds (2.11 measured on an H200) have no derivative for
# grid_sampler_2d_backward; NVlabs's grid_sample_gradfix works around it the same way. The grid takes no
# gradient (it is built from the drawn matrices).

_BILINEAR, _BORDER = 0, 1          # aten's interpolation_mode and padding_mode ids

class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grid):
        ctx.save_for_backward(x, grid)
        return torch.grid_sampler_2d(x, grid, _BILINEAR, _BORDER, False)

    @staticmethod
    def backward(ctx, dy):
        x, grid = ctx.saved_tensors
        return _GridSampleAdjoint.apply(dy, x, grid), None

class _GridSampleAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, x, grid):                                             # x: shape and dtype only
        ctx.save_for_backward(grid)
        dx, _ = torch.ops.aten.grid_sampler_2d_backward(dy, x, grid, _BILINEAR, _BORDER, False, [True, False])
        return dx

    @staticmethod
    def backward(ctx, ddx):
        grid, = ctx.saved_tensors
        return _GridSample.apply(ddx, grid), None, None

def grid_sample(x, grid):                                                       # [NCHW], [N, H', W', 2] -> [N, C, H', W']
    if grid.requires_grad:
        raise ValueError('augment.grid_sample differentiates with respect to the image only')
    return _GridSample.apply(x, grid)

# F.pad(mode='reflect') of any width (also wider than the image), by indexing.
def reflect_pad(x, pad):                                                        # [NCHW] -> [N, C, H+2pad, W+2pad]
    H, W = x.shape[2:]
    iy = _reflect(torch.arange(-pad, H + pad, device=x.device), H)
    ix = _reflect(torch.arange(-pad, W + pad, device=x.device), W)
    return x.index_select(2, iy).index_select(3, ix)

# The sym6 filter is not symmetric: its centroid sits e = -0.40 2x-pixels off the centre that upsample2d's
# padding assumes, which shifts the 2x grid against the image. NVlabs conjugates its matrix with a fixed
# half-pixel shift at 2x; we use the measured centroid (quarter turns then match the exact pass best).
def centre_offset(taps):
    taps = np.asarray(taps, dtype=np.float64)
    return float((np.arange(taps.size) * taps).sum() / taps.sum()) - (taps.size - 1) / 2

# grid_sample grid for the 2x output [n, 2(H+2P), 2(W+2P), 2]: each output pixel's source in the 2x input.
# A 2x pixel j covers image coordinate (j - 0.5 - e) / 2 - margin, for the upsampled input (margin 2P) and
# for the 2x output (margin P, which downsample2d's padding -2P crops). Sources within P pixels of the image
# read the padded input directly (so the identity matrix gives back the input); further out, mirrored.
def _sample_grid(M, H, W, P, e):
    dev, dt = M.device, M.dtype
    vx = (torch.arange(2 * (W + 2 * P), dtype=dt, device=dev) - 0.5 - e) / 2 - P - (W - 1) / 2
    vy = (torch.arange(2 * (H + 2 * P), dtype=dt, device=dev) - 0.5 - e) / 2 - P - (H - 1) / 2
    ux, uy = _affine(M, vx, vy)                                                 # centred source coordinates
    grid = []
    for u, size in ((ux + (W - 1) / 2, W), (uy + (H - 1) / 2, H)):
        u = torch.where((u < -P) | (u > size - 1 + P), _reflect(u, size), u)
        j = 2 * (u + 2 * P) + 0.5 + e                                           # 2x input pixel index
        grid.append((2 * j + 1) / (2 * (size + 4 * P)) - 1)                     # align_corners=False units
    return torch.stack(grid, dim=-1)

#----------------------------------------------------------------------------
# Colour pass: out = M[:3, :3] @ rgb + M[:3, 3] per pixel, as elementwise multiply-adds (no TF32 matmul).
# One channel (NVlabs): the mean of the three output rows.

def recolour(images, M):                                                        # [nCHW], [n, 4, 4] -> [nCHW]
    M = M[:, :, :, None, None]                                                  # [n, 4, 4, 1, 1]
    if images.shape[1] == 3:
        return sum(M[:, :3, k] * images[:, k:k + 1] for k in range(3)) + M[:, :3, 3]
    if images.shape[1] == 1:
        m = M[:, :3].mean(dim=1)                                                # [n, 4, 1, 1]
        return images * m[:, :3].sum(dim=1, keepdim=True) + m[:, 3:]
    raise ValueError(f'colour augmentation needs 1 or 3 channels, got {images.shape[1]}')

#----------------------------------------------------------------------------
# The augmentation pipeline (NVlabs `AugmentPipe`, the 'bgc' transforms).

class AugmentPipe(torch.nn.Module):
    def __init__(self, p=0.0,
        xflip=0, rotate90=0, xint=0, xint_max=0.125,
        scale=0, rotate=0, aniso=0, xfrac=0, scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125,
        brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0,
        brightness_std=0.2, contrast_std=0.5, hue_max=1, saturation_std=1,
    ):
        super().__init__()
        self.register_buffer('p', torch.tensor(float(p)))                      # overall probability (CPU)
        self.xflip, self.rotate90, self.xint = float(xflip), float(rotate90), float(xint)
        self.xint_max = float(xint_max)                                         # of the image size
        self.scale, self.rotate, self.aniso, self.xfrac = float(scale), float(rotate), float(aniso), float(xfrac)
        self.scale_std = float(scale_std)                                       # log2 std of isotropic scale
        self.rotate_max = float(rotate_max)                                     # x pi: 1 = full circle
        self.aniso_std = float(aniso_std)                                       # log2 std of anisotropic scale
        self.xfrac_std = float(xfrac_std)                                       # of the image size
        self.brightness, self.contrast, self.lumaflip = float(brightness), float(contrast), float(lumaflip)
        self.hue, self.saturation = float(hue), float(saturation)
        self.brightness_std = float(brightness_std)                             # additive std
        self.contrast_std = float(contrast_std)                                 # log2 std
        self.hue_max = float(hue_max)                                           # x pi: 1 = full circle
        self.saturation_std = float(saturation_std)                             # log2 std
        self.register_buffer('Hz_geom', ops.setup_filter(SYM6), persistent=False)
        self.geom_offset = centre_offset(SYM6)                                  # e of resample(), in 2x pixels

    # Preset group ('bgc', 'bg', 'b', 'g', 'c') with every multiplier 1; kwargs override (p, stds, ...).
    @classmethod
    def preset(cls, name, **kwargs):
        if name not in PRESETS:
            raise ValueError(f'unknown augment preset {name!r}; choose from {sorted(PRESETS)}')
        return cls(**{**{t: 1 for t in PRESETS[name]}, **kwargs})

    # Keep p a float32 CPU scalar through .to()/.cuda()/.half(): forward reads it on the host, no sync.
    def _apply(self, fn, *args, **kwargs):
        p = self.p
        super()._apply(fn, *args, **kwargs)
        self._buffers['p'] = p
        return self

    def extra_repr(self):
        on = [t for t in BLIT + GEOM + COLOUR if getattr(self, t) > 0]
        return f'p={float(self.p):.4f}, transforms={on}'

    #------------------------------------------------------------------------
    # Augment images [N, C, H, W] (about [-1, 1]); `draws` replays a call, `generator` seeds the draws.

    def forward(self, images, generator=None, draws=None):
        assert images.ndim == 4, images.shape
        N, C, H, W = images.shape
        d = self.draw(N, H, W, generator) if draws is None else draws
        blit_rows, geom_rows, colour_rows = d.rows()
        dev = images.device
        images = _apply_rows(images, blit_rows, lambda x, r: blit(x, _to_device(d.blit[r], dev)))
        images = _apply_rows(images, geom_rows, lambda x, r: resample(
            x, _to_device(d.blit[r] @ d.geom[r], dev), self.Hz_geom, self.geom_offset))
        images = _apply_rows(images, colour_rows, lambda x, r: recolour(x, _to_device(d.colour[r], dev, x.dtype)))
        return images

    #------------------------------------------------------------------------
    # All random draws of one call, on the host (NVlabs's distributions and composition order).

    def draw(self, batch_size, height, width, generator=None):
        n, g = batch_size, generator
        rand = lambda *s: torch.rand([n, *s], generator=g, dtype=torch.float64)
        randn = lambda *s: torch.randn([n, *s], generator=g, dtype=torch.float64)
        p = float(self.p)
        applied = {}

        # Which samples apply a transform with multiplier `mult` (probability p * mult, or `prob`).
        def gate(name, mult, prob=None):
            prob = p * mult if prob is None else prob
            applied[name] = (rand() < prob) if mult > 0 and prob > 0 else torch.zeros(n, dtype=torch.bool)
            return applied[name]

        d = Draws(self._draw_blit(n, height, width, rand, gate),
                  self._draw_geom(n, height, width, p, rand, randn, gate),
                  self._draw_colour(n, rand, randn, gate), applied)
        applied['rotate'] = applied['rotate0'] | applied['rotate1']             # pre- or post-rotation
        return d

    # x-flip (half of the drawn samples flip), rotation by k * 90 degrees (k uniform in 0..3), integer
    # translation uniform in +-xint_max of the size, rounded to pixels.
    def _draw_blit(self, n, H, W, rand, gate):
        M = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
        flip = torch.floor(rand() * 2) * gate('xflip', self.xflip)
        M = M @ scale2d(1 - 2 * flip, torch.ones(n, dtype=torch.float64))
        k = (torch.floor(rand() * 4) * gate('rotate90', self.rotate90)).long()
        cos, sin = torch.tensor([1., 0., -1., 0.]).double(), torch.tensor([0., 1., 0., -1.]).double()
        M = M @ rotate2d(cos[k], sin[k])                                        # exact quarter turns
        t = (rand(2) * 2 - 1) * self.xint_max * gate('xint', self.xint)[:, None]
        return M @ translate2d(-torch.round(t[:, 0] * W), -torch.round(t[:, 1] * H))

    # Isotropic scale 2^N(0, scale_std), rotation uniform in +-rotate_max*pi before and after an anisotropic
    # scale 2^N(0, aniso_std), fractional translation N(0, xfrac_std) of the size. Each rotation has
    # probability 1 - sqrt(1 - p * rotate), so that P(any rotation) = p * rotate (NVlabs).
    def _draw_geom(self, n, H, W, p, rand, randn, gate):
        M = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
        s = torch.where(gate('scale', self.scale), torch.exp2(randn() * self.scale_std), 1.0)
        M = M @ scale2d(1 / s, 1 / s)
        p_rot = 1 - math.sqrt(min(max(1 - self.rotate * p, 0.0), 1.0))
        rot = [torch.where(gate(f'rotate{i}', self.rotate, p_rot), (rand() * 2 - 1) * math.pi * self.rotate_max, 0.0)
               for i in (0, 1)]
        M = M @ rotate2d(torch.cos(rot[0]), torch.sin(rot[0]))
        s = torch.where(gate('aniso', self.aniso), torch.exp2(randn() * self.aniso_std), 1.0)
        M = M @ scale2d(1 / s, s)
        M = M @ rotate2d(torch.cos(rot[1]), torch.sin(rot[1]))
        t = randn(2) * self.xfrac_std * gate('xfrac', self.xfrac)[:, None]
        return M @ translate2d(-t[:, 0] * W, -t[:, 1] * H)

    # Brightness b ~ N(0, brightness_std) added, contrast 2^N(0, contrast_std) around 0, luma flip (half of
    # the drawn samples flip), hue rotation uniform in +-hue_max*pi, saturation 2^N(0, saturation_std).
    def _draw_colour(self, n, rand, randn, gate):
        b = randn() * self.brightness_std * gate('brightness', self.brightness)
        M = translate3d(b)
        c = torch.where(gate('contrast', self.contrast), torch.exp2(randn() * self.contrast_std), 1.0)
        M = scale3d(c) @ M
        M = luma_flip3d(torch.floor(rand() * 2) * gate('lumaflip', self.lumaflip)) @ M
        theta = (rand() * 2 - 1) * math.pi * self.hue_max * gate('hue', self.hue)
        M = hue_rotate3d(theta) @ M
        s = torch.where(gate('saturation', self.saturation), torch.exp2(randn() * self.saturation_std), 1.0)
        return saturation3d(s) @ M

#----------------------------------------------------------------------------
# ADA's p schedule (paper Section 3, NVlabs `training_loop.py`): r_t = E[sign(D(reals))] over the last
# `interval` steps; p += sign(r_t - target) * batch * interval / (kimg * 1000), clamped to [0, 1], so p can
# cross [0, 1] in `kimg` thousand images. fixed=True measures r_t (for the log) but leaves p alone.

class AdaController:
    def __init__(self, pipe, target=0.6, interval=4, kimg=500, batch=None, fixed=False, sync_ranks=True):
        self.pipe, self.target, self.interval, self.kimg = pipe, float(target), int(interval), float(kimg)
        self.batch = batch                      # images per step over all ranks; None = count the logits
        self.fixed, self.sync_ranks = bool(fixed), sync_ranks
        self.sum = None                         # device tensor: sum of sign(D(real)) since the last update
        self.count = 0                          # number of logits in it (host)
        self.steps = 0                          # accumulate() calls since the last update
        self.last_rt = None                     # r_t of the last update (float), for the log

    @property
    def p(self):
        return float(self.pipe.p)

    # Add sign(D(real)) of one step; stays on the device (no sync).
    def accumulate(self, real_logits):
        s = real_logits.detach().sign().sum(dtype=torch.float32)
        self.sum = s if self.sum is None else self.sum + s
        self.count += real_logits.numel()
        self.steps += 1

    # Once `interval` steps are accumulated (call it every step or every `interval` steps), adjust p: one
    # sync, sums all-reduced over DDP ranks. Returns r_t, or None when no update was due.
    def update(self):
        if self.steps < self.interval or self.count == 0:
            return None
        stats = torch.stack([self.sum, torch.full_like(self.sum, self.count)])
        if self.sync_ranks and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        total, count = stats.tolist()
        self.last_rt = total / count
        if not self.fixed:
            images = self.batch * self.steps if self.batch is not None else count
            step = float(np.sign(self.last_rt - self.target)) * images / (self.kimg * 1000)
            self.pipe.p.fill_(min(max(self.p + step, 0.0), 1.0))
        self.sum, self.count, self.steps = None, 0, 0
        return self.last_rt

    # Everything a resumed run needs (JSON-friendly): p, the partial sums of the current interval, r_t.
    def state_dict(self):
        return {'p': self.p, 'sum': 0.0 if self.sum is None else float(self.sum), 'count': self.count,
                'steps': self.steps, 'last_rt': self.last_rt}

    # Fixed mode keeps its configured p; the partial sums come back on the CPU (they join the device on
    # the next accumulate).
    def load_state_dict(self, state):
        if not self.fixed:
            self.pipe.p.fill_(float(state['p']))
        self.count, self.steps, self.last_rt = int(state['count']), int(state['steps']), state['last_rt']
        self.sum = torch.tensor(float(state['sum'])) if self.steps > 0 else None
