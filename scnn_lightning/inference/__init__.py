"""Saliency for the user's own video (paper Fig. 2 at test time, Table II timings).

`checkpoint.py` loads a trained run's network and what it recorded (CRF, size, motion settings);
`motion.py` computes a frame's motion input (flow, Pt or the grey flow image), timed per step;
`stream.py` runs frames → motion → batched network → CRF → PNG as a bounded pipeline;
`overlay.py` writes the red-tint overlay video; `export.py` exports the network alone.
The command lines are `python -m scnn_lightning.predict` and `python -m scnn_lightning.export`.
"""
