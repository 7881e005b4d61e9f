"""Photo -> aligned -> projected into the base generator -> rendered by the blend(s)."""

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan2_lib import align
from stylegan2_lib.blend import blend
from stylegan2_lib.stylize import stylize

pytest.importorskip('dlib', reason='alignment needs the [align] extra')


def grace_hopper():
    from matplotlib import cbook
    return Image.open(cbook.get_sample_data('grace_hopper.jpg')).convert('RGB')


def test_stylize_strip_over_all_swap_resolutions(tiny32):
    base, styled = tiny32.G_ema, tiny32.G
    r = stylize(grace_hopper(), base, styled=styled, steps=8, loss='pixel', progress=False)
    assert list(r.stylized) == ['swap 4', 'swap 8', 'swap 16']
    assert r.aligned.size == r.projected.size == (32, 32)
    # every rendering is of the same projected latent and noise
    with torch.no_grad():
        expected = blend(base, styled, 8).synthesis(r.projection.ws, noise=r.projection.noise)
    got = torch.from_numpy(np.array(r.stylized["swap 8"])).permute(2, 0, 1).float()
    assert (got - (expected[0] * 127.5 + 128).clamp(0, 255).to(torch.uint8).float()).abs().max() <= 1
    # the aligned photo is the FFHQ crop at the generator's resolution
    np.testing.assert_array_equal(np.asarray(r.aligned), np.asarray(align.align_face(grace_hopper(), size=32)))
    # strip: photo | projected | 3 blends, tiles enlarged to 96 px (32 x 3), 2 px gaps, a 14 px label row
    assert r.strip.size == (5 * 96 + 4 * 2, 96 + 14)


def test_stylize_with_a_ready_blend_and_without_alignment(tiny32):
    G = blend(tiny32.G_ema, tiny32.G, 16)
    r = stylize(grace_hopper(), tiny32.G_ema, blended=G, align=False, steps=4, loss='pixel', progress=False)
    assert list(r.stylized) == ['blended']
    np.testing.assert_array_equal(np.asarray(r.aligned), np.asarray(align.centre_crop(grace_hopper(), 32)))


def test_no_face_and_bad_arguments(tiny32):
    with pytest.raises(align.NoFaceFound):
        stylize(Image.new('RGB', (128, 128), (90, 90, 90)), tiny32.G_ema, styled=tiny32.G, steps=2, progress=False)
    with pytest.raises(ValueError, match='styled generator'):
        stylize(grace_hopper(), tiny32.G_ema, steps=2, progress=False)
