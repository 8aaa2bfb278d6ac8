"""The embedded demo dataset: the VADER ground-truth sets (Hutto & Gilbert, ICWSM 2014, MIT licence).

They ship inside the PyPI source distribution of vaderSentiment 3.3.2, so a machine that reaches only
the package registries can still train on real human-labelled text. Each snippet carries the mean
sentiment rating of about 20 human raters in [-4, 4]; we binarize it and drop the neutral band.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

VADER_SDIST = "vaderSentiment==3.3.2"
VADER_SDIST_FILE = "vaderSentiment-3.3.2.tar.gz"
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
GROUND_TRUTH_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
CITATION = (
    "Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for Sentiment Analysis "
    "of Social Media Text. ICWSM-14. Data from the vaderSentiment 3.3.2 sdist on PyPI (MIT licence)."
)

DOMAINS: dict[str, str] = {
    "movie_reviews": "movieReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
    "amazon_reviews": "amazonReviewSnippets_GroundTruth.txt",
    "nyt_editorials": "nytEditorialSnippets_GroundTruth.txt",
}
DEFAULT_DOMAIN = "movie_reviews"
# Ratings whose magnitude is below this are neither clearly positive nor clearly negative.
NEUTRAL_BAND = 0.5
NEGATIVE, POSITIVE = "negative", "positive"


def cache_dir() -> Path:
    if os.environ.get("TEXTCLF_CACHE_DIR"):
        return Path(os.environ["TEXTCLF_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "textclf"


def parse_ground_truth(lines: list[str], domain: str, neutral_band: float = NEUTRAL_BAND) -> pd.DataFrame:
    """Parse `id<TAB>mean rating<TAB>text` lines and binarize the rating, dropping the neutral band."""
    records = []
    for line in lines:
        parts = line.rstrip("\r\n").split("\t", 2)
        if len(parts) != 3 or not parts[2].strip():
            continue
        rating = float(parts[1])
        if abs(rating) < neutral_band:
            continue
        records.append(
            {
                "text": parts[2],
                "label": POSITIVE if rating > 0 else NEGATIVE,
                "rating": rating,
                "domain": domain,
            }
        )
    return pd.DataFrame.from_records(records, columns=["text", "label", "rating", "domain"])


def _download_sdist(target: Path) -> Path:
    """Fetch the sdist with pip itself (the only channel a registry-only machine has) and verify it."""
    local = os.environ.get("TEXTCLF_VADER_SDIST")
    if local:
        sdist = Path(local)
    else:
        log.info("downloading %s from the package index", VADER_SDIST)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(target),
                VADER_SDIST,
            ],
            check=True,
        )
        sdist = target / VADER_SDIST_FILE
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != VADER_SDIST_SHA256:
        raise RuntimeError(f"{sdist} has sha256 {digest}, expected {VADER_SDIST_SHA256}: refusing to use it")
    return sdist


def _extract_domains(sdist: Path) -> dict[str, list[str]]:
    with tarfile.open(sdist) as outer:
        inner_member = outer.extractfile(GROUND_TRUTH_ARCHIVE)
        if inner_member is None:
            raise RuntimeError(f"{sdist} does not contain {GROUND_TRUTH_ARCHIVE}")
        with tarfile.open(fileobj=inner_member) as inner:
            texts = {}
            for domain, filename in DOMAINS.items():
                member = inner.extractfile(f"hutto_ICWSM_2014/{filename}")
                if member is None:
                    raise RuntimeError(f"{GROUND_TRUTH_ARCHIVE} does not contain {filename}")
                texts[domain] = member.read().decode("utf-8", errors="replace").splitlines()
            return texts


def load_demo(domain: str = DEFAULT_DOMAIN) -> pd.DataFrame:
    """The demo data for one domain (or "all"), fetched once and cached as CSV."""
    wanted = list(DOMAINS) if domain == "all" else [domain]
    unknown = [name for name in wanted if name not in DOMAINS]
    if unknown:
        raise ValueError(f"unknown demo domain {unknown[0]!r}; choose one of {', '.join(DOMAINS)} or 'all'")
    directory = cache_dir() / "demo"
    cached = {name: directory / f"vader_{name}.csv" for name in DOMAINS}
    if not all(path.exists() for path in cached.values()):
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            lines = _extract_domains(_download_sdist(Path(scratch)))
        for name, path in cached.items():
            partial = path.with_suffix(".partial")
            parse_ground_truth(lines[name], name).to_csv(partial, index=False)
            partial.replace(path)
    frames = [pd.read_csv(cached[name], keep_default_na=False) for name in wanted]
    return pd.concat(frames, ignore_index=True)
