"""The PNGs: ROC, DET (EER, minDCF and actDCF points), score histogram and reliability diagram of a scores.csv
(positive class = real, higher score = more real), the fine-tuning loss curves, and the analysis report's
figures (scores per group, score vs duration, before vs after)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, MaxNLocator  # noqa: E402
from scipy.stats import norm  # noqa: E402

import antispoof.evaluation.calibration as calibration  # noqa: E402
from antispoof.evaluation.metrics import ASVSPOOF5, OperatingPoint, dcf_curve, det_curve  # noqa: E402
from antispoof.evaluation.thresholds import error_rates  # noqa: E402

PLOT_FILES = ("roc.png", "det.png", "score_hist.png", "reliability.png")


def save_all(rows: list[dict], out_dir: str | os.PathLike, metrics: dict) -> list[str]:
    """Write the plots of scores.csv `rows` into `out_dir`; returns their file names (none when a class is
    missing). Rows with an `llr` (a calibration applied) put calibrated values in the DET and reliability
    plots."""
    rows = [r for r in rows if r["status"] == "ok"]
    real = np.array([r["score"] for r in rows if r["label"] == "real"])
    fake = np.array([r["score"] for r in rows if r["label"] == "fake"])
    if len(real) == 0 or len(fake) == 0:
        return []
    out_dir = Path(out_dir)
    frr, far, _ = det_curve(real, fake)
    title = (
        f"{subject(metrics)}\nAUC {metrics['auc']:.4f}, EER {100 * metrics['eer']:.2f} % ({len(real)} real, "
        f"{len(fake)} fake)"
    )
    op = OperatingPoint(**{k: metrics["operating_point"][k] for k in ("p_spoof", "c_miss", "c_fa")})
    calibrated = all(r.get("llr") is not None for r in rows)
    if calibrated:  # the actual decisions are made on the calibrated LLR
        real_llr = np.array([r["llr"] for r in rows if r["label"] == "real"])
        fake_llr = np.array([r["llr"] for r in rows if r["label"] == "fake"])
        act = error_rates(real_llr, fake_llr, op.llr_threshold)
        act_label = "actDCF (calibrated llr)"
    else:
        act = error_rates(real, fake, op.llr_threshold)
        act_label = "actDCF (raw score read as llr)"
    plot_roc(frr, far, metrics, title, out_dir / "roc.png")
    plot_det(frr, far, metrics, title, out_dir / "det.png", op=op, act_point=act, act_label=act_label)
    plot_hist(real, fake, metrics, title, out_dir / "score_hist.png")
    labels = np.array([r["label"] == "fake" for r in rows])
    raw_p_fake = np.array([r["p_fake"] for r in rows])
    llr = np.array([r["llr"] for r in rows]) if calibrated else None
    plot_reliability(labels, raw_p_fake, llr, out_dir / "reliability.png", subject(metrics))
    return list(PLOT_FILES)


def subject(metrics: dict) -> str:
    """E.g. "AASIST.pth on sample_custom": which model scored which data, for every figure's title."""
    model = Path(str(metrics.get("checkpoint") or "?"))
    if model.name in ("best.pt", "last.pt") and model.parent.name:
        model = Path(model.parent.name) / model.name
    data = Path(str(metrics.get("data") or "?")).name or str(metrics.get("data"))
    return f"{model.as_posix() if model.parent.name else model.name} on {data}"


def plot_roc(frr: np.ndarray, far: np.ndarray, metrics: dict, title: str, path: Path) -> None:
    """True-positive rate (real accepted) against false-positive rate (fake accepted)."""
    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    ax.plot(far, 1 - frr, lw=1.5, label=f"ROC (AUC {metrics['auc']:.4f})")
    ax.plot([0, 1], [0, 1], ls=":", color="0.6", label="chance")
    ax.plot(
        [metrics["eer"]],
        [1 - metrics["eer"]],
        "o",
        color="tab:red",
        label=f"EER {100 * metrics['eer']:.2f} %",
    )
    ax.set(
        xlabel="false positive rate (fake accepted as real)",
        ylabel="true positive rate (real accepted)",
        xlim=(-0.01, 1),
        ylim=(0, 1.02),  # a perfect ROC runs along y = 1: above the frame, not hidden under it
        title=title,
    )
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right")
    save_figure(fig, path)


def plot_det(
    frr: np.ndarray,
    far: np.ndarray,
    metrics: dict,
    title: str,
    path: Path,
    *,
    op: OperatingPoint = ASVSPOOF5,
    act_point: tuple[float, float] | None = None,
    act_label: str = "actDCF",
) -> None:
    """DET curve on probit axes: miss rate (real rejected) against false alarm rate (fake accepted), with the
    EER, minDCF and actDCF operating points.

    A rate of 0 has no probit: it is drawn on the axis edge marked "0", so a system without errors (classes
    that separate perfectly) still shows its curve hugging the two zero edges, with a note, instead of an
    empty frame. The edge sits below the smallest non-zero rate these counts allow (1 / files in a class).
    """
    n_max = max(metrics["n_real"], metrics["n_fake"])
    zero = min(5e-4, 0.25 / n_max)  # where a rate of 0 is drawn
    lo, hi = norm.ppf(zero) - 0.15, norm.ppf(0.995)

    def probit(rate):
        return norm.ppf(np.clip(rate, zero, 1 - zero))

    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    ax.plot(probit(far), probit(frr), lw=1.5, color="tab:blue")
    eer = metrics["eer"]
    ax.plot([probit(eer)], [probit(eer)], "o", color="tab:red", label=f"EER {100 * eer:.2f} %")
    i = int(np.argmin(dcf_curve(frr, far, op)))
    ax.plot([probit(far[i])], [probit(frr[i])], "s", color="tab:green", mfc="none", ms=9, mew=1.5,
            label=f"minDCF {metrics['min_dcf']:.4f}")  # fmt: skip
    if act_point is not None:
        miss, fa = act_point
        act_dcf = float(dcf_curve(np.float64(miss), np.float64(fa), op))
        ax.plot(
            [probit(fa)], [probit(miss)], "^", color="tab:purple", ms=8, label=f"{act_label} {act_dcf:.4f}"
        )
    if eer == 0:
        ax.text(0.97, 0.6, "no errors at the EER point:\nthe classes separate perfectly",
                transform=ax.transAxes, ha="right", fontsize=8, color="0.3")  # fmt: skip
    ticks = np.array([t for t in (0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99) if t > 2 * zero])
    positions = np.r_[norm.ppf(zero), norm.ppf(ticks)]
    names = ["0"] + [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(positions, names)
    ax.set_yticks(positions, names)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), title=title)
    ax.set(xlabel="false alarm rate, fake accepted (%)", ylabel="miss rate, real rejected (%)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, title=f"Pspoof {op.p_spoof:g}, Cmiss {op.c_miss:g}, "
              f"Cfa {op.c_fa:g}", title_fontsize=7)  # fmt: skip
    save_figure(fig, path)


def plot_reliability(
    is_fake: np.ndarray, raw_p_fake: np.ndarray, llr: np.ndarray | None, path: Path, subject: str = ""
) -> None:
    """Reliability diagram: predicted p_fake (binned) against the observed fraction of fake files.

    The calibrated p_fake is the posterior at this data set's own share of fakes (what the observed fraction
    estimates); the raw softmax p_fake is drawn beside it. On the diagonal = the probabilities mean what they
    say. Bins: 10, fewer for few files (about 20 files a bin, at least 3), so that a point is not one or two
    files. Marker area ~ files in the bin, as the legend says.
    """
    n_bins = reliability_bins(len(is_fake))
    share = float(np.mean(is_fake))
    series = [("raw softmax p_fake", raw_p_fake, "tab:gray", "o")]
    if llr is not None and 0 < share < 1:
        series.append(
            (f"calibrated p_fake (prior {share:.2f})", calibration.p_fake(llr, share), "tab:blue", "s")
        )
    edges = np.linspace(0, 1, n_bins + 1)
    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    ax.plot([0, 1], [0, 1], ls=":", color="0.5", label="perfect calibration")
    for name, p, color, marker in series:
        which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)  # bin index
        counts = np.bincount(which, minlength=n_bins)
        used = counts > 0
        mean_p = np.bincount(which, weights=p, minlength=n_bins)[used] / counts[used]
        observed = np.bincount(which, weights=is_fake.astype(float), minlength=n_bins)[used] / counts[used]
        ax.plot(mean_p, observed, "-", color=color, lw=1)
        ax.scatter(mean_p, observed, s=20 + 200 * counts[used] / counts.max(), color=color, marker=marker,
                   alpha=0.7, label=name)  # fmt: skip
    note = "" if llr is not None else " (no calibration: fit one with calibrate.py)"
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="predicted p_fake (bin mean)")
    head = f"{subject}\n" if subject else ""
    ax.set(ylabel="observed fraction of fake files", title=f"{head}Reliability, {len(is_fake)} files{note}")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, title=f"{n_bins} bins; marker area ~ files in the bin",
              title_fontsize=7)  # fmt: skip
    save_figure(fig, path)


def plot_hist(real: np.ndarray, fake: np.ndarray, metrics: dict, title: str, path: Path) -> None:
    """Score distributions per class with the EER threshold."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    bins = np.histogram_bin_edges(
        np.concatenate([real, fake]), bins=min(50, max(10, (len(real) + len(fake)) // 10))
    )
    ax.hist(real, bins=bins, alpha=0.6, color="tab:green", label=f"real ({len(real)})")
    ax.hist(fake, bins=bins, alpha=0.6, color="tab:red", label=f"fake ({len(fake)})")
    ax.axvline(
        metrics["eer_threshold"],
        color="black",
        ls="--",
        lw=1,
        label=f"EER threshold {metrics['eer_threshold']:.3f}",
    )
    ax.set(xlabel="score = real-class logit (higher = more real)", ylabel="files", title=title)
    ax.title.set_fontsize(9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # beside the bars, never over them
    save_figure(fig, path)


def plot_loss_curves(steps: list[dict], epochs: list[dict], path: Path, subject: str = "") -> None:
    """Train loss per step and per epoch, validation loss per epoch; validation AUC and EER (in %, as the
    console prints it, on its own axis) per epoch; whole-epoch ticks.

    `steps` / `epochs` are history.json's lists (step: epoch, loss; epoch: epoch, train_loss, val_loss,
    val_auc, val_eer). `subject`: the model and data, for the title.
    """
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    if steps:
        ax_loss.plot([s["epoch"] for s in steps], [s["loss"] for s in steps],
                     color="tab:blue", alpha=0.3, lw=1, label="train loss (step)")  # fmt: skip
    ep = [e["epoch"] for e in epochs]
    ax_loss.plot(ep, [e["train_loss"] for e in epochs], "o-", color="tab:blue", label="train loss (epoch)")
    ax_loss.plot(ep, [e["val_loss"] for e in epochs], "s-", color="tab:orange", label="validation loss")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_loss.legend()
    ax_metric.plot(ep, [e["val_auc"] for e in epochs], "o-", color="tab:green", label="val AUC")
    ax_metric.set(xlabel="epoch", ylabel="AUC", ylim=(-0.02, 1.02), title="Validation (positive = real)")
    ax_eer = ax_metric.twinx()
    ax_eer.plot(ep, [100 * e["val_eer"] for e in epochs], "s-", color="tab:red", label="val EER (%)")
    ax_eer.set(ylabel="EER (%)", ylim=(-2, 102))
    handles = ax_metric.get_legend_handles_labels()[0] + ax_eer.get_legend_handles_labels()[0]
    ax_metric.legend(handles=handles, loc="center right")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    if subject:
        fig.suptitle(subject, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_score_panels(
    panels: list[tuple[str, np.ndarray, np.ndarray]], threshold: float, path: Path, subject: str = ""
) -> None:
    """Score histograms per class, one panel per (title, real scores, fake scores), with the operating
    threshold dashed: the analysis report's "all files" panel, then one per group."""
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, layout="constrained")
    every = np.concatenate([np.r_[real, fake] for _, real, fake in panels])
    bins = np.histogram_bin_edges(every, bins=min(40, max(10, len(every) // 10)))
    for ax, (title, real, fake) in zip(axes.flat, panels, strict=False):
        ax.hist(real, bins=bins, alpha=0.6, color="tab:green", label=f"real ({len(real)})")
        ax.hist(fake, bins=bins, alpha=0.6, color="tab:red", label=f"fake ({len(fake)})")
        ax.axvline(threshold, color="black", ls="--", lw=1)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    fig.supxlabel(f"score (higher = more real); dashed: threshold {threshold:.3f}", fontsize=9)
    fig.supylabel("files", fontsize=9)
    if subject:
        fig.suptitle(subject, fontsize=10)
    save_figure(fig, path)


def plot_score_vs_duration(
    durations: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    path: Path,
    input_seconds: float | None = None,
    subject: str = "",
) -> None:
    """Each file's score against its duration (labels 1 = real), log time axis, with the threshold and, when
    the model sees a fixed head of each file, that length (`input_seconds`; None: windows or whole files)."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for cls, name, color in ((1, "real", "tab:green"), (0, "fake", "tab:red")):
        m = labels == cls
        ax.scatter(durations[m], scores[m], s=12, alpha=0.6, color=color, label=f"{name} ({m.sum()})")
    ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    if input_seconds is not None:
        ax.axvline(input_seconds, color="0.6", ls=":", lw=1, label=f"{input_seconds:.2f} s model input")
    ax.set(
        xscale="log", xlabel="duration (s)", ylabel="score (higher = more real)",
        title=f"{subject}\nScore vs duration" if subject else "Score vs duration",
    )  # fmt: skip
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))  # 2, 3, 4 s rather than 2 x 10^0
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_before_after(
    before: np.ndarray,
    after: np.ndarray,
    labels: np.ndarray,
    thresholds: tuple[float, float],
    path: Path,
    subject: str = "",
) -> None:
    """Per-file score in two runs (labels 1 = real, as in the later run), with each run's threshold: files in
    the off-diagonal quadrants changed verdict."""
    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    for cls, name, color in ((1, "real", "tab:green"), (0, "fake", "tab:red")):
        m = labels == cls
        ax.scatter(before[m], after[m], s=12, alpha=0.6, color=color, label=f"{name} ({m.sum()})")
    ax.axvline(
        thresholds[0],
        color="0.4",
        ls="--",
        lw=1,
        label=f"thresholds {thresholds[0]:.3f} / {thresholds[1]:.3f}",
    )
    ax.axhline(thresholds[1], color="0.4", ls="--", lw=1)
    lo, hi = min(before.min(), after.min()), max(before.max(), after.max())
    ax.plot([lo, hi], [lo, hi], ls=":", color="0.7", lw=1, label="unchanged")
    ax.set(
        xlabel="score before (higher = more real)",
        ylabel="score after",
        title=f"{subject}\nPer-file score, before vs after" if subject else "Per-file score, before vs after",
    )
    ax.legend(fontsize=7)
    save_figure(fig, path)


def reliability_bins(n_files: int) -> int:
    """Bins of the reliability diagram: about 20 files a bin, between 3 and 10."""
    return int(np.clip(n_files // 20, 3, 10))


def save_figure(fig, path: Path) -> None:
    """Write the figure atomically (a temporary file, then os.replace): a reader never sees half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
