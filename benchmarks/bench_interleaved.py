"""Method-over-method time ratios measured round-robin in one process (``fisher_bench
.interleaved``): for a busy shared machine, where the harness's separate processes disagree.

Usage (from the repository root):

    python benchmarks/bench_interleaved.py --model vgg16 --batch 32 --rounds 7 \\
        --methods fisher_mi.hooks,fisher_mi.profile,fisher_mi.profile.true
"""

from __future__ import annotations

import sys

from fisher_bench.interleaved import main

if __name__ == "__main__":
    sys.exit(main())
