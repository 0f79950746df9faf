"""Dataset indexing (readers), frame/mask decoding, synthetic clips and the Lightning datamodule."""
