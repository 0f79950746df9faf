"""Motion inputs of SCNN (paper §III-B): optical flow, the temporal prior Pt (Eq. 6) and their cache.

Most callers need only `MotionProvider` (provider.py).
"""
