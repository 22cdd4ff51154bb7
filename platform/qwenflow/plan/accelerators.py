"""Memory of known accelerators, keyed by the GPU Feature Discovery label `nvidia.com/gpu.product` that recipes put in
`resources.gpu_product` (matched case-insensitively, also by a unique prefix such as `NVIDIA-H100`).

Values are the total memory the driver reports (nvidia-smi's `memory.total`, in MiB), from the vendors' data sheets
for the usual SKUs; `resources.gpu_memory_gib` overrides the table for anything else (a MIG slice, a new card).
"""

from __future__ import annotations

MIB = 1 / 1024  # GiB per MiB

GPU_MEMORY_GIB: dict[str, float] = {
    "NVIDIA-B200": 183_359 * MIB,
    "NVIDIA-H200": 143_771 * MIB,
    "NVIDIA-H100-NVL": 95_830 * MIB,
    "NVIDIA-H100-80GB-HBM3": 81_559 * MIB,
    "NVIDIA-H100-PCIe": 81_559 * MIB,
    "NVIDIA-A100-SXM4-80GB": 81_920 * MIB,
    "NVIDIA-A100-80GB-PCIe": 81_920 * MIB,
    "NVIDIA-A100-SXM4-40GB": 40_960 * MIB,
    "NVIDIA-A100-PCIE-40GB": 40_960 * MIB,
    "NVIDIA-L40S": 46_068 * MIB,
    "NVIDIA-A10G": 23_028 * MIB,
    "NVIDIA-L4": 23_034 * MIB,
    "Tesla-V100-SXM2-32GB": 32_768 * MIB,
    "Tesla-T4": 15_360 * MIB,
}
# A GPU step whose recipe names no product: planned for the 80 GB class most training pools have, and said so.
DEFAULT_GPU = "NVIDIA-H100-80GB-HBM3"


class UnknownAccelerator(ValueError):
    pass


def gpu_memory_gib(resources) -> tuple[float, str]:
    """(GiB per GPU, what it is) for a stage's resources: the override, the product's table entry, or the default."""
    if resources.gpu_memory_gib:
        return float(resources.gpu_memory_gib), f"{resources.gpu_product or 'GPU'} (resources.gpu_memory_gib)"
    product = resources.gpu_product
    if not product:
        return GPU_MEMORY_GIB[DEFAULT_GPU], f"{DEFAULT_GPU} (assumed: no resources.gpu_product)"
    table = {k.lower(): (k, v) for k, v in GPU_MEMORY_GIB.items()}
    if product.lower() in table:
        return table[product.lower()][1], product
    prefix = [(k, v) for lk, (k, v) in table.items() if lk.startswith(product.lower())]
    if len(prefix) == 1:
        return prefix[0][1], prefix[0][0]
    raise UnknownAccelerator(
        f"resources.gpu_product {product!r} is not in the memory table "
        f"({', '.join(GPU_MEMORY_GIB)}); set resources.gpu_memory_gib for it"
    )
