"""Data preparation (issue 19), each path against a reference in one run:

    python benchmarks/data_speed.py            # near-duplicate grouping, drawn-face alignment, frame sampling
    python benchmarks/data_speed.py --quick

1. Near-duplicate grouping (dedupe.group_duplicates: distances in chunks, groups joined row by row) against the
   reference that lists every near pair first and joins them after (what the first version did): seconds and
   peak traced memory, for N frames of one static shot (every pair near: the worst case) and N distinct images.
2. Drawn-face alignment of the two drawings the library ships (AnimeFace's detector + the FFHQ recipe), against
   the photo path (dlib's detector and landmarks + the same recipe) on matplotlib's Grace Hopper photo: seconds
   per image.
3. Frame sampling (frames.sample_frames, one frame every 0.5 s written as PNG) against decoding the same clip
   with imageio-ffmpeg and keeping nothing: seconds per clip second.
Measurements to report, not tests.
"""

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stylegan2_lib import align, dedupe, samples  # noqa: E402


def listed_pairs_groups(h, m, threshold):
    """The reference: every near pair listed (chunked distances), then a Python union-find over the list."""
    hp, mp = (np.packbits(a, axis=1) for a in (h, m))
    pairs = []
    for start, dist in dedupe._distances(hp, mp):
        i, j = np.nonzero(dist <= threshold)
        pairs.extend(zip((start + i).tolist(), j.tolist()))
    parent = list(range(len(h)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for i, j in pairs:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    groups = {}
    for i in range(len(h)):
        groups.setdefault(root(i), []).append(i)
    return [g for _, g in sorted(groups.items()) if len(g) > 1]


def measure(fn, *args):
    tracemalloc.start()
    t = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak / 2 ** 20


def grouping(sizes):
    print('near-duplicate grouping: seconds, peak traced MiB (reference: every pair listed first)')
    print(f'{"images":>8} {"set":<12} {"reference":>18} {"row by row":>18} {"speed-up":>9} {"memory":>8}')
    rng = np.random.default_rng(0)
    for n in sizes:
        shot = np.zeros((n, 64), bool)
        shot[:, :32] = True
        for i in range(n):
            shot[i, rng.choice(64, i % 4, replace=False)] ^= True
        distinct = rng.random((n, 64)) < 0.5
        for name, h in (('one shot', shot), ('distinct', distinct)):
            m = h[:, ::-1].copy()
            want, t_ref, mem_ref = measure(listed_pairs_groups, h, m, 10)
            got, t_new, mem_new = measure(dedupe.group_duplicates, h, m, 10)
            assert got == want
            print(f'{n:>8} {name:<12} {t_ref:>8.2f} s {mem_ref:>6.0f} MiB {t_new:>8.2f} s {mem_new:>6.0f} MiB '
                  f'{t_ref / t_new:>8.1f}x {mem_ref / max(mem_new, 1e-3):>7.0f}x')


def alignment(repeats):
    from stylegan2_lib.assets import DRAWN_FACES
    drawings = [align.read_photo(p) for p in DRAWN_FACES]
    photo = samples.grace_hopper()

    def per_image(fn, imgs):
        fn(imgs[0])                                             # loads the models / the library
        t = time.perf_counter()
        for _ in range(repeats):
            for img in imgs:
                fn(img)
        return (time.perf_counter() - t) / (repeats * len(imgs))
    drawn = per_image(lambda img: align.align_drawn_face_with_transform(img, 256), drawings)
    try:
        real = per_image(lambda img: align.align_face_with_transform(img, 256), [photo])
    except align.AlignmentUnavailable as e:
        real = None
        print(f'photo alignment unavailable: {e}')
    print(f'alignment at 256: drawn faces {drawn * 1000:.0f} ms per image ({", ".join(f"{d.size[0]}x{d.size[1]}" for d in drawings)})'
          + (f'; photo path {real * 1000:.0f} ms (Grace Hopper 512x600): drawn / photo {drawn / real:.2f}x' if real else ''))


def sampling(seconds_per_shot):
    import imageio_ffmpeg
    from stylegan2_lib import frames
    with tempfile.TemporaryDirectory() as tmp:
        clip = samples.drawn_clip(Path(tmp) / 'clip.mp4', fps=25, seconds_per_shot=seconds_per_shot)
        duration = 2 * seconds_per_shot
        t = time.perf_counter()
        for _ in imageio_ffmpeg.read_frames(str(clip)):
            pass
        decode = time.perf_counter() - t
        t = time.perf_counter()
        result = frames.sample_frames([clip], Path(tmp) / 'frames', every=0.5, progress=False)
        sample = time.perf_counter() - t
    print(f'frame sampling of a {duration:g} s 320x320 25 fps clip: decode only {decode / duration * 1000:.0f} ms per clip '
          f'second; sample_frames (every 0.5 s, {len(result.paths)} PNGs) {sample / duration * 1000:.0f} ms: '
          f'{sample / decode:.2f}x')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true')
    args = ap.parse_args()
    grouping([1000] if args.quick else [1000, 3000])
    alignment(1 if args.quick else 3)
    sampling(2.0 if args.quick else 10.0)


if __name__ == '__main__':
    main()
