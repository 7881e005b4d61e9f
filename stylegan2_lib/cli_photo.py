"""`stylegan2-lib align` and `stylegan2-lib stylize`: the photo side of the command line, thin wrappers
over stylegan2_lib.align and stylegan2_lib.stylize. cli.build_parser registers them with add_parsers()."""

import sys
from pathlib import Path

import numpy as np

from . import images
from .align import ALIGNMENT_FILE, MAX_FEATHER, AlignmentUnavailable, NoFaceFound, align_folder, check_feather
from .align import read_photo as _read_photo
from .cli_common import CLIError, add_device_option, face_size, load_generator, load_with_generator
from .project import save_projected_w
from .stylize import stylize


def feather_fraction(text):
    """--feather: a float in [0, MAX_FEATHER], refused by argparse with the rule otherwise."""
    import argparse
    try:
        value = float(text)
        check_feather(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e) if 'feather' in str(e) else f'not a number: {text!r}') from None
    return value

def read_photo(path):
    try:
        return _read_photo(path)
    except OSError as e:
        raise CLIError(str(e)) from None

#----------------------------------------------------------------------------

def _listed(names, limit=20):
    return ', '.join(names[:limit]) + (' ...' if len(names) > limit else '')

def cmd_align(args):
    """Every face of every photo, FFHQ-aligned (drawn faces with --anime, or centre-cropped); photos without a
    face and faces too small for --size are listed."""
    mode = 'centre' if args.centre_crop else 'anime' if args.anime else 'photo'
    return align_and_report(args.src, args.dest, args.size, mode, args.allow_upscale)

def align_and_report(src, dest, size, mode, allow_upscale):
    """align_folder for the command line (`align`, `frames --align`): its errors as CLIError in the options'
    words, what was skipped as warnings, what was written as one line."""
    try:
        result = align_folder(src, dest, size, mode=mode, allow_upscale=allow_upscale, progress=False)
    except (AlignmentUnavailable, OSError) as e:
        raise CLIError(str(e)) from None
    except ValueError as e:
        raise CLIError(str(e).replace('centre cropping', '--centre-crop')
                       .replace('allow upscaling', f'--allow-upscale (or a --size below {size})')) from None
    faceless, small = result.faceless, result.too_small
    if faceless:
        print(f'stylegan2-lib: warning: no face found in {len(faceless)} photo(s), skipped: {_listed(faceless)}'
              + ('; --centre-crop takes the centred square instead' if mode == 'anime' else ''), file=sys.stderr)
    if small:
        names = [f'{f["photo"]} ({f["source_px"]:.0f} px)' for f in small]
        print(f'stylegan2-lib: warning: {len(small)} face(s) cover fewer than {size} px of their photo, left out '
              f'(--allow-upscale keeps them): {_listed(names)}', file=sys.stderr)
    if result.removed:
        print(f'stylegan2-lib: removed {len(result.removed)} crop(s) an earlier alignment wrote in {dest} '
              f'that this one did not make: {_listed(result.removed)}', file=sys.stderr)
    what = {'photo': 'aligned', 'anime': 'aligned drawn', 'centre': 'centre-cropped'}[mode]
    print(f'wrote {len(result.written)} {what} {size}x{size} face(s) to {dest} '
          f'(and {ALIGNMENT_FILE}: photos with and without a face, faces too small)')
    return 0

def cmd_stylize(args):
    if (args.styled is None) == (args.blended is None):
        raise CLIError('give --styled STYLED (blended here) or --blended X (a ready blend), not both')
    photo = read_photo(args.photo)
    base_ck = load_with_generator(args.base, '--base', args.device)       # loaded where the work runs: no copies later
    styled = load_generator(args.styled, '--styled', args.device) if args.styled else None
    blended = load_generator(args.blended, '--blended', args.device) if args.blended else None
    print(f'stylize: {args.steps} projection steps on {args.device}', flush=True)
    try:
        r = stylize(photo, base_ck.generator, styled=styled, blended=blended, resolution=args.resolution, width=args.width,
                    align=not args.no_align, steps=args.steps, loss=args.loss, D=base_ck.D, w_plus=args.w_plus,
                    device=args.device, all_faces=args.all_faces, paste_back=True, mask=args.mask, feather=args.feather,
                    color_match=not args.no_color_match)
    except NoFaceFound:
        raise CLIError(f'{args.photo}: no face found (use --no-align to centre-crop instead); nothing written') from None
    except AlignmentUnavailable as e:
        raise CLIError(f'{e} (or use --no-align)') from None
    out = Path(args.outdir)
    first = next(iter(r.stylized.values()))
    label = next(iter(r.stylized))
    written = [('aligned.png', r.aligned), ('projected.png', r.projected), ('stylized.png', first), ('strip.png', r.strip),
               ('full.png', r.full[label])]
    written += [(f'strip_face{i}.png', face.strip) for i, face in enumerate(r.other_faces, 2)]
    for name, img in written:
        images.save_image(out / name, np.asarray(img))
    save_projected_w(out / 'projected_w.npz', r.projection.ws)
    faces = 1 + len(r.other_faces)
    print(f'wrote aligned.png, projected.png, stylized.png ({label}), strip.png '
          f'({" | ".join(["photo", "projected", *r.stylized])}), full.png (the photo, {faces} face(s) stylized with {label})'
          + (f', strip_face2..{faces}.png' if faces > 1 else '') +
          f' and projected_w.npz to {out} (projection: {args.steps} steps, {r.projection.method} distance, on {r.device})')
    print(r.identity_text())
    return 0

#----------------------------------------------------------------------------

def add_parsers(sub):
    p = sub.add_parser('align', help='FFHQ-align every face (real or, with --anime, drawn) of a photo or a folder',
                       description='Detect faces (dlib 68-point landmarks, the [align] extra; drawn anime/cartoon faces '
                                   'with --anime: AnimeFace\'s detector, the [anime] extra) and cut each out as FFHQ '
                                   'was made (eyes level and a quarter of the crop apart). Photos without a face are '
                                   'listed and skipped, and so are faces that cover fewer than --size pixels of their '
                                   'photo (--allow-upscale keeps them). --centre-crop instead takes the centred square. '
                                   'Writes <photo>_<face>.png, faces.json (where each came from, a drawn face\'s '
                                   'detector score) and alignment.json (counts, which `dataset --report` shows).')
    p.add_argument('src', metavar='SRC', help='a photo or a folder of photos')
    p.add_argument('dest', metavar='DEST', help='folder for <photo>_<face>.png')
    p.add_argument('--size', type=face_size, default=256, help='output size in pixels (default: 256)')
    how = p.add_mutually_exclusive_group()
    how.add_argument('--anime', action='store_true', help='drawn (anime / cartoon) faces: AnimeFace\'s detector')
    how.add_argument('--centre-crop', action='store_true', help='no face detection: centre square')
    p.add_argument('--allow-upscale', action='store_true',
                   help='keep faces smaller than --size (upscaled) instead of leaving them out')
    p.set_defaults(func=cmd_align)

    p = sub.add_parser('stylize', help='photo -> aligned -> projected into BASE -> rendered with the blend',
                       description='Align the photo like FFHQ, project it into the base generator (W, or W+ with '
                                   '--w-plus), render the latent with the blend of BASE and STYLED at --resolution (every '
                                   'swap resolution when not given) or with --blended. Writes aligned.png, '
                                   'projected.png, stylized.png, strip.png, full.png (the whole photo with the stylized '
                                   'face pasted back through a feathered mask, colours matched at the seam; every face '
                                   'with --all-faces, whose further strips are strip_face2.png, ...) and '
                                   'projected_w.npz (NVlabs format; the largest face), and prints how much of the '
                                   'person each render keeps (dlib identity similarity to the '
                                   'aligned photo, 0..1).')
    p.add_argument('--base', required=True, metavar='PATH', help='the real-face generator the photo is projected into')
    p.add_argument('--styled', metavar='PATH', help='its fine-tuned (stylized) copy, blended with BASE here')
    p.add_argument('--blended', metavar='PATH', help='or a ready blend (e.g. from `stylegan2-lib blend`)')
    p.add_argument('--resolution', type=int, help='swap resolution (default: a strip over all of them)')
    p.add_argument('--width', type=float, help='smooth blend width (default: hard swap)')
    p.add_argument('--photo', required=True, metavar='IMAGE')
    p.add_argument('--outdir', required=True, metavar='DIR')
    p.add_argument('--steps', type=int, default=300, help='projection steps (default: 300; NVlabs uses 1000)')
    p.add_argument('--loss', choices=['auto', 'vgg', 'discriminator', 'pixel'], default='auto',
                   help='projection distance (default: vgg when its weights are cached, else the discriminator)')
    p.add_argument('--w-plus', action='store_true', help='one w per layer (closer fit, less editable)')
    p.add_argument('--no-align', action='store_true', help='centre-crop instead of face alignment')
    p.add_argument('--all-faces', action='store_true', help='stylize every face in the photo (a projection each)')
    p.add_argument('--mask', choices=['hull', 'ellipse'], default='hull',
                   help='full.png: the pasted region, the hull of the face landmarks (default) or an ellipse')
    p.add_argument('--feather', type=feather_fraction, default=0.04,
                   help=f"full.png: the mask's soft edge, a fraction of the crop from 0 to {MAX_FEATHER} (default: 0.04)")
    p.add_argument('--no-color-match', action='store_true', help="full.png: keep the stylized face's colours at the seam")
    add_device_option(p)
    p.set_defaults(func=cmd_stylize)
