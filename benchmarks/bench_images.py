"""Image benchmark: each image's size and build time, and how long each takes from `docker run` to ready.

    make bench-images                # warm: the Dockerfile's layers as the engine has them
    python benchmarks/bench_images.py --cold   # first removes textclf's images and the engine's build cache

Builds go through `make images`' own code (src/textclf/deploy/images.py). Ready times: the serving image with a
trained MiniLM directory mounted read-only at /mnt/models, until /v2/models/textclf/ready answers 200; the monitor
image with an empty volume, until /health answers; each run as the chart runs them (tests/support/containers.py),
median of `--runs`. The model is the SST-2 MiniLM `bench_serve.py` trains once and caches (its data comes from
../shared/data). Prints a table and writes benchmarks/results/bench_images.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

from bench_serve import trained_model  # noqa: E402
from tables import RESULTS, parse_arguments, record  # noqa: E402

from tests.support.containers import answers, readable_copy, running_container, volume, wait_until  # noqa: E402
from textclf.deploy.images import docker_unavailable_reason, prepare_and_build  # noqa: E402
from textclf.names import IMAGE_TARGETS  # noqa: E402

READY_TIMEOUT_SECONDS = 300


def forget_builds() -> None:
    """A cold build: no textclf image and no build cache left (the base image stays)."""
    for image in IMAGE_TARGETS:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True, check=False)
    subprocess.run(["docker", "builder", "prune", "--all", "--force"], capture_output=True, check=False)
    subprocess.run(["docker", "image", "prune", "--force"], capture_output=True, check=False)


def seconds_to_ready(image: str, url_path: str, port: int, options: list[str]) -> float:
    started = time.monotonic()
    with running_container(image, options=[*options, f"--publish=127.0.0.1::{port}"]) as container:
        address = f"http://{container.published(port)}{url_path}"
        wait_until(lambda: answers(address, timeout=1), READY_TIMEOUT_SECONDS, f"{image} ready", container.logs)
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="remove textclf's images and the build cache first")
    parser.add_argument("--runs", type=int, default=3, help="containers started per image for the ready time")
    options = parse_arguments(parser, "bench_images", may_differ=("cold",))
    reason = docker_unavailable_reason()
    if reason:
        sys.exit(f"bench-images needs a Docker engine (make docker-engine): {reason}")
    model = trained_model()
    if options.cold:
        forget_builds()
    base, built = prepare_and_build()
    scratch = RESULTS / "bench-images"
    scratch.mkdir(parents=True, exist_ok=True)
    mounted = readable_copy(model, scratch / f"model-{int(time.time())}")
    by_target = {b.target: b for b in built}
    ready: dict[str, list[float]] = {"serving": [], "monitor": []}
    for _ in range(options.runs):
        ready["serving"].append(
            seconds_to_ready(
                by_target["serving"].image, "/v2/models/textclf/ready", 8080, [f"--volume={mounted}:/mnt/models:ro"]
            )
        )
        with volume() as data:
            ready["monitor"].append(
                seconds_to_ready(
                    by_target["monitor"].image, "/health", 8000, [f"--volume={data}:/var/lib/textclf-monitor"]
                )
            )
    rows = [
        {
            "image": b.image,
            "target": b.target,
            "size_gb": round(b.size_bytes / 1e9, 3),
            "build_seconds": b.seconds,
            "build": "cold" if options.cold else "warm",
            "ready_seconds_median": round(statistics.median(ready[b.target]), 2) if b.target in ready else None,
            "ready_seconds_runs": [round(s, 2) for s in ready.get(b.target, [])],
        }
        for b in built
    ]
    print(f"base image: {base}; model: {model}")
    record("bench_images", {"base_image": base, "model": str(model), "images": rows}, options.publish)


if __name__ == "__main__":
    main()
