import pytest

from rating_models.config import BundleConfig
from rating_models.train import train_bundle
from tests.moderation.people import alice, bob, carol, carol_client, mallory  # noqa: F401
from tests.rating_models.bundles import lstm_bundle_config, toy_examples


@pytest.fixture(scope="session")
def bounded_bundle_dir(tmp_path_factory):
    """The tiny bundle with the bounded suggestion at α = 10%: of its toy test items it
    publishes some unreviewed, not all."""
    directory = tmp_path_factory.mktemp("bounded-champion") / "bundle"
    overrides = {**lstm_bundle_config(), "suggested": "bounded", "alpha": 0.1}
    config = BundleConfig.from_preset("fast", overrides)
    train_bundle(toy_examples(), toy_examples(1, "v"), config=config, out=directory)
    return directory


@pytest.fixture(autouse=True)
def _no_double_review(settings):
    """Blind double review picks items by a hash of their random id: the tests that are not
    about it would otherwise see 5% of first decisions wait. Its own tests set the share."""
    settings.DOUBLE_REVIEW_SHARE = 0.0
