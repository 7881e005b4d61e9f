"""Reduced precision without a GPU: the half-precision emulation switch, and what stays float32 under bfloat16
autocast (the styles, the demodulation coefficients, D's epilogue: NVlabs keeps its modulation arithmetic and
its epilogue in float32 around the float16 blocks)."""

import contextlib

import numpy as np
import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib import layers
from stylegan2_lib.ops.fast_modconv import demod_coefs


def nets(num_fp16_res=2, seed=0):
    torch.manual_seed(seed)
    cfg = dict(img_resolution=32, channel_base=256, channel_max=32, num_fp16_res=num_fp16_res, conv_clamp=256)
    return sg.Generator(z_dim=16, w_dim=16, mapping_layers=2, **cfg).eval(), sg.Discriminator(**cfg).eval()

#----------------------------------------------------------------------------
# The switch: the fp16 blocks run in the emulated dtype on the CPU, the others in float32; off again on exit.

class BlockDtypes:
    def __init__(self, *modules):
        self.seen, self.handles = {}, []
        for net in modules:
            for name, m in net.named_modules():
                if type(m).__name__ in ('SynthesisBlock', 'DiscriminatorBlock'):
                    self.handles.append(m.register_forward_hook(self._hook(f'{type(net).__name__}.{name}')))

    def _hook(self, name):
        def hook(module, args, out):
            x = out[0] if isinstance(out, tuple) else out
            self.seen[name] = x.dtype
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_emulation_runs_exactly_the_fp16_blocks_in_half_on_the_cpu(dtype):
    G, D = nets(num_fp16_res=2)
    probe = BlockDtypes(G, D)
    z = torch.randn(2, 16)
    with torch.no_grad():
        G(z, None), D(torch.zeros(2, 3, 32, 32), None)
        off = dict(probe.seen)
        with layers.emulate_half_blocks(dtype):
            img = G(z, None, noise_mode='const')
            logits = D(img, None)
            on = dict(probe.seen)
            forced = G(z, None, noise_mode='const', force_fp32=True)
        assert len(off) == 7 and set(off.values()) == {torch.float32}
        probe.seen.clear()
        G(z, None), D(torch.zeros(2, 3, 32, 32), None)
        assert probe.seen == off                                       # restored on exit
    probe.close()
    half = {name for name, d in on.items() if d == dtype}
    # G: the two highest-resolution blocks (16, 32); D: its two first blocks (32, 16), as NVlabs's num_fp16_res.
    assert half == {'Generator.synthesis.b16', 'Generator.synthesis.b32', 'Discriminator.b32', 'Discriminator.b16'}
    assert img.dtype == logits.dtype == torch.float32 and torch.isfinite(img).all() and torch.isfinite(logits).all()
    assert (img - forced).abs().max() < (0.02 if dtype == torch.float16 else 0.1)
    with pytest.raises(ValueError, match='float16 or torch.bfloat16'):
        with layers.emulate_half_blocks(torch.float64):
            pass

#----------------------------------------------------------------------------
# bfloat16 autocast (--precision bf16): styles, demodulation coefficients and D's epilogue in float32.

def test_styles_stay_float32_under_bf16_autocast():
    G, _ = nets(num_fp16_res=0)
    seen = []
    handles = [m.affine.register_forward_hook(lambda mod, a, out: seen.append(out.dtype))
               for m in G.synthesis.modules() if hasattr(m, 'affine')]
    ws = G.mapping(torch.randn(2, 16), None)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        img = G.synthesis(ws, noise_mode='const', force_fp32=True)
    for h in handles:
        h.remove()
    assert len(seen) == len(G.synthesis.noise_layers()) + len(G.synthesis.blocks()) and set(seen) == {torch.float32}
    assert img.dtype == torch.float32


def test_demodulation_coefficients_stay_float32_under_bf16_autocast():
    gen = torch.Generator().manual_seed(0)
    w, s = torch.randn(8, 16, 3, 3, generator=gen), torch.randn(4, 16, generator=gen)
    exact = (s.double().square() @ w.double().square().sum([2, 3]).t() + 1e-8).rsqrt()      # Eq. 3 via the identity
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = demod_coefs(w, s)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), exact, rtol=1e-5, atol=0)


def test_discriminator_epilogue_stays_float32_under_bf16_autocast():
    _, D = nets(num_fp16_res=0)
    img = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    features = {}
    D.b4.register_forward_hook(lambda mod, args, out: features.update(x=args[0]))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = D(img, None, force_fp32=True)
    assert logits.dtype == torch.float32
    with torch.no_grad():
        expected = D.b4(features['x'].float())                        # the epilogue on the same features, no autocast
    torch.testing.assert_close(logits.detach(), expected, rtol=1e-6, atol=1e-6)

#----------------------------------------------------------------------------
# The photo and explorer paths render in float32 (force_fp32) whatever the blocks could do: the emulation
# must not change them by a bit. Sampling (generate, the training grids) does use the fp16 blocks.

def test_projection_and_explorer_stay_float32_under_the_emulation():
    from stylegan2_lib.blend_views import BlendViews, ViewState
    from stylegan2_lib.project import project
    G, D = nets(num_fp16_res=2)
    G1, _ = nets(num_fp16_res=2, seed=1)
    target = (np.random.RandomState(0).rand(32, 32, 3) * 255).astype(np.uint8)
    state = ViewState(snapshot=0, resolution=8, seeds=(0, 1), truncation_psi=0.7, width=0.5)
    results = []
    for emulate in (False, True):
        with layers.emulate_half_blocks(torch.float16) if emulate else contextlib.nullcontext():
            p = project(G, target, steps=4, loss='discriminator', D=D, progress=False)
            cols = BlendViews(G, {'tuned': G1}, device='cpu').columns(state)
        results.append((p, cols))
    (p32, c32), (p16, c16) = results
    assert p16.loss == p32.loss and torch.equal(p16.ws, p32.ws)
    assert all(np.array_equal(c16[k], c32[k]) for k in ('low', 'blend', 'high'))


def test_sampling_uses_the_emulated_half_blocks():
    from stylegan2_lib.images import generate_images
    G, _ = nets(num_fp16_res=2)
    full = generate_images(G, [0, 1, 2], truncation_psi=0.7, progress=False)
    with layers.emulate_half_blocks(torch.float16):
        half = generate_images(G, [0, 1, 2], truncation_psi=0.7, progress=False)
    assert torch.isfinite(half).all() and not torch.equal(half, full)
    assert (half - full).abs().max() < 0.02
