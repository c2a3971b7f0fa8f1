//! Section 6: the VM boot, from the guest's own timeline. The VM test (`scripts/vm-test`,
//! `tests/vm`) boots kubejoin as `/init`; it prints one `kubejoin: timeline {…}` JSON line on
//! the serial console. This reads a kept console log; it never boots a VM itself.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The console log to read: `explicit`, else the newest `join/console.log` of a kept VM test
/// work directory (`KUBEJOIN_VM_KEEP=1 scripts/vm-test` keeps `/tmp/kubejoin-vmtest.*`), else
/// the copy an earlier benchmark saved as `saved` (reported with its age). A console found
/// fresh is copied to `saved`, since kept work directories do not live long.
pub fn find_console(explicit: Option<&Path>, saved: &Path) -> Option<PathBuf> {
    let fresh = explicit.map(Path::to_path_buf).or_else(newest_kept);
    match fresh {
        Some(p) => {
            if let Some(dir) = saved.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if std::fs::copy(&p, saved).is_ok() {
                // Keep the console's own time: the report gives its age.
                if let Ok(t) = std::fs::metadata(&p).and_then(|m| m.modified()) {
                    let _ = std::fs::File::options()
                        .write(true)
                        .open(saved)
                        .and_then(|f| f.set_modified(t));
                }
                Some(saved.to_path_buf())
            } else {
                Some(p)
            }
        }
        None => saved.exists().then(|| saved.to_path_buf()),
    }
}

fn newest_kept() -> Option<PathBuf> {
    let tmp = std::env::temp_dir();
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&tmp)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("kubejoin-vmtest.")
        })
        .map(|e| e.path().join("join/console.log"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// The boot milestones from `console`, or `{"status": "not run"}`.
pub fn measure(console: Option<&Path>) -> Value {
    let Some(path) = console else {
        return json!({ "status": "not run", "why": "no VM console log (run KUBEJOIN_VM_KEEP=1 scripts/vm-test, or scripts/bench --vm)" });
    };
    let Ok(bytes) = std::fs::read(path) else {
        return json!({ "status": "not run", "why": format!("cannot read {}", path.display()) });
    };
    let text = String::from_utf8_lossy(&bytes);
    let Some(t) = text
        .lines()
        .filter_map(|l| l.split_once("kubejoin: timeline ").map(|(_, j)| j))
        .filter_map(|j| serde_json::from_str::<Value>(j.trim()).ok())
        .next_back()
    else {
        return json!({ "status": "not run", "why": format!("no `kubejoin: timeline` line in {}", path.display()) });
    };
    let mut v = milestones(&t, path);
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    v["console_age_s"] = json!(age.map(|a| a.as_secs()));
    v
}

fn milestones(t: &Value, path: &Path) -> Value {
    let phases: Vec<(String, f64, f64)> = t["phases"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some((
                        p["phase"].as_str()?.to_string(),
                        p["start_ms"].as_f64()?,
                        p["end_ms"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    // /init's start: the first phase (the early mounts) begins as soon as it runs.
    let t0 = phases.iter().map(|p| p.1).reduce(f64::min);
    let at = |name: &str, end: bool| -> Option<f64> {
        let t0 = t0?;
        phases
            .iter()
            .find(|p| p.0 == name)
            .map(|p| if end { p.2 - t0 } else { p.1 - t0 })
    };
    let certificate = at("wait-approval", true)
        .or_else(|| at("verify-certificate", true))
        .or_else(|| at("join", true));
    let handoff = at("handoff", false).or_else(|| t["init_to_end_ms"].as_f64());
    let kernel = t["kernel_to_init_ms"].as_f64();
    json!({
        "status": "measured",
        "console": path.display().to_string(),
        "outcome": t["outcome"],
        "kernel_to_init_ms": kernel,
        "init_to_network_up_ms": at("network", true),
        "init_to_discovery_done_ms": at("discovery", true),
        "init_to_certificate_issued_ms": certificate,
        "init_to_handoff_ms": handoff,
        "kernel_to_handoff_ms": kernel.zip(handoff).map(|(k, h)| k + h),
        "phases": phases.iter().map(|p| json!({"phase": p.0, "ms": p.2 - p.1})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_guest_timeline() {
        let dir = std::env::temp_dir().join(format!("kubejoin-bench-vm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("console.log");
        std::fs::write(
            &log,
            "[    1.0] noise\n[    4.2] kubejoin: timeline {\"outcome\":\"handoff\",\"kernel_to_init_ms\":3900,\"init_to_end_ms\":1200,\"phases\":[\
             {\"phase\":\"mounts\",\"start_ms\":1000,\"end_ms\":1005,\"duration_ms\":5,\"outcome\":\"ok\"},\
             {\"phase\":\"network\",\"start_ms\":1010,\"end_ms\":1300,\"duration_ms\":290,\"outcome\":\"ok\"},\
             {\"phase\":\"discovery\",\"start_ms\":1400,\"end_ms\":1500,\"duration_ms\":100,\"outcome\":\"ok\"},\
             {\"phase\":\"wait-approval\",\"start_ms\":1600,\"end_ms\":1700,\"duration_ms\":100,\"outcome\":\"ok\"},\
             {\"phase\":\"handoff\",\"start_ms\":1800,\"end_ms\":1801,\"duration_ms\":1,\"outcome\":\"ok\"}]}\n",
        )
        .unwrap();
        let v = measure(Some(&log));
        assert_eq!(v["status"], "measured");
        assert_eq!(v["kernel_to_init_ms"], 3900.0);
        assert_eq!(v["init_to_network_up_ms"], 300.0);
        assert_eq!(v["init_to_discovery_done_ms"], 500.0);
        assert_eq!(v["init_to_certificate_issued_ms"], 700.0);
        assert_eq!(v["init_to_handoff_ms"], 800.0);
        assert_eq!(v["kernel_to_handoff_ms"], 4700.0);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(measure(None)["status"], "not run");
    }
}
