//! Loading the real manifests, and copies of them with one edit each.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::*;

fn real_manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("manifests")
}

/// A copy of `manifests/` in a temporary directory, still called `manifests`.
pub(super) struct Fixture {
    _temp: tempfile::TempDir,
    pub(super) dir: PathBuf,
}

impl Fixture {
    /// A fresh copy of the repository's manifests.
    pub(super) fn new() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("manifests");
        std::fs::create_dir(&dir).unwrap();
        for entry in std::fs::read_dir(real_manifests()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        Self { _temp: temp, dir }
    }

    /// Replaces the first `from` in `file` by `to`; `from` must be there, so that an edit of the
    /// real manifests cannot make a test pass by no longer matching.
    pub(super) fn edit(self, file: &str, from: &str, to: &str) -> Self {
        let path = self.dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self
    }

    fn write(self, file: &str, text: &str) -> Self {
        std::fs::write(self.dir.join(file), text).unwrap();
        self
    }

    /// Loads the copy as `cargo xtask` would.
    pub(super) fn load(&self) -> anyhow::Result<Stack> {
        Stack::load(&self.dir)
    }

    fn error(&self) -> String {
        match self.load() {
            Ok(_) => panic!("the edited manifests loaded"),
            Err(err) => format!("{err:#}"),
        }
    }
}

/// Asserts that loading with one edit fails with a message containing each of `expected`.
pub(super) fn assert_edit_fails(file: &str, from: &str, to: &str, expected: &[&str]) {
    let err = Fixture::new().edit(file, from, to).error();
    assert!(!err.contains('\n'), "one line: {err}");
    for part in expected {
        assert!(
            err.contains(part),
            "{file}: {from:?} -> {to:?}\n  expected {part:?}\n  in {err}"
        );
    }
}

#[test]
fn the_real_manifests_load_into_the_expected_graph() {
    let stack = Stack::load(&real_manifests()).unwrap();
    assert_eq!(stack.namespace, "wander");

    let order: Vec<(&str, WorkloadKind)> = stack
        .workloads
        .iter()
        .map(|w| (w.name.as_str(), w.kind))
        .collect();
    assert_eq!(
        order,
        [
            ("postgres", WorkloadKind::StatefulSet),
            ("redis", WorkloadKind::Deployment),
            ("api", WorkloadKind::Deployment),
            ("web", WorkloadKind::Deployment),
        ]
    );
    let api = stack.workload("api").unwrap();
    assert_eq!(api.depends_on, ["postgres", "redis"]);
    assert_eq!(stack.workload("web").unwrap().depends_on, ["api"]);
    assert!(stack.workload("postgres").unwrap().depends_on.is_empty());
    assert_eq!(api.replicas, 1);
    assert_eq!(
        api.labels.get("app.kubernetes.io/name").map(String::as_str),
        Some("api")
    );
    assert_eq!(
        api.pod_spec.containers[0].image.as_deref(),
        Some("wander/api:dev")
    );
    let claims: Vec<_> = stack
        .workload("postgres")
        .unwrap()
        .volume_claim_templates
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(claims, ["data"]);
    assert!(stack.workload("nope").is_none());

    let objects: Vec<String> = stack
        .objects
        .iter()
        .map(|o| format!("{} {}/{}", o.file, o.kind, o.name))
        .collect();
    assert_eq!(
        objects,
        [
            "manifests/namespace.yaml Namespace/wander",
            "manifests/config.yaml ConfigMap/wander-config",
            "manifests/config.yaml ConfigMap/redis-config",
            "manifests/network-policies.yaml NetworkPolicy/default-deny",
            "manifests/network-policies.yaml NetworkPolicy/dns",
            "manifests/network-policies.yaml NetworkPolicy/web",
            "manifests/network-policies.yaml NetworkPolicy/api",
            "manifests/network-policies.yaml NetworkPolicy/postgres",
            "manifests/network-policies.yaml NetworkPolicy/redis",
            "manifests/postgres.yaml Service/postgres",
            "manifests/postgres.yaml StatefulSet/postgres",
            "manifests/redis.yaml Service/redis",
            "manifests/redis.yaml Deployment/redis",
            "manifests/api.yaml Service/api",
            "manifests/api.yaml Deployment/api",
            "manifests/web.yaml Service/web",
            "manifests/web.yaml Deployment/web",
        ]
    );

    let services: Vec<(&str, &str, u16, u16, Option<u16>)> = stack
        .services
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.service_type.as_str(),
                s.ports[0].port,
                s.ports[0].target_port,
                s.ports[0].node_port,
            )
        })
        .collect();
    assert_eq!(
        services,
        [
            ("postgres", "ClusterIP", 5432, 5432, None),
            ("redis", "ClusterIP", 6379, 6379, None),
            ("api", "NodePort", 8080, 8080, Some(30080)),
            ("web", "NodePort", 3000, 3000, Some(30300)),
        ]
    );
    let of_api: Vec<&str> = stack
        .services_of(api)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(of_api, ["api"]);

    let loopback: IpAddr = [127, 0, 0, 1].into();
    let host_ports: Vec<(&str, u16, u16, u16, IpAddr)> = stack
        .host_ports
        .iter()
        .map(|p| {
            (
                p.service.as_str(),
                p.service_port,
                p.node_port,
                p.host_port,
                p.listen_address,
            )
        })
        .collect();
    assert_eq!(
        host_ports,
        [
            ("web", 3000, 30300, 3000, loopback),
            ("api", 8080, 30080, 8080, loopback)
        ]
    );
    assert_eq!(stack.host_port_of("api").map(|p| p.host_port), Some(8080));
    assert!(stack.host_port_of("postgres").is_none());

    let config = stack.config_map("wander-config").unwrap();
    assert_eq!(config.data.as_ref().unwrap()["LOG_FORMAT"], "json");
    assert!(stack.config_map("other").is_none());
}

#[test]
fn the_api_gets_the_environment_its_config_reads() {
    let stack = Stack::load(&real_manifests()).unwrap();
    let container = &stack.workload("api").unwrap().pod_spec.containers[0];
    let env = container.env.as_ref().unwrap();
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "API_ADDR",
            "LOG_FORMAT",
            "POSTGRES_PASSWORD",
            "DATABASE_URL",
            "REDIS_URL",
            "API_TOKEN",
            "CORS_ORIGIN"
        ]
    );
    let url = env
        .iter()
        .find(|e| e.name == "DATABASE_URL")
        .and_then(|e| e.value.as_deref())
        .unwrap();
    let expanded = expand_env(url, |name| {
        (name == "POSTGRES_PASSWORD").then(|| "pw".to_owned())
    });
    assert_eq!(expanded, "postgres://wander:pw@postgres:5432/wander");
    let secret_keys: Vec<&str> = env
        .iter()
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(secret_keys, [SECRET_POSTGRES_PASSWORD, SECRET_API_TOKEN]);
}

#[test]
fn a_misspelled_field_is_reported_with_its_file_object_and_path() {
    for (file, from, to, expected) in [
        (
            "api.yaml",
            "kind: Deployment\n",
            "kind: Deployment\nspek: {}\n",
            "manifests/api.yaml: Deployment/api: spek: unknown field",
        ),
        (
            "api.yaml",
            "  annotations:",
            "  anotations:",
            "manifests/api.yaml: Deployment/api: metadata.anotations: unknown field",
        ),
        (
            "api.yaml",
            "imagePullPolicy: IfNotPresent",
            "imagePullPolcy: IfNotPresent",
            "manifests/api.yaml: Deployment/api: spec.template.spec.containers[0].imagePullPolcy: unknown field",
        ),
        (
            "api.yaml",
            "periodSeconds: 1\n",
            "periodSecond: 1\n",
            "manifests/api.yaml: Deployment/api: spec.template.spec.containers[0].startupProbe.periodSecond: unknown field",
        ),
        (
            "web.yaml",
            "nodePort: 30300",
            "nodeport: 30300",
            "manifests/web.yaml: Service/web: spec.ports[0].nodeport: unknown field",
        ),
        (
            "postgres.yaml",
            "accessModes:",
            "accesModes:",
            "manifests/postgres.yaml: StatefulSet/postgres: spec.volumeClaimTemplates[0].spec.accesModes: unknown field",
        ),
        (
            "redis.yaml",
            "emptyDir: {}",
            "emptyDir: {medum: Memory}",
            "manifests/redis.yaml: Deployment/redis: spec.template.spec.volumes[1].emptyDir.medum: unknown field",
        ),
        (
            "config.yaml",
            "\ndata:",
            "\ndate:",
            "manifests/config.yaml: ConfigMap/wander-config: date: unknown field",
        ),
        (
            "namespace.yaml",
            "metadata:",
            "metdata: {}\nmetadata:",
            "manifests/namespace.yaml: Namespace/wander: metdata: unknown field",
        ),
        (
            "kind-config.yaml",
            "listenAddress: 127.0.0.1",
            "listenAdress: 127.0.0.1",
            "manifests/kind-config.yaml: Cluster: nodes[0].extraPortMappings[0].listenAdress: unknown field",
        ),
        (
            "kind-config.yaml",
            "nodes:",
            "nodez:",
            "manifests/kind-config.yaml: Cluster: nodez: unknown field",
        ),
        (
            "kustomization.yaml",
            "resources:",
            "resource:",
            "manifests/kustomization.yaml: Kustomization: resource: unknown field",
        ),
    ] {
        assert_edit_fails(file, from, to, &[expected]);
    }
}

#[test]
fn a_value_of_the_wrong_type_is_reported_with_its_line() {
    let web = std::fs::read_to_string(real_manifests().join("web.yaml")).unwrap();
    let line = web.lines().position(|l| l.trim() == "replicas: 1").unwrap() + 1;
    assert_edit_fails(
        "web.yaml",
        "replicas: 1",
        "replicas: one",
        &[
            "manifests/web.yaml: Deployment/web: ",
            &format!("line {line}, column 13"),
        ],
    );
    assert_edit_fails(
        "api.yaml",
        "containerPort: 8080",
        "containerPort: [8080]",
        &["manifests/api.yaml: Deployment/api: "],
    );
    assert_edit_fails(
        "kind-config.yaml",
        "hostPort: 3000",
        "hostPort: 99999",
        &["manifests/kind-config.yaml: Cluster: "],
    );
}

#[test]
fn normal_forms_of_values_load() {
    // Numbers as quantities, numeric target ports, quoted strings: all the same objects.
    let fixture = Fixture::new()
        .edit("api.yaml", "cpu: \"1\"", "cpu: 1")
        .edit("api.yaml", "targetPort: http", "targetPort: 8080")
        .edit("web.yaml", "memory: 128Mi", "memory: \"128Mi\"")
        .edit("web.yaml", "replicas: 1", "replicas: 2\n  paused: null");
    let stack = fixture.load().unwrap();
    assert_eq!(stack.workload("web").unwrap().replicas, 2);
    assert_eq!(stack.services[2].ports[0].target_port, 8080);
}

#[test]
fn an_unsupported_kind_is_an_error_naming_file_and_kind() {
    let err = Fixture::new()
        .edit("web.yaml", "kind: Deployment\n", "kind: DaemonSet\n")
        .error();
    assert!(
        err.contains("manifests/web.yaml: DaemonSet/web: kind `DaemonSet`"),
        "{err}"
    );
    let secret = "\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: wander-secrets\n";
    let err = Fixture::new()
        .edit(
            "web.yaml",
            "      volumes:\n        - name: tmp\n          emptyDir: {}\n",
            &format!("      volumes:\n        - name: tmp\n          emptyDir: {{}}\n{secret}"),
        )
        .error();
    assert!(
        err.contains(
            "manifests/web.yaml: Secret/wander-secrets: kind `Secret` of apiVersion `v1` is not one"
        ),
        "{err}"
    );
}

#[test]
fn dependencies_must_exist_and_not_form_a_cycle() {
    assert_edit_fails(
        "web.yaml",
        "wander.dev/depends-on: \"api\"",
        "wander.dev/depends-on: \"apii\"",
        &[
            "manifests/web.yaml: Deployment/web: ",
            "`apii` is no Deployment or StatefulSet",
            "postgres, redis, api, web",
        ],
    );
    assert_edit_fails(
        "api.yaml",
        "\"postgres,redis\"",
        "\"postgres, redis,web\"",
        &[
            "manifests/api.yaml: Deployment/api: metadata.annotations[\"wander.dev/depends-on\"]: dependency cycle api -> web -> api",
        ],
    );
    assert_edit_fails(
        "redis.yaml",
        "  annotations:\n",
        "  annotations:\n    wander.dev/depends-on: redis\n",
        &["dependency cycle", "redis -> redis"],
    );
}

#[test]
fn references_to_secrets_and_config_maps_must_resolve() {
    for (file, from, to, expected) in [
        (
            "api.yaml",
            "key: api-token",
            "key: api-tokn",
            "`wander-secrets` has no key `api-tokn`",
        ),
        (
            "api.yaml",
            "name: wander-secrets",
            "name: wander-secret",
            "the Secret `wander-secret` does not exist",
        ),
        (
            "web.yaml",
            "key: WEB_ORIGIN",
            "key: WEB_ORIGN",
            "the ConfigMap `wander-config` has no key `WEB_ORIGN`",
        ),
        (
            "web.yaml",
            "name: wander-config",
            "name: web-config",
            "the ConfigMap `web-config` is not defined",
        ),
    ] {
        let workload = file.trim_end_matches(".yaml");
        assert_edit_fails(
            file,
            from,
            to,
            &[
                &format!(
                    "manifests/{file}: Deployment/{workload}: spec.template.spec.containers[0].env["
                ),
                expected,
            ],
        );
    }
    assert_edit_fails(
        "postgres.yaml",
        "- name: run\n              mountPath",
        "- name: runn\n              mountPath",
        &["StatefulSet/postgres: spec.template.spec.containers[0].volumeMounts[1].name: `runn`"],
    );
}

#[test]
fn a_weakened_security_setting_fails_loading() {
    for (file, from, to, expected) in [
        (
            "redis.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
            "manifests/redis.yaml: Deployment/redis: spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem: must be true",
        ),
        (
            "web.yaml",
            "            readOnlyRootFilesystem: true\n",
            "",
            "Deployment/web: spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem: must be true",
        ),
        (
            "api.yaml",
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
            "securityContext.allowPrivilegeEscalation: must be false",
        ),
        (
            "api.yaml",
            "drop: [ALL]",
            "drop: [NET_RAW]",
            "capabilities.drop: must include ALL",
        ),
        (
            "api.yaml",
            "runAsNonRoot: true",
            "runAsNonRoot: false",
            "spec.template.spec.securityContext.runAsNonRoot: must be true",
        ),
        (
            "postgres.yaml",
            "runAsUser: 999",
            "runAsUser: 0",
            "spec.template.spec.securityContext.runAsUser",
        ),
        (
            "web.yaml",
            "type: RuntimeDefault",
            "type: Unconfined",
            "seccompProfile.type: must be RuntimeDefault",
        ),
        (
            "web.yaml",
            "automountServiceAccountToken: false",
            "automountServiceAccountToken: true",
            "automountServiceAccountToken: must be false",
        ),
        (
            "api.yaml",
            "              memory: 256Mi\n",
            "",
            "spec.template.spec.containers[0].resources.limits.memory: missing",
        ),
        (
            "api.yaml",
            "mountPath: /tmp",
            "mountPath: /scratch",
            "containers[0].volumeMounts: mount an emptyDir at /tmp",
        ),
        (
            "web.yaml",
            "imagePullPolicy: IfNotPresent",
            "imagePullPolicy: Always",
            "containers[0].imagePullPolicy: must be IfNotPresent",
        ),
        (
            "web.yaml",
            "              port: http\n",
            "              port: htp\n",
            "containers[0].readinessProbe.httpGet.port: `htp` names no port",
        ),
        (
            "redis.yaml",
            "app.kubernetes.io/managed-by: wander-xtask",
            "app.kubernetes.io/managed-by: helm",
            "Service/redis: metadata.labels[\"app.kubernetes.io/managed-by\"]: must be `wander-xtask`",
        ),
    ] {
        assert_edit_fails(file, from, to, &[expected]);
    }
}

#[test]
fn services_and_host_ports_must_match() {
    assert_edit_fails(
        "web.yaml",
        "  selector:\n    app.kubernetes.io/name: web",
        "  selector:\n    app.kubernetes.io/name: webb",
        &["manifests/web.yaml: Service/web: spec.selector: selects no workload"],
    );
    assert_edit_fails(
        "kind-config.yaml",
        "      - containerPort: 30080\n        hostPort: 8080\n        listenAddress: 127.0.0.1\n        protocol: TCP\n",
        "",
        &[
            "manifests/api.yaml: Service/api: spec.ports[0].nodePort: 30080 has no extraPortMappings entry in manifests/kind-config.yaml",
        ],
    );
    assert_edit_fails(
        "kind-config.yaml",
        "hostPort: 8080",
        "hostPort: 3000",
        &["extraPortMappings[1].hostPort: 3000 is already mapped to web"],
    );
    assert_edit_fails(
        "kind-config.yaml",
        "containerPort: 30080",
        "containerPort: 30081",
        &[
            "manifests/kind-config.yaml: Cluster: nodes[0].extraPortMappings[1].containerPort: 30081 is no Service's nodePort",
            "api 30080",
        ],
    );
    assert_edit_fails(
        "kind-config.yaml",
        "listenAddress: 127.0.0.1",
        "listenAddress: 0.0.0.0",
        &["extraPortMappings[0].listenAddress: set 127.0.0.1"],
    );
    assert_edit_fails(
        "api.yaml",
        "nodePort: 30080",
        "nodePort: 30081",
        &["containerPort: 30080 is no Service's nodePort"],
    );
    assert_edit_fails(
        "api.yaml",
        "targetPort: http",
        "targetPort: web",
        &["Service/api: spec.ports[0].targetPort: `web` names no container port of api"],
    );
}

#[test]
fn the_kustomization_lists_every_manifest_and_nothing_else() {
    let err = Fixture::new()
        .write("extra.yaml", "apiVersion: v1\n")
        .error();
    assert!(
        err.contains("manifests/extra.yaml: not listed in manifests/kustomization.yaml"),
        "{err}"
    );
    let err = Fixture::new()
        .edit(
            "kustomization.yaml",
            "  - web.yaml\n",
            "  - web.yaml\n  - worker.yaml\n",
        )
        .error();
    assert!(
        err.contains("could not read manifests/worker.yaml"),
        "{err}"
    );
    let err = Fixture::new()
        .edit(
            "kustomization.yaml",
            "  - web.yaml\n",
            "  - web.yaml\n  - kind-config.yaml\n",
        )
        .error();
    assert!(
        err.contains("`kind-config.yaml` is not a Kubernetes object"),
        "{err}"
    );
    let err = Fixture::new()
        .edit(
            "kustomization.yaml",
            "namespace: wander",
            "namespace: other",
        )
        .error();
    assert!(
        err.contains(
            "manifests/namespace.yaml: Namespace/wander: the kustomization's namespace is `other`"
        ),
        "{err}"
    );
    // Files that are not YAML are not the loader's business.
    Fixture::new().write("README.md", "notes\n").load().unwrap();
}

#[test]
fn an_object_defined_twice_is_an_error() {
    let config = std::fs::read_to_string(real_manifests().join("config.yaml")).unwrap();
    let err = Fixture::new()
        .write("config.yaml", &format!("{config}---\n{config}"))
        .error();
    assert!(
        err.contains("manifests/config.yaml: ConfigMap/wander-config: defined twice"),
        "{err}"
    );
}
