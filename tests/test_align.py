"""FFHQ alignment on real photos that ship in packages: the eyes land where the recipe puts them."""

import numpy as np
import pytest
from PIL import Image

from stylegan2_lib import align

dlib = pytest.importorskip('dlib', reason='alignment needs the [align] extra')


def photos():
    cbook = pytest.importorskip('matplotlib.cbook', reason='the sample photo comes with matplotlib (the notebook extra)')
    data = pytest.importorskip('skimage.data', reason='the astronaut photo comes with scikit-image (the test extra)')
    return {'grace_hopper': Image.open(cbook.get_sample_data('grace_hopper.jpg')).convert('RGB'),
            'astronaut': Image.fromarray(data.astronaut())}


@pytest.mark.parametrize('name', ['grace_hopper', 'astronaut'])
@pytest.mark.parametrize('size', [128, 256])
def test_eyes_land_where_the_ffhq_recipe_puts_them(name, size):
    photo = photos()[name]
    lm = align.face_landmarks(photo)[0]                              # the largest face
    quad = align.ffhq_quad(lm)
    out = align.align_with_quad(photo, quad, size)
    assert out.size == (size, size) and out.mode == 'RGB'
    eyes_in = np.array([lm[36:42].mean(0), lm[42:48].mean(0)])
    expected = quad.to_output(eyes_in, size)
    # The recipe's geometry, independently of the detector: the quad is 2 |eye_to_eye| (or 1.8 |eye_to_mouth|)
    # half-wide, so the eyes sit 1/4 of the width apart when the eye distance dominates, symmetric about
    # the centre line, on one horizontal line.
    assert abs(expected[:, 0].mean() - size / 2) < 0.02 * size
    assert abs(expected[0, 1] - expected[1, 1]) < 0.01 * size
    assert 0.2 * size < expected[1, 0] - expected[0, 0] <= 0.25 * size + 1e-6
    # And the aligned image really has its eyes there: detect again on the output.
    lm_out = align.face_landmarks(out)[0]
    found = np.array([lm_out[36:42].mean(0), lm_out[42:48].mean(0)])
    assert np.abs(found - expected).max() < 0.02 * size + 1.5, (found, expected)


def test_align_face_and_no_face():
    img = align.align_face(photos()['astronaut'], size=64)
    assert img.size == (64, 64)
    blank = Image.new('RGB', (200, 200), (120, 130, 140))
    with pytest.raises(align.NoFaceFound):
        align.align_face(blank)


def test_every_face_is_returned():
    a = photos()['astronaut']
    two = Image.new('RGB', (a.width * 2, a.height))
    two.paste(a, (0, 0))
    two.paste(a.transpose(Image.FLIP_LEFT_RIGHT), (a.width, 0))
    crops = align.align_face(two, size=64, all_faces=True)
    # every face found in the photo, twice over in the mirrored pair (the astronaut's suit patch counts too)
    assert len(crops) == 2 * len(align.face_landmarks(a)) >= 2
    assert all(c.size == (64, 64) for c in crops)


def test_centre_crop_fallback():
    img = Image.new('RGB', (300, 200), (0, 0, 0))
    img.paste((255, 0, 0), (50, 0, 250, 200))          # the centred 200x200 square is red
    out = align.centre_crop(img, 32)
    assert out.size == (32, 32) and np.asarray(out)[..., 0].min() > 250 and np.asarray(out)[..., 1].max() < 5


#----------------------------------------------------------------------------
# The way back: each crop's transform, and the crop warped into its photo through a feathered face mask.

def test_align_face_with_transform_keeps_the_crop_and_maps_the_landmarks():
    photo = photos()['grace_hopper']
    face = align.align_face_with_transform(photo, size=64)
    np.testing.assert_array_equal(np.asarray(face.image), np.asarray(align.align_face(photo, size=64)))  # same crop
    t = face.transform
    assert t.photo_size == photo.size and t.quad.shape == (4, 2) and t.landmarks.shape == (68, 2)
    eyes = np.array([t.landmarks[36:42].mean(0), t.landmarks[42:48].mean(0)]) + 0.5
    in_crop = t.to_crop(eyes, 64)                                    # the recipe's eye line: a quarter of the width apart
    assert abs(in_crop[:, 0].mean() - 32) < 1 and abs(in_crop[0, 1] - in_crop[1, 1]) < 1
    np.testing.assert_allclose(t.to_photo(in_crop, 64), eyes, atol=1e-9)
    # a photo big enough for the recipe to shrink it first: the quad is still in the photo's own pixels
    big = photo.resize((photo.width * 3, photo.height * 3), Image.LANCZOS)
    tb = align.align_face_with_transform(big, size=32).transform
    assert np.abs(tb.quad - t.quad * 3).max() < 0.03 * 3 * np.ptp(t.quad[:, 0])
    assert len(align.align_face_with_transform(photo, size=32, all_faces=True)) == len(align.face_landmarks(photo))


def assert_pasted_identity(photo, pasted, mask, inside_mean):
    before, after = np.asarray(photo, np.float32), np.asarray(pasted, np.float32)
    assert after.shape == before.shape and mask.shape == before.shape[:2]
    assert mask.min() >= 0 and mask.max() == 1
    np.testing.assert_array_equal(after[mask == 0], before[mask == 0])   # untouched outside the mask
    assert np.abs(after - before)[mask > 0.5].mean() < inside_mean        # resampled twice inside


@pytest.mark.parametrize('color_match', [True, False])
def test_pasting_the_aligned_crop_back_gives_the_photo(color_match):
    """The identity case: the aligned crop itself pasted back. Outside the mask the photo is unchanged to the
    bit; inside, the crop was resampled there and back (256 px for a 330 px face: under 5 grey levels on average)."""
    photo = photos()['grace_hopper']
    face = align.align_face_with_transform(photo, size=256)
    pasted, mask = align.paste_face(photo, face.image, face.transform, color_match=color_match)
    assert_pasted_identity(photo, pasted, mask, inside_mean=5)
    nose = np.int64(face.transform.landmarks[30])
    assert mask[nose[1], nose[0]] == 1                                   # the face is covered...
    assert (mask > 0).mean() < 0.3 and mask[0].max() == mask[-1].max() == mask[:, 0].max() == mask[:, -1].max() == 0
    ellipse, emask = align.paste_face(photo, face.image, face.transform, color_match=color_match,
                                      mask=align.face_mask(face.transform, shape='ellipse'))
    assert_pasted_identity(photo, ellipse, emask, inside_mean=5)


def test_the_mask_lies_inside_the_photo_when_the_face_is_cut_by_its_edge():
    """The face's quad runs past the photo's left edge: the mask is clipped to the photo, and the pixels it
    reaches are the only ones that change."""
    photo = photos()['grace_hopper']
    t = align.align_face_with_transform(photo, size=64).transform
    cut = photo.crop((200, 0, photo.width, photo.height))
    shifted = align.FaceTransform(t.quad - [200, 0], cut.size, t.landmarks - [200, 0])
    assert shifted.quad[:, 0].min() < 0 and shifted.box()[0] == 0
    inverted = Image.fromarray(255 - np.asarray(align.align_with_quad(photo, align.ffhq_quad(t.landmarks), 64)))
    pasted, mask = align.paste_face(cut, inverted, shifted, color_match=False)
    before, after = np.asarray(cut, np.int16), np.asarray(pasted, np.int16)
    assert mask.shape == (cut.height, cut.width) and mask.max() == 1
    np.testing.assert_array_equal(after[mask == 0], before[mask == 0])
    assert np.abs(after - before)[mask == 1].mean() > 50                 # the inverted face is there
    nowhere = align.FaceTransform(t.quad + [2000, 0], photo.size, t.landmarks + [2000, 0])   # wholly outside
    same, none = align.paste_face(photo, inverted, nowhere)
    assert none.max() == 0 and np.array_equal(np.asarray(same), np.asarray(photo))


def test_face_masks():
    t = align.align_face_with_transform(photos()['astronaut'], size=64).transform
    hull, ellipse = align.face_mask(t), align.face_mask(t, shape='ellipse', feather=0)
    for m in (hull, ellipse):
        assert m.shape == (256, 256) and m.dtype == np.float32 and m.max() == 1
        assert m[0].max() == m[-1].max() == m[:, 0].max() == m[:, -1].max() == 0    # never reaches the crop's edge
        assert m[128, 128] == 1                                                      # the middle of the face
    assert set(np.unique(ellipse)) == {0, 1} and 0 < ((hull > 0) & (hull < 1)).mean()  # feather 0: a hard edge
    for bad in (-0.01, float('nan'), 0.5, True, '0.1'):                                   # refused, not clamped
        with pytest.raises(ValueError, match='feather must be a fraction of the crop'):
            align.face_mask(t, feather=bad)
    central = align.face_mask(align.centre_crop_with_transform(photos()['astronaut'], 64).transform)
    assert central[128, 128] == 1 and central[0].max() == 0                     # no landmarks: a central ellipse
    with pytest.raises(ValueError, match="'hull' or 'ellipse'"):
        align.face_mask(t, shape='square')


def test_align_folder_records_where_every_face_came_from(tmp_path):
    pytest.importorskip('dlib')
    src, dest = tmp_path / 'photos', tmp_path / 'faces'
    src.mkdir()
    photos()['grace_hopper'].save(src / 'grace.png')
    Image.new('RGB', (64, 64), (90, 90, 90)).save(src / 'blank.png')         # no face: listed, no entry
    result = align.align_folder(src, dest, size=64, progress=False)
    assert result.faceless == ['blank.png'] and [p.name for p in result.written] == ['grace_00.png']
    recorded = align.read_face_transforms(dest)
    assert list(recorded) == ['grace_00.png']
    photo_path, t = recorded['grace_00.png']
    assert photo_path == str((src / 'grace.png').resolve())
    direct = align.align_face_with_transform(Image.open(src / 'grace.png').convert('RGB'), 64)   # computed anew
    np.testing.assert_allclose(t.quad, direct.transform.quad, atol=1e-9)
    np.testing.assert_allclose(t.landmarks, direct.transform.landmarks, atol=1e-9)
    assert t.photo_size == direct.transform.photo_size
    assert np.array_equal(np.asarray(Image.open(dest / 'grace_00.png')), np.asarray(direct.image))
    # the crop's corners are the quad's corners in the photo
    np.testing.assert_allclose(t.to_photo([[0, 0], [0, 64], [64, 64], [64, 0]], 64), t.quad, atol=1e-9)
    centre = align.align_folder(src / 'blank.png', tmp_path / 'centre', size=32, centre=True, progress=False)
    _, tc = align.read_face_transforms(tmp_path / 'centre')['blank_00.png']
    assert centre.written and tc.landmarks is None and tc.quad.tolist() == [[0, 0], [0, 64], [64, 64], [64, 0]]
    assert align.read_alignment_record(dest) == {'mode': 'photo', 'size': 64, 'photos': 2, 'detected': 1, 'failed': 1,
                                                 'too_small': 0, 'written': 1}


def test_align_folder_leaves_out_faces_smaller_than_the_output(tmp_path):
    pytest.importorskip('dlib')
    src = tmp_path / 'photos'
    src.mkdir()
    photo = photos()['grace_hopper']
    photo.save(src / 'grace.png')
    side = align.align_face_with_transform(photo, 64).source_size            # the crop's span in the photo
    size = int(side) + 8
    with pytest.raises(ValueError, match=f'every face found \\(1\\) covers fewer than {size} px'):
        align.align_folder(src, tmp_path / 'none', size=size, progress=False)
    assert not (tmp_path / 'none').exists()
    kept = align.align_folder(src, tmp_path / 'up', size=size, allow_upscale=True, progress=False)
    assert len(kept.written) == 1 and kept.too_small == []
    assert Image.open(kept.written[0]).size == (size, size)
    # the centre crop of a 64 px image is too small for 128 too
    Image.new('RGB', (64, 80), (90, 90, 90)).save(src / 'small.png')
    with pytest.raises(ValueError, match='covers fewer than 128 px'):
        align.align_folder(src / 'small.png', tmp_path / 'c', size=128, centre=True, progress=False)
