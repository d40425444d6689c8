"""Network cuts on loopback with iptables: a node of a test's own cluster silenced at the packet level.

A cut is a set of DROP rules in the ``INPUT`` chain on ``lo`` (every loopback
packet passes it once), each carrying the comment ``bj-cut pid=<this process>
<tag>``, matching only what belongs to the node being cut: its AMQP and Erlang
distribution ports (both directions: what its clients and peers opened to it)
and the loopback address it alone opens its distribution connections from
(what it opened to its peers).  Nothing else on the machine, the shared RabbitMQ
on 5672/25672 included, matches.  A heal deletes exactly those rules; rules left
by a test process that died without healing are deleted by the next cut's
:func:`firewall` (their pid no longer runs).

iptables comes from Debian's ``iptables`` package (``make test-cluster`` installs
it as root); the ``nf_tables`` variant is tried first, then ``iptables-legacy``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from broker_jobs.probes import process_running

from .services import ServiceUnavailable

#: The comment every rule of ours carries, then ``pid=<pid> <tag>``.
MARK = "bj-cut"
CHAIN = "INPUT"


def _run(command: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)


def firewall() -> str:
    """The iptables command that works here, after deleting rules of ours whose process is gone.

    Raises:
      ServiceUnavailable: not root, no iptables, or the kernel refuses rules (the reason says which).
    """
    if os.geteuid() != 0:
        raise ServiceUnavailable("iptables rules need root")
    tried = []
    for name in ("iptables", "iptables-legacy"):
        command = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
        if command is None:
            tried.append(f"{name}: not installed")
            continue
        listed = _run([command, "-w", "-S", CHAIN])
        if listed.returncode == 0:
            _remove_orphans(command, listed.stdout)
            return command
        tried.append(f"{name}: {(listed.stderr or listed.stdout).strip().splitlines()[-1:]}")
    raise ServiceUnavailable("no working iptables (apt-get install iptables; "
                             "make test-cluster does it as root): " + "; ".join(tried))


def _remove_orphans(command: str, listing: str) -> None:
    for line in listing.splitlines():
        words = shlex.split(line)
        if words[:2] != ["-A", CHAIN] or "--comment" not in words:
            continue
        comment = words[words.index("--comment") + 1]
        parts = comment.split()
        if len(parts) < 2 or parts[0] != MARK or not parts[1].startswith("pid="):
            continue
        pid = int(parts[1].removeprefix("pid=") or 0)
        if pid and not process_running(pid):
            _run([command, "-w", "-D", *words[1:]])


@dataclass
class LoopbackCut:
    """DROP rules on ``lo`` that silence one node: its ``ports`` both ways, and ``address`` both ways.

    Parameters:
      command: The iptables command (:func:`firewall`).
      tag: Names the cut in the rules' comment (the node's name).
      ports: The node's listening ports (AMQP, Erlang distribution).
      address: The loopback address the node alone connects from (its distribution connections).
    """

    command: str
    tag: str
    ports: Sequence[int]
    address: str
    applied: list[list[str]] = field(default_factory=list)

    def rules(self) -> list[list[str]]:
        """Each rule's match and target (what follows ``-I INPUT``)."""
        comment = ["-m", "comment", "--comment", f"{MARK} pid={os.getpid()} {self.tag}"]
        matches = [["-p", "tcp", "--dport", str(port)] for port in self.ports]
        matches += [["-p", "tcp", "--sport", str(port)] for port in self.ports]
        matches += [["-s", f"{self.address}/32"], ["-d", f"{self.address}/32"]]
        return [["-i", "lo", *match, *comment, "-j", "DROP"] for match in matches]

    def apply(self) -> None:
        """Insert the rules (first in the chain: nothing before them lets a packet through)."""
        for rule in self.rules():
            result = _run([self.command, "-w", "-I", CHAIN, *rule])
            if result.returncode != 0:
                self.heal()
                raise RuntimeError(f"iptables -I {CHAIN} {shlex.join(rule)}: {result.stderr.strip()}")
            self.applied.append(rule)

    def heal(self) -> None:
        """Delete exactly the rules :meth:`apply` inserted (again harmless)."""
        while self.applied:
            rule = self.applied.pop()
            _run([self.command, "-w", "-D", CHAIN, *rule])

    def present(self) -> int:
        """How many rules of this cut the chain holds now."""
        listed = _run([self.command, "-w", "-S", CHAIN]).stdout
        return sum(1 for line in listed.splitlines() if f"{MARK} pid={os.getpid()} {self.tag}" in line)
