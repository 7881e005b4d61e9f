"""`stylegan2-lib dataset SRC DEST.zip --resolution R`: writes the prepared zip; on any error one line on
stderr, exit status 1, nothing written."""

import json
import zipfile

import numpy as np
from PIL import Image

from stylegan2_lib.cli import main


def run_main(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err

def make_images(folder, n=3, size=(12, 8)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = np.random.RandomState(i).randint(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / f'img{i}.png')
    return folder


def test_dataset_writes_the_zip(tmp_path, capsys):
    src = make_images(tmp_path / 'photos')
    dest = tmp_path / 'out' / 'ds.zip'
    rc, out, err = run_main(capsys, 'dataset', src, dest, '--resolution', 8)
    assert rc == 0, err
    assert err == '' and f'wrote {dest}: 3 images (8x8)' in out
    with zipfile.ZipFile(dest) as zf:
        assert sorted(zf.namelist()) == ['00000000.png', '00000001.png', '00000002.png', 'dataset.json']
        assert json.loads(zf.read('dataset.json'))['resolution'] == 8
        first = np.asarray(Image.open(zf.open('00000000.png')))
    expected = np.random.RandomState(0).randint(0, 256, size=(8, 12, 3), dtype=np.uint8)[:, 2:10]
    np.testing.assert_array_equal(first, expected)

def test_dataset_warns_about_skipped_files_in_one_line(tmp_path, capsys):
    src = make_images(tmp_path / 'photos')
    (src / 'broken.jpg').write_bytes(b'\xff\xd8\xff not really')
    (src / 'empty.png').write_bytes(b'')
    rc, out, err = run_main(capsys, 'dataset', src, tmp_path / 'ds.zip', '--resolution', 8)
    assert rc == 0, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith('stylegan2-lib: warning:')
    assert 'broken.jpg' in lines[0] and 'empty.png' in lines[0]
    assert 'skipped 2 unreadable files' in out

def test_dataset_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    src = make_images(tmp_path / 'photos')
    empty = tmp_path / 'empty'
    empty.mkdir()
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'x.png').write_bytes(b'not a png')
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    zipped = tmp_path / 'photos.zip'
    with zipfile.ZipFile(zipped, 'w') as zf:
        zf.write(src / 'img0.png', 'img0.png')
    before = zipped.read_bytes()
    cases = [
        ((tmp_path / 'missing', out_dir / 'a.zip', '--resolution', 8), 'missing'),
        ((empty, out_dir / 'a.zip', '--resolution', 8), 'no images'),
        ((bad, out_dir / 'a.zip', '--resolution', 8), 'none of the 1 image file'),
        ((src, out_dir / 'a.zip', '--resolution', 100), 'power-of-two'),
        ((src, out_dir / 'a.tar', '--resolution', 8), '.zip'),
        ((src, out_dir, '--resolution', 8), 'directory'),
        ((zipped, zipped, '--resolution', 8), 'source itself'),
    ]
    for argv, words in cases:
        rc, out, err = run_main(capsys, 'dataset', *argv)
        lines = err.splitlines()
        assert rc == 1 and len(lines) == 1 and lines[0].startswith('stylegan2-lib: error:'), (argv, err)
        assert words in lines[0], (argv, err)
        assert 'Traceback' not in err and out == ''
    assert list(out_dir.iterdir()) == []
    assert zipped.read_bytes() == before
