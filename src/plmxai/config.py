"""The workflow config: JSON-Schema validation with defaults and messages that name the key."""

from __future__ import annotations

import copy
import difflib
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    pass


def _with_defaults(validator_cls):
    validate_props = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    # an integer is an int: JSON Schema counts 300.0 as one, and a float index or length then
    # fails deep in a stage, far from the key that caused it
    integers = validator_cls.TYPE_CHECKER.redefine(
        "integer", lambda checker, x: isinstance(x, int) and not isinstance(x, bool)
    )
    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults}, type_checker=integers)


def load_schema(path: str | Path | None = None) -> dict:
    """The schema shipped in the package (config/schema.yaml links to it)."""
    if path is None:
        return yaml.safe_load(resources.files("plmxai").joinpath("schema.yaml").read_text())
    return yaml.safe_load(Path(path).read_text())


# old key -> new key: read as the new one, so configs written before the rename still run
ALIASES = {
    "neurons": "knowledge.activation",
    "training": "model.training",
    "statistics": "attribution.statistics",
    "faithfulness": "attribution.faithfulness",
}


# keys no longer read -> why; dropped with a warning, so configs written before still run
RETIRED = {"attribution.internal_batch_size": "integrations are chunked to fit the top-level memory_gb now"}


def drop_retired(config: dict) -> list[str]:
    """Remove keys no longer read (RETIRED), in place; the notes say which and why."""
    notes = []
    for key, why in RETIRED.items():
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node.pop(leaf)
            notes.append(f"config key '{key}' is no longer read ({why}): remove it")
    return notes


def apply_aliases(config: dict) -> list[str]:
    """Move keys given by their old names (ALIASES) to their new place, in place; the notes
    say what was moved. Both names at once is an error: which one was meant is unknown."""
    notes = []
    for old, new in ALIASES.items():
        if old not in config:
            continue
        *parents, leaf = new.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key '{p}' must be a mapping, got {node!r}")
        if leaf in node:
            raise ConfigError(
                f"config keys '{old}' and '{new}' are the same section (the first is its old name): keep '{new}'"
            )
        node[leaf] = config.pop(old)
        notes.append(f"config section '{old}' read as '{new}' (its new name)")
    return notes


def validate_config(config: dict, schema: dict | str | Path | None = None) -> dict:
    """Fill defaults in place and validate; raise ConfigError naming the first bad key.
    Sections under their old names (ALIASES) are moved to their new place first."""
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    notes = apply_aliases(config)
    for note in notes + drop_retired(config):
        logging.getLogger("plmxai").warning(note)
    moved = {new: old for old, new in ALIASES.items() if any(f"'{old}' read as" in n for n in notes)}
    cls = _with_defaults(jsonschema.Draft202012Validator)
    errors = sorted(cls(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors:
            key = ".".join(str(p) for p in e.absolute_path) or "<top level>"
            label = f"'{key}'"
            for new, old in moved.items():  # name the key as the user wrote it too
                if key == new or key.startswith(new + "."):
                    label += f" (given as '{old}{key[len(new) :]}')"
            desc = e.schema.get("description") if isinstance(e.schema, dict) else None
            if e.validator == "additionalProperties":
                desc = None
            message = _explain(e)
            lines.append(f"config key {label}: {message}" + (f" ({desc})" if desc else ""))
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    _check_consistency(config)
    return config


def _explain(e) -> str:
    """A schema error's message, with what to write instead where that can be told: a whole
    number for 300.0, the key or value closest to a misspelt one."""
    message = e.message
    if e.validator == "type" and isinstance(e.instance, float) and "integer" in str(e.validator_value):
        message += f": write a whole number, e.g. {int(e.instance) if e.instance.is_integer() else round(e.instance)}"
    elif e.validator == "additionalProperties" and isinstance(e.instance, dict):
        known = list(e.schema.get("properties", {}))
        for extra in sorted(set(e.instance) - set(known)):
            near = difflib.get_close_matches(str(extra), known, n=1)
            message += (
                f"; for '{extra}' did you mean '{near[0]}'?"
                if near
                else f"; '{extra}' is not a key here (keys: {', '.join(known)})"
            )
    elif e.validator == "enum" and isinstance(e.instance, str):
        allowed = {str(v).lower(): str(v) for v in e.validator_value}
        near = difflib.get_close_matches(e.instance.lower(), list(allowed), n=1, cutoff=0.6)
        near = near or [v for v in allowed if e.instance.lower() in v][:1]
        if near:
            message += f": did you mean '{allowed[near[0]]}'?"
    return message


def _check_consistency(cfg: dict[str, Any]) -> None:
    split = cfg["data"]["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1) > 1e-9:
        raise ConfigError(f"config keys 'data.split.train/val/test' must sum to 1, got {total:g}")
    if split["train"] <= 0 or split["test"] <= 0:
        raise ConfigError("config keys 'data.split.train' and 'data.split.test' must be > 0")
    if cfg["data"]["source"] == "uniprot_tsv" and not cfg["data"]["tsv"]:
        raise ConfigError("config key 'data.tsv' is required when data.source is uniprot_tsv")
    _check_source(cfg)
    if cfg["data"]["label"] in ("go", "keyword") and not cfg["data"]["positive"]:
        raise ConfigError(f"config key 'data.positive' is required when data.label is {cfg['data']['label']}")
    syn = cfg["data"]["synthetic"]
    if syn["min_length"] > syn["max_length"]:
        raise ConfigError(
            f"config key 'data.synthetic.min_length' ({syn['min_length']}) exceeds "
            f"'data.synthetic.max_length' ({syn['max_length']})"
        )
    m = cfg["model"]
    if m["source"] == "pretrained" and not m["name_or_path"]:
        raise ConfigError("config key 'model.name_or_path' is required when model.source is pretrained")
    a = m["architecture"]
    if m["source"] == "random" and not m["config_dir"] and a["hidden_size"] % a["num_heads"]:
        raise ConfigError(
            f"config key 'model.architecture.num_heads' ({a['num_heads']}) must divide hidden_size ({a['hidden_size']})"
        )
    pre = m["pretrain"]
    if pre["seed"] is None:
        pre["seed"] = cfg["seed"] + 1
    if pre["enabled"]:
        if m["source"] != "random" or cfg["data"]["source"] != "synthetic":
            raise ConfigError(
                "config key 'model.pretrain.enabled' needs model.source random and data.source "
                f"synthetic (got {m['source']} and {cfg['data']['source']}): a pretrained model "
                "is already pretrained"
            )
        if pre["seed"] == cfg["seed"]:
            raise ConfigError(
                f"config key 'model.pretrain.seed' ({pre['seed']}) must differ from 'seed': the "
                "pretraining task would be the fine-tuning task"
            )


# the labels each input format can carry; `none` is an unlabelled set
SOURCE_LABELS = {
    "synthetic": ("ec",),
    "uniprot_rest": ("ec", "go", "keyword"),
    "uniprot_tsv": ("ec", "go", "keyword"),
    "fasta": ("none",),
    "residue_fasta": ("none", "transmembrane"),
    "sites_jsonl": ("none",),
    "structures": ("none",),
}


def _check_source(cfg: dict[str, Any]) -> None:
    d = cfg["data"]
    source, label = d["source"], d["label"]
    if source in ("fasta", "residue_fasta", "sites_jsonl", "structures") and not d["path"]:
        raise ConfigError(
            f"config key 'data.path' is required when data.source is {source}: the input "
            f"{'folder' if source == 'structures' else 'file'}"
        )
    if label not in SOURCE_LABELS[source]:
        raise ConfigError(
            f"config key 'data.label': {label!r} is not a label that data.source {source} "
            f"carries; use one of {list(SOURCE_LABELS[source])}"
            + (
                " (an unlabelled set: set data.label: none and variants: [given])"
                if "none" in SOURCE_LABELS[source]
                else ""
            )
        )
    if label == "none":
        if cfg["variants"] != ["given"]:
            raise ConfigError(
                f"config key 'variants': {cfg['variants']} need a task, and data.label is none "
                "(an unlabelled set); use variants: [given], which analyses the model as loaded"
            )
        a = cfg["attribution"]
        if a["enabled"] and (a["target"] == "true" or a["only_correct"]):
            raise ConfigError(
                "config key 'attribution.target': an unlabelled set has no true class; set "
                "attribution.target: predicted (and attribution.only_correct: false)"
            )
    if "given" in cfg["variants"] and cfg["model"]["source"] != "pretrained":
        raise ConfigError(
            "config key 'variants': given analyses a loaded model as it is, and model.source is "
            f"{cfg['model']['source']} (random weights); use model.source: pretrained"
        )


def input_problem(cfg: dict[str, Any]) -> str | None:
    """What is missing of a validated config's inputs (the data file or folder, a local model
    folder), named by its config key; None when all are there. The workflow checks it when a run
    starts; validate_config does not, as a notebook may build a config before its files exist."""
    d = cfg["data"]
    key = (
        None
        if d["source"] in ("synthetic", "uniprot_rest")
        else ("tsv" if d["source"] == "uniprot_tsv" else "path")
    )
    if key and not Path(d[key]).exists():
        return (
            f"config key 'data.{key}': no such file or folder {d[key]!r} (a relative path is read "
            f"from the folder the run starts in, {Path.cwd()})"
        )
    m = cfg["model"]
    name = m.get("name_or_path") or ""
    if (
        m["source"] == "pretrained"
        and name.startswith(("/", "./", "../", "~"))
        and not Path(name).expanduser().is_dir()
    ):
        return (
            f"config key 'model.name_or_path': no model folder {name!r}; give a folder with "
            "config.json and the weights, or a Hugging Face hub name such as facebook/esm2_t6_8M_UR50D"
        )
    return None


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    cfg = yaml.safe_load(Path(path).read_text()) or {}
    if overrides:
        _merge(cfg, overrides)
    return validate_config(cfg)


def _merge(base: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def tokenizer_source(model: dict) -> str | None:
    """Where the tokenizer of `model` (the config's model section) comes from; None: ESM-2's.

    Here, not in modeling, so that the workflow can read it without importing torch: every
    cluster job parses the workflow twice."""
    if model.get("source") == "pretrained":
        return model["name_or_path"]
    return model.get("config_dir") or None


def options(section: str, values: dict | None = None) -> dict:
    """One config section (a dotted name, e.g. "attribution.statistics") with the schema's
    defaults filled in and `values` validated: the options of a notebook call, named and
    checked as in a config file. ConfigError names the key as it would be in the config."""
    schema = load_schema()
    sub = schema
    for part in section.split("."):
        sub = sub["properties"][part]
    instance = copy.deepcopy(values or {})
    cls = _with_defaults(jsonschema.Draft202012Validator)
    errors = sorted(cls(sub).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors:
            key = ".".join([section, *map(str, e.absolute_path)])
            lines.append(f"option '{key}': {_explain(e)}")
        raise ConfigError("invalid options:\n  " + "\n  ".join(lines))
    return instance


def _type_text(spec: dict) -> str:
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" for v in spec["enum"])
    t = spec.get("type", "")
    if isinstance(t, list):
        t = " or ".join(t)
    bounds = []
    for key, sym in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in spec:
            bounds.append(f"{sym} {spec[key]}")
    if t == "array" and "items" in spec:
        t = f"list of {_type_text(spec['items'])}"
    return t + (f" ({', '.join(bounds)})" if bounds else "")


def schema_markdown(schema: dict | None = None) -> str:
    """config/README.md: every option of the schema, section by section (a test keeps the file
    equal to this)."""
    schema = schema or load_schema()
    out = [
        "# Configuration",
        "",
        "Generated from `config/schema.yaml` by `python -m plmxai.config > config/README.md`",
        "(`tests/test_config.py` checks that it is current). Every key is optional; a wrong key",
        "or value stops the run at start with a message naming it. Old section names are still",
        "read: " + ", ".join(f"`{o}` as `{n}`" for o, n in ALIASES.items()) + ".",
        "Keys no longer read are dropped with a warning: "
        + ", ".join(f"`{k}` ({why})" for k, why in RETIRED.items())
        + ".",
        "",
    ]

    def rows(props: dict, prefix: str) -> list[str]:
        lines, nested = [], []
        for name, spec in props.items():
            if spec.get("type") == "object" and "properties" in spec:
                nested.append((name, spec))
                continue
            default = spec.get("default", "")
            default = f"`{json.dumps(default)}`" if "default" in spec else ""
            desc = " ".join(str(spec.get("description", "")).split()).replace("|", "\\|")
            lines.append(f"| `{prefix}{name}` | {_type_text(spec)} | {default} | {desc} |")
        for name, spec in nested:
            lines += [
                f"| `{prefix}{name}` | section | | {' '.join(str(spec.get('description', '')).split())} |"
            ]
            lines += rows(spec["properties"], f"{prefix}{name}.")
        return lines

    for section, spec in schema["properties"].items():
        out.append(f"## `{section}`")
        out.append("")
        if spec.get("description"):
            out += [" ".join(str(spec["description"]).split()), ""]
        if spec.get("type") == "object" and "properties" in spec:
            out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
            out += rows(spec["properties"], f"{section}.")
        else:
            default = f" Default `{json.dumps(spec['default'])}`." if "default" in spec else ""
            out.append(f"Type {_type_text(spec)}.{default}")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(schema_markdown(), end="")
