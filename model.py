"""The shared model module of the scripts (the design card's `model.py`): every detector architecture, its
config dataclass, the label indices and `build_model`, re-exported from the library (`antispoof.networks`).

    from model import build_model, REAL_INDEX
    net = build_model("aasist-l")   # random weights (released ones: antispoof.checkpoints.files.load_model)
    logits = net(waveform_batch)                 # (B, 64600) float32, 16 kHz -> (B, 2), index 1 = real
"""

from antispoof.networks import *  # noqa: F401,F403
from antispoof.networks import __all__  # noqa: F401
