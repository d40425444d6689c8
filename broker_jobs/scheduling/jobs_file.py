"""The jobs file as located YAML, and its ``modules:`` list (what a worker imports at boot).

Apart from :mod:`broker_jobs.scheduling.config` (which validates the jobs) so that the worker's middleware can read
``modules:`` without the scheduling machinery: the broker builds that middleware, and config reaches the broker.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

#: A position in the document: ``('jobs', 2, 'cron')``.
Path_ = tuple[str | int, ...]


def dotted(path: Path_) -> str:
    """``('jobs', 2, 'cron')`` -> ``jobs[2].cron``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class Located:
    """A YAML document as plain data, and the line of every key and item when an error needs one.

    The data comes from libyaml when available; the node tree with line
    numbers is only built to report an error (10,000 jobs would cost tens of MB).
    """

    def __init__(self, text: str, source: str) -> None:
        self.source, self.text = source, text
        self._lines: dict[Path_, int] | None = None
        try:
            self.data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{source}:{line}: invalid YAML: {problem}") from None

    @property
    def lines(self) -> dict[Path_, int]:
        """The line of every key and item, by path."""
        if self._lines is None:
            self._lines = {}
            loader = yaml.SafeLoader(self.text)
            try:
                node = loader.get_single_node()
                if node is not None:
                    self._walk(loader, node, ())
            finally:
                loader.dispose()
        return self._lines

    def _walk(self, loader: yaml.SafeLoader, node: yaml.Node, path: Path_) -> Any:
        lines = self._lines
        assert lines is not None
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self._walk(loader, value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(loader, item, (*path, i)) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    def error(self, path: Path_, message: str) -> ConfigError:
        """A ConfigError at the line of the deepest known part of ``path``."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                line = self.lines[path[:end]]
                break
        else:
            line = 1
        where = f"{dotted(path)}: " if path else ""
        return ConfigError(f"{self.source}:{line}: {where}{message}")


def import_listed_modules(doc: Located, modules: list[str]) -> None:
    """Import each of ``modules`` (the user's job modules); one that fails is a located ConfigError."""
    for i, name in enumerate(modules):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise doc.error(("modules", i), f"cannot import {name!r}: {exc}") from None


def import_modules(path: Path) -> list[str]:
    """Import the jobs file's ``modules:`` as ``load_config`` does, without reading its jobs.

    What a worker process calls at boot (:class:`~broker_jobs.middleware.JobModules`):
    it needs the user's jobs, not the schedule.  A file that cannot be read
    imports nothing (a worker may run without one); a file that can be read but
    is not valid YAML, or names a module that cannot be imported, fails, so a
    listed job is never silently missing.

    Returns:
      The module names imported.

    Raises:
      ConfigError: ``file:line: modules[i]: cannot import 'name': why``.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    doc = Located(text, source)
    modules = doc.data.get("modules") if isinstance(doc.data, dict) else None
    if modules is None:
        return []
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise doc.error(("modules",), "must be a list of module names")
    import_listed_modules(doc, modules)
    return list(modules)


def configured_modules(path: Path) -> list[str]:
    """The file's ``modules:`` list; ``[]`` when the file is missing or unreadable (never raises)."""
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    modules = data.get("modules") if isinstance(data, dict) else None
    return [m for m in modules if isinstance(m, str)] if isinstance(modules, list) else []
