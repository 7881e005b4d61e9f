"""One-shot stylisation (stylegan2_lib.oneshot, issue 17) on the bundled 32x32 demo pair, offline.

The reference is one of demo-toon's animal faces with its red and blue channels swapped (a blue face, far from
demo-base's yellow smileys in colour), the discriminator a seeded random one (the demo files hold G_ema only):
the two runs (plain and preserve_color, 100 steps each) are shared by the tests of this module."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

import stylegan2_lib as sg
from stylegan2_lib import images
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.data import load_image
from stylegan2_lib.oneshot import (d_features, feature_blocks, feature_loss, prepare_reference, prepare_references,
                                   random_discriminator, swapped_rows, train_oneshot)
from conftest import TINY32, assert_pkl_state

STEPS = 100
SEEDS = list(range(100, 124))

@pytest.fixture(scope='module')
def base():
    return sg.load(DEMO_BASE).G_ema

@pytest.fixture(scope='module')
def reference():
    toon = sg.load(DEMO_TOON).G_ema
    img = images.to_uint8(images.generate_images(toon, [5], truncation_psi=0.7, progress=False))[0]
    return np.ascontiguousarray(img[..., ::-1])

@pytest.fixture(scope='module')
def D(base):
    return random_discriminator(base)

@pytest.fixture(scope='module')
def plain(base, D, reference):
    seen = []
    r = train_oneshot(base, D, [reference], steps=STEPS, project_steps=20, align='off', device='cpu', progress=False,
                      callback=lambda step, loss, preview: seen.append((step, loss, preview)))
    r.seen = seen
    return r

@pytest.fixture(scope='module')
def preserved(base, D, reference):
    return train_oneshot(base, D, [reference], steps=STEPS, project_steps=20, align='off', preserve_color=True,
                         device='cpu', progress=False)

def samples(G):
    with torch.no_grad():
        return images.generate_images(G, SEEDS, truncation_psi=0.7, noise_mode='const', progress=False).clamp(-1, 1)

def as_tensor(img):
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1

#----------------------------------------------------------------------------
# The recipe's choices, mapped from JoJoGAN's at 1024.

def small(res):
    return sg.Generator(img_resolution=res, channel_base=2048, channel_max=2, z_dim=8, w_dim=8, mapping_layers=1)

def test_swapped_rows_are_jojogans_mapped_by_resolution():
    assert swapped_rows(small(1024)) == list(range(7, 18))
    assert swapped_rows(small(1024), preserve_color=True) == [9, 11, 15, 16, 17]
    assert swapped_rows(small(256)) == list(range(7, 14))
    assert swapped_rows(small(256), preserve_color=True) == [9, 11, 12, 13]
    assert swapped_rows(small(32)) == list(range(1, 8))
    assert swapped_rows(small(32), preserve_color=True) == [3, 5, 6, 7]
    assert swapped_rows(small(32), layers=[7, 2, 2]) == [2, 7]
    with pytest.raises(ValueError, match='0..7'):
        swapped_rows(small(32), layers=[8])

def test_feature_blocks_are_jojogans_mapped_by_resolution():
    assert feature_blocks(sg.Discriminator(img_resolution=1024, channel_base=2048, channel_max=2)) == [1024, 256, 128, 64]
    assert feature_blocks(sg.Discriminator(img_resolution=256, channel_base=2048, channel_max=2)) == [256, 64, 32, 16]
    assert feature_blocks(sg.Discriminator(img_resolution=32, channel_base=2048, channel_max=2)) == [32, 8]

#----------------------------------------------------------------------------
# What training does.

def test_loss_falls(plain):
    assert len(plain.loss) == STEPS
    assert np.mean(plain.loss[-20:]) < 0.7 * np.mean(plain.loss[:10])        # 0.38 measured (seeds 1-3: 0.48-0.52)

def test_samples_move_toward_the_reference_in_d_features(base, D, reference, plain):
    ref = d_features(D, as_tensor(reference), feature_blocks(D))
    def distance(G):
        with torch.no_grad():
            f = d_features(D, samples(G), feature_blocks(D))
            return float(feature_loss(f, [t.expand_as(a) for t, a in zip(ref, f)]))
    before, after = distance(base), distance(plain.G)
    assert after < 0.8 * before, (before, after)                           # 0.24 -> 0.13 measured

def test_preserve_color_keeps_the_samples_colours_closer_to_the_base(base, plain, preserved):
    colour = samples(base).mean(dim=[2, 3])                     # [N, 3] mean colour per sample
    shift = {name: float((samples(r.G).mean(dim=[2, 3]) - colour).abs().mean()) for name, r in
             [('plain', plain), ('preserved', preserved)]}
    assert shift['preserved'] < 0.8 * shift['plain'], shift                # 0.17 and 0.28 measured

def test_mapping_frozen_bit_for_bit_and_the_base_untouched(base, plain):
    fresh = sg.load(DEMO_BASE).G_ema
    for name, t in fresh.state_dict().items():
        assert torch.equal(base.state_dict()[name], t), name                  # the base is not modified
        if not name.startswith('synthesis.'):
            assert torch.equal(plain.G.state_dict()[name], t), name          # mapping and w_avg: bit for bit
    tuned = dict(plain.G.synthesis.named_parameters())
    still = [n for n, p in fresh.synthesis.named_parameters() if torch.equal(tuned[n], p)]
    assert still == []                                                        # every synthesis parameter trains
    assert not plain.G.training and not any(p.requires_grad for p in plain.G.parameters())

def test_callback_gets_loss_every_step_and_a_live_view(plain):
    assert [s for s, _, _ in plain.seen] == list(range(STEPS))
    assert [loss for _, loss, _ in plain.seen] == plain.loss
    shown = [(s, p) for s, _, p in plain.seen if p is not None]
    assert [s for s, _ in shown] == [0, 25, 50, 75, STEPS - 1]
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for _, p in shown)

def test_same_seed_same_network(base, D, reference):
    runs = [train_oneshot(base, D, reference, steps=3, project_steps=2, align='off', device='cpu', progress=False,
                          seed=seed) for seed in (4, 4, 5)]
    same = [all(torch.equal(a, b) for a, b in zip(runs[0].G.state_dict().values(), r.G.state_dict().values()))
            for r in runs[1:]]
    assert same == [True, False]

#----------------------------------------------------------------------------
# The result is a network like any fine-tuned snapshot.

@pytest.mark.filterwarnings('ignore:no discriminator given', 'ignore:G_ema. channel table')
def test_result_blends_saves_reloads_and_exports(tmp_path, base, plain):
    for r in [0] + base.synthesis.block_resolutions:
        sg.blend(base, plain.G, r)
    path = tmp_path / 'oneshot.safetensors'
    sg.save(path, G_ema=plain.G, meta=plain.meta)
    ck = sg.load(path)
    assert ck.meta['oneshot']['steps'] == STEPS and ck.meta['oneshot']['swapped_rows'] == list(range(1, 8))
    assert ck.meta['oneshot']['references'][0]['sha256'] == plain.meta['oneshot']['references'][0]['sha256']
    z = torch.randn([2, base.z_dim])
    expected = plain.G(z, None, noise_mode='const')
    assert torch.equal(ck.G_ema(z, None, noise_mode='const'), expected)
    sg.export(tmp_path / 'oneshot.pkl', plain.G)
    assert_pkl_state(sg.load(tmp_path / 'oneshot.pkl').G_ema, plain.G)
    sg.export(tmp_path / 'oneshot.pt', plain.G)
    torch.testing.assert_close(sg.load(tmp_path / 'oneshot.pt').G_ema(z, None, noise_mode='const'), expected)

def test_result_is_a_snapshot_for_the_explorer_and_stylize(tmp_path, base, plain, reference):
    from stylegan2_lib.blend_views import BlendViews, ViewState
    path = tmp_path / 'oneshot.safetensors'
    sg.save(path, G_ema=plain.G, meta=plain.meta)
    views = BlendViews(base, [path], device='cpu')
    cols = views.columns(ViewState(snapshot=0, resolution=8, seeds=(0, 1)))
    assert cols['high'].shape == (2, 32, 32, 3)
    r = sg.stylize(reference, base, styled=plain.G, resolution=8, align=False, steps=3, loss='pixel', progress=False,
                   device='cpu')
    assert list(r.stylized) == ['swap 8']

#----------------------------------------------------------------------------
# References.

def test_references_are_aligned_or_centre_cropped_or_refused(reference):
    wide = np.concatenate([reference, reference], axis=1)                       # 32x64, no face dlib finds
    a, how = prepare_reference(wide, 32)
    assert how == 'centre-cropped' and np.array_equal(a, load_image(Image.fromarray(wide), 32))   # as the dataset tool
    assert prepare_reference(reference, 32, align='off')[1] == 'as given'
    with pytest.raises(ValueError, match=r'reference 2: the reference is 64x32; with alignment off it must be 32x32'):
        prepare_references([reference, wide], 32, align='off')
    with pytest.raises(ValueError, match='at least one reference'):
        prepare_references([], 32)
    with pytest.raises(ValueError, match='uint8'):
        prepare_references([reference.astype(np.float32)], 32)
    pytest.importorskip('dlib', reason='alignment needs the [align] extra')    # without it: AlignmentUnavailable
    with pytest.raises(ValueError, match='no face found'):
        prepare_reference(reference, 32, align='face')

def test_references_may_be_files(tmp_path, reference):
    path = tmp_path / 'style.png'
    Image.fromarray(reference).save(path)
    for given in (str(path), path, [path]):
        a, how = prepare_references(given, 32, align='off')
        assert how == ['as given'] and np.array_equal(a[0], reference)
    (tmp_path / 'broken.png').write_bytes(b'not an image')
    with pytest.raises(OSError, match='broken.png'):
        prepare_references([path, tmp_path / 'broken.png'], 32)

def test_a_real_face_is_aligned():
    pytest.importorskip('dlib', reason='alignment needs the [align] extra')
    pytest.importorskip('matplotlib', reason='the sample photo comes with matplotlib (the notebook extra)')
    from stylegan2_lib.samples import grace_hopper
    a, how = prepare_reference(grace_hopper(), 64)
    assert how == 'aligned' and a.shape == (64, 64, 3)

def test_a_drawn_face_is_aligned_as_a_drawn_face(monkeypatch):
    from stylegan2_lib import align, anime_detect
    from stylegan2_lib.assets import DRAWN_FACES
    if anime_detect.available():
        pytest.skip(anime_detect.available())
    sprite = DRAWN_FACES[1]
    want = np.asarray(align.align_drawn_face_with_transform(align.read_photo(sprite), 64).image)
    for mode in ('auto', 'anime'):                                  # dlib finds no face in it; the drawn-face detector does
        a, how = prepare_reference(sprite, 64, align=mode)
        assert how == 'aligned (drawn face)' and np.array_equal(a, want)
    plain = np.full((80, 80, 3), 200, np.uint8)
    assert prepare_reference(plain, 64)[1] == 'centre-cropped'
    # 'auto' trusts only a confident detection (false positives score ~0.8); 'anime' takes any
    real_detect = anime_detect.detect
    def unsure(img):
        return [dataclasses.replace(f, likelihood=0.8) for f in real_detect(img)]
    monkeypatch.setattr(anime_detect, 'detect', unsure)
    assert prepare_reference(sprite, 64)[1] == 'centre-cropped'
    assert prepare_reference(sprite, 64, align='anime')[1] == 'aligned (drawn face)'
    monkeypatch.setattr(anime_detect, 'detect', real_detect)
    with pytest.raises(ValueError, match='no drawn face found'):
        prepare_reference(plain, 64, align='anime')
    # without the detector: 'auto' centre-crops, 'anime' says what to install
    monkeypatch.setattr(anime_detect, 'available', lambda: 'drawn-face detection needs the animeface wheel')
    assert prepare_reference(sprite, 64)[1] == 'centre-cropped'
    monkeypatch.setattr(anime_detect, 'detect', lambda img: (_ for _ in ()).throw(anime_detect.DetectorUnavailable('x')))
    with pytest.raises(align.AlignmentUnavailable):
        prepare_reference(sprite, 64, align='anime')

def test_bad_arguments_are_refused(base, D, reference):
    with pytest.raises(ValueError, match='alpha'):
        train_oneshot(base, D, [reference], alpha=1.5, align='off')
    with pytest.raises(ValueError, match='64x64 images'):
        train_oneshot(base, sg.Discriminator(img_resolution=64, channel_base=2048, channel_max=8), [reference])

#----------------------------------------------------------------------------
# The command line.

def run_cli(*argv):
    from stylegan2_lib.cli import main
    return main([str(a) for a in argv])

@pytest.fixture(scope='module')
def style_files(tmp_path_factory, reference):
    folder = tmp_path_factory.mktemp('style')
    images.save_image(folder / 'blue.png', reference)
    images.save_image(folder / 'big.png', np.concatenate([reference, reference], axis=1))
    (folder / 'broken.png').write_bytes(b'not an image')
    return folder

def test_cli_oneshot_writes_the_network_with_its_recipe_and_a_preview(tmp_path, style_files, capsys):
    out, preview = tmp_path / 'one.safetensors', tmp_path / 'preview.png'
    assert run_cli('oneshot', '--base', TINY32, '--style', style_files / 'blue.png', style_files / 'big.png', '--out', out,
                   '--steps', 4, '--project-steps', 2, '--preview', preview, '--seeds', '0-1', '--device', 'cpu') == 0
    meta = sg.load(out).meta['oneshot']
    assert meta['base'] == TINY32.name and meta['discriminator'] == f'from {TINY32.name}' and meta['steps'] == 4
    assert [(r['name'], r['prepared']) for r in meta['references']] == [('blue.png', 'centre-cropped'),
                                                                         ('big.png', 'centre-cropped')]
    with Image.open(preview) as img:
        assert img.width >= 5 * 96                                  # base | swap 4, 8, 16 | one-shot
    assert 'wrote' in capsys.readouterr().out

def test_cli_oneshot_without_a_discriminator_warns(tmp_path, style_files, capsys):
    out = tmp_path / 'one.pkl'
    assert run_cli('oneshot', '--base', DEMO_BASE, '--style', style_files / 'blue.png', '--out', out, '--steps', 2,
                   '--project-steps', 1, '--device', 'cpu') == 0
    assert 'holds no discriminator: a random one (seed 0)' in capsys.readouterr().err
    assert sg.load(out).G_ema is not None

@pytest.mark.parametrize('style, align, message', [
    ('broken.png', 'auto', 'broken.png: cannot read the photo'),
    ('missing.png', 'auto', 'missing.png: cannot read the photo'),
    ('big.png', 'off', 'big.png: the reference is 64x32; with alignment off it must be 32x32'),
])
def test_cli_oneshot_bad_inputs_are_named_and_nothing_is_written(tmp_path, style_files, capsys, style, align, message):
    out, preview = tmp_path / 'one.safetensors', tmp_path / 'preview.png'
    assert run_cli('oneshot', '--base', DEMO_BASE, '--style', style_files / 'blue.png', style_files / style, '--out', out,
                   '--align', align, '--preview', preview, '--steps', 2, '--device', 'cpu') == 1
    assert message in capsys.readouterr().err
    assert not out.exists() and not preview.exists()

def test_cli_oneshot_needs_a_style_image(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli('oneshot', '--base', DEMO_BASE, '--style', '--out', tmp_path / 'one.safetensors')
    assert e.value.code == 2 and '--style: expected at least one argument' in capsys.readouterr().err
    assert not (tmp_path / 'one.safetensors').exists()

def test_cli_oneshot_checks_device_and_base_like_every_command(tmp_path, style_files, capsys, monkeypatch, tiny32):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    out = tmp_path / 'one.safetensors'
    assert run_cli('oneshot', '--base', DEMO_BASE, '--style', style_files / 'blue.png', '--out', out, '--device', 'cuda') == 1
    assert '--device cuda: CUDA is not available here' in capsys.readouterr().err
    sg.save(tmp_path / 'D-only.safetensors', D=tiny32.D)
    assert run_cli('oneshot', '--base', tmp_path / 'D-only.safetensors', '--style', style_files / 'blue.png', '--out', out,
                   '--device', 'cpu') == 1
    assert '--base: the checkpoint holds no generator (only D)' in capsys.readouterr().err
    assert not out.exists()
