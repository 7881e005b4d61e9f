"""The trainer on tiny networks and a tiny generated dataset: one tick does what a training step should,
freezing freezes, a run killed between snapshots resumes exactly as if it had never stopped, bad
requests are refused before anything is written, and non-finite losses stop the run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylegan2_lib as sg
from stylegan2_lib.train import TrainOptions, TrainingError, list_snapshots, train
from stylegan2_lib.train import loop
from stylegan2_lib.train.state import read_metrics, read_state
from conftest import TINY32, make_faces

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return make_faces(tmp_path_factory.mktemp('faces'), 20, seed=0)


def options(data, outdir, **kw):
    base = dict(data=str(data), outdir=str(outdir), resume=str(TINY32), kimg=0.016, snap=0.016, tick=0.008, batch=4,
                workers=0, sample_seeds=4, p=0.2)
    base.update(kw)
    return TrainOptions(**base)


def state_of(net):
    return {k: v.clone() for k, v in net.state_dict().items()}

#----------------------------------------------------------------------------

def test_one_tick(faces, tmp_path, tiny32):
    run = train(options(faces, tmp_path, freezed=1, freeze_g=8, freeze_mapping=True))
    (kimg, epoch, path), = list_snapshots(run)
    assert (kimg, epoch) == (0.016, 0) and path.name == 'network-snapshot-kimg000000.016-epoch0000.safetensors'
    ck = sg.load(path)
    assert ck.meta['nimg'] == 16 and ck.meta['run_options']['freeze_g'] == 8
    G0, D0 = tiny32.G, tiny32.D
    G, D = ck.G.state_dict(), ck.D.state_dict()
    # frozen parts bitwise unchanged: mapping (and w_avg), synthesis blocks <= 8, D's first block (b32)
    frozen = [k for k in G if k.startswith(('mapping.', 'synthesis.b4.', 'synthesis.b8.'))]
    assert frozen and all(torch.equal(G[k], G0.state_dict()[k]) for k in frozen)
    assert all(torch.equal(D[k], D0.state_dict()[k]) for k in D if k.startswith('b32.'))
    # trainable parts moved
    moved = [k for k in G if k.startswith('synthesis.b32.') and k.endswith('weight') and not torch.equal(G[k], G0.state_dict()[k])]
    assert len(moved) >= 3
    assert not torch.equal(D['b16.conv0.weight'], D0.state_dict()['b16.conv0.weight'])
    # G_ema trails G
    assert not torch.equal(ck.G_ema.synthesis.b32.conv1.weight, ck.G.synthesis.b32.conv1.weight)
    # a sample grid of the run's fixed seeds, 2x2 tiles of 32 px with 2 px gaps
    grid = np.asarray(Image.open(path.with_suffix('.png')))
    assert grid.shape == (66, 66, 3)
    metrics = read_metrics(run)
    assert [m['nimg'] for m in metrics] == [8, 16]
    for m in metrics:
        assert np.isfinite(m['loss_G']) and np.isfinite(m['loss_D']) and m['sec_per_kimg'] > 0
        assert {'p', 'r_t', 'epoch', 'kimg', 'gpu_mem_gb'} <= set(m)
    assert json.loads((run / 'options.json').read_text())['freezed'] == 1


def test_lazy_regularisation_corrects_adam():
    G = sg.Generator(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8, mapping_layers=1)
    opts = TrainOptions(data='x', outdir='y')
    opt = loop.make_optimizer(G, opts, reg_interval=4)
    group = opt.param_groups[0]
    assert group['lr'] == pytest.approx(0.0025 * 4 / 5)
    assert group['betas'] == pytest.approx((0.0, 0.99 ** (4 / 5)))


def test_ema_follows_the_nvlabs_half_life():
    G, G_ema = (sg.Generator(z_dim=4, w_dim=4, img_resolution=4, channel_base=32, channel_max=4, mapping_layers=1) for _ in range(2))
    opts = TrainOptions(data='x', outdir='y', ema_kimg=10, ema_rampup=None)
    before = G_ema.synthesis.b4.const.clone()
    loop.update_ema(G_ema, G, nimg=100000, batch=32, opts=opts)
    beta = 0.5 ** (32 / 10000)
    torch.testing.assert_close(G_ema.synthesis.b4.const, G.synthesis.b4.const.lerp(before, beta))


def _run_until_killed(faces, outdir, kill_after_nimg):
    """Train in a separate process and SIGKILL it once the metrics log passes kill_after_nimg."""
    code = (f'from stylegan2_lib.train import TrainOptions, train\n'
            f'train(TrainOptions(data={str(faces)!r}, outdir={str(outdir)!r}, resume={str(TINY32)!r}, kimg=1, snap=0.032, '
            f'tick=0.008, batch=4, workers=0, sample_seeds=4, p=0.2))\n')
    proc = subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            runs = list(Path(outdir).glob('*'))
            if runs and any(m['nimg'] >= kill_after_nimg for m in read_metrics(runs[0])):
                break
            assert proc.poll() is None, 'the training process ended before it could be killed'
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    (run,) = Path(outdir).glob('*')
    return run


def test_resume_after_kill_continues_exactly(faces, tmp_path):
    run = _run_until_killed(faces, tmp_path / 'killed', kill_after_nimg=40)
    st = read_state(run)
    assert st['nimg'] == 32 and st['snapshot'].startswith('network-snapshot-kimg000000.032')
    lost = [m['nimg'] for m in read_metrics(run) if m['nimg'] > 32]
    assert lost, 'the process should have been killed after the snapshot at 32 images'

    resumed = train(options(faces, tmp_path, resume=str(run), kimg=0.064, snap=0.032))
    assert resumed == run
    assert [m['nimg'] for m in read_metrics(run)] == [8, 16, 24, 32, 40, 48, 56, 64]   # no duplicates, no gaps
    assert [(k, e) for k, e, _ in list_snapshots(run)] == [(0.032, 1), (0.064, 3)]     # 20 images per epoch

    # The same run without the kill: bitwise the same networks, augment p and optimiser-driven weights.
    fresh = train(options(faces, tmp_path / 'fresh', kimg=0.064, snap=0.032))
    a, b = sg.load(list_snapshots(run)[-1][2]), sg.load(list_snapshots(fresh)[-1][2])
    for name in ('G', 'D', 'G_ema'):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert a.meta['augment_p'] == b.meta['augment_p'] > 0


def test_requested_architecture_must_match_the_file(faces, tmp_path):
    with pytest.raises(TrainingError, match='--z-dim 32 disagrees'):
        train(options(faces, tmp_path, z_dim=32))
    with pytest.raises(TrainingError, match='--resolution 64 disagrees'):
        train(options(faces, tmp_path, resolution=64))
    assert list(tmp_path.iterdir()) == []


def test_bad_data_writes_nothing(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='empty'):
        train(options(empty, tmp_path / 'runs'))
    assert not (tmp_path / 'runs').exists() or list((tmp_path / 'runs').iterdir()) == []


def test_from_scratch_needs_a_resolution(faces, tmp_path):
    with pytest.raises(TrainingError, match='needs --resolution'):
        train(options(faces, tmp_path, resume=None))
    run = train(options(faces, tmp_path, resume=None, resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                        channel_base=256, channel_max=16))
    G = sg.load(list_snapshots(run)[-1][2]).G_ema
    assert (G.img_resolution, G.z_dim, G.cfg.channels[32]) == (32, 16, 8)


def test_non_finite_loss_stops_and_keeps_the_last_snapshot(faces, tmp_path, monkeypatch):
    calls = {'n': 0}
    real_G_main = loop.StyleGAN2Loss.G_main

    def poisoned(self, z, c):
        calls['n'] += 1
        value = real_G_main(self, z, c)
        return value * float('nan') if calls['n'] > 6 else value     # steps 7+ (after the snapshot at 16 images)

    monkeypatch.setattr(loop.StyleGAN2Loss, 'G_main', poisoned)
    with pytest.raises(TrainingError, match=r'non-finite loss_G.* at kimg 0\.032.*last good snapshot is network-snapshot-kimg000000\.016'):
        train(options(faces, tmp_path, kimg=0.064))
    (run,) = tmp_path.iterdir()
    assert [k for k, _, _ in list_snapshots(run)] == [0.016]
    assert read_state(run)['nimg'] == 16


def test_cli_train(faces, tmp_path):
    from stylegan2_lib.cli import main
    rc = main(['train', '--data', str(faces), '--outdir', str(tmp_path), '--resume', str(TINY32), '--kimg', '0.008',
               '--snap', '0.008', '--batch', '4', '--workers', '0', '--aug', 'fixed', '--p', '0.3', '--mirror'])
    assert rc == 0
    (run,) = tmp_path.iterdir()
    (_, epoch, path), = list_snapshots(run)
    assert sg.load(path).meta['augment_p'] == pytest.approx(0.3)     # fixed p stays put
    opts = json.loads((run / 'options.json').read_text())
    assert opts['mirror'] is True and opts['aug'] == 'fixed'


def test_gradients_through_conv_clamp_and_r1():
    # A clamp that really bites (|activations| > 0.5 are cut) must still give finite, non-zero gradients
    # to every trainable weight, including through R1's second-order term.
    torch.manual_seed(0)
    G = sg.Generator(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8, mapping_layers=1, conv_clamp=0.5).train()
    D = sg.Discriminator(img_resolution=8, channel_base=64, channel_max=8, conv_clamp=0.5).train()
    loss = loop.StyleGAN2Loss(G, D, None, r1_gamma=1.0)
    z = torch.randn(4, 8)
    loss.G_main(z, None).mean().backward()
    pl, _ = loss.G_pl(z, None)
    pl.mean().backward()
    r1, _ = loss.D_r1(torch.randn(4, 3, 8, 8), None)
    r1.mean().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            if name.endswith('weight'):
                assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
