"""Run one `qwenflow` command in this process with timing and memory probes around it, then write what they saw.

    python benchmarks/stage_probe.py PROBE.json -- train sft --from M --data D --out O --nproc 1 --set ...

The command runs unchanged (`qwenflow.cli.main`, as the `qwenflow` console script would); the probes only watch:
- every optimizer step, through torch's global optimizer step hook (accelerate's wrapper is skipped so a step counts
  once), with the device synchronised so the time is the step's end;
- training tokens: the token ids entering an `nn.Embedding` forward with autograd on and the module in training mode
  (the policy's training forwards; reference-model scoring, held-out loss and generation run without autograd);
- peak memory: `torch.cuda.max_memory_allocated` on a GPU, the process's peak RSS on a CPU.

benchmarks/gpu_stages.py turns these into tokens/s, MFU and peak memory per stage.
"""

from __future__ import annotations

import json
import resource
import runpy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Probe:
    def __init__(self) -> None:
        import torch
        from torch.nn.modules.module import register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.torch = torch
        self.cuda = torch.cuda.is_available()
        self.t0 = time.perf_counter()
        self.steps: list[dict] = []  # per optimizer step: end time (s since start), tokens, token-weighted seq len
        self.tokens = 0
        self.token_seq = 0  # sum over forwards of tokens x sequence length (attention FLOPs grow with it)
        register_module_forward_pre_hook(self._forward)
        register_optimizer_step_post_hook(self._step)

    def _forward(self, module, args) -> None:
        if not isinstance(module, self.torch.nn.Embedding) or not module.training:
            return
        if not self.torch.is_grad_enabled() or not args or not hasattr(args[0], "numel"):
            return
        ids = args[0]
        self.tokens += ids.numel()
        self.token_seq += ids.numel() * (ids.shape[-1] if ids.dim() else 1)

    def _step(self, optimizer, args, kwargs) -> None:
        if type(optimizer).__module__.startswith("accelerate"):  # its wrapper; the wrapped optimizer reports the step
            return
        if self.cuda:
            self.torch.cuda.synchronize()
        self.steps.append({"t": time.perf_counter() - self.t0, "tokens": self.tokens, "token_seq": self.token_seq})
        self.tokens = self.token_seq = 0

    def result(self, exit_code: int) -> dict:
        if self.cuda:
            device = self.torch.cuda.get_device_name(0)
            peak = self.torch.cuda.max_memory_allocated() / 1024**3
            reserved = self.torch.cuda.max_memory_reserved() / 1024**3
            memory_kind = "max_memory_allocated"
        else:
            device = "cpu"
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB
            reserved = None
            memory_kind = "peak RSS"
        return {
            "exit_code": exit_code,
            "device": device,
            "seconds": time.perf_counter() - self.t0,
            "steps": self.steps,
            "peak_memory_gib": peak,
            "peak_reserved_gib": reserved,
            "memory_kind": memory_kind,
        }


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: stage_probe.py PROBE.json -- QWENFLOW-ARGS...")
    out, cli_args = Path(argv[0]), argv[2:]
    # the checkout's qwenflow first, in place of this script's folder (whose module names could shadow others)
    sys.path[0] = str(ROOT / "platform")
    probe = Probe()
    code = 1
    sys.argv = ["qwenflow", *cli_args]
    try:
        runpy.run_module("qwenflow.cli.main", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:  # the CLI always ends with sys.exit
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        out.write_text(json.dumps(probe.result(code), indent=1), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
