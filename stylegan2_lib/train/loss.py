"""StyleGAN2 losses (Karras et al. 2020, Section 4 and Appendix B; NVlabs stylegan2-ada-pytorch `loss.py`):

    G:  softplus(-D(G(z)))                                      non-saturating logistic loss
        + pl_weight * (|J_w^T y| - a)^2, lazily                 path-length regularisation (Eq. 4)
    D:  softplus(D(G(z))) + softplus(-D(x))
        + gamma / 2 * |grad_x D(x)|^2, lazily                   R1 (Mescheder et al. 2018)

with style mixing (two latents, a random crossover layer) and D seeing ADA-augmented images. Every
function returns per-sample losses; the loop scales, averages and backpropagates them. Nothing here calls
.item(): no host-device synchronisation inside a step.

Precision (see speed.py): G.synthesis and D run with `force_fp32` and, for bf16, inside
torch.autocast(autocast_dtype); their outputs are cast to float32, so the mapping network, the augmentation,
the losses and the R1 / path-length gradients (taken outside autocast) are float32.
"""

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

#----------------------------------------------------------------------------
# Latents -> ws with style mixing: with probability `prob` the rows from a random crossover layer on
# come from a second latent (NVlabs: cutoff ~ U{1, num_ws - 1}). Masked instead of sliced: no sync.

def mapping_with_mixing(G, z, c, prob, update_w_avg):
    ws = G.mapping(z, c, update_emas=update_w_avg)
    if prob <= 0:
        return ws
    num_ws = ws.shape[1]
    cutoff = torch.randint(1, num_ws, [], device=z.device)
    cutoff = torch.where(torch.rand([], device=z.device) < prob, cutoff, torch.full_like(cutoff, num_ws))
    mixed = G.mapping(torch.randn_like(z), c, update_emas=False)
    keep = (torch.arange(num_ws, device=z.device) < cutoff).reshape(1, -1, 1)
    return torch.where(keep, ws, mixed)

#----------------------------------------------------------------------------

class StyleGAN2Loss:
    def __init__(self,
        G, D,                           # networks being trained (training mode)
        augment_pipe    = None,         # callable on images before D, or None
        r1_gamma        = 10.0,         # R1 weight
        style_mixing    = 0.9,          # probability of style mixing
        pl_weight       = 2.0,          # path-length regularisation weight
        pl_batch_shrink = 2,            # pl uses batch // shrink samples
        pl_decay        = 0.01,         # decay of the running mean path length `a`
        update_w_avg    = True,         # track w_avg while training G (off when the mapping is frozen)
        force_fp32      = False,        # run every block of G.synthesis and D in float32
        autocast_dtype  = None,         # e.g. torch.bfloat16: autocast around G.synthesis and D (CUDA)
    ):
        self.G, self.D, self.augment_pipe = G, D, augment_pipe
        self.r1_gamma, self.style_mixing, self.update_w_avg = r1_gamma, style_mixing, update_w_avg
        self.pl_weight, self.pl_batch_shrink, self.pl_decay = pl_weight, pl_batch_shrink, pl_decay
        self.force_fp32, self.autocast_dtype = force_fp32, autocast_dtype
        self.pl_mean = torch.zeros([], device=next(G.parameters()).device)

    def _autocast(self, device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def synthesis(self, ws):
        with self._autocast(ws.device):
            img = self.G.synthesis(ws, noise_mode='random', force_fp32=self.force_fp32)
        return img.float()

    def run_G(self, z, c, update_w_avg=False):
        ws = mapping_with_mixing(self.G, z, c, self.style_mixing, update_w_avg and self.update_w_avg)
        return self.synthesis(ws), ws

    def run_D(self, img, c):
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        with self._autocast(img.device):
            logits = self.D(img, c, force_fp32=self.force_fp32)
        return logits.float()

    #------------------------------------------------------------------------
    # G: non-saturating loss on fresh fakes.

    def G_main(self, z, c):
        img, _ = self.run_G(z, c, update_w_avg=True)
        logits = self.run_D(img, c)
        return F.softplus(-logits)                          # [N, 1]

    # G: path-length penalty (|J^T y|, y ~ N(0, I) / sqrt(H W)) toward its running mean.
    def G_pl(self, z, c):
        n = max(z.shape[0] // self.pl_batch_shrink, 1)
        img, ws = self.run_G(z[:n], None if c is None else c[:n])
        if not ws.requires_grad:                            # frozen mapping: differentiate w.r.t. ws anyway
            ws = ws.detach().requires_grad_(True)
            img = self.synthesis(ws)
        noise = torch.randn_like(img) / np.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(2).mean(1).sqrt()      # [n]
        self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay)
        penalty = (lengths - self.pl_mean).square()
        return penalty * self.pl_weight + img[:, 0, 0, 0] * 0, penalty   # keep every G parameter in the graph

    #------------------------------------------------------------------------
    # D: logistic loss on fakes (G frozen for this) and reals.

    def D_main(self, real, real_c, z, c):
        with torch.no_grad():
            fake, _ = self.run_G(z, c)
        loss_fake = F.softplus(self.run_D(fake, c))
        real_logits = self.run_D(real.detach(), real_c)
        return loss_fake + F.softplus(-real_logits), real_logits.detach()

    # D: R1 penalty, gamma / 2 * |grad_x D(aug(x))|^2 on reals.
    def D_r1(self, real, real_c):
        real = real.detach().requires_grad_(True)
        logits = self.run_D(real, real_c)
        (grads,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        penalty = grads.square().sum([1, 2, 3])
        return penalty * (self.r1_gamma / 2) + logits[:, 0] * 0, penalty
