//! The discovery phase under the join's overall deadline, and what a dry run reports of it.

use super::{Error, Run};
use crate::bootstrap;
use crate::deadline::Cause;
use crate::discovery::{self, Discovered, Method};
use crate::error::{Class, Classify};
use crate::pki::pin::CaPin;
use crate::plan::JoinPlan;
use crate::sys::Exec;
use std::time::Duration;

/// Discovery as the `discovery` phase of `run`: each of its fetch loops keeps its own bound
/// (`--discovery-timeout`) but never past the overall deadline, and the phase as a whole (token
/// discovery runs two loops) is cut at the overall deadline. Running out of time gives
/// [`Error::Deadline`] naming the phase, with discovery's own error as the cause.
pub async fn discover_within(plan: &JoinPlan, run: &mut Run) -> Result<Discovered, Error> {
    let stage = run.begin("discovery", Duration::MAX);
    let mut opts = plan.discovery.clone();
    opts.timeout = run.deadline.bound(opts.timeout);
    match stage.clock.run(discovery::discover(&opts)).await {
        Ok(Ok(d)) => {
            run.end(stage, false);
            Ok(d)
        }
        // Discovery's own bound or the overall deadline: the report says which flag to raise.
        Ok(Err(e)) if e.class() == Class::Timeout => {
            // A loop that ended before its bound did so because the next attempt (a backoff
            // pause, a Retry-After) would have started after it: say that, not "it passed".
            let waited = match &e {
                discovery::Error::Unreachable { waited, .. }
                | discovery::Error::Unavailable { waited, .. }
                | discovery::Error::JwsMissing { waited, .. } => Some(*waited),
                _ => None,
            };
            let expired = stage.clock.expired_own_limit(
                Some(Cause::of(e)),
                "--discovery-timeout",
                plan.discovery.timeout,
            );
            Err(Error::Deadline(match waited {
                Some(w) if w + Duration::from_millis(1) < opts.timeout => expired.stopped_early(),
                _ => expired,
            }))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(expired) => Err(Error::Deadline(expired)),
    }
}

/// What a dry run verified, for a person (stdout).
pub(super) fn print_dry_run(
    plan: &JoinPlan,
    d: &Discovered,
    exec: &dyn Exec,
    clock: Option<&crate::clock::phase::ClockRecord>,
) {
    println!("dry run: discovery verified the cluster; nothing was written");
    if let Some(c) = clock {
        match c.would_step {
            Some(secs) => println!(
                "  clock:       would be stepped by {secs:+.3}s (from {}; the clock says {}); not set",
                c.source, c.clock_at_start
            ),
            None => println!("  clock:       {} (not stepped)", c.source),
        }
    }
    match &d.method {
        Method::Token { endpoint } => println!("  discovery:   bootstrap token via {endpoint}"),
        Method::File { path } => println!("  discovery:   kubeconfig file {path}"),
        Method::Https { url } => println!("  discovery:   kubeconfig from {url}"),
    }
    println!("  API server:  {}", d.server);
    let subject = |der: &[u8]| {
        crate::pki::x509::parse_certificate(der)
            .map(|c| c.subject.to_string())
            .unwrap_or_default()
    };
    for der in &d.ca_der {
        let pin = CaPin::of_cert_der(der)
            .map(|p| p.to_string())
            .unwrap_or_default();
        let mark = if d.matched_pin.is_some() {
            "  <- matches a pinned hash: trusted, would be installed"
        } else {
            ""
        };
        println!("  cluster CA:  {}  {pin}{mark}", subject(der));
    }
    for (pin, der) in &d.unpinned {
        println!(
            "  cluster CA:  {}  {pin}  <- NOT pinned: not trusted, would not be installed",
            subject(der)
        );
    }
    // Only what discovery did: the verified re-fetch is made only when `server:` is another
    // address than the endpoint (see discovery::token).
    match (&d.method, &d.matched_pin) {
        (Method::Token { endpoint }, Some(_))
            if crate::discovery::token::same_address(&d.server, endpoint) =>
        {
            println!(
                "  trust:       JWS signature of cluster-info valid for the token; only the pinned CA(s) trusted; {} is the endpoint itself, \
                 so no re-fetch: its TLS is verified against the pinned CA by the next request, before the token is sent",
                d.server
            )
        }
        (Method::Token { endpoint }, Some(_)) => println!(
            "  trust:       JWS signature of cluster-info valid for the token; only the pinned CA(s) trusted; cluster-info fetched again \
             from {endpoint} over TLS verified against the pinned CA: identical"
        ),
        (Method::Token { .. }, None) => println!(
            "  trust:       JWS signature valid; CA NOT verified (--discovery-token-unsafe-skip-ca-verification)"
        ),
        _ => println!("  trust:       TLS verified against the kubeconfig's CA"),
    }
    println!(
        "reading the cluster configuration (kubeadm-config, then kubelet-config by the cluster's version) and looking up Node {:?} with the bootstrap credentials",
        node_name_for_dry_run(plan, exec)
    );
}

/// The node name a dry run reports (`--node-name`, else the host's name as the join resolves it).
fn node_name_for_dry_run(plan: &JoinPlan, exec: &dyn Exec) -> String {
    bootstrap::resolve_node_name(plan.node_name.as_ref(), exec)
        .map(|id| id.name.as_str().to_string())
        .unwrap_or_else(|_| "<this host's name>".into())
}
