"""TFNet: transcription-factor levels -> every target gene's expression.

family.py: the Family hooks; prepare.py: arrays, model, loss and scores.
"""
from tfnet_jax.tasks.tfnet.family import TFNetFamily

__all__ = ["TFNetFamily"]
