"""scnn-lightning: SCNN video salient object detection (Tang et al., TCSVT 2018) on PyTorch Lightning."""

__version__ = "0.1.0"
