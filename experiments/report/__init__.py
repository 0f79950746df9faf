"""Building blocks of `python -m experiments.compare`: run loading, tables, figures, qualitative grid."""
