"""The embedded demo dataset: parsing, binarizing and extraction from the sdist layout."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from textclf.data import demo

pytestmark = pytest.mark.unit


def test_ratings_are_binarized_and_the_neutral_band_dropped() -> None:
    lines = [
        "1\t2.5\tLoved it\r\n",
        "2\t-0.2\tMeh\r\n",
        "3\t-1.75\tHated it\r\n",
        "4\t0.5\tFine I guess\r\n",
        "bad line",
    ]
    frame = demo.parse_ground_truth(lines, "tweets")
    assert frame[["text", "label"]].values.tolist() == [
        ["Loved it", "positive"],
        ["Hated it", "negative"],
        ["Fine I guess", "positive"],
    ]
    assert set(frame["domain"]) == {"tweets"}


def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def _fake_sdist(path: Path) -> Path:
    inner_bytes = io.BytesIO()
    with tarfile.open(fileobj=inner_bytes, mode="w:gz") as inner:
        for domain, filename in demo.DOMAINS.items():
            _add(
                inner,
                f"hutto_ICWSM_2014/{filename}",
                f"1\t3.0\t{domain} good\n2\t-3.0\t{domain} bad\n".encode(),
            )
    with tarfile.open(path, "w:gz") as outer:
        _add(outer, demo.GROUND_TRUTH_ARCHIVE, inner_bytes.getvalue())
    return path


def test_domains_are_extracted_from_the_nested_archive(tmp_path: Path) -> None:
    lines = demo._extract_domains(_fake_sdist(tmp_path / "sdist.tar.gz"))
    assert lines["tweets"] == ["1\t3.0\ttweets good", "2\t-3.0\ttweets bad"]
    assert set(lines) == set(demo.DOMAINS)


def test_an_sdist_with_the_wrong_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTCLF_VADER_SDIST", str(_fake_sdist(tmp_path / "sdist.tar.gz")))
    with pytest.raises(RuntimeError, match="refusing to use it"):
        demo._download_sdist(tmp_path)


def test_cached_csv_files_are_read_without_downloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTCLF_CACHE_DIR", str(tmp_path))
    (tmp_path / "demo").mkdir()
    for name in demo.DOMAINS:
        demo.parse_ground_truth([f"1\t2\t{name} text", f"2\t-2\t{name} other"], name).to_csv(
            tmp_path / "demo" / f"vader_{name}.csv", index=False
        )
    assert len(demo.load_demo("tweets")) == 2
    assert len(demo.load_demo("all")) == 2 * len(demo.DOMAINS)
    with pytest.raises(ValueError, match="unknown demo domain 'poems'"):
        demo.load_demo("poems")
