"""Experts: single-modality classifiers with one interface (see `base.Expert`).

Kinds are imported lazily so that a bundle of tag rules alone never imports torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

from rating_models.experts.base import EXPERT_FILE, Expert, ExpertError, ExpertOutput

EXPERT_KINDS = {
    "tag_rules": "rating_models.experts.tag_rules:TagRulesExpert",
    "lstm": "rating_models.experts.lstm:LSTMExpert",
    "transformer": "rating_models.experts.transformer:TransformerExpert",
    "image": "rating_models.experts.image:ImageExpert",
    "ngram": "rating_models.experts.ngram:NgramExpert",
}


def expert_class(kind: str) -> type[Expert]:
    if kind not in EXPERT_KINDS:
        raise ExpertError(f"unknown expert kind {kind!r}; known kinds: {sorted(EXPERT_KINDS)}")
    module, _, attribute = EXPERT_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), attribute)


def build_expert(name: str, kind: str, config: dict[str, Any] | None = None) -> Expert:
    """A new, untrained expert of `kind` with settings from `config`."""
    return expert_class(kind).from_config(name, config)


def load_expert(
    directory: str | Path, *, device: str | None = None, runtime: str | None = None
) -> Expert:
    """Load an expert saved with `Expert.save`, on `device` ("cpu", "cuda", "auto") if given.

    `runtime` picks how a transformer expert's encoder runs at inference ("auto", "torch",
    "torch-fp16", "torch-bf16", "onnx", "onnx-int8"); experts without one ignore it.
    """
    directory = Path(directory)
    try:
        record = json.loads((directory / EXPERT_FILE).read_text())
        kind, name, config = record["kind"], record["name"], record["config"]
    except FileNotFoundError:
        raise ExpertError(f"{directory}: no {EXPERT_FILE}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ExpertError(f"{directory / EXPERT_FILE}: unreadable ({error})") from None
    cls = expert_class(kind)
    settings = {f.name for f in dataclasses.fields(cls.Config)}
    overrides = {"device": device, "runtime": runtime}
    config = {**config, **{k: v for k, v in overrides.items() if v is not None and k in settings}}
    try:
        return cls.restore(name, config, directory)
    except ExpertError:
        raise
    except Exception as error:  # a truncated weights file raises whatever its reader raises
        raise ExpertError(f"{directory}: cannot load expert {name!r} ({error})") from error


__all__ = [
    "EXPERT_KINDS",
    "Expert",
    "ExpertError",
    "ExpertOutput",
    "build_expert",
    "expert_class",
    "load_expert",
]
