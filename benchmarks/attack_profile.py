"""Where a missed target's time goes: torch's profiler on attack and floor, and batching.

Both sides run under ``torch.profiler`` for a few iterations after one warm-up
(the attack's progress callback steps the profiler's schedule, so its batch set-up and final
reconstructions fall outside the recorded steps). The attack's own hooks (``latents``,
``generator_input``, ``prior``, ``identity``, ``after_step``) are wrapped, on the instance
only, in ``record_function`` ranges, which gives each hook's CPU time per iteration; the
difference of self CPU time per operator between attack and floor names the operators the
attack adds. The profiler adds its own overhead to every operator, so its seconds are for
attribution; the timings of ``bench_attacks.py`` are the unprofiled ones.

Where one batch of B units is not faster than B batches of one, ``batching_case`` times each
network of the floor alone at B units and at one unit: the network whose cost grows with the
batch as fast as B copies of one unit is what batching cannot speed up.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import Any

import torch
from attack_cases import Case, floor_step, timed_calls
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile, record_function, schedule

HOOKS = ("latents", "generator_input", "prior", "identity", "after_step")
RANGE = "attack."  # prefix of the hooks' record_function ranges
STEP = "ProfilerStep"  # the schedule's own ranges, one per step
TOP = 6  # operators listed in a cause line
CHUNKS = (1, 4, 8, 16, 32)  # units per call swept for the network batching helps least


def _profiled(
    run: Callable[[Callable[[], None]], None], iterations: int
) -> dict[str, dict[str, float]]:
    """Per-iteration self and total CPU seconds per operator or range while ``run(step)``
    calls ``step`` after each iteration (1 warm-up, then ``iterations`` recorded)."""
    plan = schedule(wait=0, warmup=1, active=iterations, repeat=1)
    with profile(activities=[ProfilerActivity.CPU], schedule=plan) as profiler:
        run(profiler.step)
    return {
        event.key: {
            "self_s": event.self_cpu_time_total / 1e6 / iterations,
            "total_s": event.cpu_time_total / 1e6 / iterations,
        }
        for event in profiler.key_averages()
        if not event.key.startswith(STEP)
    }


def _wrap_hooks(attack: Any) -> None:
    """Each hook of ``attack`` (this instance only) inside a ``record_function`` range."""
    for name in HOOKS:
        hook = getattr(attack, name)

        @functools.wraps(hook)
        def ranged(*args: Any, _hook: Callable = hook, _name: str = name, **kwargs: Any) -> Any:
            with record_function(RANGE + _name):
                return _hook(*args, **kwargs)

        setattr(attack, name, ranged)


def _attack_side(case: Case, iterations: int) -> dict[str, dict[str, float]]:
    attack = case.attack(iterations + 1)
    _wrap_hooks(attack)
    return _profiled(
        lambda step: attack.run_batch(case.batch, progress=lambda _: step()), iterations
    )


def _floor_side(case: Case, iterations: int) -> dict[str, dict[str, float]]:
    floor = floor_step(case)

    def run(step: Callable[[], None]) -> None:
        for _ in range(iterations + 1):
            floor()
            step()

    return _profiled(run, iterations)


def _self_total(ops: dict[str, dict[str, float]]) -> float:
    return sum(v["self_s"] for k, v in ops.items() if not k.startswith(RANGE))


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:+.1f} ms"


def profile_case(case: Case, iterations: int) -> dict[str, Any]:
    """The profile of a case's attack against its floor, and the sentence for the section.

    Args:
        case: the built case.
        iterations: profiled iterations of each side, after one warm-up iteration.

    Returns:
        ``hooks_s`` (CPU seconds per iteration in each attack hook, with its operators),
        ``attack_self_s`` / ``floor_self_s`` (all operators' self time per iteration),
        ``extra_ops_s`` (the operators' attack-minus-floor self seconds, largest first) and
        ``lines`` (the markdown bullet).
    """
    attack_ops, floor_ops = _attack_side(case, iterations), _floor_side(case, iterations)
    hooks = {k[len(RANGE) :]: v["total_s"] for k, v in attack_ops.items() if k.startswith(RANGE)}
    names = (set(attack_ops) | set(floor_ops)) - {k for k in attack_ops if k.startswith(RANGE)}
    empty = {"self_s": 0.0}
    extra = {
        name: attack_ops.get(name, empty)["self_s"] - floor_ops.get(name, empty)["self_s"]
        for name in names
    }
    ranked = dict(sorted(extra.items(), key=lambda item: -abs(item[1])))
    attack_s, floor_s = _self_total(attack_ops), _self_total(floor_ops)
    shown_hooks = ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in hooks.items())
    shown_ops = ", ".join(f"`{k}` {_ms(v)}" for k, v in list(ranked.items())[:TOP])
    line = (
        f"- **{case.key}**: profiled ({iterations} iterations each side, profiler overhead "
        f"included) the attack takes {1e3 * attack_s:.1f} ms of operator time per iteration, "
        f"the floor {1e3 * floor_s:.1f} ms ({_ms(attack_s - floor_s)}). Per attack hook "
        f"(forward CPU time with its operators; the backward runs outside them): "
        f"{shown_hooks}. Largest per-operator differences, attack "
        f"minus floor: {shown_ops}."
    )
    return {
        "iterations": iterations,
        "hooks_s": hooks,
        "attack_self_s": attack_s,
        "floor_self_s": floor_s,
        "extra_ops_s": {k: v for k, v in list(ranked.items())[:30]},
        "lines": [line],
    }


# ---------------------------------------------------------------------------- batching


def _network_calls(case: Case, rows: int) -> dict[str, Callable[[], None]]:
    """One forward and input-gradient backward of each network of the case's floor, on its
    first ``rows`` units (the generator from latents, the others from fixed images)."""
    gan, labels = case.gan, case.batch.identities[:rows]
    z = torch.randn(rows, gan.latent_dim, requires_grad=True)
    conditional = (labels,) if gan.conditional else ()
    with torch.no_grad():
        images = gan.generator(z, *conditional)
    images.requires_grad_(True)

    def backward(network: nn.Module, *inputs: Tensor) -> Callable[[], None]:
        def call() -> None:
            output = network(*inputs)
            output = output[-1] if isinstance(output, tuple) else output
            output.sum().backward()

        return call

    calls = {"generator": backward(gan.generator, z, *conditional)}
    if case.method.attack != "plgmi":
        calls["discriminator"] = backward(gan.discriminator, images)
    calls["target"] = backward(case.target, images)
    for index, surrogate in enumerate(case.surrogates):
        calls[f"surrogate {index}"] = backward(surrogate, images)
    return calls


def _per_unit_s(case: Case, name: str, rows: int) -> float:
    """Seconds per unit of network ``name``'s call on ``rows`` units (median of 2 after one)."""
    return statistics.median(timed_calls(_network_calls(case, rows)[name], 3)[1:]) / rows


def _operator_s(call: Callable[[], None]) -> dict[str, float]:
    """Self CPU seconds per operator of one profiled call (after an unprofiled one)."""
    call()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        call()
    return {event.key: event.self_cpu_time_total / 1e6 for event in profiler.key_averages()}


def _least_helped(case: Case, networks: dict[str, dict[str, float]]) -> dict[str, Any]:
    """For the network batching helps least: its cost per unit at ``CHUNKS`` units a call,
    and the operators on which one B-unit call spends more than B one-unit calls."""
    rows = case.batch_size
    name = min(networks, key=lambda n: networks[n]["one_at_a_time_ratio"])
    sweep = {n: _per_unit_s(case, name, n) for n in CHUNKS if n < rows}
    sweep[rows] = networks[name]["batched_s"] / rows
    batched = _operator_s(_network_calls(case, rows)[name])
    single = _operator_s(_network_calls(case, 1)[name])
    extra = {op: batched.get(op, 0.0) - rows * single.get(op, 0.0) for op in {*batched, *single}}
    top = dict(sorted(extra.items(), key=lambda item: -item[1])[:TOP])
    shown_sweep = ", ".join(f"{1e3 * t:.1f} ms at {n}" for n, t in sweep.items())
    shown_ops = ", ".join(f"`{op}` {t:+.2f} s" for op, t in top.items())
    line = (
        f"  The {name}'s time per unit by units per call: {shown_sweep}. By operator (one "
        f"profiled call each), the {rows}-unit call spends more than {rows} one-unit calls on: "
        f"{shown_ops} (all operators: {sum(extra.values()):+.2f} s)."
    )
    return {"network": name, "per_unit_s_by_units": sweep, "extra_ops_s": top, "line": line}


def batching_case(case: Case) -> dict[str, Any]:
    """Each floor network's forward + backward on the case's B units at once against B times
    its cost on one unit (median of 3 calls after one warm-up), and the section's bullet; where
    a network costs less one unit at a time, its sweep and operators (``_least_helped``).

    Returns:
        ``networks``: per network ``batched_s``, ``one_unit_s`` and ``one_at_a_time_ratio``
        (B x one_unit_s / batched_s, below 1 where B batches of one are cheaper); ``lines``.
    """
    rows = case.batch_size
    batched, alone = _network_calls(case, rows), _network_calls(case, 1)
    networks = {}
    for name, call in batched.items():
        batched_s = statistics.median(timed_calls(call, 4)[1:])
        one_s = statistics.median(timed_calls(alone[name], 4)[1:])
        networks[name] = {
            "batched_s": batched_s,
            "one_unit_s": one_s,
            "one_at_a_time_ratio": rows * one_s / batched_s,
        }
    shown = ", ".join(
        f"{name} {v['batched_s']:.3f} s for {rows} units against {rows} x {v['one_unit_s']:.4f} s "
        f"({v['one_at_a_time_ratio']:.2f})"
        for name, v in networks.items()
    )
    line = (
        f"- **{case.key}**, one unit at a time: forward + input backward of each network "
        f"alone (median of 3): {shown}."
    )
    found: dict[str, Any] = {"networks": networks, "lines": [line]}
    if min(v["one_at_a_time_ratio"] for v in networks.values()) < 1:
        found["least_helped"] = _least_helped(case, networks)
        found["lines"][0] += "\n" + found["least_helped"]["line"]
    return found
