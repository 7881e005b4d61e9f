"""Drawn-face detection and alignment (issue 19, point 1).

The alignment maths is checked on detector outputs given by hand (where FFHQ's recipe puts the eyes, the chin
rule, rotation, padding at the image edge); the detector on two real drawn faces that ship in tests/data/drawn_faces
(MIT-licensed Ren'Py artwork), against what animeface's own binding reported for them (tests/data/drawn_faces/README.md,
animeface 2.0.3 under Pillow 10.4); then align_folder / `align --anime` / `dataset --report` end to end.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from stylegan2_lib import align, anime_detect
from stylegan2_lib.anime_detect import DrawnFace
from stylegan2_lib.cli import main

DRAWN = Path(__file__).parent / 'data' / 'drawn_faces'
CONCERT, SPRITE = DRAWN / 'renpy_concert_eileen.jpg', DRAWN / 'renpy_eileen_happy.png'


def require_detector():
    """Skip where the animeface wheel is missing (a failure where STYLEGAN2_LIB_REQUIRE_ANIME=1: CI installs it)."""
    why = anime_detect.available()
    if why:
        if os.environ.get('STYLEGAN2_LIB_REQUIRE_ANIME') == '1':
            pytest.fail(why)
        pytest.skip(why)


def hand_face(eye_left, eye_right, mouth, chin, nose=None):
    pts = [np.asarray(p, np.float64) for p in (eye_left, eye_right, mouth, chin)]
    nose = (pts[2] + (pts[0] + pts[1]) / 2) / 2 if nose is None else np.asarray(nose, np.float64)
    return DrawnFace(1.0, np.array([0, 0, 1, 1.0]), pts[0], pts[1], pts[2], nose, pts[3])


def rotate(points, degrees, about):
    t = np.deg2rad(degrees)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return [(np.asarray(p, np.float64) - about) @ r.T + about for p in points]

#----------------------------------------------------------------------------
# The maths, on detector outputs given by hand.

def test_eyes_land_where_ffhqs_recipe_puts_them():
    # eye distance 80, mouth 40 below: 2 * 80 > 1.8 * 40, so the quad is 4 eye distances wide (320 px), centred
    # 0.1 * eye_to_mouth below the eyes: eyes at x 0.375 / 0.625 and y 0.5 - 4 / 320; mouth 36 / 320 below centre.
    face = hand_face((100, 200), (180, 200), (140, 240), (140, 280))
    quad = align.drawn_quad(face)
    assert quad.size == pytest.approx(320)
    got = quad.to_output([face.eye_left, face.eye_right, face.mouth, face.chin], 1)
    np.testing.assert_allclose(got, [[0.375, 0.4875], [0.625, 0.4875], [0.5, 0.6125], [0.5, 0.7375]], atol=1e-12)


def test_a_long_chin_widens_the_crop_to_keep_a_tenth_below_it():
    face = hand_face((100, 200), (180, 200), (140, 240), (140, 400))     # chin 196 px below the centre
    quad = align.drawn_quad(face)
    assert quad.size == pytest.approx(2 * 196 / 0.8)                   # chin at 0.9 of the side, not beyond
    got = quad.to_output([face.eye_left, face.eye_right, face.chin], 1)
    np.testing.assert_allclose(got[2], [0.5, 0.9], atol=1e-12)
    assert got[0, 1] == pytest.approx(got[1, 1]) and got[0, 0] + got[1, 0] == pytest.approx(1.0)   # still level, centred
    short = hand_face((100, 200), (180, 200), (140, 240), (140, 300))  # well inside: no widening
    assert align.drawn_quad(short).size == pytest.approx(320)


@pytest.mark.parametrize('degrees', [-35, 20, 90])
def test_a_tilted_face_comes_out_level(degrees):
    upright = hand_face((100, 200), (180, 200), (140, 240), (140, 280))
    pts = rotate([upright.eye_left, upright.eye_right, upright.mouth, upright.chin], degrees, np.array([300.0, 260.0]))
    tilted = hand_face(*pts)
    want = align.drawn_quad(upright).to_output([upright.eye_left, upright.eye_right, upright.mouth], 1)
    got = align.drawn_quad(tilted).to_output(pts[:3], 1)
    np.testing.assert_allclose(got, want, atol=1e-9)


def dots(size, points, radius):
    img = Image.new('RGB', size, (200, 170, 150))
    draw = ImageDraw.Draw(img)
    for (x, y), colour in zip(points, [(255, 0, 0), (0, 0, 255), (0, 160, 0)]):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return img


def centroid(a, channel):
    other = [c for c in range(3) if c != channel]
    mask = (a[..., channel] > 150) & (a[..., other].max(-1) < 90)
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize('where', ['inside', 'at the edge'])
def test_the_crop_puts_the_drawn_eyes_there_and_pads_outside_the_image(where):
    # A picture whose "eyes" and "mouth" are coloured discs; the aligned crop must show them where the quad says.
    # 'at the edge': the face sits in the image's corner, so most of the quad lies outside and the recipe pads.
    shift = np.array([0.0, 0.0]) if where == 'inside' else np.array([-220.0, -150.0])
    eyes_mouth = [np.array(p) + shift for p in [(300, 300), (380, 300), (340, 340)]]
    img = dots((640, 640), eyes_mouth, 9)
    face = hand_face(*eyes_mouth, eyes_mouth[2] + [0, 40])
    crop, quad = align._align_with_quad(img, align.drawn_quad(face), 128)
    a = np.asarray(crop)
    assert a.shape == (128, 128, 3)
    expected = np.array([[0.375, 0.4875], [0.625, 0.4875], [0.5, 0.6125]]) * 128
    for channel, want in zip([0, 2, 1], expected):
        np.testing.assert_allclose(centroid(a, channel), want - 0.5, atol=1.0)   # pixel centres at i + 0.5
    if where == 'at the edge':
        # the quad reaches 60 px past the image's top-left: padded by reflection, not left black
        assert (a[:20, :20].reshape(-1, 3).min(axis=0) > 100).all()
        assert np.asarray(quad).min() < 0

#----------------------------------------------------------------------------
# The detector on real drawn faces.

# animeface.detect's output for the shipped files (tests/data/drawn_faces/README.md): boxes (x, y, w, h);
# its left eye is the character's, on the image's right.
UPSTREAM = {CONCERT: dict(face=(163, 163, 262, 262), left_eye=(320, 219, 77, 79), right_eye=(191, 226, 66, 75),
                          mouth=(257, 341, 61, 42), nose=(269, 316), chin=(283, 397)),
            SPRITE: dict(face=(83, 62, 166, 166), left_eye=(181, 109, 47, 46), right_eye=(91, 107, 45, 46),
                         mouth=(147, 179, 22, 11), nose=(155, 160), chin=(152, 205))}


def box_centre(b):
    return np.array([b[0] + (b[2] - 1) / 2, b[1] + (b[3] - 1) / 2])


@pytest.mark.parametrize('path', [CONCERT, SPRITE], ids=['concert', 'sprite'])
def test_the_detector_finds_what_animeface_found(path):
    require_detector()
    faces = anime_detect.detect(Image.open(path))
    assert len(faces) == 1
    f, up = faces[0], UPSTREAM[path]
    assert f.likelihood == pytest.approx(1.0)
    np.testing.assert_array_equal(f.box, up['face'])
    np.testing.assert_array_equal(f.eye_left, box_centre(up['right_eye']))     # image-left = the character's right
    np.testing.assert_array_equal(f.eye_right, box_centre(up['left_eye']))
    np.testing.assert_array_equal(f.mouth, box_centre(up['mouth']))
    # animeface reports the nose and chin boxes' top-left corners; the points are those boxes' centres, the boxes
    # round(d / 16) px wide for a face box of side d (nv_face_detect.c)
    half = (round(up['face'][2] / 16) - 1) / 2
    np.testing.assert_array_equal(f.nose, np.add(up['nose'], half))
    np.testing.assert_array_equal(f.chin, np.add(up['chin'], half))


def test_large_images_are_shrunk_for_detection_and_mapped_back():
    require_detector()
    img = Image.open(CONCERT).convert('RGB')
    big = img.resize((img.width * 3, img.height * 3 - 101), Image.BICUBIC)    # 1830 x 1729 > MAX_SIDE, not square
    s = max(big.size) / anime_detect.MAX_SIDE
    small_size = (round(big.width / s), round(big.height / s))                # 1600 x 1512: rounded per axis
    scale = np.array(big.size, np.float64) / small_size                        # so each axis has its own scale
    assert scale[0] != pytest.approx(scale[1], rel=1e-6)
    large = anime_detect.detect(big)[0]
    # what the detector found on the shrunk copy, in the big image's pixels (centres at i: x -> (x + 0.5) s - 0.5)
    shrunk = anime_detect.detect(big.resize(small_size, Image.BILINEAR))[0]
    for name in ('eye_left', 'eye_right', 'mouth', 'nose', 'chin'):
        np.testing.assert_allclose(getattr(large, name), (getattr(shrunk, name) + 0.5) * scale - 0.5, rtol=1e-12)
    np.testing.assert_allclose(large.box[2:], shrunk.box[2:] * scale, rtol=1e-12)
    # the box's first pixel x covers [x - 0.5, x + 0.5]: its left edge x - 0.5 maps to (x - 0.5 + 0.5) s - 0.5, the
    # edge of the big image's pixel x s
    np.testing.assert_allclose(large.box[:2], shrunk.box[:2] * scale, rtol=1e-12)
    # and it is the same face as in the original image, about three times as large (within 4% of the face's size)
    small = anime_detect.detect(img)[0]
    factor = np.array(big.size, np.float64) / img.size
    for name in ('eye_left', 'eye_right', 'mouth', 'chin'):
        np.testing.assert_allclose(getattr(large, name), (getattr(small, name) + 0.5) * factor - 0.5, atol=0.04 * large.size)


def test_no_face_in_a_plain_or_tiny_image():
    require_detector()
    assert anime_detect.detect(Image.new('RGB', (300, 200), (240, 230, 220))) == []
    assert anime_detect.detect(np.zeros((20, 30, 3), np.uint8)) == []             # below the smallest window


@pytest.mark.parametrize('path', [CONCERT, SPRITE], ids=['concert', 'sprite'])
def test_aligned_drawn_faces_have_their_eyes_where_the_recipe_puts_them(path):
    require_detector()
    photo = Image.open(path)
    face = align.align_drawn_face_with_transform(photo, 256)
    assert face.image.size == (256, 256) and face.detection['likelihood'] == pytest.approx(1.0)
    found = anime_detect.detect(face.image)                                  # detect again, in the crop
    assert len(found) == 1
    eyes = np.array([found[0].eye_left, found[0].eye_right])
    np.testing.assert_allclose(eyes, np.array([[0.375, 0.48], [0.625, 0.48]]) * 256, atol=0.03 * 256)
    # and the recorded transform maps the photo's eyes where the quad puts them (FFHQ's x axis leans toward the
    # mouth's perpendicular, so in a three-quarter view the eyes are level only within a few pixels)
    det = DrawnFace.from_dict(face.detection)
    eyes_photo = np.array([det.eye_left, det.eye_right])
    mapped = face.transform.to_crop(eyes_photo + 0.5, 256)               # continuous coordinates: centres at i + 0.5
    np.testing.assert_allclose(mapped, align.drawn_quad(det).to_output(eyes_photo, 256), atol=1e-6)
    assert abs(mapped[0, 1] - mapped[1, 1]) < 0.01 * 256

#----------------------------------------------------------------------------
# align_folder, the CLI and the dataset report.

@pytest.fixture
def drawn_folder(tmp_path):
    src = tmp_path / 'drawn'
    src.mkdir()
    for p in (CONCERT, SPRITE):
        Image.open(p).save(src / (p.stem + '.png'))
    Image.new('RGB', (200, 200), (30, 120, 220)).save(src / 'sky.png')
    return src


def test_align_folder_anime_records_quality_and_what_was_missed(drawn_folder, tmp_path):
    require_detector()
    dest = tmp_path / 'faces'
    result = align.align_folder(drawn_folder, dest, size=256, mode='anime', progress=False)
    assert [p.name for p in result.written] == ['renpy_concert_eileen_00.png', 'renpy_eileen_happy_00.png']
    assert result.faceless == ['sky.png'] and result.too_small == []
    faces = json.loads((dest / align.FACES_FILE).read_text())
    assert faces['renpy_concert_eileen_00.png']['detection']['likelihood'] == pytest.approx(1.0)
    assert faces['renpy_concert_eileen_00.png']['source_px'] == pytest.approx(538.4, abs=0.1)   # 4 x eye distance 134.6
    assert align.read_alignment_record(dest) == {'mode': 'anime', 'size': 256, 'photos': 3, 'detected': 2,
                                                 'failed': 1, 'too_small': 0, 'written': 2}
    assert set(align.read_face_transforms(dest)) == {p.name for p in result.written}


def test_faces_too_small_are_reported_not_upscaled(drawn_folder, tmp_path):
    require_detector()
    # the sprite's crop spans 364 photo pixels, the concert's 538: at 512 px only the concert face is kept
    result = align.align_folder(drawn_folder, tmp_path / 'big', size=512, mode='anime', progress=False)
    assert [p.name for p in result.written] == ['renpy_concert_eileen_00.png']
    assert result.too_small == [{'photo': 'renpy_eileen_happy.png', 'face': 0, 'source_px': pytest.approx(364.1, abs=0.1)}]
    assert align.read_alignment_record(tmp_path / 'big')['too_small'] == 1
    kept = align.align_folder(drawn_folder, tmp_path / 'up', size=512, mode='anime', allow_upscale=True, progress=False)
    assert len(kept.written) == 2 and kept.too_small == []
    with pytest.raises(ValueError, match='every drawn face found \\(2\\) covers fewer than 1024 px'):
        align.align_folder(drawn_folder, tmp_path / 'none', size=1024, mode='anime', progress=False)
    assert not (tmp_path / 'none').exists()


def test_cli_align_anime_and_the_dataset_report(drawn_folder, tmp_path, capsys):
    require_detector()
    dest = tmp_path / 'faces'
    assert main(['align', str(drawn_folder), str(dest), '--anime', '--size', '512']) == 0
    out, err = capsys.readouterr()
    assert 'wrote 1 aligned drawn 512x512 face(s)' in out
    assert 'no face found in 1 photo(s), skipped: sky.png; --centre-crop' in err
    assert '1 face(s) cover fewer than 512 px of their photo, left out (--allow-upscale keeps them): ' \
           'renpy_eileen_happy.png (364 px)' in err
    assert main(['dataset', str(dest), '--report', str(tmp_path / 'report')]) == 0
    out, _ = capsys.readouterr()
    assert 'aligned (anime, 512 px): 3 photos, a face detected in 2, none in 1; 1 faces too small left out; 1 crops' in out
    report = json.loads((tmp_path / 'report' / 'report.json').read_text())
    assert report['alignment']['failed'] == 1 and report['images'] == 1
    # a damaged alignment.json: the report is still written, without the counts, and says why
    (dest / align.ALIGNMENT_FILE).write_text('{"mode": "anime", "photos": -3')
    assert main(['dataset', str(dest), '--report', str(tmp_path / 'report2')]) == 0
    _, err = capsys.readouterr()
    assert 'alignment.json' in err and json.loads((tmp_path / 'report2' / 'report.json').read_text())['alignment'] is None


def test_cli_align_anime_without_the_detector_says_what_to_install(drawn_folder, tmp_path, capsys, monkeypatch):
    import importlib.metadata
    real = importlib.metadata.distribution
    def missing(name):
        if name == 'animeface':
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)
    monkeypatch.setattr(importlib.metadata, 'distribution', missing)
    monkeypatch.setattr(anime_detect, '_LIB', None)
    assert main(['align', str(drawn_folder), str(tmp_path / 'out'), '--anime']) == 1
    assert 'pip install "stylegan2_lib[anime]"' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_cli_align_modes_are_exclusive(drawn_folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(['align', str(drawn_folder), str(tmp_path / 'out'), '--anime', '--centre-crop'])
    assert 'not allowed with argument' in capsys.readouterr().err


@pytest.mark.parametrize('text', ['[]', '{"mode": "anime"}', '{"mode": "cartoon", "size": 256, "photos": 1, '
                                  '"detected": 1, "failed": [], "too_small": [], "written": 1}',
                                  '{"mode": "anime", "size": 256, "photos": -1, "detected": 1, "failed": [], '
                                  '"too_small": [], "written": 1}', 'not json'])
def test_a_bad_alignment_record_is_named(tmp_path, text):
    (tmp_path / align.ALIGNMENT_FILE).write_text(text)
    with pytest.raises(ValueError, match='alignment.json'):
        align.read_alignment_record(tmp_path)


def test_frames_of_a_drawn_clip_aligned_and_deduplicated(tmp_path, capsys):
    """Clip -> frames -> drawn faces -> one per shot: the sample clip has two shots (a slow pan over each drawing);
    one frame every 0.5 s gives two frames per shot, whose aligned faces are near-duplicates."""
    require_detector()
    pytest.importorskip('imageio_ffmpeg', reason='frames are read with the video extra (imageio-ffmpeg)')
    from stylegan2_lib import samples
    clip = samples.drawn_clip(tmp_path / 'clips' / 'drawn.mp4')
    dest = tmp_path / 'out'
    assert main(['frames', str(clip), str(dest), '--every', '0.5', '--align', 'anime', '--size', '64']) == 0
    out, _ = capsys.readouterr()
    assert 'wrote 4 frames from 1 clip' in out and 'wrote 4 aligned drawn 64x64 face(s)' in out
    assert len(list((dest / 'frames').glob('*.png'))) == 4
    assert align.read_alignment_record(dest / 'faces') == {'mode': 'anime', 'size': 64, 'photos': 4, 'detected': 4,
                                                           'failed': 0, 'too_small': 0, 'written': 4}
    zip_path = tmp_path / 'set.zip'
    assert main(['dataset', str(dest / 'faces'), str(zip_path), '--resolution', '64', '--dedupe', '--report']) == 0
    out, _ = capsys.readouterr()
    assert '4 images, 2 distinct (2 near-duplicates in 2 groups' in out
    groups = json.loads((tmp_path / 'out' / 'faces_report' / 'report.json').read_text())['groups']
    assert sorted(g['keep'][:14] for g in groups) == ['drawn_000000.0', 'drawn_000001.0']   # one group per shot
    # --size / --allow-upscale only with --align
    assert main(['frames', str(clip), str(tmp_path / 'x'), '--size', '64']) == 1
    assert '--size and --allow-upscale are for --align' in capsys.readouterr().err


def test_a_folder_without_drawn_faces_is_an_error_that_writes_nothing(tmp_path, capsys):
    require_detector()
    src = tmp_path / 'plain'
    src.mkdir()
    Image.new('RGB', (300, 200), (30, 120, 220)).save(src / 'sky.png')
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(src / 'noise.png')
    assert main(['align', str(src), str(tmp_path / 'out'), '--anime']) == 1
    assert f'{src}: no drawn face found in any photo (use --centre-crop' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_frames_align_of_a_clip_without_faces_keeps_the_frames_and_says_so(tmp_path, capsys):
    require_detector()
    imageio_ffmpeg = pytest.importorskip('imageio_ffmpeg', reason='frames are read with the video extra (imageio-ffmpeg)')
    clip = tmp_path / 'sky.mp4'
    writer = imageio_ffmpeg.write_frames(str(clip), (160, 128), fps=4)
    writer.send(None)
    for level in range(8):
        writer.send(np.full((128, 160, 3), 40 + 20 * level, np.uint8))
    writer.close()
    dest = tmp_path / 'out'
    assert main(['frames', str(clip), str(dest), '--every', '1', '--align', 'anime']) == 1
    err = capsys.readouterr().err
    assert 'no drawn face found in any photo' in err and f'the frames stay in {dest / "frames"}' in err
    assert len(list((dest / 'frames').glob('*.png'))) == 2 and not (dest / 'faces').exists()


def test_a_transparent_sprite_is_read_over_white_as_the_dataset_tool_reads_it(tmp_path):
    """Character sprites come as RGBA with a transparent background, often black underneath: read over white
    (data.to_rgb), the drawing is found as in its flattened copy; read by dropping alpha it would sit on black."""
    require_detector()
    flat = np.asarray(Image.open(SPRITE).convert('RGB'))
    background = (flat > 245).all(axis=2)
    rgba = np.dstack([np.where(background[..., None], 0, flat), np.where(background, 0, 255)]).astype(np.uint8)
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'sprite.png')
    photo = align.read_photo(tmp_path / 'sprite.png')
    assert np.array_equal(np.asarray(photo)[background], np.full((background.sum(), 3), 255, np.uint8))
    f, g = anime_detect.detect(photo)[0], anime_detect.detect(Image.open(SPRITE))[0]
    np.testing.assert_allclose([f.eye_left, f.eye_right], [g.eye_left, g.eye_right], atol=2)


def test_aligning_again_removes_only_the_crops_an_earlier_run_made(drawn_folder, tmp_path, capsys):
    """A second run at another size keeps fewer faces: the first run's extra crop must not stay behind to go into
    a dataset made of the folder; a file the user put there stays. A DEST inside SRC is not read as photos."""
    require_detector()
    dest = drawn_folder / 'faces'                                        # inside SRC
    first = align.align_folder(drawn_folder, dest, size=256, mode='anime', progress=False)
    assert len(first.written) == 2 and first.removed == []
    Image.new('RGB', (8, 8)).save(dest / 'mine.png')                     # the user's own file
    (dest / 'faces.json').write_text(
        (dest / 'faces.json').read_text().replace('{', '{"../outside.png": {}, ', 1))   # a hostile record entry
    (tmp_path / 'outside.png').write_bytes(b'keep me')
    second = align.align_folder(drawn_folder, dest, size=512, mode='anime', progress=False)
    assert [p.name for p in second.written] == ['renpy_concert_eileen_00.png']   # the sprite is too small at 512
    assert second.removed == ['renpy_eileen_happy_00.png']
    assert sorted(p.name for p in dest.iterdir()) == ['alignment.json', 'faces.json', 'mine.png', 'renpy_concert_eileen_00.png']
    assert (tmp_path / 'outside.png').read_bytes() == b'keep me'
    assert align.read_alignment_record(dest)['photos'] == 3              # the crops in faces/ were not photos
    assert main(['align', str(drawn_folder), str(dest), '--anime', '--size', '256']) == 0
    assert 'removed' not in capsys.readouterr().err                      # a third run only adds back


@pytest.mark.parametrize('argv', [['align', 'SRC', 'OUT', '--size', '0'], ['align', 'SRC', 'OUT', '--size', '-64'],
                                  ['align', 'SRC', 'OUT', '--size', 'big'],
                                  ['frames', 'SRC/x.mp4', 'OUT', '--align', 'anime', '--size', '5000']])
def test_a_bad_face_size_is_refused_before_anything_is_read(tmp_path, capsys, argv):
    argv = [a.replace('SRC', str(tmp_path / 'src')).replace('OUT', str(tmp_path / 'out')) for a in argv]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and 'argument --size' in capsys.readouterr().err and not (tmp_path / 'out').exists()
    with pytest.raises(ValueError, match='size must be a whole number of pixels from 8 to 4096'):
        align.align_folder(tmp_path, tmp_path / 'out', size=0)


def test_the_report_shows_the_crops_the_detector_was_least_sure_of(tmp_path, capsys):
    """faces.json's scores, set by hand here: listed lowest first, counted below 0.9, drawn in lowest_scores.png;
    a crop without a detection (a centre crop) is not listed; a damaged faces.json is a warning."""
    from stylegan2_lib import dedupe
    folder = tmp_path / 'faces'
    folder.mkdir()
    rng = np.random.default_rng(0)
    scores = {'a.png': 0.99, 'b.png': 0.52, 'c.png': 0.87, 'd.png': 1.0}
    for name in [*scores, 'e.png']:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / name)
    entry = lambda s: {'photo': 'x.png', 'quad': [[0, 0], [0, 1], [1, 1], [1, 0]], 'photo_size': [1, 1],   # noqa: E731
                       'detection': {'likelihood': s}}
    record = {n: entry(s) for n, s in scores.items()} | {'e.png': {'photo': 'y.png', 'quad': [[0, 0], [0, 1], [1, 1], [1, 0]],
                                                                   'photo_size': [1, 1], 'landmarks': None}}
    (folder / align.FACES_FILE).write_text(json.dumps(record))
    assert main(['dataset', str(folder), '--report', str(tmp_path / 'rep')]) == 0
    out = capsys.readouterr().out
    assert 'drawn-face detector scores: median 0.930, 2 of 4 below 0.9' in out
    report = json.loads((tmp_path / 'rep' / 'report.json').read_text())
    assert report['lowest_scores'] == [{'file': 'b.png', 'score': 0.52}, {'file': 'c.png', 'score': 0.87},
                                       {'file': 'a.png', 'score': 0.99}, {'file': 'd.png', 'score': 1.0}]
    t, pad = dedupe.THUMB, 2
    with Image.open(tmp_path / 'rep' / dedupe.LOWEST_PNG) as sheet:             # 4 tiles: 2 x 2
        assert sheet.size == (2 * t + pad, 2 * t + pad)
        first = np.asarray(sheet.convert('RGB'))[:t, :t]
    want = np.asarray(dedupe.scan(folder, progress=False).thumbs[1])           # b.png's thumbnail first
    np.testing.assert_array_equal(first, want)
    # damaged scores: a warning, the report without them (and without a stale sheet)
    record['a.png']['detection']['likelihood'] = 'high'
    (folder / align.FACES_FILE).write_text(json.dumps(record))
    assert main(['dataset', str(folder), '--report', str(tmp_path / 'rep')]) == 0
    err = capsys.readouterr().err
    assert 'faces.json' in err and 'detector scores out' in err
    assert json.loads((tmp_path / 'rep' / 'report.json').read_text())['lowest_scores'] == []
    assert not (tmp_path / 'rep' / dedupe.LOWEST_PNG).exists()
