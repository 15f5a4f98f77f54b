//! The kube-rs client for the kind cluster: built from a kubeconfig for exactly one context,
//! the cluster's own (`kind-wander` by default) unless `--context` names another (DESIGN.md
//! decision 8).
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
    kube::Client::try_from(config).with_context(|| {
        format!(
            "setting up the Kubernetes client for {cluster}; check the kubeconfig's certificates"
        )
    })
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
