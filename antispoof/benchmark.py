"""Timing that holds on a shared machine: arms interleaved in rounds, each in its own warm process, with the
machine's load, its measured matmul peak and the model's FLOPs recorded in the same run.

    arms = {"naive": [sys.executable, "benchmark_scoring.py", ..., "--arm", "naive"], "pipeline": [...]}
    run = interleave(arms, rounds=3)   # start each arm (set-up, warm-up), then A B C, A B C, A B C
    stats = summarize([r["arms"]["naive"]["files_per_s"] for r in run["rounds"]])   # median, min, max
    print(load_note(run["rounds"]))    # loud when the machine's load moved enough to distort the ratios

The arm's side: a script started with `--arm NAME` calls `serve(setup)`; `setup()` loads the model, does the
one-off work (ONNX export, compilation, a warm-up pass) and returns (info, one_pass); every "run" line on
stdin then times one call of `one_pass()`. Each timed pass also records the CPU time other processes took
meanwhile (from /proc/stat, minus the arm's own), the most direct sign that a neighbour distorted it.
Interleaving puts every arm under the same drift of the load; the median over rounds drops a round that a
burst of load hit.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]  # the folder holding the antispoof package
PREFIX = "BENCH "  # marks the protocol's lines on an arm's stdout (libraries may print there too)
LOAD_MOVED = 0.5  # 1-minute load average: a change larger than this within a round is reported
BOOKKEEPING = ("wall_s", "own_cpu_s", "others_cores", "peak_rss_mb")  # what `serve` adds to each result
PEAK_DTYPES = ("float32", "bfloat16")
OTHERS_BUSY = 0.25  # cores: other processes using more than this during a timed pass is reported


def serve(setup: Callable[[], tuple[dict, Callable[[], dict]]]) -> None:
    """The arm's side of the protocol: set up once, then time one pass per "run" line until EOF."""
    info, one_pass = setup()
    _reply({"ready": info})
    for line in sys.stdin:
        if line.strip() != "run":
            break
        busy0, own0, start = cpu_busy_s(), own_cpu_s(), time.perf_counter()
        result = one_pass()
        wall = time.perf_counter() - start
        own = own_cpu_s() - own0
        others = max(0.0, cpu_busy_s() - busy0 - own) / wall
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()  # hand the cached blocks back: the other arms share the device
        _reply({**result, "wall_s": wall, "own_cpu_s": own, "others_cores": others,
                "peak_rss_mb": maxrss_mb()})  # fmt: skip


class Arm:
    """One arm's warm child process (the parent's side of `serve`)."""

    def __init__(self, name: str, cmd: list[str], log: Path):
        self.name, self.log = name, log
        # The arm imports the same antispoof package as this process (`python -m antispoof.benchmark` too).
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX) :])
        self.proc.wait()
        tail = self.log.read_text()[-3000:]
        raise RuntimeError(f"the {self.name} arm exited (status {self.proc.returncode}):\n{tail}")

    def ready(self) -> dict:
        return self._read()["ready"]

    def run(self) -> dict:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> None:
        """Close its stdin: the arm leaves its loop and exits (`wait` for it)."""
        if self.proc.poll() is None:
            self.proc.stdin.close()

    def wait(self) -> None:
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def interleave(arms: dict[str, list[str]], rounds: int, log_dir: Path, progress: bool = True) -> dict:
    """Start every arm (one after the other, so set-ups do not compete), then run them in turn, `rounds`
    times: A B C, A B C, ... Returns {"setup": {arm: info}, "rounds": [{"load_before", "load_after",
    "arms": {arm: result}}]}; a failing arm raises RuntimeError with the tail of its stderr."""
    started: dict[str, Arm] = {}
    out: dict = {"setup": {}, "rounds": []}
    try:
        for name, cmd in arms.items():
            _say(progress, f"{name}: set-up and warm-up ...")
            started[name] = Arm(name, cmd, log_dir / f"{name}.log")
            out["setup"][name] = started[name].ready()
        for k in range(rounds):
            load_before = os.getloadavg()[0]
            results = {}
            for name, arm in started.items():
                _say(progress, f"round {k + 1}/{rounds}: {name} ...")
                results[name] = arm.run()
            out["rounds"].append(
                {"load_before": load_before, "load_after": os.getloadavg()[0], "arms": results}
            )
    finally:
        for arm in started.values():  # all told first: they exit side by side
            arm.stop()
        for arm in started.values():
            arm.wait()
    return out


def run_once(name: str, cmd: list[str], log_dir: Path) -> dict:
    """Start an arm, run it once (a profile, a drift check: not timed against the others), stop it; returns
    what it returned."""
    arm = Arm(name, cmd, log_dir / f"{name}.log")
    try:
        arm.ready()
        return {k: v for k, v in arm.run().items() if k not in BOOKKEEPING}
    finally:
        arm.stop()
        arm.wait()


def summarize(values: list[float]) -> dict:
    """Median with its range over the rounds."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def load_note(rounds: list[dict]) -> str | None:
    """A loud note when the load moved enough to distort the ratios (thresholds LOAD_MOVED, OTHERS_BUSY),
    else None."""
    moved = [
        f"round {k + 1}: load {r['load_before']:.2f} -> {r['load_after']:.2f}"
        for k, r in enumerate(rounds)
        if abs(r["load_after"] - r["load_before"]) > LOAD_MOVED
    ]
    busy = [a["others_cores"] for r in rounds for a in r["arms"].values()]
    crowded = [b for b in busy if b > OTHERS_BUSY]
    if not moved and not crowded:
        return None
    lines = ["!" * 100, "NOTE: the machine was not quiet; the ratios may measure the load, not the code."]
    if moved:
        lines.append(
            f"  the 1-minute load average moved by more than {LOAD_MOVED} within a round: " + "; ".join(moved)
        )
    if crowded:
        lines.append(
            f"  other processes took more than {OTHERS_BUSY} cores in {len(crowded)} of {len(busy)} timed "
            f"passes (up to {max(crowded):.2f} cores)"
        )
    lines.append("!" * 100)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# What the machine and the model can give at best
# ----------------------------------------------------------------------------------------------------


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 0.5, device: str = "cpu") -> float:
    """GFLOP/s of the fastest of repeated (n x n) @ (n x n) matmuls for `seconds`: the machine's practical
    peak for dense math in `dtype` with torch's threads (n = 2048: smaller ones miss the bf16 peak here)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up: thread pool, kernel selection
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def peak_arm(seconds: float = 0.5, device: str = "cpu") -> tuple[dict, Callable[[], dict]]:
    """An arm (for `serve`) measuring the fp32 and bf16 matmul peaks, interleaved with the others (on CUDA,
    fp32 as the GPU benchmark runs it: TF32 tensor cores allowed)."""
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True

    def one_pass() -> dict:
        return {dt: matmul_gflops(getattr(torch, dt), seconds=seconds, device=device) for dt in PEAK_DTYPES}

    return {"torch_threads": torch.get_num_threads()}, one_pass


def naive_scores(model: nn.Module, paths: list[str], device: torch.device) -> list[float]:
    """The original scripts' loop, the baseline of every benchmark: `librosa.load` of one file, the
    reference's pad/crop, batch 1, fp32 PyTorch, one file after the other."""
    import librosa

    from antispoof.audio.decode import SAMPLE_RATE, pad_or_crop
    from antispoof.scoring.core import logits_to_scores

    kind = getattr(model, "score_kind", "logit_real")
    scores = []
    with torch.inference_mode():
        for path in paths:
            x, _ = librosa.load(path, sr=SAMPLE_RATE)
            logits = model(torch.from_numpy(pad_or_crop(x))[None].to(device))
            scores.append(logits_to_scores(logits, kind)[0].item())
    return scores


def flops_per_clip(model: nn.Module, x: torch.Tensor, backward: bool = False) -> float:
    """FLOPs of one forward pass on `x` (one clip, (1, n_samples)), and of its backward pass too with
    `backward` (a training step), counted by torch's FLOP counter: matmuls, convolutions and attention;
    element-wise operations, normalisation and pooling are not counted."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa(query_shape, key_shape, value_shape, *_, **__) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    # The CPU's fused attention kernel is missing from the counter's table: count it as the other SDPAs.
    extra = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa}
    counter = FlopCounterMode(display=False, custom_mapping=extra)
    # Gradients stay enabled: the counter's module tracker hooks into autograd, which no_grad would break.
    with counter:
        out = model(x)
        if backward:
            out.float().sum().backward()
    if backward:
        model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


# ----------------------------------------------------------------------------------------------------
# Process bookkeeping
# ----------------------------------------------------------------------------------------------------


def cpu_busy_s() -> float:
    """CPU seconds the machine has been busy (all cores, steal included), from /proc/stat; 0 elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and of its finished children (decoding workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(who).ru_maxrss * scale / 2**20


def machine() -> dict:
    """CPU model, cores, the instruction sets that decide bf16 / int8 speed, torch version."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    flags = set(info.split())
    return {
        "cpu": names[0] if names else "unknown CPU",
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": "amx_tile" in flags,
        "vnni": "avx512_vnni" in flags or "avx_vnni" in flags,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def peak_command(seconds: float, device: str = "cpu") -> list[str]:
    """The command line of a peak arm (this module run as a script: it needs torch only)."""
    return [sys.executable, "-m", "antispoof.benchmark", "peak", str(seconds), device]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reply(obj: dict) -> None:
    sys.stdout.write(PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":  # a peak arm: python -m antispoof.benchmark peak SECONDS DEVICE
    serve(lambda: peak_arm(float(sys.argv[2]), sys.argv[3]))
