"""Files stay inside their roots: hostile vault trees and a booby-trapped export folder, on the real stores.

The trees and front matter are generated (hypothesis): links to a file and to a
folder outside the vault, links inside it, dangling links, FIFOs, YAML alias
bombs of random depth and breadth, over-deep nesting, oversize notes, NUL
characters.  Each example runs the real vault job on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker_jobs.app.connectors.vault import NoteError, parse_note
from broker_jobs.app.tables import Document

from .conftest import JobsEnv, run_job

MAX_NOTE = 4096
MARKER = "OUTSIDE-THE-VAULT"
#: What the vault job may allocate at most for a tree of ten hostile notes.
MEMORY_BOUND = 64 * 1024 * 1024

REASONS = {
    "link_to_outside_file": "symbolic link", "link_to_outside_folder": "symbolic link",
    "link_inside": "symbolic link", "dangling_link": "symbolic link", "fifo": "not a regular file",
    "alias_bomb": "aliases", "deep": "nested deeper", "oversize": "VAULT_MAX_NOTE_BYTES", "nul": "NUL",
}
REFUSED = {"link_to_outside_file", "link_to_outside_folder", "link_inside", "dangling_link", "fifo"}


def alias_bomb(depth: int, breadth: int) -> str:
    """The "billion laughs" in YAML: each level lists ``breadth`` aliases of the level below."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * breadth) + "]"]
    for level in range(1, depth + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * breadth) + "]")
    return "---\n" + "\n".join(lines) + "\n---\nbody\n"


names = st.text("abcxyz019", min_size=1, max_size=6)
entries = st.lists(
    st.tuples(
        st.sampled_from(["note", *REASONS]),
        st.lists(names.map(lambda n: f"d_{n}"), max_size=2),
        names,
        st.integers(2, 9),  # alias bomb depth / nesting / extra size
        st.integers(2, 9),  # alias bomb breadth
    ),
    min_size=1, max_size=10,
)


def documents() -> list[Document]:
    from broker_jobs.store.db import get_engine

    with Session(get_engine()) as session:
        return list(session.scalars(select(Document)))


def build(vault: Path, outside: Path, tree: list[tuple[str, list[str], str, int, int]]) -> dict[str, str]:
    """Plant ``tree`` in an emptied vault; returns each planted path and its kind."""
    for child in vault.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    planted: dict[str, str] = {}
    for kind, folders, name, a, b in tree:
        relative = "/".join([*folders, f"{name}.md"])
        if kind == "link_to_outside_folder":
            relative = "/".join([*folders, f"d_{name}_link"])
        if relative in planted or any(p.startswith(relative + "/") for p in planted):
            continue
        path = vault / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            continue
        if kind == "note":
            path.write_text(f"---\ntitle: Note {name}\ntags: [t{a}]\n---\n# {name}\nA note inside.\n")
        elif kind == "link_to_outside_file":
            path.symlink_to(outside / "secret.md")
        elif kind == "link_to_outside_folder":
            path.symlink_to(outside, target_is_directory=True)
        elif kind == "link_inside":
            (vault / "inside-target.txt").write_text("---\ntitle: via a link\n---\nnot a note of its own\n")
            path.symlink_to(vault / "inside-target.txt")
        elif kind == "dangling_link":
            path.symlink_to(outside / "does-not-exist.md")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "alias_bomb":
            path.write_text(alias_bomb(a, b))
        elif kind == "deep":
            depth = 17 + a * b * 20
            path.write_text("---\nx: " + "[" * depth + "]" * depth + "\n---\nbody\n")
        elif kind == "oversize":
            path.write_text("---\ntitle: big\n---\n" + "x" * (MAX_NOTE + a * b * 100))
        elif kind == "nul":
            path.write_text(f"---\ntitle: nul\n---\nbefore\0after {a}\n")
        planted[relative] = kind
    return planted


@pytest.fixture
def outside(jobs_env_any_db: JobsEnv, settings_env: pytest.MonkeyPatch) -> Path:
    settings_env.setenv("VAULT_MAX_NOTE_BYTES", str(MAX_NOTE))
    folder = jobs_env_any_db.root / "outside"
    (folder / "notes").mkdir(parents=True)
    (folder / "secret.md").write_text(f"---\ntitle: {MARKER}\n---\n{MARKER} private\n")
    (folder / "notes" / "deeper.md").write_text(f"# {MARKER}\n{MARKER} deeper\n")
    return folder


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=entries)
def test_a_hostile_vault_stores_only_regular_notes_inside_it_and_reports_every_refusal(
        jobs_env_any_db: JobsEnv, outside: Path, tree):
    from broker_jobs.app.jobs.vault import run_vault_sync

    planted = build(jobs_env_any_db.vault, outside, tree)
    live_before = {d.path for d in documents() if not d.deleted}
    tracemalloc.start()
    try:
        report = run_vault_sync()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"the vault job allocated {peak} bytes"
    docs = documents()
    for doc in docs:
        assert MARKER not in f"{doc.path} {doc.title} {doc.body} {json.dumps(doc.front_matter)}"
        assert len(doc.body) <= MAX_NOTE and len(json.dumps(doc.front_matter)) <= MAX_NOTE
    # A note that fails keeps the row of its last good version; a refused one is gone from the vault.
    kept = {p for p, kind in planted.items() if kind not in REFUSED and kind != "note" and p in live_before}
    assert {d.path for d in docs if not d.deleted} == {p for p, kind in planted.items() if kind == "note"} | kept
    told = {**report.get("refused", {}), **report.get("errors", {})}
    for path, kind in planted.items():
        if kind == "note":
            continue
        assert REASONS[kind] in told.get(path, ""), (path, kind, told)
    assert report.get("refused_count", 0) == sum(kind in REFUSED for kind in planted.values())
    assert report["failed"] == sum(kind not in REFUSED and kind != "note" for kind in planted.values())


def test_a_link_planted_in_the_vault_is_named_in_the_job_report_of_the_history(jobs_env: JobsEnv, jobs_broker,
                                                                               stub_worker, tmp_path: Path):
    from broker_jobs.actors import vault_sync

    (tmp_path / "private.md").write_text(f"# {MARKER}\n")
    (jobs_env.vault / "Sneaky.md").symlink_to(tmp_path / "private.md")
    (jobs_env.vault / "concepts" / "linked-folder").symlink_to(tmp_path, target_is_directory=True)
    run = run_job(jobs_broker, stub_worker, vault_sync, queues=("etl",))
    assert run.status == "succeeded" and run.report["inserted"] == 8
    assert run.report["refused"] == {
        "Sneaky.md": "symbolic link (only regular files inside the root are read)",
        "concepts/linked-folder": "symbolic link (only regular files inside the root are read)",
    }
    assert all(MARKER not in (d.body or "") for d in documents())


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(1, 12), breadth=st.integers(2, 12))
def test_front_matter_with_yaml_aliases_is_refused_before_it_expands(depth: int, breadth: int):
    raw = alias_bomb(depth, breadth).encode()
    with pytest.raises(NoteError, match="aliases"):
        parse_note("bomb.md", raw)


@settings(max_examples=300, deadline=None)
@given(front=st.text(max_size=300), body=st.text(max_size=100))
def test_any_front_matter_parses_to_a_bounded_note_or_a_note_error(front: str, body: str):
    raw = f"---\n{front}\n---\n{body}".encode()
    try:
        note = parse_note("n.md", raw)
    except NoteError:
        return
    assert len(json.dumps(note.front_matter)) <= 8 * len(raw) + 64
    assert "\0" not in note.body


# --- export ------------------------------------------------------------------------------------------

PLANT_NAMES = ["documents.csv", "companies.csv", "manifest.json", "documents.csv.tmp", "manifest.json.tmp",
               "companies.csv.tmp"]


def outside_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def exported(jobs_env: JobsEnv) -> JobsEnv:
    from broker_jobs.app.jobs.vault import run_vault_sync

    run_vault_sync()
    return jobs_env


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plants=st.dictionaries(st.sampled_from(PLANT_NAMES),
                              st.sampled_from(["outside_file", "outside_folder", "dangling"]), min_size=1))
def test_links_planted_in_export_dir_are_replaced_and_their_targets_outside_stay_untouched(exported: JobsEnv,
                                                                                         tmp_path: Path, plants):
    from broker_jobs.app.jobs.ondemand import run_export

    target = tmp_path / "outside-export"
    target.mkdir(exist_ok=True)
    for name in ("victim.csv", "victim.json"):
        (target / name).write_text("precious\n")
    before = outside_state(target)
    out = exported.exports
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for name, kind in plants.items():
        link = out / name
        if kind == "outside_file":
            link.symlink_to(target / "victim.csv")
        elif kind == "outside_folder":
            link.symlink_to(target, target_is_directory=True)
        else:
            link.symlink_to(target / "nothing-yet.csv")
    report = run_export(["documents", "companies"])
    assert outside_state(target) == before and not (target / "nothing-yet.csv").exists()
    for name in ("documents.csv", "companies.csv", "manifest.json"):
        assert (out / name).is_file() and not (out / name).is_symlink()
    with (out / "documents.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    assert json.loads((out / "manifest.json").read_text())["files"][0]["rows"] == 8
    assert report["files"] == ["documents.csv", "companies.csv"]
    leftovers = {p.name for p in out.iterdir()} - {"documents.csv", "companies.csv", "manifest.json"}
    assert leftovers == {n for n in plants if n.endswith(".tmp")}  # planted, left alone; none of ours


def test_an_export_dir_that_is_itself_a_link_is_refused_and_its_target_untouched(exported: JobsEnv,
                                                                               settings_env, tmp_path: Path,
                                                                               jobs_broker, stub_worker):
    from broker_jobs.actors import export_data

    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "documents.csv").write_text("precious\n")
    link = tmp_path / "exports-link"
    link.symlink_to(target, target_is_directory=True)
    settings_env.setenv("EXPORT_DIR", str(link))
    from broker_jobs.settings import get_settings

    get_settings.cache_clear()
    message = export_data.send(["documents"])
    with pytest.raises(Exception, match=r"EXPORT_DIR=.* is a symbolic link"):
        jobs_broker.join("default")
    stub_worker.join()
    from .conftest import run_of

    run = run_of(message.message_id)
    assert run.status == "dead" and run.attempt == 1 and "symbolic link" in run.error
    assert [p.name for p in target.iterdir()] == ["documents.csv"]
    assert (target / "documents.csv").read_text() == "precious\n"
