"""How much memory a shadow-training seed takes on large feature maps: (64, 32, 32) maps, batches of 32.

A `conv` seed on 64-channel 32×32 maps germinates, sees training batches until its reservoir is
full, and measures its progress once. Each case runs in a fresh process and reports its peak
resident memory above the process's own before the seed was built (ru_maxrss), and the
reservoir's size:

  unbounded   the reservoir as it was: buffer_size samples whatever their size (2,048 here),
              progress in one forward over all of them
  default     seeds.buffer_mb (64 MiB) and progress in chunks of 256 samples

    python bench/seed_memory.py          # prints JSON
"""

import json
import subprocess
import sys

CASE = """
import json, resource, sys
import torch
torch.set_num_threads(1)
from kaslite.config import SeedConfig
from kaslite.nn import SentinelSeed
import kaslite.nn.seed as seed_module
unbounded = sys.argv[1] == "unbounded"
if unbounded:
    seed_module.PROGRESS_CHUNK = 1 << 30
config = SeedConfig(buffer_mb=1e9 if unbounded else SeedConfig().buffer_mb)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
seed = SentinelSeed(64, config=config, blueprint="conv").train()
seed.germinate()
with torch.no_grad():
    for _ in range(config.buffer_size // 32):
        seed(torch.randn(32, 64, 32, 32))
        seed.observe()
    seed.measure_progress()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps({"peak_mib": round(peak / 1024), "reservoir_mib": round(seed.reservoir_data.nbytes / 2**20),
                  "reservoir_samples": seed.reservoir_data.shape[0]}))
"""


def main() -> None:
    results = {}
    for case in ("unbounded", "default"):
        proc = subprocess.run([sys.executable, "-c", CASE, case], capture_output=True, text=True, check=True)
        results[case] = json.loads(proc.stdout)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
