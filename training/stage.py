"""The training stages as the recipe runner names them (core/registry.py): `train` and `validate`."""

from __future__ import annotations

from thinktoggle.training.trainer import TinyModelConfig, TrainConfig, run_train
from thinktoggle.training.validate import ValidateConfig, run_validate

__all__ = ["TinyModelConfig", "TrainConfig", "ValidateConfig", "run_train", "run_validate"]
