"""Audio constants every layer shares (the networks too, which import no audio code)."""

SAMPLE_RATE = 16000
NB_SAMP = 64600  # ~4.04 s: the fixed model input length of the reference
DEFAULT_HOP = NB_SAMP // 2  # window hop for long files: 50 % overlap
