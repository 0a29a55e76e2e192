"""The fused GELU backward used by the integrated-gradients passes: same activations bit for
bit, the same gradients as autograd through ESM's expression, and restored on exit."""

import pytest
import torch
from transformers.models.esm import modeling_esm

from plmxai.model.esm import build_model, fused_gelu_backward

ARCH = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64}


def _input_grad(model, ids):
    emb = model.esm.embeddings(input_ids=ids).detach().requires_grad_(True)
    handle = model.esm.embeddings.register_forward_hook(lambda _m, _i, _o: emb)
    try:
        logits = model(input_ids=ids).logits
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(logits[:, 1].sum(), emb)
    return logits.detach(), grad


def test_same_activations_and_gradients_as_autograd():
    model = build_model({"source": "random", "architecture": ARCH}, ["a", "b", "c"], seed=0).eval()
    ids = torch.randint(4, 24, (3, 40), generator=torch.Generator().manual_seed(0))
    logits, grad = _input_grad(model, ids)
    with fused_gelu_backward():
        fused_logits, fused_grad = _input_grad(model, ids)
    assert torch.equal(logits, fused_logits)  # the forward is ESM's expression, op for op
    assert grad.abs().max() > 0
    torch.testing.assert_close(fused_grad, grad, rtol=1e-5, atol=1e-7)


def test_exact_derivative_on_large_inputs():
    # where autograd's exp(-x^2) underflows: the derivative must still be 0 or 1, not NaN
    x = torch.tensor([-40.0, -8.0, -1.0, 0.0, 1.0, 8.0, 40.0], dtype=torch.float64, requires_grad=True)
    with fused_gelu_backward():
        modeling_esm.gelu(x).sum().backward()
    expected = (
        0.5 * (1 + torch.erf(x.detach() / 2**0.5))
        + x.detach() * torch.exp(-(x.detach() ** 2) / 2) / (2 * torch.pi) ** 0.5
    )
    torch.testing.assert_close(x.grad, expected)


def test_restored_on_exit_and_on_error():
    original = modeling_esm.gelu
    with fused_gelu_backward():
        assert modeling_esm.gelu is not original
    assert modeling_esm.gelu is original
    with pytest.raises(RuntimeError, match="boom"), fused_gelu_backward():
        raise RuntimeError("boom")
    assert modeling_esm.gelu is original
