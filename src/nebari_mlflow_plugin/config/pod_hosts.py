"""`mlflow.allowed_hosts_extra`: pod address ranges beyond the private ones, as the
host patterns MLflow's `--allowed-hosts` matches (fnmatch against `host:port`).

Prometheus and the kubelet reach the server by pod IP, so the Host header they send
is that IP; MLflow refuses hosts it was not told about (403), which Prometheus reads
as "down". The chart always allows 10/8, 172.16/12 and 192.168/16; a cluster whose
pods live elsewhere (EKS custom networking: 100.64.0.0/10) names its ranges here.
"""

from __future__ import annotations

import ipaddress
import re

FIELD = "mlflow.allowed_hosts_extra"
# A host name or an IPv4 pattern with fnmatch wildcards, e.g. "100.64.*".
HOST_PATTERN = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9.*:-]*$")
# At most this many patterns per CIDR: /10 gives 64 ("100.64.*" ... "100.127.*").
MAX_PATTERNS = 256


def check(value: str) -> str:
    """An entry as written: an IPv4 CIDR (octet-aligned patterns cover it) or a host
    pattern; `*` alone is refused, it would turn MLflow's host check off."""
    value = value.strip()
    if "/" in value:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"{FIELD}: {value!r} is not an IPv4 CIDR ({exc})") from None
        if network.prefixlen == 0 or len(patterns(network)) > MAX_PATTERNS:
            raise ValueError(
                f"{FIELD}: {value!r} is too wide (more than {MAX_PATTERNS} host patterns); "
                "name the pod ranges, e.g. '100.64.0.0/10'"
            )
        return value
    if value.strip("*.") == "" or not HOST_PATTERN.fullmatch(value):
        raise ValueError(
            f"{FIELD}: {value!r} is neither an IPv4 CIDR such as '100.64.0.0/10' nor a host "
            "pattern such as '100.64.*' ('*' alone would turn the host check off)"
        )
    return value


def patterns(network: ipaddress.IPv4Network) -> list[str]:
    """fnmatch patterns matching exactly the addresses of `network` at octet
    granularity: 100.64.0.0/10 -> 100.64.* ... 100.127.*; a /32 is the address."""
    if network.prefixlen == 32:
        return [str(network.network_address), f"{network.network_address}:*"]
    octets = -(-network.prefixlen // 8)  # whole octets the prefix touches
    subnets = network.subnets(new_prefix=octets * 8) if network.prefixlen % 8 else [network]
    return [".".join(str(n.network_address).split(".")[:octets]) + ".*" for n in subnets]


def host_patterns(entries: list[str]) -> list[str]:
    """The chart's `server.podNetworkHosts`: CIDRs expanded, patterns as written."""
    out: list[str] = []
    for entry in entries:
        if "/" in entry:
            out += patterns(ipaddress.IPv4Network(entry))
        else:
            out.append(entry)
    return list(dict.fromkeys(out))
