"""antispoof: speech deepfake detection (SSL-AASIST, AASIST, AntiDeepfake, SLS), scoring, metrics, training.

    import antispoof
    detector = antispoof.load_detector("aasist")   # see antispoof.api
    print(detector.score("clip.wav").verdict)

Sub-packages, lowest layer first: `networks` (architectures and their configs), `audio` (decoding, dataset
layouts, augmentation), `checkpoints` (safe file reading, published formats, the registry), `evaluation`
(metrics, calibration), `scoring` (the one path from audio to scores), `reports` (plots, the analysis
report), `training` (fine-tuning); `api` (the Python API) on top. The scripts at the top of the repository
are thin command lines over them.
"""

__version__ = "0.4.0"
__all__ = ["Detector", "Result", "load_detector", "__version__"]


def __getattr__(name: str):
    # The API is imported on first use: `import antispoof` (e.g. for __version__) does not load torch.
    if name in ("Detector", "Result", "load_detector"):
        from antispoof import api

        return getattr(api, name)
    raise AttributeError(f"module 'antispoof' has no attribute {name!r}")
