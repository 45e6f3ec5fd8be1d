"""Gradio demo: upload or record a clip, and see whether (and where in it) the detector hears a fake.

    python app.py                       # offers the checkpoints in pretrained/ (AASIST first: CPU is enough)
    python app.py --checkpoint runs/exp/best.pth --port 7860
    python app.py --checkpoint LA_model.pth --share  # also a public gradio.live link

The page shows the verdict, p_fake, the scores over time and the waveform with its spectrogram. Scoring is
score.py's: the same loader, input policy, verdict rule and checkpoint calibration (see score.py for the score
direction and threshold). By default a clip is scored under the model's input policy (SSL-AASIST and AASIST:
the first 4.04 s, as the references); the "windows" box (default --window) scores the whole clip as 4.04 s
windows with 50 % overlap (mean logit) and draws each window on the timeline. The page states the policy.
Inputs are limited in size, duration and type (--max-mb, --max-seconds, data.AUDIO_EXTENSIONS); a refused or
unreadable file is explained on the page.
"""

import argparse
import os
import re
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry calls; set before importing gradio

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import mlab  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402  (not pyplot: no global state shared by Gradio's threads)

import antispoof.cli as cli  # noqa: E402
import antispoof.evaluation.calibration as calibration  # noqa: E402
from antispoof.audio.datasets import AUDIO_EXTENSIONS, Item  # noqa: E402
from antispoof.audio.decode import SAMPLE_RATE, AudioError, is_silent, load_audio  # noqa: E402
from antispoof.checkpoints.files import parse_model_config  # noqa: E402
from antispoof.checkpoints.registry import REGISTRY, resolve_checkpoint  # noqa: E402
from antispoof.evaluation.metrics import ASVSPOOF5, OperatingPoint  # noqa: E402
from antispoof.scoring.decision import Decision, is_scored  # noqa: E402
from antispoof.scoring.setup import Scorer  # noqa: E402
from antispoof.utils import pick_device  # noqa: E402

DEFAULT_MAX_MB = 50.0
DEFAULT_MAX_SECONDS = 60.0  # ~30 windows: about half a minute for AASIST on a laptop CPU
PREFERRED_DEFAULT = "aasist"  # registry name of clovaai AASIST: small enough for a CPU


def available_checkpoints(extra: list[str]) -> dict[str, str]:
    """Checkpoint choices: label -> spec for `load_model`. `extra` (paths or names) first, then every registry
    entry whose file is already in pretrained/ (nothing is downloaded here)."""
    choices: dict[str, str] = {}
    for spec in extra:
        choices[Path(spec).name if Path(spec).exists() else spec] = spec
    for name, entry in REGISTRY.items():
        if not entry["detector"]:  # a pretraining checkpoint (front end only): its back end is untrained
            continue
        try:
            path = resolve_checkpoint(name, download=False)
        except (FileNotFoundError, RuntimeError, ValueError):
            continue
        if Path(path).exists() and name not in choices:
            choices[name] = name
    return choices


class Detector:
    """Loads checkpoints on first use and keeps them; scores one file at a time."""

    def __init__(
        self,
        choices: dict[str, str],
        device: str = "auto",
        configs: dict[str, dict] | None = None,
        op: OperatingPoint = ASVSPOOF5,
    ):
        self.choices = choices
        self.configs = configs or {}  # label -> --model-config overrides (the --checkpoint files given)
        self.device = pick_device(device)
        self.op = op  # the operating point of calibrated verdicts (--prior, --cost)
        self._scorers: dict[tuple[str, bool], Scorer] = {}
        self._lock = threading.Lock()  # Gradio runs events in threads; one forward pass at a time on a CPU

    def scorer(self, label: str, window: bool = False) -> Scorer:
        """The checkpoint's scorer under its own policy or windows, with its verdict rule. Both are kept per
        checkpoint and policy: loading is slow, and checking a calibration hashes every weight."""
        if label not in self.choices:
            raise ValueError(f"Unknown checkpoint {label!r}: pick one of {', '.join(self.choices)}.")
        if (label, False) not in self._scorers:
            try:
                scorer = Scorer.load(
                    self.choices[label], device=self.device, model_config=self.configs.get(label), workers=0
                )
            except Exception as err:  # noqa: BLE001 - any load failure becomes a message on the page
                raise ValueError(f"Could not load checkpoint {label!r}: {err}") from err
            if scorer.untrained:
                raise ValueError(f"{label!r} has no trained back end: fine-tune it first (fine_tune_for.py).")
            scorer.prepare()  # the onnxruntime export for AASIST on a CPU, made now
            self._scorers[label, False] = scorer
        if (label, window) not in self._scorers:
            self._scorers[label, window] = self._scorers[label, False].with_window(window)
        scorer = self._scorers[label, window]
        if scorer.decision is None:  # a calibration for other weights or another policy: ValueError, here
            scorer.decide(op=self.op)
        return scorer

    def score(
        self, path: str, label: str, window: bool = False, decoded: tuple | None = None
    ) -> tuple[dict, Decision, str]:
        """(row, verdict rule, score definition) of one file, under the model's policy or windows.
        `decoded`: the file's `load_audio(..., return_info=True)` if the caller has it (not decoded twice)."""
        with self._lock:
            scorer = self.scorer(label, window)
            rows = scorer.score(
                [Item(path, None)], decoded={path: decoded} if decoded is not None else None, progress=False
            )
        return rows[0], scorer.decision, scorer.definition


def check_limits(path: str | None, max_mb: float) -> str:
    """Refuse a missing, oversized or non-audio upload before decoding it; returns the path."""
    if not path:
        raise ValueError("No audio yet: upload a file or record from the microphone first.")
    suffix = Path(path).suffix.lower()
    if suffix not in AUDIO_EXTENSIONS:
        raise ValueError(
            f"Unsupported file type {suffix or '(no extension)'!r}: use one of {' '.join(AUDIO_EXTENSIONS)}."
        )
    size_mb = Path(path).stat().st_size / 2**20
    if size_mb > max_mb:
        raise ValueError(f"File too large: {size_mb:.1f} MB (limit {max_mb:g} MB). Cut it, or use score.py.")
    return path


def timeline_figure(row: dict, decision: Decision, duration_s: float) -> Figure:
    """Per-window scores over time: each window over its span, coloured by its verdict; the threshold."""
    fig = Figure(figsize=(9, 2.8), layout="constrained")
    ax = fig.subplots()
    scores = [w["score"] for w in row["windows"]]
    for w in row["windows"]:  # each window's span comes with it from the scorer (start, end in seconds)
        color = "tab:green" if w["verdict"] == "real" else "tab:red"
        ax.hlines(w["score"], w["start"], w["end"], colors=color, linewidth=5)
    if len(scores) > 1:
        centers = [(w["start"] + w["end"]) / 2 for w in row["windows"]]
        ax.plot(centers, scores, color="0.4", linewidth=0.8)
    levels = scores
    threshold = decision.score_threshold()
    if threshold is not None:
        name = "threshold" if decision.threshold is not None else "Bayes threshold (calibrated llr)"
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=name)
        ax.legend(loc="best", fontsize=8)
        levels = scores + [threshold]
    ax.set_ylim(min(levels) - 1, max(levels) + 1)
    ax.set_xlim(0, duration_s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    ax.set_title(
        f"Score of each scored span ({row['policy']}; higher = more real): green = real, red = fake",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    return fig


def waveform_figure(x: np.ndarray) -> Figure:
    """Waveform (min/max envelope) above its spectrogram in dB, on the same time axis."""
    duration_s = len(x) / SAMPLE_RATE
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax_wave, ax_spec = fig.subplots(2, 1, sharex=True)
    # One min/max pair per block keeps a long clip cheap to draw and still shows every peak.
    block = max(1, len(x) // 4000)
    n = len(x) // block * block
    blocks = x[:n].reshape(-1, block)
    t = (np.arange(len(blocks)) + 0.5) * block / SAMPLE_RATE
    ax_wave.fill_between(t, blocks.min(axis=1), blocks.max(axis=1), color="tab:blue", linewidth=0.5)
    ax_wave.set_ylabel("amplitude")
    power, freqs, times = mlab.specgram(x, NFFT=512, Fs=SAMPLE_RATE, noverlap=384)
    db = 10 * np.log10(np.maximum(power, 1e-12))  # digital silence -> -120 dB, not -inf (drawn, not blank)
    ax_spec.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, duration_s, 0, freqs[-1]),
        vmin=db.max() - 90,
        vmax=db.max(),
    )
    if is_silent(x):
        ax_spec.text(
            0.5, 0.5, "digital silence", ha="center", va="center", transform=ax_spec.transAxes, color="w"
        )
    ax_spec.set_ylabel("frequency (Hz)")
    ax_spec.set_xlabel("time (s)")
    ax_spec.set_xlim(0, duration_s)
    return fig


def format_probability(p: float) -> str:
    """'= 0.123', or '< 0.001' / '> 0.999' where three decimals would round to a certainty."""
    if p < 0.001:
        return "< 0.001"
    if p > 0.999:
        return "> 0.999"
    return f"= {p:.3f}"


def verdict_markdown(row: dict, decision: Decision, label: str, duration_s: float, definition: str) -> str:
    """The verdict, p_fake, score, the policy and rule that decided, and where the most fake window is."""
    verdict = row["verdict"].upper()
    n = len(row["windows"])
    lines = [
        f"## Verdict: {verdict}",
        f"**p_fake {format_probability(row['p_fake'])}** · score = {row['score']:.3f} (higher = more real)",
        f"Checkpoint `{label}` · rule: {decision.describe()} · {duration_s:.1f} s, {n} window(s)",
        f"Input policy `{row['policy']}`: {definition}",
    ]
    if row.get("llr") is not None:
        p_fake = float(calibration.p_fake([row["llr"]], decision.op.p_spoof)[0])
        lines.insert(
            2,
            f"Calibrated: llr = {row['llr']:.3f} (natural log; > 0 favours real) · P(fake) "
            f"{format_probability(p_fake)} at a prior of {decision.op.p_spoof:g}",
        )
    fakes = [w for w in row["windows"] if w["verdict"] == "fake"]
    if n > 1 and fakes:
        worst = min(row["windows"], key=lambda w: w["score"])
        lines.append(
            f"{len(fakes)} of {n} windows sound fake; the most fake starts at {worst['start']:.1f} s."
        )
    return "\n\n".join(lines)


def check_upload(
    detector: Detector, path: str | None, label: str, max_mb: float, max_seconds: float, windows: bool = False
) -> tuple:
    """What the page shows for one upload: (status, verdict markdown, timeline, waveform figure)."""
    empty = ("", None, None)
    try:
        check_limits(path, max_mb)
        # Decoded once, here: for the duration limit, the plots and scoring (evaluation's loader).
        x, info = load_audio(path, max_duration=max_seconds, return_info=True)
        if info.capped:
            raise ValueError(
                f"Too long: {info.duration_s:.0f} s (limit {max_seconds:g} s). Cut it, or use score.py."
            )
        row, decision, definition = detector.score(path, label, windows, decoded=(x, info))
        if not is_scored(row):
            raise ValueError(f"Could not score this file: {row['status']}")
    except (ValueError, AudioError) as err:
        message = str(err)
        if isinstance(err, AudioError):
            message = f"Could not read this file: {message}"
        return (f"**Error:** {public_message(message, detector, path)}", *empty)
    status = f"Checked {Path(path).name}." + (f" Note: {row['note']}." if row["note"] else "")
    return (
        status,
        verdict_markdown(row, decision, label, info.loaded_s, definition),
        timeline_figure(row, decision, info.loaded_s),
        waveform_figure(x),
    )


# An absolute path: "/" not preceded by a word, ".", ":", "/" (not a fraction "64600/16000", not a URL).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^/\s'\"]+/)*[^/\s'\"]*")


def public_message(text: str, detector: Detector, upload: str | None = None) -> str:
    """`text` without the server's file system layout (a page may be public, --share): the checkpoints'
    paths become their labels, and any other absolute path its last component."""
    for label, spec in detector.choices.items():
        if Path(spec).exists():
            text = text.replace(str(Path(spec).resolve()), label).replace(spec, label)
    if upload:
        text = text.replace(upload, Path(upload).name)
    return _ABSOLUTE_PATH.sub(lambda m: Path(m.group()).name or m.group(), text)


def build_app(
    detector: Detector,
    default: str | None = PREFERRED_DEFAULT,
    max_mb: float = DEFAULT_MAX_MB,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    window: bool = False,
):
    """The Gradio page; `default`: the checkpoint selected at first; `window`: the windows box's state."""
    labels = list(detector.choices)
    default = default if default in labels else (labels[0] if labels else None)

    def check(path: str | None, label: str, windows: bool):
        return check_upload(detector, path, label, max_mb, max_seconds, windows)

    with gr.Blocks(title="Speech deepfake check") as demo:
        gr.Markdown(
            "# Is this recording real or fake?\n"
            f"Upload or record speech (at most {max_seconds:g} s and {max_mb:g} MB; "
            f"{' '.join(AUDIO_EXTENSIONS)}). "
            "The detector scores the clip as its reference does (SSL-AASIST, AASIST: the first ~4 s); tick "
            "*windows* to score the whole clip in ~4 s windows and see where it hears a fake."
        )
        with gr.Row():
            audio = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Recording", elem_id="audio-input"
            )
            with gr.Column():
                checkpoint = gr.Dropdown(labels, value=default, label="Checkpoint", elem_id="checkpoint")
                windows = gr.Checkbox(
                    window,
                    label="windows: score the whole clip in ~4 s windows (mean logit)",
                    elem_id="window",
                )
                button = gr.Button("Check", variant="primary", elem_id="check-button")
                status = gr.Markdown(
                    "Upload or record a clip." if labels else "**Error:** no checkpoint found; see README.",
                    elem_id="status",
                )
        verdict = gr.Markdown(elem_id="verdict")
        timeline = gr.Plot(label="Where the model hears a fake", elem_id="timeline")
        waveform = gr.Plot(label="Waveform and spectrogram", elem_id="waveform")

        outputs = [status, verdict, timeline, waveform]
        inputs = [audio, checkpoint, windows]
        button.click(check, inputs, outputs)
        audio.upload(check, inputs, outputs)
        audio.stop_recording(check, inputs, outputs)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="checkpoint path or registry name to offer (repeatable); pretrained/ is always searched too",
    )
    cli.add_model_config(parser, help=" (applies to the --checkpoint files given)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for a LAN)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    cli.add_device(parser)
    cli.add_policy(parser, hop=False)  # the page's windows box starts ticked
    calibration.add_operating_point_args(parser)
    parser.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB, help="largest upload accepted")
    parser.add_argument(
        "--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="longest clip accepted"
    )
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    choices = available_checkpoints(args.checkpoint)
    if not choices:
        raise SystemExit(
            "No checkpoint found in pretrained/ and none given. Run `python download.py aasist` "
            "or pass --checkpoint PATH."
        )
    # The first --checkpoint given is selected at first; otherwise AASIST when it is in pretrained/.
    default = next(iter(choices)) if args.checkpoint else PREFERRED_DEFAULT
    try:
        model_config = parse_model_config(args.model_config)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    given = {Path(spec).name if Path(spec).exists() else spec for spec in args.checkpoint}
    configs = {label: model_config for label in given if model_config}
    detector = Detector(choices, args.device, configs, calibration.operating_point(args))
    demo = build_app(detector, default, args.max_mb, args.max_seconds, args.window)
    demo.queue(default_concurrency_limit=1)
    _, local_url, share_url = demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=int(args.max_mb * 2**20),  # bytes (MiB, as check_limits counts)
        prevent_thread_lock=True,
        quiet=True,
    )
    print(f"Running on {local_url}", flush=True)
    if share_url:
        print(f"Public URL: {share_url}", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main(parse_args())
