//! The machine lifecycle as pure decisions: given a machine's phase, whether its deadline
//! passed, the state of its zone and a random roll, what happens to it next.
//!
//! The lifecycle loop in [`crate::cloud`] draws the random numbers and applies the result; the
//! decisions themselves are tested here as tables.

use slipway_provider::{CapacityType, MachinePhase, MachineReason};

/// What the lifecycle loop does to one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// `Pending` -> `Provisioning`: a host was found; boot latency starts.
    StartProvisioning,
    /// `Provisioning` -> `Running`.
    FinishBoot,
    /// `Provisioning` -> `Terminated` with `ProvisioningFailed`.
    FailBoot,
    /// `Terminating` -> `Terminated`.
    FinishTermination,
    /// `Pending`/`Provisioning`/`Running` -> `Failed` with `ZoneOutage`.
    ZoneDown,
    /// `Failed` (zone outage) -> `Running`: the zone is back and the machine had booted.
    ZoneBack,
    /// `Failed` (zone outage) -> `Pending`: the zone is back; the machine never booted, so it
    /// starts over.
    ZoneBackRestart,
}

/// What [`next_transition`] looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs {
    pub phase: MachinePhase,
    pub reason: Option<MachineReason>,
    /// It has reached `Running` at least once.
    pub ever_ran: bool,
    /// The machine's deadline for its current phase has passed.
    pub due: bool,
    /// Its zone is in an outage.
    pub zone_down: bool,
    /// Probability that a boot fails.
    pub failure_rate: f64,
    /// A uniform draw in `[0, 1)`; the boot fails when it is below `failure_rate`.
    pub failure_roll: f64,
}

/// The next transition of a machine, if any is due now.
///
/// A zone outage takes machines that are not terminating down at once, whatever their
/// deadline; termination proceeds even in a zone that is down.
pub(crate) fn next_transition(i: &Inputs) -> Option<Transition> {
    use MachinePhase::*;
    match i.phase {
        Pending | Provisioning | Running if i.zone_down => Some(Transition::ZoneDown),
        Failed if !i.zone_down && i.reason == Some(MachineReason::ZoneOutage) => {
            Some(if i.ever_ran {
                Transition::ZoneBack
            } else {
                Transition::ZoneBackRestart
            })
        }
        Pending if i.due => Some(Transition::StartProvisioning),
        Provisioning if i.due => Some(if i.failure_roll < i.failure_rate {
            Transition::FailBoot
        } else {
            Transition::FinishBoot
        }),
        Terminating if i.due => Some(Transition::FinishTermination),
        _ => None,
    }
}

/// Whether a spot check interrupts this machine: running spot machines are interrupted with
/// probability `rate` (`roll` uniform in `[0, 1)`).
pub(crate) fn interrupts(
    phase: MachinePhase,
    capacity: CapacityType,
    rate: f64,
    roll: f64,
) -> bool {
    phase == MachinePhase::Running && capacity == CapacityType::Spot && roll < rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use MachinePhase::*;

    fn inputs(phase: MachinePhase, due: bool, zone_down: bool) -> Inputs {
        Inputs {
            phase,
            reason: None,
            ever_ran: false,
            due,
            zone_down,
            failure_rate: 0.0,
            failure_roll: 0.5,
        }
    }

    #[test]
    fn transitions_table() {
        let cases: Vec<(Inputs, Option<Transition>)> = vec![
            (inputs(Pending, false, false), None),
            (
                inputs(Pending, true, false),
                Some(Transition::StartProvisioning),
            ),
            (inputs(Provisioning, false, false), None),
            (
                inputs(Provisioning, true, false),
                Some(Transition::FinishBoot),
            ),
            (
                Inputs {
                    failure_rate: 0.6,
                    ..inputs(Provisioning, true, false)
                },
                Some(Transition::FailBoot),
            ),
            (
                Inputs {
                    failure_rate: 0.4,
                    ..inputs(Provisioning, true, false)
                },
                Some(Transition::FinishBoot),
            ),
            (
                Inputs {
                    failure_rate: 1.0,
                    failure_roll: 0.999,
                    ..inputs(Provisioning, true, false)
                },
                Some(Transition::FailBoot),
            ),
            (inputs(Running, true, false), None),
            (inputs(Running, false, true), Some(Transition::ZoneDown)),
            (inputs(Pending, false, true), Some(Transition::ZoneDown)),
            (inputs(Provisioning, true, true), Some(Transition::ZoneDown)),
            (inputs(Terminating, false, true), None),
            (
                inputs(Terminating, true, true),
                Some(Transition::FinishTermination),
            ),
            (
                inputs(Terminating, true, false),
                Some(Transition::FinishTermination),
            ),
            (inputs(Terminated, true, true), None),
            (
                Inputs {
                    reason: Some(MachineReason::ZoneOutage),
                    ever_ran: true,
                    ..inputs(Failed, false, false)
                },
                Some(Transition::ZoneBack),
            ),
            (
                Inputs {
                    reason: Some(MachineReason::ZoneOutage),
                    ..inputs(Failed, false, false)
                },
                Some(Transition::ZoneBackRestart),
            ),
            (
                Inputs {
                    reason: Some(MachineReason::ZoneOutage),
                    ..inputs(Failed, false, true)
                },
                None,
            ),
        ];
        for (i, want) in cases {
            assert_eq!(next_transition(&i), want, "{i:?}");
        }
    }

    #[test]
    fn spot_interruption_table() {
        use CapacityType::*;
        let cases = [
            (Running, Spot, 1.0, 0.99, true),
            (Running, Spot, 0.5, 0.6, false),
            (Running, Spot, 0.0, 0.0, false),
            (Running, OnDemand, 1.0, 0.0, false),
            (Provisioning, Spot, 1.0, 0.0, false),
            (Terminating, Spot, 1.0, 0.0, false),
        ];
        for (phase, cap, rate, roll, want) in cases {
            assert_eq!(
                interrupts(phase, cap, rate, roll),
                want,
                "{phase:?} {cap:?} {rate} {roll}"
            );
        }
    }
}
