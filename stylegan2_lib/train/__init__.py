"""Training: StyleGAN2(-ADA) transfer learning with snapshots to blend.

    from stylegan2_lib.train import TrainOptions, train
    run_dir = train(TrainOptions(resume='ffhq256.pkl', data='anime.zip', outdir='runs', kimg=40, snap=4))

Modules: options (TrainOptions), loss (the StyleGAN2 losses and regularisers), augment (ADA), state (run
directory, snapshots and resume), loop (the training loop). The losses and augmentation take and return
modules and tensors; only the loop and state touch files.
"""

from .options import TrainOptions
from .loop import TickInfo, TrainingError, train
from .state import list_snapshots

__all__ = ['TrainOptions', 'TickInfo', 'TrainingError', 'train', 'list_snapshots']
