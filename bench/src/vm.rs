//! Section 6: the VM boot, from the guest's own timeline. kubejoin as `/init` writes it to
//! `/run/kubejoin/timeline.json` (the boots here run with that default; the stand-in kubelet
//! copies the file to the serial console) or prints it as one `kubejoin: timeline {…}` line: its
//! phases and, inside each, its steps (connects, TLS handshakes, requests, module loads, waits
//! with their reason). The stand-in kubelet's first line says when it started
//! (`CLOCK_BOOTTIME`), which gives /init → the kubelet's first line beside /init → handoff.
//!
//! With `--vm-env FILE` (the `vm.env` of `scripts/vm-image`), this boots the VM test's join case
//! (`kubejoin-vm join`: a fresh network namespace, the test control plane, qemu) `--vm-boots N`
//! times per image variant and reports medians; the consoles are kept in `target/bench/vm/`.
//! Without it, the consoles kept there by an earlier run (or one `--vm-console FILE`) are
//! read again and reported with their age.

use crate::stats;
use crate::{err, Error};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The budgets of issue 18, for the default image (medians over the boots).
pub const BUDGET_DISCOVERY_MS: f64 = 150.0;
pub const BUDGET_HOST_PREP_MS: f64 = 150.0;
pub const BUDGET_INIT_TO_HANDOFF_MS: f64 = 600.0;
pub const MIN_BOOTS: usize = 5;
/// Boots of each comparison image: enough for a median, few enough to keep the run bounded
/// (a boot under software emulation takes ~10 s).
pub const VARIANT_BOOTS: usize = 3;

/// What the VM section boots.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// `scripts/vm-image`'s `vm.env`.
    pub env: PathBuf,
    pub boots: usize,
    /// Boots of each comparison variant (the budgets are on the default's `boots`).
    pub variant_boots: usize,
    /// Boot this image as the default instead of the one `vm.env` names.
    pub initrd: Option<PathBuf>,
    /// Where the consoles are kept (`target/bench/vm`).
    pub keep: PathBuf,
    /// qemu's accelerator (`tcg`, `kvm`), for the record.
    pub accel: String,
}

/// `KEY=VALUE` lines of a `vm.env` (values may be double-quoted).
pub fn read_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// One image (and qemu setting) to boot.
#[derive(Debug, Clone)]
struct Variant {
    name: String,
    initrd: PathBuf,
    /// The VM's random source, as `KUBEJOIN_VM_RNG` (tests/vm/src/harness.rs): `cpu` (RDRAND),
    /// `virtio` (a virtio-rng PCI device) or `none`.
    rng: &'static str,
    /// The VM's CPUs.
    smp: u32,
    /// qemu's machine type, as `KUBEJOIN_VM_MACHINE`: `q35` (the VM test's) or `pc`.
    machine: &'static str,
    what: String,
}

fn variants(env: &BTreeMap<String, String>, default: &Path) -> Vec<Variant> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut v = vec![Variant {
        name: "default".into(),
        initrd: default.to_path_buf(),
        rng: "cpu",
        smp: 1,
        machine: "q35",
        what: format!(
            "the VM test's image ({} KiB) on qemu's q35 machine with 1 CPU, the CPU's RDRAND as the random source",
            size(default) / 1024
        ),
    }];
    for item in env
        .get("KUBEJOIN_VM_VARIANTS")
        .map(String::as_str)
        .unwrap_or("")
        .split_whitespace()
    {
        if let Some((name, path)) = item.split_once('=') {
            let p = PathBuf::from(path);
            // The builder's defaults (gzip archive, modules as the tree has them) make the
            // default image: booting the same bytes again measures nothing new.
            if same_bytes(&p, default) {
                if let Some(d) = v.first_mut() {
                    d.what.push_str(&format!(" (= the {name} variant)"));
                }
                continue;
            }
            v.push(Variant {
                name: format!("initramfs-{name}"),
                what: format!(
                    "archive/modules compressed {name} ({} KiB)",
                    size(&p) / 1024
                ),
                initrd: p,
                rng: "cpu",
                smp: 1,
                machine: "q35",
            });
        }
    }
    v.push(Variant {
        name: "smp2".into(),
        initrd: default.to_path_buf(),
        rng: "cpu",
        smp: 2,
        machine: "q35",
        what: "the default image in a VM with 2 CPUs (module loads can then run side by side)"
            .into(),
    });
    v.push(Variant {
        name: "pc".into(),
        initrd: default.to_path_buf(),
        rng: "cpu",
        smp: 1,
        machine: "pc",
        what: "the default image on qemu's pc machine (i440FX, PCI interrupts routed through ACPI link devices), as before".into(),
    });
    v.push(Variant {
        name: "virtio-rng".into(),
        initrd: default.to_path_buf(),
        rng: "virtio",
        smp: 1,
        machine: "q35",
        what: "the default image in a VM whose random source is a virtio-rng PCI device (the CPU without RDRAND), as before".into(),
    });
    v.push(Variant {
        name: "no-rng".into(),
        initrd: default.to_path_buf(),
        rng: "none",
        smp: 1,
        machine: "q35",
        what: "the default image in a VM without any hardware random source (the emulated CPU without RDRAND, no virtio-rng)".into(),
    });
    v
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Boots every variant `opts.boots` times and measures the consoles.
pub fn run(opts: &BootOptions) -> Result<Value, Error> {
    let text = std::fs::read_to_string(&opts.env)
        .map_err(|e| err(format!("reading {}: {e}", opts.env.display())))?;
    let env = read_env(&text);
    let get = |k: &str| {
        env.get(k)
            .map(PathBuf::from)
            .ok_or_else(|| err(format!("{} sets no {k}", opts.env.display())))
    };
    let (kernel, testcp, harness) = (
        get("KUBEJOIN_VM_KERNEL")?,
        get("KUBEJOIN_VM_TESTCP")?,
        get("KUBEJOIN_VM_HARNESS")?,
    );
    let default = match &opts.initrd {
        Some(p) => p.clone(),
        None => get("KUBEJOIN_VM_INITRD")?,
    };
    std::fs::create_dir_all(&opts.keep)
        .map_err(|e| err(format!("creating {}: {e}", opts.keep.display())))?;
    remove_kept(&opts.keep);
    let started = Instant::now();
    let mut out = Vec::new();
    for v in variants(&env, &default) {
        let mut consoles = Vec::new();
        let mut failed = Vec::new();
        let boots = if v.name == "default" {
            opts.boots
        } else {
            opts.variant_boots
        }
        .max(1);
        for i in 1..=boots {
            let work = std::env::temp_dir().join(format!(
                "kubejoin-bench-vm-{}-{}-{i}",
                std::process::id(),
                v.name
            ));
            let _ = std::fs::remove_dir_all(&work);
            eprintln!(
                "kubejoin-bench: vm: {} boot {i}/{} ({})",
                v.name, boots, v.what
            );
            let status = Command::new(&harness)
                .args(["join", "--timeout", "60", "--kernel"])
                .arg(&kernel)
                .arg("--initrd")
                .arg(&v.initrd)
                .arg("--testcp")
                .arg(&testcp)
                .arg("--work")
                .arg(&work)
                // What ships: the timeline in its file, a summary line on the console (the
                // harness otherwise asks for the whole JSON line there).
                .args(["--append", "kubejoin.timeline=file"])
                .env("KUBEJOIN_VM_RNG", v.rng)
                .env("KUBEJOIN_VM_SMP", v.smp.to_string())
                .env("KUBEJOIN_VM_MACHINE", v.machine)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let kept = opts.keep.join(format!("{}-{i}.log", v.name));
            if std::fs::copy(work.join("console.log"), &kept).is_ok() {
                consoles.push(kept);
            }
            if !matches!(&status, Ok(s) if s.success()) {
                failed.push(format!("boot {i}: {status:?}"));
            }
            let _ = std::fs::remove_dir_all(&work);
        }
        let mut m = measure_boots(&consoles);
        m["variant"] = json!(v.name);
        m["what"] = json!(v.what);
        m["failed_boots"] = json!(failed);
        out.push(m);
    }
    Ok(json!({
        "status": "measured",
        "accel": opts.accel,
        "boots_default": opts.boots,
        "boots_per_variant": opts.variant_boots,
        "took_s": stats::round2(started.elapsed().as_secs_f64()),
        "consoles": opts.keep.display().to_string(),
        "variants": out,
    }))
}

/// Whether `name` is a console this module keeps: `<variant>-<boot>.log`.
fn is_kept_console(name: &str) -> bool {
    name.strip_suffix(".log")
        .and_then(|n| n.rsplit_once('-'))
        .is_some_and(|(variant, boot)| {
            !variant.is_empty() && !boot.is_empty() && boot.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Removes the consoles an earlier run kept in `keep`, and nothing else: `keep` is next to the
/// report (`--out`), a directory that may hold anything (measured: `--out /tmp/x.json` once
/// emptied a `/tmp/vm` holding the image being measured).
fn remove_kept(keep: &Path) {
    for e in std::fs::read_dir(keep).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_file())
            && is_kept_console(&e.file_name().to_string_lossy())
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The consoles an earlier run kept in `keep` (grouped by variant), reported with their age; or
/// one explicit console.
pub fn measure_kept(explicit: Option<&Path>, keep: &Path) -> Value {
    if let Some(p) = explicit {
        let mut m = measure_boots(&[p.to_path_buf()]);
        m["variant"] = json!("default");
        return json!({ "status": "measured", "variants": [m], "consoles": p.display().to_string() });
    }
    let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for e in std::fs::read_dir(keep).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_kept_console(&name) {
            continue;
        }
        if let Some((variant, _)) = name.strip_suffix(".log").and_then(|n| n.rsplit_once('-')) {
            groups
                .entry(variant.to_string())
                .or_default()
                .push(e.path());
        }
    }
    if groups.is_empty() {
        return json!({ "status": "not run", "why": "no VM consoles kept (run scripts/bench --vm)" });
    }
    let age = groups
        .values()
        .flatten()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
        .and_then(|t| t.elapsed().ok())
        .map(|a| a.as_secs());
    // The default first, as run() orders them.
    let mut variants: Vec<Value> = groups
        .into_iter()
        .map(|(name, mut files)| {
            files.sort();
            let mut m = measure_boots(&files);
            m["variant"] = json!(name);
            m
        })
        .collect();
    variants.sort_by_key(|v| v["variant"] != "default");
    json!({
        "status": "measured",
        "consoles": keep.display().to_string(),
        "console_age_s": age,
        "variants": variants,
    })
}

/// One boot, from its console.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    pub kernel_to_init_ms: Option<f64>,
    pub init_to_handoff_ms: Option<f64>,
    /// From /init's start to the stand-in kubelet's first line (`CLOCK_BOOTTIME` on both
    /// sides): the handoff as the kubelet sees it, after the timeline and the exec.
    pub init_to_kubelet_ms: Option<f64>,
    pub outcome: String,
    /// Phase -> ms (a phase run twice counts twice).
    pub phases: BTreeMap<String, f64>,
    /// Milestones from /init's start: `network`, `discovery`, `certificate` done.
    pub milestones: BTreeMap<&'static str, f64>,
    /// Per phase, per step kind: summed ms.
    pub steps: BTreeMap<(String, String), f64>,
    /// Every wait, as `phase: detail` -> ms.
    pub waits: Vec<(String, String, f64)>,
    /// The host-prep module loads: their summed time and their wall time (first start to last end).
    pub modules_sum_ms: f64,
    pub modules_wall_ms: f64,
}

/// The `kubejoin: timeline {…}` JSON of a console, else the stand-in kubelet's copy of
/// `/run/kubejoin/timeline.json` (the boots run with the default `kubejoin.timeline=file`, whose
/// console gets a summary line only).
pub fn timeline(text: &str) -> Option<Value> {
    let last = |prefix: &str| {
        text.lines()
            .filter_map(|l| l.split_once(prefix).map(|(_, j)| j))
            .filter_map(|j| serde_json::from_str::<Value>(j.trim()).ok())
            .next_back()
    };
    last("kubejoin: timeline ").or_else(|| last(kubejoin_vmtest::check::TIMELINE_FILE_LINE))
}

/// Reads one boot's timeline.
pub fn boot(t: &Value) -> Boot {
    let mut b = Boot {
        kernel_to_init_ms: t["kernel_to_init_ms"].as_f64(),
        outcome: t["outcome"].as_str().unwrap_or("").to_string(),
        ..Boot::default()
    };
    let phases = t["phases"].as_array().cloned().unwrap_or_default();
    // /init's start: the first phase (the early mounts) begins as soon as it runs.
    let t0 = phases
        .iter()
        .filter_map(|p| p["start_ms"].as_f64())
        .reduce(f64::min);
    for p in &phases {
        let name = p["phase"].as_str().unwrap_or("").to_string();
        let (start, end) = (p["start_ms"].as_f64(), p["end_ms"].as_f64());
        if let (Some(s), Some(e)) = (start, end) {
            *b.phases.entry(name.clone()).or_default() += e - s;
        }
        if let (Some(t0), Some(e)) = (t0, end) {
            let key = match name.as_str() {
                "network" => Some("network"),
                "discovery" => Some("discovery"),
                "wait-approval" => Some("certificate"),
                _ => None,
            };
            if let Some(k) = key {
                b.milestones.insert(k, e - t0);
            }
        }
        if name == "handoff" {
            if let (Some(t0), Some(s)) = (t0, start) {
                b.init_to_handoff_ms = Some(s - t0);
            }
        }
        let (mut first, mut last) = (f64::MAX, f64::MIN);
        for s in p["steps"].as_array().into_iter().flatten() {
            let kind = s["step"].as_str().unwrap_or("").to_string();
            let ms = s["ms"].as_f64().unwrap_or(0.0);
            *b.steps.entry((name.clone(), kind.clone())).or_default() += ms;
            if kind == "wait" {
                b.waits.push((
                    name.clone(),
                    s["detail"].as_str().unwrap_or("").to_string(),
                    ms,
                ));
            }
            if kind == "module" && name == "host-prep" {
                let at = s["at_ms"].as_f64().unwrap_or(0.0);
                b.modules_sum_ms += ms;
                first = first.min(at);
                last = last.max(at + ms);
            }
        }
        if name == "host-prep" && last > first {
            b.modules_wall_ms = last - first;
        }
    }
    if b.init_to_handoff_ms.is_none() {
        b.init_to_handoff_ms = t["init_to_end_ms"].as_f64();
    }
    b
}

/// From /init's start to the stand-in kubelet's first line: its `CLOCK_BOOTTIME` less
/// kubejoin's kernel → /init (the same clock).
pub fn kubelet_after_init(console: &str, b: &Boot) -> Option<f64> {
    let started = kubejoin_vmtest::check::started_ms(console)?;
    Some(stats::round2(started - b.kernel_to_init_ms?))
}

fn median(v: &[f64]) -> Option<f64> {
    stats::median(v).map(stats::round2)
}

/// Medians over the boots of `consoles`.
pub fn measure_boots(consoles: &[PathBuf]) -> Value {
    let boots: Vec<Boot> = consoles
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| {
            let text = String::from_utf8_lossy(&b);
            let mut boot = boot(&timeline(&text)?);
            boot.init_to_kubelet_ms = kubelet_after_init(&text, &boot);
            Some(boot)
        })
        .collect();
    let col =
        |f: &dyn Fn(&Boot) -> Option<f64>| -> Vec<f64> { boots.iter().filter_map(f).collect() };
    let mut names: Vec<String> = Vec::new();
    for b in &boots {
        for p in b.phases.keys() {
            if !names.contains(p) {
                names.push(p.clone());
            }
        }
    }
    // In the order they run (the first boot's), not alphabetically.
    if let Some(first) = consoles
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .find_map(|b| timeline(&String::from_utf8_lossy(&b)))
    {
        let order: Vec<String> = first["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["phase"].as_str().map(String::from))
            .collect();
        names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(usize::MAX));
    }
    let phases: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({
                "phase": n,
                "median_ms": median(&col(&|b| b.phases.get(n).copied())),
            })
        })
        .collect();
    let mut kinds: Vec<(String, String)> =
        boots.iter().flat_map(|b| b.steps.keys().cloned()).collect();
    kinds.sort();
    kinds.dedup();
    let steps: Vec<Value> = kinds
        .iter()
        .map(|(phase, kind)| {
            json!({
                "phase": phase,
                "step": kind,
                "median_ms": median(&col(&|b| Some(b.steps.get(&(phase.clone(), kind.clone())).copied().unwrap_or(0.0)))),
            })
        })
        .collect();
    // Every distinct wait, with how many boots had it and its median.
    let mut waits: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for b in &boots {
        for (phase, detail, ms) in &b.waits {
            waits
                .entry((phase.clone(), generic(detail)))
                .or_default()
                .push(*ms);
        }
    }
    let waits: Vec<Value> = waits
        .into_iter()
        .map(|((phase, detail), ms)| {
            json!({ "phase": phase, "wait": detail, "boots": ms.len(), "median_ms": median(&ms) })
        })
        .collect();
    let milestone = |k: &'static str| median(&col(&|b| b.milestones.get(k).copied()));
    json!({
        "boots": boots.len(),
        "outcomes": boots.iter().map(|b| b.outcome.clone()).collect::<Vec<_>>(),
        "kernel_to_init_ms": median(&col(&|b| b.kernel_to_init_ms)),
        "init_to_handoff_ms": median(&col(&|b| b.init_to_handoff_ms)),
        "init_to_handoff_all_ms": col(&|b| b.init_to_handoff_ms),
        "init_to_kubelet_ms": median(&col(&|b| b.init_to_kubelet_ms)),
        "init_to_kubelet_all_ms": col(&|b| b.init_to_kubelet_ms),
        "kernel_to_handoff_ms": median(&col(&|b| b.kernel_to_init_ms.zip(b.init_to_handoff_ms).map(|(k, h)| k + h))),
        "init_to_network_up_ms": milestone("network"),
        "init_to_discovery_done_ms": milestone("discovery"),
        "init_to_certificate_issued_ms": milestone("certificate"),
        "modules_sum_ms": median(&col(&|b| (b.modules_sum_ms > 0.0).then_some(b.modules_sum_ms))),
        "modules_wall_ms": median(&col(&|b| (b.modules_wall_ms > 0.0).then_some(b.modules_wall_ms))),
        "phases": phases,
        "steps": steps,
        "waits": waits,
    })
}

/// A wait's detail without its numbers (so the same wait of different boots groups together).
fn generic(detail: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in detail.chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// The median of phase `name` in a variant's measurement.
pub fn phase_median(v: &Value, name: &str) -> Option<f64> {
    v["phases"]
        .as_array()?
        .iter()
        .find(|p| p["phase"] == name)?["median_ms"]
        .as_f64()
}

/// The default variant's measurement (or an older report's single boot, read the same way).
pub fn default_variant(vm: &Value) -> Option<&Value> {
    vm["variants"]
        .as_array()?
        .iter()
        .find(|v| v["variant"] == "default")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "[    1.0] noise\n[    4.2] kubejoin: timeline {\"outcome\":\"handoff\",\"kernel_to_init_ms\":3900,\"init_to_end_ms\":1200,\"phases\":[\
         {\"phase\":\"mounts\",\"start_ms\":1000,\"end_ms\":1005,\"duration_ms\":5,\"outcome\":\"ok\"},\
         {\"phase\":\"host-prep\",\"start_ms\":1005,\"end_ms\":1010,\"duration_ms\":5,\"outcome\":\"ok\",\"steps\":[\
            {\"step\":\"module\",\"detail\":\"a: done\",\"at_ms\":0.5,\"ms\":2.0},{\"step\":\"module\",\"detail\":\"b: done\",\"at_ms\":1.0,\"ms\":3.0}]},\
         {\"phase\":\"network\",\"start_ms\":1010,\"end_ms\":1300,\"duration_ms\":290,\"outcome\":\"ok\"},\
         {\"phase\":\"discovery\",\"start_ms\":1400,\"end_ms\":1500,\"duration_ms\":100,\"outcome\":\"ok\",\"steps\":[\
            {\"step\":\"wait\",\"detail\":\"entropy: not ready 12 ms\",\"at_ms\":0.0,\"ms\":60.0},{\"step\":\"tls-handshake\",\"detail\":\"x\",\"at_ms\":61.0,\"ms\":30.0}]},\
         {\"phase\":\"wait-approval\",\"start_ms\":1600,\"end_ms\":1700,\"duration_ms\":100,\"outcome\":\"ok\"},\
         {\"phase\":\"handoff\",\"start_ms\":1800,\"end_ms\":1801,\"duration_ms\":1,\"outcome\":\"ok\"}]}\n";

    /// A new run removes the consoles an earlier one kept beside the report, and nothing else
    /// of that directory (an image, the VM's environment file).
    #[test]
    fn a_run_clears_only_the_consoles_it_keeps() {
        let dir = std::env::temp_dir().join(format!("kubejoin-bench-keep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let ours = [
            "default-1.log",
            "default-12.log",
            "smp2-3.log",
            "no-rng-2.log",
        ];
        let theirs = [
            "initramfs.img",
            "vm.env",
            "notes.log",
            "default-x.log",
            "-1.log",
        ];
        for f in ours.iter().chain(&theirs) {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        remove_kept(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let _ = std::fs::remove_dir_all(&dir);
        let mut want: Vec<String> = theirs.iter().map(|s| s.to_string()).collect();
        want.push("sub".into());
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn reads_the_guest_timeline_and_its_steps() {
        let b = boot(&timeline(CONSOLE).unwrap());
        assert_eq!(b.kernel_to_init_ms, Some(3900.0));
        assert_eq!(b.init_to_handoff_ms, Some(800.0));
        assert_eq!(b.milestones["network"], 300.0);
        assert_eq!(b.milestones["discovery"], 500.0);
        assert_eq!(b.milestones["certificate"], 700.0);
        assert_eq!(b.phases["discovery"], 100.0);
        assert_eq!(b.steps[&("discovery".into(), "tls-handshake".into())], 30.0);
        assert_eq!(
            b.waits,
            vec![("discovery".into(), "entropy: not ready 12 ms".into(), 60.0)]
        );
        assert_eq!((b.modules_sum_ms, b.modules_wall_ms), (5.0, 3.5));
        assert_eq!(
            generic("retry pause after attempt 2 (Retry-After 1.5s)"),
            "retry pause after attempt # (Retry-After #s)"
        );
    }

    #[test]
    fn a_file_timeline_is_read_from_the_checkers_copy() {
        let copy = CONSOLE.replace("kubejoin: timeline ", "kubejoin-check: timeline-file ");
        let b = boot(&timeline(&copy).unwrap());
        assert_eq!(b.init_to_handoff_ms, Some(800.0));
        // kubejoin's own line wins when there are both.
        let both =
            format!("{copy}\nkubejoin: timeline {{\"kernel_to_init_ms\":1,\"phases\":[]}}\n");
        assert_eq!(timeline(&both).unwrap()["kernel_to_init_ms"], 1);
        assert_eq!(timeline("nothing here\n"), None);
    }

    #[test]
    fn medians_over_boots() {
        let dir = std::env::temp_dir().join(format!("kubejoin-bench-vm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = Vec::new();
        for (i, k) in [3900, 3000, 3500].iter().enumerate() {
            let p = dir.join(format!("default-{i}.log"));
            // The stand-in kubelet started 900 + i ms after /init (i = 0: no line at all).
            let started = if i == 0 {
                String::new()
            } else {
                format!(
                    "kubejoin-check: started after the kernel: {:.6} s\n",
                    (k + 900 + i) as f64 / 1e3
                )
            };
            std::fs::write(&p, CONSOLE.replace("3900", &k.to_string()) + &started).unwrap();
            files.push(p);
        }
        let m = measure_boots(&files);
        assert_eq!(m["boots"], 3);
        assert_eq!(m["kernel_to_init_ms"], 3500.0);
        assert_eq!(m["init_to_kubelet_all_ms"], json!([901.0, 902.0]));
        // The median as every median here (the nearest-rank 50th percentile).
        assert_eq!(m["init_to_kubelet_ms"], 901.0);
        assert_eq!(phase_median(&m, "discovery"), Some(100.0));
        assert_eq!(m["phases"][0]["phase"], "mounts");
        assert_eq!(m["waits"][0]["boots"], 3);
        let kept = measure_kept(None, &dir);
        assert_eq!(default_variant(&kept).unwrap()["boots"], 3);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(measure_kept(None, &dir)["status"], "not run");
    }

    #[test]
    fn vm_env_lines() {
        let e = read_env("A=1\nKUBEJOIN_VM_VARIANTS=\"gzip=/x/a.img zstd=/x/b.img\"\n");
        assert_eq!(e["A"], "1");
        let v = variants(&e, Path::new("/x/default.img"));
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "default",
                "initramfs-gzip",
                "initramfs-zstd",
                "smp2",
                "pc",
                "virtio-rng",
                "no-rng"
            ]
        );
        assert_eq!((v[0].rng, v[5].rng, v[6].rng), ("cpu", "virtio", "none"));
        assert_eq!((v[0].smp, v[3].smp), (1, 2));
        assert_eq!((v[0].machine, v[4].machine), ("q35", "pc"));
    }
}
