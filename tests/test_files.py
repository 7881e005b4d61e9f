"""files.atomic_open: the one atomic writer (temporary file beside the target, fsync, rename), used by every
file the library writes; and files.replaced_on_success, its form for writers that take a path."""

import os
import stat

import pytest

from stylegan2_lib import files


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_027():
    """A umask other than the usual 022, so 'the umask's mode' cannot pass by coincidence with 0644."""
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def test_a_complete_write_appears_with_the_mode_open_would_give(tmp_path, umask_027):
    path = tmp_path / 'sub' / 'new.bin'
    with files.atomic_open(path, 'wb') as f:
        f.write(b'complete')
        assert not path.exists()                                 # nothing at the target until the block ends
    assert path.read_bytes() == b'complete' and os.listdir(path.parent) == ['new.bin']
    assert mode_of(path) == umask_027                           # not mkstemp's private 0600
    with open(tmp_path / 'plain', 'wb'):
        pass
    assert mode_of(path) == mode_of(tmp_path / 'plain')


def test_an_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / 'script.sh'
    path.write_text('old')
    os.chmod(path, 0o750)
    with files.atomic_open(path, 'w') as f:
        f.write('new ✓')
    assert path.read_text(encoding='utf-8') == 'new ✓' and mode_of(path) == 0o750


@pytest.mark.parametrize('failure', [ValueError('bad data'), KeyboardInterrupt()])
def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path, failure):
    path = tmp_path / 'data.zip'
    path.write_bytes(b'old')
    with pytest.raises(type(failure)):
        with files.atomic_open(path, 'wb') as f:
            f.write(b'half of the new')
            raise failure
    assert os.listdir(tmp_path) == ['data.zip'] and path.read_bytes() == b'old'
    with pytest.raises(ValueError):                              # and with no old file, no file at all
        with files.atomic_open(tmp_path / 'fresh.zip', 'wb') as f:
            raise ValueError('bad data')
    assert os.listdir(tmp_path) == ['data.zip']


def test_a_failed_rename_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'x.json'
    path.write_text('old')
    monkeypatch.setattr(files.os, 'replace', lambda src, dst: (_ for _ in ()).throw(OSError('disk full')))
    with pytest.raises(OSError, match='disk full'):
        files.atomic_write_bytes(path, b'new')
    assert os.listdir(tmp_path) == ['x.json'] and path.read_text() == 'old'


def test_only_write_modes():
    with pytest.raises(ValueError, match="'wb'"):
        with files.atomic_open('x', 'ab'):
            pass


def test_replaced_on_success_is_all_or_nothing(tmp_path, umask_027):
    path = tmp_path / 'blend.pkl'
    path.write_bytes(b'old')
    with pytest.raises(OSError):
        with files.replaced_on_success(path) as staged:
            files.atomic_write_bytes(staged, b'new')             # the export, written by a writer taking a path
            raise OSError('the preview failed')
    assert os.listdir(tmp_path) == ['blend.pkl'] and path.read_bytes() == b'old'
    with files.replaced_on_success(tmp_path / 'new.pkl') as staged:
        files.atomic_write_bytes(staged, b'new')
    assert (tmp_path / 'new.pkl').read_bytes() == b'new' and mode_of(tmp_path / 'new.pkl') == umask_027
    assert sorted(os.listdir(tmp_path)) == ['blend.pkl', 'new.pkl']
