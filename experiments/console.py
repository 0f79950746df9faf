"""What `python -m experiments.run` prints: Lightning's advertising tips, hardware banners of a CPU run and
warnings known to be harmless here are hidden, so the run's own log (also in DIR/run.log) stays readable.

Each filter matches one message narrowly. `SCNN_SHOW_ALL_WARNINGS=1` shows everything again.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

SHOW_ALL_ENV = "SCNN_SHOW_ALL_WARNINGS"

# Lightning's info lines (logger lightning.pytorch.utilities.rank_zero) that say nothing about this run.
HIDDEN_INFO = re.compile(
    r"💡 Tip: "                                  # litlogger / litmodels advertising
    r"|(GPU|TPU|HPU) available: False"           # hardware banners of a run without accelerators
)

# (message regex, category): warnings that are expected and harmless in these runs.
HIDDEN_WARNINGS = (
    # we load data in the main process by default (data.num_workers=0): the choice is the user's
    (r"The '\w+' does not have many workers", UserWarning),
    # tiny runs (tests, smoke checks) have fewer batches than the logging interval
    (r"The number of training batches \(\d+\) is smaller than the logging interval", UserWarning),
    # every stage writes into its own checkpoint folder; a resumed stage finds its own checkpoints there
    (r"Checkpoint directory .* exists and is not empty", UserWarning),
    # Lightning 2.6's own use of a torch API that torch deprecated after it
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", Warning),
)


def hide_known_noise() -> None:
    """Install the filters above for this process (unless SCNN_SHOW_ALL_WARNINGS=1)."""
    if os.environ.get(SHOW_ALL_ENV, "") not in ("", "0"):
        return
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_drop_hidden_info)
    for message, category in HIDDEN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def _drop_hidden_info(record: logging.LogRecord) -> bool:
    return not HIDDEN_INFO.match(record.getMessage())
