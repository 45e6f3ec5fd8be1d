"""The Python API (antispoof.api): the README's "Python API" block runs as written, on the bundled sample."""

import contextlib
import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Three files per class keep the run short; the README's paths must be among them.
SAMPLE = {
    "real": ["118-121721-0000.flac", "1183-124566-0000.flac", "1363-135842-0000.flac"],
    "fake": ["espeak_01.wav", "espeak_02.wav", "espeak_03.wav"],
}


def readme_api_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python API section has one python block"
    return blocks[0]


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Exec the README block in a folder whose data/sample holds part of the bundled sample."""
    work = tmp_path_factory.mktemp("api")
    for label, names in SAMPLE.items():
        (work / "data" / "sample" / label).mkdir(parents=True)
        for name in names:
            (work / "data" / "sample" / label / name).symlink_to(ROOT / "data" / "sample" / label / name)
    namespace, out = {}, io.StringIO()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(readme_api_block(), "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace, out.getvalue(), work


def test_readme_python_api_block_runs_as_written(readme_run):
    ns, out, work = readme_run
    lines = out.splitlines()
    verdict, score, p_fake, policy = lines[0].split()[:3] + [" ".join(lines[0].split()[3:])]
    assert verdict == "real" and float(score) > 0 and float(p_fake) < 0.5 and policy == "head n=64600"
    assert "fake" in lines[2]  # the espeak waveform, given as an array at its own rate
    assert [r.verdict for r in ns["results"]] == ["fake"] * 3 and all(r.ok for r in ns["results"])
    assert ns["metrics"]["auc"] == 1.0 and ns["metrics"]["n_real"] == 3 and ns["metrics"]["n_fake"] == 3
    for name in ("scores.csv", "metrics.json", "run.json"):
        assert (work / "runs" / "api_sample" / name).is_file()
    result = ns["result"]  # after calibrate(): the verdict is the Bayes decision on the llr
    assert result.llr is not None and 0 <= result.p_fake_calibrated <= 1 and "llr >=" in result.rule
    assert result.verdict == ("real" if result.llr >= ns["detector"].decision.op.llr_threshold else "fake")


def test_api_scores_equal_score_py_and_bad_input_is_a_result(readme_run, capsys):
    import score

    ns, _, work = readme_run
    detector = ns["detector"]
    path = str(work / "data" / "sample" / "fake" / "espeak_02.wav")
    argv = [path, "--checkpoint", "aasist", "--output-format", "csv", "--reference-policy"]
    assert score.main(score.parse_args(argv)) == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert float(row["score"]) == pytest.approx(detector.score(path).score, abs=1e-6)
    bad = np.full(16000, np.nan, dtype=np.float32)
    pcm = (np.sin(np.arange(32000) / 5) * 20000).astype(np.int16)  # integer PCM is scaled like a file
    results = detector.score([bad, "no/such.wav", pcm], sample_rate=16000)
    assert results[0].status == "corrupt samples (NaN or inf in the decoded audio)"
    assert results[1].status == "file not found"
    assert results[2].ok and results[0].score is None
    with pytest.raises(ValueError, match="sample_rate"):
        detector.score(pcm)


def test_import_antispoof_does_not_load_torch():
    code = "import sys, antispoof; print(antispoof.__version__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split()[1] == "False"
