"""Class balance: how skewed the class counts are, which classes are rare, and the loss weights that
compensate, so a rare class is not traded away for accuracy on the common ones."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

# `auto` weights the loss once the largest class has at least this many times the rows of the smallest:
# below it the balanced weights are all close to 1 and change little.
SKEWED_CLASS_RATIO = 2.0
# A class is rare when its share of the rows is under this fraction of an even share (1 / number of classes).
RARE_SHARE_OF_EVEN = 0.25
ClassWeighting = Literal["auto", "balanced", "none"]


@dataclass(frozen=True)
class ClassBalance:
    """Row counts per class of one split, in the order given (the label map's, for training)."""

    counts: dict[str, int]

    @classmethod
    def of(cls, labels: Iterable[object], classes: Iterable[str] = ()) -> ClassBalance:
        """Counts of `labels`; `classes` (the label map) lists every class, so one absent here counts 0."""
        counts = {str(name): 0 for name in classes}
        for label in labels:
            counts[str(label)] = counts.get(str(label), 0) + 1
        return cls(counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ratio(self) -> float:
        """Rows of the largest class per row of the smallest (infinite when a class has none)."""
        smallest = min(self.counts.values(), default=0)
        return max(self.counts.values()) / smallest if smallest else float("inf")

    @property
    def skewed(self) -> bool:
        return len(self.counts) > 1 and self.ratio >= SKEWED_CLASS_RATIO

    @property
    def rare(self) -> dict[str, float]:
        """The classes whose share is under `RARE_SHARE_OF_EVEN` of an even share, with their share."""
        if len(self.counts) < 2 or not self.total:
            return {}
        even_share = 1 / len(self.counts)
        shares = {label: count / self.total for label, count in self.counts.items()}
        return {label: share for label, share in shares.items() if share < RARE_SHARE_OF_EVEN * even_share}

    def balanced_weights(self) -> dict[str, float]:
        """Loss weight per class, total / (classes * count): every class then carries the same total weight
        (scikit-learn's `class_weight="balanced"`). A class without rows has no loss terms: it gets weight 0 and
        is not counted among the classes."""
        classes = sum(1 for count in self.counts.values() if count)
        return {label: self.total / (classes * count) if count else 0.0 for label, count in self.counts.items()}

    def loss_weights(self, weighting: ClassWeighting) -> dict[str, float] | None:
        """The weights training uses: balanced for `balanced`, and for `auto` when the counts are skewed;
        None means the plain, unweighted loss."""
        if weighting not in ("auto", "balanced", "none"):
            raise ValueError(f"class_weighting must be 'auto', 'balanced' or 'none', got {weighting!r}")
        if weighting == "balanced" or (weighting == "auto" and self.skewed):
            return self.balanced_weights()
        return None

    def warnings(self) -> list[str]:
        """One sentence per rare class, saying what to do about it."""
        even_share = 1 / len(self.counts) if self.counts else 0.0
        return [
            f"class {label!r} is rare: {self.counts[label]:,} of {self.total:,} rows ({share:.1%}, under a quarter "
            f"of an even share of {even_share:.1%}); its F1 is the number to watch, and more labelled rows of it "
            "help most"
            for label, share in self.rare.items()
        ]
