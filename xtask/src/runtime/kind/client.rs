//! The kube-rs client for the kind cluster: built from a kubeconfig for exactly one context,
//! the cluster's own (`kind-wander` by default) unless `--context` names another (docs/design.md,
//! "Only its own cluster, unless told otherwise").
//!
//! The kubeconfig is kind's own (`kind get kubeconfig`), so the user's current context, whatever
//! it is, is never picked up by accident; only an explicit `--context` reads the user's
//! kubeconfig (`$KUBECONFIG` or `~/.kube/config`), where that context lives.

use anyhow::{Context as _, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::cluster::{KindCli, check_context};

/// A client for the cluster the xtask may talk to: the kind cluster's own context, or the
/// context named with `--context` (`requested`), looked up in the user's kubeconfig.
pub(crate) async fn connect(
    kind: &KindCli<'_>,
    requested: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let ours = kind.context();
    let config = match requested {
        None => config_from_text(&kind.kubeconfig()?, None, &ours).await?,
        Some(named) if named == ours => {
            config_from_text(&kind.kubeconfig()?, requested, &ours).await?
        }
        Some(named) => {
            let kubeconfig = Kubeconfig::read().with_context(|| {
                format!(
                    "reading your kubeconfig ($KUBECONFIG or ~/.kube/config) to find the context `{named}` named with --context"
                )
            })?;
            config_for(kubeconfig, requested, &ours).await?
        }
    };
    let cluster = config.cluster_url.to_string();
    let builder = kube::client::ClientBuilder::try_from(config).with_context(|| {
        format!(
            "setting up the Kubernetes client for {cluster}; check the kubeconfig's certificates"
        )
    })?;
    Ok(builder
        .with_layer(&warnings_layer(warnings().clone()))
        .build())
}

/// The `Warning` headers the API server answered with, as they arrive: kube-rs passes them
/// over, and they carry what a request did not refuse but should not do, such as a pod
/// template that Pod Security's `warn` level flags (`would violate PodSecurity ...`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Warnings {
    /// The warnings received since the last call.
    pub(crate) fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    fn push(&self, warning: String) {
        if let Ok(mut warnings) = self.0.lock() {
            warnings.push(warning);
        }
    }
}

/// The warnings of the clients [`connect`] makes (one cluster per command).
pub(crate) fn warnings() -> &'static Warnings {
    static WARNINGS: std::sync::OnceLock<Warnings> = std::sync::OnceLock::new();
    WARNINGS.get_or_init(Warnings::default)
}

/// A layer of the client's service that records every response's `Warning` headers.
pub(crate) fn warnings_layer<B>(
    warnings: Warnings,
) -> tower::util::MapResponseLayer<impl Fn(http::Response<B>) -> http::Response<B> + Clone> {
    tower::util::MapResponseLayer::new(move |response: http::Response<B>| {
        for value in response.headers().get_all(http::header::WARNING) {
            if let Some(text) = value.to_str().ok().and_then(warning_text) {
                warnings.push(text);
            }
        }
        response
    })
}

/// The text of a `Warning` header value as the API server writes it (RFC 7234's `warn-code
/// warn-agent "warn-text"`, e.g. `299 - "would violate PodSecurity \"restricted:latest\": ..."`,
/// k8s.io/apiserver, `endpoints/handlers/responsewriters`), its escapes undone; only code 299
/// (a miscellaneous persistent warning) is the API server's.
pub(crate) fn warning_text(value: &str) -> Option<String> {
    let rest = value.trim().strip_prefix("299 ")?;
    let (_agent, quoted) = rest.split_once(' ')?;
    let mut chars = quoted.strip_prefix('"')?.chars();
    let mut text = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?),
            '"' => return Some(text),
            other => text.push(other),
        }
    }
    None
}

/// [`config_for`] from a kubeconfig's YAML text.
pub(crate) async fn config_from_text(
    text: &str,
    requested: Option<&str>,
    ours: &str,
) -> anyhow::Result<kube::Config> {
    let kubeconfig =
        Kubeconfig::from_yaml(text).context("the kubeconfig is not valid YAML of a kubeconfig")?;
    config_for(kubeconfig, requested, ours).await
}

/// The client configuration for one context of `kubeconfig`: its current context only when
/// that is ours (`kind-<cluster>`), any context named with `--context` (`requested`), and an
/// error for everything else, including a context the kubeconfig does not have.
///
/// Reads nothing outside `kubeconfig` except files it names (certificates given as paths).
pub(crate) async fn config_for(
    kubeconfig: Kubeconfig,
    requested: Option<&str>,
    ours: &str,
) -> anyhow::Result<kube::Config> {
    let current = kubeconfig.current_context.clone().unwrap_or_default();
    let context = check_context(requested, &current, ours)?;
    if !kubeconfig.contexts.iter().any(|c| c.name == context) {
        let known: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let known = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        if context == ours {
            bail!(
                "the kubeconfig has no context `{ours}` (it has: {known}); `cargo xtask dev` creates the kind cluster and its context"
            );
        }
        bail!(
            "the kubeconfig has no context `{context}` (it has: {known}); check the name given to --context"
        );
    }
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("reading the context `{context}` of the kubeconfig"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn warning_headers_read_as_the_api_server_writes_them() {
        // Pod Security's warning on a Deployment whose template breaks `restricted`, as the
        // API server sends it (one header per warning).
        let header = r#"299 - "would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"api\" must set securityContext.allowPrivilegeEscalation=false)""#;
        assert_eq!(
            warning_text(header).as_deref(),
            Some(
                r#"would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "api" must set securityContext.allowPrivilegeEscalation=false)"#
            )
        );
        for not_ours in [
            r#"199 - "a cache's warning""#,
            "299 - unquoted",
            r#"299 - "never closed"#,
            "",
        ] {
            assert_eq!(warning_text(not_ours), None, "{not_ours}");
        }
    }

    #[tokio::test]
    async fn a_clients_warnings_are_collected_from_every_response() {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            let mut handle = std::pin::pin!(handle);
            let (_, send) = handle.next_request().await.unwrap();
            send.send_response(
                Response::builder()
                    .header("warning", r#"299 - "would violate PodSecurity \"restricted:latest\": runAsNonRoot != true""#)
                    .header("warning", r#"299 - "spec.template: a second one""#)
                    .body(Body::from(
                        br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"wander"}}"#
                            .to_vec(),
                    ))
                    .unwrap(),
            );
        });
        let warnings = Warnings::default();
        let client = kube::client::ClientBuilder::new(service, "default")
            .with_layer(&warnings_layer(warnings.clone()))
            .build();
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
        namespaces.get("wander").await.unwrap();
        assert_eq!(
            warnings.take(),
            [
                r#"would violate PodSecurity "restricted:latest": runAsNonRoot != true"#,
                "spec.template: a second one"
            ]
        );
        assert!(warnings.take().is_empty(), "taken once");
    }

    use super::*;

    /// The context of the cluster `wander`.
    const OURS: &str = "kind-wander";

    /// A kubeconfig with kind's context and a shared cluster's, `current` being current.
    fn kubeconfig(current: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
current-context: {current}
clusters:
- name: kind-wander
  cluster:
    server: https://127.0.0.1:41235
    insecure-skip-tls-verify: true
- name: prod-eu
  cluster:
    server: https://prod.example.com:6443
    insecure-skip-tls-verify: true
contexts:
- name: kind-wander
  context:
    cluster: kind-wander
    user: kind-wander
- name: prod-eu
  context:
    cluster: prod-eu
    user: prod-admin
    namespace: payments
users:
- name: kind-wander
  user:
    token: kind-token
- name: prod-admin
  user:
    token: prod-token
"
        )
    }

    async fn server(current: &str, requested: Option<&str>) -> anyhow::Result<String> {
        let config = config_from_text(&kubeconfig(current), requested, OURS).await?;
        Ok(config.cluster_url.to_string())
    }

    #[tokio::test]
    async fn only_kinds_context_is_used_unless_another_is_named() {
        for (current, requested, expected) in [
            ("kind-wander", None, Ok("https://127.0.0.1:41235/")),
            (
                "kind-wander",
                Some("kind-wander"),
                Ok("https://127.0.0.1:41235/"),
            ),
            (
                "prod-eu",
                Some("kind-wander"),
                Ok("https://127.0.0.1:41235/"),
            ),
            (
                "prod-eu",
                None,
                Err("refusing to use the kube context `prod-eu`"),
            ),
            (
                "kind-wander",
                Some("prod-eu"),
                Ok("https://prod.example.com:6443/"),
            ),
            ("kind-wander", Some("staging"), Err("no context `staging`")),
            ("kind-wander", Some(""), Err("needs a context name")),
        ] {
            match (server(current, requested).await, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{current}/{requested:?}"),
                (Err(err), Err(want)) => {
                    let err = format!("{err:#}");
                    assert!(err.contains(want), "{current}/{requested:?}: {err}");
                }
                (got, want) => panic!("{current}/{requested:?}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_named_contexts_user_and_namespace_come_with_it() {
        let config = config_from_text(&kubeconfig("kind-wander"), Some("prod-eu"), OURS)
            .await
            .unwrap();
        assert_eq!(config.default_namespace, "payments");
        let config = config_from_text(&kubeconfig("prod-eu"), Some("kind-wander"), OURS)
            .await
            .unwrap();
        assert_eq!(config.default_namespace, "default");
    }

    #[tokio::test]
    async fn a_kubeconfig_without_kinds_context_says_how_to_get_one() {
        let text = "apiVersion: v1\nkind: Config\ncurrent-context: kind-wander\ncontexts: []\nclusters: []\nusers: []\n";
        let err = format!(
            "{:#}",
            config_from_text(text, None, OURS).await.unwrap_err()
        );
        assert!(
            err.contains("no context `kind-wander` (it has: none)"),
            "{err}"
        );
        assert!(err.contains("cargo xtask dev"), "{err}");
    }

    #[tokio::test]
    async fn a_kubeconfig_without_a_current_context_is_refused() {
        let text = kubeconfig("kind-wander").replace("current-context: kind-wander\n", "");
        let err = format!(
            "{:#}",
            config_from_text(&text, None, OURS).await.unwrap_err()
        );
        assert!(err.contains("no current kube context"), "{err}");
    }

    #[tokio::test]
    async fn text_that_is_no_kubeconfig_is_an_error() {
        let err = format!(
            "{:#}",
            config_from_text("[1, 2", None, OURS).await.unwrap_err()
        );
        assert!(err.contains("not valid YAML of a kubeconfig"), "{err}");
    }
}
