"""What the hardware gives: device, whether bf16 pays off, and the peak FLOP/s that MFU is measured against."""
from __future__ import annotations

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


def matmul_flops(dtype: torch.dtype, n: int = 1024, seconds: float = 0.5, device: str = "cpu") -> float:
    """Measured FLOP/s of an n^3 matmul in `dtype` (the CPU's practical peak)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm up
    iters, start = 0, time.perf_counter()
    while True:
        a @ b
        iters += 1
        if device != "cpu":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and iters >= 3:
            return 2 * n**3 * iters / elapsed


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


def cpu_has_bf16() -> bool:
    """Native bf16 matmul instructions (AVX512-BF16 or AMX); decided from the CPU flags so that runs are
    reproducible (a timing-based choice could flip between a run and its resume)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
