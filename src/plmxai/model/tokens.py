"""ESM tokenisation with residue-to-token offsets.

A protein of L residues becomes `<cls> a1 .. aL <eos>`: residue i (1-based, as in UniProt) is
token i. The tokenizer comes from the model folder or hub name when it has one, else from
ESM-2's fixed 33-token alphabet (for models built from a config with random weights).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import EsmTokenizer

from plmxai.data.lengths import SequenceTooLongError

# ESM-2's alphabet, in vocabulary order (fair-esm `Alphabet.from_architecture("ESM-1b")`).
ESM2_ALPHABET = (
    ["<cls>", "<pad>", "<eos>", "<unk>"] + list("LAGVSERTIDPKQNFYMHWCXBUZO.-") + ["<null_1>", "<mask>"]
)
FIRST_RESIDUE_TOKEN = 1


def esm2_tokenizer(save_dir: str | Path | None = None) -> EsmTokenizer:
    """The ESM-2 tokenizer built from the alphabet, without network access."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_text("\n".join(ESM2_ALPHABET) + "\n")
        tok = EsmTokenizer(vocab_file=str(vocab))
        if save_dir is not None:
            tok.save_pretrained(save_dir)
    return tok


def load_tokenizer(name_or_path: str | None, revision: str | None = None) -> EsmTokenizer:
    """Tokenizer of a model folder or hub name (at `revision`, as the weights); the built-in
    ESM-2 alphabet when None or when the folder has no vocabulary."""
    if name_or_path is None:
        return esm2_tokenizer()
    p = Path(name_or_path)
    if p.is_dir():
        vocab = p / "vocab.txt"
        if not vocab.exists():
            return esm2_tokenizer()
        tokens = set(vocab.read_text(errors="replace").split())
        if not {"<cls>", "<eos>", "A", "M"} <= tokens:
            from plmxai.data.recognise import identify

            kind = identify(vocab)
            raise ValueError(
                f"{vocab}: not an ESM vocabulary (no <cls>, <eos> or amino-acid tokens; the file is "
                f"{kind.what}): {kind.fix or 'download it again'}, or delete it to use ESM-2's own"
            )
        return EsmTokenizer.from_pretrained(str(p))
    return EsmTokenizer.from_pretrained(str(name_or_path), revision=revision)


def tokenize_proteins(
    proteins: pd.DataFrame, tokenizer: EsmTokenizer, max_residues: int = 1022, overlong: str = "skip"
) -> tuple[pd.DataFrame, dict]:
    """Token ids for each protein; returns (tokens table, counts for the log and report).

    overlong: "skip" drops proteins longer than `max_residues` (counted), "error" stops.
    """
    rows, skipped = [], []
    for rec in proteins.itertuples(index=False):
        seq = rec.sequence
        if len(seq) > max_residues:
            if overlong == "error":
                raise SequenceTooLongError(
                    "proteins",
                    None,
                    f"{rec.accession}: {len(seq)} residues > tokenize.max_residues={max_residues}: "
                    "lower data.max_length to this, or set data.overlong: skip or crop",
                )
            skipped.append(rec.accession)
            continue
        ids = tokenizer(seq, add_special_tokens=True)["input_ids"]
        if len(ids) != len(seq) + 2:
            raise ValueError(f"{rec.accession}: tokenizer gave {len(ids)} tokens for {len(seq)} residues")
        if tokenizer.unk_token_id in ids[1:-1]:
            i = ids[1:-1].index(tokenizer.unk_token_id)
            raise ValueError(f"{rec.accession}: residue {i + 1} ({seq[i]!r}) is not in the vocabulary")
        rows.append(
            {
                "accession": rec.accession,
                "input_ids": np.asarray(ids, dtype=np.int16),
                "n_residues": len(seq),
                "first_residue_token": FIRST_RESIDUE_TOKEN,
                "label": rec.label,
                "label_id": rec.label_id,
                "split": rec.split,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=["accession", "input_ids", "n_residues", "first_residue_token", "label", "label_id", "split"],
    )
    return table, {
        "tokenized": len(rows),
        "skipped_overlong": len(skipped),
        "skipped_accessions": skipped[:50],
    }
