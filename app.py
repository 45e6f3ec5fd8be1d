"""Gradio demo: upload or record a clip, and see whether (and where in it) the detector hears a fake.

    python app.py                       # the strongest detector in pretrained/ is selected first
    python app.py --checkpoint runs/exp/best.pt --port 7860
    python app.py --checkpoint LA_model.pth --share  # also a public gradio.live link

The page answers in plain words first: "likely fake", "inconclusive" or "likely real" from a calibrated
detector (with the chance that the clip is fake at even prior odds, --fake-prior, and where its calibration
came from), or, from an uncalibrated one, no answer but the way its score leans and the command that
calibrates it. Then where the fake-sounding parts are, warnings about the recording (long, silent,
telephone band), the detector's model card (In-the-Wild error rate in words), and a collapsed "details"
block with the policy, score definition, rules and numbers. Scoring is score.py's (the same Scorer): by
default every second of the clip (windows, the most fake-sounding one deciding); "first 4.04 s" scores as
evaluate_custom.py does, "windows" with the mean logit. No server path appears on the page or in the API.

HTTP: Gradio's automatic API; the "check" endpoint takes a file and the same choices and returns the page's
outputs, the last of which is the answer as JSON (see README, "HTTP use"). Inputs are limited in size,
duration and type (--max-mb, --max-seconds, data.AUDIO_EXTENSIONS); a refused file is explained on the page.
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
from antispoof.audio.conditions import far_from_training  # noqa: E402
from antispoof.audio.datasets import AUDIO_EXTENSIONS, Item  # noqa: E402
from antispoof.audio.decode import SAMPLE_RATE, AudioError, is_silent, load_audio  # noqa: E402
from antispoof.checkpoints.cards import best_local_detector, card_lines, itw_sentence, model_card  # noqa: E402
from antispoof.checkpoints.files import parse_model_config  # noqa: E402
from antispoof.checkpoints.registry import REGISTRY, resolve_checkpoint  # noqa: E402
from antispoof.evaluation.metrics import ASVSPOOF5, OperatingPoint  # noqa: E402
from antispoof.scoring.decision import (  # noqa: E402
    SINGLE_RECORDING_PRIOR,
    Bands,
    Decision,
    add_answers,
    is_scored,
)
from antispoof.scoring.recording import calibrate_command, plain_sentence, rule_lines, spans_text  # noqa: E402
from antispoof.scoring.setup import Scorer  # noqa: E402
from antispoof.utils import pick_device  # noqa: E402

DEFAULT_MAX_MB = 50.0
DEFAULT_MAX_SECONDS = 60.0  # ~30 windows: about half a minute for AASIST on a laptop CPU
# What of a clip is scored: every second of it (score.py's default), the reference's first 4.04 s (as
# evaluate_custom.py), or windows with the mean logit.
MODES = {"whole clip": {"whole_clip": True}, "first 4.04 s": {}, "windows (mean)": {"window": True}}


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
        fake_prior: float = SINGLE_RECORDING_PRIOR,
        backend: str = "auto",
    ):
        self.choices = choices
        self.configs = configs or {}  # label -> --model-config overrides (the --checkpoint files given)
        self.device = pick_device(device)
        self.op = op  # the operating point of the binary verdict (--prior, --cost)
        self.fake_prior = fake_prior  # the prior of the three answers (--fake-prior; even odds)
        self.backend = backend  # --backend: what runs the model (auto: onnxruntime for AASIST on a CPU)
        self._scorers: dict[tuple[str, str], Scorer] = {}
        self._lock = threading.Lock()  # Gradio runs events in threads; one forward pass at a time on a CPU

    def scorer(self, label: str, mode: str = "whole clip") -> Scorer:
        """The checkpoint's scorer under one of MODES, with its verdict rule. Both are kept per checkpoint and
        mode: loading is slow, and checking a calibration hashes every weight."""
        if label not in self.choices:
            raise ValueError(f"Unknown checkpoint {label!r}: pick one of {', '.join(self.choices)}.")
        if mode not in MODES:
            raise ValueError(f"Unknown scoring choice {mode!r}: pick one of {', '.join(MODES)}.")
        if (label, "first 4.04 s") not in self._scorers:
            try:
                scorer = Scorer.load(
                    self.choices[label],
                    device=self.device,
                    model_config=self.configs.get(label),
                    workers=0,
                    backend=self.backend,
                )
            except Exception as err:  # noqa: BLE001 - any load failure becomes a message on the page
                raise ValueError(f"Could not load checkpoint {label!r}: {err}") from err
            if scorer.untrained:
                raise ValueError(f"{label!r} has no trained back end: fine-tune it first (fine_tune_for.py).")
            scorer.prepare()  # the onnxruntime export for AASIST on a CPU, made now
            self._scorers[label, "first 4.04 s"] = scorer
        if (label, mode) not in self._scorers:
            flags = MODES[mode]
            base = self._scorers[label, "first 4.04 s"]
            self._scorers[label, mode] = base.with_window(
                flags.get("window", False), flags.get("whole_clip", False)
            )
        scorer = self._scorers[label, mode]
        if scorer.decision is None:  # a calibration for other weights or another policy: ValueError, here
            scorer.decide(op=self.op)
        return scorer

    def score(
        self, path: str, label: str, mode: str = "whole clip", decoded: tuple | None = None
    ) -> tuple[dict, Decision, str, Bands | None]:
        """(row with its answer, verdict rule, score definition, bands or None) of one file under `mode`.
        `decoded`: the file's `load_audio(..., return_info=True)` if the caller has it (not decoded twice)."""
        with self._lock:
            scorer = self.scorer(label, mode)
            rows = scorer.score(
                [Item(path, None)], decoded={path: decoded} if decoded is not None else None, progress=False
            )
        bands = add_answers(rows, scorer.decision, self.fake_prior)
        return rows[0], scorer.decision, scorer.definition, bands


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
    """Per-window scores over time: each window over its span, coloured by the way it leans; the threshold."""
    fig = Figure(figsize=(9, 2.8), layout="constrained")
    ax = fig.subplots()
    scores = [w["score"] for w in row["windows"]]
    for w in row["windows"]:  # each window's span comes with it from the scorer (start, end in seconds)
        color = "tab:red" if w.get("leans_fake") else "tab:green"
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
        f"Score of each scored span ({row['policy']}; higher = more real): red = leans fake",
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


HEADLINES = {
    "likely fake": "## Likely fake",
    "likely real": "## Likely real",
    "inconclusive": "## Inconclusive",
    "uncalibrated": "## No answer: this detector is not calibrated",
}


def verdict_markdown(
    row: dict, decision: Decision, bands: Bands | None, label: str, card: dict, extra: dict
) -> tuple[str, str]:
    """(plain words: the answer, one sentence, where, warnings, the detector's real-world error rate;
    details, shown collapsed: the policy, rules, numbers and model card). `extra`: duration_s, definition,
    warnings."""
    lines = [HEADLINES[row["answer"]], f"**{plain_sentence(row, bands)}**"]
    if row["answer"] == "uncalibrated":
        lines.append(
            f"To get an answer, calibrate it on labelled recordings like yours: `{calibrate_command(label)}`"
        )
    if extra["warnings"]:
        lines.append("Be careful: " + " ".join(extra["warnings"]))
    lines.append(
        f"About the detector `{label}`: {itw_sentence(card) if card['in_registry'] else card_lines(card)[0]}"
    )
    p_cal = row["p_fake_calibrated"]
    numbers = [
        f"Detector `{label}` · {extra['duration_s']:.1f} s, {row['n_windows']} window(s)"
        + (f" · fake-leaning: {spans_text(row['fake_spans'])}" if row["fake_spans"] else ""),
        f"Input policy `{row['policy']}`: {extra['definition']}",
        *rule_lines(decision, bands, label),
        f"score = {row['score']:.3f} (higher = more real) · p_fake {format_probability(row['p_fake'])} "
        "(the model's softmax: not calibrated, not a probability you can trust)"
        + (f" · llr = {row['llr']:.3f} (natural log; > 0 favours real)" if row.get("llr") is not None else "")
        + (f" · P(fake) {format_probability(p_cal)}" if p_cal is not None else ""),
        f"Binary verdict (as evaluation counts it): {row['verdict']}, {decision.describe()}",
        *[f"Model card: {line}" for line in card_lines(card)],
    ]
    return "\n\n".join(lines), "\n".join(f"- {line}" for line in numbers)


def api_result(row: dict, bands: Bands | None, label: str, name: str, extra: dict) -> dict:
    """What the API returns as JSON: the answer, the probability and the window scores (no server path)."""
    keys = (
        "answer",
        "leans",
        "p_fake_calibrated",
        "fake_spans",
        "score",
        "p_fake",
        "llr",
        "policy",
    )
    windows = [{k: w[k] for k in ("start", "end", "score", "p_fake", "leans_fake")} for w in row["windows"]]
    return {
        "file": name,
        "detector": label,
        "summary": plain_sentence(row, bands),
        **{k: row.get(k) for k in keys},
        "score_definition": extra["definition"],
        "duration_s": extra["duration_s"],
        "warnings": extra["warnings"],
        "windows": windows,
        # The binary verdict only where it means something: an uncalibrated detector answers nothing.
        "verdict": row["verdict"] if bands is not None else None,
    }


def check_upload(
    detector: Detector,
    path: str | None,
    label: str,
    max_mb: float,
    max_seconds: float,
    mode: str = "whole clip",
) -> tuple:
    """What the page shows for one upload: (status, answer, details, timeline, waveform figure, JSON)."""
    empty = ("", "", None, None, None)
    try:
        check_limits(path, max_mb)
        # Decoded once, here: for the duration limit, the plots and scoring (evaluation's loader).
        x, info = load_audio(path, max_duration=max_seconds, return_info=True)
        if info.capped:
            raise ValueError(
                f"Too long: {info.duration_s:.0f} s (limit {max_seconds:g} s). Cut it, or use score.py."
            )
        row, decision, definition, bands = detector.score(path, label, mode, decoded=(x, info))
        if not is_scored(row):
            raise ValueError(f"Could not score this file: {row['status']}")
    except (ValueError, AudioError) as err:
        message = str(err)
        if isinstance(err, AudioError):
            message = f"Could not read this file: {message}"
        return (f"**Error:** {public_message(message, detector, path)}", *empty)
    card = model_card(detector.choices[label])
    extra = {"duration_s": info.loaded_s, "definition": definition, "warnings": far_from_training(x)}
    status = f"Checked {Path(path).name}." + (f" Note: {row['note']}." if row["note"] else "")
    text, details = verdict_markdown(row, decision, bands, label, card, extra)
    result = api_result(row, bands, label, Path(path).name, extra)
    result["rule"] = [public_message(line, detector) for line in rule_lines(decision, bands, label)]
    return (
        public_message(status, detector, path),
        public_message(text, detector, path),
        public_message(details, detector, path),
        timeline_figure(row, decision, info.loaded_s),
        waveform_figure(x),
        result,
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
    default: str | None = None,
    max_mb: float = DEFAULT_MAX_MB,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    mode: str = "whole clip",
    why: str = "",
):
    """The Gradio page; `default`: the checkpoint selected at first, `why` the reason; `mode`: the scoring
    choice selected at first (MODES)."""
    labels = list(detector.choices)
    default = default if default in labels else (labels[0] if labels else None)

    def check(path: str | None, label: str, mode: str):
        return check_upload(detector, path, label, max_mb, max_seconds, mode)

    with gr.Blocks(title="Speech deepfake check") as demo:
        gr.Markdown(
            "# Is this recording real or fake?\n"
            f"Upload or record speech (at most {max_seconds:g} s and {max_mb:g} MB; "
            f"{' '.join(AUDIO_EXTENSIONS)}). Every second of it is checked, in ~4 s pieces. "
            f"Before listening, the answer assumes a fake is as likely as a real recording "
            f"(P(fake) = {detector.fake_prior:g}"
            + (", even odds" if detector.fake_prior == 0.5 else "")
            + "). A detector can be wrong: read what it says about itself below the answer.\n\n"
            + (
                f"Detector at start: **{default}**, {public_message(why, detector)}; the Detector list "
                "picks another, and each answer names the detector that gave it."
                if default and why
                else ""
            ),
            elem_id="intro",
        )
        with gr.Row():
            audio = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Recording", elem_id="audio-input"
            )
            with gr.Column():
                checkpoint = gr.Dropdown(labels, value=default, label="Detector", elem_id="checkpoint")
                policy = gr.Radio(
                    list(MODES),
                    value=mode,
                    label="What is scored (the evaluation scripts use the first 4.04 s)",
                    elem_id="policy",
                )
                button = gr.Button("Check", variant="primary", elem_id="check-button")
                status = gr.Markdown(
                    "Upload or record a clip." if labels else "**Error:** no checkpoint found; see README.",
                    elem_id="status",
                )
        verdict = gr.Markdown(elem_id="verdict")
        with gr.Accordion("Details: how this answer was made", open=False, elem_id="details-block"):
            details = gr.Markdown(elem_id="details")
        timeline = gr.Plot(label="Where the model hears a fake", elem_id="timeline")
        waveform = gr.Plot(label="Waveform and spectrogram", elem_id="waveform")
        result = gr.JSON(label="The answer as data (also what the API returns)", elem_id="result")

        outputs = [status, verdict, details, timeline, waveform, result]
        inputs = [audio, checkpoint, policy]
        button.click(check, inputs, outputs, api_name="check")
        audio.upload(check, inputs, outputs, api_visibility="private")
        audio.stop_recording(check, inputs, outputs, api_visibility="private")
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="checkpoint path or registry name to offer (repeatable; the first is selected); pretrained/ is "
        "always searched too, and without --checkpoint its strongest detector is selected",
    )
    cli.add_model_config(parser, help=" (applies to the --checkpoint files given)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for a LAN)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    cli.add_device(parser)
    cli.add_backend(parser)
    cli.add_policy(parser, hop=False, single_recording=True)  # the page's choice starts there
    cli.add_fake_prior(parser)
    cli.add_operating_point(parser)
    parser.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB, help="largest upload accepted")
    parser.add_argument(
        "--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="longest clip accepted"
    )
    args = parser.parse_args(argv)
    return args


def main(args: argparse.Namespace) -> None:
    choices = available_checkpoints(args.checkpoint)
    if not choices:
        raise SystemExit(
            "No checkpoint found in pretrained/ and none given. Run `python download.py aasist` "
            "or pass --checkpoint PATH."
        )
    # The first --checkpoint given is selected at first; otherwise the strongest detector present.
    if args.checkpoint:
        default, why = next(iter(choices)), "given with --checkpoint"
    else:
        default, why = best_local_detector()
    try:
        model_config = parse_model_config(args.model_config)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    given = {Path(spec).name if Path(spec).exists() else spec for spec in args.checkpoint}
    configs = {label: model_config for label in given if model_config}
    detector = Detector(
        choices, args.device, configs, cli.operating_point(args), args.fake_prior, backend=args.backend
    )
    mode = "windows (mean)" if args.window else "whole clip" if args.whole_clip else "first 4.04 s"
    demo = build_app(detector, default, args.max_mb, args.max_seconds, mode, why)
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
