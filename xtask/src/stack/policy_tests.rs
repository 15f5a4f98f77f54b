//! The NetworkPolicies of `manifests/` held to the graph: copies of the real manifests with one
//! edit each, which either cut a connection the stack needs (and must fail, naming it) or keep
//! every connection in another form (and must load).

use super::tests::{Fixture, assert_edit_fails};

const FILE: &str = "network-policies.yaml";

/// The API's egress rule to PostgreSQL, by its port name.
const API_TO_POSTGRES: &str = "              app.kubernetes.io/name: postgres
      ports:
        - port: postgres";
/// PostgreSQL's ingress rule, from the API.
const POSTGRES_FROM_API: &str = "  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: api
      ports:
        - port: postgres";
/// The dashboard's ingress: its HTTP port from anywhere (the host port).
const WEB_INGRESS: &str = "  ingress:
    - ports:
        - port: http
          protocol: TCP
  egress:";

fn loads(edits: &[(&str, &str)]) {
    let mut fixture = Fixture::new();
    for (from, to) in edits {
        fixture = fixture.edit(FILE, from, to);
    }
    if let Err(err) = fixture.load() {
        panic!("{edits:?}: {err:#}");
    }
}

#[test]
fn the_real_policies_allow_every_connection_of_the_graph() {
    // Each edge is allowed by a union of policies: DNS by `dns`, the rest by the pods' own.
    loads(&[]);
}

#[test]
fn a_dependency_the_policies_cut_is_named_with_the_policies_that_isolate_it() {
    // The API's egress to PostgreSQL removed (its rule now points at Redis a second time).
    assert_edit_fails(
        FILE,
        API_TO_POSTGRES,
        "              app.kubernetes.io/name: redis
      ports:
        - port: redis",
        &[
            "the NetworkPolicies cut api to postgres:5432/TCP (Service postgres)",
            "wander.dev/depends-on",
            "egress traffic of api is limited by",
            "manifests/network-policies.yaml: NetworkPolicy/default-deny",
            "NetworkPolicy/api",
            "add an egress rule",
        ],
    );
    // PostgreSQL's ingress from the API given to the dashboard instead.
    assert_edit_fails(
        FILE,
        POSTGRES_FROM_API,
        &POSTGRES_FROM_API.replace("name: api", "name: web"),
        &[
            "cut api to postgres:5432/TCP",
            "ingress traffic of postgres is limited by",
            "NetworkPolicy/postgres",
            "add an ingress rule",
        ],
    );
    // The dashboard's egress to the API on another port than the one the API listens on.
    assert_edit_fails(
        FILE,
        "              app.kubernetes.io/name: api
      ports:
        - port: http",
        "              app.kubernetes.io/name: api
      ports:
        - port: 3000",
        &[
            "cut web to api:8080/TCP (Service api)",
            "egress traffic of web",
        ],
    );
}

#[test]
fn a_host_port_the_policies_close_is_an_error_and_an_open_address_block_keeps_it() {
    let only_from_api = "  ingress:
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: api
      ports:
        - port: http
          protocol: TCP
  egress:";
    assert_edit_fails(
        FILE,
        WEB_INGRESS,
        only_from_api,
        &[
            "cut the host port 127.0.0.1:3000 to web:3000/TCP (through the NodePort of Service web)",
            "ingress traffic of web",
        ],
    );
    // A block that does not cover every address may leave the node's out.
    let from_block = |cidr: &str| {
        format!(
            "  ingress:
    - from:
        - ipBlock:
            cidr: {cidr}
      ports:
        - port: http
          protocol: TCP
  egress:"
        )
    };
    assert_edit_fails(
        FILE,
        WEB_INGRESS,
        &from_block("10.0.0.0/8"),
        &["cut the host port 127.0.0.1:3000"],
    );
    loads(&[(WEB_INGRESS, &from_block("0.0.0.0/0"))]);
}

#[test]
fn dns_must_stay_open_wherever_egress_is_limited() {
    assert_edit_fails(
        FILE,
        "              k8s-app: kube-dns",
        "              k8s-app: coredns",
        &[
            "cut api to the cluster DNS (53/UDP), which it needs to find postgres, redis",
            "NetworkPolicy/dns",
        ],
    );
    assert_edit_fails(
        FILE,
        "        - port: 53
          protocol: UDP
",
        "",
        &["cut api to the cluster DNS (53/UDP)"],
    );
    // The cluster DNS lives in kube-system: a pod selector alone looks in the stack's namespace,
    // where no pod has its labels.
    assert_edit_fails(
        FILE,
        "        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: kube-system
          podSelector:",
        "        - podSelector:",
        &[
            "NetworkPolicy/dns: spec.egress[0].to[0].podSelector: selects no pod of the stack",
            "or add a namespaceSelector for pods of another namespace",
        ],
    );
}

#[test]
fn numbered_ports_and_ranges_are_matched_like_named_ones() {
    loads(&[(
        API_TO_POSTGRES,
        &API_TO_POSTGRES.replace("port: postgres", "port: 5432"),
    )]);
    loads(&[(
        API_TO_POSTGRES,
        &API_TO_POSTGRES.replace("port: postgres", "port: 5000\n          endPort: 6000"),
    )]);
    assert_edit_fails(
        FILE,
        API_TO_POSTGRES,
        &API_TO_POSTGRES.replace("port: postgres", "port: 5433\n          endPort: 6000"),
        &["cut api to postgres:5432/TCP"],
    );
    // A port rule without a port takes every port of its protocol, and only that protocol.
    let rule = format!("{API_TO_POSTGRES}\n          protocol: TCP");
    loads(&[(
        &rule,
        &rule.replace(
            "- port: postgres\n          protocol: TCP",
            "- protocol: TCP",
        ),
    )]);
    assert_edit_fails(
        FILE,
        &rule,
        &rule.replace(
            "- port: postgres\n          protocol: TCP",
            "- protocol: UDP",
        ),
        &["cut api to postgres:5432/TCP"],
    );
    let tcp = format!("{POSTGRES_FROM_API}\n          protocol: TCP");
    assert_edit_fails(
        FILE,
        &tcp,
        &tcp.replace("TCP", "UDP"),
        &[
            "cut api to postgres:5432/TCP",
            "ingress traffic of postgres",
        ],
    );
}

#[test]
fn without_policies_nothing_is_isolated_and_the_stack_loads() {
    let fixture = Fixture::new().edit("kustomization.yaml", "  - network-policies.yaml\n", "");
    std::fs::remove_file(fixture.dir.join(FILE)).unwrap();
    fixture.load().unwrap();
}

#[test]
fn selectors_that_select_nothing_are_misspellings() {
    assert_edit_fails(
        FILE,
        "      app.kubernetes.io/name: redis\n  policyTypes",
        "      app.kubernetes.io/name: rediss\n  policyTypes",
        &[
            "manifests/network-policies.yaml: NetworkPolicy/redis: spec.podSelector: selects no pod of the stack",
            "app.kubernetes.io/name=api",
            "fix the labels",
        ],
    );
    assert_edit_fails(
        FILE,
        "              app.kubernetes.io/name: api\n      ports:\n        - port: http",
        "              app.kubernetes.io/name: apii\n      ports:\n        - port: http",
        &["NetworkPolicy/web: spec.egress[0].to[0].podSelector: selects no pod of the stack"],
    );
}

#[test]
fn malformed_policies_are_refused_with_their_path() {
    // A port name the receiving pods do not have: PostgreSQL's, as ingress and as egress.
    assert_edit_fails(
        FILE,
        POSTGRES_FROM_API,
        &POSTGRES_FROM_API.replace("port: postgres", "port: postgress"),
        &[
            "NetworkPolicy/postgres: spec.ingress[0].ports[0].port: no container of postgres has a port named `postgress`",
        ],
    );
    assert_edit_fails(
        FILE,
        API_TO_POSTGRES,
        &API_TO_POSTGRES.replace("port: postgres", "port: pg"),
        &[
            "NetworkPolicy/api: spec.egress[0].ports[0].port: no container of postgres has a port named `pg`",
        ],
    );
    for (from, to, expected) in [
        (
            "policyTypes: [Ingress, Egress]",
            "policyTypes: [Ingress, Egres]",
            "NetworkPolicy/default-deny: spec.policyTypes[1]: `Egres` is neither Ingress nor Egress",
        ),
        (
            "  podSelector: {}\n  policyTypes: [Ingress, Egress]",
            "  podSelector:\n    matchExpressions:\n      - {key: a, operator: Exists}\n  policyTypes: [Ingress, Egress]",
            "NetworkPolicy/default-deny: spec.podSelector.matchExpressions: not supported",
        ),
        (
            WEB_INGRESS,
            "  ingress:\n    - from:\n        - ipBlock:\n            cidr: 0.0.0.0/33\n      ports:\n        - port: http\n  egress:",
            "NetworkPolicy/web: spec.ingress[0].from[0].ipBlock.cidr: `0.0.0.0/33` is not an address block",
        ),
        (
            WEB_INGRESS,
            "  ingress:\n    - from:\n        - ipBlock:\n            cidr: 0.0.0.0/0\n            except: [nonsense]\n  egress:",
            "spec.ingress[0].from[0].ipBlock.except[0]: `nonsense` is not an address block",
        ),
        (
            WEB_INGRESS,
            "  ingress:\n    - from:\n        - ipBlock:\n            cidr: 0.0.0.0/0\n          podSelector: {}\n  egress:",
            "spec.ingress[0].from[0]: ipBlock goes alone",
        ),
        (
            WEB_INGRESS,
            "  ingress:\n    - from:\n        - {}\n  egress:",
            "spec.ingress[0].from[0]: empty; name a podSelector",
        ),
        (
            WEB_INGRESS,
            "  ingress:\n    - ports:\n        - port: 70000\n  egress:",
            "spec.ingress[0].ports[0].port: 70000 is no port number",
        ),
        (
            WEB_INGRESS,
            "  ingress:\n    - ports:\n        - port: 3000\n          endPort: 2000\n  egress:",
            "spec.ingress[0].ports[0].endPort: 2000 must be at least port (3000)",
        ),
        (
            WEB_INGRESS,
            "  ingress:\n    - ports:\n        - port: http\n          endPort: 4000\n  egress:",
            "endPort: only goes with a numbered port",
        ),
        (
            WEB_INGRESS,
            "  ingress:\n    - ports:\n        - port: http\n          protocol: ICMP\n  egress:",
            "spec.ingress[0].ports[0].protocol: `ICMP` is none of TCP, UDP, SCTP",
        ),
        (
            "  podSelector: {}\n  policyTypes: [Ingress, Egress]",
            "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  egres: []",
            "NetworkPolicy/default-deny: spec.egres: unknown field",
        ),
    ] {
        assert_edit_fails(FILE, from, to, &[expected]);
    }
}
