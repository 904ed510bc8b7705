"""The diffusion core: noise schedules, the Gaussian process, the 1-D UNet denoiser, training.

The process (:class:`GaussianDiffusion`) holds the schedule and takes the network as an
argument; guidance enters its sampler as a callable added to the reverse-step mean.
"""

from tardiff.diffusion.process import GaussianDiffusion, SamplingStep
from tardiff.diffusion.schedules import SCHEDULES, beta_schedule
from tardiff.diffusion.training import TrainConfig, TrainResult, load_denoiser, load_process, train_diffusion
from tardiff.diffusion.unet import UNet1D, UNetConfig

__all__ = [
    "GaussianDiffusion", "SamplingStep", "SCHEDULES", "beta_schedule", "TrainConfig", "TrainResult",
    "load_denoiser", "load_process", "train_diffusion", "UNet1D", "UNetConfig",
]
