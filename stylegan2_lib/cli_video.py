"""`stylegan2-lib video swap | snapshots | interp` (video.py) and the demo's swap video; cli.py adds them.

Every input is checked (the output name and folder, the numbers, the networks, the snapshots) before a
frame is rendered; the file appears whole at the end or not at all.
"""

import os
import sys
import warnings

from . import video
from .assets import DEMO_BASE, DEMO_SWAP, DEMO_TOON
from .blend import blend, swap_weights
from .cli_common import CLIError, add_device_option, add_seeds_option, check_width, check_writable, load_generator_pair

#----------------------------------------------------------------------------

def _write(args, frames, what):
    """Write `frames` to args.out (warnings, e.g. the GIF fallback, as one line each) and say what was written."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            path = video.write_video(args.out, frames, fps=args.fps, progress=sys.stderr.isatty())
        except ValueError as e:                      # e.g. snapshots of different sizes, found while rendering
            raise CLIError(str(e)) from None
    for w in caught:
        print(f'stylegan2-lib: warning: {w.message}', file=sys.stderr)
    print(f'wrote {path}: {len(frames)} frames at {args.fps:g} fps, {what}')
    return 0

def _check_common(args):
    try:
        video.video_path(args.out)
    except ValueError as e:
        raise CLIError(f'--out {e}') from None
    check_writable(args.out, '--out')
    if not args.fps > 0:
        raise CLIError(f'--fps {args.fps:g}: give a positive frame rate')

def _pair(args):
    base, tuned = load_generator_pair(args.base, '--base', args.tuned, '--tuned', args.device)
    if base.c_dim:
        raise CLIError(f'{args.base}: videos render unconditional generators (this one has c_dim {base.c_dim})')
    return base, tuned

def cmd_swap(args):
    _check_common(args)
    check_width(args.width)
    if args.frames < 2:
        raise CLIError(f'--frames {args.frames}: a swap video needs 2 or more')
    base, tuned = _pair(args)
    frames = video.swap_frames(base, tuned, args.seeds, args.frames, args.width, args.trunc, args.min_tile)
    return _write(args, frames, f'{len(args.seeds)} seeds, the swap point sliding from {os.path.basename(args.base)} '
                                f'to {os.path.basename(args.tuned)} (width {args.width:g})')

def cmd_snapshots(args):
    _check_common(args)
    if args.hold < 1:
        raise CLIError(f'--hold {args.hold}: give 1 frame or more')
    run = args.run if len(args.run) > 1 else args.run[0]
    for path in args.run:
        if not os.path.exists(path):
            raise CLIError(f'{path}: --run: no such run directory or snapshot file')
    try:
        frames = video.snapshot_frames(run, args.seeds, args.hold, args.trunc, min_tile=args.min_tile, device=args.device)
    except ValueError as e:
        raise CLIError(str(e)) from None
    return _write(args, frames, f'{len(frames) // args.hold} snapshots x {len(args.seeds)} seeds, {args.hold} frames each')

def cmd_interp(args):
    _check_common(args)
    check_width(args.width)
    if args.steps < 1:
        raise CLIError(f'--steps {args.steps}: give 1 or more')
    if len(args.seeds) < 2:
        raise CLIError('--seeds: a latent walk needs 2 seeds or more')
    base, tuned = _pair(args)
    try:
        swap_weights(base, args.resolution, args.width)
    except ValueError as e:
        raise CLIError(f'--resolution {args.resolution}: {e}') from None
    G = blend(base, tuned, args.resolution, width=args.width)
    frames = video.interp_frames(G, args.seeds, args.steps, args.trunc, base=base if args.side_by_side else None,
                                 loop=args.loop, min_tile=args.min_tile)
    return _write(args, frames, f'a walk through seeds {",".join(map(str, args.seeds))} rendered by the swap at '
                                f'{args.resolution}' + (' beside the base' if args.side_by_side else ''))

#----------------------------------------------------------------------------

def demo_video(folder, base, toon, seeds, truncation_psi):
    """`stylegan2-lib demo`'s swap video: 32 frames of the first four seeds; returns the path written."""
    path = os.path.join(folder, 'demo-swap.mp4')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        path = video.swap_video(path, base, toon, seeds[:4], frames=32, fps=16, truncation_psi=truncation_psi, progress=False)
    for w in caught:
        print(f'stylegan2-lib: warning: {w.message}', file=sys.stderr)
    print(f'wrote {path}: 32 frames of seeds {",".join(map(str, seeds[:4]))}, the swap point sliding smoothly (width 1) '
          'from demo-base to demo-toon')
    return path

#----------------------------------------------------------------------------

def _common_options(p, seeds, fps):
    a = p.add_argument
    a('--out', required=True, metavar='FILE', help='the video: .mp4 (H.264, through imageio-ffmpeg; an animated .gif '
                                                   'beside it, with a warning, where that is not installed) or .gif')
    add_seeds_option(p, seeds, 'the seeds rendered')
    a('--fps', type=float, default=fps, help=f'frames per second (default: {fps})')
    a('--trunc', type=float, default=0.7, metavar='PSI', help='truncation psi (default: 0.7; 1 = none)')
    a('--min-tile', type=int, default=128, metavar='PX', help='small networks are enlarged (nearest) to at least '
                                                              'this many pixels per image (default: 128)')
    add_device_option(p)

def _pair_options(p, tuned_help):
    p.add_argument('--base', default=str(DEMO_BASE), metavar='PATH', help='the base (real-face) generator '
                                                                          '(default: the bundled demo-base)')
    p.add_argument('--tuned', default=str(DEMO_TOON), metavar='PATH', help=tuned_help + ' (default: the bundled demo-toon)')

def add_parsers(sub):
    p = sub.add_parser('video', help='videos: the swap point sliding, a training run as a film, a latent walk',
                       description='Render a video (MP4, or animated GIF) of a seed grid: `swap` slides a smooth '
                                   'blend from all --base to all --tuned; `snapshots` shows every snapshot of a '
                                   'training run; `interp` walks through the seeds rendered by a blend.')
    kinds = p.add_subparsers(dest='kind', required=True, metavar='KIND')

    k = kinds.add_parser('swap', help='the swap point sliding from all base to all fine-tuned',
                         description='Every frame renders the same seed grid (w from --base) with a smooth blend whose '
                                     'centre slides from above the top layer (all --base) to below the first (all '
                                     '--tuned); the first frame is --base, the last --tuned\'s synthesis.')
    _pair_options(k, 'the fine-tuned generator')
    k.add_argument('--frames', type=int, default=48, help='number of frames (default: 48)')
    k.add_argument('--width', type=float, default=1.0, metavar='W', help='blend width in layers (default: 1; 0 = hard swap)')
    _common_options(k, '0-3', 24)
    k.set_defaults(func=cmd_swap)

    k = kinds.add_parser('snapshots', help='one seed grid per snapshot of a training run, labelled',
                         description='The fine-tuning as a film: the same seeds rendered by every network snapshot of '
                                     '--run (oldest first), each held for --hold frames under its label.')
    k.add_argument('--run', required=True, nargs='+', metavar='RUN_DIR_OR_FILES', help='a run directory, or snapshot files')
    k.add_argument('--hold', type=int, default=6, metavar='N', help='frames per snapshot (default: 6)')
    _common_options(k, '0-8', 12)
    k.set_defaults(func=cmd_snapshots)

    k = kinds.add_parser('interp', help='a latent walk through the seeds, rendered by a blend',
                         description='w from each seed (the mapping of --base), straight lines in W between consecutive '
                                     'seeds, rendered by the blend of --base and --tuned at --resolution; '
                                     '--side-by-side shows --base on the left.')
    _pair_options(k, 'the generator for the blocks above --resolution')
    k.add_argument('--resolution', type=int, default=DEMO_SWAP, metavar='RES',
                   help=f'swap point of the blend: a block resolution, 0 = all --tuned (default: {DEMO_SWAP})')
    k.add_argument('--width', type=float, default=None, metavar='W', help='smooth blend of this width (default: hard swap)')
    k.add_argument('--steps', type=int, default=24, help='frames from one seed to the next (default: 24)')
    k.add_argument('--loop', action='store_true', help='walk back to the first seed at the end')
    k.add_argument('--side-by-side', action='store_true', help='the base beside the blend')
    _common_options(k, '0-3', 24)
    k.set_defaults(func=cmd_interp)
