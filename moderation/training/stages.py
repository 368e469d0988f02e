"""The stages of a retrain, as its worker reports them (`runs.run_progress`) and the run page
lists them: each mode's stages in the order it goes through them, named for what they do."""

from __future__ import annotations

from moderation.training.models import TrainingRun

Mode = TrainingRun.Mode

NAMES = {
    "data": "Selecting the labelled items",
    "experts": "Training the experts",
    "features": "Collecting the experts' outputs",
    "mlp": "Training the MLP",
    "calibration": "Recalibrating the suggestion",
    "saving": "Saving the candidate",
    "evaluation": "Scoring candidate and champion on the test split",
    "gate": "Judging the candidate against the champion",
}
# In this order and no other: the page shows it as the run's course, so a stage never comes
# back once a later one has begun (tests hold real runs of each mode to it). An MLP retrain
# and a recalibration collect the experts' stored outputs, the test items' included, before
# anything is trained.
ORDER = {
    Mode.MLP: ("data", "features", "mlp", "saving", "evaluation", "gate"),
    Mode.FULL: ("data", "experts", "features", "mlp", "saving", "evaluation", "gate"),
    Mode.RECALIBRATE: ("data", "features", "calibration", "saving", "evaluation", "gate"),
}
DONE = "done"  # the stage of a finished run


def stage_name(stage: str) -> str:
    """What the stage does, in words; a run without one yet waits for its worker."""
    if not stage:
        return "Waiting for a worker"
    return "Done" if stage == DONE else NAMES.get(stage, stage)
