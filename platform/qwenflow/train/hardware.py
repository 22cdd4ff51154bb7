"""What the hardware gives: device, whether bf16 pays off, and the peak FLOP/s that MFU is measured against."""

from __future__ import annotations

import os
import time

import torch

# Dense bf16 tensor-core peaks (no sparsity) by device-name fragment; MFU on GPUs is quoted against these.
GPU_BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


def gpu_peak(name: str) -> float | None:
    name = name.upper()
    for key, peak in GPU_BF16_PEAK.items():
        if key in name:
            return peak
    return None


def matmul_flops(
    dtype: torch.dtype,
    n: int = 1024,
    seconds: float = 0.5,
    device: str = "cpu",
    shape: tuple[int, int, int] | None = None,
    bursts: int = 5,
) -> float:
    """Measured FLOP/s of an (m x k) @ (k x n) matmul in `dtype` (n^3 unless `shape` is given): the best of
    `bursts` timed bursts, so that a moment of load from other processes lowers no figure (a higher peak makes MFU
    conservative)."""
    m, k, n = shape or (n, n, n)
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    a @ b  # warm up
    best = 0.0
    for _ in range(bursts):
        iters, start = 0, time.perf_counter()
        while True:
            a @ b
            iters += 1
            if device != "cpu":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / bursts and iters >= 2:
                break
        best = max(best, 2 * m * k * n * iters / elapsed)
    return best


def gemm_peak(
    dtype: torch.dtype, shapes: list[tuple[int, int, int]], seconds: float = 0.3, device: str = "cpu"
) -> float:
    """The highest rate over `shapes` (best of several bursts each): the practical peak MFU is quoted against."""
    return max(matmul_flops(dtype, seconds=seconds, device=device, shape=s) for s in shapes)


def model_gemm_shapes(tokens: int, hidden: int, intermediate: int, vocab: int) -> list[tuple[int, int, int]]:
    """The transformer's big GEMMs (projections, MLP, LM head) plus square ones MKL runs at its best."""
    return [
        (tokens, hidden, hidden),
        (tokens, hidden, intermediate),
        (tokens, intermediate, hidden),
        (tokens, hidden, vocab),
        (1024, 1024, 1024),
        (2048, 2048, 2048),
    ]


def probe(want_bf16: bool, device: torch.device) -> dict:
    """{'bf16': use bf16 autocast, 'peak_flops': peak in the dtype used, 'device_name': ...}.

    On GPUs bf16 is used where supported and the peak comes from the card's datasheet. On CPUs bf16 is used where
    the CPU has bf16 instructions (AVX2-only CPUs emulate it slowly), and the peak is a matmul probe in that dtype.
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        bf16 = want_bf16 and torch.cuda.is_bf16_supported()
        peak = gpu_peak(name) or matmul_flops(torch.bfloat16 if bf16 else torch.float32, 8192, device="cuda")
        if not bf16 and gpu_peak(name):
            peak = matmul_flops(torch.float32, 8192, device="cuda")
        return {"bf16": bf16, "peak_flops": peak, "device_name": name}
    bf16 = want_bf16 and cpu_has_bf16()
    peak = matmul_flops(torch.bfloat16 if bf16 else torch.float32)
    return {"bf16": bf16, "peak_flops": peak, "device_name": f"cpu:{torch.backends.cpu.get_cpu_capability()}"}


# Overrides the CPU's choice: "1" trains with bf16 autocast on any CPU (slow without bf16 instructions, but the
# numerics of an AVX512-BF16 machine), "0" trains fp32 (the numerics of an AVX2-only machine). Used to run the
# learning tests under both CPU kinds' numerics on one machine.
CPU_BF16_ENV = "QWENFLOW_CPU_BF16"


def cpu_has_bf16() -> bool:
    """Native bf16 matmul instructions (AVX512-BF16 or AMX); decided from the CPU flags so that runs are
    reproducible (a timing-based choice could flip between a run and its resume). QWENFLOW_CPU_BF16=1/0 forces it."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    if forced:
        if forced not in ("0", "1"):
            raise ValueError(f"{CPU_BF16_ENV}={forced!r}: use 1 (bf16 autocast on CPU) or 0 (fp32)")
        return forced == "1"
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
