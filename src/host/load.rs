//! Loading a plan's modules, several at once where their dependencies allow.

use super::modules::{self, LoadOutcome, PlannedLoad};
use super::{HostError, Outcome};
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
