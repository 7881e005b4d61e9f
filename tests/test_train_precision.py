"""Training in reduced precision without a GPU (layers.emulate_half_blocks stands the CPU in for CUDA), and the
fixes a GPU user needs: non-finite gradients cleaned before Adam (NVlabs's nan_to_num), NVlabs's fp16 setting for
networks without fp16 blocks, TF32 off unless asked and every flag restored, tensors on the run's device only."""

import contextlib
import copy
import json

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import stylegan2_lib as sg
from stylegan2_lib import layers
from stylegan2_lib.cli import build_parser
from stylegan2_lib.train import TrainOptions, TrainingError, list_snapshots, loop, speed, train
from stylegan2_lib.train.augment import AugmentPipe
from stylegan2_lib.train.distributed import Ranks, finish_gradients_
from stylegan2_lib.train.loss import StyleGAN2Loss
from stylegan2_lib.train.networks import make_optimizer, update_ema
from stylegan2_lib.train.state import read_metrics

from conftest import make_faces

HALF = [torch.float16, torch.bfloat16]


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return make_faces(tmp_path_factory.mktemp('faces'), 12, seed=1)


def scratch(data, outdir, **kw):
    """A from-scratch 16x16 run: a network with no fp16 blocks (what rosinality .pt and TF pickles give too)."""
    base = dict(data=str(data), outdir=str(outdir), resolution=16, z_dim=8, w_dim=8, mapping_layers=1, channel_base=128,
                channel_max=16, kimg=0.016, snap=0.016, tick=0.008, batch=4, workers=0, sample_seeds=4, p=0.2,
                device='cpu', precision='fp16')
    base.update(kw)
    return TrainOptions(**base)


def nets(num_fp16_res=1, seed=0, device='cpu'):
    torch.manual_seed(seed)
    cfg = dict(img_resolution=16, channel_base=64, channel_max=16, num_fp16_res=num_fp16_res, conv_clamp=256)
    G = sg.Generator(z_dim=8, w_dim=8, mapping_layers=2, **cfg).to(device).train()
    return G, sg.Discriminator(**cfg).to(device).train()


def stepper(G, D, batch=4, aug_p=0.5, precision='fp16'):
    opts = TrainOptions(data='-', outdir='-', batch=batch)
    pipe = AugmentPipe.preset('bgc', p=aug_p).to(next(G.parameters()).device)
    loss = StyleGAN2Loss(G, D, pipe, r1_gamma=1.0, **speed.loss_precision(precision, next(G.parameters()).device))
    return loop.Stepper(loss, make_optimizer(G, opts, 4), make_optimizer(D, opts, 16), G.z_dim, opts)

#----------------------------------------------------------------------------
# Non-finite gradients: replaced before the optimiser step, as NVlabs (nan -> 0, +-inf -> +-1e5), and counted.

def test_finish_gradients_replaces_nonfinite_entries_as_nvlabs():
    a, b, c = (torch.nn.Parameter(torch.zeros(s)) for s in (5, (2, 3), 4))
    a.grad = torch.tensor([1.5, float('nan'), float('inf'), -float('inf'), -2.0])
    b.grad = torch.arange(6.).reshape(2, 3)
    bad = finish_gradients_(Ranks(), [a, b, c])                         # c has no gradient: stays None
    assert torch.equal(a.grad, torch.tensor([1.5, 0.0, 1e5, -1e5, -2.0]))
    assert torch.equal(b.grad, torch.arange(6.).reshape(2, 3)) and c.grad is None
    assert bad.shape == () and float(bad) == 1
    assert float(finish_gradients_(Ranks(), [a, b])) == 0 and torch.equal(a.grad, torch.tensor([1.5, 0.0, 1e5, -1e5, -2.0]))


class InfGradient(torch.autograd.Function):
    """Identity whose backward sends +inf (a float16 overflow in miniature)."""
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, dy):
        return torch.full_like(dy, float('inf'))


def test_one_inf_gradient_does_not_poison_adam():
    G, D = nets(num_fp16_res=0)
    st = stepper(G, D, aug_p=0.0)
    original = st.loss.D_main
    st.loss.D_main = lambda *a: (InfGradient.apply(original(*a)[0]), original(*a)[1])
    stats = st(torch.rand(4, 3, 16, 16) * 2 - 1, 1)                  # Gmain, Dmain: every D gradient inf in Dmain
    assert float(stats['nonfinite_grads']) == 1
    st.loss.D_main = original
    stats = st(torch.rand(4, 3, 16, 16) * 2 - 1, 1)
    assert float(stats['nonfinite_grads']) == 0
    state = st.opt_D.state[D.b4.fc.weight]
    for t in [*G.parameters(), *D.parameters(), state['exp_avg'], state['exp_avg_sq']]:
        assert torch.isfinite(t).all()
    assert all(np.isfinite(float(v)) for v in stats.values())


def test_the_metrics_log_counts_steps_with_nonfinite_gradients(faces, tmp_path, monkeypatch):
    original, calls = StyleGAN2Loss.D_main, []
    def d_main(self, real, real_c, z, c):                             # D's first step: an inf gradient
        calls.append(1)
        value, logits = original(self, real, real_c, z, c)
        return (InfGradient.apply(value) if len(calls) == 1 else value), logits
    monkeypatch.setattr(StyleGAN2Loss, 'D_main', d_main)
    run = train(scratch(faces, tmp_path / 'runs', precision='fp32'))
    metrics = read_metrics(run)
    assert [m['nonfinite_grads'] for m in metrics] == [1, 0]
    assert all(np.isfinite(m[k]) for m in metrics for k in ('loss_G', 'loss_D'))
    ck = sg.load(list_snapshots(run)[-1][2])
    assert all(torch.isfinite(t).all() for net in (ck.G, ck.D) for t in net.state_dict().values())


def test_a_nonfinite_loss_names_fp16_and_the_way_out(faces, tmp_path, monkeypatch):
    original = StyleGAN2Loss.G_main
    monkeypatch.setattr(StyleGAN2Loss, 'G_main', lambda self, z, c: original(self, z, c) * float('inf'))
    with pytest.raises(TrainingError, match=r'non-finite loss_G .*--precision fp16.*--precision fp32'):
        train(scratch(faces, tmp_path / 'runs'))

#----------------------------------------------------------------------------
# --precision fp16 with a network that has no fp16 blocks: NVlabs's training setting where the blocks run in
# half (CUDA; here the emulation), said in the log and written to the run's options; on the CPU, float32.

@pytest.mark.parametrize('asked', [None, 1])
def test_fp16_gives_a_network_without_fp16_blocks_nvlabs_setting(faces, tmp_path, capsys, asked):
    with layers.emulate_half_blocks(torch.float16):
        run = train(scratch(faces, tmp_path / 'runs', num_fp16_res=asked))
        out = capsys.readouterr()
        want = 4 if asked is None else asked
        assert f'num_fp16_res {want} and conv_clamp 256 set for training' in out.out + out.err
        assert json.loads((run / 'options.json').read_text())['num_fp16_res'] == want
        ck = sg.load(list_snapshots(run)[-1][2])
        for net in (ck.G, ck.D, ck.G_ema):
            assert (net.cfg.num_fp16_res, net.cfg.conv_clamp) == (want, 256)
        assert sum(b.use_fp16 for b in ck.G.synthesis.blocks()) == min(want, 2)     # b16, b8: b4 never
        # Resume under the emulation: continues from the snapshot, the setting kept, finite.
        run2 = train(scratch(faces, tmp_path / 'runs', resume=str(run), kimg=0.032))
    assert run2 == run
    metrics = read_metrics(run)
    assert [m['nimg'] for m in metrics] == [8, 16, 24, 32]
    assert all(np.isfinite(m[k]) for m in metrics for k in ('loss_G', 'loss_D'))
    assert sg.load(list_snapshots(run)[-1][2]).G.cfg.num_fp16_res == want


def test_fp16_on_the_cpu_says_float32_and_keeps_the_network(faces, tmp_path, capsys):
    run = train(scratch(faces, tmp_path / 'runs'))
    out = capsys.readouterr()
    line = [ln for ln in (out.out + out.err).splitlines() if ln.startswith('precision')]
    assert line == ['precision fp16 on cpu: G blocks 4-16 float32; D blocks 8-16 float32, epilogue float32; TF32 off']
    assert sg.load(list_snapshots(run)[-1][2]).G.cfg.num_fp16_res == 0


def test_block_dtypes_in_each_mode():
    G, D = nets(num_fp16_res=2)
    cuda = torch.device('cuda')
    assert speed.block_dtypes('fp16', cuda, G) == {4: 'float32', 8: 'float16', 16: 'float16'}
    assert speed.block_dtypes('fp16', cuda, D) == {8: 'float16', 16: 'float16'}
    assert set(speed.block_dtypes('fp32', cuda, G).values()) == {'float32'}
    assert set(speed.block_dtypes('bf16', cuda, D).values()) == {'bfloat16 (autocast)'}
    assert speed.fp16_setting('fp16', cuda, G.cfg) == (2, 256, False)
    G0, _ = nets(num_fp16_res=0)
    G0.cfg.conv_clamp = None
    assert speed.fp16_setting('fp16', cuda, G0.cfg) == (4, 256, True)
    assert speed.fp16_setting('fp32', cuda, G0.cfg) == (0, None, False)
    assert speed.fp16_setting('bf16', cuda, G0.cfg) == (0, None, False)

#----------------------------------------------------------------------------
# TF32: off unless asked, readable during the run through the legacy flags, every flag restored exactly.

def all_flags():
    return speed.tf32_flags(), torch.backends.cudnn.benchmark


@pytest.mark.parametrize('start', ['default', 'mixed-apis', 'legacy-on'])
def test_tf32_is_explicit_and_every_flag_is_restored(start):
    b = torch.backends
    saved = all_flags()
    try:
        if start == 'mixed-apis' and hasattr(b.cudnn, 'conv') and hasattr(b.cudnn.conv, 'fp32_precision'):
            b.cudnn.conv.fp32_precision = 'ieee'                     # conv and rnn now differ: a legacy read raises
        if start == 'legacy-on':
            b.cudnn.allow_tf32 = b.cuda.matmul.allow_tf32 = True
            torch.set_float32_matmul_precision('medium')
        before = all_flags()
        for precision in speed.PRECISIONS:
            for tf32 in (False, True):
                with speed.cuda_flags(precision, torch.device('cuda'), tf32=tf32):     # flags only: no GPU needed
                    assert b.cudnn.allow_tf32 is tf32 and b.cuda.matmul.allow_tf32 is tf32 and b.cudnn.benchmark
                assert all_flags() == before, (precision, tf32)
    finally:
        speed.restore_tf32_flags(saved[0])
        b.cudnn.benchmark = saved[1]
    assert TrainOptions(data='x', outdir='y').tf32 is False


def test_cli_passes_tf32_and_num_fp16_res():
    args = build_parser().parse_args(['train', '--data', 'd', '--outdir', 'o', '--tf32', '--num-fp16-res', '2'])
    assert args.tf32 is True and args.num_fp16_res == 2
    args = build_parser().parse_args(['train', '--data', 'd', '--outdir', 'o'])
    assert args.tf32 is None and args.num_fp16_res is None                 # TrainOptions' defaults apply

#----------------------------------------------------------------------------
# The four phases (with R1's and the path-length penalty's double backward) in emulated float16 / bfloat16
# blocks: finite, and the gradients point where float32's do.

@pytest.mark.parametrize('dtype', HALF)
def test_four_phases_in_half_precision_blocks_agree_with_float32(dtype):
    grads = {}
    for mode in ('half', 'fp32'):
        G, D = nets(num_fp16_res=2)
        st = stepper(G, D, aug_p=0.0, precision='fp16' if mode == 'half' else 'fp32')
        real = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
        z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
        phases = {'Gmain': (G, lambda: st.loss.G_main(z, None)), 'Greg': (G, lambda: st.loss.G_pl(z, None)[0]),
                  'Dmain': (D, lambda: st.loss.D_main(real, None, z, None)[0]), 'Dreg': (D, lambda: st.loss.D_r1(real, None)[0])}
        with layers.emulate_half_blocks(dtype) if mode == 'half' else contextlib.nullcontext():
            for name, (net, fn) in phases.items():
                G.requires_grad_(net is G)
                D.requires_grad_(net is D)
                torch.manual_seed(4)                                  # the same noise and mixing in both modes
                value = fn()
                value.mean().backward()
                assert torch.isfinite(value).all(), (mode, name)
                grads[mode, name] = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
                net.zero_grad(set_to_none=True)
    for name in ('Gmain', 'Greg', 'Dmain', 'Dreg'):
        a, b = grads['half', name], grads['fp32', name]
        assert torch.isfinite(a).all()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0)
        assert cos > (0.99 if dtype == torch.float16 else 0.95), (name, float(cos))


def test_bf16_runs_on_an_emulating_cpu_without_native_bfloat16(monkeypatch):
    monkeypatch.setattr(speed, 'cpu_native_bf16', lambda: False)
    with pytest.raises(TrainingError, match='no native bfloat16'):
        speed.check_precision('bf16', torch.device('cpu'))
    with layers.emulate_half_blocks(torch.bfloat16):
        speed.check_precision('bf16', torch.device('cpu'))

#----------------------------------------------------------------------------
# Device placement: every phase on the meta device (no data, shapes only). A tensor made on the CPU and mixed
# with the networks' would fail there, as it would on CUDA; a CPU result larger than the host-side draws of
# the augmentation (a few numbers per sample) would be work done on the wrong device.

class CpuWork(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(t, torch.Tensor) and t.device.type == 'cpu' and t.numel() >= 256:
                self.ops.append(str(func))
        return out


@pytest.mark.parametrize('half', [None, torch.float16])
def test_every_training_phase_keeps_its_tensors_on_the_device(half):
    G, D = nets(num_fp16_res=1, device='meta')
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    st = stepper(G, D, aug_p=0.5)
    real = torch.empty(4, 3, 16, 16, device='meta')
    with layers.emulate_half_blocks(half) if half else contextlib.nullcontext(), CpuWork() as work:
        stats = st(real, 0)                                           # batch 0: Gmain, Greg, Dmain, Dreg
        update_ema(G_ema, G, 4, 4, TrainOptions(data='-', outdir='-'))
    assert work.ops == []
    assert set(stats) == {'loss_G', 'pl', 'loss_D', 'r1', 'nonfinite_grads'}
    assert all(v.device.type == 'meta' for v in stats.values())
    for opt in (st.opt_G, st.opt_D):
        assert all(t.device.type == 'meta' for s in opt.state.values() for t in s.values() if t.ndim > 0)
    assert st.loss.pl_mean.device.type == 'meta'


def test_gpu_memory_is_the_peak_of_each_tick(monkeypatch):
    # On the H200 three runs in one process all reported the first one's 13.5 GiB: the peak counter must restart
    # every tick (NVlabs resets it per tick too).
    events = []
    monkeypatch.setattr(torch.cuda, 'max_memory_allocated', lambda device=None: events.append('read') or 3 * 2 ** 30)
    monkeypatch.setattr(torch.cuda, 'reset_peak_memory_stats', lambda device=None: events.append('reset'))
    assert loop._peak_gib_since_last_tick(torch.device('cuda')) == 3.0 and events == ['read', 'reset']
    assert loop._peak_gib_since_last_tick(torch.device('cpu')) is None and events == ['read', 'reset']


def test_train_device_auto_and_cuda_without_a_gpu(monkeypatch):
    opts = lambda device: TrainOptions(data='-', outdir='-', device=device)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert loop._device(opts('auto'), Ranks()) == loop._device(opts(None), Ranks()) == torch.device('cpu')
    with pytest.raises(TrainingError, match='--device cuda: CUDA is not available here'):
        loop._device(opts('cuda'), Ranks())
    # The command line resolves --device auto by the same rule as every command does (cli_common.device_name).
    assert build_parser().parse_args(['train', '--data', 'd', '--outdir', 'o', '--device', 'auto']).device == 'cpu'


def test_options_from_dict_refuses_unknown_keys():
    d = TrainOptions(data='d', outdir='o').to_dict()
    assert TrainOptions.from_dict(d) == TrainOptions(data='d', outdir='o')
    with pytest.raises(TrainingError, match=r"unknown training option\(s\) \['lr_schedule'\]"):
        TrainOptions.from_dict({**d, 'lr_schedule': 'cosine'})
