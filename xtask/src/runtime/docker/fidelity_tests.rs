//! The docker runtime against the real engine, field by field: each test is a row of the table in
//! docs/design.md, "The docker runtime, field by field", and shows, from inside the container,
//! that the field does what the kubelet makes it do. The pods run the toolbox image (busybox) as a non-root user.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::kubelet::{self, Events, Shared};
use super::plan::{self, ContainerPlan};
use super::{Applied, DockerRuntime, exec, names::Names};
use crate::config::LogLimits;
use crate::images::toolbox::testing::with_engine;
use crate::stack::Stack;

/// For a pod whose first process ignores SIGTERM (`sleep`, `httpd`): no grace to wait out when
/// the test ends.
const QUICK_STOP: &str = "      terminationGracePeriodSeconds: 1\n";

/// What a test pod adds to the base pod: lines already indented for their place.
#[derive(Default)]
struct Extra<'a> {
    /// Under the pod's `securityContext`.
    pod_security: &'a str,
    /// Under `spec.template.spec`.
    pod: &'a str,
    /// Under the container.
    container: &'a str,
    /// Under the container's `volumeMounts`.
    mounts: &'a str,
    /// Under the pod's `volumes`.
    volumes: &'a str,
    /// Claim templates (the pod is then a StatefulSet), each of 1Gi.
    claims: &'a [&'a str],
    /// The container's command (default: sleep).
    command: &'a str,
}

/// A one-pod stack on the engine, removed at the end of the test.
struct Pod {
    runtime: DockerRuntime,
    stack: Stack,
    image: String,
    _manifests: tempfile::TempDir,
    files: tempfile::TempDir,
    log: LogLimits,
}

impl Pod {
    fn new(docker: bollard::Docker, test: &str, image: &str, extra: &Extra<'_>) -> Self {
        let manifests = tempfile::tempdir().unwrap();
        let dir = manifests.path();
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
        write(
            "kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: wander\nresources:\n  - namespace.yaml\n  - config.yaml\n  - pod.yaml\n".into(),
        );
        write(
            "namespace.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: wander\n  labels:\n    app.kubernetes.io/part-of: wander\n    app.kubernetes.io/managed-by: wander-xtask\n".into(),
        );
        write(
            "config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pod-config\n  labels:\n    app.kubernetes.io/name: pod-config\n    app.kubernetes.io/component: config\n    app.kubernetes.io/part-of: wander\n    app.kubernetes.io/managed-by: wander-xtask\ndata:\n  app.conf: \"port 1\\n\"\n  other.conf: \"other\\n\"\n".into(),
        );
        write(
            "kind-config.yaml",
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n"
                .into(),
        );
        let kind = if extra.claims.is_empty() {
            "Deployment"
        } else {
            "StatefulSet"
        };
        let mut claims = String::new();
        if !extra.claims.is_empty() {
            claims.push_str("  volumeClaimTemplates:\n");
        }
        for name in extra.claims {
            let labels = "app.kubernetes.io/name: pod\n          app.kubernetes.io/component: pod\n          app.kubernetes.io/part-of: wander\n          app.kubernetes.io/managed-by: wander-xtask";
            let _ = std::fmt::Write::write_fmt(
                &mut claims,
                format_args!(
                    "    - metadata:\n        name: {name}\n        labels:\n          {labels}\n      spec:\n        accessModes: [ReadWriteOnce]\n        resources:\n          requests:\n            storage: 1Gi\n"
                ),
            );
        }
        let service_name = if kind == "StatefulSet" {
            "  serviceName: pod\n"
        } else {
            ""
        };
        let command = if extra.command.is_empty() {
            r#"[sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]"#
        } else {
            extra.command
        };
        let labels = "app.kubernetes.io/name: pod\n        app.kubernetes.io/component: pod\n        app.kubernetes.io/part-of: wander\n        app.kubernetes.io/managed-by: wander-xtask";
        write(
            "pod.yaml",
            format!(
                r"apiVersion: apps/v1
kind: {kind}
metadata:
  name: pod
  labels:
    {top}
spec:
{service_name}  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: pod
  template:
    metadata:
      labels:
        {labels}
    spec:
      automountServiceAccountToken: false
{pod}      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        runAsGroup: 1000
{pod_security}        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: pod
          image: {image}
          imagePullPolicy: IfNotPresent
          command: {command}
          readinessProbe:
            exec:
              command: ['true']
            periodSeconds: 1
{container}          resources:
            requests:
              cpu: 10m
              memory: 16Mi
            limits:
              cpu: 500m
              memory: 64Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: tmp
              mountPath: /tmp
{mounts}      volumes:
        - name: tmp
          emptyDir: {{}}
{volumes}{claims}",
                top = labels.replace("\n        ", "\n    "),
                pod = extra.pod,
                pod_security = extra.pod_security,
                container = extra.container,
                mounts = extra.mounts,
                volumes = extra.volumes,
            ),
        );
        let stack = Stack::load(dir).unwrap_or_else(|err| panic!("{err:#}"));
        Self {
            runtime: DockerRuntime::new(
                docker,
                Names::new(format!("t{}-{test}", std::process::id())),
            ),
            stack,
            image: image.to_owned(),
            _manifests: manifests,
            files: tempfile::tempdir().unwrap(),
            log: LogLimits::default(),
        }
    }

    fn plan(&self) -> anyhow::Result<ContainerPlan> {
        let workload = self.stack.workload("pod").unwrap();
        let image = workload.pod_spec.containers[0].image.clone().unwrap();
        let secrets = serde_json::from_str(r#"{"postgres_password":"pw","api_token":"tok"}"#)?;
        plan::plan(
            workload,
            &plan::Inputs {
                stack: &self.stack,
                names: self.runtime.names(),
                secrets: &secrets,
                images: &BTreeMap::from([(image, self.image.clone())]),
                files_root: self.files.path(),
                log: self.log,
            },
        )
    }

    /// Plans and applies the pod, then waits until it is ready.
    async fn up(&self) -> anyhow::Result<(ContainerPlan, Applied)> {
        let plan = self.plan()?;
        self.runtime.ensure_network().await?;
        let applied = self.runtime.apply(&plan).await?;
        self.runtime
            .wait_ready(&plan, Duration::from_secs(60), &|_| {})
            .await?;
        Ok((plan, applied))
    }

    /// Runs `script` with `sh -c` in the pod's container, as its user.
    async fn sh(&self, script: &str) -> (i64, String) {
        let out = exec::capture(
            self.runtime.docker(),
            &self.runtime.names().container("pod"),
            &["sh".to_owned(), "-c".to_owned(), script.to_owned()],
            None,
            &[],
        )
        .await
        .unwrap();
        (
            out.exit_code,
            format!("{}{}", out.stdout_text(), out.stderr_text())
                .trim()
                .to_owned(),
        )
    }

    async fn id(&self) -> String {
        self.runtime
            .inspect(&self.runtime.names().container("pod"))
            .await
            .unwrap()
            .and_then(|c| c.id)
            .unwrap_or_default()
    }
}

/// The runtime's kubelet supervising a test's stack, in this process, until dropped.
struct Kubelet {
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
    _report: tempfile::TempDir,
}

impl Kubelet {
    fn start(pod: &Pod) -> Self {
        let report = tempfile::tempdir().unwrap();
        let shared = Shared::new(Events::none());
        let runtime = pod.runtime.clone();
        let path = report.path().join("kubelet.json");
        let task = {
            let shared = shared.clone();
            tokio::spawn(async move {
                kubelet::supervise_stack(&runtime, &shared, &path, Duration::from_secs(600)).await;
            })
        };
        Self {
            shared,
            task,
            _report: report,
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `body` on a pod made from `extra`, and removes the pod's stack whatever happens.
async fn with_pod<F, Fut>(test: &str, extra: Extra<'_>, body: F)
where
    F: FnOnce(Pod) -> Fut,
    Fut: Future<Output = ()>,
{
    let extra = &extra;
    with_engine(test, |docker, toolbox| async move {
        let pod = Pod::new(docker, test, &toolbox, extra);
        let runtime = pod.runtime.clone();
        // Boxed: each test's body is a large future.
        let body = Box::pin(body(pod));
        let outcome =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body)).await;
        runtime.down(true).await.unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_user_and_groups_are_the_security_contexts() {
    let extra = Extra {
        pod_security: "        fsGroup: 2000\n        supplementalGroups: [3000]\n",
        ..Extra::default()
    };
    with_pod("fid-user", extra, |pod| async move {
        pod.up().await.unwrap();
        let (code, out) = pod.sh("id -u; id -g; id -G").await;
        assert_eq!(code, 0, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "1000");
        assert_eq!(lines[1], "1000");
        let groups: Vec<&str> = lines[2].split_whitespace().collect();
        assert!(
            groups.contains(&"2000") && groups.contains(&"3000"),
            "{out}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_empty_dir_and_claim_is_writable_by_the_user_as_on_kubernetes() {
    // (fsGroup lines, the mode and group every volume's root must have)
    for (security, mode, group) in [
        ("", "777", "0"),
        ("        fsGroup: 2000\n", "2777", "2000"),
    ] {
        let extra = Extra {
            pod_security: security,
            mounts: "            - name: cache\n              mountPath: /cache\n            - name: shm\n              mountPath: /shm\n            - name: data\n              mountPath: /data\n",
            volumes: "        - name: cache\n          emptyDir: {}\n        - name: shm\n          emptyDir:\n            medium: Memory\n            sizeLimit: 1Mi\n",
            claims: &["data"],
            ..Extra::default()
        };
        let test = if security.is_empty() {
            "fid-vol"
        } else {
            "fid-volg"
        };
        with_pod(test, extra, |pod| async move {
            pod.up().await.unwrap();
            for dir in ["/tmp", "/cache", "/data"] {
                let (code, out) = pod
                    .sh(&format!("stat -c '%a %g' {dir} && touch {dir}/made && stat -c %g {dir}/made"))
                    .await;
                assert_eq!(code, 0, "{dir}: {out}");
                let lines: Vec<&str> = out.lines().collect();
                assert_eq!(lines[0], format!("{mode} {group}"), "{dir}: {out}");
                // With fsGroup, what the user makes belongs to that group (set-group-id).
                let made_group = if group == "0" { "1000" } else { group };
                assert_eq!(lines[1], made_group, "{dir}: {out}");
            }
            // The memory-backed one: a tmpfs of its size limit, world-writable with the sticky bit.
            let (code, out) = pod
                .sh("stat -c '%a %g' /shm && grep ' /shm ' /proc/mounts && touch /shm/made && ! dd if=/dev/zero of=/shm/big bs=1024 count=2048 2>/dev/null")
                .await;
            assert_eq!(code, 0, "{out}");
            let tmpfs_mode = if group == "0" { "1777 0" } else { "3777 2000" };
            assert!(out.starts_with(tmpfs_mode), "{out}");
            assert!(out.contains("tmpfs") && out.contains("size=1024k"), "{out}");
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_dir_lives_as_long_as_the_pod_and_a_claim_longer() {
    let extra = Extra {
        mounts: "            - name: data\n              mountPath: /data\n",
        claims: &["data"],
        ..Extra::default()
    };
    with_pod("fid-life", extra, |pod| async move {
        let (plan, _) = pod.up().await.unwrap();
        let (code, out) = pod
            .sh("echo kept > /tmp/mark && echo kept > /data/mark")
            .await;
        assert_eq!(code, 0, "{out}");
        // The process ends: the engine restarts the container, its emptyDir is still there.
        let id = pod.id().await;
        // The exec may be cut off with the process it ends.
        let _ = exec::capture(
            pod.runtime.docker(),
            &id,
            &["kill".to_owned(), "1".to_owned()],
            None,
            &[],
        )
        .await;
        let started = Instant::now();
        loop {
            let details = pod.runtime.inspect(&id).await.unwrap().unwrap();
            if details.restart_count.unwrap_or(0) > 0 && super::is_running(&details) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "not restarted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(pod.sh("cat /tmp/mark").await, (0, "kept".to_owned()));
        // A new container (a new pod): a fresh emptyDir, the same claim.
        let mut other = plan.clone();
        other.env.push("NEW=1".to_owned());
        assert_eq!(pod.runtime.apply(&other).await.unwrap(), Applied::Replaced);
        assert_ne!(pod.id().await, id);
        let (code, out) = pod.sh("ls /tmp; cat /data/mark").await;
        assert_eq!(
            (code, out.as_str()),
            (0, "kept"),
            "the emptyDir must start empty"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fs_group_change_policy_walks_a_claims_files_always_or_on_root_mismatch() {
    for (policy, expected) in [("Always", "2000 660"), ("OnRootMismatch", "0 600")] {
        let security = format!("        fsGroup: 2000\n        fsGroupChangePolicy: {policy}\n");
        let extra = Extra {
            pod_security: &security,
            mounts: "            - name: data\n              mountPath: /data\n",
            claims: &["data"],
            ..Extra::default()
        };
        let test = format!("fid-{}", policy.to_lowercase());
        with_pod(&test, extra, |pod| async move {
            let (plan, _) = pod.up().await.unwrap();
            // A file made by someone else, with another group and no group access.
            let volume = pod.runtime.names().volume("data", Some("pod"));
            let out = run_as_root(
                &pod,
                &volume,
                "touch /v/foreign && chown 0:0 /v/foreign && chmod 600 /v/foreign",
            )
            .await;
            assert_eq!(out.0, 0, "{out:?}");
            // The next pod: Always walks every file, OnRootMismatch only a root that is wrong.
            let mut next = plan.clone();
            next.env.push("NEXT=1".to_owned());
            pod.runtime.apply(&next).await.unwrap();
            let (code, out) = pod.sh("stat -c '%g %a' /data/foreign").await;
            assert_eq!((code, out.as_str()), (0, expected), "{policy}");
        })
        .await;
    }
}

/// Runs `script` as root in a toolbox container with `volume` at `/v`.
async fn run_as_root(pod: &Pod, volume: &str, script: &str) -> (i64, String) {
    use bollard::models::{ContainerCreateBody, HostConfig};
    let docker = pod.runtime.docker();
    let body = ContainerCreateBody {
        image: Some(pod.image.clone()),
        user: Some("0:0".into()),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        labels: Some(std::collections::HashMap::from([(
            "dev.wander.stack".to_owned(),
            pod.runtime.names().stack().to_owned(),
        )])),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{volume}:/v")]),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let id = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .unwrap()
        .id;
    docker.start_container(&id, None).await.unwrap();
    crate::images::toolbox::testing::wait_exited(docker, &id).await;
    let code = docker
        .inspect_container(&id, None)
        .await
        .unwrap()
        .state
        .and_then(|s| s.exit_code)
        .unwrap_or(-1);
    let logs = pod.runtime.last_logs(&id, 20).await;
    let _ = docker
        .remove_container(
            &id,
            Some(
                bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .build(),
            ),
        )
        .await;
    (code, logs)
}

#[tokio::test(flavor = "multi_thread")]
async fn config_map_and_secret_files_have_their_modes_and_mounts_can_be_read_only() {
    let extra = Extra {
        pod_security: "        fsGroup: 2000\n",
        mounts: "            - name: config\n              mountPath: /etc/app\n            - name: picked\n              mountPath: /etc/picked\n            - name: secret\n              mountPath: /etc/secret\n            - name: frozen\n              mountPath: /frozen\n              readOnly: true\n",
        volumes: "        - name: config\n          configMap:\n            name: pod-config\n        - name: picked\n          configMap:\n            name: pod-config\n            defaultMode: 288\n            items:\n              - {key: app.conf, path: sub/app.conf, mode: 256}\n              - {key: other.conf, path: other.conf}\n        - name: secret\n          secret:\n            secretName: wander-secrets\n            defaultMode: 256\n",
        claims: &["frozen"],
        ..Extra::default()
    };
    with_pod("fid-files", extra, |pod| async move {
        pod.up().await.unwrap();
        let (code, out) = pod
            .sh("stat -c '%n %a %g' /etc/app/app.conf /etc/picked/sub/app.conf /etc/picked/other.conf /etc/secret/api-token; cat /etc/picked/sub/app.conf /etc/secret/api-token; echo; ls /etc/picked")
            .await;
        assert_eq!(code, 0, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        // defaultMode, then the item's own mode, and fsGroup's group read (the kubelet's 0440).
        assert_eq!(lines[0], "/etc/app/app.conf 644 2000", "{out}");
        assert_eq!(lines[1], "/etc/picked/sub/app.conf 440 2000", "{out}");
        assert_eq!(lines[2], "/etc/picked/other.conf 440 2000", "{out}");
        assert_eq!(lines[3], "/etc/secret/api-token 440 2000", "{out}");
        assert_eq!(lines[4], "port 1");
        assert_eq!(lines[5], "tok");
        assert_eq!(lines[6..], ["other.conf", "sub"], "only the items chosen");
        // Read-only mounts refuse writes; so do ConfigMap volumes, always.
        for path in ["/frozen/x", "/etc/app/x"] {
            let (code, out) = pod.sh(&format!("touch {path}")).await;
            assert_ne!(code, 0, "{path}: {out}");
            assert!(out.contains("Read-only file system"), "{path}: {out}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn command_args_and_working_dir_replace_the_images_as_kubernetes_does() {
    let extra = Extra {
        command: "[sh, -c, 'cd /proc/self && exec sleep 3600', ignored]",
        container: "          workingDir: /etc\n",
        pod: QUICK_STOP,
        ..Extra::default()
    };
    with_pod("fid-cmd", extra, |pod| async move {
        pod.up().await.unwrap();
        let (code, out) = pod.sh("pwd; tr '\\0' ' ' < /proc/1/cmdline").await;
        assert_eq!(code, 0, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "/etc", "workingDir: {out}");
        assert_eq!(lines[1].trim(), "sleep 3600", "{out}");
    })
    .await;
    // args alone keep the image's entrypoint (the toolbox has none, its command is `sh`):
    // the args are the whole command then, as `docker run image args` would have it.
    let extra = Extra {
        command: "[sleep]\n          args: ['3600']",
        pod: QUICK_STOP,
        ..Extra::default()
    };
    with_pod("fid-args", extra, |pod| async move {
        pod.up().await.unwrap();
        let (_, out) = pod.sh("tr '\\0' ' ' < /proc/1/cmdline").await;
        assert_eq!(out.trim(), "sleep 3600");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grace_period_is_the_time_between_sigterm_and_sigkill() {
    // The process takes 2 s to shut down after SIGTERM and records that it did.
    let extra = Extra {
        pod: "      terminationGracePeriodSeconds: 7\n",
        command: r#"[sh, -c, "trap 'sleep 2; echo clean > /data/stopped; exit 0' TERM; while true; do sleep 1; done"]"#,
        mounts: "            - name: data\n              mountPath: /data\n",
        claims: &["data"],
        ..Extra::default()
    };
    with_pod("fid-grace", extra, |pod| async move {
        let (plan, _) = pod.up().await.unwrap();
        assert_eq!(plan.stop_timeout_secs, 7);
        let details = pod
            .runtime
            .inspect(&plan.container_name)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(details.config.and_then(|c| c.stop_timeout), Some(7));
        // Replacing the container stops the old one as a pod is stopped.
        let mut next = plan.clone();
        next.env.push("NEXT=1".to_owned());
        pod.runtime.apply(&next).await.unwrap();
        assert_eq!(pod.sh("cat /data/stopped").await, (0, "clean".to_owned()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exec_probe_is_judged_by_its_exit_code_alone_and_says_what_it_printed() {
    with_pod("fid-probe", Extra::default(), |pod| async move {
        let (plan, _) = pod.up().await.unwrap();
        let target = super::probe::Target {
            container: &plan.container_name,
            ip: None,
            published: &[],
        };
        let docker = pod.runtime.docker();
        let run = |script: &str| {
            let check = super::probe::Check::Exec(vec!["sh".into(), "-c".into(), script.into()]);
            async move { super::probe::run(docker, &check, target, Duration::from_secs(3)).await }
        };
        // An error printed with exit 0 passes; a cheerful line with exit 1 fails.
        assert_eq!(run("echo 'MISCONF cannot persist'; exit 0").await, Ok(()));
        let failed = run("echo all fine; exit 1").await.unwrap_err();
        assert!(failed.contains("exited with 1: all fine"), "{failed}");
        // The probe's own time limit.
        let slow = super::probe::run(
            docker,
            &super::probe::Check::Exec(vec!["sleep".into(), "5".into()]),
            target,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(slow.contains("timed out after 1s"), "{slow}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_waits_for_the_startup_probe_and_the_success_threshold() {
    // Started once /tmp/started exists (2 s in), ready from then on.
    let extra = Extra {
        command: r#"[sh, -c, "sleep 2; touch /tmp/started; exec sleep 3600"]"#,
        pod: QUICK_STOP,
        container: "          startupProbe:\n            exec:\n              command: [test, -e, /tmp/started]\n            periodSeconds: 1\n            failureThreshold: 30\n",
        ..Extra::default()
    };
    with_pod("fid-startup", extra, |pod| async move {
        let started = Instant::now();
        pod.up().await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "ready before the startup probe passed"
        );
        assert_eq!(pod.sh("test -e /tmp/started").await.0, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_liveness_probe_restarts_the_container_with_back_off() {
    // Alive while /tmp/sick does not exist; the emptyDir keeps it across restarts, so the
    // container keeps failing and the kubelet backs off.
    let extra = Extra {
        container: "          livenessProbe:\n            exec:\n              command: [sh, -c, 'test ! -e /tmp/sick || { echo sick; exit 1; }']\n            periodSeconds: 1\n            failureThreshold: 2\n",
        pod: "      terminationGracePeriodSeconds: 1\n",
        ..Extra::default()
    };
    with_pod("fid-liveness", extra, |pod| async move {
        pod.up().await.unwrap();
        let kubelet = Kubelet::start(&pod);
        let shared = kubelet.shared.clone();
        let name = pod.runtime.names().container("pod");
        let id = pod.id().await;
        // Healthy for a while: nothing happens.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let seen = shared.report();
        assert_eq!(seen.containers[&name].restarts, 0, "{seen:?}");
        assert_eq!(seen.containers[&name].ready, Some(true), "{seen:?}");
        pod.sh("touch /tmp/sick").await;
        // The first restart comes at once, the second after the 10 s back-off.
        let wait_for = |restarts: u32, within: Duration| {
            let shared = shared.clone();
            let name = name.clone();
            async move {
                let started = Instant::now();
                loop {
                    let seen = shared.report();
                    if seen
                        .containers
                        .get(&name)
                        .is_some_and(|c| c.restarts >= restarts)
                    {
                        return (started.elapsed(), seen);
                    }
                    assert!(started.elapsed() < within, "{seen:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let (_, seen) = wait_for(1, Duration::from_secs(15)).await;
        let container = &seen.containers[&pod.runtime.names().container("pod")];
        assert_eq!(container.id, id, "the same container, restarted");
        assert!(
            container
                .last_failure
                .as_deref()
                .is_some_and(|f| f.contains("liveness probe failed") && f.contains("sick")),
            "{seen:?}"
        );
        // In its back-off, status says so (the container waits, stopped).
        let (_, seen) = wait_for(2, Duration::from_secs(30)).await;
        let waited = seen.containers[&pod.runtime.names().container("pod")].clone();
        assert!(
            waited
                .waiting
                .as_deref()
                .is_some_and(|w| w.contains("back-off 10s")),
            "{waited:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_rotated_and_read_across_the_rotation() {
    let extra = Extra {
        command: r#"[sh, -c, "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line-$i-padding-padding-padding-padding; done; exec sleep 3600"]"#,
        pod: QUICK_STOP,
        ..Extra::default()
    };
    with_pod("fid-logs", extra, |mut pod| async move {
        pod.log = LogLimits {
            max_size_bytes: 2048,
            max_files: 3,
        };
        let (plan, _) = pod.up().await.unwrap();
        let details = pod
            .runtime
            .inspect(&plan.container_name)
            .await
            .unwrap()
            .unwrap();
        let config = details.host_config.and_then(|h| h.log_config).unwrap();
        assert_eq!(config.typ.as_deref(), Some("json-file"));
        let options = config.config.unwrap();
        assert_eq!(options["max-size"], "2048");
        assert_eq!(options["max-file"], "3");
        // On disk: at most three files, and a rotation happened.
        let log_path = std::path::PathBuf::from(details.log_path.unwrap());
        let started = Instant::now();
        while !log_path.with_extension("log.1").exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "never rotated");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let dir = log_path.parent().unwrap();
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("-json.log")
            })
            .count();
        assert!(files <= 3, "{files} log files");
        // What the engine reads spans the rotated files: the last line and one well before it.
        let text = pod.runtime.last_logs(&plan.container_name, 1000).await;
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.last().unwrap().starts_with("line-200-"), "{text}");
        let current = std::fs::read_to_string(&log_path).unwrap();
        let first = lines.first().unwrap();
        assert!(
            !current.contains(first),
            "the oldest line read must come from a rotated file: {first}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_volume_sub_path_is_mounted_or_refused_by_what_the_engine_can_do() {
    let extra = Extra {
        mounts: "            - name: cache\n              mountPath: /part\n              subPath: part\n",
        volumes: "        - name: cache\n          emptyDir: {}\n",
        ..Extra::default()
    };
    with_pod("fid-subpath", extra, |pod| async move {
        let version = pod.runtime.docker().client_version();
        let outcome = pod.up().await;
        if (version.major_version, version.minor_version) >= (1, 45) {
            outcome.unwrap();
            assert_eq!(
                pod.sh("touch /part/x && echo ok").await,
                (0, "ok".to_owned())
            );
        } else {
            let err = format!("{:#}", outcome.unwrap_err());
            assert!(
                err.contains("subPath on a volume needs Docker Engine 26"),
                "{err}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_and_tcp_probes_are_judged_by_status_code_and_connection() {
    // busybox's httpd serves /tmp/www: /ok exists, anything else is a 404.
    let extra = Extra {
        command: r#"[sh, -c, "mkdir -p /tmp/www && echo ok > /tmp/www/ok && exec httpd -f -p 8080 -h /tmp/www"]"#,
        pod: QUICK_STOP,
        container: "          ports:\n            - {name: http, containerPort: 8080}\n",
        ..Extra::default()
    };
    with_pod("fid-http", extra, |pod| async move {
        let (plan, _) = pod.up().await.unwrap();
        let details = pod
            .runtime
            .inspect(&plan.container_name)
            .await
            .unwrap()
            .unwrap();
        let ip = super::describe(&details, &pod.runtime.names().network()).ip;
        let target = super::probe::Target {
            container: &plan.container_name,
            ip: ip.as_deref(),
            published: &[],
        };
        let docker = pod.runtime.docker();
        let second = Duration::from_secs(2);
        let http = |path: &str| super::probe::Check::Http {
            port: 8080,
            path: path.to_owned(),
        };
        // (check, passes, what a failure says)
        let cases = [
            (http("/ok"), true, ""),
            (http("/missing"), false, "answered 404"),
            (super::probe::Check::Tcp { port: 8080 }, true, ""),
            (super::probe::Check::Tcp { port: 8081 }, false, "port 8081"),
        ];
        for (check, passes, says) in cases {
            let result = super::probe::run(docker, &check, target, second).await;
            assert_eq!(result.is_ok(), passes, "{check:?}: {result:?}");
            if let Err(why) = result {
                assert!(why.contains(says), "{check:?}: {why}");
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redis_probe_fails_when_redis_answers_with_an_error() {
    with_engine("fid-redis", |docker, _toolbox| async move {
        let ctx = crate::context::Context::for_tests();
        let stack = Stack::load(&ctx.root().join("manifests")).unwrap();
        let redis = stack.workload("redis").unwrap();
        let manifest_image = redis.pod_spec.containers[0].image.clone().unwrap();
        let image = crate::images::resolve(
            &ctx,
            &docker,
            &manifest_image,
            crate::images::Origin::Manifest,
            crate::images::app::Profile::Optimised,
            &|_| {},
        )
        .await
        .unwrap()
        .reference;
        let runtime = DockerRuntime::new(
            docker,
            Names::new(format!("t{}-fid-redis", std::process::id())),
        );
        let files = tempfile::tempdir().unwrap();
        let secrets =
            serde_json::from_str(r#"{"postgres_password":"pw","api_token":"tok"}"#).unwrap();
        let mut plan = plan::plan(
            redis,
            &plan::Inputs {
                stack: &stack,
                names: runtime.names(),
                secrets: &secrets,
                images: &BTreeMap::from([(manifest_image, image)]),
                files_root: files.path(),
                log: LogLimits::default(),
            },
        )
        .unwrap();
        // Redis as the manifests run it, but saving each second into a folder it cannot write:
        // after a write, every command (PING too) is answered with MISCONF.
        let config = &mut plan.file_mounts[0]
            .files
            .get_mut("redis.conf")
            .unwrap()
            .content;
        *config = config
            .replace("dir /data", "dir /etc/redis")
            .replace("save 60 1", "save 1 1");
        // A Redis that cannot save will not stop on SIGTERM (it saves first): no grace to wait.
        plan.stop_timeout_secs = 1;
        let outcome = async {
            runtime.ensure_network().await?;
            runtime.apply(&plan).await?;
            runtime
                .wait_ready(&plan, Duration::from_secs(60), &|_| {})
                .await?;
            let docker = runtime.docker();
            let name = plan.container_name.clone();
            let cli = |args: &[&str]| {
                let command: Vec<String> = std::iter::once("redis-cli")
                    .chain(args.iter().copied())
                    .map(str::to_owned)
                    .collect();
                let name = name.clone();
                async move { exec::capture(docker, &name, &command, None, &[]).await }
            };
            cli(&["set", "k", "v"]).await?;
            let started = Instant::now();
            loop {
                let reply = cli(&["ping"]).await?;
                // redis-cli exits 0 on an error reply: its exit code alone cannot tell.
                assert_eq!(reply.exit_code, 0);
                if reply.stdout_text().contains("MISCONF") {
                    break;
                }
                anyhow::ensure!(started.elapsed() < Duration::from_secs(20), "no MISCONF");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let target = super::probe::Target {
                container: &plan.container_name,
                ip: None,
                published: &[],
            };
            let mut verdicts = Vec::new();
            for probe in [&plan.probes.readiness, &plan.probes.liveness] {
                let probe = probe.as_ref().unwrap();
                verdicts
                    .push(super::probe::run(docker, &probe.check, target, probe.timeout()).await);
            }
            anyhow::Ok(verdicts)
        }
        .await;
        runtime.down(true).await.unwrap();
        for verdict in outcome.unwrap() {
            let why = verdict.unwrap_err();
            assert!(why.contains("MISCONF"), "{why}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_killed_through_the_engine_is_started_again_by_the_kubelet() {
    with_pod("fid-killed", Extra::default(), |pod| async move {
        pod.up().await.unwrap();
        let kubelet = Kubelet::start(&pod);
        let shared = kubelet.shared.clone();
        let id = pod.id().await;
        // Supervised first (the kubelet has seen it run), then killed: the engine's restart
        // policy does not apply to a container killed through the engine.
        let started = Instant::now();
        while shared.report().containers.is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never supervised"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        pod.runtime
            .docker()
            .kill_container(&id, None)
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            let details = pod.runtime.inspect(&id).await.unwrap().unwrap();
            let restarts = shared
                .report()
                .containers
                .values()
                .next()
                .map_or(0, |c| c.restarts);
            if super::is_running(&details) && restarts == 1 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "not started again: {:?}",
                shared.report()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}
