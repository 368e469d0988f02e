import pytest

from moderation.inference.versions import model_version_register
from moderation.media.models import MediaItem
from moderation.review.models import ReviewState
from rating_models.train import BundleConfig, train_bundle
from tests.rating_models.bundles import lstm_bundle_config, toy_examples


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory):
    """A tiny trained bundle (tag rules and two word LSTMs), built once per session."""
    directory = tmp_path_factory.mktemp("champion") / "bundle"
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    train_bundle(toy_examples(), toy_examples(1, "v"), config=config, out=directory)
    return directory


@pytest.fixture
def champion(db, bundle_dir):
    return model_version_register(path=bundle_dir, promote=True)


def make_items(prompts, *, tags=(("cat", 0.9),)):
    items = []
    for prompt in prompts:
        item = MediaItem.objects.create(
            prompt=prompt, tags=[list(t) for t in tags], split="train", source="test"
        )
        ReviewState.objects.create(item=item)
        items.append(item)
    return items
