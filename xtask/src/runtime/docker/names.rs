//! The names and labels by which the docker runtime finds what it owns, and nothing else.

/// Every container, network and volume of a stack carries `dev.wander.stack=<stack>`.
pub(crate) const LABEL_STACK: &str = "dev.wander.stack";
/// The workload a container runs.
pub(crate) const LABEL_WORKLOAD: &str = "dev.wander.workload";
/// The hash of the container's plan: equal hash, nothing to recreate.
pub(crate) const LABEL_PLAN: &str = "dev.wander.plan";
/// What the runtime's kubelet needs to supervise a container (its probes), as JSON.
pub(crate) const LABEL_SUPERVISION: &str = "dev.wander.supervision";
/// Marks the short-lived helper that prepares a container's volumes.
pub(crate) const LABEL_VOLUME_SETUP: &str = "dev.wander.volume-setup";

/// Names derived from the stack name (`wander` unless `WANDER_STACK` says otherwise, which lets
/// tests run a stack beside a developer's own).
#[derive(Debug, Clone)]
pub(crate) struct Names {
    stack: String,
}

impl Names {
    /// Names for the stack called `stack`; nothing here checks that it makes usable Docker names
    /// (the configuration does).
    pub(crate) fn new(stack: impl Into<String>) -> Self {
        Self {
            stack: stack.into(),
        }
    }

    /// The stack's name: the value of [`LABEL_STACK`] on everything it owns.
    pub(crate) fn stack(&self) -> &str {
        &self.stack
    }

    /// The stack's one network, named as the stack itself: its containers reach each other there by
    /// Service name.
    pub(crate) fn network(&self) -> String {
        self.stack.clone()
    }

    /// The container that runs `workload` (one replica each): `<stack>-<workload>`.
    pub(crate) fn container(&self, workload: &str) -> String {
        format!("{}-{workload}", self.stack)
    }

    /// A claim's volume; a StatefulSet's claim template is per workload, as in Kubernetes.
    pub(crate) fn volume(&self, claim: &str, workload: Option<&str>) -> String {
        match workload {
            Some(workload) => format!("{}-{claim}-{workload}", self.stack),
            None => format!("{}-{claim}", self.stack),
        }
    }

    /// The label filter that selects exactly this stack's objects.
    pub(crate) fn filter(&self) -> String {
        format!("{LABEL_STACK}={}", self.stack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_with_the_stack() {
        let names = Names::new("wander");
        assert_eq!(names.network(), "wander");
        assert_eq!(names.container("api"), "wander-api");
        assert_eq!(
            names.volume("data", Some("postgres")),
            "wander-data-postgres"
        );
        assert_eq!(names.volume("cache", None), "wander-cache");
        assert_eq!(names.filter(), "dev.wander.stack=wander");
    }
}
