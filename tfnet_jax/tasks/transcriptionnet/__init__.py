"""TranscriptionNet: a multiplex of gene networks -> the L1000 signature of a gene's RNAi, CRISPR or OE.

family.py: the Family hooks; prepare.py: arrays, model, loss and scores; guard.py: the
out-of-distribution guard.
"""
from tfnet_jax.tasks.transcriptionnet.family import TranscriptionNetFamily

__all__ = ["TranscriptionNetFamily"]
