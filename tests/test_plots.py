"""Issue 22 item 5: what the figures say, read from the matplotlib figures themselves (the PNG writer is
replaced by one that keeps the figure; everything drawn is the real plotting code). Seen failing before:
titles without model or data, EER on the loss curves as a fraction with fractional epoch ticks, a perfect
ROC hidden under the frame, 10 reliability bins for 12 files with unexplained marker sizes, histogram
legends over the bars, no y label on report_scores.png."""

import numpy as np
import pytest

import antispoof.reports.plots as plots
from antispoof.evaluation.metrics import metrics_from_rows


@pytest.fixture
def figures(monkeypatch):
    kept = {}

    def keep(fig, path):
        kept[path.name] = fig

    monkeypatch.setattr(plots, "save_figure", keep)
    return kept


def rows(n: int, separation: float) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for label, mean in (("real", separation), ("fake", -separation)):
        for i in range(n):
            score = float(rng.normal(mean, 1))
            out.append(dict(path=f"{label}{i}.wav", label=label, score=score, status="ok", note="",
                            p_fake=float(1 / (1 + np.exp(score)))))  # fmt: skip
    return out


def test_evaluation_figures_name_model_and_data(figures, tmp_path):
    scored = rows(6, separation=5.0)  # 12 files that separate perfectly
    metrics = metrics_from_rows(scored, n_bootstrap=0)
    metrics.update(checkpoint="pretrained/AASIST.pth", data="data/sample_custom")
    plots.save_all(scored, tmp_path, metrics)
    for name in plots.PLOT_FILES:
        assert "AASIST.pth on sample_custom" in figures[name].axes[0].get_title(), name
    roc = figures["roc.png"].axes[0]
    assert roc.get_ylim()[1] > 1  # the perfect ROC at y = 1 is drawn above the frame
    reliability = figures["reliability.png"].axes[0]
    legend = reliability.get_legend()
    assert legend.get_title().get_text() == "3 bins; marker area ~ files in the bin"
    assert all(len(c.get_offsets()) <= 3 for c in reliability.collections)
    hist = figures["score_hist.png"].axes[0]
    assert hist.get_legend().get_bbox_to_anchor().x0 >= hist.get_window_extent().x1  # beside the axes


def test_loss_curves_show_eer_in_percent_on_whole_epochs(figures, tmp_path):
    epochs = [dict(epoch=e, train_loss=0.7 / e, val_loss=0.8 / e, val_auc=0.6 + 0.1 * e, val_eer=0.4 / e)
              for e in (1, 2, 3)]  # fmt: skip
    plots.plot_loss_curves([], epochs, tmp_path / "loss_curves.png", "la on for-norm")
    fig = figures["loss_curves.png"]
    assert fig.get_suptitle() == "la on for-norm"
    eer_axis = next(ax for ax in fig.axes if ax.get_ylabel() == "EER (%)")
    assert list(eer_axis.lines[0].get_ydata()) == pytest.approx([40, 20, 40 / 3])
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_report_scores_has_a_y_label(figures, tmp_path):
    real, fake = np.array([1.0, 2.0]), np.array([-1.0, 0.0])
    plots.plot_score_panels([("all files", real, fake)], 0.5, tmp_path / "report_scores.png", "m on d")
    fig = figures["report_scores.png"]
    assert fig.get_supylabel() == "files" and fig.get_suptitle() == "m on d"
