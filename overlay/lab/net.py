"""A private LAN on one machine: hosts in network namespaces of our own, on one bridge.

Theory of operation. Each namespace is held open by a tiny process (`unshare --net --uts cat`)
whose standard input we keep: when we close it, or die, `cat` ends and the kernel removes the
namespace with its interfaces. Nothing is named under /run/netns and the machine's own network
namespace is never changed: commands reach a namespace with `nsenter --net=/proc/PID/ns/net`
(and `--uts=`, so each host has a host name of its own, its address, as a node names itself
after its host name).
A hub namespace holds a bridge (a dumb switch); each host gets `eth0` (10.77.0.i/24 by default),
the other end of a veth pair plugged into the bridge. Faults are per host: packet loss with an
nftables rule on the bridge, a rate limit with a `tc tbf` queue on its `eth0`.

Used by `python3 -m overlay.lab` and by the lab tests; needs root, `unshare`, `nsenter`, `ip`
(and `nft` / `tc` for faults).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

TOOLS = ("unshare", "nsenter", "ip", "hostname")
LOSS_TABLE = "lab_loss"


class LabError(OSError):
    """The lab network could not be built here (not root, no namespaces, a tool missing)."""


def missing_tools(tools: Sequence[str] = TOOLS) -> list[str]:
    """Why a lab cannot be built here: the tools not on PATH, or "root" when we are not root."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.insert(0, "root")
    return missing


class Namespace:
    """One network namespace, alive while the holding process runs."""

    def __init__(self, label: str, timeout: float = 5.0) -> None:
        self.label = label
        self._holder = subprocess.Popen(
            ["unshare", "--net", "--uts", "--", "cat"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.pid = self._holder.pid
        self.path = f"/proc/{self.pid}/ns/net"
        mine = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + timeout
        while self._ns_id() in (None, mine):  # unshare() has not happened yet
            if self._holder.poll() is not None or time.monotonic() > deadline:
                err = self._holder.stderr.read().decode() if self._holder.stderr else ""
                self.close()
                raise LabError(f"cannot create a network namespace: {err.strip() or 'timed out'}")
            time.sleep(0.005)

    def _ns_id(self) -> str | None:
        try:
            return os.readlink(self.path)
        except OSError:
            return None

    def command(self, args: Sequence[str]) -> list[str]:
        """`args` wrapped to run inside this namespace (for Popen)."""
        return ["nsenter", f"--net={self.path}", f"--uts=/proc/{self.pid}/ns/uts", "--", *args]

    def run(self, args: Sequence[str], stdin: str | None = None) -> str:
        """Run a command inside; its standard output.

        Raises:
            LabError: the command failed (its stderr is in the message).
        """
        done = subprocess.run(
            self.command(args), input=stdin, capture_output=True, text=True, timeout=30,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise LabError(f"{self.label}: {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def ip(self, *lines: str) -> None:
        """Several `ip` commands in one batch (`ip -batch -`), each line without the `ip`."""
        self.run(["ip", "-batch", "-"], stdin="\n".join(lines) + "\n")

    def close(self) -> None:
        """Let the holder end; the namespace goes once no process is left in it."""
        if self._holder.stdin is not None and not self._holder.stdin.closed:
            self._holder.stdin.close()
        try:
            self._holder.wait(5)
        except subprocess.TimeoutExpired:
            self._holder.kill()
            self._holder.wait(5)
        if self._holder.stderr is not None:
            self._holder.stderr.close()


class Host(Namespace):
    """A lab host: `eth0` with one address on the lab subnet, a default route through it."""

    def __init__(self, index: int, address: str, prefix: int) -> None:
        super().__init__(f"host {index}")
        self.index = index
        self.address = address
        self.prefix = prefix

    def link_stats(self) -> dict[str, int]:
        """Bytes and packets `eth0` sent and received so far (`ip -s link`)."""
        text = self.run(["ip", "-j", "-s", "link", "show", "dev", "eth0"])
        info: list[dict[str, Any]] = json.loads(text)
        stats = info[0]["stats64"]
        return {
            "tx_bytes": stats["tx"]["bytes"], "rx_bytes": stats["rx"]["bytes"],
            "tx_packets": stats["tx"]["packets"], "rx_packets": stats["rx"]["packets"],
        }  # fmt: skip

    def set_rate(self, rate: str, burst: str = "32kbit", latency: str = "50ms") -> None:
        """Limit what this host sends to `rate` (e.g. "2mbit") with a token bucket on eth0."""
        self.run(["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                  "rate", rate, "burst", burst, "latency", latency])  # fmt: skip


class Lab:
    """Hosts 1..n on one bridge: `up()`, `add_host()` for late arrivals, `down()`.

    Args:
        n: hosts to build at `up()`.
        subnet: the first three octets of the lab's /24 (private to the lab; never routed).
    """

    def __init__(self, n: int, subnet: str = "10.77.0") -> None:
        if not 1 <= n <= 250:
            raise ValueError("a lab has 1 to 250 hosts")
        self.n = n
        self.subnet = subnet
        self.hub: Namespace | None = None
        self.hosts: list[Host] = []

    def up(self) -> list[Host]:
        """Build the bridge and the hosts.

        Raises:
            LabError: namespaces or links cannot be made here; nothing is left behind.
        """
        missing = missing_tools()
        if missing:
            raise LabError(f"the lab needs {', '.join(missing)}")
        try:
            self.hub = Namespace("hub")
            self.hub.ip(
                "link set lo up",
                "link add br0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0",
                "link set br0 up",
            )
            for _ in range(self.n):
                self.add_host()
        except BaseException:
            self.down()
            raise
        return self.hosts

    def add_host(self, subnet: str | None = None, bridge: str = "br0") -> Host:
        """Plug one more host into a bridge: `eth0` at SUBNET.INDEX/24, its default route.

        Args:
            subnet: first three octets (default: the lab's); another one needs `add_bridge`.
            bridge: the switch to plug into.
        """
        assert self.hub is not None, "up() first"
        index = len(self.hosts) + 1
        host = Host(index, f"{subnet or self.subnet}.{index}", 24)
        self.hosts.append(host)
        self.hub.ip(
            f"link add p{index} type veth peer name eth0 netns {host.pid}",
            f"link set p{index} master {bridge} up",
        )
        host.run(["hostname", host.address])
        host.ip(
            "link set lo up",
            f"addr add {host.address}/{host.prefix} brd + dev eth0",
            "link set eth0 up",
            "route replace default dev eth0",
        )
        log.info("lab host %d up: %s on %s", index, host.address, bridge)
        return host

    def add_bridge(self, bridge: str) -> None:
        """Another switch in the hub, for a second LAN (hosts join with add_host or plug)."""
        assert self.hub is not None, "up() first"
        self.hub.ip(
            f"link add {bridge} type bridge mcast_snooping 0 stp_state 0 forward_delay 0",
            f"link set {bridge} up",
        )

    def plug(self, host: Host, bridge: str, device: str, address: str) -> str:
        """Give `host` a second interface `device` at `address`/24 on `bridge` (no route
        besides its subnet); the name of the switch port, for nft rules on the hub."""
        assert self.hub is not None, "up() first"
        port = f"{bridge}p{host.index}"
        self.hub.ip(
            f"link add {port} type veth peer name {device} netns {host.pid}",
            f"link set {port} master {bridge} up",
        )
        host.ip(f"addr add {address}/24 brd + dev {device}", f"link set {device} up")
        return port

    def set_loss(self, host: Host, percent: int) -> None:
        """Lose about `percent`% of the frames on `host`'s cable, each way (nft on the bridge).

        The rule sits on the switch, not in the host: an nft drop in the host's own output
        hook makes sendto() fail with EPERM, which no real lossy link does.

        Raises:
            LabError: nft is missing or refused the rule.
        """
        assert self.hub is not None, "up() first"
        port = f"p{host.index}"
        rule = f"numgen random mod 100 < {percent} counter drop"
        self.hub.run(["nft", "-f", "-"], stdin=(
            f"table bridge {LOSS_TABLE} {{\n"
            "  chain forward { type filter hook forward priority 0; policy accept; }\n"
            "}\n"
            f"add rule bridge {LOSS_TABLE} forward iifname {port} {rule}\n"
            f"add rule bridge {LOSS_TABLE} forward oifname {port} {rule}\n"
        ))  # fmt: skip

    def dropped(self) -> int:
        """Frames the loss rules dropped so far, all hosts together (0 without rules)."""
        assert self.hub is not None, "up() first"
        try:
            text = self.hub.run(["nft", "-j", "list", "table", "bridge", LOSS_TABLE])
        except LabError:
            return 0
        return sum(
            expr["counter"]["packets"]
            for item in json.loads(text)["nftables"] if "rule" in item
            for expr in item["rule"]["expr"] if "counter" in expr
        )  # fmt: skip

    def down(self) -> None:
        """Remove every namespace (processes still inside keep theirs alive: stop them first)."""
        for host in self.hosts:
            host.close()
        if self.hub is not None:
            self.hub.close()
        self.hosts = []
        self.hub = None
