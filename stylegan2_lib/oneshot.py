"""One-shot and few-shot stylisation (Chong & Forsyth 2022, "JoJoGAN: One Shot Face Stylization", Sec. 3):
a stylizer from 1-10 style images in a few hundred steps, as a Generator like any fine-tuned snapshot.

    G_styled = sg.oneshot(base.G_ema, base.D, [Image.open('style.png')])      # 300 steps
    r = train_oneshot(base.G_ema, base.D, refs, preserve_color=True)       # the same, with what went in:
    r.G, r.references, r.ws, r.loss, r.meta                                # sg.save(path, G_ema=r.G, meta=r.meta)

The recipe:
1. every reference is aligned like FFHQ (a real face) or centre-cropped as the dataset tool does (a drawn face
   the detector misses), and inverted into W+ with the library's projector (project.project, w_plus=True);
2. training pairs: the reference's W+ with the rows of the fine layers mixed toward the w of a fresh z,
       w[i] = (1 - alpha) * w_ref[i] + alpha * w_random[i]     for the swapped rows i,
   the target always the reference image. `alpha` is the style strength as JoJoGAN's notebook and Replicate
   model expose it (default 1: the swapped rows come wholly from the fresh w); their code computes
   alpha' * w_ref + (1 - alpha') * w_random after `alpha' = 1 - alpha`, which is this formula;
3. loss: the mean over several discriminator blocks of the mean absolute difference between the frozen D's
   block outputs for the generated and the reference images; Adam (lr 2e-3, betas (0, 0.99)) on every
   synthesis parameter, the mapping network (and its w_avg) frozen; per-layer noise drawn afresh every step
   (JoJoGAN's randomised noise), from the seeded generator.

Which rows are swapped, and which D blocks give features, are mapped by resolution from JoJoGAN's choices at
1024 (swapped_rows, feature_blocks), so any generator size gets the same recipe.
"""

import copy
import dataclasses
import hashlib
import os
import time
import warnings
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from . import anime_detect, images
from .align import AlignmentUnavailable, NoFaceFound, align_drawn_face_with_transform, align_face, read_photo
from .blend import blend_preview
from .data import load_image
from .devices import default_device, on_device
from .discriminator import Discriminator, DiscriminatorConfig
from .metrics.features import discriminator_block_outputs
from .project import project

#----------------------------------------------------------------------------
# Which rows of ws drive which layers. Block b{r} reads rows [w_idx, w_idx + num_conv] (generator.py), so a
# row drives one convolution and, for the odd rows, the torgb of the block below as well; a row's resolution
# is that of the highest layer it drives. At 1024 (18 rows):
#
#   row   0       1                2        3                 4        5                 6
#   layers b4.conv1 b4.torgb+b8.conv0 b8.conv1 b8.torgb+b16.conv0 b16.conv1 b16.torgb+b32.conv0 b32.conv1
#   res    4       8                8        16                16       32                32
#   row   7                  8         9                   10         11                  12
#   layers b32.torgb+b64.conv0 b64.conv1 b64.torgb+b128.conv0 b128.conv1 b128.torgb+b256.conv0 b256.conv1
#   res    64                 64        128                 128        256                 256
#   row   13                   14         15                    16          17
#   layers b256.torgb+b512.conv0 b512.conv1 b512.torgb+b1024.conv0 b1024.conv1 b1024.torgb
#   res    512                  512        1024                  1024        1024
#
# JoJoGAN swaps rows 7..17: every row from 64x64 up. With preserve_color it swaps [9, 11, 15, 16, 17]: the
# conv0 rows of the two blocks above the first fine block (128, 256) and every row of the top block (1024),
# the layers that carry structure and texture; the rows it leaves to the sample (7 with b32.torgb, 8, 10, 12,
# 13 with b256.torgb, 14) carry colour, which can then stay tied to the reference's own values of them
# instead of being painted onto every sample. Mapped by resolution for a generator of size R:
#   first fine resolution F = min(64, R / 4)
#   swapped rows            = the rows at resolution >= F           (256: 7..13; 64: 3..9; 32: 1..7)
#   preserve_color          = the conv0 rows of blocks 2F and 4F and every row of the top block
#                             (512: [9, 11, 13, 14, 15]; 256: [9, 11, 12, 13]; 32: [3, 5, 6, 7])
# R / 4 below 256: a 32x32 generator (the demo pair) with only its 16 and 32 px rows swapped learns the
# reference's look for the reference's own coarse latents and hardly at all for others (measured on the demo
# pair: samples got no closer to the reference in D's features; from 8 px up they got 43% closer).

FINE_FROM = 64

def w_layers(G):
    """The synthesis layers each row of ws drives: [['b4.conv1'], ['b4.torgb', 'b8.conv0'], ...]."""
    rows = [[] for _ in range(G.num_ws)]
    i = 0
    for block in G.synthesis.blocks():
        parts = ['conv1', 'torgb'] if block.in_channels == 0 else ['conv0', 'conv1', 'torgb']
        for k, part in enumerate(parts):
            rows[i + k].append(f'b{block.resolution}.{part}')
        i += block.num_conv
    return rows

def w_resolutions(G):
    """The resolution of each row of ws: that of the highest layer it drives."""
    return [max(int(name[1:].split('.')[0]) for name in row) for row in w_layers(G)]

def swapped_rows(G, preserve_color=False, layers=None):
    """The rows of ws a training pair takes from the fresh w (module comment above); `layers` (row indices)
    overrides the rule."""
    if layers is not None:
        return _checked_rows(G, layers)
    fine = min(FINE_FROM, G.img_resolution // 4)
    if not preserve_color:
        return [i for i, r in enumerate(w_resolutions(G)) if r >= fine]
    named = {f'b{2 * fine}.conv0', f'b{4 * fine}.conv0'}
    top = f'b{G.img_resolution}.'
    return [i for i, row in enumerate(w_layers(G)) if any(n in named or n.startswith(top) for n in row)]

def _checked_rows(G, layers):
    rows = sorted({int(i) for i in layers})
    if not rows or rows[0] < 0 or rows[-1] >= G.num_ws:
        raise ValueError(f'layers must list rows of ws in 0..{G.num_ws - 1} (this generator has {G.num_ws}), '
                         f'got {list(layers)}')
    return rows

#----------------------------------------------------------------------------
# Feature blocks of D. JoJoGAN's discriminator returns the outputs of its residual blocks at 1024, 256, 128 and
# 64 px (rosinality's convs[1], [3], [4], [5]: outputs 512, 128, 64 and 32 px): the blocks at R / 2^k for
# k = 0, 2, 3, 4, which any D has where they are above 4x4 (256: 256, 64, 32, 16; 32: 32, 8).

FEATURE_STEPS = (0, 2, 3, 4)

def feature_blocks(D):
    """D's block resolutions whose outputs the loss compares (highest first)."""
    return [D.img_resolution >> k for k in FEATURE_STEPS if (D.img_resolution >> k) in D.block_resolutions]

def d_features(D, x, blocks):
    """The outputs of D's `blocks` for images x [N, 3, R, R] in [-1, 1]."""
    outs = discriminator_block_outputs(D, x)
    return [outs[D.block_resolutions.index(r)] for r in blocks]

def feature_loss(fake, real):
    """Mean over blocks of the mean absolute difference (JoJoGAN's loss)."""
    return sum(F.l1_loss(a, b) for a, b in zip(fake, real)) / len(fake)

def random_discriminator(G, seed=0):
    """A randomly initialised D shaped for G (seeded; the global RNG untouched), for a base file that holds no
    discriminator (e.g. the bundled demo pair). Its features guide less well than a trained D's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Discriminator(DiscriminatorConfig.matching(G.cfg)).eval()

#----------------------------------------------------------------------------
# References: PIL images or uint8 [H, W, 3] arrays -> uint8 [R, R, 3] as the generator sees faces.

ALIGN_MODES = ('auto', 'face', 'anime', 'centre', 'off')

def _as_pil(image):
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, os.PathLike)):
        return read_photo(image)            # upright by EXIF; OSError naming the file when unreadable
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f'a reference is a file path, a PIL image or a uint8 [H, W, 3] array, got {a.dtype} {list(a.shape)}')
    return Image.fromarray(a)

# 'auto' takes a drawn-face detection only above this score: on 290 drawings (docs/data.md) the detector's
# median score was 0.998 on faces and 0.80 on its false positives (bodies, hands, dice), and a reference
# aligned on a wrong detection is worse than centre-cropped. align='anime' takes any detection.
AUTO_DRAWN_SCORE = 0.95

def _drawn_face(img, size, min_score=0.0):
    """The largest drawn face aligned (align.align_drawn_face_with_transform), or None where none is found
    or its detector score is below min_score."""
    try:
        face = align_drawn_face_with_transform(img, size)
    except NoFaceFound:
        return None
    return np.asarray(face.image) if face.detection['likelihood'] >= min_score else None

def prepare_reference(image, size, align='auto'):
    """(uint8 [size, size, 3], how) for one reference. align: 'auto' FFHQ alignment where dlib finds a face,
    else where the drawn-face detector finds one with a score of at least AUTO_DRAWN_SCORE (the anime extra;
    skipped quietly without it), else the centre
    crop the dataset tool makes; 'face' dlib's alignment or ValueError; 'anime' the drawn-face alignment or
    ValueError; 'centre' the centre crop; 'off' the image as it is, which must then be size x size."""
    if align not in ALIGN_MODES:
        raise ValueError(f'align must be one of {ALIGN_MODES}, got {align!r}')
    img = _as_pil(image)
    if align == 'off':
        if img.size != (size, size):
            raise ValueError(f'the reference is {img.size[0]}x{img.size[1]}; with alignment off it must be {size}x{size}, '
                             f"the generator's size")
        return np.asarray(img.convert('RGB')), 'as given'
    if align in ('auto', 'face'):
        try:
            return np.asarray(align_face(img, size=size)), 'aligned'
        except NoFaceFound:
            if align == 'face':
                raise ValueError('no face found in the reference (centre-crop it instead)') from None
        except AlignmentUnavailable as e:
            if align == 'face':
                raise
            warnings.warn(f'{e}: the reference is aligned as a drawn face or centre-cropped instead', stacklevel=3)
    detector_usable = not anime_detect.available()                  # available() is '' or why it is not
    if align == 'anime' or (align == 'auto' and detector_usable):    # 'anime' without the detector raises
        drawn = _drawn_face(img, size, min_score=AUTO_DRAWN_SCORE if align == 'auto' else 0.0)
        if drawn is not None:
            return drawn, 'aligned (drawn face)'
        if align == 'anime':
            raise ValueError('no drawn face found in the reference (centre-crop it instead)')
    return load_image(img, size), 'centre-cropped'

def prepare_references(references, size, align='auto'):
    """(uint8 [N, size, size, 3], [how, ...]); ValueError naming the reference (1-based) that fails."""
    if isinstance(references, (Image.Image, np.ndarray, str, os.PathLike)):
        references = [references]
    references = list(references)
    if not references:
        raise ValueError('give at least one reference image')
    out = []
    for i, ref in enumerate(references):
        try:
            out.append(prepare_reference(ref, size, align))
        except ValueError as e:
            raise ValueError(f'reference {i + 1}: {e}') from None
    return np.stack([a for a, _ in out]), [how for _, how in out]

def pixels_sha256(image):
    """sha256 of a prepared reference's pixels (uint8 [R, R, 3]): what meta records it by."""
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()

#----------------------------------------------------------------------------
# Inversion and training pairs.

# Measured on the demo pair (3 references, random D, 100 training steps): 25 / 100 / 400 / 1000 projection
# steps invert to a pixel MSE of 0.171 / 0.170 / 0.086 / 0.037, but the one-shot samples end equally close to
# the reference in D's features (0.101 / 0.113 / 0.114 / 0.117, from 0.193 before): the pairs need the
# reference's rough latent (JoJoGAN inverts with e4e, an encoder), not a close fit. 100 steps, a tenth of a
# photo projection's 1000.
DEFAULT_PROJECT_STEPS = 100

def invert(G, D, references, steps=DEFAULT_PROJECT_STEPS, loss='auto', seed=0, progress=True):
    """W+ latents [N, num_ws, w_dim] of uint8 references [N, R, R, 3] (project.project, one at a time) and the
    distance used."""
    found = [project(G, ref, steps=steps, w_plus=True, loss=loss, D=D, seed=seed, progress=progress)
             for ref in references]
    return torch.cat([p.ws for p in found]), found[0].method

def training_ws(G, ws, rows, alpha, gen):
    """ws [N, num_ws, w_dim] with `rows` moved toward the w of a fresh z by alpha (1: replaced)."""
    z = torch.randn([ws.shape[0], G.z_dim], generator=gen, device=ws.device)
    with torch.no_grad():
        w_random = G.mapping(z, None, update_emas=False)
    out = ws.clone()
    out[:, rows] = ws[:, rows].lerp(w_random[:, rows], alpha)
    return out

def random_noise(G, n, gen):
    """Fresh per-layer noise maps [n, 1, r, r] from `gen` (seeded, where noise_mode='random' is not), on its device."""
    return [torch.randn([n, 1, l.resolution, l.resolution], generator=gen, device=gen.device)
            for l in G.synthesis.noise_layers()]

#----------------------------------------------------------------------------
# Live view: the current generator on the references' latents and on a few fixed latents, one row.

PREVIEW_SEEDS = (0, 1, 2)

@torch.no_grad()
def live_preview(G, ws, sample_ws, min_tile=64):
    """uint8 [H, W, 3]: G.synthesis on ws then sample_ws (const noise), one row."""
    tiles = images.to_uint8(G.synthesis(torch.cat([ws, sample_ws]), noise_mode='const', force_fp32=True))
    return images.make_grid(images.enlarge(tiles, min_tile), cols=len(tiles))

def sample_latents(G, seeds=PREVIEW_SEEDS, truncation_psi=0.7):
    z = images.seed_latents(list(seeds), G.z_dim).to(next(G.parameters()).device)
    with torch.no_grad():
        return G.mapping(z, None, truncation_psi=truncation_psi, update_emas=False)

#----------------------------------------------------------------------------

@dataclasses.dataclass
class OneShot:
    G:              torch.nn.Module     # the styled generator (eval mode, frozen), on the device it trained on
    references:     np.ndarray          # uint8 [N, R, R, 3]: the references as trained on
    ws:             torch.Tensor        # [N, num_ws, w_dim]: their W+ inversions in the base, on the CPU
    loss:           list                # the loss at every step
    swapped:        list                # the rows of ws taken toward fresh w's
    feature_blocks: list                # D's blocks the loss compares
    seconds:        dict                # {'projection': s, 'training': s}
    meta:           dict                # what it was made from: save it with the network

@dataclasses.dataclass
class _Recipe:
    steps: int
    alpha: float
    lr: float
    seed: int
    rows: list
    blocks: list
    callback: Optional[Callable]
    preview_every: int
    progress: bool

def _fine_tune(base, D, targets, ws, r: _Recipe):
    """A copy of base with its synthesis network trained on the pairs; returns (G, losses)."""
    G = copy.deepcopy(base).eval().requires_grad_(False)
    G.synthesis.train().requires_grad_(True)
    opt = torch.optim.Adam(G.synthesis.parameters(), lr=r.lr, betas=(0.0, 0.99))
    gen = torch.Generator(device=ws.device).manual_seed(r.seed)         # drawn where they are used
    with torch.no_grad():
        real = d_features(D, targets, r.blocks)
    samples = sample_latents(base) if r.callback is not None else None
    losses = []
    bar = tqdm(range(r.steps), desc=f'one-shot ({targets.device.type})', disable=not r.progress)
    for step in bar:
        img = G.synthesis(training_ws(base, ws, r.rows, r.alpha, gen), noise=random_noise(G, len(ws), gen),
                          force_fp32=True)
        loss = feature_loss(d_features(D, img, r.blocks), real)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f'{losses[-1]:.4g}')
        if r.callback is not None:
            show = r.preview_every and (step % r.preview_every == 0 or step == r.steps - 1)
            r.callback(step, losses[-1], live_preview(G, ws, samples) if show else None)
    return G.eval().requires_grad_(False), losses

def _check(G, D, steps, alpha):
    if G.c_dim:
        raise ValueError(f'one-shot training needs an unconditional generator (this one has c_dim {G.c_dim})')
    if D is not None and (D.img_resolution, D.img_channels) != (G.img_resolution, G.img_channels):
        raise ValueError(f'the discriminator takes {D.img_resolution}x{D.img_resolution} images with {D.img_channels} '
                         f'channels; the generator makes {G.img_resolution}x{G.img_resolution} with {G.img_channels}')
    if not 0 <= alpha <= 1:
        raise ValueError(f'alpha is the style strength in [0, 1], got {alpha}')
    if steps < 0:
        raise ValueError(f'steps must be >= 0, got {steps}')

def _meta(r: _Recipe, preserve_color, losses, discriminator, projection, targets, how):
    """What a one-shot network was made from, for its file's meta (the CLI adds file names and hashes)."""
    return {'oneshot': {
        'steps': r.steps, 'alpha': r.alpha, 'preserve_color': bool(preserve_color), 'swapped_rows': r.rows, 'lr': r.lr,
        'seed': r.seed, 'feature_blocks': r.blocks, 'final_loss': losses[-1] if losses else None,
        'discriminator': discriminator, 'projection': projection,
        'references': [{'sha256': pixels_sha256(t), 'prepared': h} for t, h in zip(targets, how)]}}

def train_oneshot(G, D, references, steps=300, alpha=1.0, preserve_color=False, layers=None, lr=2e-3, seed=0,
                  callback=None, align='auto', project_steps=DEFAULT_PROJECT_STEPS, project_loss='auto',
                  preview_every=25, device=None, progress=True) -> OneShot:
    """JoJoGAN's one-shot fine-tuning of G on 1..N references (module docstring); returns a OneShot.

    G, D:           the base generator and its discriminator (eval mode and frozen here, as project() does);
                    D=None: a seeded random D shaped for G (random_discriminator), with a warning;
    references:     image files, PIL images or uint8 [H, W, 3] arrays (one, or a list), prepared by `align`
                    (prepare_reference); an unreadable file raises OSError naming it;
    steps, lr:      Adam steps (JoJoGAN: 300 on the notebook, 200 on Replicate) and learning rate;
    alpha:          style strength in [0, 1]: how far the swapped rows move toward a fresh w;
    preserve_color: swap only the structure and texture rows, so samples keep their colours;
    layers:         the rows of ws to swap, overriding both rules (swapped_rows);
    seed:           z's, noise and the projection's seed (the same inputs give the same network on one device);
    callback:       callback(step, loss, preview) every step; preview is a uint8 [H, W, 3] row (the references'
                    latents, then seeds 0-2 at psi 0.7, through the current network) every `preview_every` steps
                    and at the last one, else None;
    project_steps, project_loss: the W+ projection of each reference (project.project's steps and loss);
    device:         where it runs (None: CUDA when available, else the CPU); G and D are copied there if elsewhere."""
    _check(G, D, steps, alpha)
    rows = swapped_rows(G, preserve_color, layers)              # a bad `layers` is refused before any work
    device = default_device(device)
    targets, how = prepare_references(references, G.img_resolution, align)
    given_d = D is not None
    if not given_d:
        warnings.warn('no discriminator given: a random one (seeded) gives the features; a trained D guides better',
                      stacklevel=2)
    base, D = on_device(G, device), on_device(D if given_d else random_discriminator(G, seed), device)
    D.eval().requires_grad_(False)
    t0 = time.perf_counter()
    ws, method = invert(base, D, targets, project_steps, project_loss, seed, progress)
    t1 = time.perf_counter()
    recipe = _Recipe(steps, float(alpha), lr, seed, rows, feature_blocks(D), callback, preview_every, progress)
    x = torch.from_numpy(targets).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
    styled, losses = _fine_tune(base, D, x, ws, recipe)
    seconds = {'projection': t1 - t0, 'training': time.perf_counter() - t1}
    meta = _meta(recipe, preserve_color, losses, 'given' if given_d else f'random (seed {seed})',
                 {'steps': project_steps, 'distance': method}, targets, how)
    return OneShot(styled, targets, ws.cpu(), losses, recipe.rows, recipe.blocks, seconds, meta)

def oneshot(G, D, references, steps=300, alpha=1.0, preserve_color=False, layers=None, lr=2e-3, seed=0, callback=None,
            **options):
    """The styled generator of train_oneshot(...) (same arguments; `options` are its other keywords)."""
    return train_oneshot(G, D, references, steps=steps, alpha=alpha, preserve_color=preserve_color, layers=layers,
                         lr=lr, seed=seed, callback=callback, **options).G

#----------------------------------------------------------------------------
# The preview the command line writes: the references and their inversions in the base on top, then one row
# per seed of the base | its blends with the styled network at every swap resolution | the styled network.

@torch.no_grad()
def oneshot_preview(base, result: OneShot, seeds=(0, 1, 2, 3), truncation_psi=0.7, min_tile=96):
    """uint8 [H, W, 3] grid (see above)."""
    inverted = images.to_uint8(base.synthesis(result.ws.to(next(base.parameters()).device), noise_mode='const',
                                              force_fp32=True))
    tiles = images.enlarge(np.stack([t for pair in zip(result.references, inverted) for t in pair]), min_tile)
    labels = [f'{name} {i + 1}' for i in range(len(result.references)) for name in ('reference', 'inverted')]
    top = images.add_column_labels(images.make_grid(tiles, cols=len(tiles)), labels, tile_width=tiles.shape[2])
    grid = blend_preview(base, result.G, list(seeds), truncation_psi=truncation_psi, min_tile=min_tile)
    return _stack_rows([top, grid])

def _stack_rows(parts, pad=6):
    """Images [H_i, W_i, 3] one above the other on white, left-aligned."""
    width = max(p.shape[1] for p in parts)
    out = np.full([sum(p.shape[0] for p in parts) + pad * (len(parts) - 1), width, 3], 255, np.uint8)
    y = 0
    for p in parts:
        out[y: y + p.shape[0], : p.shape[1]] = p
        y += p.shape[0] + pad
    return out
