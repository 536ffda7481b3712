"""bench/gpu_check.py's CPU fallback at tiny size (the whole path: train, export, generate, CAS), and
the ONNX Runtime provider check; the CUDA parts run only where a GPU is present."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gen_factory.runtime import onnx_model
from gen_factory.runtime.onnx_model import CPU, CUDA, open_session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
NO_GPU = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from torch import nn

    from gen_factory.export.bundle import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "lin.onnx"
    export_onnx(nn.Linear(3, 2), (torch.randn(4, 3),), path, ["x"], "y")
    return path


def test_gpu_check_cpu_fallback_prints_its_result(capsys):
    import gpu_check

    result = gpu_check.main(["--tiny", "--train-seconds", "1", "--images", "1000"])
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("RESULT gpu_check ")]
    assert len(line) == 1 and "device=cpu" in line[0] and "gen_provider=CPUExecutionProvider" in line[0]
    assert float(result["train_images_per_s"]) > 0 and float(result["gen_images_per_s"]) > 0
    assert 0 <= float(result["cas"]) <= 1 and float(result["onnx_parity"]) < 1e-3


def test_the_shell_script_exists_and_says_how_it_runs():
    script = ROOT / "bench" / "gpu_check.sh"
    assert script.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0


@pytest.mark.skipif(not NO_GPU, reason="checks the CPU fallback; this machine has a GPU")
def test_cuda_asked_without_a_gpu_falls_back_with_one_line(tiny_onnx, caplog, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setitem(onnx_model._STATE, "warned", False)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    with caplog.at_level(logging.WARNING, logger=onnx_model.__name__):
        first = open_session(tiny_onnx, options, [CUDA, CPU])
        open_session(tiny_onnx, options, [CUDA, CPU])
    assert first.get_providers()[0] == CPU
    lines = [r.getMessage() for r in caplog.records if "asked for CUDAExecutionProvider" in r.getMessage()]
    assert len(lines) == 1 and "runs lin.onnx on CPUExecutionProvider" in lines[0]
    out = first.run(None, {"x": np.ones((2, 3), np.float32)})[0]
    assert out.shape == (2, 2)
    monkeypatch.setenv("GENFACTORY_ORT_STRICT", "1")
    with pytest.raises(RuntimeError, match="asked for CUDAExecutionProvider"):
        open_session(tiny_onnx, options, [CUDA, CPU])


def test_cpu_asked_is_cpu_used(tiny_onnx):
    import onnxruntime as ort

    assert open_session(tiny_onnx, ort.SessionOptions(), [CPU]).get_providers() == [CPU]


@pytest.mark.skipif(NO_GPU, reason="no CUDA GPU on this machine: the CUDA provider and bf16 path are not run")
def test_cuda_provider_is_the_one_in_use(tiny_onnx, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setenv("GENFACTORY_ORT_STRICT", "1")
    assert open_session(tiny_onnx, ort.SessionOptions(), [CUDA, CPU]).get_providers()[0] == CUDA


@pytest.mark.skipif(NO_GPU, reason="no CUDA GPU on this machine: bf16 autocast / channels-last are CUDA-only")
def test_fast_path_is_bf16_on_cuda_and_off_on_cpu():
    from gen_factory.models.image import channels_last, fast_path

    conv = channels_last(torch.nn.Conv2d(1, 8, 3).cuda(), "cuda")
    with fast_path("cuda"):
        out = conv(torch.randn(2, 1, 8, 8, device="cuda").contiguous(memory_format=torch.channels_last))
    assert out.dtype == torch.bfloat16
    with fast_path("cpu"):
        assert torch.nn.Conv2d(1, 8, 3)(torch.randn(2, 1, 8, 8)).dtype == torch.float32


def test_fast_path_is_a_no_op_on_cpu():
    from gen_factory.models.image import channels_last, fast_path

    conv = torch.nn.Conv2d(1, 8, 3)
    assert channels_last(conv, "cpu") is conv
    with fast_path("cpu"):
        assert conv(torch.randn(2, 1, 8, 8)).dtype == torch.float32
