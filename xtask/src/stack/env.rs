//! A container's environment as the kubelet builds it: `envFrom`, then `env`, with Kubernetes'
//! `$(VAR)` expansion of `command`, `args` and `env` values.

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::{Container, EnvVar};

use super::{SECRET_NAME, Stack};
use crate::state::Secrets;

/// Expands `$(NAME)` references in `value` the way the kubelet does, so that the docker runtime
/// gives a container exactly the environment Kubernetes would.
///
/// `$(NAME)` becomes `lookup(NAME)`; a name `lookup` does not know stays as written, `$(NAME)`,
/// and so does an unclosed `$(`. `$$` is an escaped `$`: `$$(NAME)` gives the literal `$(NAME)`.
/// A `$` followed by anything else is kept as it is.
pub(crate) fn expand_env(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            // `$$`: one literal `$`, and whatever follows is not a reference.
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            if let Some(close) = inner.find(')') {
                let name = &inner[..close];
                if let Some(found) = lookup(name) {
                    out.push_str(&found);
                } else {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
                rest = &inner[close + 1..];
            } else {
                // No closing parenthesis: the rest is literal text.
                out.push_str("$(");
                rest = inner;
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment in Kubernetes' order: every `envFrom` source, then `env`, each
/// value expanded against the variables defined before it.
pub(crate) fn container_env(
    stack: &Stack,
    secrets: &Secrets,
    container: &Container,
) -> anyhow::Result<Vec<String>> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, name: String, value: String| {
        if let Some(existing) = vars.iter_mut().find(|(n, _)| *n == name) {
            existing.1 = value;
        } else {
            vars.push((name, value));
        }
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(reference) = &source.config_map_ref {
            let map = stack
                .config_map(&reference.name)
                .ok_or_else(|| anyhow!("ConfigMap {} does not exist", reference.name))?;
            for (key, value) in map.data.iter().flatten() {
                set(&mut vars, format!("{prefix}{key}"), value.clone());
            }
        }
        if let Some(reference) = &source.secret_ref {
            check_secret_name(&reference.name)?;
            for (key, value) in secrets.entries() {
                set(
                    &mut vars,
                    format!("{prefix}{}", env_name(key)),
                    value.to_owned(),
                );
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = env_value(var, stack, secrets, &vars)?;
        set(&mut vars, var.name.clone(), value);
    }
    Ok(vars.into_iter().map(|(n, v)| format!("{n}={v}")).collect())
}

fn env_value(
    var: &EnvVar,
    stack: &Stack,
    secrets: &Secrets,
    defined: &[(String, String)],
) -> anyhow::Result<String> {
    if let Some(value) = &var.value {
        let lookup = |name: &str| {
            defined
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        return Ok(expand_env(value, lookup));
    }
    let Some(from) = &var.value_from else {
        return Ok(String::new());
    };
    if let Some(key_ref) = &from.config_map_key_ref {
        let map = stack
            .config_map(&key_ref.name)
            .ok_or_else(|| anyhow!("{}: ConfigMap {} does not exist", var.name, key_ref.name))?;
        return map
            .data
            .as_ref()
            .and_then(|d| d.get(&key_ref.key))
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "{}: ConfigMap {} has no key {}",
                    var.name,
                    key_ref.name,
                    key_ref.key
                )
            });
    }
    if let Some(key_ref) = &from.secret_key_ref {
        check_secret_name(&key_ref.name)?;
        return secrets.get(&key_ref.key).map(str::to_owned).ok_or_else(|| {
            anyhow!(
                "{}: the generated Secret has no key {}",
                var.name,
                key_ref.key
            )
        });
    }
    bail!(
        "{}: only values, ConfigMap and Secret references are supported",
        var.name
    )
}

/// Only the generated Secret exists: a reference to any other is an error.
pub(crate) fn check_secret_name(name: &str) -> anyhow::Result<()> {
    if name == SECRET_NAME {
        Ok(())
    } else {
        bail!("Secret {name} is not generated by the xtask (only {SECRET_NAME})")
    }
}

/// `postgres-password` → `POSTGRES_PASSWORD`, for `envFrom` of the generated Secret.
fn env_name(key: &str) -> String {
    key.replace('-', "_").to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::{env_name, expand_env};

    #[test]
    fn secret_keys_become_variable_names() {
        assert_eq!(env_name("postgres-password"), "POSTGRES_PASSWORD");
        assert_eq!(env_name("api-token"), "API_TOKEN");
    }

    fn lookup(name: &str) -> Option<String> {
        match name {
            "PASSWORD" => Some("s3cret".to_owned()),
            "EMPTY" => Some(String::new()),
            "NESTED" => Some("$(PASSWORD)".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn references_expand_as_the_kubelet_expands_them() {
        for (input, expected) in [
            ("", ""),
            ("plain", "plain"),
            ("$(PASSWORD)", "s3cret"),
            (
                "postgres://wander:$(PASSWORD)@postgres:5432/wander",
                "postgres://wander:s3cret@postgres:5432/wander",
            ),
            ("$(PASSWORD)$(PASSWORD)", "s3crets3cret"),
            ("[$(EMPTY)]", "[]"),
            // An unknown name is kept verbatim, parentheses included.
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("a$(UNKNOWN)b$(PASSWORD)", "a$(UNKNOWN)bs3cret"),
            ("$()", "$()"),
            // `$$` escapes the reference, and is itself one `$`.
            ("$$(PASSWORD)", "$(PASSWORD)"),
            ("$$$(PASSWORD)", "$s3cret"),
            ("$$$$(PASSWORD)", "$$(PASSWORD)"),
            ("cost: $$5", "cost: $5"),
            // A lone `$` or one before another character is literal.
            ("$", "$"),
            ("a$", "a$"),
            ("$PASSWORD", "$PASSWORD"),
            ("${PASSWORD}", "${PASSWORD}"),
            // Unclosed references are literal.
            ("$(PASSWORD", "$(PASSWORD"),
            ("x $( y", "x $( y"),
            // Values are not expanded again.
            ("$(NESTED)", "$(PASSWORD)"),
            ("ünï$(PASSWORD)çødé", "ünïs3cretçødé"),
        ] {
            assert_eq!(expand_env(input, lookup), expected, "{input:?}");
        }
    }
}
