"""ADA augmentation pipe and p controller (issue 5, points 3 and 9): identity at p = 0, each transform's maths
checked independently at p = 1, the fraction of augmented samples, gradients (first and second order),
and the p schedule."""

import math

import pytest
import torch
import torch.nn.functional as F

from stylegan2_lib.train.augment import (
    PRESETS, AdaController, AugmentPipe, blit, grid_sample, hue_rotate3d, recolour, resample, rotate2d, saturation3d,
    translate2d)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand_images(n, size=8, channels=3, seed=0):
    return torch.rand([n, channels, size, size], generator=gen(seed)) * 2 - 1


def per_sample_equal(a, b):
    return (a == b).flatten(1).all(1)


def luma(x):
    return x.mean(dim=1, keepdim=True)

#----------------------------------------------------------------------------
# Identity.

@pytest.mark.parametrize('name', sorted(PRESETS))
def test_identity_at_p0_for_every_preset(name):
    x = rand_images(16)
    pipe = AugmentPipe.preset(name, p=0.0)
    y = pipe(x, generator=gen(1))
    assert torch.equal(y, x) and y is x


def test_samples_that_draw_nothing_are_bitwise_unchanged():
    pipe = AugmentPipe.preset('bgc', p=0.15)
    x = rand_images(64)
    d = pipe.draw(64, 8, 8, gen(3))
    y = pipe(x, draws=d)
    touched = torch.zeros(64, dtype=torch.bool)
    for v in d.applied.values():
        touched |= v
    assert 0 < int(touched.sum()) < 64
    changed = ~per_sample_equal(y, x)
    assert not changed[~touched].any()
    assert int(changed.sum()) > 0.7 * int(touched.sum())      # a drawn x-flip, luma flip, quarter turn may be 0


def test_same_seed_same_output_and_draws_replay():
    pipe = AugmentPipe.preset('bgc', p=0.7)
    x = rand_images(8)
    assert torch.equal(pipe(x, generator=gen(5)), pipe(x, generator=gen(5)))
    d = pipe.draw(8, 8, 8, gen(5))
    assert torch.equal(pipe(x, draws=d), pipe(x, generator=gen(5)))

#----------------------------------------------------------------------------
# Pixel blitting at p = 1: exact permutations.

def test_xflip_flips_some_samples_and_leaves_the_rest():
    x = rand_images(64)
    y = AugmentPipe(p=1, xflip=1)(x, generator=gen())
    flipped, same = per_sample_equal(y, x.flip(3)), per_sample_equal(y, x)
    assert (flipped ^ same).all()
    assert 10 < int(flipped.sum()) < 54


def test_rotate90_gives_one_of_the_four_exact_rotations():
    x = rand_images(64)
    y = AugmentPipe(p=1, rotate90=1)(x, generator=gen())
    hits = torch.stack([per_sample_equal(y, torch.rot90(x, k, dims=(2, 3))) for k in range(4)])   # [4, N]
    assert (hits.sum(0) == 1).all()
    assert (hits.sum(1) > 5).all()


def test_integer_translation_is_an_exact_shift_with_reflected_borders():
    size, r = 16, 2                                             # xint_max 0.125 of 16 px: shifts within +-2
    x = rand_images(32, size)
    y = AugmentPipe(p=1, xint=1)(x, generator=gen())
    padded = F.pad(x, [r] * 4, mode='reflect')
    shifts = []
    for i in range(x.shape[0]):
        found = [(dx, dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1)
                 if torch.equal(y[i], padded[i, :, r - dy: r - dy + size, r - dx: r - dx + size])]
        assert len(found) == 1, (i, found)
        shifts += found
    assert len({s for s in shifts if s != (0, 0)}) > 5


def test_exact_pass_is_a_permutation_of_pixels_for_integer_matrices():
    x = rand_images(4, 8)
    M = translate2d(torch.tensor([3.0, -9.0, 0.0, 1.0]), torch.tensor([0.0, 2.0, -20.0, 1.0]))
    y = blit(x, M)
    for i in range(4):                                          # every output pixel is some input pixel
        assert torch.isin(y[i], x[i]).all()
    assert torch.equal(blit(x, torch.eye(3).repeat(4, 1, 1)), x)

#----------------------------------------------------------------------------
# General geometric transforms: one resampling pass.

def smooth_images(n=1, size=32):
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    c = (size - 1) / 2
    img = torch.cos(2 * math.pi * ((xx - c) + 2 * (yy - c)) / size + 0.3) * torch.exp(-((xx - c) ** 2 + (yy - c) ** 2) / 60)
    return img.float().expand(n, 3, size, size).contiguous(), (xx, yy, c)


def test_resampling_with_identity_matrix_returns_the_input():
    pipe = AugmentPipe.preset('g')
    for shape in [(3, 3, 8, 8), (2, 1, 5, 7), (2, 3, 16, 16)]:
        x = torch.randn(shape, generator=gen())
        y = resample(x, torch.eye(3).repeat(shape[0], 1, 1), pipe.Hz_geom, pipe.geom_offset)
        assert (y - x).abs().max() < 1e-4


def test_resampling_agrees_with_the_exact_pass_on_quarter_turns_of_a_smooth_image():
    pipe = AugmentPipe.preset('g')
    x, _ = smooth_images()
    for k in range(4):
        M = rotate2d(torch.tensor([[1.0, 0, -1, 0][k]]), torch.tensor([[0.0, 1, 0, -1][k]]))
        err = (resample(x, M, pipe.Hz_geom, pipe.geom_offset) - blit(x, M)).abs().max()
        assert err < 0.02, (k, err)


def test_resampling_rotates_about_the_centre_in_the_matrix_direction():
    pipe = AugmentPipe.preset('g')
    x, (xx, yy, c) = smooth_images()
    t = 0.7                                                     # output pixel v reads input pixel R(t) v
    y = resample(x, rotate2d(torch.tensor([math.cos(t)]), torch.tensor([math.sin(t)])), pipe.Hz_geom, pipe.geom_offset)
    sx, sy = math.cos(t) * (xx - c) - math.sin(t) * (yy - c), math.sin(t) * (xx - c) + math.cos(t) * (yy - c)
    expected = torch.cos(2 * math.pi * (sx + 2 * sy) / 32 + 0.3) * torch.exp(-(sx ** 2 + sy ** 2) / 60)
    assert (y[0, 0, 8:24, 8:24] - expected[8:24, 8:24]).abs().max() < 0.02


def test_general_geometric_transforms_change_every_sample_at_p1():
    for name in ('scale', 'rotate', 'aniso', 'xfrac'):
        x = rand_images(8)
        y = AugmentPipe(p=1, **{name: 1})(x, generator=gen())
        assert not per_sample_equal(y, x).any(), name
        assert torch.isfinite(y).all()

#----------------------------------------------------------------------------
# Colour transforms at p = 1.

def test_brightness_adds_a_per_sample_constant():
    x = rand_images(16)
    d = (AugmentPipe(p=1, brightness=1)(x, generator=gen()) - x).flatten(1)
    assert (d.max(1).values - d.min(1).values < 1e-6).all()
    assert d[:, 0].std() > 0.05


def test_contrast_scales_around_zero():
    x = rand_images(16)
    y = AugmentPipe(p=1, contrast=1)(x, generator=gen())
    ratio = (y / x).flatten(1)
    assert (ratio.max(1).values - ratio.min(1).values < 1e-4).all()
    assert (ratio[:, 0] > 0).all() and ratio[:, 0].std() > 0.05


def test_luma_flip_maps_grey_to_its_negative_and_keeps_chroma():
    grey = rand_images(32, channels=1).expand(32, 3, 8, 8)
    y = AugmentPipe(p=1, lumaflip=1)(grey, generator=gen())
    neg = ((y + grey).abs().flatten(1).max(1).values < 1e-6)
    assert (neg | per_sample_equal(y, grey)).all() and 5 < int(neg.sum()) < 27
    x = rand_images(32)
    y = AugmentPipe(p=1, lumaflip=1)(x, generator=gen())
    assert torch.allclose(y - luma(y), x - luma(x), atol=1e-6)
    assert torch.allclose(luma(y).abs(), luma(x).abs(), atol=1e-6)


def test_hue_rotation_keeps_luma_and_chroma_norm():
    x = rand_images(16)
    y = AugmentPipe(p=1, hue=1)(x, generator=gen())
    assert torch.allclose(luma(y), luma(x), atol=1e-5)
    assert torch.allclose((y - luma(y)).norm(dim=1), (x - luma(x)).norm(dim=1), atol=1e-5)
    assert not per_sample_equal(y, x).any()


def test_hue_rotation_by_a_third_turn_cycles_the_channels():
    x = rand_images(2)
    y = recolour(x, hue_rotate3d(torch.tensor([2 * math.pi / 3] * 2)).float())
    assert torch.allclose(y, x[:, [2, 0, 1]], atol=1e-6)


def test_saturation_scales_chroma_and_zero_gives_grey():
    x = rand_images(16)
    y = AugmentPipe(p=1, saturation=1)(x, generator=gen())
    assert torch.allclose(luma(y), luma(x), atol=1e-5)
    ratio = ((y - luma(y)).norm(dim=1) / (x - luma(x)).norm(dim=1)).flatten(1)
    assert (ratio.max(1).values - ratio.min(1).values < 1e-3).all()
    grey = recolour(x, saturation3d(torch.zeros(16)).float())
    assert torch.allclose(grey, luma(x).expand_as(x), atol=1e-6)


def test_colour_on_one_channel_images():
    x = rand_images(8, channels=1)
    y = AugmentPipe(p=1, brightness=1, contrast=1)(x, generator=gen())
    assert y.shape == x.shape and not per_sample_equal(y, x).any()

#----------------------------------------------------------------------------
# Probability of each transform.

def test_fraction_of_augmented_samples_is_p():
    n, p = 4000, 0.3
    tol = 4 * math.sqrt(p * (1 - p) / n)
    d = AugmentPipe.preset('bgc', p=p).draw(n, 8, 8, gen())
    for name in PRESETS['bgc']:
        assert abs(float(d.applied[name].double().mean()) - p) < tol, name
    x = rand_images(n)
    changed = ~per_sample_equal(AugmentPipe(p=p, brightness=1)(x, generator=gen(1)), x)
    assert abs(float(changed.double().mean()) - p) < tol
    flipped = ~per_sample_equal(AugmentPipe(p=p, xflip=1)(x, generator=gen(2)), x)
    assert abs(float(flipped.double().mean()) - p / 2) < tol   # a drawn x-flip flips with probability 1/2

#----------------------------------------------------------------------------
# Gradients: D's gradients reach G through the pipe; R1 differentiates D(aug(reals)) w.r.t. the reals.

# ('bgc', 0.2, seed 1): one row each for the exact pass, the resampling pass, colour, and nothing.
@pytest.mark.parametrize('name,p,seed', [('bgc', 1.0, 1), ('bgc', 0.2, 1), ('b', 1.0, 2)])
def test_gradcheck_with_fixed_draws(name, p, seed):
    pipe = AugmentPipe.preset(name, p=p)
    d = pipe.draw(4, 8, 8, gen(seed))
    x = torch.randn([4, 3, 8, 8], dtype=torch.float64, generator=gen(), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: pipe(x, draws=d), (x,), fast_mode=True)


def test_second_order_gradient_r1():
    pipe = AugmentPipe.preset('bgc', p=0.8)
    D = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Softplus(), torch.nn.Flatten(), torch.nn.Linear(144, 1))
    x = torch.randn([4, 3, 8, 8], requires_grad=True)
    logits = D(pipe(x, generator=gen()))
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    g.square().sum().backward()
    grads = [q.grad for q in D.parameters() if q.grad is not None]   # D's last bias does not enter R1
    assert len(grads) == 3 and all(torch.isfinite(q).all() and q.abs().sum() > 0 for q in grads)


def test_gradgradcheck_on_the_resampling_pass():
    pipe = AugmentPipe.preset('bgc', p=1.0)
    d = pipe.draw(2, 6, 6, gen(7))
    x = torch.randn([2, 3, 6, 6], dtype=torch.float64, generator=gen(), requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x: pipe(x, draws=d), (x,), fast_mode=True)

# The resampling pass's grid_sample: PyTorch's values, and a double backward of its own. PyTorch's CUDA builds
# have no derivative for grid_sampler_2d_backward (R1 on an H200 failed with "derivative for
# aten::grid_sampler_2d_backward is not implemented"); the CPU build has one, so the test checks the graph:
# no node of PyTorch's grid_sampler backward may be differentiated.

def test_grid_sample_equals_pytorch_and_is_twice_differentiable():
    x = torch.randn([2, 3, 5, 6], dtype=torch.float64, generator=gen(), requires_grad=True)
    grid = torch.rand([2, 4, 7, 2], dtype=torch.float64, generator=gen(1)) * 2.4 - 1.2      # some outside: border
    want = F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
    torch.testing.assert_close(grid_sample(x, grid), want, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: grid_sample(x, grid), (x,))
    assert torch.autograd.gradgradcheck(lambda x: grid_sample(x, grid), (x,))
    with pytest.raises(ValueError, match='image only'):
        grid_sample(x, grid.clone().requires_grad_(True))


def _graph_names(t):
    seen, todo, names = set(), [t.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    return names


def test_r1_through_the_pipe_never_differentiates_pytorchs_grid_sampler_backward():
    pipe = AugmentPipe.preset('bgc', p=1.0)
    x = torch.randn([4, 3, 8, 8], requires_grad=True)
    logits = (pipe(x, generator=gen(3)) * torch.randn([4, 3, 8, 8], generator=gen(4))).sum()
    (g,) = torch.autograd.grad(logits, x, create_graph=True)
    names = _graph_names(g)
    assert any('GridSample' in n for n in names)                 # the resampling pass ran
    assert not any(n.startswith('GridSampler2DBackward') for n in names), names

#----------------------------------------------------------------------------
# The module: p is a CPU buffer that is saved and survives device and dtype moves.

def test_p_buffer_is_saved_and_stays_a_cpu_float32_scalar():
    pipe = AugmentPipe.preset('bgc', p=0.25).double()
    assert pipe.p.device.type == 'cpu' and pipe.p.dtype == torch.float32 and pipe.p.ndim == 0
    assert pipe.Hz_geom.dtype == torch.float64
    assert list(pipe.state_dict()) == ['p']
    other = AugmentPipe.preset('bgc')
    other.load_state_dict(pipe.state_dict())
    assert float(other.p) == 0.25
    with pytest.raises(ValueError):
        AugmentPipe.preset('bgcfnc')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_forward_makes_no_host_device_sync_on_cuda():
    pipe = AugmentPipe.preset('bgc', p=0.5).cuda()
    x = torch.randn([8, 3, 16, 16], device='cuda', requires_grad=True)
    pipe(x)                                                     # warm-up (pinned memory pool, kernels)
    torch.cuda.set_sync_debug_mode('error')
    try:
        pipe(x).sum()
    finally:
        torch.cuda.set_sync_debug_mode('default')

#----------------------------------------------------------------------------
# The p schedule.

def make_controller(p=0.5, **kwargs):
    pipe = AugmentPipe.preset('bgc', p=p)
    return pipe, AdaController(pipe, **{'target': 0.6, 'interval': 4, 'kimg': 500, 'batch': 8, **kwargs})


def feed(ada, positive_fraction, steps=4, batch=8):
    k = round(positive_fraction * batch)
    for _ in range(steps):
        ada.accumulate(torch.tensor([1.0] * k + [-1.0] * (batch - k)).reshape(batch, 1))


def test_p_step_follows_the_ada_formula():
    pipe, ada = make_controller(p=0.5)
    assert ada.update() is None and ada.p == 0.5                # nothing accumulated yet
    feed(ada, 1.0, steps=3)
    assert ada.update() is None and ada.p == 0.5                # 3 of interval=4 steps: not due
    feed(ada, 1.0, steps=1)
    assert ada.update() == 1.0
    assert ada.p == pytest.approx(0.5 + 8 * 4 / 500_000, abs=1e-7)
    feed(ada, 0.25)
    assert ada.update() == pytest.approx(-0.5)
    assert ada.p == pytest.approx(0.5, abs=1e-7)
    assert float(pipe.p) == ada.p and ada.last_rt == pytest.approx(-0.5)


def test_p_rises_above_target_falls_below_and_clamps():
    pipe, ada = make_controller(p=0.0, kimg=0.064)              # one update moves p by 0.5
    feed(ada, 0.5)
    ada.update()
    assert ada.p == 0.0                                         # r_t = 0 < 0.6: would fall, clamped at 0
    for expected in (0.5, 1.0, 1.0):
        feed(ada, 1.0)                                          # r_t = 1 > 0.6: rises, clamped at 1
        ada.update()
        assert ada.p == expected


def test_fixed_mode_measures_rt_but_keeps_p():
    pipe, ada = make_controller(p=0.2, fixed=True)
    feed(ada, 1.0)
    assert ada.update() == 1.0 and ada.p == pytest.approx(0.2)


def test_controller_state_dict_round_trip_mid_interval():
    pipe, ada = make_controller(p=0.3)
    feed(ada, 1.0)
    ada.update()
    feed(ada, 0.75, steps=2)
    state = ada.state_dict()
    pipe2, ada2 = make_controller(p=0.0)
    ada2.load_state_dict(state)
    assert ada2.state_dict() == state and ada2.p == ada.p and ada2.last_rt == 1.0
    for a in (ada, ada2):
        feed(a, 0.0, steps=2)
        a.update()
    assert ada2.p == ada.p and ada2.last_rt == ada.last_rt == pytest.approx(-0.25)   # (6 - 2) * 2 - 8 * 2 of 32
