//! `manifests/kind-config.yaml`: the kind cluster's configuration, read strictly.
//!
//! Only the part of kind's `Cluster` schema the stack uses is accepted; anything else is an error,
//! so that a typo cannot quietly drop a host port mapping.

use std::net::IpAddr;

use anyhow::bail;
use serde::Deserialize;

use super::strict;

/// The file name, in the manifests directory.
pub(crate) const FILE: &str = "kind-config.yaml";
/// The API version of kind's cluster configuration that we write.
pub(crate) const API_VERSION: &str = "kind.x-k8s.io/v1alpha4";

/// kind's `Cluster` configuration, as far as the stack uses it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct KindCluster {
    pub(crate) kind: String,
    pub(crate) api_version: String,
    /// The cluster name; `cargo xtask` names the cluster itself, so this is normally absent.
    #[serde(default)]
    pub(crate) name: Option<String>,
    pub(crate) nodes: Vec<KindNode>,
}

/// One node container of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct KindNode {
    /// `control-plane` or `worker`.
    pub(crate) role: String,
    /// The node image, when pinned.
    #[serde(default)]
    pub(crate) image: Option<String>,
    /// Host ports published by the node container.
    #[serde(default)]
    pub(crate) extra_port_mappings: Vec<KindPortMapping>,
}

/// A port of the node container published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct KindPortMapping {
    /// The port inside the node: a Service's nodePort.
    pub(crate) container_port: u16,
    pub(crate) host_port: u16,
    /// Where the host listens; kind's default is every address, which we do not want.
    #[serde(default)]
    pub(crate) listen_address: Option<IpAddr>,
    /// `TCP` (kind's default), `UDP` or `SCTP`.
    #[serde(default)]
    pub(crate) protocol: Option<String>,
}

impl KindPortMapping {
    /// The protocol, with kind's default filled in.
    pub(crate) fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("TCP")
    }
}

/// Reads the kind configuration from its text; `label` names the file in errors.
pub(crate) fn parse(text: &str, label: &str) -> anyhow::Result<KindCluster> {
    let cluster: KindCluster = strict::read_struct(text, label, "Cluster")?;
    if cluster.kind != "Cluster" || cluster.api_version != API_VERSION {
        bail!(
            "{label}: expected kind `Cluster` of apiVersion `{API_VERSION}`, found `{}` of `{}`",
            cluster.kind,
            cluster.api_version
        );
    }
    if !cluster
        .nodes
        .iter()
        .any(|node| node.role == "control-plane")
    {
        bail!("{label}: Cluster: nodes: add a node with `role: control-plane`");
    }
    for (index, node) in cluster.nodes.iter().enumerate() {
        if !matches!(node.role.as_str(), "control-plane" | "worker") {
            bail!(
                "{label}: Cluster: nodes[{index}].role: `{}` is neither `control-plane` nor `worker`",
                node.role
            );
        }
        for (port, mapping) in node.extra_port_mappings.iter().enumerate() {
            if !matches!(mapping.protocol(), "TCP" | "UDP" | "SCTP") {
                bail!(
                    "{label}: Cluster: nodes[{index}].extraPortMappings[{port}].protocol: `{}` is not TCP, UDP or SCTP",
                    mapping.protocol()
                );
            }
        }
    }
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: 30300
        hostPort: 3000
        listenAddress: 127.0.0.1
        protocol: TCP
      - containerPort: 30080
        hostPort: 8080
";

    #[test]
    fn a_valid_configuration_reads_with_kinds_defaults() {
        let cluster = parse(VALID, "kind-config.yaml").unwrap();
        let mappings = &cluster.nodes[0].extra_port_mappings;
        assert_eq!(mappings.len(), 2);
        assert_eq!(mappings[0].listen_address, Some([127, 0, 0, 1].into()));
        assert_eq!(mappings[1].listen_address, None);
        assert_eq!(mappings[1].protocol(), "TCP");
    }

    #[test]
    fn errors_name_the_file_and_the_place() {
        for (from, to, expected) in [
            (
                "listenAddress",
                "listenAdress",
                "f.yaml: Cluster: nodes[0].extraPortMappings[0].listenAdress: unknown field",
            ),
            ("nodes:", "node:", "f.yaml: Cluster: node: unknown field"),
            ("hostPort: 3000", "hostPort: 70000", "f.yaml: Cluster: "),
            (
                "listenAddress: 127.0.0.1",
                "listenAddress: localhost",
                "f.yaml: Cluster: ",
            ),
            (
                "protocol: TCP",
                "protocol: tcp",
                "extraPortMappings[0].protocol",
            ),
            (
                "role: control-plane",
                "role: worker",
                "add a node with `role: control-plane`",
            ),
            ("kind: Cluster", "kind: Config", "expected kind `Cluster`"),
        ] {
            let text = VALID.replacen(from, to, 1);
            let err = format!("{:#}", parse(&text, "f.yaml").unwrap_err());
            assert!(err.contains(expected), "{to}: {err}");
        }
    }
}
