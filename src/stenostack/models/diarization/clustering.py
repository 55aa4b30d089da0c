"""Voices grouped into speakers by agglomerative clustering of voice prints, and speakers
matched to known names."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment

from stenostack.models.diarization.base import SpeakerCount

Embeddings = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]


def unit(vectors: Embeddings) -> Embeddings:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    scaled: Embeddings = vectors / np.maximum(norms, 1e-12)
    return scaled


def cluster_voices(
    voices: Embeddings, threshold: float, count: SpeakerCount, min_cluster_size: int
) -> Labels:
    """A speaker number (0, 1, ...) for each voice print, by average linkage.

    Clusters merge while their voices are on average closer than ``threshold`` (Euclidean
    distance between unit vectors: sqrt(2 - 2 cos)). Clusters of fewer than ``min_cluster_size``
    voices are a voice heard too briefly to be trusted as a speaker of its own: they join
    the nearest large one. The caller's bounds on the count win over both.
    """
    if len(voices) == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(voices, method="average", metric="euclidean")
    labels: Labels = (fcluster(tree, threshold, criterion="distance") - 1).astype(np.int64)
    labels = _absorb_small(voices, labels, min_cluster_size)
    found = len(np.unique(labels))
    wanted = min(max(found, count.minimum or 1), count.maximum or len(voices), len(voices))
    if wanted != found:
        labels = (fcluster(tree, wanted, criterion="maxclust") - 1).astype(np.int64)
    return _renumbered(labels)


def _absorb_small(voices: Embeddings, labels: Labels, min_size: int) -> Labels:
    names, sizes = np.unique(labels, return_counts=True)
    large = names[sizes >= min_size]
    if len(large) == 0 or len(large) == len(names):
        return labels
    centres = unit(np.stack([voices[labels == name].mean(axis=0) for name in large]))
    small = ~np.isin(labels, large)
    nearest = np.argmax(voices[small] @ centres.T, axis=1)
    labels = labels.copy()
    labels[small] = large[nearest]
    return labels


def _renumbered(labels: Labels) -> Labels:
    _, renumbered = np.unique(labels, return_inverse=True)
    return renumbered.astype(np.int64)


def centroids(voices: Embeddings, labels: Labels) -> Embeddings:
    """Each speaker's mean voice, unit length: [speakers, dimensions]."""
    return unit(np.stack([voices[labels == k].mean(axis=0) for k in range(labels.max() + 1)]))


def match_known(centres: Embeddings, known: Embeddings, min_similarity: float) -> dict[int, int]:
    """Speaker number -> index of the known voice it is, one speaker per known voice, only
    where the voices are alike enough to be the same person."""
    if len(known) == 0 or len(centres) == 0:
        return {}
    similarity = centres @ known.T
    rows, columns = linear_sum_assignment(similarity, maximize=True)
    return {
        int(row): int(column)
        for row, column in zip(rows, columns, strict=True)
        if similarity[row, column] >= min_similarity
    }
