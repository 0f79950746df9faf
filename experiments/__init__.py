"""The experiment layer: Hydra configs, the runner and its reports."""

from scnn_lightning.weights import register_weights_resolver

register_weights_resolver()  # `${weights:NAME}` in the configs
