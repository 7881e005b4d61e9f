"""Photo -> aligned -> projected into the base generator -> rendered by the blend(s)."""

import importlib

import numpy as np
import pytest
import torch
from PIL import Image

import stylegan2_lib as sg
from stylegan2_lib import align, devices
from stylegan2_lib.blend import blend
from stylegan2_lib import samples
from stylegan2_lib.stylize import stylize

pytest.importorskip('dlib', reason='alignment needs the [align] extra')

# The module (sg.stylize is the function, as sg.project is; `import stylegan2_lib.stylize as m` would give it).
stylize_module = importlib.import_module('stylegan2_lib.stylize')


def grace_hopper():
    pytest.importorskip('matplotlib', reason='the sample photo comes with matplotlib (the notebook extra)')
    return samples.grace_hopper()


def test_stylize_is_public():
    assert sg.stylize is stylize and 'stylize' in sg.__all__ and stylize_module.stylize is stylize


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
    # it says where it ran (the GPU when there is one), and what comes back is on the CPU
    assert r.device == devices.describe_device(devices.default_device()) and r.projection.ws.device.type == 'cpu'


class Projected(Exception):
    """Raised by the stand-in projector once it has seen the networks."""

def test_stylize_runs_on_the_gpu_when_there_is_one(tiny32, monkeypatch):
    """Notebook 04 and the CLI projected on the CPU on a GPU runtime. Here CUDA is faked as available and
    the meta device stands in for the GPU (it cannot run the maths, so the projector is a spy): the
    projection must get the networks on that device, the caller's networks staying where they were."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    resolve = devices.default_device
    monkeypatch.setattr(stylize_module, 'default_device',
                        lambda name=None: torch.device('meta') if resolve(name).type == 'cuda' else resolve(name))
    seen = {}
    def spy(G, target, D=None, **kwargs):
        seen.update(G=next(G.parameters()).device.type, D=next(D.parameters()).device.type)
        raise Projected
    monkeypatch.setattr(stylize_module, 'project', spy)
    with pytest.raises(Projected):
        stylize(grace_hopper(), tiny32.G_ema, styled=tiny32.G, D=tiny32.D, steps=2, progress=False)
    assert seen == {'G': 'meta', 'D': 'meta'}
    assert {p.device.type for net in (tiny32.G_ema, tiny32.G, tiny32.D) for p in net.parameters()} == {'cpu'}
    with pytest.raises(Projected):                                             # an explicit choice is kept
        stylize(grace_hopper(), tiny32.G_ema, styled=tiny32.G, D=tiny32.D, steps=2, progress=False, device='cpu')
    assert seen == {'G': 'cpu', 'D': 'cpu'}


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


#----------------------------------------------------------------------------
# Identity: how much of the person in the photo each render keeps (dlib's face descriptors).

def astronaut():
    skimage_data = pytest.importorskip('skimage.data')
    return Image.fromarray(skimage_data.astronaut())


def test_identity_to_the_photo_is_one_for_the_same_face_and_lower_for_another_person():
    """On FFHQ-aligned 256 px crops: the photo itself 1, a small resize of it stays near 1, another person
    (scikit-image's astronaut) lower, a render without a face None, saying so."""
    photo = align.align_face(grace_hopper(), size=256)
    smaller = photo.resize((200, 200), Image.LANCZOS)                       # resized back to 256 before describing
    scores = stylize_module.identity_to_photo(photo, {'same': photo, 'smaller': smaller, 'other person': align.align_face(astronaut(), 256),
                                                      'wall': Image.new('RGB', (256, 256), (90, 90, 90))})
    assert list(scores) == ['same', 'smaller', 'other person', 'wall']
    assert scores['same'].similarity == pytest.approx(1.0, abs=1e-6) and scores['smaller'].similarity > 0.9
    assert scores['other person'].similarity < 0.5 < scores['smaller'].similarity   # dlib: not the same person
    assert scores['wall'].similarity is None and scores['wall'].note == 'no face found in the render'
    assert str(scores['wall']) == 'none (no face found in the render)' and str(scores['same']) == '1.00'
    blank = stylize_module.identity_to_photo(Image.new('RGB', (32, 32)), {'swap 8': photo})
    assert blank['swap 8'].similarity is None and 'no face found in the aligned photo' in blank['swap 8'].note


def stand_in_render(image):
    """A _render that ignores the generator and returns `image` (a PIL image at the generator's size)."""
    return lambda G, projection: image


def test_stylize_reports_the_identity_of_each_render(tiny32, monkeypatch):
    """Renders replaced by the aligned photo itself: every similarity is 1; by another person: lower. The
    projection, renders and strip are those of the real call (only the pixels of the renders are stood in)."""
    aligned = align.align_face(grace_hopper(), size=32)
    monkeypatch.setattr(stylize_module, '_render', stand_in_render(aligned))
    r = stylize(grace_hopper(), tiny32.G_ema, styled=tiny32.G, steps=2, loss='pixel', progress=False)
    assert list(r.identity) == ['projected', 'swap 4', 'swap 8', 'swap 16']
    assert all(v.similarity == pytest.approx(1.0, abs=1e-6) for v in r.identity.values())
    text = r.identity_text().splitlines()
    assert text[0].startswith('identity to the photo') and text[1:] == [
        '  projected  1.00', '  swap 4     1.00', '  swap 8     1.00', '  swap 16    1.00']
    monkeypatch.setattr(stylize_module, '_render', stand_in_render(align.align_face(astronaut(), size=32)))
    other = stylize(grace_hopper(), tiny32.G_ema, styled=tiny32.G, steps=2, loss='pixel', progress=False)
    assert all(v.similarity < 0.9 for v in other.identity.values())          # 32 px: dlib sees little, but less
    assert stylize(grace_hopper(), tiny32.G_ema, styled=tiny32.G, steps=2, loss='pixel', progress=False,
                   identity=False).identity == {}


def test_stylize_without_dlib_says_why_identity_is_missing(tiny32, monkeypatch):
    def no_dlib(images):
        raise align.AlignmentUnavailable('face likeness needs dlib and face_recognition_models')
    monkeypatch.setattr(stylize_module.metrics, 'describe_faces', no_dlib)
    r = stylize(grace_hopper(), tiny32.G_ema, styled=tiny32.G, align=False, steps=2, loss='pixel', progress=False)
    assert {v.similarity for v in r.identity.values()} == {None}
    assert all(v.note == 'not measured: face likeness needs dlib and face_recognition_models' for v in r.identity.values())
    assert list(r.stylized) == ['swap 4', 'swap 8', 'swap 16'] and r.strip is not None   # the stylizing itself is unaffected


#----------------------------------------------------------------------------
# Whole photos: every face stylised and pasted back. A perfect projection stands in for the real one (it
# returns the aligned crop itself) and the render shows it, whatever the blend: the "stylised" face is then
# exactly the aligned crop (or what `look` makes of it), so what is checked is the way back into the photo.

def stand_in_projection(monkeypatch, look=lambda crop: crop):
    def perfect(G, target, **kwargs):
        return stylize_module.Projection(torch.from_numpy(np.array(target)), [], [0.0], 'stand-in')
    monkeypatch.setattr(stylize_module, 'project', perfect)
    monkeypatch.setattr(stylize_module, '_render', lambda G, projection: Image.fromarray(look(projection.ws.numpy())))


def two_faces():
    """Grace Hopper and the astronaut side by side in one photo."""
    left, right = grace_hopper(), astronaut()
    photo = Image.new('RGB', (left.width + right.width, max(left.height, right.height)), (40, 40, 40))
    photo.paste(left, (0, 0))
    photo.paste(right, (left.width, 0))
    return photo, left.width


def test_paste_back_of_an_unchanged_face_gives_the_photo(tiny32, monkeypatch):
    """The identity case (a blend that is all base, a perfect projection): outside the mask the photo to the
    bit, inside within what a 32 px crop of a 330 px face keeps (a blurred copy)."""
    stand_in_projection(monkeypatch)
    photo = grace_hopper()
    r = stylize(photo, tiny32.G_ema, blended=tiny32.G_ema, paste_back=True, progress=False, identity=False)
    assert list(r.full) == ['blended'] and r.full['blended'].size == photo.size and r.other_faces == []
    before, after = np.asarray(photo, np.float32), np.asarray(r.full['blended'], np.float32)
    assert r.mask.shape == before.shape[:2] and r.mask.max() == 1 and r.mask.min() == 0
    np.testing.assert_array_equal(after[r.mask == 0], before[r.mask == 0])
    blurred = np.asarray(photo.resize((32, 32), Image.LANCZOS).resize(photo.size, Image.BILINEAR), np.float32)
    inside = r.mask > 0.5
    assert np.abs(after - before)[inside].mean() <= 1.2 * np.abs(blurred - before)[inside].mean()
    assert r.transform is not None and r.transform.photo_size == photo.size
    assert stylize(photo, tiny32.G_ema, blended=tiny32.G_ema, progress=False, identity=False).full == {}   # off by default
    centred = stylize(photo, tiny32.G_ema, blended=tiny32.G_ema, align=False, paste_back=True, progress=False, identity=False)
    after = np.asarray(centred.full['blended'], np.float32)                   # no landmarks: a central ellipse
    np.testing.assert_array_equal(after[centred.mask == 0], before[centred.mask == 0])
    assert centred.mask[photo.height // 2, photo.width // 2] == 1 and centred.transform.landmarks is None


def test_every_face_of_a_group_photo_is_replaced(tiny32, monkeypatch):
    """Two people side by side: all_faces finds both (and whatever else the detector sees), each face
    is projected on its own and pasted back; here the "stylised" faces are inverted crops, so every face's
    nose has changed, and nothing outside the masks."""
    stand_in_projection(monkeypatch, look=lambda crop: 255 - crop)
    photo, split = two_faces()
    r = stylize(photo, tiny32.G_ema, styled=tiny32.G, resolution=8, all_faces=True, paste_back=True, color_match=False,
                progress=False, identity=False)
    faces = [r, *r.other_faces]
    assert len(faces) == len(align.face_landmarks(photo)) >= 2 and list(r.full) == ['swap 8']
    noses = np.array([np.int64(f.transform.landmarks[30]) for f in faces])
    assert noses[:, 0].min() < split < noses[:, 0].max()                    # one on each side
    before, after = np.asarray(photo, np.int16), np.asarray(r.full['swap 8'], np.int16)
    for x, y in noses:
        assert r.mask[y, x] == 1 and np.abs(after[y, x] - before[y, x]).max() > 40
    np.testing.assert_array_equal(after[r.mask == 0], before[r.mask == 0])
    assert all(f.stylized['swap 8'].size == (32, 32) for f in faces)
    only_first = stylize(photo, tiny32.G_ema, styled=tiny32.G, resolution=8, paste_back=True, progress=False, identity=False)
    assert only_first.other_faces == [] and (only_first.mask > 0).sum() < (r.mask > 0).sum()
