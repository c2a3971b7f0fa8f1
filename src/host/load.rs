//! Loading a plan's modules, several at once where their dependencies allow.

use super::modules::{self, LoadOutcome, PlannedLoad};
use super::{HostError, HostPlan, Outcome};
use crate::fs::root::Root;
use crate::sys::host::Host;
use std::time::{Duration, Instant};

/// How one module load of [`load_all`] ended.
pub(super) struct Loaded {
    pub(super) outcome: Outcome,
    /// A required module's failure.
    pub(super) error: Option<HostError>,
    pub(super) started: Instant,
    pub(super) took: Duration,
}

/// Where a module of [`load_all`] is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Running,
    /// Loaded (or already there): `true`; failed or skipped: `false`.
    Done(bool),
}

/// Loads `loads` (in dependency order), up to [`Host::module_load_threads`] at once: a
/// module starts once every module of the list it needs has loaded, in list order among those
/// that may start; one whose dependency failed is skipped. With one thread this is the plain
/// sequence. The kernel loads independent modules in parallel (signature check, relocation and
/// the driver's init, which may wait on its device, run outside its module lock), so a node
/// whose NIC driver probes slowly does not also wait for overlay and the bridge in turn.
pub(super) fn load_all(loads: &[PlannedLoad], root: &Root, sys: &dyn Host) -> Vec<Loaded> {
    use std::collections::HashMap;
    use std::sync::{Condvar, Mutex};
    let index: HashMap<&str, usize> = loads
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    // Each module's dependencies within the list (the others are loaded or built in already).
    let deps: Vec<Vec<usize>> = loads
        .iter()
        .enumerate()
        .map(|(i, l)| {
            l.deps
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .filter(|&d| d != i)
                .collect()
        })
        .collect();
    struct State {
        slots: Vec<Slot>,
        results: Vec<Option<Loaded>>,
        left: usize,
    }
    let state = Mutex::new(State {
        slots: vec![Slot::Pending; loads.len()],
        results: (0..loads.len()).map(|_| None).collect(),
        left: loads.len(),
    });
    let changed = Condvar::new();
    let worker = || loop {
        let Ok(mut st) = state.lock() else {
            return;
        };
        let next = loop {
            if st.left == 0 {
                return;
            }
            let mut next = None;
            for (i, needs) in deps.iter().enumerate() {
                if st.slots[i] != Slot::Pending {
                    continue;
                }
                if let Some(&d) = needs.iter().find(|&&d| st.slots[d] == Slot::Done(false)) {
                    // A dependency failed: this one cannot load.
                    st.slots[i] = Slot::Done(false);
                    st.results[i] = Some(Loaded {
                        outcome: Outcome::Skipped(format!(
                            "dependency {} failed to load",
                            loads[d].name
                        )),
                        error: None,
                        started: Instant::now(),
                        took: Duration::ZERO,
                    });
                    st.left -= 1;
                    changed.notify_all();
                    continue;
                }
                if needs.iter().all(|&d| st.slots[d] == Slot::Done(true)) {
                    next = Some(i);
                    break;
                }
            }
            match next {
                Some(i) => break i,
                None if st.left == 0 => return,
                None => match changed.wait(st) {
                    Ok(g) => st = g,
                    Err(_) => return,
                },
            }
        };
        st.slots[next] = Slot::Running;
        drop(st);
        let l = &loads[next];
        let started = Instant::now();
        let (outcome, error) = match modules::load(l, root, sys) {
            Ok(LoadOutcome::Loaded) => (Outcome::Done, None),
            Ok(LoadOutcome::AlreadyLoaded) => (Outcome::AlreadyDone, None),
            Err(e) if l.required => (Outcome::Failed(e.to_string()), Some(e)),
            Err(e) => (Outcome::Ignored(e.to_string()), None),
        };
        let ok = matches!(outcome, Outcome::Done | Outcome::AlreadyDone);
        let took = started.elapsed();
        let Ok(mut st) = state.lock() else {
            return;
        };
        st.slots[next] = Slot::Done(ok);
        st.results[next] = Some(Loaded {
            outcome,
            error,
            started,
            took,
        });
        st.left -= 1;
        changed.notify_all();
    };
    let threads = sys.module_load_threads().clamp(1, loads.len().max(1));
    if threads == 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(worker);
            }
            worker();
        });
    }
    let results = match state.into_inner() {
        Ok(st) => st.results,
        Err(p) => p.into_inner().results,
    };
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Loaded {
                outcome: Outcome::Skipped("not attempted".into()),
                error: None,
                started: Instant::now(),
                took: Duration::ZERO,
            })
        })
        .collect()
}

/// Splits a host plan at boot into what the boot itself needs and what only the kubelet needs.
///
/// The first part: the modules the image asked for (modules-load.d), those of the
/// configuration (`kubejoin.modules`), with every module they need, and the coldplug of the
/// image's drivers (its NIC and disk) — the network, the config drive and TLS wait for them. The second part: the modules
/// only kubejoin's defaults want (`overlay`, `br_netfilter`, the proxy mode's) with their
/// dependencies that the first part does not load, every sysctl (forwarding and bridge
/// netfilter matter to the kubelet's pods, not to DHCP or the join's requests) and swap. PID 1
/// applies the second part beside the network and the join and waits for it before the handoff
/// (measured under emulation: `overlay` + `br_netfilter` with `bridge`, `stp`, `llc` and the
/// sysctls were ~40% of host-prep, all of it off the critical path now; README "Performance").
///
/// A module wanted by both parts stays in the first. Each part keeps the plan's load order, so
/// a module of the second part whose dependency is in the first finds it loaded.
pub fn split_for_boot(mut plan: HostPlan) -> (HostPlan, HostPlan) {
    // Coldplug finds the NIC and disk drivers: the boot's.
    let coldplug = plan.modules.coldplug.take();
    let kubelet_only = |req: &str| {
        plan.modules
            .requests
            .iter()
            .find(|r| r.request.name == req)
            .is_some_and(|r| {
                r.request.source == "default" || r.request.source.starts_with("proxy mode")
            })
    };
    let (later, now): (Vec<PlannedLoad>, Vec<PlannedLoad>) = plan
        .modules
        .loads
        .iter()
        .cloned()
        .partition(|l| !l.wanted_by.is_empty() && l.wanted_by.iter().all(|w| kubelet_only(w)));
    let (later_requests, now_requests) = plan
        .modules
        .requests
        .iter()
        .cloned()
        .partition(|r| kubelet_only(&r.request.name));
    let boot = HostPlan {
        kernel_release: plan.kernel_release.clone(),
        modules: super::ModulePlan {
            kernel_compression: plan.modules.kernel_compression,
            requests: now_requests,
            loads: now,
            coldplug,
        },
        sysctls: Vec::new(),
        swaps: Vec::new(),
        keep_swap: plan.keep_swap,
        notes: plan.notes.clone(),
    };
    let kubelet = HostPlan {
        kernel_release: plan.kernel_release,
        modules: super::ModulePlan {
            kernel_compression: plan.modules.kernel_compression,
            requests: later_requests,
            loads: later,
            coldplug: None,
        },
        sysctls: plan.sysctls,
        swaps: plan.swaps,
        keep_swap: plan.keep_swap,
        notes: Vec::new(),
    };
    (boot, kubelet)
}

impl HostPlan {
    /// Whether applying it would do nothing at all.
    pub fn is_empty(&self) -> bool {
        self.modules.loads.is_empty()
            && self.modules.coldplug.is_none()
            && self.sysctls.is_empty()
            && self.swaps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::modules::{ModuleRequest, PlannedRequest, RequestOutcome};
    use super::super::{ModulePlan, SysctlSetting};
    use super::*;
    use crate::host::modules::LoadMethod;

    fn load(name: &str, deps: &[&str], wanted_by: &[&str]) -> PlannedLoad {
        PlannedLoad {
            name: name.into(),
            path: format!("/lib/modules/r/{name}.ko").into(),
            method: LoadMethod::Finit,
            params: vec![],
            deps: deps.iter().map(|d| d.to_string()).collect(),
            required: true,
            wanted_by: wanted_by.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn request(name: &str, source: &str) -> PlannedRequest {
        PlannedRequest {
            request: ModuleRequest {
                name: name.into(),
                source: source.into(),
                required: true,
            },
            outcome: RequestOutcome::AlreadyLoaded,
        }
    }

    /// The image's drivers (and what they need) before the network; the defaults' modules,
    /// every sysctl and swap for the kubelet; a module both want stays in the boot's part.
    #[test]
    fn the_boot_part_is_the_images_drivers_and_the_rest_waits_for_the_kubelet() {
        let plan = HostPlan {
            kernel_release: "r".into(),
            modules: ModulePlan {
                kernel_compression: None,
                requests: vec![
                    request("overlay", "default"),
                    request("br_netfilter", "default"),
                    request("ip_vs", "proxy mode ipvs"),
                    request("virtio_net", "/usr/lib/modules-load.d/image.conf:1"),
                    request("nf_conntrack", "config"),
                ],
                loads: vec![
                    load("overlay", &[], &["overlay"]),
                    load("llc", &[], &["br_netfilter"]),
                    load("bridge", &["llc"], &["br_netfilter"]),
                    load("br_netfilter", &["bridge"], &["br_netfilter"]),
                    load("nf_conntrack", &[], &["ip_vs", "nf_conntrack"]),
                    load("ip_vs", &["nf_conntrack"], &["ip_vs"]),
                    load("failover", &[], &["virtio_net"]),
                    load("virtio_net", &["failover"], &["virtio_net"]),
                ],
                coldplug: None,
            },
            sysctls: vec![SysctlSetting {
                key: "net/ipv4/ip_forward".into(),
                value: "1".into(),
                source: "default".into(),
                ignore_failure: false,
                glob: false,
                overrides: vec![],
            }],
            swaps: vec![],
            keep_swap: false,
            notes: vec!["a note".into()],
        };
        let (boot, kubelet) = split_for_boot(plan);
        let names = |p: &HostPlan| -> Vec<String> {
            p.modules.loads.iter().map(|l| l.name.clone()).collect()
        };
        assert_eq!(names(&boot), ["nf_conntrack", "failover", "virtio_net"]);
        assert_eq!(
            names(&kubelet),
            ["overlay", "llc", "bridge", "br_netfilter", "ip_vs"]
        );
        assert!(boot.sysctls.is_empty() && !boot.is_empty());
        assert_eq!(kubelet.sysctls.len(), 1);
        assert_eq!(boot.notes, ["a note"]);
        assert!(kubelet.notes.is_empty());
        let requests = |p: &HostPlan| -> Vec<String> {
            p.modules
                .requests
                .iter()
                .map(|r| r.request.name.clone())
                .collect()
        };
        assert_eq!(requests(&boot), ["virtio_net", "nf_conntrack"]);
        assert_eq!(requests(&kubelet), ["overlay", "br_netfilter", "ip_vs"]);
    }
}
