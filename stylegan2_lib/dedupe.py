"""Near-duplicate images in a training set, and a report of what the set holds.

Near-identical images (consecutive film frames, re-uploads, re-encodes, mirrored copies) make a small set
look larger than it is and speed up overfitting. Each image gets a 64-bit DCT perceptual hash (pHash, as
Zauner 2010 and the `imagehash` package compute it: 32x32 grayscale, 2-D DCT-II, the 8x8 lowest
frequencies thresholded at their median) of its square thumbnail (`data.load_image`: EXIF orientation,
RGB, centre crop), and a second hash of the same thumbnail mirrored left-right. Two images are duplicates
when their hashes, or one's and the other's mirrored hash, differ in at most `threshold` bits, or in at most
twice that while their 32x32 luminances differ by at most PIXEL_MAD grey levels on average (drawings on flat
backgrounds, whose hashes are unstable); groups are the connected components of that relation. One image is kept per group: the largest source (pixels),
ties going to the first in sorted order.

Nothing here deletes a file: `scan` reads, `write_report` writes a report folder (report.json, a contact
sheet of the images and one of the duplicate groups), and `prepare_dataset(..., exclude=...)` leaves the
duplicates out of a prepared zip. A folder that `align_folder` made also reports its alignment.json: photos
with and without a detected face, faces left out as too small.
"""

import io
import json
import os
import warnings
from collections import Counter
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from .align import read_alignment_record, read_detection_scores
from .data import _Source, _EmptyFile, _reason, _all_bad_error, to_rgb, load_image
from .files import atomic_write_bytes
from .images import make_grid, save_image

HASH_SIZE = 8            # 8x8 DCT coefficients -> 64-bit hash
HASH_INPUT = 32          # the grayscale image the DCT is taken of
THUMB = 64               # thumbnail side: hashed, and shown in the contact sheets
DEFAULT_THRESHOLD = 10   # bits of 64; distinct photos differ in ~32, re-encodes/1-2 px shifts in a few
PIXEL_MAD = 8.0          # grey levels (of 255): mean difference of two 32x32 luminances still "the same picture"
MAX_SHEET = 400          # images shown in the contact sheet (the first ones)
MAX_GROUPS = 50          # duplicate groups shown in the groups sheet (the largest ones)

#----------------------------------------------------------------------------
# DCT perceptual hash (pHash): DCT-II of the 32x32 luminance, top-left 8x8 block, > its median.

def _dct_matrix(n):
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing='ij')
    return np.cos(np.pi * (2 * i + 1) * k / (2 * n))           # [k, i]: unnormalised DCT-II basis

_DCT = _dct_matrix(HASH_INPUT)

def gray_input(img_uint8):
    """[H, W, 3] uint8 -> [32, 32] float64: the luminance pHash takes the DCT of."""
    gray = Image.fromarray(np.asarray(img_uint8, dtype=np.uint8)).convert('L')
    return np.asarray(gray.resize((HASH_INPUT, HASH_INPUT), Image.LANCZOS), dtype=np.float64)

def phash(img_uint8):
    """[H, W, 3] uint8 -> 64 bools (pHash bits, row-major over the 8x8 lowest DCT frequencies)."""
    low = (_DCT @ gray_input(img_uint8) @ _DCT.T)[:HASH_SIZE, :HASH_SIZE].ravel()
    return low > np.median(low)

def hash_pair(img_uint8):
    """(hash, hash of the left-right mirror) of one image, each 64 bools."""
    img = np.asarray(img_uint8)
    return phash(img), phash(np.ascontiguousarray(img[:, ::-1]))

#----------------------------------------------------------------------------

_POPCOUNT = np.array([bin(i).count('1') for i in range(256)], dtype=np.uint8)
_CHUNK = 256             # rows compared at once: memory ~ _CHUNK * N * 8 bytes, not N * N * 64

def _distances(h, m):
    """Chunks (start, [C, N] int32): hash distance of rows start..start+C-1 to every image, each the smaller
    of hamming(h_i, h_j) and hamming(h_i, m_j); memory ~ _CHUNK * N * 8 bytes at a time."""
    for start in range(0, len(h), _CHUNK):
        rows = h[start:start + _CHUNK, None, :]
        yield start, np.minimum(_POPCOUNT[rows ^ h[None]].sum(-1, dtype=np.int32),
                                _POPCOUNT[rows ^ m[None]].sum(-1, dtype=np.int32))

def _roots(parent, x):
    """Union-find roots of the indices x, by pointer jumping (vectorised); compresses their paths. Each pass
    climbs one level for all of x; _join points every root it meets straight at the smallest, and every index
    looked up is pointed at its root, so chains stay short (3000 and 10000 frames of one shot: about 1 s and 10 s)."""
    r = parent[x]
    while True:
        up = parent[r]
        if np.array_equal(up, r):
            parent[x] = r
            return r
        r = up

def _join(parent, members):
    """Union the sets of `members` (an index array): every root points at the smallest of them."""
    roots = _roots(parent, members)
    parent[roots] = roots.min()

def _mad(grays, i, js):
    """Mean absolute difference of image i's 32x32 luminance to each of js's, and to their mirrors: the smaller."""
    d = np.abs(grays[js] - grays[i]).mean(axis=(1, 2))
    return np.minimum(d, np.abs(grays[js][:, :, ::-1] - grays[i]).mean(axis=(1, 2)))

def group_duplicates(hashes, mirrored, threshold=DEFAULT_THRESHOLD, grays=None):
    """[N, 64] bool hashes and mirrored hashes -> list of groups (sorted index lists, size >= 2), in order
    of their first member. i ~ j when hamming(h_i, h_j), hamming(h_i, m_j) or hamming(m_i, h_j) <= threshold;
    with `grays` ([N, 32, 32], each image's gray_input), also when that distance is at most twice the
    threshold and the two luminances differ by at most PIXEL_MAD grey levels on average (mirrored or not).
    The second rule is for drawings on flat backgrounds: most of their low DCT coefficients lie near the
    median, so a pan of a pixel or two flips many hash bits (14-16 of 64 between consecutive frames of a
    drawn clip whose pictures differ by 4 grey levels on average).
    Groups are joined row by row as the distances are computed, never listing the pairs: a clip of thousands
    of near-identical frames has millions of them (3000 took 1.4 GB and 8 s that way)."""
    h = np.packbits(np.asarray(hashes, dtype=bool).reshape(-1, 64), axis=1)    # [N, 8] uint8
    m = np.packbits(np.asarray(mirrored, dtype=bool).reshape(-1, 64), axis=1)
    n = len(h)
    parent = np.arange(n)
    confirm = grays is not None and threshold > 0
    g = np.asarray(grays, np.float32).reshape(n, HASH_INPUT, HASH_INPUT) if confirm else None
    for start, dist in _distances(h, m):
        for k, row in enumerate(dist):
            i = start + k
            near = np.flatnonzero(row <= threshold)
            if len(near) > 1 or (len(near) == 1 and near[0] != i):
                _join(parent, np.append(near, i))
            if confirm:
                maybe = np.flatnonzero((row > threshold) & (row <= 2 * threshold))
                if len(maybe):
                    maybe = maybe[_roots(parent, maybe) != _roots(parent, np.array([i]))[0]]   # not joined yet
                    same = maybe[_mad(g, i, maybe) <= PIXEL_MAD]
                    if len(same):
                        _join(parent, np.append(same, i))
    roots = _roots(parent, np.arange(n))
    members = {}
    for i, r in enumerate(roots.tolist()):
        members.setdefault(r, []).append(i)
    return [grp for _, grp in sorted(members.items()) if len(grp) > 1]

#----------------------------------------------------------------------------

class Scan(NamedTuple):
    source: str
    names: list          # readable images, sorted
    sizes: list          # (width, height) of each, after EXIF orientation
    thumbs: np.ndarray   # [N, THUMB, THUMB, 3] uint8
    skipped: list        # (name, reason) of unreadable files
    groups: list         # duplicate groups: lists of names, the kept one first
    threshold: int
    alignment: Optional[dict] = None   # align.read_alignment_record of the folder: how its faces were found
    scores: Optional[dict] = None      # {name: drawn-face detector score} of the crops that have one (faces.json)

    @property
    def duplicates(self):
        """Names left out when one image is kept per group."""
        return [name for g in self.groups for name in g[1:]]

    @property
    def num_distinct(self):
        return len(self.names) - len(self.duplicates)

    def resolutions(self):
        """{'WxH': count}, most common first."""
        return dict(Counter(f'{w}x{h}' for w, h in self.sizes).most_common())


def _read(src, name):
    data = src.read(name)
    if not data:
        raise _EmptyFile()
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        size = img.size
        return size, load_image(to_rgb(img), THUMB)

def scan(source, threshold=DEFAULT_THRESHOLD, progress=True):
    """Read every image of a folder or zip (the `data.ImageDataset` rules), hash it and group near
    duplicates. Raises ValueError for a source with no images or none readable."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)) or not 0 <= threshold < 64:
        raise ValueError(f'threshold must be a whole number of bits from 0 to 63, not {threshold!r}')
    src = _Source(source)
    try:
        if not src.names:
            raise ValueError(src.describe())
        names, sizes, thumbs, skipped = [], [], [], []
        for name in tqdm(src.names, desc='scan images', unit='img', disable=not progress, leave=False):
            try:
                size, thumb = _read(src, name)
            except Exception as e:   # PIL raises OSError, ValueError, SyntaxError, EOFError, zlib.error...
                skipped.append((name, _reason(e)))
                continue
            names.append(name)
            sizes.append(size)
            thumbs.append(thumb)
        if not names:
            raise _all_bad_error(src, skipped)
    finally:
        src.close()
    pairs = [hash_pair(t) for t in thumbs]
    index_groups = group_duplicates([p[0] for p in pairs], [p[1] for p in pairs], threshold,
                                    grays=[gray_input(t) for t in thumbs])
    groups = []
    for g in index_groups:
        keep = max(g, key=lambda i: (sizes[i][0] * sizes[i][1], -i))     # largest, then first
        groups.append([names[keep]] + [names[i] for i in g if i != keep])
    alignment, scores = None, None
    if os.path.isdir(source):        # a damaged record does not stop the report: said, and left out
        try:
            alignment = read_alignment_record(source)
        except ValueError as e:
            warnings.warn(f'{e}; the report leaves the alignment counts out')
        try:
            known = set(names)
            scores = {n: v for n, v in read_detection_scores(source).items() if n in known} or None
        except ValueError as e:
            warnings.warn(f'{e}; the report leaves the detector scores out')
    return Scan(src.path, names, sizes, np.stack(thumbs), skipped, groups, int(threshold), alignment, scores)

#----------------------------------------------------------------------------
# Contact sheets.

def contact_sheet(scan_, limit=MAX_SHEET):
    """The first `limit` thumbnails in one grid (make_grid: ceil(sqrt(n)) columns, 2 px white gaps)."""
    return make_grid(scan_.thumbs[:limit])

def groups_sheet(scan_, limit=MAX_GROUPS):
    """One row per duplicate group (the kept image first, then its duplicates; white where a row is
    shorter), the `limit` largest groups; None when there are no duplicates."""
    groups = sorted(scan_.groups, key=len, reverse=True)[:limit]
    if not groups:
        return None
    index = {name: i for i, name in enumerate(scan_.names)}
    cols = max(len(g) for g in groups)
    blank = np.full((THUMB, THUMB, 3), 255, np.uint8)
    tiles = [scan_.thumbs[index[g[k]]] if k < len(g) else blank for g in groups for k in range(cols)]
    return make_grid(np.stack(tiles), cols=cols)

REPORT_JSON, SHEET_PNG, GROUPS_PNG = 'report.json', 'contact_sheet.png', 'duplicate_groups.png'
LOWEST_PNG = 'lowest_scores.png'     # the drawn faces the detector was least sure of: where false positives are
MAX_LOWEST = 48
LOW_SCORE = 0.9                      # counted as "low" in the summary (false positives scored 0.80 at the median)

def lowest_scores(scan_, limit=MAX_LOWEST):
    """[(name, score)] of the `limit` crops with the lowest detector scores, lowest first (none without scores)."""
    return sorted((scan_.scores or {}).items(), key=lambda kv: (kv[1], kv[0]))[:limit]

def lowest_scores_sheet(scan_, limit=MAX_LOWEST):
    """Their thumbnails in one grid, lowest score first; None without scores."""
    low = lowest_scores(scan_, limit)
    if not low:
        return None
    index = {name: i for i, name in enumerate(scan_.names)}
    return make_grid(np.stack([scan_.thumbs[index[n]] for n, _ in low]))

def report_dict(scan_):
    return {'source': scan_.source, 'images': len(scan_.names), 'distinct': scan_.num_distinct,
            'duplicates': len(scan_.duplicates), 'threshold_bits': scan_.threshold,
            'resolutions': scan_.resolutions(),
            'unreadable': [{'file': n, 'reason': r} for n, r in scan_.skipped],
            'alignment': scan_.alignment,
            'lowest_scores': [{'file': n, 'score': v} for n, v in lowest_scores(scan_)],
            'groups': [{'keep': g[0], 'duplicates': g[1:]} for g in scan_.groups]}

def write_report(scan_, outdir):
    """Write report.json, contact_sheet.png and (when there are duplicates) duplicate_groups.png into
    `outdir`, each atomically. Returns the paths written."""
    os.makedirs(outdir, exist_ok=True)
    paths = [os.path.join(outdir, SHEET_PNG)]
    save_image(paths[0], contact_sheet(scan_))
    sheet = groups_sheet(scan_)
    stale = os.path.join(outdir, GROUPS_PNG)
    if sheet is not None:
        save_image(stale, sheet)
        paths.append(stale)
    elif os.path.exists(stale):
        os.remove(stale)             # an older report's groups must not pass for this one's
    for name, sheet in ((LOWEST_PNG, lowest_scores_sheet(scan_)),):
        path = os.path.join(outdir, name)
        if sheet is not None:
            save_image(path, sheet)
            paths.append(path)
        elif os.path.exists(path):
            os.remove(path)
    paths.append(os.path.join(outdir, REPORT_JSON))
    atomic_write_bytes(paths[-1], (json.dumps(report_dict(scan_), indent=1) + '\n').encode())
    return paths

def summary(scan_):
    """A few printable lines: counts, resolutions, unreadable files, duplicate groups."""
    res = scan_.resolutions()
    shown = ', '.join(f'{k} ({v})' for k, v in list(res.items())[:8]) + (f', ... {len(res) - 8} more' if len(res) > 8 else '')
    lines = [f'{scan_.source}: {len(scan_.names)} images, {scan_.num_distinct} distinct '
             f'({len(scan_.duplicates)} near-duplicates in {len(scan_.groups)} groups, threshold {scan_.threshold} bits)',
             f'  source sizes: {shown}']
    if scan_.skipped:
        lines.append(f'  unreadable: {len(scan_.skipped)} file{"s" if len(scan_.skipped) != 1 else ""}')
    if scan_.scores:
        values = np.array(list(scan_.scores.values()))
        lines.append(f'  drawn-face detector scores: median {np.median(values):.3f}, {int((values < LOW_SCORE).sum())} of '
                     f'{len(values)} below {LOW_SCORE} (the lowest {min(len(values), MAX_LOWEST)} in {LOWEST_PNG}: '
                     f'look there for false detections)')
    a = scan_.alignment
    if a:
        lines.append(f'  aligned ({a["mode"]}, {a["size"]} px): {a["photos"]} photos, a face detected in {a["detected"]}, '
                     f'none in {a["failed"]}; {a["too_small"]} faces too small left out; {a["written"]} crops')
    return '\n'.join(lines)
