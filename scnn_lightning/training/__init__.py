"""LightningModules: one shared base, the image stage, and one subclass per SCNN variant."""
