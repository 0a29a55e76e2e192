"""`cls_only_last_layer`: the last layer computed at the <cls> position only gives the same
logits, and the same gradients everywhere, as the whole model, with padding and rotary
positions; and it leaves the model as it was."""

from __future__ import annotations

import torch

from plmxai.model.esm import cls_only_last_layer


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 24, (3, 30), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    ids[1, 20:], mask[1, 20:] = 1, 0  # a padded row
    ids[1, 19] = 2
    return ids, mask


def _logits_and_grads(model, ids, mask):
    model.zero_grad()
    emb = model.esm.embeddings(input_ids=ids, attention_mask=mask).detach().requires_grad_(True)
    h = model.esm.embeddings.register_forward_hook(lambda m, i, o: emb)
    try:
        logits = model(input_ids=ids, attention_mask=mask).logits
    finally:
        h.remove()
    logits[:, 1].sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), emb.grad.clone(), grads


def test_same_logits_and_gradients(tiny_model):
    ids, mask = _batch()
    full = _logits_and_grads(tiny_model, ids, mask)
    with cls_only_last_layer(tiny_model):
        cls = _logits_and_grads(tiny_model, ids, mask)
    torch.testing.assert_close(cls[0], full[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cls[1], full[1], rtol=1e-4, atol=1e-7)
    assert cls[2].keys() == full[2].keys()
    for name in full[2]:
        torch.testing.assert_close(cls[2][name], full[2][name], rtol=1e-4, atol=1e-7, msg=name)
    # restored: the last layer again returns every position
    out = tiny_model.esm(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.shape[1] == ids.shape[1]
    assert "forward" not in vars(tiny_model.esm.encoder.layer[-1])


def test_hooks_see_the_cls_position(tiny_model):
    ids, mask = _batch()
    seen = {}
    last = tiny_model.esm.encoder.layer[-1]
    hooks = [
        last.intermediate.dense.register_forward_hook(lambda m, i, o: seen.__setitem__("ffn_in", o.shape)),
        last.attention.self.key.register_forward_hook(lambda m, i, o: seen.__setitem__("key", o.shape)),
    ]
    try:
        with cls_only_last_layer(tiny_model):
            tiny_model(input_ids=ids, attention_mask=mask)
    finally:
        for h in hooks:
            h.remove()
    assert seen["ffn_in"][1] == 1  # one position
    assert seen["key"][1] == ids.shape[1]  # keys at every position
