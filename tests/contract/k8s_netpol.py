"""Who may talk to whom under the rendered NetworkPolicies: for every workload, the connections its pods
may accept (ingress) and open (egress), as edges such as `gateway:grpc` (the pods of the workload
gateway, on their port named grpc), `kube-system:53/UDP` (any pod of that namespace) or
`internet:443/TCP` (any address outside the private ranges).

Only what the manifests use is understood; anything else is reported as a problem rather than guessed.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from tests.contract.k8s_render import Doc, of_kind, pod_labels, pod_ports, selected_workloads, selects, where, workloads

Direction = Literal["ingress", "egress"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# 0.0.0.0/0 except these: anywhere outside the cluster's private networks.
RFC1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
INTERNET = "internet"
ANYWHERE = "*"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"


def policy_types(policy: Doc) -> list[str]:
    """policyTypes, or the API server's default when it is left out."""
    spec = policy["spec"]
    return list(spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])])


def policies_for(docs: list[Doc], target: Doc, direction: Direction) -> list[Doc]:
    labels = pod_labels(target)
    return [
        policy
        for policy in of_kind(docs, "NetworkPolicy")
        if selects(policy["spec"]["podSelector"], labels) and direction.capitalize() in policy_types(policy)
    ]


def _peer(docs: list[Doc], policy: Doc, peer: Doc) -> tuple[str | None, list[Doc] | None, list[str]]:
    """(label for a peer outside the namespace's pods, or the pods' workloads, problems)."""
    if set(peer) == {"podSelector"}:
        chosen = selected_workloads(docs, peer["podSelector"])
        return None, chosen, [] if chosen else [f"{where(policy)}: a peer selects no pods: {peer}"]
    if set(peer) == {"namespaceSelector"} and set(peer["namespaceSelector"]) == {"matchLabels"}:
        labels = peer["namespaceSelector"]["matchLabels"]
        if set(labels) == {NAMESPACE_LABEL}:
            return str(labels[NAMESPACE_LABEL]), None, []
    if set(peer) == {"ipBlock"}:
        cidr, excepted = peer["ipBlock"]["cidr"], sorted(peer["ipBlock"].get("except", []))
        if cidr == "0.0.0.0/0" and excepted == sorted(RFC1918):
            return INTERNET, None, []
        if not excepted:
            return str(cidr), None, []
    return None, None, [f"{where(policy)}: a peer this evaluator does not understand: {peer}"]


def _port(policy: Doc, entry: Doc, pods: list[Doc]) -> tuple[str | None, list[str]]:
    """A port of a rule: its name on `pods` (the pods it leads to), or number/protocol when it leads
    outside the namespace's pods."""
    port, protocol = entry.get("port"), entry.get("protocol", "TCP")
    if "endPort" in entry or port is None:
        return None, [f"{where(policy)}: a port range or no port: {entry}"]
    if not pods:
        if isinstance(port, int):
            return f"{port}/{protocol}", []
        return None, [f"{where(policy)}: named port {port} outside the namespace's pods"]
    names = set()
    for pod in pods:
        ports = pod_ports(pod["spec"]["template"]["spec"])
        found = port if port in ports else next((name for name, number in ports.items() if number == port), None)
        if found is None or protocol != "TCP":
            return None, [f"{where(policy)}: port {port}/{protocol} is not a port of {where(pod)}"]
        names.add(found)
    if len(names) != 1:
        return None, [f"{where(policy)}: port {port} has different names on {[where(p) for p in pods]}"]
    return names.pop(), []


def edges(docs: list[Doc], target: Doc, direction: Direction) -> tuple[set[str], list[str]]:
    """What the pods of `target` may accept (ingress: `<source>:<target's port>`) or open (egress:
    `<destination>:<its port>`)."""
    found: set[str] = set()
    problems: list[str] = []
    peers_key = "from" if direction == "ingress" else "to"
    for policy in policies_for(docs, target, direction):
        for rule in policy["spec"].get(direction, []):
            if not rule.get("ports"):
                problems.append(f"{where(policy)}: a rule opens every port of {where(target)}")
            for peer in rule.get(peers_key) or [{}]:
                label, pods, peer_problems = _peer(docs, policy, peer) if peer else (ANYWHERE, None, [])
                problems += peer_problems
                sides = [(label, None)] if label else [(doc["metadata"]["name"], doc) for doc in pods or []]
                for side, pod in sides:
                    for entry in rule.get("ports", []):
                        # Ingress ports are the target's; egress ports are the destination's.
                        on = [target] if direction == "ingress" else [pod] if pod else []
                        port, port_problems = _port(policy, entry, on)
                        problems += port_problems
                        if port:
                            found.add(f"{side}:{port}")
    return found, problems


def matrix(docs: list[Doc], direction: Direction) -> tuple[dict[str, set[str]], list[str]]:
    """Every workload's edges in one direction."""
    result, problems = {}, []
    for doc, _ in workloads(docs):
        result[doc["metadata"]["name"]], found = edges(docs, doc, direction)
        problems += found
    return result, sorted(set(problems))


def networks_on_port(docs: list[Doc], target: Doc, port: int) -> list[tuple[Network, list[Network]]]:
    """The address blocks (with their exceptions) the pods of `target` may open `port` to."""
    found = []
    for policy in policies_for(docs, target, "egress"):
        for rule in policy["spec"].get("egress", []):
            ports = [entry.get("port") for entry in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            for peer in rule.get("to") or [{"ipBlock": {"cidr": "0.0.0.0/0"}}]:
                if "ipBlock" in peer:
                    block = peer["ipBlock"]
                    excepted = [ipaddress.ip_network(cidr) for cidr in block.get("except", [])]
                    found.append((ipaddress.ip_network(block["cidr"]), excepted))
    return found


def overlap(one: tuple[Network, list[Network]], other: tuple[Network, list[Network]]) -> bool:
    """Whether two address blocks share an address their exceptions leave in."""
    (first, first_except), (second, second_except) = one, other
    if first.version != second.version or not first.overlaps(second):
        return False
    narrow = first if first.prefixlen >= second.prefixlen else second
    excepted = [*first_except, *second_except]
    return not any(narrow.version == block.version and narrow.subnet_of(block) for block in excepted)
