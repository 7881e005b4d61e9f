"""Images in and out: generator output <-> uint8, grids, seeds, and batched generation with a progress bar."""

import io
import re

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .files import atomic_write_bytes

#----------------------------------------------------------------------------
# Generator output is about [-1, 1]; the usual display mapping (NVlabs generate.py) is x * 127.5 + 128.

def to_uint8(img):
    """[N, C, H, W] or [C, H, W] float -> numpy uint8 [N, H, W, C] / [H, W, C]."""
    x = (img.detach().to(torch.float32) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    x = x.permute(0, 2, 3, 1) if x.ndim == 4 else x.permute(1, 2, 0)
    return x.cpu().numpy()

def to_pil(img_uint8):
    a = np.asarray(img_uint8)
    return Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)

def save_image(path, img_uint8):
    """Write one [H, W, C] uint8 image as PNG, atomically (temporary file, then rename)."""
    buf = io.BytesIO()
    to_pil(img_uint8).save(buf, format='PNG')
    atomic_write_bytes(path, buf.getvalue())

#----------------------------------------------------------------------------

def make_grid(images, cols=None, pad=2, pad_value=255):
    """[N, H, W, C] uint8 -> one [rows*(H+pad)-pad, cols*(W+pad)-pad, C] uint8 image, row-major."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full([rows * (h + pad) - pad, cols * (w + pad) - pad, c], pad_value, dtype=np.uint8)
    for i, im in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * (h + pad): r * (h + pad) + h, col * (w + pad): col * (w + pad) + w] = im
    return grid

def enlarge(images, min_size):
    """Nearest-neighbour upscale [N, H, W, C] uint8 by an integer factor so H >= min_size (for tiny nets)."""
    images = np.asarray(images)
    k = max(1, -(-min_size // images.shape[1]))
    return images.repeat(k, axis=1).repeat(k, axis=2) if k > 1 else images

def add_column_labels(grid, labels, tile_width, pad=2, height=14):
    """Write one label above each column of a grid made by make_grid (PIL's built-in font)."""
    from PIL import ImageDraw
    grid = np.asarray(grid)
    canvas = Image.new('RGB', (grid.shape[1], grid.shape[0] + height), (255, 255, 255))
    canvas.paste(to_pil(grid).convert('RGB'), (0, height))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(labels):
        x = i * (tile_width + pad)
        draw.text((x + 1, 1), str(text), fill=(0, 0, 0))
    return np.asarray(canvas)

def save_grid(path, images, cols=None):
    save_image(path, make_grid(images, cols=cols))

#----------------------------------------------------------------------------

def parse_seeds(text):
    """'0-7' -> [0..7]; '1,5,10-12' -> [1, 5, 10, 11, 12]."""
    seeds = []
    for part in str(text).split(','):
        part = part.strip()
        m = re.fullmatch(r'(\d+)\s*-\s*(\d+)', part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise ValueError(f'seed range {part!r} runs backwards')
            seeds.extend(range(a, b + 1))
        elif re.fullmatch(r'\d+', part):
            seeds.append(int(part))
        else:
            raise ValueError(f'cannot read seeds {text!r}: use e.g. 0-7 or 1,5,10-12')
    return seeds

def seed_latents(seeds, z_dim):
    """One z per seed, as NVlabs generate.py draws it: numpy RandomState(seed).randn(1, z_dim)."""
    return torch.from_numpy(np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds])).float()

@torch.no_grad()
def generate_images(G, seeds, truncation_psi=1.0, noise_mode='const', c=None, batch_size=8, device=None, progress=True):
    """Render one image per seed -> float tensor [N, C, H, W] on the CPU."""
    device = device or next(G.parameters()).device
    z_all = seed_latents(seeds, G.z_dim)
    out = []
    bar = tqdm(total=len(seeds), desc='generate', unit='img', disable=not progress)
    for i in range(0, len(seeds), batch_size):
        z = z_all[i: i + batch_size].to(device)
        cc = None if c is None else c.expand(len(z), -1).to(device)
        out.append(G(z, cc, truncation_psi=truncation_psi, noise_mode=noise_mode).cpu())
        bar.update(len(z))
    bar.close()
    return torch.cat(out)

