"""FFHQ alignment on real photos that ship in packages: the eyes land where the recipe puts them."""

import numpy as np
import pytest
from PIL import Image

from stylegan2_lib import align

dlib = pytest.importorskip('dlib', reason='alignment needs the [align] extra')


def photos():
    from matplotlib import cbook
    from skimage import data
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
