"""Embedders: the default hashing embedder and the optional MiniLM one."""

from __future__ import annotations

import math

import pytest

from broker_jobs.app.vectors.embedders import HashingEmbedder, get_embedder
from broker_jobs.app.vectors.hygiene import similar_pairs
from broker_jobs.errors import ConfigError


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_hashing_vectors_are_unit_length_deterministic_and_closer_for_related_texts():
    embedder = HashingEmbedder(256)
    queue, broker, cake = embedder.embed([
        "RabbitMQ queues hold messages until a worker acknowledges them",
        "a worker acknowledges messages held in RabbitMQ queues",
        "bake the chocolate cake for forty minutes",
    ])
    assert len(queue) == 256 and math.isclose(math.sqrt(cosine(queue, queue)), 1.0)
    assert HashingEmbedder(256).embed(["RabbitMQ queues hold messages until a worker acknowledges them"]) == [queue]
    assert cosine(queue, broker) > 0.3 > cosine(queue, cake)
    assert cosine(*HashingEmbedder(8).embed(["", ""])) == 1.0  # empty text: a valid vector all the same


def test_similar_pairs_finds_each_close_pair_once():
    import numpy as np

    vectors = np.array([[1, 0], [0.99, 0.1], [0, 1]], dtype=np.float32)
    assert [(a, b) for a, b, _ in similar_pairs(["x", "y", "z"], vectors, 0.95)] == [("x", "y")]


def test_an_unknown_embedder_or_a_missing_extra_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match="EMBEDDER='word2vec'"):
        get_embedder("word2vec", 8)
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="embeddings"):
            get_embedder("minilm", 384)
    else:  # the optional extra is installed: the real model loads offline
        vectors = get_embedder("minilm", 384).embed(["hello world"])
        assert len(vectors[0]) == 384
