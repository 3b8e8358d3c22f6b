//! Whether a running machine has failed its cluster: a node that never joined in time, or one
//! that stayed NotReady too long. Times are Unix seconds; the controller owns the clock.

use std::time::Duration;

/// What the Machine controller knows about a running machine's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeObservation {
    /// When the provider reported the machine running.
    pub running_since: i64,
    /// Whether the node registered.
    pub registered: bool,
    /// Whether the node is Ready.
    pub ready: bool,
    /// Whether the node has been Ready at some time since the machine ran (then the startup
    /// allowance is over).
    pub was_ready: bool,
    /// Since when the node has been in its current readiness (the NodeReady condition's
    /// last transition).
    pub since: i64,
}

/// Timeouts of machine health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTimeouts {
    /// A node must be Ready this long after its machine runs.
    pub startup: Duration,
    /// A node that was Ready may be NotReady this long.
    pub unhealthy: Duration,
}

impl Default for HealthTimeouts {
    fn default() -> Self {
        Self {
            startup: Duration::from_secs(600),
            unhealthy: Duration::from_secs(300),
        }
    }
}

/// Why a machine failed its health check, if it did.
pub fn unhealthy(
    node: NodeObservation,
    now: i64,
    timeouts: HealthTimeouts,
) -> Option<(&'static str, String)> {
    if node.ready {
        return None;
    }
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let running_for = now.saturating_sub(node.running_since);
    let not_ready_for = now.saturating_sub(node.since);
    // Ready once: the startup allowance is over.
    let was_ready = node.registered && node.was_ready;
    if running_for < secs(timeouts.startup) && !was_ready {
        return None;
    }
    if !node.registered {
        return Some((
            "NodeStartupTimeout",
            format!(
                "the node did not join within {}s of the machine running",
                timeouts.startup.as_secs()
            ),
        ));
    }
    (not_ready_for >= secs(timeouts.unhealthy)).then(|| {
        (
            "NodeUnhealthy",
            format!(
                "the node has been NotReady for {not_ready_for}s (limit {}s)",
                timeouts.unhealthy.as_secs()
            ),
        )
    })
}

/// When [`unhealthy`] would first fail `node` if nothing about it changes (Unix seconds): the
/// controller need not look before then unless something happens.
pub fn judged_at(node: NodeObservation, timeouts: HealthTimeouts) -> i64 {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let startup = node.running_since.saturating_add(secs(timeouts.startup));
    let not_ready = node.since.saturating_add(secs(timeouts.unhealthy));
    match (node.registered, node.registered && node.was_ready) {
        (false, _) => startup,
        (true, true) => not_ready,
        (true, false) => startup.max(not_ready),
    }
}

/// Whether a failed machine's instance is gone for good (it never booted, its spot capacity
/// was reclaimed, the cloud terminated it), as opposed to unhealthy in a way that may pass (a
/// node NotReady or never joined, a zone out). Replacing a gone machine cannot make anything
/// worse, so it is replaced even when much of its cluster is failing; the share of unhealthy
/// machines that holds replacement back counts only the others.
pub fn instance_gone(failure_reason: Option<&str>) -> bool {
    matches!(
        failure_reason,
        Some("ProvisioningFailed" | "SpotInterruption" | "InstanceTerminated")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: HealthTimeouts = HealthTimeouts {
        startup: Duration::from_secs(600),
        unhealthy: Duration::from_secs(300),
    };

    fn node(registered: bool, ready: bool, since: i64) -> NodeObservation {
        NodeObservation {
            running_since: 0,
            registered,
            ready,
            was_ready: false,
            since,
        }
    }

    /// A registered node that was Ready and has been NotReady since `since`.
    fn was_ready(since: i64) -> NodeObservation {
        NodeObservation {
            was_ready: true,
            ..node(true, false, since)
        }
    }

    #[test]
    fn table() {
        let cases = [
            // (node, now, expected reason)
            (node(false, false, 0), 599, None),
            (node(false, false, 0), 600, Some("NodeStartupTimeout")),
            (node(true, true, 0), 10_000, None),
            (node(true, false, 0), 599, None),
            // Registered, went NotReady late: the unhealthy timeout counts from then.
            (was_ready(5_000), 5_299, None),
            (was_ready(5_000), 5_300, Some("NodeUnhealthy")),
            // Ready, then NotReady early in its life: the unhealthy timeout alone counts.
            (was_ready(100), 399, None),
            (was_ready(100), 400, Some("NodeUnhealthy")),
            // Ready and NotReady again within the second it started running (timestamps are
            // whole seconds): still the unhealthy timeout alone.
            (was_ready(0), 299, None),
            (was_ready(0), 300, Some("NodeUnhealthy")),
            // Registered but never Ready: after the startup timeout, as long NotReady.
            (node(true, false, 0), 600, Some("NodeUnhealthy")),
            (node(true, false, 100), 599, None),
            (node(true, false, 100), 600, Some("NodeUnhealthy")),
            (node(true, false, 400), 699, None),
            (node(true, false, 400), 700, Some("NodeUnhealthy")),
        ];
        for (n, now, want) in cases {
            assert_eq!(unhealthy(n, now, T).map(|(r, _)| r), want, "{n:?} at {now}");
        }
    }

    #[test]
    fn judged_at_is_the_first_moment_unhealthy_fails_the_node() {
        for n in [
            node(false, false, 0),
            node(true, false, 0),
            node(true, false, 100),
            node(true, false, 400),
            was_ready(0),
            was_ready(100),
            was_ready(5_000),
        ] {
            let at = judged_at(n, T);
            assert!(unhealthy(n, at - 1, T).is_none(), "{n:?} before {at}");
            assert!(unhealthy(n, at, T).is_some(), "{n:?} at {at}");
        }
    }

    #[test]
    fn only_terminal_failures_mean_the_instance_is_gone() {
        for gone in [
            "ProvisioningFailed",
            "SpotInterruption",
            "InstanceTerminated",
        ] {
            assert!(instance_gone(Some(gone)), "{gone}");
        }
        for passing in ["ZoneOutage", "NodeStartupTimeout", "NodeUnhealthy"] {
            assert!(!instance_gone(Some(passing)), "{passing}");
        }
        assert!(!instance_gone(None));
    }
}
