"""The peer libraries as methods: BackPACK, Opacus and the plain ``torch.func`` recipe.

Each peer wraps the model once per process (BackPACK's ``extend``, Opacus' module), in the
warm-up call: wrapping registers hooks and is not repeated per batch in real use, so the
wrapped model is cached per model object (``functools.cache``: a worker builds one model).
The wrapped model is the benchmark's own model, in eval mode, with one change both need
(``no_inplace_activations``). README, "How the peers were made to run", says why each
adaptation leaves the computed function unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache, partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_bench.machine import distribution_version
from fisher_bench.methods import Unsupported, layer_sums, register_method, squared_norm
from fisher_mi.models.outputs import logits_of


def no_inplace_activations(model: nn.Module) -> None:
    """Set ``inplace=False`` on every module that has it (``ReLU(inplace=True)`` in VGG16,
    ResNet-18 and ``vgg_small``).

    BackPACK and Opacus register ``register_full_backward_hook`` on modules, and autograd
    refuses an in-place op on a hooked module's output ("Output 0 of BackwardHookFunction is a
    view and is being modified inplace"). The function computed is the same; the cost is one
    activation buffer per such module that the in-place op would have reused.
    """
    for module in model.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False


class Logits(nn.Module):
    """The logits of a model returning ``(features, logits)``: what a loss module takes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        """``logits_of(model(x))``."""
        return logits_of(self.model(x))


def clear_field(model: nn.Module, field: str, *, keep_attribute: bool = False) -> None:
    """Drop a per-parameter result (``grad_batch``, ``grad_sample``...) from every parameter,
    so nothing is kept, or counted, between calls: delete the attribute (BackPACK's), or set
    it to None where the library expects it to exist (Opacus')."""
    for param in model.parameters():
        if getattr(param, field, None) is not None:
            if keep_attribute:
                setattr(param, field, None)
            else:
                delattr(param, field)


# ---------------------------------------------------------------- BackPACK


@cache
def backpack_prepared(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``extend(model)`` and ``extend(CrossEntropyLoss(reduction="sum"))``, once per model.

    With ``reduction="sum"`` BackPACK's quantities are per sample (with "mean" they are scaled
    by 1/B and 1/B^2). The ``Logits`` wrapper is not extended: BackPACK only needs its hooks on
    the modules that own parameters and on the ones in between.
    """
    from backpack import extend

    no_inplace_activations(model)
    extend(model)
    return Logits(model), extend(nn.CrossEntropyLoss(reduction="sum"))


def backpack_version() -> str:
    """The installed BackPACK version, for messages ("?" when unknown)."""
    return distribution_version("backpack-for-pytorch") or "?"


def backpack_method(
    extension: str, field: str, reduce: Callable[[Tensor], Tensor], model, x, y
) -> Tensor:
    """One backward of the summed loss with BackPACK ``extension``; S_l from each parameter's
    ``field`` (deleted after reading, so nothing is kept between calls)."""
    import backpack
    import backpack.extensions

    net, loss_function = backpack_prepared(model)
    model.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        # "no extension for Module <...>" (parameter-free modules, the root container) and
        # "Full backward hook is firing ... no inputs require gradient" (the first layer).
        warnings.simplefilter("ignore")
        loss = loss_function(net(x), y)
        with backpack.backpack(getattr(backpack.extensions, extension)()):
            loss.backward()

    def value(_name: str, param: Tensor) -> Tensor | None:
        if not hasattr(param, field):
            return None
        quantity = getattr(param, field)
        delattr(param, field)
        return reduce(quantity)

    try:
        return layer_sums(model, value)
    except Unsupported as err:
        raise Unsupported(
            f"BackPACK {backpack_version()} has no first-order extension for some layers: it "
            f"warns and {err}"
        ) from None
    finally:
        clear_field(model, field)


register_method("backpack.BatchL2Grad", requires=("backpack",))(
    partial(backpack_method, "BatchL2Grad", "batch_l2", lambda q: q.sum().double())
)
register_method("backpack.SumGradSquared", tables=("diagonal",), requires=("backpack",))(
    partial(backpack_method, "SumGradSquared", "sum_grad_squared", lambda q: q.sum().double())
)
register_method(
    "backpack.BatchGrad",
    tables=("trace", "diagonal"),
    per_sample_gradients=True,
    requires=("backpack",),
)(partial(backpack_method, "BatchGrad", "grad_batch", squared_norm))


# ---------------------------------------------------------------- Opacus


def opacus_batchnorm_grad_sample(
    layer: nn.Module, activations: list[Tensor], backprops: Tensor
) -> dict[nn.Parameter, Tensor]:
    """Per-sample gradients of an **eval-mode** BatchNorm (running statistics), for Opacus.

    Opacus ships no grad sampler for BatchNorm (per-sample gradients of train-mode BatchNorm
    are not defined: the batch statistics mix samples), and its functorch fallback refuses any
    module with buffers. In eval mode BatchNorm is an affine map per channel,
    y = weight * x_hat + bias with x_hat = (x - running_mean) / sqrt(running_var + eps), so
    sample n's gradients are sum_spatial b_n * x_hat_n and sum_spatial b_n.
    """
    if layer.training or layer.running_mean is None or layer.running_var is None:
        raise Unsupported("Opacus: BatchNorm per-sample gradients need eval-mode running stats")
    a = activations[0].to(backprops.dtype)
    batch, channels = a.shape[:2]
    shape = (1, channels) + (1,) * (a.dim() - 2)
    x_hat = (a - layer.running_mean.view(shape)) * torch.rsqrt(
        layer.running_var.view(shape) + layer.eps
    )
    grads: dict[nn.Parameter, Tensor] = {}
    if layer.weight is not None and layer.weight.requires_grad:
        grads[layer.weight] = (backprops * x_hat).reshape(batch, channels, -1).sum(2)
    if layer.bias is not None and layer.bias.requires_grad:
        grads[layer.bias] = backprops.reshape(batch, channels, -1).sum(2)
    return grads


@cache
def opacus_prepared(model: nn.Module, *, ghost: bool) -> nn.Module:
    """The Opacus module around ``model`` (eval mode kept), once per model and mode.

    - ``loss_reduction="sum"``: per-sample quantities of the summed loss (B x the mean's).
    - ``strict=False``: Opacus' validator rejects BatchNorm (it mixes samples in train mode);
      non-strict mode logs that and goes on. BatchNorm then gets the eval-mode grad sampler
      above, registered through Opacus' public ``register_grad_sampler``. PReLU (IR-152) has
      no Opacus grad sampler; Opacus' own functorch fallback handles it.
    - Opacus' forward hook records a module's input only if ``module.training``; here it is
      called with the flag raised for the duration of the hook (the forward itself has already
      run in eval mode), so every module is hooked while the model stays in eval mode.
    - ``ReLU(inplace=True)`` becomes ``inplace=False`` (``no_inplace_activations``).
    """
    from opacus.grad_sample import GradSampleModule, register_grad_sampler
    from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import (
        GradSampleModuleFastGradientClipping,
    )

    register_grad_sampler([nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d])(
        opacus_batchnorm_grad_sample
    )
    base = GradSampleModuleFastGradientClipping if ghost else GradSampleModule

    class EvalModeHooks(base):
        """Opacus' module, recording activations although the model is in eval mode."""

        def capture_activations_hook(self, module, forward_input, forward_output):
            """Opacus' own hook, with ``module.training`` raised for its duration only."""
            training = module.training
            module.training = True
            try:
                super().capture_activations_hook(module, forward_input, forward_output)
            finally:
                module.training = training

    no_inplace_activations(model)
    options: dict[str, object] = {"batch_first": True, "loss_reduction": "sum", "strict": False}
    if ghost:
        options.update(max_grad_norm=1.0, use_ghost_clipping=True)
    return EvalModeHooks(model, **options)


def opacus_method(ghost: bool, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """One forward and backward of the summed loss through the Opacus module; S_l from
    ``param.grad_sample`` (per-sample gradients) or, in ghost mode, ``param._norm_sample``
    (per-sample gradient norms, per parameter). Both are cleared after reading."""
    wrapped = opacus_prepared(model, ghost=ghost)
    model.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        # "Full backward hook is firing ... no inputs require gradient" (the first layer).
        warnings.simplefilter("ignore")
        F.cross_entropy(logits_of(wrapped(x)), y, reduction="sum").backward()
    field = "_norm_sample" if ghost else "grad_sample"

    def value(_name: str, param: Tensor) -> Tensor | None:
        quantity = getattr(param, field, None)
        if quantity is None:
            return None
        setattr(param, field, None)
        return quantity.double().square().sum() if ghost else squared_norm(quantity)

    try:
        return layer_sums(model, value)
    except Unsupported as err:
        raise Unsupported(f"Opacus {distribution_version('opacus')} {err}") from None
    finally:
        clear_field(model, field, keep_attribute=True)


register_method(
    "opacus.GradSampleModule",
    tables=("trace", "diagonal"),
    per_sample_gradients=True,
    requires=("opacus",),
)(partial(opacus_method, False))
register_method("opacus.ghost", requires=("opacus",))(partial(opacus_method, True))


# ---------------------------------------------------------------- torch.func


@register_method("torch.func", tables=("trace", "diagonal"), per_sample_gradients=True)
def torch_func(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The plain ``torch.func`` recipe (PyTorch's per-sample-gradients tutorial):
    ``vmap(grad(loss))`` over the whole batch at once, no chunking, then squared and summed."""
    from torch.func import functional_call, grad, vmap

    params = {name: param.detach() for name, param in model.named_parameters()}
    buffers = {name: buffer.detach() for name, buffer in model.named_buffers()}

    def loss(params: dict[str, Tensor], x1: Tensor, y1: Tensor) -> Tensor:
        output = functional_call(model, (params, buffers), (x1.unsqueeze(0),))
        return F.cross_entropy(logits_of(output), y1.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return layer_sums(model, lambda name, _param: squared_norm(grads[name]))
