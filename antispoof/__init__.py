"""antispoof: speech deepfake detection (SSL-AASIST, AASIST, AntiDeepfake, SLS), scoring, metrics, training.

Sub-packages, lowest layer first: `networks` (architectures and their configs), `audio` (decoding, dataset
layouts, augmentation), `checkpoints` (safe file reading, published formats, the registry), `evaluation`
(metrics, calibration), `scoring` (the one path from audio to scores), `reports` (plots, the analysis
report), `training` (fine-tuning). The scripts at the top of the repository are thin command lines over them.
"""

__version__ = "0.4.0"
