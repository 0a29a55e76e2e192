"""Pretrained ESM-2 checkpoints: found by hub name or local folder, read without running code.

A folder (or a hub repository) holds `config.json` and the weights as `model.safetensors`, as
`pytorch_model.bin` (most fine-tuned ESM-2 models published outside the hub carry only this),
or as either sharded with an `.index.json`. A `.bin` is a pickle: it is read only with
`torch.load(weights_only=True)`, which refuses any file that would run code to load.

The classifier head is kept when it has the task's labels and replaced otherwise; what was done
is returned as a sentence for the log and the report, with the weights' sha256 and the hub
commit for the provenance of every table.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from plmxai.tables import sha256_file

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
# tokenizer and config files fetched from the hub beside the weights
SIDE_FILES = ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
# Keys a checkpoint may carry that this model class rebuilds or does not use: buffers computed
# at construction (rotary frequencies, position ids), the absolute position table of older
# transformers releases (unused by rotary models), a masked-LM head.
_IGNORABLE = re.compile(
    r"(^|\.)(position_ids|inv_freq)$|^esm\.embeddings\.position_embeddings\.|^lm_head\.|^esm\.pooler\."
)
_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


@dataclass
class CheckpointInfo:
    """Where the weights came from and what was done to the head: provenance of every table."""

    name_or_path: str
    revision: str | None = None  # as asked for (branch, tag or commit)
    commit: str | None = None  # the hub commit the files came from
    weights: list[str] = field(default_factory=list)  # file names, in load order
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    head: str = ""  # kept / replaced, in words
    head_kept: bool = False
    checkpoint_labels: int | None = None  # outputs of the checkpoint's head (None: no head)
    ignored_keys: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _is_local(name_or_path: str) -> bool:
    p = Path(name_or_path).expanduser()
    return p.exists() or name_or_path.startswith(("/", "./", "../", "~", "."))


def resolve(name_or_path: str, revision: str | None = None) -> tuple[Path, CheckpointInfo]:
    """The local folder of a checkpoint (a hub repository downloaded into the hub's cache)."""
    info = CheckpointInfo(str(name_or_path), revision)
    if _is_local(str(name_or_path)):
        folder = Path(name_or_path).expanduser()
        if not folder.is_dir():
            raise CheckpointError(
                f"model folder {name_or_path} does not exist (config key 'model.name_or_path'); "
                "give an existing folder with config.json and the weights, or a Hugging Face "
                "hub name such as facebook/esm2_t6_8M_UR50D"
            )
        if revision:
            raise CheckpointError(
                f"config key 'model.revision' ({revision!r}) applies to hub names only, and "
                f"{name_or_path} is a local folder"
            )
        return folder, info
    return _download(name_or_path, revision, info)


def _download(repo: str, revision: str | None, info: CheckpointInfo) -> tuple[Path, CheckpointInfo]:
    import huggingface_hub
    from huggingface_hub.errors import RemoteEntryNotFoundError

    def fetch(name: str) -> Path | None:
        try:
            return Path(huggingface_hub.hf_hub_download(repo, name, revision=revision))
        except RemoteEntryNotFoundError:  # the repository has no such file
            return None
        except Exception as err:  # offline, unknown repository or revision, no access
            raise CheckpointError(
                f"hub repository {repo} (config key 'model.name_or_path'), revision "
                f"{revision or 'main'}: cannot fetch {name}: {type(err).__name__}: {err}. Without "
                "network access, give a local folder with config.json and the weights"
            ) from None

    folder = None
    for name in SIDE_FILES:
        path = fetch(name)
        if path is not None:
            folder = path.parent
    if folder is None:
        raise CheckpointError(f"hub repository {repo}: no config.json (revision {revision or 'main'})")
    # safetensors first: the .bin only where a repository has nothing else
    for names in (
        ("model.safetensors",),
        ("model.safetensors.index.json",),
        ("pytorch_model.bin",),
        ("pytorch_model.bin.index.json",),
    ):
        path = fetch(names[0])
        if path is None:
            continue
        if path.name.endswith(".index.json"):
            for shard in sorted(set(json.loads(path.read_text())["weight_map"].values())):
                fetch(shard)
        break
    # hub snapshots live in .../snapshots/<commit>/
    info.commit = folder.name if re.fullmatch(r"[0-9a-f]{40}", folder.name) else None
    return folder, info


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a folder, safetensors preferred; a clear error when there are none."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return [folder / name]
    for name in INDEX_FILES:
        index = folder / name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError) as err:
                raise CheckpointError(f"{index}: not a weight index ({err})") from None
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise CheckpointError(f"{index}: shard(s) {missing} missing from {folder}")
            return [folder / s for s in shards]
    present = sorted(p.name for p in folder.iterdir())
    raise CheckpointError(
        f"{folder}: no weights ({' or '.join(WEIGHT_FILES)}, or a sharded index); the folder has {present}"
    )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """One weight file, read without executing code."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    # weights are binary: text here is a git-lfs pointer, a web page, an error, a note
    if b"\x00" not in head:
        from plmxai.data.recognise import identify

        kind = identify(path)
        raise CheckpointError(
            f"{path}: {kind.what}, not weights"
            + (f": {kind.fix}" if kind.fix else ": download the weights again")
        )
    if path.name.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except SafetensorError as err:
            raise CheckpointError(
                f"{path}: not a readable safetensors file ({err}): cut off or damaged (an "
                "interrupted download?): download it again"
            ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: this weights file needs to run code to load, and plmxai reads .bin files "
            "only with torch.load(weights_only=True); nothing was loaded. Convert it to "
            "safetensors where you trust its source (load it there and save_pretrained with "
            f"safe_serialization=True). torch said: {str(err).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({str(err).splitlines()[0][:200]}): cut off "
            "or damaged (an interrupted download?): download it again"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = type(state).__name__
        if isinstance(state, dict):  # e.g. a training checkpoint: {"state_dict": ..., "epoch": ...}
            what += " with keys " + ", ".join(map(str, list(state)[:8]))
        raise CheckpointError(
            f"{path}: not a state dict of tensors (got a {what}); save the model's state_dict "
            "(or save_pretrained) rather than a training checkpoint"
        )
    return state


def _head_labels(state: dict) -> int | None:
    w = state.get("classifier.out_proj.weight")
    return None if w is None else int(w.shape[0])


def load_checkpoint(
    name_or_path: str, labels: list[str] | None, seed: int, revision: str | None = None, head: str = "auto"
):
    """(EsmForSequenceClassification, CheckpointInfo) from a hub name or folder.

    `labels` None: the model as given, its head and labels kept (a checkpoint without a head gets
    a random 2-output one, said so). Otherwise the head is kept when it has the task's number of
    outputs and its labels are generic (LABEL_i) or the task's own (reordered to the task's
    order); any other head is replaced by a new, seeded one. `head="new"` always replaces it.
    """
    from transformers import EsmConfig, EsmForSequenceClassification

    folder, info = resolve(name_or_path, revision)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: no config.json; a model folder needs config.json and the weights")
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{folder / 'config.json'}: not valid JSON ({err}): download the model's config.json again"
        ) from None
    if model_type != "esm":
        raise CheckpointError(
            f"{folder / 'config.json'}: model_type {model_type!r}, not 'esm': plmxai analyses ESM-2 "
            "models; give an ESM-2 checkpoint (e.g. facebook/esm2_t6_8M_UR50D, or a model "
            "fine-tuned from one)"
        )
    files = weight_files(folder)
    state: dict[str, torch.Tensor] = {}
    source: dict[str, Path] = {}  # key -> its file, to name it in errors
    for path in files:
        part = read_weights(path)
        state.update(part)
        source.update(dict.fromkeys(part, path))
        info.weights.append(path.name)
        info.sha256[path.name] = sha256_file(path)
    # checkpoints saved from the bare EsmModel carry no "esm." prefix
    if not any(k.startswith("esm.") for k in state):
        state = {
            (k if k.startswith(("classifier.", "lm_head.")) else f"esm.{k}"): v for k, v in state.items()
        }
    config = EsmConfig.from_pretrained(str(folder))
    n_head = _head_labels(state)
    info.checkpoint_labels = n_head
    names = [str(v) for _, v in sorted((config.id2label or {}).items())]
    if n_head and names and len(names) != n_head and not all(_GENERIC_LABEL.match(n) for n in names):
        raise CheckpointError(
            f"{folder / 'config.json'}: id2label names {len(names)} labels {names[:10]}, and the "
            f"classifier head in the weights has {n_head} outputs; the config and the weights "
            "do not belong together"
        )
    old_names = names if n_head and len(names) == n_head else None
    keep, order = False, None
    if labels is not None and head == "new":
        info.head = (
            f"classifier head for {n_head} labels replaced by a new one for {len(labels)} labels (model.head: new)"
            if n_head
            else f"no classifier head in the checkpoint: a new one for {len(labels)} labels"
        )
    elif labels is None:
        keep = n_head is not None
        labels = old_names if keep and old_names else [f"LABEL_{i}" for i in range(n_head or 2)]
        info.head = (
            f"classifier head for {n_head} labels kept (the model as given)"
            if keep
            else "no classifier head in the checkpoint: a new, random one for 2 labels "
            "(attributions of its output mean nothing)"
        )
    elif n_head is None:
        info.head = f"no classifier head in the checkpoint: a new one for {len(labels)} labels"
    elif n_head != len(labels):
        info.head = f"classifier head for {n_head} labels replaced by a new one for {len(labels)} labels"
    elif old_names is None or all(_GENERIC_LABEL.match(n) for n in old_names):
        # unnamed labels: the same count is all that can be checked; a head from another task
        # with as many classes would pass, so say it (model.head: new replaces it)
        keep = True
        info.head = (
            f"classifier head for {n_head} labels kept (its labels are unnamed: taken in "
            f"the task's order {labels}; model.head: new replaces it)"
        )
    elif set(old_names) == {str(x) for x in labels}:
        keep, order = True, [old_names.index(str(x)) for x in labels]
        info.head = f"classifier head for {n_head} labels kept (its labels are the task's)"
    else:
        info.head = (
            f"classifier head for {n_head} labels {old_names} replaced by a new one for "
            f"{len(labels)} labels {list(labels)} (other labels)"
        )
    info.head_kept = keep
    id2label = {i: str(x) for i, x in enumerate(labels)}
    config.num_labels = len(labels)
    config.id2label, config.label2id = id2label, {v: k for k, v in id2label.items()}
    torch.manual_seed(seed)
    model = EsmForSequenceClassification(config)
    if keep and order is not None:
        for k in ("classifier.out_proj.weight", "classifier.out_proj.bias"):
            state[k] = state[k][order]
    if not keep:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    wanted = model.state_dict()
    # LayerNorm parameters under their legacy names (gamma, beta), which transformers 5 itself
    # writes in save_pretrained and renames on loading
    legacy = {".gamma": ".weight", ".beta": ".bias"}
    state = {
        next(
            (k[: -len(a)] + b for a, b in legacy.items() if k.endswith(a) and k[: -len(a)] + b in wanted), k
        ): v
        for k, v in state.items()
    }
    # Older checkpoints keep the rotary frequencies per layer, computed in float32 (6.6e-5 off
    # the exact values for ESM-2); the model was trained with those, so they are used, as
    # transformers' own loader does, rather than the freshly computed ones.
    shared = "esm.rotary_embeddings.inv_freq"
    per_layer = [v for k, v in state.items() if k.endswith("rotary_embeddings.inv_freq") and k != shared]
    if shared in wanted and shared not in state and per_layer:
        if any(not torch.equal(v, per_layer[0]) for v in per_layer):
            raise CheckpointError(f"{files[0]}: the layers' rotary frequencies differ")
        state[shared] = per_layer[0]
    ignored = [k for k in state if k not in wanted and _IGNORABLE.search(k)]
    unknown = [k for k in state if k not in wanted and k not in ignored]
    if unknown:
        raise CheckpointError(
            f"{folder}: {len(unknown)} weights this ESM model does not have (e.g. {unknown[:3]}); "
            "is it an ESM-2 checkpoint (model_type esm)?"
        )
    for k, v in state.items():
        if k in wanted and tuple(v.shape) != tuple(wanted[k].shape):
            raise CheckpointError(
                f"{source.get(k, files[0])}: weight {k} has shape {tuple(v.shape)}, config.json implies "
                f"{tuple(wanted[k].shape)}: the config and the weights disagree"
            )
    state = {k: v for k, v in state.items() if k not in ignored}
    missing, _ = model.load_state_dict(state, strict=False)
    # the head is new by design; buffers are rebuilt at construction
    missing = [k for k in missing if not k.startswith("classifier.") and not _IGNORABLE.search(k)]
    if missing:
        raise CheckpointError(
            f"{folder}: the checkpoint lacks {len(missing)} weights of the model (e.g. "
            f"{missing[:3]}); config.json and the weights do not describe the same model"
        )
    info.ignored_keys = len(ignored)
    log.info(
        "loaded %s%s: %s (sha256 %s); %s",
        name_or_path,
        f" at commit {info.commit}" if info.commit else "",
        ", ".join(info.weights),
        ", ".join(v[:12] for v in info.sha256.values()),
        info.head,
    )
    return model.eval(), info


def model_provenance(model) -> dict:
    """The checkpoint a model came from (weights' sha256, hub commit, what was done to the
    head), for the provenance of every table made with it; empty for random weights."""
    info = getattr(model, "plmxai_checkpoint", None)
    if not info:
        return {}
    return {
        "checkpoint": info["name_or_path"],
        "checkpoint_commit": info.get("commit"),
        "checkpoint_sha256": info["sha256"],
        "checkpoint_head": info["head"],
    }
