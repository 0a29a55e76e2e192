"""Linear probes on frozen residue embeddings, per layer: which layer makes annotated residues
and contacts linearly readable (Vig et al. 2021; Rao et al. 2021 for contacts).

Residue probe (per annotation type): logistic regression on the residue's hidden state,
trained on the training proteins (every annotated residue and a seeded sample of the others;
the ranking metrics below do not depend on the class balance of training), evaluated on every
residue of the test proteins: AUPRC, and precision at L/20 (the top L/20 residues of each
protein by probe score, mean over proteins with an annotated residue).

Contact probe: logistic regression on pair features [e_i * e_j, |e_i - e_j|] of pairs with
sequence separation >= 6 and both residues resolved in a mapped structure; training uses every
contact and a seeded sample of non-contacts; test: precision at L/5 per protein, and AUPRC.

Hidden states: index 0 is the embedding output, index l the output of layer l - 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)


def hidden_states(model, tokens: pd.DataFrame, batch_size: int = 8) -> Iterator[tuple[int, np.ndarray]]:
    """(row of `tokens`, hidden states over residues: (layers + 1) x L x H, float32)."""
    from plmxai.model.batching import batches

    device = next(model.parameters()).device
    model.eval()
    for pos, ids, mask in batches(tokens, batch_size):
        with torch.no_grad():
            out = model.esm(
                input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True
            )
        hs = torch.stack(out.hidden_states, 1).float().cpu()  # B x (layers + 1) x T x H
        for b, row in enumerate(pos):
            first = int(tokens["first_residue_token"].iloc[row])
            n = int(tokens["n_residues"].iloc[row])
            yield int(row), hs[b, :, first : first + n].numpy()


def pair_features(h: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Symmetric pair features of residues i and j from one layer's states h (L x H)."""
    return np.concatenate([h[i] * h[j], np.abs(h[i] - h[j])], axis=1)


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int):
    if y.min() == y.max():
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    return model.fit(x, y)


def precision_at(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-scores, kind="stable")[: max(1, k)]
    return float(labels[top].mean())


class ProbeData:
    """Training examples per layer, gathered protein by protein."""

    def __init__(self, n_layers: int, seed: int = 0, negatives_per_positive: int = 5, max_pairs: int = 200):
        self.n = n_layers
        self.rng = np.random.default_rng([seed, 23])
        self.k = negatives_per_positive
        self.max_pairs = max_pairs  # per protein: pair features are layers x 2H each
        self.x: dict[str, list[list[np.ndarray]]] = {}
        self.y: dict[str, list[np.ndarray]] = {}
        self.proteins: dict[str, int] = {}

    def _sample(self, labels: np.ndarray, cap: int | None = None) -> np.ndarray:
        pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
        if cap is not None and len(pos) > cap // 2:
            pos = self.rng.choice(pos, cap // 2, replace=False)
        take = min(len(neg), max(self.k * len(pos), 10), cap - len(pos) if cap is not None else len(neg))
        return np.sort(np.concatenate([pos, self.rng.choice(neg, take, replace=False)]))

    def _add(self, name: str, feats, labels: np.ndarray) -> None:
        xs = self.x.setdefault(name, [[] for _ in range(self.n)])
        for layer in range(self.n):
            xs[layer].append(feats(layer).astype(np.float16))  # halves what training holds
        self.y.setdefault(name, []).append(labels)
        self.proteins[name] = self.proteins.get(name, 0) + 1

    def add_residues(self, states: np.ndarray, masks: dict[str, np.ndarray], types: list[str]) -> None:
        for t in types:
            m = masks.get(t, np.zeros(states.shape[1], dtype=bool))
            idx = self._sample(m)
            self._add(t, lambda layer, idx=idx: states[layer, idx], m[idx])

    def add_contacts(self, states: np.ndarray, contacts: np.ndarray, considered: np.ndarray) -> None:
        i, j = np.nonzero(np.triu(considered))
        labels = contacts[i, j]
        idx = self._sample(labels, self.max_pairs)
        self._add("contact", lambda layer: pair_features(states[layer], i[idx], j[idx]), labels[idx])

    def fit(self, c: float = 1.0, seed: int = 0) -> dict[str, list]:
        return {
            name: [
                _fit(
                    np.concatenate(self.x[name][layer]).astype(np.float32),
                    np.concatenate(self.y[name]),
                    c,
                    seed,
                )
                for layer in range(self.n)
            ]
            for name in self.x
        }


class ProbeScores:
    """Test-set scores per probe and layer, gathered protein by protein."""

    def __init__(self, probes: dict[str, list]):
        self.probes = probes
        self.scores: dict = {}
        self.labels: dict = {}
        self.precision: dict = {}

    def _add(self, name: str, layer: int, s: np.ndarray, y: np.ndarray, k: int) -> None:
        key = (name, layer)
        self.scores.setdefault(key, []).append(s)
        self.labels.setdefault(key, []).append(y)
        if y.any():
            self.precision.setdefault(key, []).append(precision_at(s, y, k))

    def add_residues(self, states: np.ndarray, masks: dict[str, np.ndarray]) -> None:
        n = states.shape[1]
        for name, models in self.probes.items():
            if name == "contact":
                continue
            y = masks.get(name, np.zeros(n, dtype=bool))
            for layer, m in enumerate(models):
                if m is not None:
                    self._add(name, layer, m.decision_function(states[layer]), y, n // 20)

    def add_contacts(self, states: np.ndarray, contacts: np.ndarray, considered: np.ndarray) -> None:
        if "contact" not in self.probes:
            return
        i, j = np.nonzero(np.triu(considered))
        y = contacts[i, j]
        for layer, m in enumerate(self.probes["contact"]):
            if m is not None:
                self._add(
                    "contact",
                    layer,
                    m.decision_function(pair_features(states[layer], i, j)),
                    y,
                    states.shape[1] // 5,
                )

    def table(self, data: ProbeData) -> pd.DataFrame:
        rows = []
        for (name, layer), s in sorted(self.scores.items()):
            y = np.concatenate(self.labels[(name, layer)])
            prec = self.precision.get((name, layer), [])
            rows.append(
                {
                    "probe": name,
                    "layer": layer,
                    "n_train_proteins": data.proteins.get(name, 0),
                    "n_train_examples": int(sum(len(v) for v in data.y[name])),
                    "n_test_proteins": len(s),
                    "n_test_positive": int(y.sum()),
                    "n_test_examples": len(y),
                    "auprc": float(average_precision_score(y, np.concatenate(s))) if y.any() else np.nan,
                    "auprc_baseline": float(y.mean()),
                    "precision": float(np.mean(prec)) if prec else np.nan,
                    "precision_at": "L/5" if name == "contact" else "L/20",
                }
            )
        return pd.DataFrame(rows)
