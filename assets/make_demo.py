"""Rebuild the bundled demo pair from scratch: render two face domains from colour emoji, train a base
generator on the first with the library's own trainer, fine-tune a copy on the second.

    python assets/make_demo.py            # data + base + fine-tune; writes the pair into assets/ and stylegan2_lib/assets/
    python assets/make_demo.py --quick    # the same steps at a tiny length, into --workdir only (checks the pipeline)

Domains (both rendered offline from Debian's fonts-noto-color-emoji, `apt-get install fonts-noto-color-emoji`):
    base  yellow smiley faces (BASE_EMOJI)
    toon  animal faces (TOON_EMOJI), the "cartoon" domain the base is fine-tuned on

Every image is one emoji drawn with Pillow (the font is a CBDT bitmap font: size 109 exactly, then resized),
augmented for variety (left-right flip, rotation, scale, shift, a slight hue shift, a plain light background
colour) and written at the training resolution with stylegan2_lib.data.prepare_dataset. Training is
`stylegan2_lib.train.train` (the same loop as `stylegan2-lib train`): the base from scratch, then the toon
run with `resume` pointing at the base's last snapshot. Each result's G_ema is saved with sg.save and a meta
that says how it was made (domain, images, kimg, seconds, options, this script).

The defaults are the settings of the shipped pair (assets/README.md says how they were chosen and how long
the run took: about 24 minutes on a 2-core CPU). The work folder (data zips and sample grids, run
directories with their snapshots) is kept for inspection; a rerun replaces it.
"""

import argparse
import colorsys
import hashlib
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import stylegan2_lib as sg  # noqa: E402  (after the path set-up, so a checkout works uninstalled)
from stylegan2_lib.blend import blend_preview  # noqa: E402
from stylegan2_lib.data import prepare_dataset  # noqa: E402
from stylegan2_lib.files import atomic_write_bytes  # noqa: E402
from stylegan2_lib.images import enlarge  # noqa: E402
from stylegan2_lib.train import TrainOptions, list_snapshots, train  # noqa: E402

FONT = '/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf'
FONT_SIZE = 109          # the only size the CBDT bitmap strikes of Noto Color Emoji render at
CANVAS = 128             # images are composed at this size, then resized to the training resolution
FOLDERS = ['assets', 'stylegan2_lib/assets']
NAMES = {'base': 'demo-base.safetensors', 'toon': 'demo-toon.safetensors'}
MARKER = '.make_demo-workdir'     # a work folder holding this file may be replaced by a rerun

# Yellow smiley faces: the base domain.
BASE_EMOJI = ('😀😃😄😁😆😅🤣😂🙂🙃😉😊😇🥰😍🤩😘😗😚😙😋😛😜🤪😝🤑🤗🤭🤫🤔🤐🤨😐😑😶😏😒🙄😬😌😔😪😴'
              '😷🤒🤕🤢🤮🥵🥶🥴😵🤯🤠🥳😎🤓🧐😕😟🙁😮😯😲😳🥺😦😧😨😰😥😢😭😱😖😣😞😓😩😫🥱😤😡😠🤬')
# Animal faces: the "cartoon" domain.
TOON_EMOJI = '🐶🐱🐭🐹🐰🦊🐻🐼🐨🐯🦁🐮🐷🐸🐵🐔🐧🐺🐗🐴🦄😺😸😹😻😼😽🙀😿😾🙈🙉🙊🐲'

#----------------------------------------------------------------------------
# Rendering.

def load_font(path):
    if not os.path.isfile(path):
        raise SystemExit(f'{path}: not found; install it with `apt-get install fonts-noto-color-emoji` (Debian/Ubuntu) '
                         'or give --font PATH to NotoColorEmoji.ttf')
    return ImageFont.truetype(path, FONT_SIZE)

def render_glyph(font, char):
    """One emoji as an RGBA image cropped to its visible pixels."""
    img = Image.new('RGBA', (CANVAS + 32, CANVAS + 32), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((8, 8), char, font=font, embedded_color=True)
    box = img.getchannel('A').getbbox()
    if box is None:
        raise ValueError(f'{char!r} (U+{ord(char[0]):04X}) renders empty with this font')
    return img.crop(box)

def shift_hue(rgba, amount):
    """Rotate the hue of every pixel by `amount` turns (alpha kept)."""
    hsv = np.asarray(rgba.convert('RGB').convert('HSV')).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(amount * 256))) % 256
    rgb = Image.fromarray(hsv, 'HSV').convert('RGB')
    rgb.putalpha(rgba.getchannel('A'))
    return rgb

def augment(glyph, rng, resolution):
    """One training image, uint8 [R, R, 3]: the glyph flipped, rotated, scaled, shifted, hue-shifted, on a
    plain light background."""
    g = glyph
    if rng.rand() < 0.5:
        g = g.transpose(Image.FLIP_LEFT_RIGHT)
    g = shift_hue(g, rng.uniform(-0.03, 0.03))
    g = g.rotate(rng.uniform(-12, 12), resample=Image.BICUBIC, expand=True)
    size = rng.uniform(0.76, 0.92) * CANVAS
    scale = size / max(g.size)
    g = g.resize((max(1, round(g.size[0] * scale)), max(1, round(g.size[1] * scale))), Image.LANCZOS)
    r, gr, b = colorsys.hsv_to_rgb(rng.rand(), rng.uniform(0.05, 0.3), rng.uniform(0.85, 1.0))
    bg = Image.new('RGBA', (CANVAS, CANVAS), (round(r * 255), round(gr * 255), round(b * 255), 255))
    x = (CANVAS - g.size[0]) / 2 + rng.uniform(-0.05, 0.05) * CANVAS
    y = (CANVAS - g.size[1]) / 2 + rng.uniform(-0.05, 0.05) * CANVAS
    bg.alpha_composite(g, (int(round(x)), int(round(y))))
    return np.asarray(bg.convert('RGB').resize((resolution, resolution), Image.LANCZOS))

def render_domain(font, chars, count, resolution, seed):
    """`count` augmented images, cycling through `chars` (each emoji about equally often)."""
    glyphs = [render_glyph(font, ch) for ch in chars]
    rng = np.random.RandomState(seed)
    return [augment(glyphs[i % len(glyphs)], rng, resolution) for i in range(count)]

def write_dataset(imgs, folder, zip_path, resolution):
    """PNGs into `folder`, then the prepared zip the trainer reads (stylegan2_lib.data.prepare_dataset)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(folder / f'{i:05d}.png')
    prepare_dataset(folder, zip_path, resolution, progress=False)

#----------------------------------------------------------------------------
# Training.

def last_snapshot(run_dir):
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise SystemExit(f'{run_dir}: the run wrote no snapshot')
    return snaps[-1][2]

def timed_train(opts):
    t0 = time.time()
    run = train(opts)
    return run, time.time() - t0

def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

#----------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a = p.add_argument
    a('--workdir', default=str(ROOT / 'demo-work'), help='data, runs and snapshots (default: demo-work/ in the checkout; '
                                                        'replaced by a rerun)')
    a('--quick', action='store_true', help='tiny lengths and datasets; writes into --workdir only, never into assets/')
    a('--font', default=FONT, help=f'Noto Color Emoji font file (default: {FONT})')
    a('--resolution', type=int, default=32)
    a('--base-images', type=int, default=1500, help='rendered smiley images (default: 1500)')
    a('--toon-images', type=int, default=1000, help='rendered animal images (default: 1000)')
    a('--base-kimg', type=float, default=50, help='base training length (default: 50)')
    a('--toon-kimg', type=float, default=8, help='fine-tuning length (default: 8)')
    a('--batch', type=int, default=16)
    a('--channel-base', type=int, default=1536)
    a('--channel-max', type=int, default=48)
    a('--z-dim', type=int, default=64, help='z_dim = w_dim (default: 64)')
    a('--mapping-layers', type=int, default=2)
    a('--aug', choices=['ada', 'fixed', 'none'], default='ada')
    a('--ada-kimg', type=float, default=500, help='ADA speed: p can move by 1 within this many kimg (default: 500)')
    a('--gamma', type=float, default=None, help='R1 weight (default: the trainer\'s, 0.0002 * resolution^2 / batch)')
    a('--freezed', type=int, default=0, help='FreezeD blocks while fine-tuning (default: 0)')
    a('--snap', type=float, default=5, help='snapshot interval in kimg (default: 5)')
    a('--seed', type=int, default=0)
    a('--workers', type=int, default=0)
    a('--threads', type=int, default=1, help='torch CPU threads (default: 1; see main())')
    args = p.parse_args(argv)
    if args.quick:
        args.base_images, args.toon_images = 64, 64
        args.base_kimg, args.toon_kimg, args.snap = 0.064, 0.032, 0.032
    return args

def main(argv=None):
    args = parse_args(argv)
    # One thread by default: on a 2-core machine two threads are about 1.6x faster while nothing else runs,
    # but many times slower as soon as another process takes a core (each op waits for the preempted thread).
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    if work.exists() and any(work.iterdir()):
        if not (work / MARKER).is_file():
            raise SystemExit(f'{work}: exists and is not a work folder of this script; give another --workdir')
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text('made by assets/make_demo.py; replaced when it runs again\n')
    t_start = time.time()
    font = load_font(args.font)
    res = args.resolution

    # 1. Data.
    t0 = time.time()
    domains = {'base': (BASE_EMOJI, args.base_images, 'yellow smiley face emoji'),
               'toon': (TOON_EMOJI, args.toon_images, 'animal face emoji')}
    zips = {}
    for i, (key, (chars, count, _)) in enumerate(domains.items()):
        imgs = render_domain(font, chars, count, res, seed=args.seed * 1000 + i)
        zips[key] = work / f'{key}.zip'
        write_dataset(imgs, work / key, zips[key], res)
        sg.save_grid(work / f'{key}-data.png', np.stack(imgs[:64]))
        print(f'{key}: {count} images of {len(chars)} emoji at {res}x{res} -> {zips[key]}', flush=True)
    t_data = time.time() - t0

    # 2. The base, from scratch; 3. the fine-tune, from the base's last snapshot.
    common = dict(outdir=str(work / 'runs'), batch=args.batch, aug=args.aug, ada_kimg=args.ada_kimg, gamma=args.gamma,
                  snap=args.snap, tick=min(1, args.snap), seed=args.seed, workers=args.workers, device='cpu', sample_seeds=16)
    base_opts = TrainOptions(data=str(zips['base']), kimg=args.base_kimg, resolution=res, z_dim=args.z_dim, w_dim=args.z_dim,
                             mapping_layers=args.mapping_layers, channel_base=args.channel_base,
                             channel_max=args.channel_max, **common)
    base_run, t_base = timed_train(base_opts)
    base_snap = last_snapshot(base_run)
    print(f'base: {base_opts.kimg:g} kimg in {t_base:.0f} s -> {base_snap}', flush=True)

    toon_opts = TrainOptions(data=str(zips['toon']), kimg=args.toon_kimg, resume=str(base_snap), freezed=args.freezed, **common)
    toon_run, t_toon = timed_train(toon_opts)
    toon_snap = last_snapshot(toon_run)
    print(f'toon: {toon_opts.kimg:g} kimg in {t_toon:.0f} s -> {toon_snap}', flush=True)

    # 4. G_ema of each, with a meta that says how it was made.
    machine = f'{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads)'
    common_meta = {'made_by': 'assets/make_demo.py', 'command': ' '.join(['python', 'assets/make_demo.py'] + list(argv or sys.argv[1:])),
                   'machine': machine, 'font': f'{Path(args.font).name} (sha256 {file_sha256(args.font)}), size {FONT_SIZE}',
                   'data_seconds': round(t_data, 1)}

    def options_meta(opts):
        d = opts.to_dict()
        for k in ('data', 'outdir', 'resume'):
            d.pop(k)
        return d

    metas = {
        'base': {'name': 'demo-base', 'description': 'demo base generator: trained from scratch on yellow smiley face emoji',
                 'domain': domains['base'][2], 'emoji': BASE_EMOJI, 'images': args.base_images, 'resolution': res,
                 'kimg': base_opts.kimg, 'train_seconds': round(t_base, 1), 'options': options_meta(base_opts), **common_meta},
        'toon': {'name': 'demo-toon', 'description': 'demo "cartoon" generator: demo-base fine-tuned on animal face emoji',
                 'domain': domains['toon'][2], 'emoji': TOON_EMOJI, 'images': args.toon_images, 'resolution': res,
                 'fine_tuned_from': 'demo-base.safetensors (the base run\'s last snapshot)', 'kimg': toon_opts.kimg,
                 'base_kimg': base_opts.kimg, 'train_seconds': round(t_toon, 1), 'options': options_meta(toon_opts),
                 **common_meta},
    }
    folders = [work] if args.quick else [ROOT / f for f in FOLDERS]
    nets = {}
    for key, snap in (('base', base_snap), ('toon', toon_snap)):
        nets[key] = G = sg.load(snap).G_ema
        sg.save(work / NAMES[key], G_ema=G, meta=metas[key])
        data = (work / NAMES[key]).read_bytes()
        for folder in folders:                       # the same bytes in every folder
            path = folder / NAMES[key]
            if path != work / NAMES[key]:
                atomic_write_bytes(path, data)
            print(f'wrote {path} ({len(data)} bytes)')
        if not args.quick:                           # the previews assets/README.md links to
            imgs = sg.to_uint8(sg.generate_images(G, list(range(16)), truncation_psi=0.7, noise_mode='const', progress=False))
            png = ROOT / 'assets' / NAMES[key].replace('.safetensors', '.png')
            sg.save_grid(png, enlarge(imgs, 64), cols=8)
            print(f'wrote {png}')
    if not args.quick:                               # what `stylegan2-lib demo` writes as demo-preview.png (README image)
        png = ROOT / 'assets' / 'demo-preview.png'
        sg.save_image(png, blend_preview(nets['base'], nets['toon'], list(range(6)), truncation_psi=0.7))
        print(f'wrote {png}')
    print(f'total {time.time() - t_start:.0f} s (data {t_data:.0f} s, base {t_base:.0f} s, toon {t_toon:.0f} s)')
    return 0

if __name__ == '__main__':
    sys.exit(main())
