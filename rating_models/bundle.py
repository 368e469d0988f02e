"""The bundle: experts, voter membership and MLP in one versioned directory.

```
manifest.json        versions, experts (kind, backbone, feature size), voter, fingerprints,
                     test metrics, and a sha256 of every file
experts/<name>/      one directory per expert (expert.json + its state)
mlp/                 mlp.json + model.safetensors
```

A bundle loads in one call (`Bundle.load`) and predicts a batch in one call (`predict`).
Loading refuses a missing, corrupt, truncated or incompatible bundle with a message that says
which, before any of it is used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rating_models import __version__
from rating_models.calibration import CALIBRATION_FILE, CalibrationSet
from rating_models.combine.mlp import MultimodalMLP
from rating_models.combine.voter import check_membership, panel, vote
from rating_models.examples import Example
from rating_models.experts import Expert, ExpertError, ExpertOutput, load_expert
from rating_models.ratings import Rating
from rating_models.risk import BoundedRule, explicit_alarms
from rating_models.stacking import OUT_OF_FOLD_FILE, OutOfFold

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SUGGESTION_POLICIES = ("max", "voter", "mlp", "bounded")
VOTER_RULE = (
    "members ranked strongest first; on each item, when an even number of them spoke, the "
    "weakest of those sits out; a tie goes to the more restrictive rating"
)


def expert_alarms(outputs: dict[str, ExpertOutput]) -> np.ndarray:
    """(N,) bool: some expert rates the item X or XXX."""
    return explicit_alarms(np.stack([out.ratings for out in outputs.values()], axis=1))


class BundleError(RuntimeError):
    """A bundle that cannot be loaded or saved."""


@dataclass
class BundlePrediction:
    """Everything a bundle says about a batch; every output is kept, not only the suggestion.

    Ratings are class indices (PG 0 ... XXX 4); -1 marks an abstention (an expert without its
    modality, or the voter when every member abstained).
    """

    experts: dict[str, ExpertOutput]
    voter: np.ndarray  # (N,)
    mlp_probs: np.ndarray  # (N, 5)
    mlp: np.ndarray  # (N,)
    suggested: np.ndarray  # (N,)
    flagged: np.ndarray  # (N,) bool: a moderator must look whatever the rating
    voters: np.ndarray  # (N,) int: how many experts voted (odd, or 0 when all abstained)
    mlp_used: np.ndarray  # (N, experts) bool: whose features the MLP read, in expert order
    # (N,) bool: the bounded rule publishes the suggestion without a moderator; None: the
    # bundle has no such rule (another suggestion policy).
    auto_publish: np.ndarray | None = None

    def mlp_experts(self, row: int) -> list[str]:
        """The experts whose features the MLP read for one item."""
        return [name for name, used in zip(self.experts, self.mlp_used[row], strict=True) if used]

    def ratings(self, model: str) -> np.ndarray:
        """Class indices of one expert, or of "voter", "mlp" or "suggested"."""
        if model in {"voter", "mlp", "suggested"}:
            return getattr(self, model)
        return self.experts[model].ratings

    def take(self, rows: Sequence[int] | np.ndarray) -> BundlePrediction:
        """The prediction for a subset of the batch's rows."""
        index = np.asarray(rows, dtype=np.int64)
        return BundlePrediction(
            {name: out.take(index) for name, out in self.experts.items()},
            self.voter[index],
            self.mlp_probs[index],
            self.mlp[index],
            self.suggested[index],
            self.flagged[index],
            self.voters[index],
            self.mlp_used[index],
            None if self.auto_publish is None else self.auto_publish[index],
        )

    def publishes(self, row: int) -> bool | None:
        """Whether the bounded rule publishes one item unreviewed; None: the bundle has none."""
        return None if self.auto_publish is None else bool(self.auto_publish[row])

    def explicit_alarms(self) -> np.ndarray:
        """(N,) bool: some expert rates the item X or XXX (the publishing guard)."""
        return expert_alarms(self.experts)

    def suggested_rating(self, row: int) -> Rating:
        return Rating.from_index(int(self.suggested[row]))


@dataclass
class Bundle:
    experts: dict[str, Expert]
    voter: list[str]
    mlp: MultimodalMLP
    suggested: str = "max"
    manifest: dict[str, Any] = field(default_factory=dict)
    # The experts' out-of-fold outputs on the training items, saved with the bundle for MLP
    # retrains (`rating_models.stacking`); not loaded with it: read them with
    # `stacking.read_out_of_fold(directory)`.
    out_of_fold: OutOfFold | None = None
    # "bounded": the calibrated rule (in the manifest's `suggestion`), and the calibration items
    # it came from, saved for recalibrating at another α; not loaded with the bundle.
    rule: BoundedRule | None = None
    calibration: CalibrationSet | None = None

    def __post_init__(self) -> None:
        check_membership(self.voter, list(self.experts))
        if self.suggested not in SUGGESTION_POLICIES:
            raise BundleError(
                f"suggested rating policy {self.suggested!r}: expected one of {SUGGESTION_POLICIES}"
            )
        if self.suggested == "bounded" and self.rule is None:
            raise BundleError("the bounded suggestion needs its calibrated rule")
        slots = [slot.name for slot in self.mlp.slots]
        if slots != list(self.experts):
            raise BundleError(
                f"the MLP reads experts {slots} but the bundle has {list(self.experts)}"
            )

    @property
    def version(self) -> str:
        return self.manifest.get("version", "unsaved")

    # -- prediction ------------------------------------------------------------------------

    def predict(
        self, examples: Sequence[Example], *, batch_size: int = 512, progress: bool = False
    ) -> BundlePrediction:
        """Rate a batch with every expert, the voter and the MLP."""
        parts = []
        bar = tqdm(total=len(examples), desc="predict", unit="item", disable=not progress)
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            parts.append(self._predict_chunk(chunk))
            bar.update(len(chunk))
        bar.close()
        if not parts:
            parts.append(self._predict_chunk([]))
        return _concatenate(parts)

    def predict_from_outputs(
        self, examples: Sequence[Example], outputs: dict[str, ExpertOutput]
    ) -> BundlePrediction:
        """What `predict` says, from every expert's output computed earlier (stored features).

        The experts run again only on the examples with a negative prompt, rated without it:
        the MLP's guard needs that rating, which is not stored.
        """
        rows = np.array(
            [i for i, e in enumerate(examples) if e.negative_prompt.strip()], dtype=np.int64
        )
        stripped_outputs: dict[str, ExpertOutput | None] = {}
        stripped_rows: dict[str, np.ndarray] = {}
        for name, expert in self.experts.items():
            if expert.reads_negative_prompt and len(rows):
                stripped = [dataclasses.replace(examples[i], negative_prompt="") for i in rows]
                stripped_outputs[name], stripped_rows[name] = expert.predict(stripped), rows
            else:
                stripped_outputs[name], stripped_rows[name] = None, np.zeros(0, dtype=np.int64)
        return self._combine(examples, outputs, stripped_outputs, stripped_rows)

    def _predict_chunk(self, examples: Sequence[Example]) -> BundlePrediction:
        outputs, stripped_outputs, stripped_rows = {}, {}, {}
        for name, expert in self.experts.items():
            out, stripped, rows = expert.predict_guarded(examples)
            outputs[name], stripped_outputs[name], stripped_rows[name] = out, stripped, rows
        return self._combine(examples, outputs, stripped_outputs, stripped_rows)

    def _combine(
        self,
        examples: Sequence[Example],
        outputs: dict[str, ExpertOutput],
        stripped_outputs: dict[str, ExpertOutput | None],
        stripped_rows: dict[str, np.ndarray],
    ) -> BundlePrediction:
        """The voter, the MLP and the suggestion from the experts' (guarded) outputs."""
        ballots = np.stack([outputs[n].ratings for n in self.voter], axis=1)  # (N, members)
        votes = vote(ballots)
        voters = panel(ballots).sum(axis=1)
        mlp_probs = self.mlp.predict_proba(self.mlp.inputs(outputs))
        mlp_probs = self._guard_mlp(examples, outputs, stripped_outputs, stripped_rows, mlp_probs)
        mlp = mlp_probs.argmax(axis=1) if len(mlp_probs) else np.zeros(0, dtype=np.int64)
        if self.suggested == "voter":
            suggested = np.where(votes >= 0, votes, mlp)
        elif self.suggested == "mlp":
            suggested = mlp
        elif self.suggested == "bounded":
            suggested = self.rule.levels(mlp_probs, votes)
        else:
            suggested = np.maximum(votes, mlp)
        flagged = np.zeros(len(examples), dtype=bool)
        for out in outputs.values():
            flagged |= out.flagged
        used = self.mlp.used(outputs)
        published = None
        if self.suggested == "bounded":  # never an item a moderator must see
            published = self.rule.publishable(mlp_probs, suggested, expert_alarms(outputs))
            published &= ~flagged
        return BundlePrediction(
            outputs, votes, mlp_probs, mlp, suggested, flagged, voters, used, published
        )

    def _guard_mlp(
        self,
        examples: Sequence[Example],
        outputs: dict[str, ExpertOutput],
        stripped_outputs: dict[str, ExpertOutput | None],
        stripped_rows: dict[str, np.ndarray],
        mlp_probs: np.ndarray,
    ) -> np.ndarray:
        """The MLP too must never rate an item higher because of its negative prompt."""
        rows = np.array([i for i, e in enumerate(examples) if e.negative_prompt.strip()], dtype=int)
        if len(rows) == 0:
            return mlp_probs
        without = {name: out.take(rows) for name, out in outputs.items()}
        for name, stripped in stripped_outputs.items():
            if stripped is not None:
                position = {row: j for j, row in enumerate(stripped_rows[name])}
                picks = [position[row] for row in rows]
                without[name] = stripped.take(picks)
        alternative = self.mlp.predict_proba(self.mlp.inputs(without))
        raised = mlp_probs[rows].argmax(axis=1) > alternative.argmax(axis=1)
        mlp_probs[rows[raised]] = alternative[raised]
        return mlp_probs

    # -- persistence -----------------------------------------------------------------------

    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        """Write the bundle atomically: a crash leaves the old directory or the new, never half."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        try:
            for name, expert in self.experts.items():
                expert.save(staging / "experts" / name)
            self.mlp.save(staging / "mlp")
            if self.out_of_fold is not None:
                self.out_of_fold.save(staging / OUT_OF_FOLD_FILE)
            if self.calibration is not None:
                self.calibration.save(staging / CALIBRATION_FILE)
            manifest = {
                "format_version": FORMAT_VERSION,
                "package_version": __version__,
                "version": self.manifest.get("version") or new_version(),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "experts": [
                    {**expert.describe(), "path": f"experts/{name}"}
                    for name, expert in self.experts.items()
                ],
                "voter": {"members": self.voter, "rule": VOTER_RULE},
                "mlp": {"path": "mlp", "input_size": self.mlp.input_size},
                "suggested": self.suggested,
                "suggestion": None if self.rule is None else self.rule.to_manifest(),
                **{k: v for k, v in self.manifest.items() if k not in _OWN_KEYS},
                **(extra or {}),
            }
            manifest["files"] = _file_digests(staging)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
            if directory.exists():
                retired = directory.with_name(f".{directory.name}-old-{os.getpid()}")
                directory.rename(retired)
                staging.rename(directory)
                shutil.rmtree(retired)
            else:
                staging.rename(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.manifest = manifest
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, *, device: str | None = None, runtime: str | None = None
    ) -> Bundle:
        """Load and verify a bundle; `device` ("cpu", "cuda", "auto") overrides where its
        experts and MLP run, so one bundle serves CPU and GPU workers, and `runtime` how its
        transformer experts run their encoders (see `rating_models.experts.runtime`)."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        verify_files(directory, manifest)
        experts = {}
        for record in manifest["experts"]:
            path = _inside(directory, record.get("path", ""))
            try:
                expert = load_expert(path, device=device, runtime=runtime)
            except ExpertError as error:
                raise BundleError(f"bundle {directory}: {error}") from None
            if expert.feature_size != record.get("feature_size"):
                raise BundleError(
                    f"bundle {directory}: expert {expert.name!r} gives {expert.feature_size} "
                    f"features, the manifest says {record.get('feature_size')}"
                )
            experts[expert.name] = expert
        try:
            mlp = MultimodalMLP.load(_inside(directory, manifest["mlp"]["path"]), device=device)
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise BundleError(f"bundle {directory}: cannot load the MLP ({error})") from None
        try:
            suggestion = manifest.get("suggestion")
            rule = None if not suggestion else BoundedRule.from_manifest(suggestion)
            return cls(
                experts,
                manifest["voter"]["members"],
                mlp,
                manifest["suggested"],
                manifest,
                rule=rule,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"bundle {directory}: {error}") from None


_OWN_KEYS = {
    "suggestion",
    "format_version",
    "package_version",
    "created",
    "experts",
    "voter",
    "mlp",
    "suggested",
    "files",
}


def read_manifest(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise BundleError(f"bundle {directory}: no such directory")
    path = directory / MANIFEST
    if not path.is_file():
        raise BundleError(f"bundle {directory}: no {MANIFEST} (not a bundle, or a partial copy)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"bundle {directory}: {MANIFEST} is corrupt ({error})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"bundle {directory}: {MANIFEST} is not an object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"bundle {directory}: format version {version!r} is not supported "
            f"(this rating_models {__version__} reads format {FORMAT_VERSION})"
        )
    for key in ("experts", "voter", "mlp", "suggested", "files"):
        if key not in manifest:
            raise BundleError(f"bundle {directory}: {MANIFEST} has no {key!r}")
    return manifest


def verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is present, inside the bundle and unchanged."""
    for relative, digest in manifest["files"].items():
        path = _inside(directory, relative)
        if not path.is_file():
            raise BundleError(f"bundle {directory}: {relative} is missing")
        if _sha256(path) != digest:
            raise BundleError(f"bundle {directory}: {relative} is corrupt (checksum mismatch)")


def _inside(directory: Path, relative: str) -> Path:
    """Resolve a manifest path, refusing any that leaves the bundle directory."""
    root = directory.resolve()
    path = (root / relative).resolve()
    if not relative or (path != root and root not in path.parents):
        raise BundleError(f"bundle {directory}: path {relative!r} is outside the bundle")
    return path


def _file_digests(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): _sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_version() -> str:
    """A bundle version: UTC time and a random suffix, unique across machines and databases."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"


def _concatenate(parts: list[BundlePrediction]) -> BundlePrediction:
    if len(parts) == 1:
        return parts[0]
    experts = {
        name: ExpertOutput(
            np.concatenate([p.experts[name].probs for p in parts]),
            np.concatenate([p.experts[name].features for p in parts]),
            np.concatenate([p.experts[name].abstain for p in parts]),
            np.concatenate([p.experts[name].flagged for p in parts]),
        )
        for name in parts[0].experts
    }
    return BundlePrediction(
        experts,
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("voter", "mlp_probs", "mlp", "suggested", "flagged", "voters", "mlp_used")
        ),
        None if parts[0].auto_publish is None else np.concatenate([p.auto_publish for p in parts]),
    )
