"""The container tier: the three images built from the repository's Dockerfile (`make images`; docker's cache
makes a second build of unchanged sources a matter of seconds), run as the chart and Compose run them. Without a
Docker engine every test here is skipped, for the one reason printed in pytest's summary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.containers import REQUIRE_DOCKER_VARIABLE, REQUIRED, docker, missing
from textclf.deploy.images import BuiltImage, docker_unavailable_reason, prepare_and_build

POSTGRES_CONTEXT = Path(__file__).parent / "postgres"
TEST_POSTGRES_IMAGE = "textclf-test-postgres:15-bookworm"


def pytest_configure(config: pytest.Config) -> None:
    # Read before any test's fixtures clear TEXTCLF_* variables from the environment.
    config.stash[REQUIRED] = os.environ.get(REQUIRE_DOCKER_VARIABLE) == "1"


@pytest.fixture(scope="session")
def docker_engine(pytestconfig: pytest.Config) -> None:
    reason = docker_unavailable_reason()
    if reason:
        missing(
            pytestconfig, f"the container tier needs a Docker engine (`make docker-engine` starts Debian's): {reason}"
        )


@pytest.fixture(scope="session")
def image_build(docker_engine: None) -> tuple[str, dict[str, BuiltImage]]:
    """The base image the build used, and each image by its Dockerfile target, built once per session."""
    base, built = prepare_and_build()
    return base, {image.target: image for image in built}


@pytest.fixture(scope="session")
def built_images(image_build: tuple[str, dict[str, BuiltImage]]) -> dict[str, BuiltImage]:
    return image_build[1]


@pytest.fixture(scope="session")
def images(built_images: dict[str, BuiltImage]) -> dict[str, str]:
    """Each image's name by its Dockerfile target."""
    return {target: built.image for target, built in built_images.items()}


@pytest.fixture(scope="session")
def postgres_image(image_build: tuple[str, dict[str, BuiltImage]]) -> str:
    """PostgreSQL for Compose: a stand-in built from Debian's packages on the images' base (test-only; the
    official image cannot be pulled here)."""
    base, _ = image_build
    docker(
        "build", "--build-arg", f"BASE_IMAGE={base}", "--tag", TEST_POSTGRES_IMAGE, str(POSTGRES_CONTEXT), timeout=900
    )
    return TEST_POSTGRES_IMAGE
