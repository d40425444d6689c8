"""Entities: which table feeds which vector collection, and how a row reads as text."""

from broker_jobs.app.entities.registry import Entity, all_entities, get_entity, register_entity, render_text

__all__ = ["Entity", "all_entities", "get_entity", "register_entity", "render_text"]
