//! The host phase of `kubejoin join`: host preparation and preflight, onto this machine only.

use super::Error;
use crate::error::Classify;
use crate::log;
use crate::plan::JoinPlan;
use crate::sys::Host;

/// Host preparation and preflight before a join, when the node being joined is this machine.
///
/// Only with `--root /`: installing into another directory (a test root, an image being built)
/// says nothing about the running kernel, and loading modules or changing sysctls there would
/// change the wrong machine. PID-1 mode runs host preparation itself, before the network.
pub(super) fn prepare_host(plan: &JoinPlan, sys: &dyn Host) -> Result<(), Error> {
    if plan
        .skip_phases
        .iter()
        .any(|p| p == "host" || p == "preflight")
    {
        log::phase("host").skipped();
        return Ok(());
    }
    if plan.root != std::path::Path::new("/") {
        crate::info!(
            "installing into {}: host preparation and preflight skipped (they apply to the running machine; see `kubejoin host-prep`)",
            plan.root.display()
        );
        return Ok(());
    }
    let root = crate::fs::root::Root::new("/");
    if plan.dry_run {
        // A dry run reports what host preparation would find wrong, and goes on to discovery.
        if let Err(e) = host_prep(&plan.host, std::path::Path::new("/"), true, sys) {
            crate::warn!(
                "host preparation would fail: {}",
                crate::error::Report(&e, e.hint())
                    .to_string()
                    .trim_start_matches("error: ")
            );
        }
    } else {
        host_prep(&plan.host, std::path::Path::new("/"), false, sys)?;
    }
    let phase = log::phase("preflight");
    let cfg = crate::host::PreflightConfig {
        cri_socket: plan.cri_socket.clone(),
        kubelet_path: plan.kubelet_path.clone(),
        ignore_errors: plan.ignore_preflight_errors.clone(),
        ..crate::host::PreflightConfig::default()
    };
    let pre = crate::host::preflight(&cfg, &plan.host, &root, sys);
    eprint!("{pre}");
    if plan.dry_run {
        // A dry run goes on to discovery, but says that a real join would stop here.
        let errors = pre.errors();
        if errors.is_empty() {
            phase.ok();
        } else {
            crate::warn!(
                "preflight: {} check(s) in ERROR ({}): a real join would stop here; fix them, or downgrade them \
                 with --ignore-preflight-errors={}",
                errors.len(),
                errors.join(", "),
                errors.join(",")
            );
            phase.would_fail();
        }
        return Ok(());
    }
    pre.into_result().map_err(Error::Host)?;
    phase.ok();
    Ok(())
}

/// Plans host preparation from the host's state, then applies and verifies it (or prints the plan).
pub fn host_prep(
    cfg: &crate::host::HostConfig,
    root: &std::path::Path,
    dry_run: bool,
    sys: &dyn Host,
) -> Result<Option<crate::host::HostReport>, Error> {
    let phase = log::phase("host");
    let root = crate::fs::root::Root::new(root);
    let plan = match crate::host::plan(cfg, &root, sys) {
        Ok(plan) => plan,
        Err(e) => {
            if dry_run {
                phase.would_fail();
            }
            return Err(Error::Host(e));
        }
    };
    if dry_run {
        println!("{plan}");
        phase.skipped();
        return Ok(None);
    }
    let report = crate::host::apply(&plan, &root, sys).map_err(Error::Host)?;
    crate::info!("{report}");
    phase.ok();
    Ok(Some(report))
}
