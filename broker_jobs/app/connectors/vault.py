"""The Markdown vault: parse notes (front matter, ``[[wiki links]]``) and reconcile the documents table.

A note is new, changed (its content hash differs) or deleted (its file is
gone: the row is flagged ``deleted`` so ETL drops its vector).  Files are
committed in batches, so a crash loses at most the batch in flight, and the
next run finds exactly what is still different.

Notes are hostile input.  Only regular files inside the vault are read (see
:mod:`broker_jobs.safe_files`): a symbolic link, to a file or a folder, is
refused and named in the report's ``refused``, as is a FIFO or a socket.  A
note over ``VAULT_MAX_NOTE_BYTES`` fails alone.  Front matter is parsed by a
safe YAML loader that refuses anchors' aliases (``*name``: a few hundred
bytes of aliases expand to gigabytes) and nesting deeper than
:data:`MAX_FRONT_MATTER_DEPTH`; text with NUL characters is refused (no
database stores it as text).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from broker_jobs.app.entities.report import Report, message_tag
from broker_jobs.app.tables import Document, DocumentLink
from broker_jobs.clock import utc_now
from broker_jobs.safe_files import UnsafeFileError, open_root, read_file, walk

logger = logging.getLogger(__name__)

_LINK = re.compile(r"\[\[([^\]\|#]+)(?:#[^\]\|]*)?(?:\|[^\]]*)?\]\]")
_HEADING = re.compile(r"^#\s+(.+)$", re.MULTILINE)

#: Front matter nested deeper than this is refused (it is metadata, not data).
MAX_FRONT_MATTER_DEPTH = 16
#: Default of ``VAULT_MAX_NOTE_BYTES``.
DEFAULT_MAX_NOTE_BYTES = 1_048_576


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


class _FrontMatterLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and with a depth limit.

    An alias (``*a``) makes a node appear again wherever it is named: ten
    lists of ten aliases each are 10**10 strings once copied to JSON.  Front
    matter has no use for them, so the composer refuses the first one.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in front matter",
                                              self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_FRONT_MATTER_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"front matter nested deeper than {MAX_FRONT_MATTER_DEPTH} levels",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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
                data = yaml.load("".join(lines[1:index]), Loader=_FrontMatterLoader) or {}  # safe, no aliases
            except yaml.YAMLError as exc:
                raise NoteError(f"invalid front matter: {str(exc).splitlines()[0]}") from None
            except (ValueError, OverflowError, RecursionError) as exc:  # a date like 2024-13-45, a huge int
                raise NoteError(f"invalid front matter: {type(exc).__name__}: {str(exc)[:200]}") from None
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
    if "\0" in text:
        raise NoteError("contains NUL characters (not a text note)")
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
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):  # beyond 64 bits JSON readers disagree: keep the digits as text
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):  # inf and nan are not JSON
        return value if math.isfinite(value) else str(value)
    return str(value)


def scan(root_fd: int) -> tuple[list[str], dict[str, str]]:
    """The ``.md`` notes under the vault (POSIX paths relative to it) and the refused ones with why.

    Parameters:
      root_fd: The vault folder, from :func:`broker_jobs.safe_files.open_root`.

    Hidden folders are skipped; symbolic links and special files are refused
    (see :func:`broker_jobs.safe_files.walk`).
    """
    notes, refused = [], {}
    for entry in walk(root_fd, ".md"):
        if entry.refused is None:
            notes.append(entry.path)
        else:
            refused[entry.path] = entry.refused
    return notes, refused


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
    doc.deleted, doc.updated_at = False, utc_now()
    session.flush()
    session.execute(delete(DocumentLink).where(DocumentLink.source_id == doc.id))
    session.add_all(DocumentLink(source_id=doc.id, target=t, broken=True) for t in note.links)
    return doc


def _store_batch(session: Session, root_fd: int, batch: list[str], known: dict[str, tuple[int, str, bool]],
                 max_note_bytes: int, report: Report, errors: dict[str, str], changed: list[int]) -> None:
    for relative in batch:
        old = known.get(relative)
        try:
            raw = read_file(root_fd, relative, max_note_bytes, "VAULT_MAX_NOTE_BYTES")
            if old and not old[2] and old[1] == hashlib.sha256(raw).hexdigest():
                report.skipped += 1
                continue
            note = parse_note(relative, raw)
        except UnsafeFileError as exc:  # swapped for a link since the scan, or too large
            errors[relative] = exc.reason
            report.failed += 1
            continue
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


def reconcile(engine: Engine, root: Path, batch_size: int = 50,
              max_note_bytes: int = DEFAULT_MAX_NOTE_BYTES) -> tuple[Report, list[int]]:
    """Make the documents table match the notes under ``root``.

    Parameters:
      engine: The data store.
      root: ``VAULT_PATH``.
      batch_size: Notes per transaction.
      max_note_bytes: ``VAULT_MAX_NOTE_BYTES``: a larger note fails alone.

    Returns:
      The report and the ids of the documents that changed (new, changed or deleted).
    """
    report, changed = Report(), list[int]()
    root_fd = open_root(root) if root.is_dir() else -1
    try:
        with report.timed("scan"):
            listed, refused = scan(root_fd) if root_fd >= 0 else ([], {})
        _reconcile(engine, root_fd, listed, batch_size, max_note_bytes, report, changed)
    finally:
        if root_fd >= 0:
            os.close(root_fd)
    if refused:
        report.extra["refused"] = dict(list(refused.items())[:20])
        report.extra["refused_count"] = len(refused)
        logger.warning("[vault] %s: %d file(s) refused, first %s: %s%s", root, len(refused),
                       *next(iter(refused.items())), message_tag())
    logger.info("[vault] %s: %s, %d broken links%s", root, report.counts(), report.extra["broken_links"],
                message_tag())
    return report, changed


def _reconcile(engine: Engine, root_fd: int, listed: list[str], batch_size: int, max_note_bytes: int,
               report: Report, changed: list[int]) -> None:
    files = set(listed)
    report.fetched = len(files)
    with Session(engine) as session:
        known = {d.path: (d.id, d.content_hash, d.deleted) for d in session.scalars(select(Document))}
    errors: dict[str, str] = {}
    for start in range(0, len(listed), batch_size):
        with report.timed("store"), Session(engine) as session, session.begin():
            _store_batch(session, root_fd, listed[start:start + batch_size], known, max_note_bytes,
                         report, errors, changed)
    gone = [(p, v[0]) for p, v in known.items() if p not in files and not v[2] and p not in errors]
    with report.timed("store"), Session(engine) as session, session.begin():
        for _, doc_id in gone:
            row = session.get(Document, doc_id)
            if row is not None:
                row.deleted, row.updated_at = True, utc_now()
                changed.append(doc_id)
        report.deleted = len(gone)
        broken = resolve_links(session)
    report.extra.update(broken_links=len(broken), broken=[f"{s} -> [[{t}]]" for s, t in broken[:20]])
    if errors:
        report.extra["errors"] = dict(list(errors.items())[:20])
