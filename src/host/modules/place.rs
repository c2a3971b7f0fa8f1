//! Placing module requests into a load plan: each resolved through the index, closed over its
//! dependencies, each module once and after what it needs.

use super::{
    is_loaded, Compression, LoadMethod, ModuleIndex, ModulePlan, ModuleRequest, PlannedLoad,
    PlannedRequest, RequestOutcome, Resolved,
};
use crate::fs::root::Root;
use crate::host::HostError;
use std::collections::BTreeMap;

/// Resolves `requests` against `index` into `plan.loads` (each module once, after what it
/// needs; a module wanted twice keeps its first place) and `plan.requests`. `params`: the
/// `param=value` arguments per module name. Returns where each module was placed.
pub(crate) fn place_requests(
    plan: &mut ModulePlan,
    requests: Vec<ModuleRequest>,
    index: &ModuleIndex,
    root: &Root,
    params: &BTreeMap<String, Vec<String>>,
    notes: &mut Vec<String>,
) -> Result<BTreeMap<String, usize>, HostError> {
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    let release = index.release.as_str();
    for req in requests {
        let outcome = if is_loaded(root, &req.name) {
            RequestOutcome::AlreadyLoaded
        } else {
            match index.resolve(&req.name) {
                Resolved::Builtin(_) => RequestOutcome::Builtin,
                // A kernel built without loadable modules has no /proc/modules and usually
                // no module tree: say that, rather than "depmod never ran".
                Resolved::NotFound
                    if req.required
                        && index.missing_dep_file
                        && !root.join("/proc/modules").is_ok_and(|p| p.exists())
                        && !root
                            .join(format!("/lib/modules/{release}"))
                            .is_ok_and(|p| p.exists()) =>
                {
                    return Err(HostError::NoModuleSupport {
                        name: req.name.clone(),
                        release: release.to_string(),
                    })
                }
                Resolved::NotFound if req.required => {
                    return Err(HostError::ModuleNotFound {
                        name: req.name.clone(),
                        release: release.to_string(),
                        index_missing: index.missing_dep_file,
                    })
                }
                Resolved::NotFound => {
                    notes.push(format!(
                        "module {} ({}) not found for kernel {release}: skipped",
                        req.name, req.source
                    ));
                    RequestOutcome::NotFound
                }
                Resolved::Modules(ms) => {
                    let (mut modules, mut already) = (Vec::new(), Vec::new());
                    for m in ms {
                        for (name, hard) in index.load_order(&m)? {
                            if is_loaded(root, &name) {
                                already.push(name);
                                continue;
                            }
                            let required = req.required && hard;
                            if let Some(&i) = placed.get(&name) {
                                let l = &mut plan.loads[i];
                                l.required |= required;
                                if !l.wanted_by.contains(&req.name) {
                                    l.wanted_by.push(req.name.clone());
                                }
                            } else {
                                let Some(path) = index.node_path(&name) else {
                                    continue;
                                };
                                let method = match Compression::from_path(&path.to_string_lossy()) {
                                    None => LoadMethod::Finit,
                                    Some(c) if plan.kernel_compression == Some(c) => {
                                        LoadMethod::FinitCompressed(c)
                                    }
                                    Some(c) => LoadMethod::Decompress(c),
                                };
                                placed.insert(name.clone(), plan.loads.len());
                                plan.loads.push(PlannedLoad {
                                    name: name.clone(),
                                    path,
                                    method,
                                    params: params.get(&name).cloned().unwrap_or_default(),
                                    deps: index.deps(&name).to_vec(),
                                    required,
                                    wanted_by: vec![req.name.clone()],
                                });
                            }
                            modules.push(name);
                        }
                    }
                    if modules.is_empty() && !already.is_empty() {
                        // An alias (`fs-overlay`) whose module is already there.
                        RequestOutcome::AlreadyLoaded
                    } else {
                        RequestOutcome::Load { modules, already }
                    }
                }
            }
        };
        plan.requests.push(PlannedRequest {
            request: req,
            outcome,
        });
    }
    Ok(placed)
}
