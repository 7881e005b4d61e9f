"""stylegan2_lib: turn a pretrained StyleGAN2 face generator into a face stylizer.

    import stylegan2_lib as sg
    ck = sg.load('ffhq.pkl')                    # any common StyleGAN2 checkpoint format, loaded safely
    img = ck.G_ema(z, None, truncation_psi=0.7, noise_mode='const')   # [N, 3, H, W], about [-1, 1]
    G = sg.blend(ck.G_ema, toon.G_ema, 16)      # low layers of one generator, high layers of another
    sg.export('stylizer.pkl', G)                # NVlabs-, rosinality- or our format
    sg.train(sg.TrainOptions(resume='ffhq.pkl', data='anime.zip', outdir='runs'))   # fine-tune with snapshots
    r = sg.stylize(photo, ck.G_ema, styled=toon.G_ema, resolution=16)   # align, project, render with the blend
    G_styled = sg.oneshot(ck.G_ema, ck.D, [style_image])   # one-shot stylizer (JoJoGAN): a network like a snapshot
"""

__version__ = '0.1.0'

from .generator import Generator, GeneratorConfig, MappingNetwork, SynthesisNetwork
from .discriminator import Discriminator, DiscriminatorConfig
from .checkpoints import load, save, export, Checkpoint, CheckpointError, ExportError, UnsafePickleError
from .blend import blend
from .data import ImageDataset, prepare_dataset
from .train import TrainOptions, train
from .align import align_face
from .project import project, save_projected_w
from .stylize import stylize
from .oneshot import oneshot
from .devices import default_device, describe_device
from .images import to_uint8, save_image, make_grid, save_grid, parse_seeds, generate_images

__all__ = [
    'Generator', 'GeneratorConfig', 'MappingNetwork', 'SynthesisNetwork', 'Discriminator', 'DiscriminatorConfig',
    'load', 'save', 'export', 'blend', 'Checkpoint', 'CheckpointError', 'ExportError', 'UnsafePickleError',
    'to_uint8', 'save_image', 'make_grid', 'save_grid', 'parse_seeds', 'generate_images',
    'ImageDataset', 'prepare_dataset', 'TrainOptions', 'train', 'align_face', 'project', 'save_projected_w', 'stylize',
    'oneshot', 'default_device', 'describe_device',
]
