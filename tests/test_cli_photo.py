"""`stylegan2-lib align` and `stylegan2-lib stylize` end to end (thin wrappers; the maths is tested in
test_align.py, test_project.py and test_stylize.py)."""

import importlib
import re

import numpy as np
import pytest
import torch
from PIL import Image

import stylegan2_lib as sg
from stylegan2_lib import cli_common, cli_photo, devices
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.cli import main
from stylegan2_lib.samples import sample_photos

pytest.importorskip('dlib', reason='alignment needs the [align] extra')


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    pytest.importorskip('matplotlib', reason='the sample photo comes with matplotlib (the notebook extra)')
    return sample_photos(tmp_path_factory.mktemp('photos')) / 'grace_hopper.jpg'


def test_stylize_on_the_demo_pair(tmp_path, photo, capsys):
    out = tmp_path / 'out'
    assert main(['stylize', '--base', str(DEMO_BASE), '--styled', str(DEMO_TOON), '--photo', str(photo),
                 '--outdir', str(out), '--steps', '5', '--resolution', '8']) == 0
    assert sorted(p.name for p in out.iterdir()) == ['aligned.png', 'full.png', 'projected.png', 'projected_w.npz', 'strip.png',
                                                     'stylized.png']
    assert Image.open(out / 'stylized.png').size == (32, 32)
    assert Image.open(out / 'full.png').size == Image.open(photo).size          # the whole photo, the face stylized
    assert np.load(out / 'projected_w.npz')['w'].shape[0] == 1
    printed = capsys.readouterr().out
    assert 'swap 8' in printed
    device = devices.default_device()                                          # where it ran: the GPU if there is one
    assert f'projection steps on {device}' in printed and f'on {devices.describe_device(device)})' in printed
    # how much of the person each render keeps: a number, or why there is none (32 px drawn faces: dlib finds none)
    assert re.search(r'^identity to the photo .*\n  projected  (\d\.\d\d|none \(.+\))\n  swap 8     (\d\.\d\d|none \(.+\))$',
                     printed, re.M)


def test_stylize_prints_the_identity_similarity_of_each_blend(tmp_path, photo, monkeypatch, capsys):
    """The renders stood in by the aligned photo itself (identity 1) and by another person (lower): the printed
    numbers are the result's."""
    skimage_data = pytest.importorskip('skimage.data')
    stylize_module = importlib.import_module('stylegan2_lib.stylize')
    argv = ['stylize', '--base', str(DEMO_BASE), '--styled', str(DEMO_TOON), '--photo', str(photo), '--steps', '2']
    for name, render in [('same', sg.align_face(Image.open(photo), 32)), ('other', sg.align_face(Image.fromarray(skimage_data.astronaut()), 32))]:
        monkeypatch.setattr(stylize_module, '_render', lambda G, projection: render)
        assert main(argv + ['--outdir', str(tmp_path / name)]) == 0
        printed = dict(re.findall(r'^  (projected|swap \d+) +(\S+)$', capsys.readouterr().out, re.M))
        assert list(printed) == ['projected', 'swap 4', 'swap 8', 'swap 16']
        values = {float(v) for v in printed.values()}
        assert (values == {1.0}) if name == 'same' else (max(values) < 0.9)


def test_stylize_all_faces_writes_the_whole_photo_with_every_face(tmp_path, photo, monkeypatch, capsys):
    """Two people side by side, --all-faces: full.png is the photo with both faces replaced (a perfect projection
    stands in, rendered inverted), and each further face has its strip."""
    skimage_data = pytest.importorskip('skimage.data')
    stylize_module = importlib.import_module('stylegan2_lib.stylize')
    monkeypatch.setattr(stylize_module, 'project', lambda G, target, **kwargs: stylize_module.Projection(
        torch.from_numpy(np.array(target)), [], [0.0], 'stand-in'))
    monkeypatch.setattr(stylize_module, '_render', lambda G, projection: Image.fromarray(255 - projection.ws.numpy()))
    left, right = Image.open(photo).convert('RGB'), Image.fromarray(skimage_data.astronaut())
    group = Image.new('RGB', (left.width + right.width, max(left.height, right.height)))
    group.paste(left, (0, 0))
    group.paste(right, (left.width, 0))
    group.save(tmp_path / 'group.png')
    out = tmp_path / 'out'
    assert main(['stylize', '--base', str(DEMO_BASE), '--styled', str(DEMO_TOON), '--photo', str(tmp_path / 'group.png'),
                 '--outdir', str(out), '--resolution', '8', '--all-faces', '--no-color-match', '--mask', 'ellipse']) == 0
    faces = sg.align.face_landmarks(group)
    names = {p.name for p in out.iterdir()}
    assert {'full.png', 'strip.png', 'strip_face2.png'} <= names and f'strip_face{len(faces) + 1}.png' not in names
    before, after = np.asarray(group, np.int16), np.asarray(Image.open(out / 'full.png'), np.int16)
    changed = [np.abs(after[y, x] - before[y, x]).max() > 40 for x, y in (np.int64(lm[30]) for lm in faces)]
    assert all(changed) and len(changed) >= 2
    assert f'full.png (the photo, {len(faces)} face(s) stylized with swap 8)' in capsys.readouterr().out


def test_stylize_runs_where_the_gpu_is(tmp_path, photo, monkeypatch, capsys):
    """On a GPU runtime the networks load onto the GPU and the work runs there (it ran on the CPU). CUDA is
    faked as available; loading and stylizing are spies that record the device they are asked for."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    asked = []
    monkeypatch.setattr(cli_common, 'load', lambda path, device='cpu': asked.append(('load', device)) or sg.load(path))
    def stylize(*args, device=None, **kwargs):
        asked.append(('stylize', device))
        raise cli_common.CLIError('stopped by the test')
    monkeypatch.setattr(cli_photo, 'stylize', stylize)
    argv = ['stylize', '--base', str(DEMO_BASE), '--styled', str(DEMO_TOON), '--photo', str(photo), '--outdir', str(tmp_path / 'o')]
    assert main(argv) == 1 and 'stopped by the test' in capsys.readouterr().err
    assert asked == [('load', 'cuda'), ('load', 'cuda'), ('stylize', 'cuda')]
    asked.clear()
    assert main(argv + ['--device', 'cpu']) == 1
    assert asked == [('load', 'cpu'), ('load', 'cpu'), ('stylize', 'cpu')]


def test_stylize_on_cuda_without_cuda_says_why(tmp_path, photo, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert main(['stylize', '--base', str(DEMO_BASE), '--styled', str(DEMO_TOON), '--photo', str(photo),
                 '--outdir', str(tmp_path / 'o'), '--device', 'cuda']) == 1
    err = capsys.readouterr().err
    assert '--device cuda: CUDA is not available here (' in err and 'use --device cpu' in err
    assert not (tmp_path / 'o').exists()


def test_stylize_without_a_face_writes_nothing(tmp_path, capsys):
    blank = tmp_path / 'wall.png'
    Image.new('RGB', (200, 200), (128, 120, 110)).save(blank)
    out = tmp_path / 'out'
    assert main(['stylize', '--base', str(DEMO_BASE), '--styled', str(DEMO_TOON), '--photo', str(blank),
                 '--outdir', str(out), '--steps', '2']) == 1
    err = capsys.readouterr().err
    assert 'wall.png: no face found' in err and not out.exists()


def test_stylize_bad_arguments(tmp_path, photo, capsys):
    assert main(['stylize', '--base', str(DEMO_BASE), '--photo', str(photo), '--outdir', str(tmp_path / 'o')]) == 1
    assert '--styled' in capsys.readouterr().err
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'not a jpeg')
    assert main(['stylize', '--base', str(DEMO_BASE), '--styled', str(DEMO_TOON), '--photo', str(bad), '--outdir', str(tmp_path / 'o')]) == 1
    assert 'bad.jpg: cannot read the photo' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('value', ['-0.1', 'nan', '0.5', 'soft'])
def test_stylize_refuses_a_bad_feather_before_any_work(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        main(['stylize', '--base', str(DEMO_BASE), '--styled', str(DEMO_TOON), '--photo', str(tmp_path / 'p.jpg'),
              '--outdir', str(tmp_path / 'o'), '--feather', value])
    assert e.value.code == 2 and 'argument --feather' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def test_align_folder(tmp_path, photo, capsys):
    src = tmp_path / 'photos'
    src.mkdir()
    Image.open(photo).save(src / 'grace.jpg')
    Image.new('RGB', (100, 100), (10, 200, 10)).save(src / 'lawn.png')
    assert main(['align', str(src), str(tmp_path / 'aligned'), '--size', '64']) == 0
    assert sorted(p.name for p in (tmp_path / 'aligned').iterdir()) == ['alignment.json', 'faces.json', 'grace_00.png']   # + counts, where from
    assert 'no face found in 1 photo(s), skipped: lawn.png' in capsys.readouterr().err
    assert main(['align', str(src), str(tmp_path / 'cropped'), '--size', '32', '--centre-crop']) == 0
    assert sorted(p.name for p in (tmp_path / 'cropped').iterdir()) == ['alignment.json', 'faces.json', 'grace_00.png', 'lawn_00.png']
