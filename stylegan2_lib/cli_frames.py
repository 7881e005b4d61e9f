"""`stylegan2-lib frames VIDEO... DEST` (frames.py): frames sampled from film clips; cli.py adds it.

Every clip is opened and checked before anything is written, and the frames appear in DEST only once every
clip has been read (frames.sample_frames), so a bad clip leaves DEST as it was.
"""

import os
import sys

from . import anime_detect, frames
from .align import ALIGN_MODES
from .cli_common import CLIError, check_outdir, face_size
from .cli_photo import align_and_report

#----------------------------------------------------------------------------

def every_seconds(text):
    """--every '0.5s' / '0.5' -> 0.5 seconds (frames.parse_every); refused as one line when not > 0."""
    try:
        return frames.parse_every(text)
    except ValueError as e:
        raise CLIError(f'--every {e}') from None

def cmd_frames(args):
    check_outdir(args.dest, 'DEST')
    if args.max is not None and args.max < 1:
        raise CLIError(f'--max {args.max}: give 1 frame or more per clip')
    if args.align is None and (args.size is not None or args.allow_upscale):
        raise CLIError('--size and --allow-upscale are for --align')
    why = anime_detect.available() if args.align == 'anime' else ''
    if why:
        raise CLIError(why)                               # before decoding anything
    frames_dir = os.path.join(args.dest, 'frames') if args.align else args.dest
    try:
        result = frames.sample_frames(args.videos, frames_dir, every=args.every, max_frames=args.max,
                                      progress=sys.stderr.isatty())
    except (ValueError, frames.VideoSupportMissing) as e:
        raise CLIError(str(e)) from None
    for clip in result.clips:
        length = f'{clip.duration:.1f} s' if clip.duration else 'length unknown'
        print(f'{clip.video}: {clip.count} frames ({length} at {clip.fps:g} fps, one every {args.every:g} s'
              + (f', at most {args.max}' if args.max is not None else '') + ')')
    print(f'wrote {len(result.paths)} frames from {len(result.clips)} clip{"s" * (len(result.clips) > 1)} '
          f'to {os.fspath(frames_dir)}')
    if args.align:                  # the frames' faces, as `stylegan2-lib align FRAMES DEST/faces` cuts them
        try:
            return align_and_report(frames_dir, os.path.join(args.dest, 'faces'), args.size or 256, args.align,
                                    args.allow_upscale)
        except CLIError as e:
            raise CLIError(f'{e} (the frames stay in {frames_dir})') from None
    return 0

#----------------------------------------------------------------------------

def add_parsers(sub):
    p = sub.add_parser('frames', help='sample frames from film clips into a folder of PNGs (for dataset / align)',
                       description='Decode each VIDEO (any format ffmpeg reads; the `video` extra: imageio-ffmpeg) '
                                   'and keep the first frame at or after every --every seconds, at most --max per '
                                   'clip, as DEST/<clip>_<seconds>.png (e.g. clip_000012.500s.png). Every clip is '
                                   'checked first and the frames are moved into DEST only once all are read: a '
                                   'missing, unreadable or truncated clip leaves DEST as it was. DEST is a plain '
                                   'folder of frames for `stylegan2-lib align` or `stylegan2-lib dataset`; with '
                                   '--align, the frames go to DEST/frames and their faces, cut out as `align` '
                                   'does, to DEST/faces.')
    p.add_argument('videos', nargs='+', metavar='VIDEO', help='film clips (.mp4, .mkv, .mov, .webm, ...)')
    p.add_argument('dest', metavar='DEST', help='folder the PNGs are written to (created when missing)')
    p.add_argument('--every', type=every_seconds, default=0.5, metavar='SECONDS',
                   help="one frame every SECONDS, e.g. 0.5 or '0.5s' (default: 0.5)")
    p.add_argument('--max', type=int, default=None, metavar='N', help='at most N frames per clip (default: no cap)')
    p.add_argument('--align', choices=ALIGN_MODES, default=None,
                   help='then cut the faces out of the frames as `align` does (photo: real faces, dlib; anime: drawn '
                        'faces; centre: the centred square): frames in DEST/frames, faces in DEST/faces')
    p.add_argument('--size', type=face_size, default=None, help='with --align: the faces\' size (default: 256)')
    p.add_argument('--allow-upscale', action='store_true', help='with --align: keep faces smaller than --size')
    p.set_defaults(func=cmd_frames)
