"""The shared helpers of the scripts (the design card's `utils.py`): seeds, devices, wandb, atomic writes and
the one JSON writer, re-exported from the library (`antispoof.utils`)."""

from antispoof.utils import *  # noqa: F401,F403
from antispoof.utils import __all__  # noqa: F401
