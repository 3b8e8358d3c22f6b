//! HTML pages as strings, server-side. Everything that comes from an object goes through
//! [`escape`]; the pages have no inline script or style (the Content-Security-Policy forbids
//! both), so widths are SVG attributes and progress is `<progress>`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use slipway_api::cluster::{Cluster, ConditionStatus};
use slipway_api::clusterclass::ClusterClass;
use slipway_api::machine::{Machine, MachineRole};

use crate::fleet::{self, FleetSummary, Health};

/// Append formatted text to a `String`.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {
        $out.push_str(&format!($($arg)*))
    };
}

/// Escape text for HTML element content and double- or single-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escape a URL path segment (names are DNS labels, but nothing is assumed).
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The dashboard URL of a cluster.
pub fn cluster_href(namespace: &str, name: &str) -> String {
    format!("/ui/clusters/{}/{}", segment(namespace), segment(name))
}

/// Which page a document is, for the live-update script.
pub enum Scope<'a> {
    Overview,
    Cluster { namespace: &'a str, name: &'a str },
    None,
}

/// A whole document around `body` (the inside of `<main>`).
pub fn page(title: &str, scope: Scope<'_>, signed_in: bool, body: &str) -> String {
    let mut out = String::new();
    put!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{} · Slipway</title>\
         <link rel=\"stylesheet\" href=\"/ui/assets/style.css\">\
         <script src=\"/ui/assets/app.js\" defer></script></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><a class=\"brand\" href=\"/ui/\">Slipway</a>",
        escape(title)
    );
    if signed_in {
        out.push_str(
            "<nav aria-label=\"Primary\"><a href=\"/ui/\">Fleet</a></nav>\
             <span id=\"live\" class=\"live\" role=\"status\">Connecting…</span>\
             <form method=\"post\" action=\"/ui/logout\"><button type=\"submit\">Log out</button></form>",
        );
    }
    out.push_str("</header>");
    let attrs = match scope {
        Scope::Overview => " data-scope=\"overview\"".to_string(),
        Scope::Cluster { namespace, name } => format!(
            " data-scope=\"cluster\" data-namespace=\"{}\" data-name=\"{}\"",
            escape(namespace),
            escape(name)
        ),
        Scope::None => String::new(),
    };
    put!(
        out,
        "<main id=\"main\"{attrs}>{body}</main></body></html>\n"
    );
    out
}

/// The login form, with an error when a token was refused.
pub fn login(error: Option<&str>) -> String {
    let mut body = String::from(
        "<section class=\"login\" aria-labelledby=\"login-title\">\
         <h1 id=\"login-title\">Sign in to Slipway</h1>\
         <p>Paste an API bearer token, such as the admin token in \
         <code>&lt;data-dir&gt;/admin.kubeconfig</code>.</p>",
    );
    if let Some(e) = error {
        put!(body, "<p class=\"error\" role=\"alert\">{}</p>", escape(e));
    }
    body.push_str(
        "<form method=\"post\" action=\"/ui/login\">\
         <label for=\"token\">Bearer token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required autofocus>\
         <button type=\"submit\">Sign in</button></form></section>",
    );
    page("Sign in", Scope::None, false, &body)
}

/// A page saying something is missing or failed.
pub fn message(title: &str, text: &str) -> String {
    page(
        title,
        Scope::None,
        true,
        &format!(
            "<section><h1>{}</h1><p>{}</p><p><a href=\"/ui/\">Back to the fleet</a></p></section>",
            escape(title),
            escape(text)
        ),
    )
}

fn badge(health: Health) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        health.class(),
        health.label()
    )
}

fn condition_badge(status: ConditionStatus, good_when_true: bool) -> String {
    let class = match (status, good_when_true) {
        (ConditionStatus::Unknown, _) => "unknown",
        (ConditionStatus::True, true) | (ConditionStatus::False, false) => "good",
        (ConditionStatus::True, false) => "busy",
        (ConditionStatus::False, true) => "bad",
    };
    format!("<span class=\"badge {class}\">{status}</span>")
}

fn money(v: f64) -> String {
    format!("${v:.2}")
}

fn name_of(c: &Cluster) -> (&str, &str) {
    (
        c.metadata.namespace.as_deref().unwrap_or_default(),
        c.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// A small table of counts with a caption.
fn counts_table(id: &str, title: &str, key: &str, rows: &[(String, usize, String)]) -> String {
    let mut out = format!(
        "<table class=\"counts\" aria-labelledby=\"{id}\"><caption id=\"{id}\">{}</caption>\
         <thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"num\">Clusters</th></tr></thead><tbody>",
        escape(title),
        escape(key)
    );
    for (label, n, note) in rows {
        put!(
            out,
            "<tr><th scope=\"row\">{}{}</th><td class=\"num\">{n}</td></tr>",
            escape(label),
            if note.is_empty() {
                String::new()
            } else {
                format!(" <span class=\"muted\">{}</span>", escape(note))
            }
        );
    }
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"2\" class=\"muted\">none</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// Horizontal bars as inline SVG: one row per version, width by share of the fleet.
pub fn version_chart(versions: &[(String, usize)]) -> String {
    let total: usize = versions.iter().map(|(_, n)| n).sum();
    let max = versions.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let row = 26;
    let height = (versions.len().max(1) * row) as u32;
    let description = versions
        .iter()
        .map(|(v, n)| format!("{v}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 600 {height}\" width=\"100%\" height=\"{height}\" \
         role=\"img\" aria-labelledby=\"versions-chart-title\" preserveAspectRatio=\"xMinYMin meet\">\
         <title id=\"versions-chart-title\">Clusters per Kubernetes version: {}</title>",
        escape(if description.is_empty() {
            "no clusters"
        } else {
            &description
        })
    );
    for (i, (version, n)) in versions.iter().enumerate() {
        let y = i * row;
        let width = (*n as f64 / max as f64 * 400.0).max(2.0);
        let share = if total == 0 {
            0.0
        } else {
            *n as f64 * 100.0 / total as f64
        };
        put!(
            out,
            "<g class=\"bar\" data-version=\"{v}\"><text x=\"0\" y=\"{ty}\" class=\"label\">{v}</text>\
             <rect x=\"110\" y=\"{ry}\" width=\"{width:.1}\" height=\"16\" rx=\"3\"></rect>\
             <text x=\"{tx:.1}\" y=\"{ty}\" class=\"value\">{n} ({share:.0}%)</text></g>",
            v = escape(version),
            ty = y + 17,
            ry = y + 5,
            tx = 110.0 + width + 8.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// What the overview shows.
pub struct Overview<'a> {
    pub clusters: &'a [Cluster],
    pub machines: &'a [Machine],
    pub classes: &'a [ClusterClass],
    pub now: Timestamp,
}

/// The inside of the overview's `<main>`: sections with stable ids the script replaces.
pub fn overview_body(o: &Overview<'_>) -> String {
    let s = FleetSummary::new(o.clusters, o.machines, o.now);
    let mut out = String::new();
    let healthy = s.by_health.get(&Health::Healthy).copied().unwrap_or(0);
    put!(
        out,
        "<section id=\"stats\" aria-labelledby=\"fleet-title\"><h1 id=\"fleet-title\">Fleet</h1>\
         <dl class=\"tiles\">\
         <div><dt>Clusters</dt><dd id=\"stat-clusters\">{}</dd></div>\
         <div><dt>Healthy</dt><dd id=\"stat-healthy\">{healthy}</dd></div>\
         <div><dt>Need attention</dt><dd id=\"stat-attention\" class=\"{}\">{}</dd></div>\
         <div><dt>Nodes ready</dt><dd id=\"stat-nodes\">{} / {}</dd></div>\
         <div><dt>Cost per hour</dt><dd id=\"stat-cost\">{}</dd></div>\
         </dl></section>",
        s.clusters,
        if s.attention() > 0 { "warn" } else { "" },
        s.attention(),
        s.ready_nodes,
        s.nodes,
        money(s.cost_per_hour),
    );

    out.push_str(
        "<section id=\"attention\" aria-labelledby=\"attention-title\">\
         <h2 id=\"attention-title\">Needs attention</h2>",
    );
    if s.attention() == 0 {
        out.push_str("<p class=\"muted\">Nothing needs attention.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th scope=\"col\">Cluster</th><th scope=\"col\">Health</th>\
             <th scope=\"col\">For</th><th scope=\"col\">Why</th></tr></thead><tbody>",
        );
        for (i, a) in s.order.iter().filter(|(_, a)| a.needs_attention()) {
            let (ns, name) = name_of(&o.clusters[*i]);
            put!(
                out,
                "<tr><th scope=\"row\"><a href=\"{}\">{}</a> <span class=\"muted\">{}</span></th>\
                 <td>{}</td><td>{}</td><td><ul class=\"reasons\">",
                cluster_href(ns, name),
                escape(name),
                escape(ns),
                badge(a.health),
                a.since.map(|t| fleet::age(o.now, t)).unwrap_or_default(),
            );
            for r in &a.reasons {
                put!(out, "<li>{}</li>", escape(r));
            }
            out.push_str("</ul></td></tr>");
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");

    put!(
        out,
        "<section id=\"versions\" aria-labelledby=\"versions-title\">\
         <h2 id=\"versions-title\">Kubernetes versions</h2>{}</section>",
        version_chart(&s.by_version)
    );

    let descriptions: BTreeMap<&str, &str> = o
        .classes
        .iter()
        .filter_map(|c| {
            Some((
                c.metadata.name.as_deref()?,
                c.spec.description.as_deref().unwrap_or_default(),
            ))
        })
        .collect();
    let tiers: Vec<_> = s
        .by_tier
        .iter()
        .map(|(t, n)| {
            let note = descriptions.get(t.as_str()).copied().unwrap_or_default();
            (t.clone(), *n, note.to_string())
        })
        .collect();
    let regions: Vec<_> = s
        .by_region
        .iter()
        .map(|(r, n)| (r.clone(), *n, String::new()))
        .collect();
    let versions: Vec<_> = s
        .by_version
        .iter()
        .map(|(v, n)| (v.clone(), *n, String::new()))
        .collect();
    let health: Vec<_> = Health::ALL
        .iter()
        .filter_map(|h| {
            s.by_health
                .get(h)
                .map(|n| (h.label().to_string(), *n, String::new()))
        })
        .collect();
    put!(
        out,
        "<section id=\"breakdown\" aria-labelledby=\"breakdown-title\">\
         <h2 id=\"breakdown-title\">Breakdown</h2><div class=\"grid\">{}{}{}{}</div></section>",
        counts_table("by-tier", "By tier", "Class", &tiers),
        counts_table("by-region", "By region", "Region", &regions),
        counts_table("by-version", "By version", "Version", &versions),
        counts_table("by-health", "By health", "Health", &health),
    );

    out.push_str(
        "<section id=\"clusters\" aria-labelledby=\"clusters-title\">\
         <h2 id=\"clusters-title\">Clusters</h2>",
    );
    if o.clusters.is_empty() {
        out.push_str(
            "<p class=\"muted\">No clusters yet. Apply a Cluster manifest to create one.</p>",
        );
    } else {
        out.push_str(
            "<table><thead><tr><th scope=\"col\">Cluster</th><th scope=\"col\">Team</th>\
             <th scope=\"col\">Tier</th><th scope=\"col\">Region</th><th scope=\"col\">Version</th>\
             <th scope=\"col\" class=\"num\">Nodes</th><th scope=\"col\" class=\"num\">Cost/h</th>\
             <th scope=\"col\">Health</th><th scope=\"col\" class=\"num\">Age</th></tr></thead><tbody>",
        );
        for (i, a) in &s.order {
            let c = &o.clusters[*i];
            let (ns, name) = name_of(c);
            let status = c.status.as_ref();
            put!(
                out,
                "<tr data-cluster=\"{}/{}\"><th scope=\"row\"><a href=\"{}\">{}</a></th><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td class=\"num\">{} / {}</td><td class=\"num\">{}</td>\
                 <td>{}</td><td class=\"num\">{}</td></tr>",
                escape(ns),
                escape(name),
                cluster_href(ns, name),
                escape(name),
                escape(ns),
                escape(&fleet::tier(c)),
                escape(&c.spec.infrastructure.region),
                escape(&fleet::running_version(c)),
                status.and_then(|s| s.ready_nodes).unwrap_or(0),
                status.and_then(|s| s.nodes).unwrap_or(0),
                money(status.and_then(|s| s.cost_per_hour).unwrap_or(0.0)),
                badge(a.health),
                c.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| fleet::age(o.now, t.0))
                    .unwrap_or_default(),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    out
}

/// What a cluster page shows.
pub struct ClusterPage<'a> {
    pub cluster: &'a Cluster,
    pub machines: &'a [Machine],
    /// Events about the cluster and its machines, any order.
    pub events: &'a [Event],
    pub now: Timestamp,
}

fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The most events a cluster page lists.
pub const MAX_EVENTS: usize = 50;

/// The inside of a cluster page's `<main>`.
pub fn cluster_body(p: &ClusterPage<'_>) -> String {
    let c = p.cluster;
    let (ns, name) = name_of(c);
    let machines: Vec<&Machine> = p.machines.iter().collect();
    let a = fleet::assess(c, &machines, p.now);
    let status = c.status.as_ref();
    let versions = status.and_then(|s| s.versions.as_ref());
    let mut out = String::new();
    let dash = || "—".to_string();
    put!(
        out,
        "<section id=\"summary\" aria-labelledby=\"cluster-title\">\
         <p class=\"crumbs\"><a href=\"/ui/\">Fleet</a> / {ns}</p>\
         <h1 id=\"cluster-title\">{name} {badge}</h1><dl class=\"facts\">\
         <div><dt>Team</dt><dd>{ns}</dd></div>\
         <div><dt>Tier</dt><dd>{tier}</dd></div>\
         <div><dt>Region</dt><dd>{region}</dd></div>\
         <div><dt>Zones</dt><dd>{zones}</dd></div>\
         <div><dt>Version wanted</dt><dd>{wanted}</dd></div>\
         <div><dt>Control plane runs</dt><dd>{cp}</dd></div>\
         <div><dt>Oldest kubelet</dt><dd>{nodes_v}</dd></div>\
         <div><dt>Nodes ready</dt><dd id=\"fact-nodes\">{ready} / {nodes}</dd></div>\
         <div><dt>Cost per hour</dt><dd>{cost}</dd></div>\
         <div><dt>Endpoint</dt><dd><code>{endpoint}</code></dd></div>\
         <div><dt>Age</dt><dd>{age}</dd></div>\
         </dl>",
        ns = escape(ns),
        name = escape(name),
        badge = badge(a.health),
        tier = escape(&fleet::tier(c)),
        region = escape(&c.spec.infrastructure.region),
        zones = escape(
            &c.spec
                .infrastructure
                .zones
                .as_ref()
                .map(|z| z.join(", "))
                .unwrap_or_else(dash)
        ),
        wanted = escape(c.spec.version.as_deref().unwrap_or("—")),
        cp = escape(
            versions
                .and_then(|v| v.control_plane.as_deref())
                .unwrap_or("—")
        ),
        nodes_v = escape(versions.and_then(|v| v.nodes.as_deref()).unwrap_or("—")),
        ready = status.and_then(|s| s.ready_nodes).unwrap_or(0),
        nodes = status.and_then(|s| s.nodes).unwrap_or(0),
        cost = money(status.and_then(|s| s.cost_per_hour).unwrap_or(0.0)),
        endpoint = escape(status.and_then(|s| s.endpoint.as_deref()).unwrap_or("—")),
        age = c
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| fleet::age(p.now, t.0))
            .unwrap_or_else(dash),
    );
    if !a.reasons.is_empty() {
        out.push_str("<ul class=\"reasons callout\" aria-label=\"Needs attention\">");
        for r in &a.reasons {
            put!(out, "<li>{}</li>", escape(r));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");

    // Progress: machines Ready and at the wanted version, per group.
    let groups = fleet::progress(c, &machines);
    let converging = groups.iter().any(|g| !g.converged());
    put!(
        out,
        "<section id=\"progress\" aria-labelledby=\"progress-title\" data-converging=\"{converging}\">\
         <h2 id=\"progress-title\">{}</h2>",
        if converging {
            "Converging"
        } else {
            "Converged"
        }
    );
    out.push_str(
        "<table><thead><tr><th scope=\"col\">Group</th><th scope=\"col\">Ready / desired</th>\
         <th scope=\"col\">At wanted version</th>\
         <th scope=\"col\" class=\"num\">Machines</th><th scope=\"col\" class=\"num\">Leaving</th></tr></thead><tbody>",
    );
    for g in &groups {
        put!(
            out,
            "<tr data-group=\"{name}\"><th scope=\"row\">{name}</th>\
             <td class=\"ready\"><progress max=\"{desired}\" value=\"{ready}\" aria-label=\"{name}: ready\"></progress> {ready} / {desired}</td>\
             <td class=\"version\"><progress max=\"{machines}\" value=\"{at}\" aria-label=\"{name}: at the wanted version\"></progress> {at} / {machines}</td>\
             <td class=\"num\">{machines}</td><td class=\"num\">{deleting}</td></tr>",
            name = escape(&g.name),
            desired = g.desired,
            ready = g.ready,
            machines = g.machines,
            at = g.at_version,
            deleting = g.deleting,
        );
    }
    out.push_str("</tbody></table></section>");

    // Conditions.
    out.push_str(
        "<section id=\"conditions\" aria-labelledby=\"conditions-title\">\
         <h2 id=\"conditions-title\">Conditions</h2>",
    );
    let conditions = fleet::cluster_conditions(c);
    if conditions.is_empty() {
        out.push_str("<p class=\"muted\">No conditions reported yet.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th scope=\"col\">Type</th><th scope=\"col\">Status</th>\
             <th scope=\"col\">Reason</th><th scope=\"col\">Message</th><th scope=\"col\" class=\"num\">Since</th></tr></thead><tbody>",
        );
        for cond in conditions {
            put!(
                out,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                escape(&cond.type_),
                condition_badge(cond.status, cond.type_ != "Upgrading"),
                escape(cond.reason.as_deref().unwrap_or_default()),
                escape(cond.message.as_deref().unwrap_or_default()),
                cond.last_transition_time
                    .as_ref()
                    .map(|t| fleet::age(p.now, t.0))
                    .unwrap_or_default(),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");

    // Node pools.
    out.push_str(
        "<section id=\"pools\" aria-labelledby=\"pools-title\"><h2 id=\"pools-title\">Node pools</h2>",
    );
    let pools = c.spec.node_pools.as_deref().unwrap_or(&[]);
    if pools.is_empty() {
        out.push_str("<p class=\"muted\">No node pools.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th scope=\"col\">Pool</th><th scope=\"col\">Machine type</th>\
             <th scope=\"col\">Capacity</th><th scope=\"col\">Zones</th>\
             <th scope=\"col\" class=\"num\">Desired</th><th scope=\"col\" class=\"num\">Min–max</th>\
             <th scope=\"col\" class=\"num\">Ready / machines</th></tr></thead><tbody>",
        );
        let counts = status.and_then(|s| s.node_pools.as_deref()).unwrap_or(&[]);
        for pool in pools {
            let count = counts.iter().find(|n| n.name == pool.name);
            put!(
                out,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}–{}</td><td class=\"num\">{} / {}</td></tr>",
                escape(&pool.name),
                escape(pool.machine_type.as_deref().unwrap_or("—")),
                pool.capacity_type
                    .map(|t| t.as_str())
                    .unwrap_or("on-demand"),
                escape(
                    &pool
                        .zones
                        .as_ref()
                        .or(c.spec.infrastructure.zones.as_ref())
                        .map(|z| z.join(", "))
                        .unwrap_or_else(dash)
                ),
                pool.replicas.unwrap_or(0),
                pool.min_replicas.unwrap_or(0),
                pool.max_replicas
                    .map(|m| m.to_string())
                    .unwrap_or_else(dash),
                count.and_then(|n| n.ready_replicas).unwrap_or(0),
                count.and_then(|n| n.replicas).unwrap_or(0),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");

    // Machines.
    let mut sorted = machines.clone();
    sorted.sort_by(|x, y| {
        let key = |m: &Machine| {
            (
                m.spec.role != MachineRole::ControlPlane,
                m.spec.pool.clone(),
                m.metadata.name.clone(),
            )
        };
        key(x).cmp(&key(y))
    });
    put!(
        out,
        "<section id=\"machines\" aria-labelledby=\"machines-title\">\
         <h2 id=\"machines-title\">Machines <span class=\"muted\">{}</span></h2>",
        sorted.len()
    );
    if sorted.is_empty() {
        out.push_str("<p class=\"muted\">No machines yet.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th scope=\"col\">Machine</th><th scope=\"col\">Role</th>\
             <th scope=\"col\">Pool</th><th scope=\"col\">Zone</th><th scope=\"col\">Type</th>\
             <th scope=\"col\">Capacity</th><th scope=\"col\">Version</th><th scope=\"col\">Phase</th>\
             <th scope=\"col\">Node</th><th scope=\"col\">Address</th><th scope=\"col\" class=\"num\">Age</th></tr></thead><tbody>",
        );
        for m in sorted {
            let st = m.status.as_ref();
            let phase = if m.metadata.deletion_timestamp.is_some() {
                "Deleting".to_string()
            } else {
                st.and_then(|s| s.phase)
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "Pending".to_string())
            };
            let phase_class = match phase.as_str() {
                "Running" => "good",
                "Failed" => "bad",
                _ => "busy",
            };
            let node = fleet::condition(fleet::machine_conditions(m), "NodeReady");
            put!(
                out,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td><span class=\"badge {phase_class}\">{}</span></td><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td></tr>",
                escape(m.metadata.name.as_deref().unwrap_or_default()),
                m.spec.role.as_str(),
                escape(m.spec.pool.as_deref().unwrap_or("—")),
                escape(&m.spec.zone),
                escape(&m.spec.machine_type),
                st.and_then(|s| s.capacity_type)
                    .or(m.spec.capacity_type)
                    .map(|t| t.as_str())
                    .unwrap_or("on-demand"),
                escape(&m.spec.version),
                escape(&phase),
                match node {
                    Some(n) => condition_badge(n.status, true).replace(
                        n.status.as_str(),
                        if n.status == ConditionStatus::True {
                            "Ready"
                        } else {
                            "Not ready"
                        },
                    ),
                    None => "<span class=\"muted\">—</span>".to_string(),
                },
                escape(st.and_then(|s| s.address.as_deref()).unwrap_or("—")),
                m.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| fleet::age(p.now, t.0))
                    .unwrap_or_default(),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");

    // Events, newest first.
    let mut events: Vec<&Event> = p.events.iter().collect();
    events.sort_by_key(|e| std::cmp::Reverse(event_time(e)));
    events.truncate(MAX_EVENTS);
    out.push_str(
        "<section id=\"events\" aria-labelledby=\"events-title\"><h2 id=\"events-title\">Recent events</h2>",
    );
    if events.is_empty() {
        out.push_str("<p class=\"muted\">No events.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th scope=\"col\" class=\"num\">Age</th><th scope=\"col\">Type</th>\
             <th scope=\"col\">Reason</th><th scope=\"col\">Object</th><th scope=\"col\">Message</th></tr></thead><tbody>",
        );
        for e in events {
            let warning = e.type_.as_deref() == Some("Warning");
            put!(
                out,
                "<tr><td class=\"num\">{}</td><td><span class=\"badge {}\">{}</span></td><td>{}</td>\
                 <td>{} {}</td><td>{}</td></tr>",
                event_time(e)
                    .map(|t| fleet::age(p.now, t))
                    .unwrap_or_default(),
                if warning { "bad" } else { "neutral" },
                escape(e.type_.as_deref().unwrap_or("Normal")),
                escape(e.reason.as_deref().unwrap_or_default()),
                escape(e.involved_object.kind.as_deref().unwrap_or_default()),
                escape(e.involved_object.name.as_deref().unwrap_or_default()),
                escape(e.message.as_deref().unwrap_or_default()),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("plain-name.1"), "plain-name.1");
        assert_eq!(cluster_href("team a", "x/y"), "/ui/clusters/team%20a/x%2Fy");
    }

    fn hostile_cluster() -> Cluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "evil", "namespace": "team", "generation": 1},
            "spec": {
                "class": "<img src=x onerror=alert(1)>",
                "version": "1.33.4\"><script>",
                "infrastructure": {"region": "eu-west-1</td>"},
                "nodePools": [{"name": "p<b>", "replicas": 1}]
            },
            "status": {"conditions": [{"type": "Ready", "status": "False",
                "reason": "Boom", "message": "<b>bold</b>"}]}
        }))
        .expect("cluster")
    }

    #[test]
    fn object_text_is_escaped_on_every_page() {
        let c = hostile_cluster();
        let now = Timestamp::now();
        let overview = overview_body(&Overview {
            clusters: std::slice::from_ref(&c),
            machines: &[],
            classes: &[],
            now,
        });
        let cluster = cluster_body(&ClusterPage {
            cluster: &c,
            machines: &[],
            events: &[],
            now,
        });
        for html in [&overview, &cluster] {
            for raw in ["<img", "<script>", "<b>", "</td>\""] {
                assert!(!html.contains(raw), "{raw} unescaped in {html}");
            }
        }
        assert!(overview.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(cluster.contains("&lt;b&gt;bold&lt;/b&gt;"));
    }

    #[test]
    fn chart_has_one_bar_per_version_and_an_accessible_title() {
        let svg = version_chart(&[("1.34.1".to_string(), 3), ("1.33.4".to_string(), 1)]);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("1.34.1: 3, 1.33.4: 1"));
        assert!(svg.contains("3 (75%)"));
        assert!(svg.contains("width=\"400.0\""));
        assert!(version_chart(&[]).contains("no clusters"));
    }

    #[test]
    fn pages_carry_their_live_scope() {
        let html = page(
            "x",
            Scope::Cluster {
                namespace: "team",
                name: "a\"b",
            },
            true,
            "",
        );
        assert!(
            html.contains("data-scope=\"cluster\" data-namespace=\"team\" data-name=\"a&quot;b\"")
        );
        assert!(html.contains("action=\"/ui/logout\""));
        assert!(!login(None).contains("/ui/logout"));
        assert!(login(Some("<bad>")).contains("&lt;bad&gt;"));
    }
}
