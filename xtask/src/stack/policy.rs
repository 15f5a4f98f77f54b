//! NetworkPolicies held to the service graph (docs/design.md, "Network policies").
//!
//! A cluster that enforces policies (kind does, since v0.24) cuts whatever they do not allow, and
//! the symptom, an API that never gets ready because its database is unreachable, names no
//! policy. So the policies are evaluated here, at load, with the semantics of the NetworkPolicy
//! API, for every connection the stack relies on: each `wander.dev/depends-on` edge on each port
//! of the dependency's Services, each host port from outside the cluster, and DNS from every
//! workload that reaches others by name. A policy or peer that selects nothing is refused too:
//! it is always a misspelt label.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::bail;
use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    DEPENDS_ON_ANNOTATION, HostPortMapping, ManifestObject, Object, StackService, Workload,
};

/// The label the API server puts on every namespace, with the namespace's name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The cluster DNS as kubeadm (and so kind) deploys it: CoreDNS pods labelled
/// `k8s-app: kube-dns` in kube-system (kubeadm's cmd/kubeadm/app/phases/addons/dns/manifests.go).
const DNS_NAMESPACE: &str = "kube-system";
const DNS_POD_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
const DNS_PORT: u16 = 53;

/// Which way a policy rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "Ingress",
            Self::Egress => "Egress",
        }
    }
}

/// The other end of a connection.
#[derive(Debug, Clone, Copy)]
enum Peer<'a> {
    /// A pod of the stack's namespace.
    Pod(&'a Workload),
    /// The cluster DNS.
    Dns,
    /// Anything outside the cluster, such as the host through a NodePort: its source address is
    /// the node's or the host's, which only an `ipBlock` covering every address names.
    Outside,
}

/// One NetworkPolicy with where it came from.
struct Policy<'a> {
    what: String,
    spec: &'a NetworkPolicySpec,
}

impl Policy<'_> {
    /// `spec.policyTypes`, or its default: Ingress, and Egress when egress rules are given.
    fn has_type(&self, direction: Direction) -> bool {
        match &self.spec.policy_types {
            Some(types) => types.iter().any(|t| t == direction.as_str()),
            None => direction == Direction::Ingress || self.spec.egress.is_some(),
        }
    }

    fn applies_to(&self, workload: &Workload) -> bool {
        // An absent podSelector is the empty one: every pod of the namespace.
        self.spec
            .pod_selector
            .as_ref()
            .is_none_or(|s| selector_matches(s, &workload.labels))
    }
}

/// The stack's namespace and workloads, as the policies see them.
struct Scope<'a> {
    namespace_labels: BTreeMap<String, String>,
    workloads: &'a [Workload],
    policies: Vec<Policy<'a>>,
}

/// Refuses policies that select nothing or name ports no pod has, then every connection the
/// stack relies on that the policies would cut.
pub(super) fn check(
    objects: &[ManifestObject],
    namespace: &str,
    workloads: &[Workload],
    services: &[StackService],
    host_ports: &[HostPortMapping],
) -> anyhow::Result<()> {
    let mut namespace_labels = objects
        .iter()
        .find_map(|o| match &o.object {
            Object::Namespace(n) => n.metadata.labels.clone(),
            _ => None,
        })
        .unwrap_or_default();
    namespace_labels.insert(NAMESPACE_NAME_LABEL.to_owned(), namespace.to_owned());
    let mut policies = Vec::new();
    for object in objects {
        if let Object::NetworkPolicy(policy) = &object.object {
            let what = object.describe();
            let Some(spec) = policy.spec.as_ref() else {
                bail!("{what}: spec: missing; a NetworkPolicy needs at least a podSelector");
            };
            policies.push(Policy { what, spec });
        }
    }
    let scope = Scope {
        namespace_labels,
        workloads,
        policies,
    };
    for policy in &scope.policies {
        scope.validate(policy)?;
    }
    scope.check_connections(services, host_ports)
}

impl Scope<'_> {
    fn validate(&self, policy: &Policy<'_>) -> anyhow::Result<()> {
        let what = &policy.what;
        if let Some(types) = &policy.spec.policy_types {
            for (index, kind) in types.iter().enumerate() {
                if kind != "Ingress" && kind != "Egress" {
                    bail!(
                        "{what}: spec.policyTypes[{index}]: `{kind}` is neither Ingress nor Egress"
                    );
                }
            }
        }
        if let Some(selector) = &policy.spec.pod_selector {
            plain_selector(what, "spec.podSelector", selector)?;
        }
        let selected: Vec<&Workload> = self
            .workloads
            .iter()
            .filter(|w| policy.applies_to(w))
            .collect();
        if selected.is_empty() {
            bail!(
                "{what}: spec.podSelector: selects no pod of the stack (its pods are labelled {}); fix the labels",
                self.describe_labels()
            );
        }
        for (direction, field, peers_field) in [
            (Direction::Ingress, "ingress", "from"),
            (Direction::Egress, "egress", "to"),
        ] {
            for (index, (peers, ports)) in rules(policy.spec, direction).into_iter().enumerate() {
                let at = format!("spec.{field}[{index}]");
                let mut peer_pods: Vec<&Workload> = Vec::new();
                let mut only_pods = peers.is_some_and(|p| !p.is_empty());
                for (peer_index, peer) in peers.into_iter().flatten().enumerate() {
                    let at = format!("{at}.{peers_field}[{peer_index}]");
                    let pods = self.validate_peer(what, &at, peer)?;
                    only_pods &= peer.ip_block.is_none() && peer.namespace_selector.is_none();
                    peer_pods.extend(pods);
                }
                // A named port is looked up on the pods the traffic goes to: the selected ones
                // for ingress, the peers for egress (when they are known to be ours).
                let receivers = match direction {
                    Direction::Ingress => Some(&selected),
                    Direction::Egress if only_pods => Some(&peer_pods),
                    Direction::Egress => None,
                };
                for (port_index, port) in ports.into_iter().flatten().enumerate() {
                    let at = format!("{at}.ports[{port_index}]");
                    validate_port(what, &at, port, receivers.map(Vec::as_slice))?;
                }
            }
        }
        Ok(())
    }

    /// The stack's pods a peer names (none for other namespaces and address blocks).
    fn validate_peer(
        &self,
        what: &str,
        at: &str,
        peer: &NetworkPolicyPeer,
    ) -> anyhow::Result<Vec<&Workload>> {
        if let Some(block) = &peer.ip_block {
            if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                bail!(
                    "{what}: {at}: ipBlock goes alone; give the selectors their own entry of the list"
                );
            }
            parse_cidr(&block.cidr).ok_or_else(|| {
                anyhow::anyhow!(
                    "{what}: {at}.ipBlock.cidr: `{}` is not an address block such as 10.0.0.0/8",
                    block.cidr
                )
            })?;
            for (index, except) in block.except.iter().flatten().enumerate() {
                if parse_cidr(except).is_none() {
                    bail!(
                        "{what}: {at}.ipBlock.except[{index}]: `{except}` is not an address block such as 10.0.0.0/8"
                    );
                }
            }
            return Ok(Vec::new());
        }
        if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
            bail!("{what}: {at}: empty; name a podSelector, a namespaceSelector or an ipBlock");
        }
        if let Some(selector) = &peer.namespace_selector {
            plain_selector(what, &format!("{at}.namespaceSelector"), selector)?;
        }
        let Some(selector) = &peer.pod_selector else {
            return Ok(Vec::new());
        };
        plain_selector(what, &format!("{at}.podSelector"), selector)?;
        let ours = peer
            .namespace_selector
            .as_ref()
            .is_none_or(|s| selector_matches(s, &self.namespace_labels));
        let pods: Vec<&Workload> = self
            .workloads
            .iter()
            .filter(|w| selector_matches(selector, &w.labels))
            .collect();
        if peer.namespace_selector.is_none() && pods.is_empty() {
            bail!(
                "{what}: {at}.podSelector: selects no pod of the stack (its pods are labelled {}); fix the labels, or add a namespaceSelector for pods of another namespace",
                self.describe_labels()
            );
        }
        Ok(if ours { pods } else { Vec::new() })
    }

    fn describe_labels(&self) -> String {
        let names: Vec<String> = self
            .workloads
            .iter()
            .filter_map(|w| w.labels.get(super::NAME_LABEL))
            .map(|name| format!("{}={name}", super::NAME_LABEL))
            .collect();
        names.join(", ")
    }

    /// Every connection the stack makes, held to the policies.
    fn check_connections(
        &self,
        services: &[StackService],
        host_ports: &[HostPortMapping],
    ) -> anyhow::Result<()> {
        for client in self.workloads {
            for dependency in &client.depends_on {
                let Some(server) = self.workloads.iter().find(|w| &w.name == dependency) else {
                    continue;
                };
                for service in services.iter().filter(|s| s.workload == server.name) {
                    for port in &service.ports {
                        let connection = format!(
                            "{} to {}:{}/{} (Service {}), which {DEPENDS_ON_ANNOTATION} says it needs",
                            client.name, server.name, port.target_port, port.protocol, service.name
                        );
                        self.require(
                            client,
                            Direction::Egress,
                            Peer::Pod(server),
                            port.target_port,
                            &port.protocol,
                            &connection,
                        )?;
                        self.require(
                            server,
                            Direction::Ingress,
                            Peer::Pod(client),
                            port.target_port,
                            &port.protocol,
                            &connection,
                        )?;
                    }
                }
            }
            if !client.depends_on.is_empty() {
                let connection = format!(
                    "{} to the cluster DNS ({DNS_PORT}/UDP), which it needs to find {}",
                    client.name,
                    client.depends_on.join(", ")
                );
                self.require(
                    client,
                    Direction::Egress,
                    Peer::Dns,
                    DNS_PORT,
                    "UDP",
                    &connection,
                )?;
            }
        }
        for mapping in host_ports {
            let Some(service) = services.iter().find(|s| s.name == mapping.service) else {
                continue;
            };
            let Some(server) = self.workloads.iter().find(|w| w.name == service.workload) else {
                continue;
            };
            for port in service
                .ports
                .iter()
                .filter(|p| p.port == mapping.service_port)
            {
                let connection = format!(
                    "the host port {}:{} to {}:{}/{} (through the NodePort of Service {})",
                    mapping.listen_address,
                    mapping.host_port,
                    server.name,
                    port.target_port,
                    port.protocol,
                    service.name
                );
                self.require(
                    server,
                    Direction::Ingress,
                    Peer::Outside,
                    port.target_port,
                    &port.protocol,
                    &connection,
                )?;
            }
        }
        Ok(())
    }

    /// Fails unless the policies let `pod` exchange traffic with `peer` on `port` in `direction`.
    fn require(
        &self,
        pod: &Workload,
        direction: Direction,
        peer: Peer<'_>,
        port: u16,
        protocol: &str,
        connection: &str,
    ) -> anyhow::Result<()> {
        let isolating: Vec<&Policy<'_>> = self
            .policies
            .iter()
            .filter(|p| p.applies_to(pod) && p.has_type(direction))
            .collect();
        if isolating.is_empty()
            || isolating
                .iter()
                .any(|p| self.rule_allows(p, direction, pod, peer, port, protocol))
        {
            return Ok(());
        }
        let names: Vec<&str> = isolating.iter().map(|p| p.what.as_str()).collect();
        let field = match direction {
            Direction::Ingress => "an ingress rule",
            Direction::Egress => "an egress rule",
        };
        bail!(
            "the NetworkPolicies cut {connection}: {} traffic of {} is limited by {} and none of their rules allows it; add {field} for it to one of them, as on a cluster that enforces policies (kind does) the connection would fail",
            direction.as_str().to_lowercase(),
            pod.name,
            names.join(", ")
        )
    }

    /// Whether one rule of `policy` allows the traffic; `pod` is the selected end.
    fn rule_allows(
        &self,
        policy: &Policy<'_>,
        direction: Direction,
        pod: &Workload,
        peer: Peer<'_>,
        port: u16,
        protocol: &str,
    ) -> bool {
        // Named ports are the receiving pod's: the selected one for ingress, the peer for egress.
        let receiver = match (direction, peer) {
            (Direction::Ingress, _) => Some(pod),
            (Direction::Egress, Peer::Pod(peer)) => Some(peer),
            (Direction::Egress, _) => None,
        };
        rules(policy.spec, direction)
            .into_iter()
            .any(|(peers, ports)| {
                let peer_ok = peers.is_none_or(|peers| {
                    peers.is_empty() || peers.iter().any(|p| self.peer_matches(p, peer))
                });
                let port_ok = ports.is_none_or(|ports| {
                    ports.is_empty()
                        || ports
                            .iter()
                            .any(|p| port_matches(p, receiver, port, protocol))
                });
                peer_ok && port_ok
            })
    }

    fn peer_matches(&self, rule: &NetworkPolicyPeer, peer: Peer<'_>) -> bool {
        match peer {
            Peer::Pod(workload) => {
                // Pod addresses come and go; whether an ipBlock covers them is up to the plugin.
                rule.ip_block.is_none()
                    && rule
                        .namespace_selector
                        .as_ref()
                        .is_none_or(|s| selector_matches(s, &self.namespace_labels))
                    && rule
                        .pod_selector
                        .as_ref()
                        .is_none_or(|s| selector_matches(s, &workload.labels))
            }
            Peer::Dns => {
                let namespace =
                    BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), DNS_NAMESPACE.to_owned())]);
                let pod =
                    BTreeMap::from([(DNS_POD_LABEL.0.to_owned(), DNS_POD_LABEL.1.to_owned())]);
                rule.ip_block
                    .as_ref()
                    .is_some_and(|b| covers_everything(&b.cidr, b.except.as_ref()))
                    || rule
                        .namespace_selector
                        .as_ref()
                        .is_some_and(|s| selector_matches(s, &namespace))
                        && rule
                            .pod_selector
                            .as_ref()
                            .is_none_or(|s| selector_matches(s, &pod))
            }
            Peer::Outside => rule
                .ip_block
                .as_ref()
                .is_some_and(|b| covers_everything(&b.cidr, b.except.as_ref())),
        }
    }
}

/// One rule's peers and ports, for ingress (`from`) or egress (`to`) rules alike.
type Rule<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

/// The rules of `spec` for one direction.
fn rules(spec: &NetworkPolicySpec, direction: Direction) -> Vec<Rule<'_>> {
    match direction {
        Direction::Ingress => spec
            .ingress
            .iter()
            .flatten()
            .map(|r| (r.from.as_ref(), r.ports.as_ref()))
            .collect(),
        Direction::Egress => spec
            .egress
            .iter()
            .flatten()
            .map(|r| (r.to.as_ref(), r.ports.as_ref()))
            .collect(),
    }
}

/// Whether `port` of a rule takes traffic to `number`/`protocol` on `receiver`.
fn port_matches(
    rule: &NetworkPolicyPort,
    receiver: Option<&Workload>,
    number: u16,
    protocol: &str,
) -> bool {
    if rule.protocol.as_deref().unwrap_or("TCP") != protocol {
        return false;
    }
    match &rule.port {
        None => true,
        Some(IntOrString::Int(first)) => {
            let last = rule.end_port.unwrap_or(*first);
            (*first..=last).contains(&i32::from(number))
        }
        Some(IntOrString::String(name)) => receiver
            .and_then(|w| named_port(w, name))
            .is_some_and(|(n, p)| n == number && p == protocol),
    }
}

/// The container port called `name` in a workload's pods: its number and protocol.
fn named_port(workload: &Workload, name: &str) -> Option<(u16, String)> {
    workload
        .pod_spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| {
            let number = u16::try_from(p.container_port).ok()?;
            Some((
                number,
                p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
            ))
        })
}

fn validate_port(
    what: &str,
    at: &str,
    port: &NetworkPolicyPort,
    receivers: Option<&[&Workload]>,
) -> anyhow::Result<()> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    if !["TCP", "UDP", "SCTP"].contains(&protocol) {
        bail!("{what}: {at}.protocol: `{protocol}` is none of TCP, UDP, SCTP");
    }
    match &port.port {
        Some(IntOrString::Int(number)) => {
            if !(1..=65535).contains(number) {
                bail!("{what}: {at}.port: {number} is no port number (1 to 65535)");
            }
            if let Some(end) = port.end_port
                && !(*number..=65535).contains(&end)
            {
                bail!(
                    "{what}: {at}.endPort: {end} must be at least port ({number}) and at most 65535"
                );
            }
        }
        Some(IntOrString::String(name)) => {
            if port.end_port.is_some() {
                bail!("{what}: {at}.endPort: only goes with a numbered port, not `{name}`");
            }
            if let Some(receivers) = receivers
                && !receivers.iter().any(|w| named_port(w, name).is_some())
            {
                let names: Vec<&str> = receivers.iter().map(|w| w.name.as_str()).collect();
                bail!(
                    "{what}: {at}.port: no container of {} has a port named `{name}`; use one of its port names or a number",
                    names.join(", ")
                );
            }
        }
        None => {
            if port.end_port.is_some() {
                bail!("{what}: {at}.endPort: needs a port to start from");
            }
        }
    }
    Ok(())
}

/// A selector of labels only: expressions are refused, as everywhere in the stack.
fn plain_selector(what: &str, at: &str, selector: &LabelSelector) -> anyhow::Result<()> {
    if selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        bail!(
            "{what}: {at}.matchExpressions: not supported by the stack's checks; use matchLabels"
        );
    }
    Ok(())
}

/// Whether a label selector matches `labels`; the empty selector matches everything.
fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// `10.0.0.0/8` as an address and a prefix length the address family allows.
fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = cidr.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((address, prefix))
}

/// Whether an ipBlock takes every address of its family (`0.0.0.0/0`, `::/0`, nothing excepted).
fn covers_everything(cidr: &str, except: Option<&Vec<String>>) -> bool {
    parse_cidr(cidr).is_some_and(|(_, prefix)| prefix == 0) && except.is_none_or(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::NetworkPolicyEgressRule;

    use super::*;

    fn policy(types: Option<&[&str]>, egress: bool) -> NetworkPolicySpec {
        NetworkPolicySpec {
            policy_types: types.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
            egress: egress.then(|| vec![NetworkPolicyEgressRule::default()]),
            ..NetworkPolicySpec::default()
        }
    }

    #[test]
    fn policy_types_default_as_the_api_defaults_them() {
        let has = |spec: &NetworkPolicySpec, direction| {
            Policy {
                what: String::new(),
                spec,
            }
            .has_type(direction)
        };
        // No types: Ingress always, Egress only with egress rules.
        let plain = policy(None, false);
        assert!(has(&plain, Direction::Ingress) && !has(&plain, Direction::Egress));
        let with_egress = policy(None, true);
        assert!(has(&with_egress, Direction::Ingress) && has(&with_egress, Direction::Egress));
        // Given types are taken as they are.
        let egress_only = policy(Some(&["Egress"]), false);
        assert!(!has(&egress_only, Direction::Ingress) && has(&egress_only, Direction::Egress));
    }

    #[test]
    fn only_a_block_of_every_address_covers_the_outside() {
        assert!(covers_everything("0.0.0.0/0", None));
        assert!(covers_everything("::/0", Some(&Vec::new())));
        assert!(!covers_everything(
            "0.0.0.0/0",
            Some(&vec!["10.0.0.0/8".to_owned()])
        ));
        assert!(!covers_everything("10.0.0.0/8", None));
        assert!(!covers_everything("nonsense", None));
        assert_eq!(
            parse_cidr("10.1.2.3/8"),
            Some(("10.1.2.3".parse().unwrap(), 8))
        );
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0",
            "10.0.0/8",
            "10.0.0.0/-1",
            "",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }
}
