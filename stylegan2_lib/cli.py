"""Command line: `stylegan2-lib info | generate | blend | demo | evaluate | convert | dataset | train | oneshot | align |
stylize | video | frames | doctor`
(also `python -m stylegan2_lib`; align and stylize live in cli_photo.py, video in cli_video.py, frames in
cli_frames.py, the checks they share in cli_common.py).

Thin wrappers over library functions; every expected failure (unreadable checkpoint, bad seeds, no CUDA,
a blend or export that cannot work) is one line on stderr (cli_common.CLIError) and exit status 1, without
a traceback, and nothing is written.
"""

import argparse
import json
import os
import sys
import warnings

import torch

from . import images
from .align import AlignmentUnavailable
from .assets import DEFAULT_NETWORK, DEMO_BASE, DEMO_SWAP, DEMO_TOON
from .blend import (MODES as BLEND_MODES, VTOONIFY_PRESETS, blend, blend_preview, feature_swap_preview, pinkney_weights,
                    preview_labels, swap_weights)
from .checkpoints import FORMATS, CheckpointError, ExportError, load
from .checkpoints.onnx import GRAPHS as ONNX_GRAPHS
from .cli_common import (CLIError, add_device_option, add_seeds_option, check_outdir, check_width, check_writable,
                         export_quietly, export_with_preview, load_generator, load_generator_pair, load_with_generator,
                         output_format)
from .cli_frames import add_parsers as add_frames_parsers
from .cli_photo import add_parsers as add_photo_parsers, read_photo
from .cli_video import add_parsers as add_video_parsers, demo_video
from .data import prepare_dataset
from .downloads import sha256_of
from .oneshot import (ALIGN_MODES, DEFAULT_PROJECT_STEPS, oneshot_preview, prepare_reference, random_discriminator,
                      train_oneshot)
from .summary import describe, format_summary

#----------------------------------------------------------------------------

def cmd_info(args):
    info = describe(load(args.path), args.path)
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0

def class_vector(G, class_idx):
    """--class for a conditional network -> one-hot c [1, c_dim]; None for an unconditional one."""
    if G.c_dim == 0:
        if class_idx is not None:
            raise CLIError(f'--class {class_idx}: this network is unconditional (c_dim 0)')
        return None
    if class_idx is None:
        raise CLIError(f'this network is conditional (c_dim {G.c_dim}): give --class 0..{G.c_dim - 1}')
    if not 0 <= class_idx < G.c_dim:
        raise CLIError(f'--class {class_idx} is out of range: this network has classes 0..{G.c_dim - 1}')
    c = torch.zeros([1, G.c_dim])
    c[0, class_idx] = 1
    return c

def cmd_generate(args):
    if args.batch_size < 1:
        raise CLIError(f'--batch-size {args.batch_size}: give 1 or more')
    check_outdir(args.outdir)
    G = load_generator(args.network, '--network', args.device)
    c = class_vector(G, args.class_idx)

    imgs = images.to_uint8(images.generate_images(G, args.seeds, truncation_psi=args.trunc, noise_mode=args.noise_mode,
                                                  c=c, batch_size=args.batch_size, device=args.device))
    for seed, img in zip(args.seeds, imgs):
        images.save_image(os.path.join(args.outdir, f'seed{seed:04d}.png'), img)
    images.save_grid(os.path.join(args.outdir, 'grid.png'), imgs)
    print(f'wrote {len(args.seeds)} images ({G.img_resolution}x{G.img_resolution}) and grid.png to {args.outdir}')
    return 0

#----------------------------------------------------------------------------

def check_preview(preview, out):
    """--preview (None, or a .png that can be written and is not --out)."""
    if preview is None:
        return
    if os.path.abspath(preview) == os.path.abspath(out):
        raise CLIError(f'{out}: --out and --preview are the same file')
    check_writable(preview, '--preview')
    if not preview.lower().endswith('.png'):
        raise CLIError(f'{preview}: --preview is written as PNG; give a .png file name')

def check_blend_mode(args):
    """--mode and the options that belong to it (sg.blend's rules), before anything is loaded or written;
    fills in --mapping, --level and the --low/--high defaults (the demo pair, in the order the mode wants)."""
    mode, own = args.mode, {'pinkney': 'low', 'vtoonify': 'high'}.get(args.mode)
    if args.level is not None and mode != 'pinkney':
        raise CLIError(f'--level {args.level}: belongs to --mode pinkney (Toonify\'s level 0/1), not --mode {mode}')
    if args.preset is not None and mode != 'vtoonify':
        raise CLIError(f'--preset {args.preset}: belongs to --mode vtoonify, not --mode {mode}')
    if mode == 'vtoonify':
        for option, value in (('--resolution', args.resolution), ('--width', args.width)):
            if value is not None:
                raise CLIError(f'{option} {value:g}: --mode vtoonify takes a --preset ({", ".join(VTOONIFY_PRESETS)}), '
                               f'not {option}')
    elif args.resolution is None:
        raise CLIError(f'--resolution: --mode {mode} needs a swap point (a block resolution)')
    if own is not None and args.mapping not in (None, own):
        raise CLIError(f'--mapping {args.mapping}: --mode {mode} takes the mapping network from {own}')
    if mode != 'default' and args.feature_swap:
        raise CLIError(f'--feature-swap: a preview of the default mode\'s feature maps, not of --mode {mode}')
    args.mapping = args.mapping or own or 'low'
    args.level = args.level or 0
    pair = (DEMO_TOON, DEMO_BASE) if mode == 'vtoonify' else (DEMO_BASE, DEMO_TOON)     # vtoonify: low = fine-tune
    args.low, args.high = args.low or str(pair[0]), args.high or str(pair[1])

def cmd_blend(args):
    # Everything that can be checked without the networks, first.
    fmt = output_format(args.out, args.format)
    check_writable(args.out, '--out')
    check_width(args.width)
    check_preview(args.preview, args.out)
    if args.feature_swap and args.preview is None:
        raise CLIError('--feature-swap changes the preview; give --preview PNG too')
    check_blend_mode(args)

    # Then the networks: both load, one architecture, a block resolution.
    low, high = load_generator_pair(args.low, '--low', args.high, '--high', args.device)
    try:
        if args.mode == 'pinkney':
            pinkney_weights(low, args.resolution, args.level, args.width)
        elif args.mode == 'default':
            swap_weights(low, args.resolution, args.width)
    except ValueError as e:
        raise CLIError(f'--resolution {args.resolution}: {e}') from None
    if args.preview is not None and low.c_dim > 0:
        raise CLIError(f'--preview: these networks are conditional (c_dim {low.c_dim}); the preview renders unconditional networks only')

    if args.mode != 'default':
        return _write_mode_blend(args, low, high, fmt)
    G = blend(low, high, args.resolution, width=args.width, mapping=args.mapping)
    meta = {'blend': {'low': os.path.basename(args.low), 'high': os.path.basename(args.high), 'resolution': args.resolution,
                      'width': args.width, 'mapping': args.mapping}}
    # The export checks that the format can hold the network before it writes; the preview comes after,
    # so a failed export leaves no preview behind, and a failed preview no export.
    if args.feature_swap:           # feature-map swaps are renders of the two networks, not a network to write
        render = lambda: feature_swap_preview(low, high, args.seeds, truncation_psi=args.trunc, mapping=args.mapping)
    else:
        render = lambda: blend_preview(low, high, args.seeds, truncation_psi=args.trunc, width=args.width, mapping=args.mapping)
    export_with_preview(args.out, G, fmt, meta, args.preview, render)
    how = 'hard swap' if not args.width else f'smooth, width {args.width:g}'
    print(f'wrote {args.out} ({fmt}): blocks <= {args.resolution} from {args.low}, above from {args.high} ({how}), '
          f'mapping from {args.mapping}')
    if args.preview is not None:
        swaps = low.synthesis.block_resolutions[:-1]
        what = 'feature swap after block' if args.feature_swap else 'swap at'
        swaps = low.synthesis.block_resolutions if args.feature_swap else swaps
        print(f'wrote {args.preview}: {len(args.seeds)} seeds x {len(swaps) + 2} columns '
              f'(low | {what} {", ".join(map(str, swaps))} | high)')
    return 0

def _write_mode_blend(args, low, high, fmt):
    """--mode pinkney | vtoonify: sg.blend(..., mode=) written with a meta saying how it was made."""
    options = (dict(resolution=args.resolution, level=args.level, width=args.width) if args.mode == 'pinkney'
               else dict(preset=args.preset or 'cartoon'))
    G = blend(low, high, mode=args.mode, **options)
    meta = {'blend': {'low': os.path.basename(args.low), 'high': os.path.basename(args.high), 'mode': args.mode,
                      **options, 'mapping': args.mapping}}
    render = lambda: blend_preview(low, high, args.seeds, truncation_psi=args.trunc, width=args.width, mode=args.mode,
                                   level=args.level)
    export_with_preview(args.out, G, fmt, meta, args.preview, render if args.preview is not None else None)
    how = (f'Toonify blend_models.py at {args.resolution}, level {args.level}' + (f', width {args.width:g}' if args.width else '')
           if args.mode == 'pinkney' else f'VToonify preset {options["preset"]}')
    print(f'wrote {args.out} ({fmt}): {how}; --low {args.low}, --high {args.high}, mapping from {args.mapping}')
    if args.preview is not None:
        labels = preview_labels(low, args.mode, args.level)
        print(f'wrote {args.preview}: {len(args.seeds)} seeds x {len(labels) + 2} columns (low | {", ".join(labels)} | high)')
    return 0

def cmd_demo(args):
    """The bundled pair: the preview over every swap resolution, the blend at --resolution as a .pkl, the scores
    and the swap video."""
    check_outdir(args.outdir)
    out, preview = os.path.join(args.outdir, 'demo-blend.pkl'), os.path.join(args.outdir, 'demo-preview.png')
    check_writable(out, 'the blend')
    base = load_generator(DEMO_BASE, 'the bundled demo base', args.device)
    toon = load_generator(DEMO_TOON, 'the bundled demo toon', args.device)
    try:
        swap_weights(base, args.resolution)
    except ValueError as e:
        raise CLIError(f'--resolution {args.resolution}: {e}') from None

    grid = blend_preview(base, toon, args.seeds, truncation_psi=args.trunc)      # in memory: nothing written yet
    export_with_preview(out, blend(base, toon, args.resolution), 'nvlabs', preview=preview, render=lambda: grid)
    swaps = base.synthesis.block_resolutions[:-1]
    print(f'wrote {preview}: {len(args.seeds)} seeds x {len(swaps) + 2} columns '
          f'(demo-base | swap at {", ".join(map(str, swaps))} | demo-toon)')
    print(f'wrote {out} (nvlabs): blocks <= {args.resolution} from demo-base (smiley faces), above from demo-toon '
          f'(animal faces), mapping from demo-base')
    _demo_scores(os.path.join(args.outdir, 'demo-scores'), args.device)
    demo_video(args.outdir, base, toon, args.seeds, args.trunc)
    return 0

def _demo_scores(stem, device):
    from .evaluate import demo_scores
    scores, paths = demo_scores(stem, device)
    print(f'wrote {paths[2]}: style and likeness of every swap point ({scores.features}, offline; scores in '
          f'{os.path.basename(paths[0])}); recommended: {scores.recommendation_text()}')

def cmd_evaluate(args):
    from .evaluate import SCORES_STEM, evaluate, run_inputs
    from .train.state import is_run_dir
    run = args.run if len(args.run) > 1 else args.run[0]
    base, data, outdir = args.base, args.data, args.outdir
    if isinstance(run, str) and is_run_dir(run):          # the run records its base and data; its scores go beside it
        try:
            recorded = run_inputs(run) if base is None or data is None else (base, data)
        except ValueError as e:
            raise CLIError(str(e)) from None
        base, data, outdir = base or recorded[0], data or recorded[1], outdir or run
    if base is None or data is None:
        raise CLIError('give --base and --data (a run directory as --run records both)')
    outdir = outdir or 'scores'
    check_outdir(outdir)
    try:
        scores = evaluate(base, run, data, features=args.features, seeds=args.seeds, truncation_psi=args.trunc,
                          min_likeness=args.min_likeness, device=args.device)
    except ValueError as e:
        raise CLIError(str(e)) from None
    os.makedirs(outdir, exist_ok=True)
    paths = scores.save(os.path.join(outdir, SCORES_STEM))
    print(scores.table())
    print(f'wrote {", ".join(map(str, paths))}')
    return 0

def cmd_convert(args):
    fmt = output_format(args.output, args.format)
    options = onnx_options(args, fmt)
    check_writable(args.output, 'OUT')
    ck = load(args.input)
    export_quietly(args.output, ck, fmt, **options)
    if fmt == 'onnx':
        G = 'G_ema' if ck.G_ema is not None else 'G'
        inputs = 'ws' if options['onnx_graph'] == 'synthesis' else 'z' if args.trunc is not None else 'z, truncation_psi'
        print(f'wrote {args.output} (onnx {options["onnx_graph"]} graph: {inputs} -> img; {G} from {args.input})')
    else:
        print(f'wrote {args.output} ({fmt}; {", ".join(ck.networks())} from {args.input})')
    return 0

def onnx_options(args, fmt):
    """sg.export's ONNX options from convert's flags; the flags are refused for any other format."""
    given = [flag for flag, value in (('--onnx-graph', args.onnx_graph), ('--trunc', args.trunc),
                                      ('--trunc-cutoff', args.trunc_cutoff)) if value is not None]
    if fmt != 'onnx':
        if given:
            raise CLIError(f'{", ".join(given)}: only for an ONNX file (OUT ending in .onnx, or --format onnx)')
        return {}
    return dict(onnx_graph=args.onnx_graph or 'generator', truncation_psi=args.trunc, truncation_cutoff=args.trunc_cutoff)

def _report_dir(args):
    if args.report != '':
        return args.report
    stem = os.path.normpath(args.src)
    return (stem[:-4] if stem.lower().endswith('.zip') else stem) + '_report'

def cmd_dataset(args):
    from . import dedupe
    if args.dest is None and args.report is None:
        raise CLIError('give DEST.zip to write a training zip, or --report [DIR] to see what SRC holds (or both)')
    if args.dest is not None and args.resolution is None:
        raise CLIError('DEST.zip needs --resolution RES')
    if args.dest is None and args.dedupe:
        raise CLIError('--dedupe leaves duplicates out of DEST.zip: give DEST.zip')
    if args.threshold is not None and not (args.report is not None or args.dedupe):
        raise CLIError('--threshold is for --report and --dedupe')
    if args.dest is not None:
        check_writable(args.dest, 'DEST')
    report = _report_dir(args) if args.report is not None else None
    if report is not None:
        check_outdir(report, '--report')
    scan = None
    if report is not None or args.dedupe:
        try:
            threshold = dedupe.DEFAULT_THRESHOLD if args.threshold is None else args.threshold
            scan = _printing_warnings(dedupe.scan, args.src, threshold=threshold, progress=sys.stderr.isatty())
        except ValueError as e:    # no images, none readable, a bad --threshold
            raise CLIError(str(e)) from None
        print(dedupe.summary(scan))
    if report is not None:
        paths = dedupe.write_report(scan, report)
        print(f'wrote {", ".join(paths)}')
    if args.dest is None:
        return 0
    exclude = scan.duplicates if args.dedupe else ()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            written, skipped = prepare_dataset(args.src, args.dest, args.resolution, progress=sys.stderr.isatty(),
                                               exclude=exclude)
    except ValueError as e:        # no images, none readable, a bad --resolution or DEST
        raise CLIError(str(e)) from None
    for w in caught:                # the unreadable files left out, as one line
        print(f'stylegan2-lib: warning: {w.message}', file=sys.stderr)
    print(f'wrote {args.dest}: {written} images ({args.resolution}x{args.resolution}) from {args.src}'
          + (f'; skipped {skipped} unreadable file{"s" if skipped != 1 else ""}' if skipped else '')
          + (f'; left out {len(exclude)} near-duplicate{"s" if len(exclude) != 1 else ""}' if exclude else ''))
    return 0

def cmd_doctor(args):
    from . import doctor
    print(doctor.render(doctor.collect(build=args.build)))
    return 0

def train_paths(args):
    """(data, outdir): as given, or for --resume RUN_DIR as the run records them; the data is checked first."""
    from .train.state import OPTIONS_FILE, STATE_FILE, is_run_dir, read_json
    if args.data is not None and not os.path.exists(args.data):
        raise CLIError(f'--data {args.data}: no such folder or zip')
    if args.resume is None or not is_run_dir(args.resume):
        if args.data is None or args.outdir is None:
            hint = (f'; {args.resume} is a folder but not a run to continue (no {STATE_FILE}: no snapshot yet)'
                    if args.resume is not None and os.path.isdir(args.resume) else '')
            raise CLIError(f'train: give --data DIR_OR_ZIP and --outdir DIR (only --resume RUN_DIR, a run directory, '
                           f'needs neither: it records both){hint}')
        return args.data, args.outdir
    try:
        recorded = read_json(os.path.join(args.resume, OPTIONS_FILE))
        data, outdir = recorded['data'], recorded['outdir']
    except (OSError, ValueError, KeyError) as e:
        raise CLIError(f'{args.resume}: cannot read the run\'s {OPTIONS_FILE} ({type(e).__name__}: {e})') from None
    if not os.path.exists(data):
        raise CLIError(f'{data}: no such folder or zip (the data {args.resume} was started on, recorded in its {OPTIONS_FILE})')
    for option, given, kept in (('--data', args.data, data), ('--outdir', args.outdir, outdir)):
        if given is not None and os.path.realpath(given) != os.path.realpath(kept):
            print(f'stylegan2-lib: warning: {option} {given} is not used: a resumed run keeps the one it records ({kept})',
                  file=sys.stderr)
    return data, outdir

def metric_list(text):
    names = tuple(n.strip() for n in text.split(',') if n.strip())
    unknown = sorted(set(names) - {'kid', 'fid', 'copy'})
    if unknown or not names:
        raise CLIError(f'--metrics {text!r}: give some of kid, fid, copy, comma-separated')
    return names

def cmd_train(args):
    from .train import TrainOptions, TrainingError, train     # torch.distributed etc. only when training
    args.data, args.outdir = train_paths(args)
    fields = {f for f in TrainOptions.__dataclass_fields__}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    try:
        opts = TrainOptions(**values)
        run_dir = train(opts)
    except (TrainingError, ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from None
    if os.environ.get('RANK', '0') == '0':      # under torchrun, once
        print(f'run finished: {run_dir}')
    return 0

#----------------------------------------------------------------------------
# One-shot stylisation (oneshot.py): every check that needs no training first, the file written whole at the end.

def _printing_warnings(fn, *args, **kwargs):
    """fn(...), each warning it raises printed as one `stylegan2-lib: warning:` line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = fn(*args, **kwargs)
    for w in caught:
        print(f'stylegan2-lib: warning: {w.message}', file=sys.stderr)
    return out

def _oneshot_discriminator(args, ck):
    """(D, what it is): --discriminator's, else the base file's, else a seeded random one (with a warning)."""
    if args.discriminator is not None:
        D = load(args.discriminator, device=args.device).D
        if D is None:
            raise CLIError(f'{args.discriminator}: --discriminator: the checkpoint holds no discriminator')
        return D, f'from {os.path.basename(args.discriminator)}'
    if ck.D is not None:
        return ck.D, f'from {os.path.basename(args.base)}'
    print(f'stylegan2-lib: warning: {args.base} holds no discriminator: a random one (seed {args.seed}) gives the '
          'features; a trained one (--discriminator FILE) guides better', file=sys.stderr)
    return random_discriminator(ck.generator, args.seed).to(args.device), f'random (seed {args.seed})'

def _oneshot_reference(path, photo, size, align):
    try:
        return _printing_warnings(prepare_reference, photo, size, align)
    except (ValueError, AlignmentUnavailable) as e:
        raise CLIError(f'{path}: {e}') from None

def cmd_oneshot(args):
    fmt = output_format(args.out, args.format)
    check_writable(args.out, '--out')
    check_preview(args.preview, args.out)
    if not 0 <= args.alpha <= 1:
        raise CLIError(f'--alpha {args.alpha:g}: the style strength is in [0, 1]')
    if args.steps < 1 or args.project_steps < 1:
        raise CLIError('--steps and --project-steps must be 1 or more')
    photos = [read_photo(path) for path in args.style]           # an unreadable file is named before anything loads
    ck = load_with_generator(args.base, '--base', args.device)
    G = ck.generator
    if G.c_dim:
        raise CLIError(f'{args.base}: one-shot training needs an unconditional generator (this one has c_dim {G.c_dim})')
    D, d_source = _oneshot_discriminator(args, ck)
    refs = [_oneshot_reference(p, photo, G.img_resolution, args.align) for p, photo in zip(args.style, photos)]
    try:
        r = train_oneshot(G, D, [a for a, _ in refs], steps=args.steps, alpha=args.alpha, preserve_color=args.preserve_color,
                          seed=args.seed, align='off', project_steps=args.project_steps, device=args.device)
    except ValueError as e:                                     # e.g. a discriminator of another size
        raise CLIError(str(e)) from None
    meta = r.meta
    meta['oneshot'].update(base=os.path.basename(args.base), base_sha256=sha256_of(args.base), discriminator=d_source)
    for record, path, (_, how) in zip(meta['oneshot']['references'], args.style, refs):
        record.update(name=os.path.basename(path), file_sha256=sha256_of(path), prepared=how)
    export_with_preview(args.out, r.G, fmt, meta, args.preview, lambda: oneshot_preview(G, r, args.seeds, args.trunc))
    print(f'wrote {args.out} ({fmt}): {args.base} fine-tuned on {len(refs)} reference(s) ({", ".join(h for _, h in refs)}), '
          f'{args.steps} steps, alpha {args.alpha:g}{", colours preserved" if args.preserve_color else ""}; loss '
          f'{r.loss[0]:.4g} -> {r.loss[-1]:.4g}; projection {r.seconds["projection"]:.1f} s, training '
          f'{r.seconds["training"]:.1f} s on {args.device}')
    if args.preview is not None:
        print(f'wrote {args.preview}: references and their inversions, then {len(args.seeds)} seeds x '
              f'(base | swap at {", ".join(map(str, G.synthesis.block_resolutions[:-1]))} | one-shot network)')
    return 0

def add_oneshot_parser(sub):
    p = sub.add_parser('oneshot', help='a stylizer from 1-10 style images in a few hundred steps (JoJoGAN)',
                       description='One-shot stylisation (JoJoGAN, Chong & Forsyth 2022): each style image is aligned '
                                   '(a real face) or centre-cropped (a drawn one), inverted into W+ of BASE, and BASE\'s '
                                   'synthesis network is fine-tuned so that the reference\'s latents with their fine '
                                   'layers randomised still draw the reference, compared in the frozen discriminator\'s '
                                   'features. The result is a generator like a fine-tuned snapshot: blend it, open it '
                                   'in the explorer, stylize with it. Its file records what it was made from.')
    a = p.add_argument
    a('--base', required=True, metavar='PATH', help='the generator to fine-tune (its discriminator gives the features)')
    a('--style', required=True, nargs='+', metavar='IMG', help='1-10 style images (faces)')
    a('--out', required=True, metavar='PATH', help='the one-shot generator, as G_ema (.safetensors keeps the recipe)')
    a('--format', choices=FORMATS, default=None, help='default: from the extension of --out')
    a('--steps', type=int, default=300, help='fine-tuning steps (default: 300)')
    a('--alpha', type=float, default=1.0, help='style strength in [0, 1] (default: 1)')
    a('--preserve-color', action='store_true', help="keep the samples' colours (randomise structure and texture only)")
    a('--align', choices=ALIGN_MODES, default='auto',
      help='auto (default): FFHQ alignment where dlib finds a face, else where the drawn-face detector finds one '
           '(the anime extra), else the centre crop; face / anime: that alignment or an error; '
           "centre: the centre crop; off: images as they are, at the generator's size")
    a('--project-steps', type=int, default=DEFAULT_PROJECT_STEPS,
      help=f'W+ projection steps per style image (default: {DEFAULT_PROJECT_STEPS})')
    a('--discriminator', metavar='PATH', help='take the discriminator from this file (default: the base\'s; a random '
                                             'one, with a warning, where neither has one)')
    a('--preview', default=None, metavar='PNG', help='also write a preview: references, inversions, blends per seed')
    add_seeds_option(p, '0-3', 'preview rows')
    a('--trunc', type=float, default=0.7, metavar='PSI', help='preview truncation psi (default: 0.7; 1 = none)')
    a('--seed', type=int, default=0, help='random seed of the training pairs and the projection (default: 0)')
    add_device_option(p)
    p.set_defaults(func=cmd_oneshot)

#----------------------------------------------------------------------------

def add_train_parser(sub):
    p = sub.add_parser('train', help='fine-tune a generator (or train one from scratch) with snapshots',
                       description='StyleGAN2-ADA training (stylegan2-ada-pytorch paper256 transfer config): snapshots '
                                   'every --snap kimg, named with their epoch, each with a sample grid; --resume RUN_DIR '
                                   'continues a run where its last snapshot left it. Several GPUs: '
                                   '`torchrun --nproc_per_node N -m stylegan2_lib train ...` (one process per GPU, '
                                   '--batch split over them).')
    a = p.add_argument
    a('--data', metavar='DIR_OR_ZIP', help='training images: a folder or a zip (see `dataset`); not needed with '
                                          '--resume RUN_DIR, which records it')
    a('--outdir', metavar='DIR', help='runs are created inside it as NNNNN-<data name>; not needed with --resume RUN_DIR')
    a('--resume', metavar='FILE_OR_RUN', help='network to fine-tune (any supported format) or a run directory to continue')
    a('--kimg', type=float, help='training length in thousands of images (default: 40)')
    a('--snap', type=float, help='snapshot interval in kimg (default: 4)')
    a('--snap-epochs', type=int, help='also snapshot every N epochs')
    a('--tick', type=float, help='progress / metrics interval in kimg (default: 1)')
    a('--batch', type=int, help='batch size (default: 8); under torchrun the global batch, split evenly over the processes')
    a('--gamma', type=float, help='R1 weight (default: 0.0002 * resolution^2 / batch)')
    a('--aug', choices=['ada', 'fixed', 'none'], help='augmentation: adaptive p, fixed p, none (default: ada)')
    a('--augpipe', choices=['bgc', 'bg', 'b', 'g', 'c'], help="augmentation groups (default: bgc)")
    a('--target', type=float, help='ADA target for E[sign(D(real))] (default: 0.6)')
    a('--p', type=float, help='initial (ada) or fixed augmentation probability (default: 0)')
    a('--freezed', type=int, help='FreezeD: freeze the first K discriminator blocks from the image side')
    a('--freeze-g', type=int, metavar='RES', help='freeze the synthesis blocks at resolutions <= RES')
    a('--freeze-mapping', action='store_true', default=None, help="freeze G's mapping network")
    a('--mirror', action='store_true', default=None, help='x-flip the dataset (doubles it)')
    a('--lr', type=float, help='Adam learning rate (default: 0.0025)')
    a('--seed', type=int, help='random seed (default: 0)')
    a('--workers', type=int, help='data loader processes (default: 2)')
    add_device_option(p)
    a('--precision', choices=['fp16', 'bf16', 'fp32'],
      help="arithmetic: fp16 = on CUDA the network's float16 blocks and conv_clamp as loaded, or NVlabs's training "
           'setting (4 blocks, conv_clamp 256) for a network with none; on the CPU float32 (default); '
           'bf16 = bfloat16 autocast (CUDA: Ampere or newer; CPU: AVX512-BF16 or AMX, about 2x faster there); '
           'fp32 = float32 everywhere. The run prints which blocks run in which dtype')
    a('--num-fp16-res', type=int, metavar='N', help='with --precision fp16 on CUDA: run the N highest-resolution blocks '
                                                    "in float16 (default: the network's, or 4 if it has none)")
    a('--tf32', action='store_true', default=None, help='TF32 tensor cores for float32 matmuls and convolutions on CUDA '
                                                        '(faster, 10-bit mantissa; default off, as NVlabs)')
    a('--metrics', type=metric_list, metavar='kid,fid,copy',
      help='scores at every snapshot against the training images, in the log and the snapshot: kid, fid, copy '
           '(the copying score), comma-separated')
    a('--metrics-images', type=int, metavar='N', help='images generated per snapshot for --metrics (default: 500)')
    a('--metrics-features', choices=['auto', 'inception', 'discriminator', 'pixels'],
      help="features for --metrics: auto (default: Inception, else the --resume network's discriminator, else pixels)")
    a('--resolution', type=int, help='from scratch only: image size')
    a('--z-dim', type=int, help='from scratch only (default 512)')
    a('--w-dim', type=int, help='from scratch only (default 512)')
    a('--mapping-layers', type=int, help='from scratch only (default 8)')
    a('--channel-base', type=int, help='from scratch only (default 32768)')
    a('--channel-max', type=int, help='from scratch only (default 512)')
    p.set_defaults(func=cmd_train)

def build_parser():
    parser = argparse.ArgumentParser(prog='stylegan2-lib', description='StyleGAN2 face stylizer: inspect, sample, blend and convert checkpoints; prepare data and '
                                     'fine-tune; align, project and stylize photos.')
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
    add_seeds_option(p, '0-7', 'seeds')
    p.add_argument('--trunc', type=float, default=0.7, metavar='PSI', help='truncation psi (default: 0.7; 1 = none)')
    p.add_argument('--noise-mode', choices=['const', 'random', 'none'], default='const', help='default: const')
    p.add_argument('--class', dest='class_idx', type=int, metavar='IDX', help='class index, for conditional networks')
    p.add_argument('--outdir', required=True, metavar='DIR', help='where to write the PNGs (created if needed)')
    add_device_option(p)
    p.add_argument('--batch-size', type=int, default=8, metavar='N', help='images per forward pass (default: 8)')
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser('blend', help='low-resolution layers of one generator, high-resolution layers of another',
                       description='Layer-swapping blend (docs/blending.md): synthesis blocks at resolutions <= RES from '
                                   '--low, blocks above from --high, the mapping network from --mapping; written with the '
                                   'format of --out. With --preview, also a PNG grid: one row per seed, columns '
                                   'low | swap at every resolution | high.')
    p.add_argument('--low', default=None, metavar='PATH',
                   help='generator for the blocks <= RES (default: the bundled demo-base, smiley faces; with --mode '
                        'vtoonify, the fine-tune: demo-toon)')
    p.add_argument('--high', default=None, metavar='PATH',
                   help='generator for the blocks above RES (default: the bundled demo-toon, animal faces; with --mode '
                        'vtoonify, the FFHQ base: demo-base)')
    p.add_argument('--resolution', type=int, default=None, metavar='RES',
                   help='swap point: a block resolution (4, 8, ..., the image size), or 0 for every block from --high '
                        '(needed by --mode default and pinkney)')
    p.add_argument('--width', type=float, default=None, metavar='W', help='smooth blend of this width (default: hard swap)')
    p.add_argument('--mapping', choices=['low', 'high'], default=None,
                   help='whose mapping network and w_avg (default: low; pinkney takes low, vtoonify high)')
    p.add_argument('--mode', choices=BLEND_MODES, default='default',
                   help="blend recipe (docs/blending.md, 'Blend modes'): default; pinkney = Toonify's blend_models.py "
                        '(--resolution, --level, --width); vtoonify = VToonify-T (--preset; --low the fine-tune, --high the base)')
    p.add_argument('--level', type=int, choices=[0, 1], default=None,
                   help="--mode pinkney: Toonify's level, the swap point's layer in block RES: 0 = Const/Conv0_up, 1 = Conv1/ToRGB (default: 0)")
    p.add_argument('--preset', choices=sorted(VTOONIFY_PRESETS), default=None,
                   help='--mode vtoonify: per-layer weights of train_vtoonify_t.py (default: cartoon)')
    p.add_argument('--out', required=True, metavar='PATH', help='the blended generator, as G_ema (.pkl, .pt, .safetensors)')
    p.add_argument('--format', choices=FORMATS, default=None, help='default: from the extension of --out')
    p.add_argument('--preview', default=None, metavar='PNG', help='also write a preview grid here')
    p.add_argument('--feature-swap', action='store_true',
                   help='preview columns are feature-map swaps (Cartoon-StyleGAN: --high renders, with the feature map '
                        'after block r taken from --low, one w) instead of weight swaps; --out is still the weight blend')
    add_seeds_option(p, '0-5', 'preview rows')
    p.add_argument('--trunc', type=float, default=0.7, metavar='PSI', help='preview truncation psi (default: 0.7; 1 = none)')
    add_device_option(p)
    p.set_defaults(func=cmd_blend)

    p = sub.add_parser('demo', help='blend the bundled demo pair: preview grid, blended checkpoint, scores, swap video',
                       description='Blend the bundled 32x32 demo pair (demo-base: smiley-face emoji, trained from scratch; '
                                   'demo-toon: the same generator fine-tuned on animal-face emoji) and write '
                                   'OUTDIR/demo-preview.png (one row per seed, columns demo-base | swap at 4, 8, 16 | '
                                   'demo-toon), OUTDIR/demo-blend.pkl (the blend at --resolution, NVlabs-readable), '
                                   'OUTDIR/demo-scores.png/.json/.txt and OUTDIR/demo-swap.mp4 (32 frames: the swap '
                                   'point sliding from demo-base to demo-toon, for the first four seeds; .gif where '
                                   'imageio-ffmpeg is missing).')
    p.add_argument('--outdir', default='out', metavar='DIR', help='where to write the files (default: out)')
    add_seeds_option(p, '0-5', 'preview rows')
    p.add_argument('--trunc', type=float, default=0.7, metavar='PSI', help='preview truncation psi (default: 0.7; 1 = none)')
    p.add_argument('--resolution', type=int, default=DEMO_SWAP, metavar='RES',
                   help=f'swap resolution of demo-blend.pkl (default: {DEMO_SWAP})')
    add_device_option(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser('evaluate', help='score every snapshot x swap point: style, likeness to the base, copying',
                       description='For every snapshot of RUN (a training run directory, or checkpoint files) and every '
                                   'swap point: the style distance (KID of the blend\'s images to the style images), the '
                                   'likeness to the base (face identity where faces are found, else structural) and '
                                   'whether the snapshot copies its training images. Writes OUTDIR/scores.json, '
                                   'scores.txt and scores.png (heat map) and prints the recommended pair '
                                   '(docs/scores.md says how to read them).')
    p.add_argument('--base', metavar='FILE', help='the real-face generator the snapshots were fine-tuned from '
                                                 '(default for a run directory: the file it was fine-tuned from)')
    p.add_argument('--run', required=True, nargs='+', metavar='RUN_DIR_OR_FILES', help='a run directory, or snapshot files')
    p.add_argument('--data', metavar='DIR_OR_ZIP', help="the style (training) images (default for a run directory: its data)")
    p.add_argument('--features', choices=['auto', 'inception', 'discriminator', 'pixels'], default='auto',
                   help="auto (default): Inception (standard FID weights, downloaded once) when possible, else the base's "
                        'discriminator, else small thumbnails (both offline; not comparable with published FID/KID)')
    add_seeds_option(p, '0-63', 'latents every blend renders')
    p.add_argument('--trunc', type=float, default=1.0, metavar='PSI', help='truncation psi (default: 1 = none)')
    p.add_argument('--min-likeness', type=float, default=None, metavar='L',
                   help='a recommended blend keeps at least this likeness to the base (default: 0.5 measured on faces, '
                        '0.4 structurally)')
    p.add_argument('--outdir', default=None, metavar='DIR',
                   help='where to write scores.json/.txt/.png (default: the run directory, where the explorer finds '
                        'them; else ./scores)')
    add_device_option(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser('convert', help='write a checkpoint in another format (or its generator as ONNX)',
                       description='Load any supported checkpoint and write it as an NVlabs .pkl (TF-StyleGAN2 layout), '
                                   'a rosinality .pt, a stylegan2_lib .safetensors file, or its generator as an ONNX '
                                   'file for onnxruntime (docs/onnx.md; needs the onnx extra).')
    p.add_argument('input', metavar='IN', help='checkpoint file (.pkl, .pt, .safetensors)')
    p.add_argument('output', metavar='OUT', help='file to write (.pkl, .pt, .pth, .safetensors, .onnx)')
    p.add_argument('--format', choices=FORMATS, default=None, help='default: from the extension of OUT')
    p.add_argument('--onnx-graph', choices=ONNX_GRAPHS, default=None,
                   help='ONNX only: generator (inputs z and truncation_psi -> image; the default) or synthesis '
                        '(ws -> image); constant noise, any batch size')
    p.add_argument('--trunc', type=float, default=None, metavar='PSI',
                   help='ONNX generator only: fix truncation psi in the graph (then z is its only input); '
                        'default: truncation_psi is an input')
    p.add_argument('--trunc-cutoff', type=int, default=None, metavar='ROWS',
                   help='ONNX generator only: truncate only the first ROWS rows of ws (default: all)')
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser('dataset', help='prepare a training zip from a folder or zip of images',
                       description='Read every image of SRC (a folder, searched recursively, or a zip; .jpg .jpeg .png .webp '
                                   '.bmp), apply EXIF orientation, convert to RGB (transparency onto white), centre-crop '
                                   'to a square, resize to RES and write DEST.zip: 00000000.png, ... and dataset.json. '
                                   'Unreadable files are skipped and listed in one warning. --report writes what SRC holds '
                                   '(counts, source sizes, unreadable files, near-duplicate groups by perceptual hash, '
                                   'mirrored copies included) and contact sheets; nothing is ever deleted.')
    p.add_argument('src', metavar='SRC', help='folder or .zip of images')
    p.add_argument('dest', metavar='DEST.zip', nargs='?', default=None,
                   help='zip file to write (replaced only once complete); optional with --report')
    p.add_argument('--resolution', type=int, default=None, metavar='RES', help='image size, a power of two (e.g. 256); needed with DEST.zip')
    p.add_argument('--report', nargs='?', const='', default=None, metavar='DIR',
                   help='write report.json, contact_sheet.png and duplicate_groups.png into DIR (default: SRC_report)')
    p.add_argument('--dedupe', action='store_true',
                   help='leave near-duplicates out of DEST.zip, keeping one per group (the largest, then the first)')
    p.add_argument('--threshold', type=int, default=None, metavar='BITS',
                   help='near-duplicate when perceptual hashes differ in at most BITS of 64 (default 10)')
    p.set_defaults(func=cmd_dataset)
    add_train_parser(sub)
    add_oneshot_parser(sub)
    add_photo_parsers(sub)
    add_video_parsers(sub)
    add_frames_parsers(sub)

    p = sub.add_parser('doctor', help='what this machine has (versions, GPU, kernel build): paste it into a bug report',
                       description='Print the library version, Python, PyTorch and its CUDA, the GPU (compute capability, '
                                   'memory, bf16), ninja / nvcc / CUDA_HOME, whether the CUDA kernels can build (and why '
                                   'not), dlib, ipywidgets, gdown and whether this is Colab. "!!" marks a problem.')
    p.add_argument('--build', action='store_true', help='also build the CUDA kernels now and report the time or the error')
    p.set_defaults(func=cmd_doctor)
    return parser

def main(argv=None):
    try:
        args = build_parser().parse_args(argv)         # --seeds and --device are checked here (cli_common)
        return args.func(args)
    except (CheckpointError, ExportError, CLIError) as e:
        message = str(e)
    except OSError as e:      # e.g. an output folder that cannot be written
        message = f'{e.filename}: {e.strerror}' if e.filename else str(e)
    except KeyboardInterrupt:
        message = 'interrupted'
    print(f'stylegan2-lib: error: {message}', file=sys.stderr)
    return 1

if __name__ == '__main__':
    sys.exit(main())
