//! The one orchestrator of a join: the ordered list of its phases ([`PHASES`]) and the one
//! place each phase's work is chosen ([`Join::phase`]), run by `kubejoin join` and by PID 1.
//!
//! ```text
//!   phase       kubejoin join (Front::Command)        PID 1 (Front::Boot, init/ around it)
//!   ─────       ──────────────────────────────        ───────────────────────────────────
//!                                                     mounts, console, watchdog   (init/)
//!   host        host preparation + preflight          host-prep, sysroot          (init/)
//!               (only onto this machine, --root /)
//!   network     the machine's own (skipped)           local-sources, network      (init/)
//!   sources     the plan was made before (skipped)    sources → the plan          (init/)
//!   clock       SNTP, or the best time known, before any TLS (`crate::clock::phase`)
//!   discovery   discovery (bounded by --timeout)      discovery
//!   join        identity-check, cluster-config, csr, wait-approval, verify-certificate,
//!               install, completion (bootstrap.rs)
//!   handoff     exec kubelet / return                 exec, or switch-root        (init/)
//!               (a control-plane join with exec: its finish step started first, see
//!               `crate::controlplane::after`)
//!                                                     retry / reboot / poweroff   (init/)
//! ```
//!
//! PID 1 runs the phases before the plan exists (it needs the host, the network and the
//! sources to make it) and the handoff (which ends its timeline and may switch root) as its own
//! stages, under the names of this list: its stage list is [`PHASES`] with its own stages
//! inserted ([`crate::init::pipeline::stages`]). Every phase from `discovery` on is run here,
//! for both.
//!
//! **Adding a phase** (a clock phase before discovery, a control-plane phase after the join):
//! a variant of [`Phase`] with its name, its place in [`PHASES`], and its arm in
//! [`Join::phase`] (with [`Front`] when the two front doors differ). PID 1 picks it up from the
//! list: [`crate::init::stages::NodeBoot`] hands every phase it does not run itself to
//! [`Join::phase`], under the same name (its log line, timeline entry and retries).

mod bootstrap;
mod discover;
mod error;
mod host;
mod run;

pub use bootstrap::{
    bootstrap_and_install, bootstrap_and_install_resuming, bootstrap_and_install_within,
};
pub use discover::discover_within;
pub use error::Error;
pub use host::host_prep;
pub use run::{Joined, Outcome, Run, Tuning};

use crate::discovery::{self, Discovered};
use crate::fs::root::Root;
use crate::plan::JoinPlan;
use crate::sys::System;

/// The phases of a join, in order (see [`PHASES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Modules, sysctls, swap, preflight.
    Host,
    /// The network bring-up (PID 1 only).
    Network,
    /// The boot sources merged into the plan (PID 1 only; `kubejoin join` is given its plan).
    Sources,
    /// The clock set from SNTP (or the best time known chosen), before any TLS.
    Clock,
    /// Cluster-info fetched, its signature and CA pin checked; trust narrowed to the pinned CAs.
    Discovery,
    /// Key, CSR, approval, certificate check, kubelet's files, completion files.
    Join,
    /// Exec the kubelet (or switch root, or return for a service manager).
    Handoff,
}

/// The one list of a join's phases, in the order both front doors run them.
pub const PHASES: &[Phase] = &[
    Phase::Host,
    // Before discovery: the network a config may describe, then the sources that need it.
    Phase::Network,
    Phase::Sources,
    // Time before trust: every certificate check after this one uses the clock it set.
    Phase::Clock,
    Phase::Discovery,
    Phase::Join,
    Phase::Handoff,
];

impl Phase {
    /// The name in log lines, the timeline and `result.json`'s `stage`.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Host => "host-prep",
            Phase::Network => "network",
            Phase::Sources => "sources",
            Phase::Clock => "clock",
            Phase::Discovery => "discovery",
            Phase::Join => "join",
            Phase::Handoff => "handoff",
        }
    }

    /// The phase of `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Phase> {
        PHASES.iter().copied().find(|p| p.name() == name)
    }
}

/// How a phase ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Ok,
    /// Nothing to do (with the reason, for the log).
    Skipped(String),
}

/// Which front door runs the phases: where their work differs, [`Join::phase`] says how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// `kubejoin join`: one overall deadline (`--timeout`) from discovery to the handoff, the
    /// phase records of `result.json` from discovery on, a dry run printed.
    Command,
    /// PID 1: each attempt of a phase is bounded by the boot's policy (`kubejoin.timeout`,
    /// retries), and the join phase by a fresh `--timeout` of its own.
    Boot,
}

/// One join in progress: its plan and what its phases produced so far (a retried phase of PID 1
/// finds the earlier phases' results here).
pub struct Join<'a> {
    plan: JoinPlan,
    system: &'a System,
    front: Front,
    tuning: Tuning,
    /// The overall deadline and phase records (`kubejoin join`: made when discovery starts).
    run: Option<Run>,
    /// What the clock phase did (PID 1 keeps it across the join phase's retries).
    clock: Option<crate::clock::phase::ClockRecord>,
    discovered: Option<Discovered>,
    joined: Option<Joined>,
    /// PID 1: an attempt of the join phase wrote the control-plane files (a retry may remake them).
    cp_files_written: bool,
}

impl std::fmt::Debug for Join<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Join")
            .field("front", &self.front)
            .field("discovered", &self.discovered.is_some())
            .field("joined", &self.joined.as_ref().map(|j| j.outcome))
            .finish_non_exhaustive()
    }
}

impl<'a> Join<'a> {
    pub fn new(plan: JoinPlan, system: &'a System, front: Front) -> Self {
        Self {
            plan,
            system,
            front,
            tuning: Tuning::default(),
            run: None,
            clock: None,
            discovered: None,
            joined: None,
            cp_files_written: false,
        }
    }

    /// Shorter waits and bounds (tests).
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    pub fn plan(&self) -> &JoinPlan {
        &self.plan
    }

    /// What the join phase did, once it ran.
    pub fn joined(&self) -> Option<&Joined> {
        self.joined.as_ref()
    }

    /// Runs one phase: the one place where each phase's work is chosen.
    pub async fn phase(&mut self, phase: Phase) -> Result<Done, Error> {
        match (phase, self.front) {
            (Phase::Host, Front::Command) => {
                host::prepare_host(&self.plan, &*self.system.host).map(|()| Done::Ok)
            }
            (Phase::Network, Front::Command) => {
                Ok(Done::Skipped("the machine's network is up".into()))
            }
            (Phase::Sources, Front::Command) => {
                Ok(Done::Skipped("the plan was made from the command".into()))
            }
            // PID 1 runs these as its own stages: they come before the plan exists.
            (Phase::Host | Phase::Network | Phase::Sources, Front::Boot) => Ok(Done::Skipped(
                format!("{} is run by PID 1's own stage", phase.name()),
            )),
            // Boxed: a phase's future is large, and inlined into this one (and into PID 1's
            // stage future around it) it made the stripped binary 94,208 B larger (4,195,288 ->
            // 4,101,080 B measured, docs/layout.md); one allocation per phase.
            (Phase::Clock, _) => Box::pin(self.clock()).await,
            (Phase::Discovery, _) => Box::pin(self.discovery()).await,
            (Phase::Join, _) => Box::pin(self.bootstrap_and_install()).await,
            (Phase::Handoff, _) => self.handoff(),
        }
    }

    /// Time before trust: the clock set (or the best time known chosen) before any TLS.
    /// `kubejoin join`: the first phase under the overall deadline, recorded in `result.json`.
    async fn clock(&mut self) -> Result<Done, Error> {
        let t = &self.plan.time;
        let ask =
            crate::clock::phase::run_for(&t.servers, t.source.as_deref(), t.off, self.plan.dry_run);
        let record = match self.front {
            Front::Command => {
                // The overall deadline starts here: `--timeout` bounds the whole join.
                let run = self.run.insert(Run::new(self.plan.timeout));
                let stage = run.begin("clock", std::time::Duration::MAX);
                let record = stage
                    .clock
                    .run(ask)
                    .await
                    .map_err(Error::Deadline)?
                    .map_err(Error::Clock)?;
                run.end(stage, false);
                run.clock = Some(record.clone());
                record
            }
            Front::Boot => ask.await.map_err(Error::Clock)?,
        };
        self.clock = Some(record);
        Ok(Done::Ok)
    }

    async fn discovery(&mut self) -> Result<Done, Error> {
        let d = match self.front {
            Front::Command => {
                // The overall deadline started with the clock phase (or starts here).
                let timeout = self.plan.timeout;
                let run = self.run.get_or_insert_with(|| Run::new(timeout));
                discover_within(&self.plan, run).await?
            }
            Front::Boot => {
                let d = discovery::discover(&self.plan.discovery).await?;
                match &d.matched_pin {
                    Some(pin) => {
                        crate::info!("cluster CA pinned: {pin} matches; API server {}", d.server)
                    }
                    None => crate::warn!(
                        "cluster CA not pinned (unsafe skip); API server {}",
                        d.server
                    ),
                }
                d
            }
        };
        // Discovery may have taken the time from a verified `Date` (`clock::datehdr`): the
        // clock is stepped to it as for SNTP (a dry run only says it would be).
        let adopted = crate::clock::datehdr::adopted().zip(crate::clock::floor::learnt());
        if let Some(((server, date), now)) = adopted {
            if let Some(record) = self.clock.as_mut() {
                crate::clock::phase::after_verified_date(
                    record,
                    &*self.system.clock,
                    &server,
                    date,
                    now.time,
                    self.plan.dry_run,
                )
                .map_err(Error::Clock)?;
                if let Some(r) = self.run.as_mut() {
                    r.clock = Some(record.clone());
                }
            }
        }
        if self.front == Front::Command && self.plan.dry_run {
            discover::print_dry_run(&self.plan, &d, &*self.system.exec, self.clock.as_ref());
        }
        self.discovered = Some(d);
        Ok(Done::Ok)
    }

    async fn bootstrap_and_install(&mut self) -> Result<Done, Error> {
        let d = self.discovered.as_ref().ok_or_else(|| {
            Error::Internal("no discovered cluster (discovery did not run)".into())
        })?;
        let exec = &*self.system.exec;
        let tuning = &self.tuning;
        let joined = match (self.front, self.run.as_mut()) {
            (Front::Command, Some(run)) => match &self.plan.control_plane {
                None => bootstrap_and_install_within(&self.plan, d, exec, tuning, run).await?,
                // A control-plane join runs its own phases around the worker's
                // (src/controlplane/join.rs), the worker's given as a closure.
                Some(cp) => {
                    let deadline = run.deadline;
                    crate::controlplane::join::join(
                        &self.plan,
                        cp,
                        d,
                        deadline,
                        // The kubelet exec'd by this process runs only once the join is over:
                        // the phases that need it are handed to a finish step (as PID 1 does).
                        if self.plan.handoff == crate::plan::HandoffMode::Exec {
                            crate::controlplane::join::AfterKubelet::HandOver
                        } else {
                            crate::controlplane::join::AfterKubelet::Run
                        },
                        // One attempt per process: nothing was written before it.
                        &mut false,
                        async |p: &JoinPlan, resume| {
                            bootstrap_and_install_resuming(p, d, exec, tuning, run, resume).await
                        },
                    )
                    .await?
                }
            },
            // PID 1: each attempt under a fresh `--timeout` of its own.
            _ => {
                let mut run = Run::new(self.plan.timeout).with_clock(self.clock.clone());
                match &self.plan.control_plane {
                    None => {
                        bootstrap_and_install_within(&self.plan, d, exec, tuning, &mut run).await?
                    }
                    // The phases that need a running kubelet are handed over to the finish
                    // step PID 1 starts just before it execs the kubelet (init/stages.rs).
                    Some(cp) => {
                        let deadline = run.deadline;
                        let run = &mut run;
                        crate::controlplane::join::join(
                            &self.plan,
                            cp,
                            d,
                            deadline,
                            crate::controlplane::join::AfterKubelet::HandOver,
                            &mut self.cp_files_written,
                            async |p: &JoinPlan, resume| {
                                bootstrap_and_install_resuming(p, d, exec, tuning, run, resume)
                                    .await
                            },
                        )
                        .await?
                    }
                }
            }
        };
        if self.front == Front::Boot {
            crate::info!(
                "node identity system:node:{} ({:?}); files installed under {}",
                joined.node,
                joined.outcome,
                self.plan.root.display()
            );
            for s in &joined.steps {
                crate::info!("  {s}");
            }
        }
        self.joined = Some(joined);
        Ok(Done::Ok)
    }

    /// The handoff of `kubejoin join` (PID 1 runs its own: it ends the timeline first, and may
    /// switch root). Not bounded: the node's files are installed, and handing off is an exec or
    /// a return.
    fn handoff(&mut self) -> Result<Done, Error> {
        if self.joined.as_ref().map(|j| j.outcome) == Some(Outcome::DryRun) {
            return Ok(Done::Skipped("dry run".into()));
        }
        let phase = crate::log::phase("handoff");
        if self.plan.handoff == crate::plan::HandoffMode::Exec
            && self.plan.control_plane.is_some()
            && crate::controlplane::after::pending(&self.plan.root)
        {
            crate::controlplane::after::start_finish_step(
                &*self.system.exec,
                std::path::Path::new(crate::controlplane::after::SELF_EXE),
                &self.plan.root,
            )?;
        }
        crate::handoff::handoff(
            self.plan.handoff,
            &self.plan.kubelet_path,
            &Root::new(&self.plan.root),
            &*self.system.exec,
        )?;
        phase.ok();
        Ok(Done::Ok)
    }
}

/// `kubejoin join`: every phase of [`PHASES`] in order, for `plan`.
pub async fn run(plan: JoinPlan, system: &System) -> Result<(), Error> {
    let mut join = Join::new(plan, system, Front::Command);
    for &phase in PHASES {
        join.phase(phase).await?;
        // Crash tests enumerate the failpoints through the binary they kill (debug builds only).
        if phase == Phase::Host
            && crate::fs::failpoint::armed() == Some(&crate::fs::failpoint::Armed::List)
        {
            for name in crate::install::failpoints::list() {
                println!("{name}");
            }
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_names_are_unique_and_round_trip() {
        for &p in PHASES {
            assert_eq!(Phase::from_name(p.name()), Some(p));
        }
        let mut names: Vec<&str> = PHASES.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PHASES.len());
        assert_eq!(Phase::from_name("sysroot"), None);
    }

    #[test]
    fn discovery_comes_after_the_network_and_the_handoff_last() {
        let at = |p| PHASES.iter().position(|x| *x == p).unwrap();
        assert!(at(Phase::Host) < at(Phase::Network));
        assert!(at(Phase::Network) < at(Phase::Sources));
        assert!(at(Phase::Sources) < at(Phase::Clock));
        assert!(at(Phase::Clock) < at(Phase::Discovery));
        assert!(at(Phase::Discovery) < at(Phase::Join));
        assert_eq!(PHASES.last(), Some(&Phase::Handoff));
    }
}
