"""`stylegan2-lib align` and `stylegan2-lib stylize` end to end (thin wrappers; the maths is tested in
test_align.py, test_project.py and test_stylize.py)."""

import numpy as np
import pytest
from PIL import Image

from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.cli import main

pytest.importorskip('dlib', reason='alignment needs the [align] extra')


@pytest.fixture(scope='module')
def photo():
    from matplotlib import cbook
    return cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)


def test_stylize_on_the_demo_pair(tmp_path, photo, capsys):
    out = tmp_path / 'out'
    assert main(['stylize', '--base', str(DEMO_BASE), '--styled', str(DEMO_TOON), '--photo', str(photo),
                 '--outdir', str(out), '--steps', '5', '--resolution', '8']) == 0
    assert sorted(p.name for p in out.iterdir()) == ['aligned.png', 'projected.png', 'projected_w.npz', 'strip.png', 'stylized.png']
    assert Image.open(out / 'stylized.png').size == (32, 32)
    assert np.load(out / 'projected_w.npz')['w'].shape[0] == 1
    assert 'swap 8' in capsys.readouterr().out


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


def test_align_folder(tmp_path, photo, capsys):
    src = tmp_path / 'photos'
    src.mkdir()
    Image.open(photo).save(src / 'grace.jpg')
    Image.new('RGB', (100, 100), (10, 200, 10)).save(src / 'lawn.png')
    assert main(['align', str(src), str(tmp_path / 'aligned'), '--size', '64']) == 0
    assert [p.name for p in (tmp_path / 'aligned').iterdir()] == ['grace_00.png']
    assert 'no face found in 1 photo(s), skipped: lawn.png' in capsys.readouterr().err
    assert main(['align', str(src), str(tmp_path / 'cropped'), '--size', '32', '--centre-crop']) == 0
    assert sorted(p.name for p in (tmp_path / 'cropped').iterdir()) == ['grace_00.png', 'lawn_00.png']
