//! How one group of identical machines (the control plane, or a node pool) moves toward its
//! desired size and template.
//!
//! Scaling keeps the group balanced across its zones: a new machine goes to the zone with the
//! fewest, a removed one comes from the zone with the most (unhealthy machines first, then the
//! newest). Machines built from an older template are replaced the way a Deployment replaces
//! pods: at most `desired + maxSurge` machines exist (machines being deleted count, they still
//! cost and hold addresses), and at least `desired - maxUnavailable` healthy ones stay.

use std::collections::BTreeMap;

/// One machine of a group, as the controller observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub zone: String,
    /// The template the machine was built from.
    pub template_hash: String,
    /// Its node is Ready.
    pub healthy: bool,
    /// Already being deleted.
    pub deleting: bool,
    /// Creation order (larger is newer).
    pub created: u64,
}

/// Rolling replacement limits, already resolved to machine counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_surge: usize,
    pub max_unavailable: usize,
}

impl Limits {
    /// Limits from the spec's values (counts, or percentages of `desired`: surge rounds up,
    /// unavailable rounds down, as a Deployment's do). Both zero would never progress: surge 1.
    pub fn resolve(desired: usize, surge: Amount, unavailable: Amount) -> Self {
        let max_surge = surge.of(desired, true);
        let max_unavailable = unavailable.of(desired, false);
        if max_surge == 0 && max_unavailable == 0 {
            Self {
                max_surge: 1,
                max_unavailable: 0,
            }
        } else {
            Self {
                max_surge,
                max_unavailable,
            }
        }
    }
}

/// A count or a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Count(usize),
    Percent(usize),
}

impl Amount {
    fn of(self, total: usize, round_up: bool) -> usize {
        match self {
            Self::Count(n) => n,
            Self::Percent(p) if round_up => (total * p).div_ceil(100),
            Self::Percent(p) => total * p / 100,
        }
    }
}

/// What to do now; the controller applies it and plans again once the world changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPlan {
    /// Zones to create one machine in each (a zone may repeat).
    pub create: Vec<String>,
    /// Machines to delete.
    pub delete: Vec<String>,
}

impl GroupPlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

/// Plan group `members` toward `desired` machines of template `template` over `zones`.
pub fn plan_group(
    desired: usize,
    zones: &[String],
    template: &str,
    members: &[Member],
    limits: Limits,
) -> GroupPlan {
    let mut plan = GroupPlan::default();
    if zones.is_empty() {
        return plan;
    }
    let live: Vec<&Member> = members.iter().filter(|m| !m.deleting).collect();
    let deleting = members.len() - live.len();
    let (current, outdated): (Vec<&Member>, Vec<&Member>) =
        live.iter().partition(|m| m.template_hash == template);
    // Machines in zones the group no longer uses are outdated too.
    let (current, misplaced): (Vec<&Member>, Vec<&Member>) =
        current.into_iter().partition(|m| zones.contains(&m.zone));
    let outdated: Vec<&Member> = outdated.into_iter().chain(misplaced).collect();

    if outdated.is_empty() {
        if current.len() < desired {
            plan.create = spread(zones, &current, desired - current.len());
        } else if current.len() > desired {
            plan.delete = shrink(&current, current.len() - desired);
        }
        return plan;
    }

    // Rolling replacement.
    let total = live.len() + deleting;
    let room = (desired + limits.max_surge).saturating_sub(total);
    let wanted_new = desired.saturating_sub(current.len());
    plan.create = spread(zones, &current, room.min(wanted_new));

    // Outdated machines go first when unhealthy (they serve nothing), then oldest first,
    // as long as enough healthy machines remain; the creates above replace them.
    let healthy = live.iter().filter(|m| m.healthy).count();
    let min_available = desired.saturating_sub(limits.max_unavailable);
    let mut removable = healthy.saturating_sub(min_available);
    let mut order: Vec<&&Member> = outdated.iter().collect();
    order.sort_by(|a, b| a.healthy.cmp(&b.healthy).then(a.created.cmp(&b.created)));
    for m in order {
        if m.healthy {
            if removable == 0 {
                continue;
            }
            removable -= 1;
        }
        plan.delete.push(m.name.clone());
    }
    plan
}

/// `n` zones for new machines, each the zone with the fewest machines at that point.
fn spread(zones: &[String], members: &[&Member], n: usize) -> Vec<String> {
    let mut count: BTreeMap<&str, usize> = zones.iter().map(|z| (z.as_str(), 0)).collect();
    for m in members {
        if let Some(c) = count.get_mut(m.zone.as_str()) {
            *c += 1;
        }
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        // Ties go to the zone listed first.
        let Some(zone) = zones
            .iter()
            .min_by_key(|z| count.get(z.as_str()).copied().unwrap_or(0))
        else {
            break;
        };
        if let Some(c) = count.get_mut(zone.as_str()) {
            *c += 1;
        }
        out.push(zone.clone());
    }
    out
}

/// `n` machines to remove, each from the zone with the most at that point: unhealthy ones
/// first, then the newest.
fn shrink(members: &[&Member], n: usize) -> Vec<String> {
    let mut by_zone: BTreeMap<&str, Vec<&Member>> = BTreeMap::new();
    for m in members {
        by_zone.entry(m.zone.as_str()).or_default().push(m);
    }
    for list in by_zone.values_mut() {
        // Last in the list goes first: healthy before unhealthy, old before new.
        list.sort_by(|a, b| b.healthy.cmp(&a.healthy).then(a.created.cmp(&b.created)));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Some(list) = by_zone
            .values_mut()
            .filter(|l| !l.is_empty())
            .max_by_key(|l| (l.len(), l.last().map(|m| !m.healthy)))
        else {
            break;
        };
        if let Some(m) = list.pop() {
            out.push(m.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zones(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("z{i}")).collect()
    }

    fn m(name: &str, zone: &str, hash: &str, healthy: bool, created: u64) -> Member {
        Member {
            name: name.into(),
            zone: zone.into(),
            template_hash: hash.into(),
            healthy,
            deleting: false,
            created,
        }
    }

    const ROLL: Limits = Limits {
        max_surge: 1,
        max_unavailable: 0,
    };

    #[test]
    fn scale_up_fills_the_emptiest_zones() {
        let z = zones(3);
        let members = [m("a", "z0", "t", true, 1), m("b", "z0", "t", true, 2)];
        let plan = plan_group(5, &z, "t", &members, ROLL);
        assert_eq!(plan.create, ["z1", "z2", "z1"]);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn scale_down_takes_unhealthy_then_newest_from_the_fullest_zone() {
        let z = zones(2);
        let members = [
            m("a", "z0", "t", true, 1),
            m("b", "z0", "t", true, 5),
            m("c", "z0", "t", false, 2),
            m("d", "z1", "t", true, 3),
        ];
        assert_eq!(plan_group(3, &z, "t", &members, ROLL).delete, ["c"]);
        assert_eq!(plan_group(2, &z, "t", &members, ROLL).delete, ["c", "b"]);
        assert_eq!(plan_group(0, &z, "t", &members, ROLL).delete.len(), 4);
    }

    #[test]
    fn rolling_replacement_surges_then_removes() {
        let z = zones(1);
        let old = [m("a", "z0", "old", true, 1), m("b", "z0", "old", true, 2)];
        // Surge one, remove nothing yet (no healthy spare).
        let plan = plan_group(2, &z, "new", &old, ROLL);
        assert_eq!(plan.create, ["z0"]);
        assert!(plan.delete.is_empty());
        // The new one is up: remove the oldest outdated one.
        let mut members = old.to_vec();
        members.push(m("c", "z0", "new", true, 3));
        let plan = plan_group(2, &z, "new", &members, ROLL);
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete, ["a"]);
        // While it is being deleted, nothing more may be created (surge is used up).
        members[0].deleting = true;
        assert!(plan_group(2, &z, "new", &members, ROLL).is_empty());
    }

    #[test]
    fn max_unavailable_replaces_in_place_of_surge() {
        let z = zones(1);
        let old = [m("a", "z0", "old", true, 1), m("b", "z0", "old", true, 2)];
        let limits = Limits {
            max_surge: 0,
            max_unavailable: 1,
        };
        let plan = plan_group(2, &z, "new", &old, limits);
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete, ["a"]);
    }

    #[test]
    fn unhealthy_outdated_machines_go_first_without_counting_against_availability() {
        let z = zones(1);
        let members = [
            m("a", "z0", "old", true, 1),
            m("b", "z0", "old", false, 2),
            m("c", "z0", "new", true, 3),
        ];
        assert_eq!(plan_group(2, &z, "new", &members, ROLL).delete, ["b"]);
    }

    #[test]
    fn machines_in_dropped_zones_are_replaced() {
        let members = [m("a", "gone", "t", true, 1)];
        let plan = plan_group(1, &zones(1), "t", &members, ROLL);
        assert_eq!(plan.create, ["z0"]);
        let mut members = members.to_vec();
        members.push(m("b", "z0", "t", true, 2));
        assert_eq!(plan_group(1, &zones(1), "t", &members, ROLL).delete, ["a"]);
    }

    #[test]
    fn limits_resolve_percentages_like_a_deployment() {
        let l = Limits::resolve(10, Amount::Percent(25), Amount::Percent(25));
        assert_eq!((l.max_surge, l.max_unavailable), (3, 2));
        let l = Limits::resolve(3, Amount::Count(0), Amount::Percent(10));
        assert_eq!((l.max_surge, l.max_unavailable), (1, 0));
    }

    proptest! {
        /// Applying plans repeatedly (new machines become healthy, deletions complete)
        /// converges to exactly `desired` current machines, balanced across zones, without
        /// ever exceeding desired + surge machines or dropping below desired - unavailable
        /// healthy ones once that many were healthy.
        #[test]
        fn plans_converge_within_limits(
            desired in 0usize..12,
            nzones in 1usize..4,
            initial in proptest::collection::vec((0usize..4, any::<bool>(), any::<bool>()), 0..12),
            surge in 0usize..3,
            unavailable in 0usize..3,
        ) {
            let z = zones(nzones);
            let limits = Limits::resolve(desired, Amount::Count(surge), Amount::Count(unavailable));
            let mut next = 0u64;
            let mut members: Vec<Member> = initial.iter().map(|(zone, outdated, healthy)| {
                next += 1;
                m(&format!("m{next}"), &format!("z{}", zone % nzones), if *outdated { "old" } else { "new" }, *healthy, next)
            }).collect();
            let start_total = members.len();
            for _ in 0..100 {
                // Deletions finish, unhealthy new machines recover.
                members.retain(|m| !m.deleting);
                for mm in members.iter_mut().filter(|mm| mm.template_hash == "new") {
                    mm.healthy = true;
                }
                let plan = plan_group(desired, &z, "new", &members, limits);
                if plan.is_empty() {
                    break;
                }
                for zone in &plan.create {
                    next += 1;
                    members.push(m(&format!("m{next}"), zone, "new", false, next));
                }
                for name in &plan.delete {
                    if let Some(mm) = members.iter_mut().find(|mm| &mm.name == name) {
                        mm.deleting = true;
                    }
                }
                prop_assert!(members.len() <= (desired + limits.max_surge).max(start_total));
            }
            members.retain(|m| !m.deleting);
            prop_assert_eq!(members.len(), desired);
            prop_assert!(members.iter().all(|m| m.template_hash == "new"));
            let mut per_zone = vec![0usize; nzones];
            for mm in &members {
                per_zone[mm.zone[1..].parse::<usize>().unwrap_or(0)] += 1;
            }
            let (lo, hi) = (per_zone.iter().min().copied().unwrap_or(0), per_zone.iter().max().copied().unwrap_or(0));
            // Balanced unless machines that were already there and healthy stay put.
            prop_assert!(hi - lo <= 1 || start_total > 0);
        }
    }
}
