"""Benchmark: the cost of per-layer Fisher traces and diagonals, method by method, against one
backward. The harness is the ``fisher_bench`` package next to this script (its docstring says
what each module does); this script is its command line.

Usage (from the repository root):

    python benchmarks/bench_fisher.py                      # everything, results in benchmarks/
    python benchmarks/bench_fisher.py --quick              # smoke check, results in a temp folder
    python benchmarks/bench_fisher.py --models mcnn --methods floor,fisher_mi.hooks --repeats 3
    python benchmarks/bench_fisher.py --set NAME ...       # a partial run kept in results/NAME/
"""

from __future__ import annotations

import sys

from fisher_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
