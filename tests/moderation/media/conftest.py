"""API clients with tokens, and a tiny champion bundle trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from moderation.inference.models import ModelVersion
from moderation.inference.versions import model_version_register
from moderation.media.models import ApiClient
from rating_models.train import BundleConfig, train_bundle
from tests.rating_models.bundles import lstm_bundle_config, toy_examples


@pytest.fixture
def acme(db) -> tuple[ApiClient, str]:
    """A platform with its token."""
    return ApiClient.issue("acme")


@pytest.fixture
def api(acme: tuple[ApiClient, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {acme[1]}")
    return client


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    train_bundle(toy_examples(), toy_examples(repeat=1, prefix="v"), config=config, out=out)
    return out


@pytest.fixture
def champion(db, bundle_dir: Path) -> ModelVersion:
    return model_version_register(path=bundle_dir, promote=True)
