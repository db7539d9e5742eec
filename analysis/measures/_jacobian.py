"""Per-row Jacobians of autoencoders for :mod:`analysis.measures.landscape`: an MLP's written out layer by layer
(batched matrix products, the numbers ``vmap(jacrev(...))`` gives), any other module's through ``torch.func``.

``torch.func``'s first use in a process imports ``torch._dynamo`` (most of a second): only modules that need it
(convolutions) pay for it.
"""
from __future__ import annotations

import torch

__all__ = ["func_jacobian", "mlp_layers", "stack_jacobian"]


# Layers whose Jacobians :func:`stack_jacobian` writes by hand: affine maps and elementwise activations.
_ELEMENTWISE = (torch.nn.ReLU, torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.GELU, torch.nn.ELU, torch.nn.LeakyReLU,
                torch.nn.SiLU)


def mlp_layers(stack):
    """The layers of a ``Sequential`` of ``Linear`` layers and elementwise activations, else None."""
    if not isinstance(stack, torch.nn.Sequential):
        return None
    layers = list(stack)
    ok = all(isinstance(m, (torch.nn.Linear, *_ELEMENTWISE)) for m in layers)
    return layers if ok and any(isinstance(m, torch.nn.Linear) for m in layers) else None


def _slopes(layers, x):
    """The stack's output on ``x`` and, per activation, its elementwise derivative at its input (by autograd, one
    backward pass each, so that every activation torch has gets its own derivative)."""
    slopes = []
    for m in layers:
        if isinstance(m, torch.nn.Linear):
            x = m(x)
            continue
        with torch.enable_grad():
            z = x.detach().requires_grad_()
            y = m(z)
            (slope,) = torch.autograd.grad(y.sum(), z)  # a scalar: given gradients import sympy (torch 2.13)
        slopes.append(slope)
        x = y.detach()
    return x, slopes


def stack_jacobian(layers, x):
    """Per row of ``x`` (n, n_in), the Jacobian (n, n_out, n_in) of a stack of linear layers and elementwise
    activations, and the stack's output.

    Reverse mode with every output's row carried back at once, ``G <- (G * slope) @ W`` from the last layer: the
    products ``vmap(jacrev(...))`` makes, in its order (the same numbers, measured on the default study's models).
    Memory: n times n_out times the widest layer.
    """
    out, slopes = _slopes(layers, x)
    J = None
    for m in reversed(layers):
        if isinstance(m, torch.nn.Linear):
            J = m.weight.expand(len(x), -1, -1) if J is None else J @ m.weight
        else:
            slope = slopes.pop()
            J = torch.diag_embed(slope) if J is None else J * slope[:, None, :]
    return J, out


def func_jacobian(model, factored):
    """Per-row Jacobians through ``torch.func`` (any module): ``J_enc J_dec`` (n, k, k) or ``J_f`` (n, d, d)."""
    from torch.func import jacrev, vmap

    if factored:
        enc = vmap(jacrev(lambda x: model.encode(x[None])[0]))
        dec = vmap(jacrev(lambda z: model.decode(z[None])[0]))

        def jacobian(x):
            with torch.enable_grad():
                z = model.encode(x)
                return torch.bmm(enc(x), dec(z.detach())).detach()

        return jacobian
    full = vmap(jacrev(lambda x: model(x[None])[0]))

    def jacobian(x):
        with torch.enable_grad():
            return full(x).detach()

    return jacobian
