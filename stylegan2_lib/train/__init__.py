"""Training: StyleGAN2(-ADA) transfer learning with snapshots to blend.

    from stylegan2_lib.train import TrainOptions, train
    run_dir = train(TrainOptions(resume='ffhq256.pkl', data='anime.zip', outdir='runs', kimg=40, snap=4))

Several GPUs: `torchrun --nproc_per_node N -m stylegan2_lib train ...` (see distributed.py).

Modules: options (TrainOptions), networks (building, freezing, optimisers, EMA), loss (the StyleGAN2 losses
and regularisers), augment (ADA), state (run directory, snapshots and resume), distributed (data parallel
over torchrun's processes), speed (CUDA precision and flags), loop (the training loop). The losses and
augmentation take and return modules and tensors; only the loop and state touch files.
"""

from .options import TrainOptions
from .loop import TickInfo, TrainingError, train
from .state import latest_run, list_snapshots

__all__ = ['TrainOptions', 'TickInfo', 'TrainingError', 'train', 'list_snapshots', 'latest_run']
