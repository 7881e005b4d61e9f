"""What every command checks alike (stylegan2_lib/cli_common.py): --seeds, --device, checkpoints without a
generator and all-or-nothing exports, each one line on stderr, status 1 and nothing written; and the
trainer's command line: --resume RUN_DIR needs no --data or --outdir, and a missing --data is named first."""

import errno
import json
import os

import numpy as np
import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.cli import main
from stylegan2_lib.train import list_snapshots
from conftest import TINY32, files_under, make_faces


def run_main(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err):
    return err.startswith('stylegan2-lib: error: ') and len(err.strip().splitlines()) == 1 and 'Traceback' not in err


def commands(out):
    """Each command that takes --seeds or --device, writing only under `out`."""
    photo = out.parent / 'photo.png'
    return {'generate': ['generate', '--outdir', out],
            'blend':    ['blend', '--resolution', 8, '--out', out / 'b.pkl', '--preview', out / 'p.png'],
            'demo':     ['demo', '--outdir', out],
            'train':    ['train', '--data', out.parent, '--outdir', out, '--resume', TINY32],
            'stylize':  ['stylize', '--base', DEMO_BASE, '--styled', DEMO_TOON, '--photo', photo, '--outdir', out]}

#----------------------------------------------------------------------------

@pytest.mark.parametrize('command', ['generate', 'blend', 'demo'])
@pytest.mark.parametrize('seeds', ['5-2', 'x'])
def test_every_command_reads_seeds_alike(capsys, tmp_path, command, seeds):
    out = tmp_path / 'out'
    rc, _, err = run_main(capsys, *commands(out)[command], '--seeds', seeds)
    assert rc == 1 and one_error_line(err) and '--seeds' in err and repr(seeds) in err, err
    assert not out.exists()


@pytest.mark.parametrize('command', ['generate', 'blend', 'demo', 'train', 'stylize'])
def test_every_command_says_why_there_is_no_cuda(capsys, tmp_path, monkeypatch, command):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    out = tmp_path / 'out'
    rc, _, err = run_main(capsys, *commands(out)[command], '--device', 'cuda')
    assert rc == 1 and one_error_line(err), err
    assert '--device cuda: CUDA is not available here (' in err and 'use --device cpu' in err
    assert not out.exists()


def test_an_unknown_device_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(['generate', '--outdir', str(tmp_path / 'out'), '--device', 'tpu'])
    assert stop.value.code == 2 and "'tpu'" in capsys.readouterr().err


@pytest.mark.parametrize('option', ['--network', '--low', '--base', '--styled'])
def test_a_checkpoint_without_a_generator_is_named(capsys, tmp_path, tiny32, option):
    d_only, photo, out = tmp_path / 'D-only.safetensors', tmp_path / 'photo.png', tmp_path / 'out'
    sg.save(d_only, D=tiny32.D)
    sg.save_image(photo, np.zeros([8, 8, 3], np.uint8))
    argv = {'--network': ['generate', '--network', d_only, '--outdir', out],
            '--low': ['blend', '--low', d_only, '--resolution', 8, '--out', out / 'b.pkl'],
            '--base': ['stylize', '--base', d_only, '--blended', DEMO_TOON, '--photo', photo, '--outdir', out],
            '--styled': ['stylize', '--base', DEMO_BASE, '--styled', d_only, '--photo', photo, '--outdir', out]}[option]
    rc, _, err = run_main(capsys, *argv)
    assert rc == 1 and one_error_line(err), err
    assert f'{d_only}: {option}: the checkpoint holds no generator (only D)' in err
    assert not out.exists()

#----------------------------------------------------------------------------
# Export, then preview: both or neither.

def no_space(path, img):
    raise OSError(errno.ENOSPC, 'No space left on device', str(path))


def test_a_failed_preview_leaves_an_existing_export_as_it_was(capsys, tmp_path, monkeypatch):
    out = tmp_path / 'b.safetensors'
    out.write_bytes(b'the blend of yesterday')
    monkeypatch.setattr(sg.images, 'save_image', no_space)
    rc, _, err = run_main(capsys, 'blend', '--resolution', 8, '--out', out, '--preview', tmp_path / 'p.png')
    assert rc == 1 and 'No space left on device' in err
    assert files_under(tmp_path) == ['b.safetensors'] and out.read_bytes() == b'the blend of yesterday'
    monkeypatch.undo()
    rc, _, err = run_main(capsys, 'blend', '--resolution', 8, '--out', out, '--preview', tmp_path / 'p.png')
    assert rc == 0 and files_under(tmp_path) == ['b.safetensors', 'p.png'] and sg.load(out).G_ema is not None


def test_the_demo_is_written_whole_or_not_at_all(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sg.images, 'save_image', no_space)
    rc, _, err = run_main(capsys, 'demo', '--outdir', tmp_path / 'out')
    assert rc == 1 and err.splitlines()[-1].startswith('stylegan2-lib: error: ') and 'demo-preview.png' in err
    assert files_under(tmp_path / 'out') == []


def test_an_export_error_names_the_users_file(capsys, tmp_path):
    out = tmp_path / 'wide.pt'                           # rosinality's Generator needs z_dim == w_dim
    G = sg.Generator(z_dim=8, w_dim=16, img_resolution=8, channel_base=64, channel_max=8, mapping_layers=1)
    sg.save(tmp_path / 'zw.safetensors', G_ema=G)
    rc, _, err = run_main(capsys, 'blend', '--low', tmp_path / 'zw.safetensors', '--high', tmp_path / 'zw.safetensors',
                          '--resolution', 4, '--out', out)
    assert rc == 1 and err.startswith(f'stylegan2-lib: error: {out}: ') and '.staged' not in err, err
    assert files_under(tmp_path) == ['zw.safetensors']

#----------------------------------------------------------------------------
# train: what a run directory records need not be given again; a wrong --data is named first.

@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return make_faces(tmp_path_factory.mktemp('faces'), 12, seed=0)


def short_run(faces, outdir, *more):
    return ['train', '--data', faces, '--outdir', outdir, '--resume', TINY32, '--kimg', 0.008, '--snap', 0.008,
            '--batch', 4, '--workers', 0, '--device', 'cpu', *more]


def test_resume_run_dir_needs_no_data_or_outdir(capsys, tmp_path, faces):
    assert run_main(capsys, *short_run(faces, tmp_path / 'runs'))[0] == 0
    (run,) = (tmp_path / 'runs').iterdir()
    rc, out, err = run_main(capsys, 'train', '--resume', run, '--kimg', 0.016, '--device', 'cpu', '--workers', 0)
    assert rc == 0, err
    assert f'run finished: {run}' in out and [k for k, _, _ in list_snapshots(run)] == [0.008, 0.016]
    assert sorted((tmp_path / 'runs').iterdir()) == [run]                       # continued, not a new run
    # Given anyway: the same paths pass quietly, other ones are named as not used.
    rc, out, err = run_main(capsys, 'train', '--resume', run, '--data', faces, '--outdir', tmp_path / 'runs',
                            '--kimg', 0.016, '--device', 'cpu', '--workers', 0)
    assert rc == 0 and 'warning' not in err
    other = tmp_path / 'elsewhere'
    other.mkdir()
    rc, out, err = run_main(capsys, 'train', '--resume', run, '--outdir', other, '--kimg', 0.016, '--device', 'cpu')
    assert rc == 0 and f'stylegan2-lib: warning: --outdir {other} is not used' in err
    assert list(other.iterdir()) == []


def test_a_resumed_run_whose_data_is_gone_says_so(capsys, tmp_path):
    (tmp_path / 'faces').mkdir()
    faces = make_faces(tmp_path / 'faces', 4, seed=1)
    assert run_main(capsys, *short_run(faces, tmp_path / 'runs'))[0] == 0
    (run,) = (tmp_path / 'runs').iterdir()
    for f in faces.iterdir():
        f.unlink()
    faces.rmdir()
    rc, _, err = run_main(capsys, 'train', '--resume', run, '--device', 'cpu')
    assert rc == 1 and one_error_line(err) and f'{faces}: no such folder or zip' in err and 'options.json' in err


@pytest.mark.parametrize('argv, words', [
    (['--outdir', 'runs'], ['train: give --data DIR_OR_ZIP and --outdir DIR', 'only --resume RUN_DIR']),
    (['--data', '.'], ['train: give --data DIR_OR_ZIP and --outdir DIR']),
    (['--data', '.', '--resume', 'a-folder'], ['give --data', 'a-folder is a folder but not a run to continue']),
])
def test_a_new_run_needs_data_and_outdir(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'a-folder').mkdir()                                             # a folder, but no run in it
    rc, _, err = run_main(capsys, 'train', *argv)
    assert rc == 1 and one_error_line(err) and all(w in err for w in words), err
    assert sorted(os.listdir(tmp_path)) == ['a-folder']


def test_a_missing_data_path_is_the_first_complaint(capsys, tmp_path):
    # From scratch, without --resolution or --outdir: still the data path is what is named.
    for extra in ([], ['--outdir', tmp_path / 'runs']):
        rc, _, err = run_main(capsys, 'train', '--data', tmp_path / 'no' / 'such' / 'folder', *extra)
        assert rc == 1 and one_error_line(err), err
        assert f'--data {tmp_path / "no" / "such" / "folder"}: no such folder or zip' in err and '--resolution' not in err
    assert os.listdir(tmp_path) == []


def test_train_options_record_the_device_it_ran_on(capsys, tmp_path, faces):
    assert run_main(capsys, *short_run(faces, tmp_path))[0] == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / 'options.json').read_text())['device'] == 'cpu'
