"""Command line: `stylegan2-lib info PATH` and `stylegan2-lib generate ...` (also `python -m stylegan2_lib`).

Thin wrappers over library functions; every expected failure (unreadable checkpoint, bad seeds, no CUDA)
is one line on stderr and exit status 1, without a traceback.
"""

import argparse
import json
import os
import sys

import torch

from . import images
from .assets import DEFAULT_NETWORK
from .checkpoints import CheckpointError, load
from .summary import describe, format_summary


class UsageError(Exception):
    """A request the command cannot carry out; the message is printed as is."""

#----------------------------------------------------------------------------

def cmd_info(args):
    info = describe(load(args.path), args.path)
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0

def class_vector(G, class_idx):
    """--class for a conditional network -> one-hot c [1, c_dim]; None for an unconditional one."""
    if G.c_dim == 0:
        if class_idx is not None:
            raise UsageError(f'--class {class_idx}: this network is unconditional (c_dim 0)')
        return None
    if class_idx is None:
        raise UsageError(f'this network is conditional (c_dim {G.c_dim}): give --class 0..{G.c_dim - 1}')
    if not 0 <= class_idx < G.c_dim:
        raise UsageError(f'--class {class_idx} is out of range: this network has classes 0..{G.c_dim - 1}')
    c = torch.zeros([1, G.c_dim])
    c[0, class_idx] = 1
    return c

def cmd_generate(args):
    try:
        seeds = images.parse_seeds(args.seeds)
    except ValueError as e:
        raise UsageError(f'--seeds: {e}') from None
    if args.batch_size < 1:
        raise UsageError(f'--batch-size {args.batch_size}: give 1 or more')
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise UsageError('--device cuda: CUDA is not available here; use --device cpu')
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise UsageError(f'{args.outdir}: --outdir exists and is not a directory')
    ck = load(args.network, device=args.device)
    G = ck.generator
    if G is None:
        raise UsageError(f'{args.network}: the checkpoint holds no generator (only {", ".join(ck.networks())})')
    c = class_vector(G, args.class_idx)

    imgs = images.to_uint8(images.generate_images(G, seeds, truncation_psi=args.trunc, noise_mode=args.noise_mode,
                                                  c=c, batch_size=args.batch_size, device=args.device))
    for seed, img in zip(seeds, imgs):
        images.save_image(os.path.join(args.outdir, f'seed{seed:04d}.png'), img)
    images.save_grid(os.path.join(args.outdir, 'grid.png'), imgs)
    print(f'wrote {len(seeds)} images ({G.img_resolution}x{G.img_resolution}) and grid.png to {args.outdir}')
    return 0

#----------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(prog='stylegan2-lib', description='StyleGAN2 checkpoints: inspect them, sample them.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    p = sub.add_parser('info', help='what a checkpoint holds (any supported format)',
                       description='Print the format, architecture and training information of a checkpoint.')
    p.add_argument('path', help='checkpoint file (.pkl, .pt, .safetensors)')
    p.add_argument('--json', action='store_true', help='machine-readable output')
    p.set_defaults(func=cmd_info)

    p = sub.add_parser('generate', help='one PNG per seed, plus grid.png',
                       description='Render images as NVlabs generate.py does: z = RandomState(seed).randn(1, z_dim); '
                                   'files seed0000.png, ... and grid.png in OUTDIR.')
    p.add_argument('--network', default=str(DEFAULT_NETWORK), metavar='PATH',
                   help='checkpoint file (default: the bundled tiny 32x32 network, which draws abstract patterns)')
    p.add_argument('--seeds', default='0-7', help="seeds, e.g. '0-7' or '1,5,10-12' (default: 0-7)")
    p.add_argument('--trunc', type=float, default=0.7, metavar='PSI', help='truncation psi (default: 0.7; 1 = none)')
    p.add_argument('--noise-mode', choices=['const', 'random', 'none'], default='const', help='default: const')
    p.add_argument('--class', dest='class_idx', type=int, metavar='IDX', help='class index, for conditional networks')
    p.add_argument('--outdir', required=True, metavar='DIR', help='where to write the PNGs (created if needed)')
    p.add_argument('--device', choices=['cpu', 'cuda'], default=None, help='default: cuda when available, else cpu')
    p.add_argument('--batch-size', type=int, default=8, metavar='N', help='images per forward pass (default: 8)')
    p.set_defaults(func=cmd_generate)
    return parser

def main(argv=None):
    args = build_parser().parse_args(argv)
    if getattr(args, 'device', 'cpu') is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        return args.func(args)
    except (CheckpointError, UsageError) as e:
        message = str(e)
    except OSError as e:      # e.g. an output folder that cannot be written
        message = f'{e.filename}: {e.strerror}' if e.filename else str(e)
    except KeyboardInterrupt:
        message = 'interrupted'
    print(f'stylegan2-lib: error: {message}', file=sys.stderr)
    return 1

if __name__ == '__main__':
    sys.exit(main())
