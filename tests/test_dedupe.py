"""Near-duplicate grouping, the dataset report and `dataset --dedupe` (issue 19, points 3 and 4).

The truth is the set of files each test writes: which are originals and which are copies of which."""

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from stylegan2_lib import dedupe
from stylegan2_lib.cli import main

skdata = pytest.importorskip('skimage.data')

NAMES = ['astronaut', 'coffee', 'chelsea', 'camera', 'rocket', 'coins']


def _photo(name, width=160):
    a = getattr(skdata, name)()
    a = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]
    img = Image.fromarray(a)
    return np.asarray(img.resize((width, round(width * img.height / img.width)), Image.LANCZOS))


def _copies(a, rng):
    """Near-identical versions of `a`: name -> (array or JPEG bytes)."""
    noisy = np.clip(a + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8)
    return {'shift1': np.roll(a, 1, axis=1), 'shift2': np.roll(a, 2, axis=0), 'noise': noisy,
            'mirror': np.ascontiguousarray(a[:, ::-1])}


def _write_set(folder, with_copies=(0, 1, 2)):
    """Writes the six originals as PNG and, for the originals in `with_copies`, four copies and a JPEG
    re-encode. Returns {original file: [its copies' files]}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    truth = {}
    for i, name in enumerate(NAMES):
        a = _photo(name)
        orig = f'{i}_{name}.png'
        Image.fromarray(a).save(folder / orig)
        truth[orig] = []
        if i in with_copies:
            for kind, c in _copies(a, rng).items():
                f = f'{i}_{name}_{kind}.png'
                Image.fromarray(c).save(folder / f)
                truth[orig].append(f)
            f = f'{i}_{name}_reup.jpg'
            Image.fromarray(a).save(folder / f, quality=70)
            truth[orig].append(f)
    return truth


def test_distinct_images_are_kept(tmp_path):
    _write_set(tmp_path / 'src', with_copies=())
    scan = dedupe.scan(tmp_path / 'src', progress=False)
    assert len(scan.names) == len(NAMES) and scan.groups == [] and scan.num_distinct == len(NAMES)


def test_shifted_noised_reencoded_and_mirrored_copies_group_with_their_original(tmp_path):
    truth = _write_set(tmp_path / 'src')
    scan = dedupe.scan(tmp_path / 'src', progress=False)
    expected = sorted(sorted([o] + c) for o, c in truth.items() if c)
    assert sorted(sorted(g) for g in scan.groups) == expected
    # Copies have their original's size, so the kept one is the first in sorted order: the original.
    for g in scan.groups:
        assert g[0] == min(g) and g[0] in truth
    assert scan.num_distinct == len(NAMES)
    assert sorted(set(scan.names) - set(scan.duplicates)) == sorted(truth)


def test_the_largest_copy_is_kept(tmp_path):
    (tmp_path / 'src').mkdir()
    a = _photo('chelsea', 200)
    Image.fromarray(a).resize((100, 67)).save(tmp_path / 'src' / 'a_small.png')
    Image.fromarray(a).save(tmp_path / 'src' / 'b_large.png')
    scan = dedupe.scan(tmp_path / 'src', progress=False)
    assert scan.groups == [['b_large.png', 'a_small.png']]


def test_report_counts_sheets_and_summary(tmp_path, capsys):
    truth = _write_set(tmp_path / 'src', with_copies=(0, 3))
    (tmp_path / 'src' / 'broken.png').write_bytes(b'not a png')
    (tmp_path / 'src' / 'empty.jpg').write_bytes(b'')
    assert main(['dataset', str(tmp_path / 'src'), '--report', str(tmp_path / 'rep')]) == 0
    out = capsys.readouterr().out
    n_files = len(truth) + sum(len(c) for c in truth.values())
    report = json.loads((tmp_path / 'rep' / 'report.json').read_text())
    assert report['images'] == n_files and report['distinct'] == len(NAMES)
    assert report['duplicates'] == sum(len(c) for c in truth.values())
    assert sorted(u['file'] for u in report['unreadable']) == ['broken.png', 'empty.jpg']
    assert sorted(g['keep'] for g in report['groups']) == sorted(o for o, c in truth.items() if c)
    sizes = {}
    for f in sorted((tmp_path / 'src').iterdir()):
        if f.name not in ('broken.png', 'empty.jpg'):
            with Image.open(f) as im:
                sizes[f'{im.width}x{im.height}'] = sizes.get(f'{im.width}x{im.height}', 0) + 1
    assert report['resolutions'] == sizes
    t, pad = dedupe.THUMB, 2
    cols = int(np.ceil(np.sqrt(n_files)))
    rows = int(np.ceil(n_files / cols))
    with Image.open(tmp_path / 'rep' / 'contact_sheet.png') as im:
        assert im.size == (cols * (t + pad) - pad, rows * (t + pad) - pad)
    with Image.open(tmp_path / 'rep' / 'duplicate_groups.png') as im:   # 2 groups of 6
        assert im.size == (6 * (t + pad) - pad, 2 * (t + pad) - pad)
    assert f'{n_files} images, {len(NAMES)} distinct' in out and 'unreadable: 2 files' in out


def test_report_default_folder_and_no_groups_sheet_without_duplicates(tmp_path):
    _write_set(tmp_path / 'src', with_copies=())
    assert main(['dataset', str(tmp_path / 'src'), '--report']) == 0
    assert sorted(p.name for p in (tmp_path / 'src_report').iterdir()) == ['contact_sheet.png', 'report.json']


def test_dataset_dedupe_zip_has_one_image_per_group(tmp_path):
    truth = _write_set(tmp_path / 'src', with_copies=(1, 4))
    dest = tmp_path / 'out.zip'
    assert main(['dataset', str(tmp_path / 'src'), str(dest), '--resolution', '32', '--dedupe']) == 0
    with zipfile.ZipFile(dest) as zf:
        info = json.loads(zf.read('dataset.json'))
        pngs = [n for n in zf.namelist() if n.endswith('.png')]
    assert len(pngs) == len(NAMES)
    assert sorted(e['source'] for e in info['images']) == sorted(truth)
    assert sorted(info['excluded']) == sorted(f for c in truth.values() for f in c)
    # Without --dedupe everything goes in, as before.
    assert main(['dataset', str(tmp_path / 'src'), str(tmp_path / 'all.zip'), '--resolution', '32']) == 0
    with zipfile.ZipFile(tmp_path / 'all.zip') as zf:
        assert len([n for n in zf.namelist() if n.endswith('.png')]) == len(NAMES) + 10


def test_bad_inputs_give_clear_errors_and_write_nothing(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'bad').mkdir()
    for i in range(3):
        (tmp_path / 'bad' / f'{i}.png').write_bytes(b'junk')
    for src, words in [('empty', 'no images'), ('bad', 'none of the 3 image files')]:
        for extra in (['--report', str(tmp_path / 'rep')], [str(tmp_path / 'o.zip'), '--resolution', '32', '--dedupe']):
            assert main(['dataset', str(tmp_path / src)] + extra) == 1
            assert words in capsys.readouterr().err
    assert not (tmp_path / 'rep').exists() and not (tmp_path / 'o.zip').exists()
    with pytest.raises(ValueError, match='no images'):
        dedupe.scan(tmp_path / 'empty', progress=False)
    with pytest.raises(ValueError, match='threshold'):
        dedupe.scan(tmp_path / 'bad', threshold=64, progress=False)


@pytest.mark.parametrize('argv, words', [
    ([], 'DEST.zip'),
    (['o.zip'], '--resolution'),
    (['--report', 'r', '--dedupe'], '--dedupe'),
    (['o.zip', '--resolution', '32', '--threshold', '4'], '--threshold'),
])
def test_dataset_option_errors(tmp_path, capsys, argv, words):
    _write_set(tmp_path / 'src', with_copies=())
    assert main(['dataset', str(tmp_path / 'src')] + [str(tmp_path / a) if a in ('o.zip', 'r') else a for a in argv]) == 1
    assert words in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['src']


def test_hash_group_maths():
    h = np.zeros((3, 64), bool)
    h[1, :5] = True           # 5 bits from 0
    h[2, :40] = True          # far from both
    m = h.copy()
    assert dedupe.group_duplicates(h, m, threshold=5) == [[0, 1]]
    assert dedupe.group_duplicates(h, m, threshold=4) == []
    m[2] = h[0]               # 2 mirrored is 0
    assert dedupe.group_duplicates(h, m, threshold=0) == [[0, 2]]
    m, m[0] = h.copy(), h[2]  # 0 mirrored is 2: the same group, found from the other side
    assert dedupe.group_duplicates(h, m, threshold=0) == [[0, 2]]


def test_grouping_across_chunks_matches_the_direct_rule(monkeypatch):
    rng = np.random.default_rng(1)
    base = rng.random((5, 64)) < 0.5
    h = np.repeat(base, 4, axis=0)
    for k in range(len(h)):                           # each copy 0-3 bits away from its base
        h[k, rng.choice(64, k % 4, replace=False)] ^= True
    h = h[rng.permutation(len(h))]
    m = rng.random(h.shape) < 0.5
    m[7], m[3] = h[2], h[15]                          # mirrors that match another image (either order)
    m[3, :2] ^= True
    monkeypatch.setattr(dedupe, '_CHUNK', 3)
    groups = dedupe.group_duplicates(h, m, threshold=6)
    d = np.minimum((h[:, None] != h[None]).sum(-1), (h[:, None] != m[None]).sum(-1))
    comp = {}
    for i in range(len(h)):                           # components of the direct rule, by flood fill
        if i in comp:
            continue
        comp[i], todo = i, [i]
        while todo:
            a = todo.pop()
            for b in np.nonzero((d[a] <= 6) | (d[:, a] <= 6))[0]:
                if int(b) not in comp:
                    comp[int(b)] = i
                    todo.append(int(b))
    expected = {}
    for i, r in comp.items():
        expected.setdefault(r, []).append(i)
    assert groups == sorted(sorted(g) for g in expected.values() if len(g) > 1)


def test_flat_background_rule_maths():
    h = np.zeros((4, 64), bool)
    h[1, :15] = True          # 15 bits from 0: above the threshold 10, within twice it
    h[2, 30:45] = True        # 15 bits from 0, 30 from 1
    h[3, 45:] = True          # 19 bits from 0, 34 from 1 and 2
    h[3, 45:47] = False       # (17 bits from 0)
    rng = np.random.default_rng(0)
    g = np.repeat(rng.uniform(0, 255, (1, 32, 32)), 4, axis=0)
    g[1] += 7.5               # the same picture, 7.5 grey levels brighter: within PIXEL_MAD
    g[2] = rng.uniform(0, 255, (32, 32))                  # another picture
    g[3] += 40                # the same layout, 40 grey levels apart: another picture too
    assert dedupe.group_duplicates(h, h.copy(), threshold=10) == []                    # the hash rule alone
    assert dedupe.group_duplicates(h, h.copy(), threshold=10, grays=g) == [[0, 1]]
    g[1] = g[0][:, ::-1]      # a mirrored copy counts too
    assert dedupe.group_duplicates(h, h.copy(), threshold=10, grays=g) == [[0, 1]]


def test_consecutive_frames_of_a_drawn_clip_group_and_different_drawings_do_not(tmp_path):
    from stylegan2_lib.assets import DRAWN_FACES
    src = tmp_path / 'frames'
    src.mkdir()
    for name, path in zip(('concert', 'sprite'), DRAWN_FACES):
        img = Image.open(path).convert('RGB')
        w, h = img.size
        for dx in range(3):   # a pan of one pixel per frame, as consecutive frames of a slow shot
            img.crop((dx, 0, w - 4 + dx, h)).save(src / f'{name}_{dx}.png')
    scan = dedupe.scan(src, progress=False)
    assert sorted(map(sorted, scan.groups)) == [[f'concert_{i}.png' for i in range(3)], [f'sprite_{i}.png' for i in range(3)]]


def test_thousands_of_near_identical_frames_group_without_listing_every_pair():
    """A static shot sampled 3000 times: ~9 million near pairs. Grouping must not hold them (it once took 1.4 GB)."""
    import tracemalloc
    n = 3000
    rng = np.random.default_rng(0)
    h = np.zeros((n, 64), bool)
    h[:, :32] = True
    for i in range(n):                                  # each frame 0-3 bits from the shot's hash
        h[i, rng.choice(64, i % 4, replace=False)] ^= True
    grays = np.repeat(rng.uniform(0, 255, (1, 32, 32)), n, axis=0)
    tracemalloc.start()
    try:
        groups = dedupe.group_duplicates(h, h[:, ::-1].copy(), threshold=10, grays=grays)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert groups == [list(range(n))]
    assert peak < 64 * 2 ** 20, f'{peak / 2 ** 20:.0f} MiB'     # the chunked distances: ~256 x 3000 x 8 bytes each
