"""Data-parallel training (issue 5, point 6) on the CPU: two processes started by torchrun on the gloo backend
train as one (one run directory, metrics once per tick, ranks in step, each with its own data slice and
randomness) and resume with every rank's own RNG state; a global batch that does not split is refused. The
CUDA speed options: channels-last blocks keep the networks' values, the bf16 loss path (run with the CPU's
autocast) gives float32 losses and finite gradients; where there is a GPU, fp16 / bf16 / fp32 training steps
give finite losses, and with two GPUs the same run works on NCCL."""

import copy
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import stylegan2_lib as sg
from stylegan2_lib.train import TrainOptions, TrainingError, list_snapshots, train
from stylegan2_lib.train import distributed, loop, speed
from stylegan2_lib.train.augment import AugmentPipe
from stylegan2_lib.train.state import read_metrics, read_state
from conftest import TINY32, make_faces

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return make_faces(tmp_path_factory.mktemp('faces'), 16, seed=1, eyes=False)


@pytest.fixture
def one_thread():
    """One intra-op thread for the in-process tests, as each torchrun rank here has: as fast on these tiny
    networks, and it does not collapse (10x slower) when another process keeps one of two cores busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(nproc, train_args, digests, timeout=150):
    """`python -m torch.distributed.run --nproc_per_node N -m stylegan2_lib train ...`; (returncode, output).
    On a timeout torchrun gets SIGTERM, on which it stops its workers (they run in their own sessions)."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc), '--master_addr', '127.0.0.1',
           '--master_port', str(free_port()), '-m', 'stylegan2_lib', 'train', *map(str, train_args)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', distributed.DIGEST_ENV: str(digests)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return proc.returncode, out


def train_args(faces, outdir, **kw):
    args = dict(data=faces, outdir=outdir, resume=TINY32, kimg=0.016, snap=0.008, tick=0.008, batch=4, workers=0, p=0.2, device='cpu')
    args.update(kw)
    return [x for k, v in args.items() for x in (f'--{k.replace("_", "-")}', v)]


def digests(folder, tag):
    return [json.loads((Path(folder) / f'rank{r}-{tag}.json').read_text()) for r in (0, 1)]

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def two_process_run(faces, tmp_path_factory):
    """2 ranks, global batch 4, stopped at 12 images: in the middle of an ADA interval (4 steps)."""
    tmp = tmp_path_factory.mktemp('ddp')
    rc, out = torchrun(2, train_args(faces, tmp / 'runs', kimg=0.012), tmp / 'digests')
    assert rc == 0, out[-3000:]
    return tmp, out


def test_two_processes_write_one_run(two_process_run):
    tmp, out = two_process_run
    (run,) = (tmp / 'runs').iterdir()                               # one run directory, written by rank 0
    assert [(k, e) for k, e, _ in list_snapshots(run)] == [(0.008, 0), (0.012, 0)]
    assert sorted(p.name for p in run.glob('*.png')) == [p.with_suffix('.png').name for _, _, p in list_snapshots(run)]
    assert [m['nimg'] for m in read_metrics(run)] == [8, 12]       # one line per tick, not one per rank
    assert all(np.isfinite(m['loss_G']) and np.isfinite(m['loss_D']) for m in read_metrics(run))
    assert out.count('run finished') == 1
    assert json.loads((run / 'options.json').read_text())['batch'] == 4    # the global batch


def test_ranks_stay_in_step_with_their_own_randomness(two_process_run, tiny32):
    tmp, _ = two_process_run
    (run,) = (tmp / 'runs').iterdir()
    start, end = digests(tmp / 'digests', 'start'), digests(tmp / 'digests', 'end')
    assert start[0]['networks'] == start[1]['networks'] and end[0]['networks'] == end[1]['networks']
    assert start[0]['rng'] != start[1]['rng'] and end[0]['rng'] != end[1]['rng']      # seeds seed * 2 + rank
    ck = sg.load(list_snapshots(run)[-1][2])
    assert distributed.state_digest(ck.G, ck.D, ck.G_ema) == end[0]['networks']      # the snapshot is the ranks' state
    G0, G = tiny32.G.state_dict(), ck.G.state_dict()
    assert all(torch.isfinite(v).all() for v in G.values())
    assert not torch.equal(G['synthesis.b32.conv1.weight'], G0['synthesis.b32.conv1.weight'])
    st = read_state(run)
    assert st['world_size'] == 2 and len(st['ranks']) == 2
    assert len({distributed.rng_digest(r['rng']['torch']) for r in st['ranks']}) == 2       # every rank's own RNG state
    assert [r['ada']['steps'] for r in st['ranks']] == [3, 3]                               # ADA's partial interval


def test_resume_continues_exactly_with_every_rank_its_own_state(two_process_run, faces, tmp_path):
    tmp, _ = two_process_run
    (run,) = (tmp / 'runs').iterdir()
    run = Path(shutil.copytree(run, tmp_path / run.name))
    stored = read_state(run)['ranks']
    rc, out = torchrun(2, ['--data', faces, '--outdir', tmp_path, '--resume', run, '--kimg', 0.024, '--workers', 0, '--device', 'cpu'],
                       tmp_path / 'digests')
    assert rc == 0, out[-3000:]
    assert list(tmp_path.glob('0*')) == [run]
    start = digests(tmp_path / 'digests', 'start')
    assert [d['rng'] for d in start] == [distributed.rng_digest(r['rng']['torch']) for r in stored]
    assert start[0]['networks'] == start[1]['networks'] and [d['nimg'] for d in start] == [12, 12]
    assert [m['nimg'] for m in read_metrics(run)] == [8, 12, 16, 24]
    assert [k for k, _, _ in list_snapshots(run)] == [0.008, 0.012, 0.016, 0.024]

    # The same two-process run without the stop: bitwise the same networks and augment p.
    rc, out = torchrun(2, train_args(faces, tmp_path / 'fresh', kimg=0.024), tmp_path / 'fresh-digests')
    assert rc == 0, out[-3000:]
    (fresh,) = (tmp_path / 'fresh').iterdir()
    a, b = sg.load(list_snapshots(run)[-1][2]), sg.load(list_snapshots(fresh)[-1][2])
    for name in ('G', 'D', 'G_ema'):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert a.meta['augment_p'] == b.meta['augment_p']


def test_resume_with_another_number_of_processes_reseeds(two_process_run, faces, tmp_path, one_thread):
    tmp, _ = two_process_run
    (run,) = (tmp / 'runs').iterdir()
    run = Path(shutil.copytree(run, tmp_path / run.name))
    with pytest.warns(UserWarning, match='resuming with 1 process.* saved by 2: the random streams are reseeded'):
        train(TrainOptions(data=str(faces), outdir=str(tmp_path), resume=str(run), kimg=0.024, workers=0, device='cpu'))
    assert [m['nimg'] for m in read_metrics(run)] == [8, 12, 16, 24]
    assert 'world_size' not in read_state(run)                      # a single-process state again

#----------------------------------------------------------------------------

def test_each_rank_reads_its_slice_of_every_global_batch():
    one = loop.EpochSampler(10, seed=3, start=4)
    ranks = [loop.EpochSampler(10, seed=3, start=4, batch=4, rank=r, world_size=2) for r in (0, 1)]
    take = lambda sampler, n: [i for i, _ in zip(iter(sampler), range(n))]
    whole, parts = take(one, 24), [take(s, 12) for s in ranks]
    for step in range(6):                                           # crosses two epoch boundaries
        assert parts[0][2 * step: 2 * step + 2] + parts[1][2 * step: 2 * step + 2] == whole[4 * step: 4 * step + 4]


def test_rank_seeds_and_batch_split():
    assert distributed.rank_seed(5, distributed.Ranks()) == 5                       # one process: the seed itself
    assert [distributed.rank_seed(5, distributed.Ranks(r, 2)) for r in (0, 1)] == [10, 11]
    assert distributed.local_batch(8, distributed.Ranks(0, 4)) == 2
    with pytest.raises(TrainingError, match='--batch 6 is the global batch over all 4 processes and must be a multiple of 4'):
        distributed.local_batch(6, distributed.Ranks(0, 4))


def test_batch_that_does_not_split_is_refused(faces, tmp_path, monkeypatch, capsys):
    from stylegan2_lib.cli import main
    for name, value in (('WORLD_SIZE', '2'), ('RANK', '0'), ('LOCAL_RANK', '0')):
        monkeypatch.setenv(name, value)
    rc = main(['train', *map(str, train_args(faces, tmp_path / 'runs', batch=5))])
    assert rc == 1
    assert 'must be a multiple of 2' in capsys.readouterr().err
    assert not (tmp_path / 'runs').exists()

#----------------------------------------------------------------------------
# CUDA speed options.

def _blocks(G, D):
    return G.synthesis.blocks() + [getattr(D, f'b{r}') for r in D.block_resolutions]


def test_channels_last_blocks_give_the_same_values_and_gradients(one_thread):
    """The layout switch the trainer turns on for CUDA, exercised on the CPU: same images, logits, R1 terms."""
    torch.manual_seed(0)
    G0 = sg.Generator(z_dim=8, w_dim=8, img_resolution=16, channel_base=128, channel_max=16, mapping_layers=1, conv_clamp=0.5)
    D0 = sg.Discriminator(img_resolution=16, channel_base=128, channel_max=16, conv_clamp=0.5)
    results = []
    for channels_last in (False, True):
        G, D = copy.deepcopy(G0).train(), copy.deepcopy(D0)
        for block in _blocks(G, D):
            block.channels_last = channels_last
        torch.manual_seed(0)
        ws = G.mapping(torch.randn(2, G.z_dim), None)
        img = G.synthesis(ws, noise_mode='const')
        (g_grad,) = torch.autograd.grad(img.square().sum(), G.synthesis.b16.conv0.weight)
        real = img.detach().requires_grad_(True)
        logits = D(real, None)
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        (grad2,) = torch.autograd.grad(grad.square().sum(), D.b16.conv0.weight)       # R1's second-order term
        results.append((img, g_grad, logits, grad, grad2))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bf16_loss_path_gives_float32_losses_and_finite_gradients(one_thread):
    """The bf16 mode's code path (force_fp32 + autocast around G.synthesis and D, channels-last blocks), run with
    the CPU's bfloat16 autocast: every loss comes out float32, every parameter gets a finite gradient."""
    torch.manual_seed(0)
    G = sg.Generator(z_dim=8, w_dim=8, img_resolution=16, channel_base=128, channel_max=16, mapping_layers=1, conv_clamp=256).train()
    D = sg.Discriminator(img_resolution=16, channel_base=128, channel_max=16, conv_clamp=256).train()
    for block in _blocks(G, D):
        block.channels_last = True
    loss = loop.StyleGAN2Loss(G, D, AugmentPipe.preset('bgc', p=0.5), r1_gamma=1.0, force_fp32=True, autocast_dtype=torch.bfloat16)
    z, real = torch.randn(4, 8), torch.rand(4, 3, 16, 16) * 2 - 1
    values = [loss.G_main(z, None), loss.G_pl(z, None)[0], loss.D_main(real, None, z, None)[0], loss.D_r1(real, None)[0]]
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in values)
    for v in values:
        v.mean().backward()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_speed_options_on_the_cpu(monkeypatch):
    cpu = torch.device('cpu')
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    with speed.cuda_flags('fp16', cpu):
        assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark) == before
    G = sg.Generator(z_dim=8, w_dim=8, mapping_layers=1, img_resolution=16, channel_base=64, channel_max=8, num_fp16_res=2)
    for precision in ('fp16', 'fp32'):                   # float32: no float16 blocks on the CPU
        assert set(speed.block_dtypes(precision, cpu, G).values()) == {'float32'}
        assert speed.fp16_setting(precision, cpu, G.cfg) == (2, None, False)
    assert speed.loss_precision('fp16', cpu) == {'force_fp32': False, 'autocast_dtype': None}
    assert speed.loss_precision('bf16', cpu) == {'force_fp32': True, 'autocast_dtype': torch.bfloat16}
    with pytest.raises(ValueError, match='precision must be'):
        TrainOptions(data='x', outdir='y', precision='fp8')
    monkeypatch.setattr(speed, 'cpu_native_bf16', lambda: False)
    with pytest.raises(TrainingError, match='no native bfloat16'):
        speed.check_precision('bf16', cpu)
    speed.check_precision('fp16', cpu)


class ConvolutionDtypes(TorchDispatchMode):
    """The dtypes of the convolutions that reach the kernels (after autocast's casts)."""
    def __init__(self):
        super().__init__()
        self.seen = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default):
            self.seen.add(args[0].dtype)
        return func(*args, **(kwargs or {}))


@pytest.mark.skipif(not speed.cpu_native_bf16(), reason='this CPU has no native bfloat16')
def test_cpu_bf16_training_runs_its_convolutions_in_bfloat16(faces, tmp_path):
    opts = TrainOptions(data=str(faces), outdir=str(tmp_path / 'runs'), resolution=16, z_dim=8, w_dim=8, mapping_layers=1,
                        channel_base=128, channel_max=16, kimg=0.016, snap=0.016, tick=0.008, batch=4, workers=0, p=0.2,
                        device='cpu', sample_seeds=4)
    seen = {}
    for precision in ('fp16', 'bf16'):
        with ConvolutionDtypes() as mode:
            run = train(dataclasses.replace(opts, precision=precision))
        seen[precision] = mode.seen
        metrics = read_metrics(run)
        assert [m['nimg'] for m in metrics] == [8, 16]
        assert all(np.isfinite(m[k]) for m in metrics for k in ('loss_G', 'loss_D', 'pl', 'r1') if k in m)
        ck = sg.load(list_snapshots(run)[-1][2])
        assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in ck.G.state_dict().values())
    assert seen['fp16'] == {torch.float32}                  # the CPU default: float32
    assert torch.bfloat16 in seen['bf16']                    # and float32 only where the ops keep it (see ops/fast_resample)


@pytest.fixture
def tiny32_fp16(tiny32, tmp_path):
    """tiny32 with its two top G blocks and two first D blocks in float16 and conv_clamp 256 (NVlabs's setting)."""
    nets = {}
    for name, cls in (('G', sg.Generator), ('D', sg.Discriminator), ('G_ema', sg.Generator)):
        src = getattr(tiny32, name)
        nets[name] = cls(dataclasses.replace(src.cfg, num_fp16_res=2, conv_clamp=256))
        nets[name].load_state_dict(src.state_dict())
    sg.save(tmp_path / 'tiny32-fp16.safetensors', **nets)
    return tmp_path / 'tiny32-fp16.safetensors'


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('precision', ['fp16', 'bf16', 'fp32'])
def test_cuda_precisions_train_with_finite_losses(precision, faces, tmp_path, tiny32_fp16):
    if precision == 'bf16' and not speed.cuda_native_bf16():
        pytest.skip('no native bfloat16 on this GPU')
    flags = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    run = train(TrainOptions(data=str(faces), outdir=str(tmp_path / 'runs'), resume=str(tiny32_fp16), kimg=0.016, snap=0.016,
                             tick=0.008, batch=4, workers=0, p=0.2, device='cuda', precision=precision, sample_seeds=4))
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark) == flags     # restored afterwards
    metrics = read_metrics(run)
    assert [m['nimg'] for m in metrics] == [8, 16]
    assert all(np.isfinite(m[k]) for m in metrics for k in ('loss_G', 'loss_D', 'pl', 'r1') if k in m)
    assert metrics[0]['gpu_mem_gb'] > 0
    ck, start = sg.load(list_snapshots(run)[-1][2]), sg.load(tiny32_fp16)
    for name in ('synthesis.b32.conv1.weight', 'synthesis.b8.conv1.weight'):          # an fp16 block and a float32 one
        after, before = ck.G.state_dict()[name], start.G.state_dict()[name]
        assert after.dtype == torch.float32 and torch.isfinite(after).all() and not torch.equal(after, before), name


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs two CUDA devices')
def test_two_gpus_train_in_step_on_nccl(faces, tmp_path, tiny32_fp16):
    args = train_args(faces, tmp_path / 'runs', resume=tiny32_fp16, device='cuda', precision='fp16')
    rc, out = torchrun(2, args, tmp_path / 'digests')
    assert rc == 0, out[-3000:]
    end = digests(tmp_path / 'digests', 'end')
    assert end[0]['networks'] == end[1]['networks'] and end[0]['rng'] != end[1]['rng']
    (run,) = (tmp_path / 'runs').iterdir()
    assert [m['nimg'] for m in read_metrics(run)] == [8, 16]
