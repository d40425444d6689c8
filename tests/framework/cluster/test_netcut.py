"""The network cut of the cluster tests (tests/support/netcut.py) on plain sockets: it silences exactly the cut
node's ports and address, and the heal leaves no rule behind."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.support.netcut import CHAIN, MARK, LoopbackCut, firewall
from tests.support.services import ServiceUnavailable

pytestmark = pytest.mark.cluster


@pytest.fixture
def iptables() -> str:
    try:
        return firewall()
    except ServiceUnavailable as exc:
        pytest.skip(f"a real network cut needs iptables on this machine: {exc}")


@pytest.fixture
def listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two listening sockets on 127.0.0.1: the cut node's port and a bystander's."""
    opened = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        opened.append(sock)
    yield opened[0], opened[1]
    for sock in opened:
        sock.close()


def reaches(port: int, source: str = "127.0.0.1") -> bool:
    """Whether a TCP connection from ``source`` to 127.0.0.1:``port`` is set up within half a second."""
    with socket.socket() as client:
        client.settimeout(0.5)
        client.bind((source, 0))
        try:
            client.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_a_cut_silences_only_the_nodes_ports_and_address_and_the_heal_deletes_exactly_its_rules(iptables,
                                                                                              listeners):
    node, bystander = (sock.getsockname()[1] for sock in listeners)
    address = f"127.{uuid.uuid4().int % 254 + 1}.{uuid.uuid4().int % 254 + 1}.9"
    assert reaches(node) and reaches(bystander) and reaches(bystander, source=address)

    cut = LoopbackCut(iptables, "netcut-test", (node,), address)
    try:
        cut.apply()
        assert cut.present() == len(cut.rules()) == 4
        assert not reaches(node), "the node's port still answers"
        assert not reaches(bystander, source=address), "the node's own address still gets through"
        assert reaches(bystander), "a bystander was cut too"
    finally:
        cut.heal()
    assert cut.present() == 0
    assert reaches(node) and reaches(bystander, source=address)


def test_rules_left_by_a_test_process_that_died_are_deleted_by_the_next_cut(iptables):
    dead = subprocess.Popen(["true"])
    dead.wait()
    comment = f"{MARK} pid={dead.pid} orphan-{uuid.uuid4().hex[:6]}"
    rule = ["-i", "lo", "-p", "tcp", "--dport", "9", "-m", "comment", "--comment", comment, "-j", "DROP"]
    subprocess.run([iptables, "-w", "-I", CHAIN, *rule], check=True)
    mine = LoopbackCut(iptables, "still-mine", (9,), "127.254.254.254")
    try:
        mine.apply()  # this process lives: its rules must stay
        firewall()
        listed = subprocess.run([iptables, "-w", "-S", CHAIN], capture_output=True, text=True).stdout
        assert comment not in listed
        assert mine.present() == 4 and f"pid={os.getpid()}" in listed
    finally:
        mine.heal()
        subprocess.run([iptables, "-w", "-D", CHAIN, *rule], capture_output=True)
