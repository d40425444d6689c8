"""The Markdown vault: parse notes (front matter, ``[[wiki links]]``) and reconcile the documents table.

A note is new, changed (its content hash differs) or deleted (its file is
gone: the row is flagged ``deleted`` so ETL drops its vector).  Files are
committed in batches, so a crash loses at most the batch in flight, and the
next run finds exactly what is still different.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from ..entities.report import Report, message_tag
from ..store.data_models import Document, DocumentLink, utcnow

logger = logging.getLogger(__name__)

_LINK = re.compile(r"\[\[([^\]\|#]+)(?:#[^\]\|]*)?(?:\|[^\]]*)?\]\]")
_HEADING = re.compile(r"^#\s+(.+)$", re.MULTILINE)


@dataclass
class Note:
    """One parsed note."""

    path: str
    title: str
    body: str
    front_matter: dict[str, Any]
    tags: list[str]
    links: list[str]
    content_hash: str
    aliases: list[str] = field(default_factory=list)


class NoteError(ValueError):
    """A note that cannot be parsed (bad front matter, not UTF-8)."""


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value)]


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """``(front matter, body)``; a note without a ``---`` block has empty front matter.

    Raises:
      NoteError: when the block is not a YAML mapping.
    """
    if not text.startswith("---"):
        return {}, text
    lines = text.splitlines(keepends=True)
    if lines[0].strip() != "---":
        return {}, text
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            try:
                data = yaml.safe_load("".join(lines[1:index])) or {}
            except yaml.YAMLError as exc:
                raise NoteError(f"invalid front matter: {str(exc).splitlines()[0]}") from None
            if not isinstance(data, dict):
                raise NoteError("front matter is not a mapping")
            return data, "".join(lines[index + 1:])
    raise NoteError("front matter is not closed by ---")


def wiki_links(body: str) -> list[str]:
    """The distinct ``[[targets]]`` of ``body`` in order (``#section`` and ``|label`` dropped)."""
    seen: dict[str, None] = {}
    for match in _LINK.finditer(body):
        seen.setdefault(match.group(1).strip(), None)
    return list(seen)


def parse_note(relative: str, raw: bytes) -> Note:
    """Parse one note's bytes.

    Raises:
      NoteError: for bad front matter or a file that is not UTF-8.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("not UTF-8") from None
    front, body = split_front_matter(text)
    heading = _HEADING.search(body)
    title = str(front.get("title") or (heading.group(1).strip() if heading else Path(relative).stem))
    return Note(
        path=relative, title=title, body=body.strip(), front_matter=_plain(front),
        tags=_as_list(front.get("tags")), links=wiki_links(body),
        content_hash=hashlib.sha256(raw).hexdigest(), aliases=_as_list(front.get("aliases")),
    )


def _plain(value: Any) -> Any:
    """YAML dates and the like as JSON-storable values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def scan(root: Path) -> dict[str, Path]:
    """Every ``.md`` file under ``root`` by POSIX path relative to it, hidden folders skipped."""
    found = {}
    for path in sorted(root.rglob("*.md")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        found[relative.as_posix()] = path
    return found


def _names(doc: Document) -> list[str]:
    aliases = _as_list((doc.front_matter or {}).get("aliases"))
    stem = doc.path[:-3] if doc.path.endswith(".md") else doc.path
    return [n.lower() for n in (stem, Path(stem).name, doc.title, *aliases)]


def resolve_links(session: Session) -> list[tuple[str, str]]:
    """Point every link at the live document it names; returns the broken ``(source path, target)``."""
    live = list(session.scalars(select(Document).where(Document.deleted.is_(False))))
    by_name: dict[str, int] = {}
    for doc in sorted(live, key=lambda d: d.path):
        for name in _names(doc):
            by_name.setdefault(name, doc.id)
    paths = {doc.id: doc.path for doc in live}
    broken = []
    for link in session.scalars(select(DocumentLink).order_by(DocumentLink.id)):
        target_id = by_name.get(link.target.lower())
        if link.target_id != target_id or link.broken != (target_id is None):
            link.target_id, link.broken = target_id, target_id is None
        if target_id is None and link.source_id in paths:
            broken.append((paths[link.source_id], link.target))
    return broken


def _store(session: Session, doc: Document | None, note: Note) -> Document:
    if doc is None:
        doc = Document(path=note.path)
        session.add(doc)
    doc.title, doc.body, doc.front_matter = note.title, note.body, note.front_matter
    doc.tags, doc.links, doc.content_hash = note.tags, note.links, note.content_hash
    doc.deleted, doc.updated_at = False, utcnow()
    session.flush()
    session.execute(delete(DocumentLink).where(DocumentLink.source_id == doc.id))
    session.add_all(DocumentLink(source_id=doc.id, target=t, broken=True) for t in note.links)
    return doc


def reconcile(engine: Engine, root: Path, batch_size: int = 50) -> tuple[Report, list[int]]:
    """Make the documents table match the notes under ``root``.

    Returns:
      The report and the ids of the documents that changed (new, changed or deleted).
    """
    report, changed = Report(), []
    with report.timed("scan"):
        files = scan(root) if root.is_dir() else {}
    report.fetched = len(files)
    with Session(engine) as session:
        known = {d.path: (d.id, d.content_hash, d.deleted) for d in session.scalars(select(Document))}
    pending = list(files.items())
    errors: dict[str, str] = {}
    for start in range(0, len(pending), batch_size):
        with report.timed("store"), Session(engine) as session, session.begin():
            for relative, path in pending[start:start + batch_size]:
                old = known.get(relative)
                try:
                    raw = path.read_bytes()
                    if old and not old[2] and old[1] == hashlib.sha256(raw).hexdigest():
                        report.skipped += 1
                        continue
                    note = parse_note(relative, raw)
                except (OSError, NoteError) as exc:
                    errors[relative] = str(exc)
                    report.failed += 1
                    continue
                doc = _store(session, session.get(Document, old[0]) if old else None, note)
                changed.append(doc.id)
                if old is None:
                    report.inserted += 1
                else:
                    report.updated += 1
    gone = [(p, v[0]) for p, v in known.items() if p not in files and not v[2] and p not in errors]
    with report.timed("store"), Session(engine) as session, session.begin():
        for _, doc_id in gone:
            row = session.get(Document, doc_id)
            if row is not None:
                row.deleted, row.updated_at = True, utcnow()
                changed.append(doc_id)
        report.deleted = len(gone)
        broken = resolve_links(session)
    report.extra.update(broken_links=len(broken), broken=[f"{s} -> [[{t}]]" for s, t in broken[:20]])
    if errors:
        report.extra["errors"] = dict(list(errors.items())[:20])
    logger.info("[vault] %s: %s, %d broken links%s", root, report.counts(), len(broken), message_tag())
    return report, changed
