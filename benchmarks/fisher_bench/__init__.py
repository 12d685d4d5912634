"""Benchmark: the cost of per-layer Fisher traces and diagonals, method by method, against one
backward.

For a model, a batch of B inputs and each layer l, a Fisher method computes

    S_l = sum_n ||grad_{theta_l} l_n||^2,     l_n = -log p(y_n | x_n),

the per-layer sum of per-sample squared gradient norms (the Fisher trace times B). A *trace*
method gets there through the per-sample norms ||g_n||^2 (a B x L table); a *diagonal* method
through sum_n g_n * g_n per parameter (elementwise; the trace is its per-layer sum), so both
are checked against the same reference. Every (model, batch size, method) runs in a fresh
subprocess, so its peak memory is its own; the ``floor`` method (one forward and one backward
of the mean loss) is what any method must at least pay, and every other method is shown as a
multiple of it. Each Fisher method's S is compared with the float64 ``fisher_mi`` loop on the
same model and batch.

Modules, in the order data flows through them:

- ``settings``: constants (seed, chunk size, guard defaults, contention threshold) and the
  ``Guards`` every worker runs under;
- ``cases``: the models (``MODELS``) and the seeded batch every process builds;
- ``methods``: the ``Method`` registry (``METHODS``), the floor and ``fisher_mi``'s own
  methods; ``peers``: BackPACK, Opacus and ``torch.func``, registered after them;
- ``machine``: what the processes measure about this machine (memory, CPU use by others);
- ``worker``: one case timed in a fresh process; ``runner``: the parent that spawns workers,
  checks results against the float64 reference and saves them;
- ``targets`` (with the data file ``targets.json``: limits and measured causes of misses) and
  ``report``: ``RESULTS.md`` from the saved JSON files; ``cli``: the command line.

Importing the package registers every method, so ``METHODS`` always lists them all, in the
order of the tables of ``RESULTS.md``.
"""

from fisher_bench import methods, peers  # noqa: F401  (register the methods, in table order)
