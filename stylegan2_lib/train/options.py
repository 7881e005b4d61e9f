"""Every training option in one dataclass: the CLI fills it, notebooks build it directly."""

import dataclasses
from typing import Optional

class TrainingError(RuntimeError):
    """The run cannot start or cannot go on (bad options, non-finite losses); the message says why."""

#----------------------------------------------------------------------------

@dataclasses.dataclass
class TrainOptions:
    # What to train on and where to write.
    data:            str                        # image folder or zip (see stylegan2_lib.data)
    outdir:          str                        # runs are created inside as NNNNN-<name>
    resume:          Optional[str] = None       # any sg.load-able file (architecture from it), or a run directory
    kimg:            float = 40                 # total length, thousands of images shown to D
    snap:            float = 4                  # snapshot every this many kimg (also at the end)
    snap_epochs:     Optional[int] = None       # ... and/or every this many epochs
    tick:            float = 1                  # metrics line + progress update every this many kimg
    batch:           int = 8                    # images per step (over all processes under torchrun)
    seed:            int = 0
    workers:         int = 2                    # DataLoader processes (0 = load in the main process)
    device:          Optional[str] = None       # 'cpu' or 'cuda'; None = cuda when available
    precision:       str = 'fp16'               # 'fp16' (CUDA: the network's fp16 blocks), 'bf16' (autocast), 'fp32'
    num_fp16_res:    Optional[int] = None       # fp16 on CUDA: float16 blocks; None = the network's, or NVlabs's 4 if none
    tf32:            bool = False               # TF32 for float32 matmuls and convolutions on CUDA (NVlabs: off)
    # Scores at every snapshot against the training images (train/measure.py).
    metrics:         tuple = ()                 # any of 'kid', 'fid', 'copy'
    metrics_images:  int = 500                  # generated (and at most as many training) images per snapshot
    metrics_features: str = 'auto'              # 'auto', 'inception', 'discriminator' (the source's D) or 'pixels'
    sample_seeds:    int = 16                   # grid of fixed seeds rendered at every snapshot
    # Losses and regularisation (StyleGAN2 / stylegan2-ada-pytorch defaults).
    gamma:           Optional[float] = None     # R1 weight; None = 0.0002 * resolution^2 / batch (NVlabs 'auto')
    pl_weight:       float = 2.0                # path-length regularisation weight
    pl_batch_shrink: int = 2
    pl_decay:        float = 0.01
    style_mixing:    float = 0.9                # probability of mixing two latents
    g_reg_interval:  int = 4                    # lazy regularisation intervals
    d_reg_interval:  int = 16
    lr:              float = 0.0025             # Adam, both networks (paper256 transfer config)
    betas:           tuple = (0.0, 0.99)
    ema_kimg:        Optional[float] = None     # G_ema half-life in kimg; None = batch * 10 / 32
    ema_rampup:      Optional[float] = 0.05     # half-life <= this fraction of images seen so far
    # Augmentation (ADA).
    aug:             str = 'ada'                # 'ada' (adaptive p), 'fixed' (p), 'none'
    p:               float = 0.0                # initial (ada) or fixed (fixed) augmentation probability
    target:          float = 0.6                # ADA target for r_t = E[sign(D(real))]
    augpipe:         str = 'bgc'
    ada_interval:    int = 4                    # adjust p every this many steps
    ada_kimg:        float = 500                # p can move by 1 within this many kimg
    # Small-data transfer knobs.
    freezed:         int = 0                    # FreezeD: freeze the first k D blocks from the image side
    freeze_g:        int = 0                    # freeze the synthesis blocks at resolution <= this (0 = none)
    freeze_mapping:  bool = False               # freeze G's mapping network (and w_avg)
    mirror:          bool = False               # x-flip the dataset (doubles its size)
    # Architecture when training from scratch (with --resume it comes from the file; a disagreeing value is an error).
    resolution:      Optional[int] = None
    z_dim:           Optional[int] = None
    w_dim:           Optional[int] = None
    mapping_layers:  Optional[int] = None
    channel_base:    Optional[int] = None
    channel_max:     Optional[int] = None

    def __post_init__(self):
        self.betas = tuple(self.betas)
        self.metrics = tuple(self.metrics)
        checks = [(self.kimg > 0, 'kimg must be > 0'), (self.snap > 0, 'snap must be > 0'), (self.batch >= 1, 'batch must be >= 1'),
                  (self.aug in ('ada', 'fixed', 'none'), "aug must be 'ada', 'fixed' or 'none'"),
                  (0 <= self.p <= 1, 'p must be in [0, 1]'), (0 < self.target < 1, 'target must be in (0, 1)'),
                  (self.freezed >= 0 and self.freeze_g >= 0, 'freeze values must be >= 0'),
                  (self.tick > 0, 'tick must be > 0'), (self.workers >= 0, 'workers must be >= 0'),
                  (self.precision in ('fp16', 'bf16', 'fp32'), "precision must be 'fp16', 'bf16' or 'fp32'"),
                  (set(self.metrics) <= {'kid', 'fid', 'copy'}, "metrics must be among 'kid', 'fid', 'copy'"),
                  (self.metrics_images >= 2, 'metrics_images must be >= 2'),
                  (self.metrics_features in ('auto', 'inception', 'discriminator', 'pixels'),
                   "metrics_features must be 'auto', 'inception', 'discriminator' or 'pixels'")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """The options of a run's options.json; an unknown key is an error (as for the network configs), not
        silently dropped: it would mean the run was made by another version with options this one ignores."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TrainingError(f'unknown training option(s) {unknown}: written by another version of stylegan2_lib?')
        return cls(**d)

ARCHITECTURE_OPTIONS = ('resolution', 'z_dim', 'w_dim', 'mapping_layers', 'channel_base', 'channel_max')
