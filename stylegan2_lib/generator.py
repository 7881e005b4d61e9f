"""StyleGAN2 generator (Karras et al. 2020) with the NVlabs stylegan2-ada-pytorch API and parameter names.

    G.mapping(z, c, truncation_psi=1, truncation_cutoff=None) -> ws [N, num_ws, w_dim]
    G.synthesis(ws, noise_mode='random', force_fp32=False, noise=None) -> img [N, C, H, W]
    G(z, c, truncation_psi=1, truncation_cutoff=None, noise_mode='random', force_fp32=False)

Architecture 'skip' (the StyleGAN2 config-e/f generator): every block adds its ToRGB output to the
upsampled image of the previous block.
"""

import dataclasses
from typing import Optional

import torch

from . import ops
from .layers import FullyConnectedLayer, SynthesisLayer, ToRGBLayer, block_layout, compute_dtype, randn
from .netconfig import ConfigMixin, block_resolutions, channel_table, check_channels, check_resolution, fp16_resolution

#----------------------------------------------------------------------------
# Everything needed to rebuild a generator; stored as JSON in checkpoints.

@dataclasses.dataclass
class GeneratorConfig(ConfigMixin):
    z_dim:                  int = 512       # Input latent (Z) dimensionality, 0 = no latent.
    c_dim:                  int = 0         # Conditioning label (C) dimensionality, 0 = unconditional.
    w_dim:                  int = 512       # Intermediate latent (W) dimensionality.
    img_resolution:         int = 1024      # Output resolution.
    img_channels:           int = 3         # Number of output colour channels.
    channels:               Optional[dict] = None  # {resolution: channels}; None = from channel_base/max.
    channel_base:           int = 32768     # NVlabs channel formula, used when channels is None.
    channel_max:            int = 512       # NVlabs channel formula, used when channels is None.
    num_fp16_res:           int = 0         # Run the N highest-resolution blocks in float16 (CUDA only).
    conv_clamp:             Optional[float] = None  # Clamp convolution outputs to +-X.
    architecture:           str = 'skip'    # Only 'skip' is supported.
    resample_filter:        tuple = (1, 3, 3, 1)
    use_noise:              bool = True
    activation:             str = 'lrelu'
    mapping_layers:         int = 8
    mapping_embed_features: Optional[int] = None   # None = w_dim.
    mapping_layer_features: Optional[int] = None   # None = w_dim.
    mapping_activation:     str = 'lrelu'
    mapping_lr_multiplier:  float = 0.01
    w_avg_beta:             Optional[float] = 0.995

    def __post_init__(self):
        check_resolution(self.img_resolution)
        if self.architecture != 'skip':
            raise ValueError(f"generator architecture {self.architecture!r} is not supported (only 'skip')")
        if self.channels is None:
            self.channels = channel_table(self.block_resolutions, self.channel_base, self.channel_max)
        self.channels = {int(k): int(v) for k, v in self.channels.items()}
        check_channels(self.channels, self.block_resolutions)
        self.resample_filter = tuple(self.resample_filter)

    @property
    def block_resolutions(self):
        return block_resolutions(self.img_resolution)

    @property
    def num_ws(self):
        return 2 * len(self.block_resolutions)   # 1 conv + 2 per further block, + 1 for the last ToRGB

    @property
    def fp16_resolution(self):
        # NVlabs: blocks at resolution >= this run in fp16; b4 never does.
        return fp16_resolution(self.img_resolution, self.num_fp16_res)

#----------------------------------------------------------------------------
# Mapping network: z (and embedded c) -> w, broadcast to num_ws rows, with truncation toward w_avg.

class MappingNetwork(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Input latent (Z) dimensionality, 0 = no latent.
        c_dim,                      # Conditioning label (C) dimensionality, 0 = no label.
        w_dim,                      # Intermediate latent (W) dimensionality.
        num_ws,                     # Number of ws to output, None = do not broadcast.
        num_layers      = 8,        # Number of mapping layers.
        embed_features  = None,     # Label embedding dimensionality, None = same as w_dim.
        layer_features  = None,     # Number of intermediate features, None = same as w_dim.
        activation      = 'lrelu',  # Activation function name.
        lr_multiplier   = 0.01,     # Learning rate multiplier for the mapping layers.
        w_avg_beta      = 0.995,    # Decay for tracking the moving average of W, None = do not track.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier)
            setattr(self, f'fc{idx}', layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def _embed(self, z, c):
        x = None
        if self.z_dim > 0:
            assert z is not None and z.shape[1:] == (self.z_dim,), f'z must be [N, {self.z_dim}], got {None if z is None else list(z.shape)}'
            x = ops.normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f'this network is conditional: c must be [N, {self.c_dim}], got {None if c is None else list(c.shape)}')
            y = ops.normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        return x

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False, update_emas=None):
        x = self._embed(z, c)
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        # Track the moving average of W while training (used for truncation).
        update = self.training and not skip_w_avg_update if update_emas is None else update_emas
        if self.w_avg_beta is not None and update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        # Truncation trick: w' = w_avg + psi * (w - w_avg), on rows [0, cutoff) when a cutoff is given.
        if truncation_psi != 1:
            assert self.w_avg_beta is not None, 'truncation needs w_avg'
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self):
        return f'z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}'

#----------------------------------------------------------------------------
# One resolution of the synthesis network: [conv0 (up 2)], conv1, torgb; adds to the upsampled image.

class SynthesisBlock(torch.nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, use_fp16=False,
                 conv_clamp=None, resample_filter=(1, 3, 3, 1), use_noise=True, activation='lrelu'):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.use_fp16 = use_fp16
        self.channels_last = False      # NHWC convolution inputs (set by the trainer on CUDA; not saved)
        self.register_buffer('resample_filter', ops.setup_filter(list(resample_filter)))
        layer_kwargs = dict(w_dim=w_dim, conv_clamp=conv_clamp, resample_filter=resample_filter,
                            use_noise=use_noise, activation=activation)
        if in_channels == 0:
            self.const = torch.nn.Parameter(randn([out_channels, resolution, resolution]))
            self.num_conv = 1
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, resolution=resolution, up=2, **layer_kwargs)
            self.num_conv = 2
        self.conv1 = SynthesisLayer(out_channels, out_channels, resolution=resolution, **layer_kwargs)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_torgb = 1

    def conv_layers(self):
        return [self.conv1] if self.in_channels == 0 else [self.conv0, self.conv1]

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, noise_mode='random', noise=None):
        assert ws.shape[1] == self.num_conv + self.num_torgb
        w_iter = iter(ws.unbind(dim=1))
        noise_iter = iter(noise if noise is not None else [None] * self.num_conv)
        dtype = compute_dtype(self.use_fp16, force_fp32, ws.device)
        if fused_modconv is None:
            # Grouped conv is the fast path for inference in fp32; training uses the activation-scaling form.
            fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)

        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = x.to(dtype)
        x = block_layout(x, self.channels_last)
        for layer in self.conv_layers():
            x = layer(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv, noise=next(noise_iter))

        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).to(torch.float32)
        img = img + y if img is not None else y
        return x, img

    def extra_repr(self):
        return f'resolution={self.resolution}, in={self.in_channels}, out={self.out_channels}, use_fp16={self.use_fp16}'

#----------------------------------------------------------------------------
# Synthesis network: ws [N, num_ws, w_dim] -> image. Block b{r} reads rows [w_idx, w_idx + num_conv + 1)
# and advances by num_conv, so each torgb shares its row with the next block's conv0.

class SynthesisNetwork(torch.nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.w_dim = cfg.w_dim
        self.img_resolution = cfg.img_resolution
        self.img_resolution_log2 = check_resolution(cfg.img_resolution)
        self.img_channels = cfg.img_channels
        self.block_resolutions = cfg.block_resolutions
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                in_channels     = cfg.channels[res // 2] if res > 4 else 0,
                out_channels    = cfg.channels[res],
                w_dim           = cfg.w_dim,
                resolution      = res,
                img_channels    = cfg.img_channels,
                use_fp16        = (res >= cfg.fp16_resolution),
                conv_clamp      = cfg.conv_clamp,
                resample_filter = cfg.resample_filter,
                use_noise       = cfg.use_noise,
                activation      = cfg.activation,
            )
            self.num_ws += block.num_conv
            setattr(self, f'b{res}', block)
        self.num_ws += 1  # the last block's torgb
        assert self.num_ws == cfg.num_ws

    def blocks(self):
        return [getattr(self, f'b{res}') for res in self.block_resolutions]

    def noise_layers(self):
        """The layers that take noise, in the order of the `noise=[...]` list."""
        return [layer for block in self.blocks() for layer in block.conv_layers()]

    def forward(self, ws, noise_mode='random', force_fp32=False, fused_modconv=None, noise=None, update_emas=None):
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f'ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}')
        if noise is not None and len(noise) != len(self.noise_layers()):
            raise ValueError(f'noise must list {len(self.noise_layers())} tensors (one per conv layer), got {len(noise)}')
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        n_idx = 0
        for block in self.blocks():
            block_noise = None if noise is None else noise[n_idx: n_idx + block.num_conv]
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), force_fp32=force_fp32,
                           fused_modconv=fused_modconv, noise_mode=noise_mode, noise=block_noise)
            w_idx += block.num_conv
            n_idx += block.num_conv
        return img

    def extra_repr(self):
        return f'img_resolution={self.img_resolution}, num_ws={self.num_ws}'

#----------------------------------------------------------------------------
# The generator: mapping + synthesis.

class Generator(torch.nn.Module):
    def __init__(self, cfg: Optional[GeneratorConfig] = None, **kwargs):
        super().__init__()
        cfg = cfg if cfg is not None else GeneratorConfig(**kwargs)
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        self.c_dim = cfg.c_dim
        self.w_dim = cfg.w_dim
        self.img_resolution = cfg.img_resolution
        self.img_channels = cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim           = cfg.z_dim,
            c_dim           = cfg.c_dim,
            w_dim           = cfg.w_dim,
            num_ws          = self.num_ws,
            num_layers      = cfg.mapping_layers,
            embed_features  = cfg.mapping_embed_features,
            layer_features  = cfg.mapping_layer_features,
            activation      = cfg.mapping_activation,
            lr_multiplier   = cfg.mapping_lr_multiplier,
            w_avg_beta      = cfg.w_avg_beta,
        )

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, update_emas=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, **synthesis_kwargs)
