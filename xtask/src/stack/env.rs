//! Kubernetes' `$(VAR)` expansion of container `command`, `args` and `env` values.

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

#[cfg(test)]
mod tests {
    use super::expand_env;

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
