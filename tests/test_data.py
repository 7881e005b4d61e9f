"""The dataset reader (stylegan2_lib.data): load_image's conversions, ImageDataset over folders and zips,
prepare_dataset. Pixels are checked against expectations computed here from the test patterns (a crop
of a known array, a grey level replicated, numpy rotations), not against the reader's own output."""

import io
import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan2_lib import data
from stylegan2_lib.data import ImageDataset, UnreadableImagesWarning, load_image, prepare_dataset

#----------------------------------------------------------------------------
# Test images, made here.

def pattern(h, w, seed=0):
    """An asymmetric RGB pattern: every pixel different, so crops, flips and rotations are visible."""
    rs = np.random.RandomState(seed)
    return rs.randint(0, 256, size=(h, w, 3), dtype=np.uint8)

def quadrants(size, colours=((200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40))):
    """size x size, four flat quadrants: top-left, top-right, bottom-left, bottom-right."""
    a = np.zeros([size, size, 3], np.uint8)
    h = size // 2
    a[:h, :h], a[:h, h:], a[h:, :h], a[h:, h:] = colours
    return a

def save(path, img, fmt=None, **kw):
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(path, format=fmt, **kw)
    return path

def jpeg_bytes(arr, quality=95):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format='JPEG', quality=quality)
    return buf.getvalue()

def quiet(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = fn(*args, **kw)
    return out, caught

#----------------------------------------------------------------------------
# load_image: colour modes.

def test_rgb_at_its_own_size_is_unchanged(tmp_path):
    a = pattern(8, 8)
    out = load_image(save(tmp_path / 'a.png', a), 8)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out, a)

def test_path_file_bytes_and_pil_inputs_agree(tmp_path):
    a = pattern(8, 8)
    path = save(tmp_path / 'a.png', a)
    raw = open(path, 'rb').read()
    with open(path, 'rb') as f:
        from_file = load_image(f, 8)
        assert not f.closed                      # the caller's file is left open
    for out in (load_image(path, 8), from_file, load_image(raw, 8), load_image(Image.open(path), 8)):
        np.testing.assert_array_equal(out, a)

def test_grayscale_is_replicated_to_three_channels(tmp_path):
    g = pattern(8, 8)[..., 0]
    out = load_image(save(tmp_path / 'g.png', Image.fromarray(g, 'L')), 8)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)

def test_bilevel_image(tmp_path):
    b = np.zeros([8, 8], bool)
    b[:, 4:] = True
    out = load_image(save(tmp_path / 'b.png', Image.fromarray(b).convert('1')), 8)
    assert (out[:, :4] == 0).all() and (out[:, 4:] == 255).all()

def test_rgba_transparency_goes_onto_white(tmp_path):
    a = np.zeros([4, 4, 4], np.uint8)
    a[0] = (10, 20, 30, 255)        # opaque: kept
    a[1] = (0, 0, 0, 0)             # transparent black: white, not black
    a[2] = (255, 0, 0, 0)           # transparent junk colour: white
    a[3] = (255, 0, 0, 128)         # half-transparent red over white: pink
    out = load_image(save(tmp_path / 'a.png', Image.fromarray(a, 'RGBA')), 4).astype(int)
    assert (out[0] == (10, 20, 30)).all()
    assert (out[1] == 255).all() and (out[2] == 255).all()
    alpha = 128 / 255
    expected = np.array([255, 0, 0]) * alpha + 255 * (1 - alpha)
    assert np.abs(out[3] - expected).max() <= 1

def test_gray_with_alpha(tmp_path):
    la = np.zeros([2, 2, 2], np.uint8)
    la[0] = (50, 255)
    la[1] = (50, 0)
    out = load_image(save(tmp_path / 'la.png', Image.fromarray(la, 'LA')), 2)
    assert (out[0] == 50).all() and (out[1] == 255).all()

def test_palette_with_and_without_a_transparent_index(tmp_path):
    idx = np.array([[0, 1], [1, 2]], np.uint8)
    palette = [12, 34, 56, 0, 0, 0, 200, 100, 50] + [0] * (256 * 3 - 9)
    p = Image.fromarray(idx, 'P')
    p.putpalette(palette)
    out = load_image(save(tmp_path / 'p.png', p), 2)
    assert (out[0, 0] == (12, 34, 56)).all() and (out[0, 1] == 0).all() and (out[1, 1] == (200, 100, 50)).all()
    out = load_image(save(tmp_path / 'pt.png', p, transparency=1), 2)     # index 1 (black) is transparent
    assert (out[0, 0] == (12, 34, 56)).all() and (out[0, 1] == 255).all() and (out[1, 0] == 255).all()
    assert (out[1, 1] == (200, 100, 50)).all()

def test_cmyk(tmp_path):
    c = np.zeros([16, 16, 4], np.uint8)
    c[:8, :8] = (0, 0, 0, 0)          # no ink: white
    c[:8, 8:] = (255, 0, 0, 0)        # cyan
    c[8:, :8] = (0, 0, 0, 255)        # black
    c[8:, 8:] = (0, 255, 255, 0)      # magenta + yellow: red
    expected = {(0, 0): (255, 255, 255), (0, 8): (0, 255, 255), (8, 0): (0, 0, 0), (8, 8): (255, 0, 0)}
    img = Image.fromarray(c, 'CMYK')
    exact = load_image(img, 16)
    path = save(tmp_path / 'cmyk.jpg', img, quality=100)          # the only format of ours that stores CMYK
    assert Image.open(path).mode == 'CMYK'
    from_jpeg = load_image(path, 16).astype(int)
    for (y, x), rgb in expected.items():
        assert (exact[y:y + 8, x:x + 8] == rgb).all(), (y, x)
        inner = from_jpeg[y + 2:y + 6, x + 2:x + 6]          # away from the JPEG edges
        assert np.abs(inner - np.array(rgb)).max() <= 6, (y, x)

def test_16_bit_is_scaled_not_clipped(tmp_path):
    v = np.array([[0, 256, 1000, 257 * 100], [30000, 65535, 65280, 128]], np.uint16)
    img = Image.fromarray(v)
    assert img.mode == 'I;16'
    path = save(tmp_path / 'g16.png', img)
    assert Image.open(path).mode.startswith('I')
    expected = np.rint(v / 257.0).astype(np.uint8)           # 65535 -> 255, 30000 -> 117, 256 -> 1
    out = load_image(path, 2)                                # 2 x 4: the middle two columns stay
    np.testing.assert_array_equal(out[..., 0], expected[:, 1:3])
    np.testing.assert_array_equal(out[..., 1], out[..., 0])
    # 'I' (how Pillow < 10 opens 16-bit PNGs) is read the same way.
    out_i = load_image(Image.fromarray(v.astype(np.int32)), 2)
    np.testing.assert_array_equal(out_i[..., 0], expected[:, 1:3])

def test_webp_and_bmp(tmp_path):
    a = pattern(8, 8)
    np.testing.assert_array_equal(load_image(save(tmp_path / 'a.bmp', a), 8), a)
    np.testing.assert_array_equal(load_image(save(tmp_path / 'a.webp', a, lossless=True), 8), a)

#----------------------------------------------------------------------------
# load_image: geometry.

def test_wide_image_is_centre_cropped(tmp_path):
    a = pattern(8, 12)                       # h 8, w 12: columns 2..9 stay
    np.testing.assert_array_equal(load_image(save(tmp_path / 'w.png', a), 8), a[:, 2:10])

def test_tall_image_with_odd_margin(tmp_path):
    a = pattern(13, 8)                       # margin 5: 2 rows off the top, 3 off the bottom (as NVlabs)
    np.testing.assert_array_equal(load_image(save(tmp_path / 't.png', a), 8), a[2:10])

def test_downscale_matches_a_box_average(tmp_path):
    a = quadrants(64)
    out = load_image(save(tmp_path / 'q.png', a), 8).astype(int)
    box = a.reshape(8, 8, 8, 8, 3).mean(axis=(1, 3))
    # Lanczos rings a little next to the quadrant edges; far from them it gives the flat colour.
    for y, x in [(0, 0), (0, 7), (7, 0), (7, 7)]:
        assert np.abs(out[y, x] - box[y, x]).max() <= 1, (y, x)
    assert np.abs(out - box).mean() < 6 and np.abs(out - box).max() <= 25

def test_downscale_of_a_wide_image_crops_first(tmp_path):
    q = quadrants(32)
    box = q.reshape(4, 8, 4, 8, 3).mean(axis=(1, 3))
    outs = []
    for band in (0, 255):                    # a band in the left and right quarters: cropped away entirely
        a = np.full([32, 64, 3], band, np.uint8)
        a[:, 16:48] = q
        outs.append(load_image(save(tmp_path / f'w{band}.png', a), 4))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], load_image(save(tmp_path / 'q.png', q), 4))
    assert np.abs(outs[0] - box).max() <= 25          # each pixel keeps its quadrant's colour, give or take ringing

def test_upscale_keeps_the_layout(tmp_path):
    a = quadrants(4)
    out = load_image(save(tmp_path / 'q.png', a), 16).astype(int)
    assert out.shape == (16, 16, 3)
    for (y, x), rgb in {(0, 0): a[0, 0], (0, 15): a[0, 3], (15, 0): a[3, 0], (15, 15): a[3, 3]}.items():
        assert np.abs(out[y, x] - rgb).max() <= 8
    flat = np.full([3, 3, 3], 77, np.uint8)
    assert (load_image(Image.fromarray(flat), 12) == 77).all()

def test_real_photo_if_matplotlib_is_installed():
    cbook = pytest.importorskip('matplotlib.cbook')
    path = cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)
    photo = np.asarray(Image.open(path).convert('RGB'))
    h, w = photo.shape[:2]
    s = min(h, w)
    crop = photo[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s].astype(float)
    k = s // 64
    box = crop.reshape(64, k, 64, k, 3).mean(axis=(1, 3))
    out = load_image(path, 64)
    assert out.shape == (64, 64, 3)
    assert np.abs(out - box).mean() < 4

def test_bad_resolution():
    for bad in (0, -1, 2.5, True, '8'):
        with pytest.raises(ValueError, match='resolution'):
            load_image(Image.new('RGB', (4, 4)), bad)

#----------------------------------------------------------------------------
# load_image: EXIF orientation.

def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e

@pytest.mark.parametrize('orientation, turns', [(6, -1), (8, 1), (3, 2), (1, 0)])
def test_exif_orientation_png_exact(tmp_path, orientation, turns):
    stored = pattern(8, 16)                                   # landscape as stored
    path = save(tmp_path / 'r.png', stored, exif=exif(orientation))
    shown = np.rot90(stored, turns)                           # 6: rotate 90 clockwise to display, 8: counter-clockwise
    h, w = shown.shape[:2]
    s = min(h, w)
    expected = shown[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    np.testing.assert_array_equal(load_image(path, 8), expected)

@pytest.mark.parametrize('orientation, turns', [(6, -1), (8, 1)])
def test_exif_orientation_jpeg(tmp_path, orientation, turns):
    stored = np.zeros([32, 64, 3], np.uint8)                  # a sideways photo: quadrants in the middle square
    stored[:, :16] = stored[:, 48:] = 128
    stored[:, 16:48] = quadrants(32)
    path = save(tmp_path / 'r.jpg', stored, quality=98, subsampling=0, exif=exif(orientation))
    expected = np.rot90(stored, turns)[16:48]                 # upright: 64 tall -> crop rows 16..47
    out = load_image(path, 32).astype(int)
    for y, x in [(4, 4), (4, 27), (27, 4), (27, 27)]:           # the middle of each quadrant
        assert np.abs(out[y, x] - expected[y, x]).max() <= 6, (y, x)
    assert np.abs(out - expected).mean() < 3

#----------------------------------------------------------------------------
# ImageDataset over a folder.

COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (240, 240, 20), (20, 240, 240), (240, 20, 240)]

def make_folder(root):
    """Six readable images (flat colours, various formats), plus files that must be ignored."""
    names = ['a.png', 'B.JPG', 'sub/c.jpeg', 'sub/deeper/d.WebP', 'sub/e.bmp', 'z.PNG']
    for name, colour in zip(names, COLOURS):
        img = np.zeros([8, 12, 3], np.uint8)
        img[:] = colour
        img[:, :2] = 0                      # cropped away: the dataset must show the flat colour only
        img[:, 10:] = 0
        kw = {'lossless': True} if name.lower().endswith('webp') else ({'quality': 100, 'subsampling': 0} if 'jp' in name.lower() else {})
        save(root / name, img, **kw)
    for junk in ['.hidden.png', '.git/x.png', 'sub/._c.jpeg', 'notes.txt', 'anim.gif', 'scan.tiff', 'sub/pngnot']:
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_bytes(b'junk that is not an image')
    return names

def test_folder_recursive_sorted_and_filtered(tmp_path):
    names = make_folder(tmp_path)
    ds = ImageDataset(tmp_path, 8, progress=False)
    assert ds.files == sorted(names) and len(ds) == 6 and ds.skipped == []
    assert ds.image_shape == [3, 8, 8]
    for name, colour in zip(names, COLOURS):
        x = ds[ds.files.index(name)]
        assert x.dtype == torch.uint8 and x.shape == (3, 8, 8)
        tol = 3 if 'jp' in name.lower() else 0
        assert (x.int() - torch.tensor(colour).view(3, 1, 1)).abs().max() <= tol, name
    assert torch.equal(ds[-1], ds[5])
    with pytest.raises(IndexError):
        ds[6]

def test_xflip_doubles_and_mirrors(tmp_path):
    a, b = pattern(8, 8, seed=1), pattern(8, 8, seed=2)
    save(tmp_path / 'a.png', a)
    save(tmp_path / 'b.png', b)
    ds = ImageDataset(tmp_path, 8, xflip=True, progress=False)
    assert len(ds) == 4 and ds.num_images == 2
    for i, arr in enumerate([a, b]):
        np.testing.assert_array_equal(ds[i].permute(1, 2, 0).numpy(), arr)
        np.testing.assert_array_equal(ds[i + 2].permute(1, 2, 0).numpy(), arr[:, ::-1])

def make_bad_files(root):
    good = pattern(16, 16)
    whole = jpeg_bytes(good)
    (root / 'truncated.jpg').write_bytes(whole[:len(whole) // 2])
    (root / 'noise.png').write_bytes(np.random.RandomState(3).bytes(300))
    (root / 'empty.jpg').write_bytes(b'')
    return ['empty.jpg', 'noise.png', 'truncated.jpg']

def test_unreadable_files_are_skipped_with_one_warning(tmp_path):
    save(tmp_path / 'good1.png', pattern(8, 8))
    save(tmp_path / 'sub' / 'good2.png', pattern(8, 8, seed=5))
    bad = make_bad_files(tmp_path)
    ds, caught = quiet(ImageDataset, tmp_path, 8, progress=False)
    assert ds.files == ['good1.png', 'sub/good2.png'] and len(ds) == 2
    ours = [w for w in caught if issubclass(w.category, UnreadableImagesWarning)]
    assert len(ours) == 1 and len(caught) == 1
    msg = str(ours[0].message)
    assert str(tmp_path) in msg and 'skipped 3 of 5' in msg
    for name in bad:
        assert name in msg
    reasons = dict(ds.skipped)
    assert reasons['empty.jpg'] == 'empty file'
    assert 'truncated' in reasons['truncated.jpg'].lower()
    assert reasons['noise.png'] == 'not an image PIL can read'
    assert str(tmp_path) not in ''.join(reasons.values())          # reasons are short, without paths

def test_hundreds_of_bad_files_give_a_short_warning(tmp_path):
    save(tmp_path / 'good.png', pattern(8, 8))
    for i in range(150):
        (tmp_path / f'bad{i:03d}.png').write_bytes(b'not a png')
    ds, caught = quiet(ImageDataset, tmp_path, 8, progress=False)
    assert len(ds) == 1 and len(ds.skipped) == 150 and len(caught) == 1
    msg = str(caught[0].message)
    assert 'bad000.png' in msg and 'bad149.png' not in msg and '... and 130 more' in msg and len(msg) < 2000

def test_empty_and_all_bad_sources_are_errors(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='no images') as e:
        ImageDataset(empty, 8)
    assert str(empty) in str(e.value)
    only_junk = tmp_path / 'junk'
    only_junk.mkdir()
    (only_junk / 'readme.txt').write_text('hello')
    (only_junk / '.hidden.png').write_bytes(b'x')
    with pytest.raises(ValueError, match='no images'):
        ImageDataset(only_junk, 8)
    bad = tmp_path / 'bad'
    bad.mkdir()
    make_bad_files(bad)
    with pytest.raises(ValueError, match='none of the 3 image files') as e:
        ImageDataset(bad, 8, progress=False)
    assert str(bad) in str(e.value) and 'noise.png' in str(e.value)

def test_missing_and_non_zip_sources(tmp_path):
    with pytest.raises(FileNotFoundError):
        ImageDataset(tmp_path / 'nowhere', 8)
    single = save(tmp_path / 'one.png', pattern(8, 8))
    with pytest.raises(ValueError, match='not a folder or a zip'):
        ImageDataset(single, 8)
    broken = tmp_path / 'broken.zip'
    ok = io.BytesIO()
    with zipfile.ZipFile(ok, 'w') as zf:
        zf.writestr('a.png', b'x' * 100)
    broken.write_bytes(ok.getvalue()[:60] + ok.getvalue()[-22:])    # central directory points to junk
    with pytest.raises(ValueError):
        ImageDataset(broken, 8)

#----------------------------------------------------------------------------
# ImageDataset over a zip.

def zip_folder(root, dest, junk=True):
    with zipfile.ZipFile(dest, 'w') as zf:
        for folder, dirs, files in os.walk(root):
            rel = os.path.relpath(folder, root)
            if rel != '.':
                zf.writestr(rel.replace(os.sep, '/') + '/', b'')                  # directory entries
            for f in files:
                zf.write(os.path.join(folder, f), os.path.join(rel, f).replace(os.sep, '/') if rel != '.' else f)
        if junk:
            zf.writestr('__MACOSX/._a.png', b'\x00\x05\x16\x07')
    return dest

def test_zip_equals_folder(tmp_path):
    src = tmp_path / 'src'
    make_folder(src)
    make_bad_files(src)
    folder_ds, _ = quiet(ImageDataset, src, 8, xflip=True, progress=False)
    zip_ds, caught = quiet(ImageDataset, zip_folder(src, tmp_path / 'src.zip'), 8, xflip=True, progress=False)
    assert zip_ds.files == folder_ds.files and len(zip_ds) == len(folder_ds) == 12
    assert sorted(zip_ds.skipped) == sorted(folder_ds.skipped) and len(caught) == 1
    for i in range(len(zip_ds)):
        assert torch.equal(zip_ds[i], folder_ds[i])

def test_zip_names_with_a_dot_folder(tmp_path):
    dest = tmp_path / 'dot.zip'
    with zipfile.ZipFile(dest, 'w') as zf:
        buf = io.BytesIO()
        Image.fromarray(pattern(8, 8)).save(buf, format='PNG')
        zf.writestr('./a.png', buf.getvalue())
        zf.writestr('./.hidden.png', buf.getvalue())
    ds = ImageDataset(dest, 8, progress=False)
    assert ds.files == ['./a.png']
    np.testing.assert_array_equal(ds[0].permute(1, 2, 0).numpy(), pattern(8, 8))

def test_zip_dataset_in_dataloader_workers_and_pickle(tmp_path):
    src = tmp_path / 'src'
    for i in range(8):
        save(src / f'{i}.png', pattern(8, 8, seed=i))
    ds = ImageDataset(zip_folder(src, tmp_path / 'src.zip'), 8, progress=False)
    direct = torch.stack([ds[i] for i in range(len(ds))])      # opens the zip in this process first
    copy = pickle.loads(pickle.dumps(ds))                       # spawn-style workers get a copy without the handle
    assert torch.equal(torch.stack([copy[i] for i in range(len(copy))]), direct)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    assert torch.equal(torch.cat(list(loader)), direct)

#----------------------------------------------------------------------------
# prepare_dataset.

def test_prepare_round_trip(tmp_path):
    src = tmp_path / 'src'
    names = make_folder(src)
    (src / 'wide.png').write_bytes(b'')                         # one unreadable
    dest = tmp_path / 'out' / 'ds.zip'
    result, caught = quiet(prepare_dataset, src, dest, 8, progress=False)
    assert result == (6, 1) and result.written == 6 and result.skipped == 1
    assert len(caught) == 1 and 'wide.png' in str(caught[0].message)
    with zipfile.ZipFile(dest) as zf:
        members = zf.namelist()
        info = json.loads(zf.read('dataset.json'))
        assert all(zf.getinfo(m).compress_type == zipfile.ZIP_STORED for m in members)
    assert members == [f'{i:08d}.png' for i in range(6)] + ['dataset.json']
    assert info['resolution'] == 8 and info['labels'] is None
    assert [e['source'] for e in info['images']] == sorted(names)
    assert info['skipped'] == [{'source': 'wide.png', 'reason': 'empty file'}]

    folder_ds, _ = quiet(ImageDataset, src, 8, progress=False)
    zip_ds = ImageDataset(dest, 8, progress=False)
    auto_ds = ImageDataset(dest, None)                          # the resolution from dataset.json
    assert len(zip_ds) == len(folder_ds) == len(auto_ds) == 6 and auto_ds.resolution == 8
    for i in range(6):
        assert torch.equal(zip_ds[i], folder_ds[i]) and torch.equal(auto_ds[i], folder_ds[i])
    with pytest.raises(ValueError, match='give a resolution'):
        ImageDataset(src, None)

def test_prepared_zip_is_trusted_and_read_without_resizing(tmp_path, monkeypatch):
    src = tmp_path / 'src'
    for i in range(3):
        save(src / f'{i}.png', pattern(16, 24, seed=i))
    dest = tmp_path / 'ds.zip'
    prepare_dataset(src, dest, 16, progress=False)
    with zipfile.ZipFile(dest) as zf:
        stored = np.asarray(Image.open(io.BytesIO(zf.read('00000001.png'))))
    np.testing.assert_array_equal(stored, pattern(16, 24, seed=1)[:, 4:20])      # lossless centre crop

    calls = []
    real = data._Source.load
    monkeypatch.setattr(data._Source, 'load', lambda self, *a: calls.append(a) or real(self, *a))
    ds = ImageDataset(dest, 16)
    assert calls == []                                           # no decoding pass at construction
    np.testing.assert_array_equal(ds[1].permute(1, 2, 0).numpy(), stored)

def test_prepare_is_deterministic(tmp_path):
    src = tmp_path / 'src'
    make_folder(src)
    prepare_dataset(src, tmp_path / 'a.zip', 8, progress=False)
    prepare_dataset(src, tmp_path / 'b.zip', 8, progress=False)
    assert (tmp_path / 'a.zip').read_bytes() == (tmp_path / 'b.zip').read_bytes()

def test_prepare_from_a_zip(tmp_path):
    src = tmp_path / 'src'
    make_folder(src)
    zipped = zip_folder(src, tmp_path / 'src.zip')
    prepare_dataset(src, tmp_path / 'a.zip', 8, progress=False)
    prepare_dataset(zipped, tmp_path / 'b.zip', 8, progress=False)
    a, b = ImageDataset(tmp_path / 'a.zip', 8), ImageDataset(tmp_path / 'b.zip', 8)
    assert all(torch.equal(a[i], b[i]) for i in range(len(a)))

def listing(folder):
    return sorted(p.name for p in folder.iterdir())

def test_prepare_writes_nothing_on_failure(tmp_path, monkeypatch):
    bad = tmp_path / 'bad'
    bad.mkdir()
    make_bad_files(bad)
    out = tmp_path / 'out'
    out.mkdir()
    with pytest.raises(ValueError, match='none of the 3'):
        prepare_dataset(bad, out / 'ds.zip', 8, progress=False)
    assert listing(out) == []                                    # no zip, no temporary file

    (out / 'ds.zip').write_bytes(b'old')                         # an existing file survives a failed run
    with pytest.raises(ValueError):
        prepare_dataset(bad, out / 'ds.zip', 8, progress=False)
    assert (out / 'ds.zip').read_bytes() == b'old'

    good = tmp_path / 'good'
    for i in range(3):
        save(good / f'{i}.png', pattern(8, 8, seed=i))
    real = data.load_image
    def interrupted(f, res, _n=[0]):
        _n[0] += 1
        if _n[0] == 2:
            raise KeyboardInterrupt
        return real(f, res)
    monkeypatch.setattr(data, 'load_image', interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(good, out / 'ds.zip', 8, progress=False)
    assert listing(out) == ['ds.zip'] and (out / 'ds.zip').read_bytes() == b'old'

def test_the_zip_gets_the_mode_a_plain_open_gives(tmp_path):
    """Not the temporary file's private 0600: a dataset on a shared disk or Drive is readable as any file is."""
    src = tmp_path / 'src'
    make_folder(src)
    old = os.umask(0o027)
    try:
        prepare_dataset(src, tmp_path / 'ds.zip', 8, progress=False)
        (tmp_path / 'plain').write_bytes(b'')
    finally:
        os.umask(old)
    mode = lambda p: os.stat(p).st_mode & 0o777                  # noqa: E731
    assert mode(tmp_path / 'ds.zip') == mode(tmp_path / 'plain') == 0o640

def test_prepare_refuses_bad_requests(tmp_path):
    src = tmp_path / 'src'
    make_folder(src)
    zipped = zip_folder(src, tmp_path / 'src.zip')
    before = zipped.read_bytes()
    with pytest.raises(ValueError, match='source itself'):
        prepare_dataset(zipped, zipped, 8, progress=False)
    with pytest.raises(ValueError, match='source itself'):
        prepare_dataset(zipped, tmp_path / '.' / 'src.zip', 8, progress=False)
    assert zipped.read_bytes() == before
    with pytest.raises(ValueError, match='ending in .zip'):
        prepare_dataset(src, tmp_path / 'ds.tar', 8, progress=False)
    (tmp_path / 'dir.zip').mkdir()
    with pytest.raises(ValueError, match='directory'):
        prepare_dataset(src, tmp_path / 'dir.zip', 8, progress=False)
    for res in (0, 6, 2, 300):
        with pytest.raises(ValueError, match='resolution'):
            prepare_dataset(src, tmp_path / 'ds.zip', res, progress=False)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='no images'):
        prepare_dataset(empty, tmp_path / 'ds.zip', 8, progress=False)
    assert not (tmp_path / 'ds.zip').exists()
