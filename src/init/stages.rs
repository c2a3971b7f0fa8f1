//! The boot stages of PID-1 mode: its own stages (host preparation in layers, the real root,
//! the sources, the network, the handoff) and every other phase of the join's list handed to
//! the orchestrator ([`crate::join::Join`]).
//!
//! Each stage turns its error into a [`Failure`] named after the stage; the outputs (the plan,
//! and in the [`Join`] the discovered cluster and the join) are kept here so a retry re-runs
//! only the stage that failed.

use super::config::{Handoff, InitConfig, SYSROOT};
use super::console::Tee;
pub use super::network::{bring_up_network, bring_up_network_with_ntp, net_config};
use super::pipeline::{Boot, Done};
use super::policy::Failure;
use super::switch_root;
use crate::discovery;
use crate::error::Class;
use crate::fs::root::Root;
use crate::host::{self, HostConfig};
use crate::join::{Front, Join, Phase};
use crate::plan::{HandoffMode, JoinPlan};
use crate::sys::init::Init;
use crate::sys::{Exec, System};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the real root's device may take to appear.
const ROOT_DEVICE_WAIT: Duration = Duration::from_secs(30);

/// The join from the initramfs.
pub struct NodeBoot<'a> {
    /// The seam: every effect of the boot goes through its parts.
    system: &'a System,
    sys: &'a dyn Init,
    exec: &'a dyn Exec,
    cfg: &'a InitConfig,
    started: Instant,
    kernel_to_init: Option<Duration>,
    tee: Option<Tee>,
    cmdline: String,
    /// Where the boot sources are read (the initramfs' `/`, the real config-drive mount).
    sources: crate::source::load::LoadOptions,
    /// The root `/etc/resolv.conf` is written under.
    net_root: Root,
    /// Where host preparation finds the running kernel's `/proc`, `/sys`, `/lib/modules`.
    host_root: Root,
    /// The modules and sysctls host preparation applied so far, over its layers.
    host_applied: HostApplied,
    /// The part of host preparation only the kubelet needs, applied beside the network and
    /// the join ([`host::split_for_boot`]); waited for before the handoff.
    host_kubelet: Option<KubeletPrep>,
    /// The sources read before the network (kept for the `sources` stage and its retries).
    local: Option<crate::source::load::Local>,
    /// The join (its plan and the phases' results), once the sources stage made the plan.
    join: Option<Join<'a>>,
    /// This binary, as the control-plane finish step is started (`/proc/self/exe`).
    self_exe: PathBuf,
    /// Where the node's files go instead of the handoff's choice (tests: a temporary root).
    node_root: Option<PathBuf>,
}

impl std::fmt::Debug for NodeBoot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBoot")
            .field("handoff", &self.cfg.handoff)
            .field("local_sources", &self.local.is_some())
            .field("join", &self.join)
            .finish_non_exhaustive()
    }
}

impl<'a> NodeBoot<'a> {
    pub fn new(
        system: &'a System,
        cfg: &'a InitConfig,
        started: Instant,
        kernel_to_init: Option<Duration>,
        tee: Option<Tee>,
    ) -> Self {
        let cmdline = system
            .init
            .read_file(Path::new("/proc/cmdline"))
            .unwrap_or_default();
        Self {
            system,
            sys: &*system.init,
            exec: &*system.exec,
            cfg,
            started,
            kernel_to_init,
            tee,
            cmdline: String::from_utf8_lossy(&cmdline).into_owned(),
            sources: crate::source::load::LoadOptions::live(Root::new("/"), system.drive.clone())
                .with_fs_modules(host::filesystems::FsModules::new(
                    Root::new("/"),
                    system.host.clone(),
                )),
            net_root: Root::new("/"),
            host_root: Root::new("/"),
            host_applied: HostApplied::default(),
            host_kubelet: None,
            local: None,
            join: None,
            self_exe: PathBuf::from(crate::controlplane::after::SELF_EXE),
            node_root: None,
        }
    }

    /// Puts the node's files under `root` instead of `/` or the real root (tests).
    pub fn with_node_root(mut self, root: PathBuf) -> Self {
        self.node_root = Some(root);
        self
    }

    /// Replaces where the sources are read and where `/etc/resolv.conf` is written (tests: a
    /// temporary root, metadata on loopback).
    pub fn with_environment(
        mut self,
        sources: crate::source::load::LoadOptions,
        net_root: Root,
    ) -> Self {
        self.sources = sources;
        self.net_root = net_root;
        self
    }

    /// Replaces where host preparation reads the kernel's files (tests: a temporary root).
    pub fn with_host_root(mut self, root: Root) -> Self {
        if self.sources.fs_modules.is_some() {
            self.sources.fs_modules = Some(host::filesystems::FsModules::new(
                root.clone(),
                self.system.host.clone(),
            ));
        }
        self.host_root = root;
        self
    }

    /// What host preparation applied so far.
    pub fn host_applied(&self) -> &HostApplied {
        &self.host_applied
    }

    /// The join plan, once the sources stage made it.
    pub fn plan_made(&self) -> Option<&JoinPlan> {
        self.join.as_ref().map(Join::plan)
    }

    /// The log copy, for the caller to finish once the stages are over.
    pub fn take_tee(&mut self) -> Option<Tee> {
        self.tee.take()
    }

    /// Where the node's files go: the real root when switching to one, else the initramfs.
    fn root(&self) -> PathBuf {
        if let Some(r) = &self.node_root {
            return r.clone();
        }
        match self.cfg.handoff {
            Handoff::SwitchRoot => PathBuf::from(SYSROOT),
            _ => PathBuf::from("/"),
        }
    }

    /// The first layer of host preparation, before anything else: the image's defaults and
    /// modules-load.d (its NIC and disk drivers) and the kernel command line's keys. What the
    /// join sources add comes after `local-sources` and after `sources` ([`Self::host_layer`]).
    async fn host_prep(&mut self) -> Result<Done, Failure> {
        let cfg = host_config(&self.cmdline);
        let plan = host::plan(&cfg, &self.host_root, &*self.system.host)
            .map_err(|e| Failure::from_error("host-prep", &e))?;
        crate::info!(
            "host: kernel {}: {} module(s) and {} sysctl(s) to apply",
            plan.kernel_release,
            plan.modules.loads.len(),
            plan.sysctls.len()
        );
        // Only what the boot needs before the network (the image's drivers); the kubelet's
        // modules and the sysctls run on a thread beside the network and the join, waited for
        // before the handoff. On a machine with one CPU that thread is in the idle scheduling
        // class: it takes only the time the boot leaves (waits on the network and the API
        // server), instead of competing with the link set-up and the TLS handshakes (at normal
        // priority, measured on a 1-CPU emulated VM, it made /init → handoff ~100–200 ms longer:
        // README "Performance").
        let (boot, kubelet) = host::split_for_boot(plan);
        host::apply(&boot, &self.host_root, &*self.system.host)
            .map_err(|e| Failure::from_error("host-prep", &e))?;
        self.host_applied.record(&cfg.modules, &cfg.sysctls);
        if !kubelet.is_empty() && self.host_kubelet.is_none() {
            let names: Vec<&str> = kubelet
                .modules
                .loads
                .iter()
                .map(|l| l.name.as_str())
                .collect();
            crate::info!(
                "host: for the kubelet, beside the network and the join: module(s) {}; {} sysctl(s)",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
                kubelet.sysctls.len()
            );
            self.host_kubelet = Some(KubeletPrep::start(
                kubelet,
                self.host_root.clone(),
                self.system.host.clone(),
            ));
        }
        Ok(Done::Ok)
    }

    /// Waits for the kubelet's part of host preparation (started by host-prep); applies it
    /// again here when it failed or could not start, so a retried stage gets another try.
    fn host_kubelet_done(&mut self, stage: &'static str) -> Result<(), Failure> {
        let Some(prep) = self.host_kubelet.as_mut() else {
            return Ok(());
        };
        let started = Instant::now();
        let background = prep.thread.is_some();
        let result = match prep.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            // It panicked (it must not) or never ran: do it here.
            Some(Err(_)) | None => {
                host::apply(&prep.plan, &self.host_root, &*self.system.host).map(|_| ())
            }
        };
        if background {
            crate::trace::record(
                "wait",
                || "host preparation for the kubelet (its modules, the sysctls) to finish".into(),
                started,
            );
        }
        match result {
            Ok(()) => {
                self.host_kubelet = None;
                Ok(())
            }
            Err(e) => Err(Failure::from_error(stage, &e)),
        }
    }

    /// A later layer of host preparation: the modules and sysctls of the merged `settings` that
    /// the layers before did not apply (a new module, a sysctl with a value not yet set), loaded
    /// and written the way host-prep does, with the kernel command line's `sysctl.*` and module
    /// parameters still on top. Applying what is in place already is harmless (a loaded module
    /// is not loaded again, a sysctl with the value is not written), so a retried stage may
    /// call this again.
    fn host_layer(
        &mut self,
        stage: &'static str,
        settings: &crate::plan::merge::Settings,
    ) -> Result<(), Failure> {
        let add = self.host_applied.missing(settings);
        if add.is_empty() {
            crate::info!("host ({stage}): the join settings add no module or sysctl");
            return Ok(());
        }
        crate::info!("host ({stage}): the join settings add {add}");
        // After the kubelet's part of host-prep, so that the precedence holds (a later layer's
        // sysctl value is written last).
        self.host_kubelet_done(stage)?;
        let cfg = add.host_config();
        let mut plan = host::plan(&cfg, &self.host_root, &*self.system.host)
            .map_err(|e| Failure::from_error(stage, &e))?;
        // Only the added keys: the command line's own sysctl.* were set by host-prep (and the
        // plan keeps them on top of the added ones, as host-prep's precedence has it).
        let keys: Vec<String> = cfg
            .sysctls
            .iter()
            .map(|(k, _)| host::sysctl::to_path(k.trim_start_matches('-')))
            .collect();
        plan.sysctls.retain(|s| keys.contains(&s.key));
        host::apply(&plan, &self.host_root, &*self.system.host)
            .map_err(|e| Failure::from_error(stage, &e))?;
        self.host_applied.record(&cfg.modules, &cfg.sysctls);
        Ok(())
    }

    async fn sysroot(&mut self) -> Result<Done, Failure> {
        let Some(spec) = self
            .cfg
            .sysroot
            .as_ref()
            .filter(|_| self.cfg.handoff == Handoff::SwitchRoot)
        else {
            return Ok(Done::Skipped(format!(
                "handoff {}: the initramfs stays the root",
                self.cfg.handoff.name()
            )));
        };
        switch_root::mount_sysroot(self.sys, spec, Path::new(SYSROOT), ROOT_DEVICE_WAIT)
            .await
            .map_err(|e| Failure::from_error("sysroot", &e))?;
        crate::info!(
            "mounted the real root {} ({}) on {SYSROOT}",
            spec.device.display(),
            spec.fstype
        );
        Ok(Done::Ok)
    }

    /// The sources that need no network: the kernel command line, a local config file
    /// (`/etc/kubejoin.yaml`, `kubejoin.config=/path`) and an OpenStack config drive. Read now so
    /// the network stage can use their `network`; metadata comes after the network.
    async fn local_sources(&mut self) -> Result<Done, Failure> {
        let local = crate::source::load::load_local(&self.sources)
            .map_err(|e| Failure::from_error("local-sources", &e))?;
        let settings = local.settings();
        crate::info!(
            "local sources with join data: {}{}; network: {}",
            settings_layers(&settings),
            if local.has_config_drive() {
                " (config drive read and unmounted)"
            } else {
                ""
            },
            settings
                .network
                .as_ref()
                .map(|n| format!("{} from {}", n.value, n.source))
                .unwrap_or_else(|| "not described (DHCP on every physical link)".into())
        );
        // Before the network: a local config may name the NIC's driver.
        self.host_layer("local-sources", &settings)?;
        self.local = Some(local);
        Ok(Done::Ok)
    }

    async fn network(&mut self) -> Result<Done, Failure> {
        let network = self.local.as_ref().and_then(|l| l.settings().network);
        let (done, ntp) = bring_up_network_with_ntp(
            &super::config::split(&self.cmdline),
            network.as_ref(),
            &self.net_root,
            &*self.system.net,
        )
        .await?;
        // The lease's NTP servers join the plan as its `dhcp` layer (the sources stage).
        self.sources.dhcp_ntp = ntp.iter().map(ToString::to_string).collect();
        Ok(done)
    }

    async fn sources(&mut self) -> Result<Done, Failure> {
        let (plan, settings) =
            load_settings_after(&self.sources, self.local.clone(), &self.root()).await?;
        // Before discovery: what the metadata user-data adds.
        self.host_layer("sources", &settings)?;
        self.join = Some(Join::new(plan, self.system, Front::Boot));
        Ok(Done::Ok)
    }

    fn plan(&self, stage: &'static str) -> Result<&JoinPlan, Failure> {
        self.plan_made().ok_or_else(|| {
            Failure::new(
                stage,
                Class::Other,
                "no join plan (the sources stage did not run)",
            )
        })
    }

    /// A phase of the join's own list ([`crate::join::PHASES`]), run by the orchestrator.
    async fn join_phase(&mut self, name: &'static str, phase: Phase) -> Result<Done, Failure> {
        let join = self.join.as_mut().ok_or_else(|| {
            Failure::new(
                name,
                Class::Other,
                "no join plan (the sources stage did not run)",
            )
        })?;
        join.phase(phase)
            .await
            .map_err(|e| Failure::from_error(name, &e))
    }

    /// Prints the timeline and stops the log copy: the last things before an exec.
    fn before_exec(&mut self, outcome: &str) {
        // From here on a hang is the exec'd program's business, not ours.
        super::watchdog::disarm();
        super::report_timeline(
            &Root::new("/"),
            self.cfg.timeline,
            outcome,
            self.started,
            self.kernel_to_init,
        );
        if let Some(t) = self.tee.take() {
            t.finish(self.sys);
        }
    }

    /// A control-plane join left its handover (the phases that need the kubelet) under the
    /// node's root.
    fn control_plane_handover(plan: &JoinPlan) -> bool {
        plan.control_plane.is_some()
            && !plan.dry_run
            && crate::controlplane::after::pending(&plan.root)
    }

    /// Starts `kubejoin finish-control-plane` in the background, just before the kubelet exec.
    fn start_finish(&self, plan: &JoinPlan) -> Result<(), Failure> {
        crate::controlplane::after::start_finish_step(self.exec, &self.self_exe, &plan.root)
            .map(|_| ())
            .map_err(|e| Failure::from_error("handoff", &e))
    }

    async fn handoff(&mut self) -> Result<Done, Failure> {
        let plan = self.plan("handoff")?.clone();
        self.host_kubelet_done("handoff")?;
        let finishing = Self::control_plane_handover(&plan);
        match self.cfg.handoff {
            Handoff::None => {
                if finishing {
                    crate::info!(
                        "control plane: once the kubelet runs, `kubejoin finish-control-plane` \
                         finishes the join (handover {})",
                        crate::controlplane::after::HANDOVER
                    );
                }
                Ok(Done::Ok)
            }
            Handoff::Exec => {
                self.before_exec("handoff");
                // After the log copy is finished: stderr is the console again. A child started
                // while stderr was the copy's pipe would hold the pipe open, and finishing the
                // copy (which waits for the pipe's end) would wait for the child.
                if finishing {
                    self.start_finish(&plan)?;
                }
                let e = crate::handoff::handoff(
                    HandoffMode::Exec,
                    &plan.kubelet_path,
                    &Root::new(&plan.root),
                    self.exec,
                );
                match e {
                    Ok(()) => Ok(Done::Ok),
                    Err(e) => Err(Failure::from_error("handoff", &e)),
                }
            }
            Handoff::SwitchRoot => {
                let init = self
                    .cfg
                    .sysroot
                    .as_ref()
                    .map(|s| s.init.clone())
                    .unwrap_or_else(|| PathBuf::from("/sbin/init"));
                // The install wrote result.json under the real root's /run, which the live /run
                // is about to be mounted over: carry it along in the live one.
                let theirs = Root::new(SYSROOT).read(crate::install::RESULT_JSON);
                if let Ok(bytes) = theirs {
                    if let Err(e) = crate::install::write_result_json(&Root::new("/"), &bytes) {
                        crate::warn!(
                            "could not carry {} over into the live /run: {e}",
                            crate::install::RESULT_JSON
                        );
                    }
                }
                // A child started here would not survive the switch (its root, the initramfs,
                // is emptied, and its view of /sysroot is gone once the mount moves): the
                // booted system finishes the join (kubejoin-finish-control-plane.service, after
                // kubelet.service), from the handover carried into its /run like result.json.
                if finishing {
                    let root = Root::new(SYSROOT);
                    match crate::controlplane::after::Handover::read(&root) {
                        Ok(Some(h)) => match h.write(&Root::new("/")) {
                            Ok(()) => crate::info!(
                                "control plane: the booted system finishes the join \
                                 (`kubejoin finish-control-plane`, after kubelet.service; \
                                 handover {})",
                                crate::controlplane::after::HANDOVER
                            ),
                            Err(e) => {
                                return Err(Failure::from_error("handoff", &e));
                            }
                        },
                        Ok(None) => {}
                        Err(e) => return Err(Failure::from_error("handoff", &e)),
                    }
                }
                crate::info!(
                    "switching to the real root {SYSROOT} and executing {}",
                    init.display()
                );
                self.before_exec("switch-root");
                let e = switch_root::switch_root(self.sys, self.exec, Path::new(SYSROOT), &init);
                Err(Failure::from_error("handoff", &e))
            }
        }
    }
}

impl Boot for NodeBoot<'_> {
    async fn stage(&mut self, name: &'static str) -> Result<Done, Failure> {
        match name {
            "host-prep" => self.host_prep().await,
            "sysroot" => self.sysroot().await,
            "local-sources" => self.local_sources().await,
            "network" => self.network().await,
            "sources" => self.sources().await,
            // Its own: it ends the timeline first, and may switch root.
            "handoff" => self.handoff().await,
            // Every other phase of the join (discovery, join, and any phase added to the list).
            other => match Phase::from_name(other) {
                Some(phase) => self.join_phase(name, phase).await,
                None => Err(Failure::new(
                    other,
                    Class::Other,
                    format!("unknown boot stage {other:?}"),
                )),
            },
        }
    }
}

/// The kubelet's part of host preparation, running on a thread of its own.
#[derive(Debug)]
struct KubeletPrep {
    plan: host::HostPlan,
    thread: Option<std::thread::JoinHandle<Result<(), host::HostError>>>,
}

impl KubeletPrep {
    fn start(
        plan: host::HostPlan,
        root: Root,
        sys: std::sync::Arc<dyn crate::sys::host::Host>,
    ) -> Self {
        let work = plan.clone();
        let idle = sys.module_load_threads() <= 1;
        let thread = std::thread::Builder::new()
            .name("host-kubelet".into())
            .spawn(move || {
                if idle {
                    // Best effort: at normal priority it is only slower for the boot.
                    if let Err(e) = sys.idle_priority() {
                        crate::warn!(
                            "host: the kubelet's preparation runs at normal priority: {e}"
                        );
                    }
                }
                host::apply(&work, &root, &*sys).map(|_| ())
            })
            // No thread (out of resources): the handoff applies it instead.
            .ok();
        Self { plan, thread }
    }
}

/// The layers that gave join data or a network, for the log (`cmdline, file:/etc/kubejoin.yaml`).
fn settings_layers(s: &crate::plan::merge::Settings) -> String {
    let mut seen: Vec<String> = Vec::new();
    for src in [
        s.endpoint.as_ref().map(|v| &v.source),
        s.token.as_ref().map(|v| &v.source),
        s.discovery_file.as_ref().map(|v| &v.source),
        s.node_name.as_ref().map(|v| &v.source),
        s.network.as_ref().map(|v| &v.source),
    ]
    .into_iter()
    .flatten()
    {
        let t = src.to_string();
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    if seen.is_empty() {
        "none".into()
    } else {
        seen.join(", ")
    }
}

/// The join plan from the boot sources — the kernel command line, `/etc/kubejoin.yaml` and
/// cloud metadata, merged by the sources module exactly as `kubejoin plan` shows them — with
/// the node's files going under `root`.
pub async fn load_plan(
    opts: &crate::source::load::LoadOptions,
    root: &Path,
) -> Result<JoinPlan, Failure> {
    load_plan_after(opts, None, root).await
}

/// [`load_plan`], continuing from the local sources already read (`None`: read them now).
pub async fn load_plan_after(
    opts: &crate::source::load::LoadOptions,
    local: Option<crate::source::load::Local>,
    root: &Path,
) -> Result<JoinPlan, Failure> {
    load_settings_after(opts, local, root).await.map(|(p, _)| p)
}

/// [`load_plan_after`], with the merged settings the plan was made from (their sources say
/// where each module and sysctl came from).
pub async fn load_settings_after(
    opts: &crate::source::load::LoadOptions,
    local: Option<crate::source::load::Local>,
    root: &Path,
) -> Result<(JoinPlan, crate::plan::merge::Settings), Failure> {
    let loaded = match local {
        Some(l) => crate::source::load::load_remote(opts, l).await,
        None => crate::source::load::load(opts).await,
    }
    .map_err(|e| Failure::from_error("sources", &e))?;
    for w in &loaded.settings.warnings {
        crate::warn!("sources: {w}");
    }
    for c in &loaded.settings.conflicts {
        crate::info!("sources: {c}");
    }
    let plan = loaded
        .settings
        .to_plan(root)
        .map_err(|e| Failure::from_error("sources", &e))?;
    crate::info!(
        "join plan{}: {}",
        loaded
            .platform
            .map(|p| format!(" (metadata: {})", p.id()))
            .unwrap_or_default(),
        match &plan.discovery.mode {
            discovery::Mode::Token { endpoint, pins, .. } => {
                format!(
                    "token discovery via {endpoint}, {} pinned CA key(s)",
                    pins.pins().len()
                )
            }
            discovery::Mode::File { path } =>
                format!("discovery from the kubeconfig {}", path.display()),
            discovery::Mode::Https { url, .. } => format!("discovery from {url}"),
        }
    );
    Ok((plan, loaded.settings))
}

/// Host preparation's first layer, from the kernel command line (split with the shared kernel
/// tokenizer, leniently: see [`super::config::split`]): the defaults (overlay, br_netfilter,
/// forwarding and bridge-netfilter sysctls, modules-load.d — where the image lists its NIC
/// drivers), plus `kubejoin.modules=a,b` and `kubejoin.sysctl=key=value`. The config file,
/// config drive and metadata layers come later ([`HostApplied::missing`]).
pub fn host_config(cmdline: &str) -> HostConfig {
    let mut cfg = HostConfig::default();
    for (key, value) in super::config::split(cmdline) {
        let Some(value) = value else { continue };
        match key.replace('_', "-").as_str() {
            "kubejoin.modules" => {
                for m in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    if !cfg.modules.iter().any(|x| x == m) {
                        cfg.modules.push(m.to_string());
                    }
                }
            }
            "kubejoin.sysctl" => {
                if let Some((k, v)) = value.split_once('=') {
                    cfg.sysctls.push((k.to_string(), v.to_string()));
                }
            }
            _ => {}
        }
    }
    cfg
}

/// A module name as the kernel compares them (`-` and `_` are the same).
fn module_key(m: &str) -> String {
    m.trim().replace('-', "_")
}

/// A sysctl name in one spelling (dotted, no `-` ignore-failure prefix).
fn sysctl_key(k: &str) -> String {
    host::sysctl::to_dotted(&host::sysctl::to_path(k.trim().trim_start_matches('-')))
}

/// What host preparation applied over its layers: the modules asked for and the sysctl values
/// set from a configuration (the defaults and modules-load.d are host-prep's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostApplied {
    /// As the kernel compares names (`_`).
    pub modules: Vec<String>,
    /// Dotted name and value, the last value of a name only.
    pub sysctls: Vec<(String, String)>,
}

/// The modules and sysctls a layer adds, each with where the merge took it from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAdditions {
    pub modules: Vec<(String, String)>,
    pub sysctls: Vec<((String, String), String)>,
}

impl HostApplied {
    fn record(&mut self, modules: &[String], sysctls: &[(String, String)]) {
        for m in modules {
            let m = module_key(m);
            if !self.modules.contains(&m) {
                self.modules.push(m);
            }
        }
        for (k, v) in sysctls {
            let k = sysctl_key(k);
            let v = v.trim().to_string();
            match self.sysctls.iter_mut().find(|(n, _)| *n == k) {
                Some(s) => s.1 = v,
                None => self.sysctls.push((k, v)),
            }
        }
    }

    /// The merged settings' modules not asked for yet, and their sysctls whose value was not
    /// set yet (a new name, or a new value for a name: the merge already chose the winner).
    pub fn missing(&self, settings: &crate::plan::merge::Settings) -> HostAdditions {
        let mut add = HostAdditions::default();
        if let Some(m) = &settings.modules {
            for name in &m.value {
                if !self.modules.contains(&module_key(name))
                    && !add
                        .modules
                        .iter()
                        .any(|(x, _)| module_key(x) == module_key(name))
                {
                    add.modules.push((name.clone(), m.source.to_string()));
                }
            }
        }
        for s in &settings.sysctls {
            let (k, v) = &s.value;
            let done = self
                .sysctls
                .iter()
                .any(|(n, val)| *n == sysctl_key(k) && val == v.trim());
            if !done {
                add.sysctls.push((s.value.clone(), s.source.to_string()));
            }
        }
        add
    }
}

impl HostAdditions {
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty() && self.sysctls.is_empty()
    }

    /// Host preparation of exactly these: no defaults, no modules-load.d or sysctl.d (host-prep
    /// applied them), the kernel command line's `sysctl.*` and module parameters on top.
    pub fn host_config(&self) -> HostConfig {
        HostConfig {
            modules: self.modules.iter().map(|(m, _)| m.clone()).collect(),
            skip_default_modules: true,
            sysctls: self.sysctls.iter().map(|(kv, _)| kv.clone()).collect(),
            skip_default_sysctls: true,
            read_modules_load_d: false,
            read_sysctl_d: false,
            read_kernel_cmdline: true,
            // Host-prep's coldplug loaded the drivers of the devices present.
            coldplug: false,
            ..HostConfig::default()
        }
    }
}

impl std::fmt::Display for HostAdditions {
    /// `module(s) ip_vs (file:/etc/kubejoin.yaml); sysctl(s) vm.max_map_count=262144 (metadata:openstack)`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.modules.is_empty() {
            let m: Vec<String> = self
                .modules
                .iter()
                .map(|(m, src)| format!("{m} ({src})"))
                .collect();
            parts.push(format!("module(s) {}", m.join(", ")));
        }
        if !self.sysctls.is_empty() {
            let s: Vec<String> = self
                .sysctls
                .iter()
                .map(|((k, v), src)| format!("{k}={v} ({src})"))
                .collect();
            parts.push(format!("sysctl(s) {}", s.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::merge::Sourced;
    use crate::plan::network::{Addressing, NetworkSpec};

    const PIN: &str = "sha256:0f90fc16ca8700dea6e04dd26e9925296f500cadb2dc8221bee9034bb5dec0c2";

    fn opts(cmdline: &str) -> (crate::source::load::LoadOptions, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cmdline"), cmdline).unwrap();
        let mut o = crate::source::load::LoadOptions::new(Root::new(dir.path()));
        o.cmdline_file = Some(dir.path().join("cmdline"));
        (o, dir)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_plan_comes_from_the_boot_sources() {
        let (o, _d) = opts(&format!(
            "console=ttyS0 kubejoin.endpoint=10.0.2.2:6443 kubejoin.token=abcdef.0123456789abcdef \
             kubejoin.ca-cert-hash={PIN} kubejoin.on-failure=retry kubejoin.handoff=switch-root \
             kubejoin.timeout=2m kubejoin.node-name=vm-1"
        ));
        let plan = rt().block_on(load_plan(&o, Path::new("/sysroot"))).unwrap();
        assert!(
            matches!(&plan.discovery.mode, discovery::Mode::Token { endpoint, .. } if endpoint == "10.0.2.2:6443")
        );
        assert_eq!(plan.node_name.unwrap().as_str(), "vm-1");
        assert_eq!(plan.root, PathBuf::from("/sysroot"));
    }

    /// PID 1 joins a control plane from the kernel command line against the test control
    /// plane: every file before the kubelet written under the node's root, the handover left
    /// for the finish step (no certificate key in it), the finish step started through the exec
    /// seam with an argv free of secrets, then the kubelet exec; the phases that need the kubelet
    /// (etcd member add, node marking) not run by PID 1 itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pid1_joins_a_control_plane_from_the_command_line_and_hands_the_rest_to_a_finish_step()
    {
        use crate::sys::exec::{ExecCall, RecordingExec};
        const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";
        let cp = kubejoin_testcp::start(kubejoin_testcp::Config {
            kubernetes_version: "v1.30.4".into(),
            control_plane: Some(kubejoin_testcp::ControlPlane {
                register_nodes_after: Some(Duration::from_millis(300)),
                ..kubejoin_testcp::ControlPlane::with_certificate_key(KEY)
            }),
            ..kubejoin_testcp::Config::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node");
        std::fs::create_dir(&node).unwrap();
        let cmdline = format!(
            "console=ttyS0 kubejoin.platform=none kubejoin.endpoint={} \
             kubejoin.token=abcdef.0123456789abcdef kubejoin.ca-cert-hash={} \
             kubejoin.node-name=cp-2 kubejoin.handoff=exec \
             kubejoin.control-plane kubejoin.certificate-key={KEY} \
             kubejoin.advertise-address=127.0.0.2",
            cp.endpoint(),
            cp.signing_ca_pin()
        );
        let (sources, _src) = opts(&cmdline);
        let exec = std::sync::Arc::new(RecordingExec::new("host"));
        let init = std::sync::Arc::new(
            crate::sys::init::RecordingInit::new().with_file("/proc/cmdline", cmdline.as_str()),
        );
        let system = crate::sys::System::recording("host")
            .with_exec(exec.clone())
            .with_init(init.clone());
        let cfg = InitConfig::from_cmdline(&cmdline);
        assert_eq!(cfg.handoff, Handoff::Exec);
        let mut boot = NodeBoot::new(&system, &cfg, Instant::now(), None, None)
            .with_environment(sources, Root::new(dir.path()))
            .with_node_root(node.clone());
        // The clock stage is left out: it would read (and could step) this machine's clock.
        for stage in ["sources", "discovery", "join"] {
            if let Err(f) = boot.stage(stage).await {
                panic!("{stage}: {}", f.message);
            }
        }
        let plan = boot.plan_made().unwrap();
        assert!(plan.control_plane.is_some());
        assert_eq!(plan.root, node);
        let kubelet = plan.kubelet_path.clone();

        // Before the handoff: the files of every phase before the kubelet, no etcd.yaml yet
        // (etcd-join writes it once the member is added), nothing asked of etcd, no marking.
        let read = |p: &str| std::fs::read_to_string(node.join(p.trim_start_matches('/'))).unwrap();
        for p in [
            "/etc/kubernetes/pki/ca.key",
            "/etc/kubernetes/pki/etcd/ca.key",
            "/etc/kubernetes/pki/apiserver.crt",
            "/etc/kubernetes/pki/etcd/healthcheck-client.key",
            "/etc/kubernetes/admin.conf",
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "/etc/kubernetes/kubelet.conf",
            "/var/lib/kubelet/kubeadm-flags.env",
        ] {
            assert!(!read(p).is_empty(), "{p}");
        }
        assert!(!node.join("etc/kubernetes/manifests/etcd.yaml").exists());
        assert!(cp.etcd_calls().is_empty(), "{:?}", cp.etcd_calls());
        assert!(!cp.requests().iter().any(|q| q.method == "PATCH"));
        let handover = read(crate::controlplane::after::HANDOVER);
        let h: serde_json::Value = serde_json::from_str(&handover).unwrap();
        assert_eq!(h["kind"], "ControlPlaneHandover");
        assert_eq!(h["nodeName"], "cp-2");
        assert_eq!(h["advertiseAddress"], "127.0.0.2");
        assert_eq!(h["healthzUrl"], "https://127.0.0.2:6443/healthz");
        assert_eq!(
            h["taints"],
            serde_json::json!(["node-role.kubernetes.io/control-plane:NoSchedule"])
        );
        assert!(!handover.contains(KEY), "{handover}");
        // Handed over, not finished: result.json says so and Cluster API's sentinel waits for
        // the finish step.
        let result: serde_json::Value =
            serde_json::from_str(&read(crate::install::RESULT_JSON)).unwrap();
        assert_eq!(result["control_plane"], "finishing", "{result}");
        assert!(!node
            .join("run/cluster-api/bootstrap-success.complete")
            .exists());
        let mode = |p: &str| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(node.join(p.trim_start_matches('/')))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(crate::controlplane::after::HANDOVER), 0o600);
        // The key is in no file of the node.
        for entry in walk(&node) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(KEY),
                "{}",
                entry.display()
            );
        }

        // The handoff: the finish step started, then the kubelet exec (the fake's exec returns).
        let f = boot.stage("handoff").await.unwrap_err();
        assert!(f.message.contains("executing the kubelet"), "{}", f.message);
        let calls: Vec<ExecCall> = exec
            .calls()
            .into_iter()
            .filter(|c| !matches!(c, ExecCall::Hostname | ExecCall::Output { .. }))
            .collect();
        assert_eq!(calls.len(), 2, "{calls:?}");
        let ExecCall::SpawnDetached { path, argv, env } = &calls[0] else {
            panic!("the finish step is started first: {calls:?}")
        };
        assert_eq!(path, Path::new("/proc/self/exe"));
        let node_arg: std::ffi::OsString = node.clone().into();
        assert_eq!(
            argv,
            &vec![
                "kubejoin".into(),
                "finish-control-plane".into(),
                "--root".into(),
                node_arg
            ]
        );
        assert_eq!(
            env,
            &vec![("PATH".into(), crate::sys::exec::KUBELET_PATH_ENV.into())]
        );
        let ExecCall::Execve { path, argv, .. } = &calls[1] else {
            panic!("then the kubelet exec: {calls:?}")
        };
        assert_eq!(path, &kubelet);
        assert!(argv.iter().all(|a| !a.to_string_lossy().contains(KEY)));
    }

    /// PID 1 retries its join phase after kubelet-start failed: the control-plane files that
    /// attempt wrote are made again instead of stopping the boot at control-plane-preflight.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retried_control_plane_join_phase_remakes_the_files_its_first_attempt_wrote() {
        use kubejoin_testcp::fault::{Action, Faults, RequestFault};
        const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";
        // The first CSR request gets a 400 (final, not retried): kubelet-start fails after
        // control-plane-files.
        let cp = kubejoin_testcp::start(kubejoin_testcp::Config {
            kubernetes_version: "v1.30.4".into(),
            control_plane: Some(kubejoin_testcp::ControlPlane::with_certificate_key(KEY)),
            faults: Faults {
                requests: vec![RequestFault {
                    action: Action::Status {
                        code: 400,
                        retry_after: None,
                    },
                    count: Some(1),
                    skip: 0,
                    path_prefix: Some(crate::bootstrap::csr::CSR_PATH.into()),
                }],
                ..Faults::default()
            },
            ..kubejoin_testcp::Config::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node");
        std::fs::create_dir(&node).unwrap();
        let cmdline = format!(
            "kubejoin.platform=none kubejoin.endpoint={} kubejoin.token=abcdef.0123456789abcdef \
             kubejoin.ca-cert-hash={} kubejoin.node-name=cp-2 kubejoin.control-plane \
             kubejoin.certificate-key={KEY} kubejoin.advertise-address=127.0.0.2",
            cp.endpoint(),
            cp.signing_ca_pin()
        );
        let (sources, _src) = opts(&cmdline);
        let system = crate::sys::System::recording("host");
        let cfg = InitConfig::from_cmdline(&cmdline);
        let mut boot = NodeBoot::new(&system, &cfg, Instant::now(), None, None)
            .with_environment(sources, Root::new(dir.path()))
            .with_node_root(node.clone());
        for stage in ["sources", "discovery"] {
            if let Err(f) = boot.stage(stage).await {
                panic!("{stage}: {}", f.message);
            }
        }
        let first = boot.stage("join").await.unwrap_err();
        assert!(
            !first.message.contains("control-plane preflight"),
            "{}",
            first.message
        );
        let apiserver_key = node.join("etc/kubernetes/pki/apiserver.key");
        let before = std::fs::read(&apiserver_key).unwrap();
        if let Err(f) = boot.stage("join").await {
            panic!("the retry: {}", f.message);
        }
        assert_ne!(std::fs::read(&apiserver_key).unwrap(), before, "made again");
        assert!(crate::controlplane::after::pending(&node));
        assert!(node.join("etc/kubernetes/kubelet.conf").exists());
    }

    /// A finish step that cannot be started fails the handoff (the kubelet is not exec'd
    /// without it: the node would be a control plane without its etcd member and marking).
    #[tokio::test]
    async fn a_finish_step_that_cannot_start_fails_the_handoff_before_the_kubelet_exec() {
        use crate::sys::exec::{ExecCall, RecordingExec};
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node");
        let (sources, _src) = opts(&format!(
            "kubejoin.platform=none kubejoin.endpoint=10.0.0.1:6443 \
             kubejoin.token=abcdef.0123456789abcdef kubejoin.ca-cert-hash={PIN} \
             kubejoin.control-plane kubejoin.certificate-key=a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6 \
             kubejoin.advertise-address=10.0.0.2"
        ));
        let cmdline = "kubejoin.handoff=exec";
        let exec = std::sync::Arc::new(
            RecordingExec::new("host").failing_spawn(std::io::ErrorKind::NotFound),
        );
        let system = crate::sys::System::recording("host").with_exec(exec.clone());
        let cfg = InitConfig::from_cmdline(cmdline);
        let mut boot = NodeBoot::new(&system, &cfg, Instant::now(), None, None)
            .with_environment(sources, Root::new(dir.path()))
            .with_node_root(node.clone());
        boot.stage("sources").await.unwrap();
        // As the join phase leaves it.
        let h = crate::controlplane::after::Handover {
            kind: "ControlPlaneHandover".into(),
            server: "https://10.0.0.1:6443".into(),
            node_name: "cp-2".into(),
            advertise_address: "10.0.0.2".parse().unwrap(),
            bind_port: 6443,
            healthz_url: "https://10.0.0.2:6443/healthz".into(),
            taints: vec![],
            timeout_secs: 60,
            cluster_configuration: String::new(),
        };
        h.write(&Root::new(&node)).unwrap();
        let f = boot.stage("handoff").await.unwrap_err();
        assert_eq!(f.stage, "handoff");
        assert!(
            f.message.contains("starting the control-plane finish step"),
            "{}",
            f.message
        );
        assert!(
            !exec
                .calls()
                .iter()
                .any(|c| matches!(c, ExecCall::Execve { .. })),
            "{:?}",
            exec.calls()
        );
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_symlink() {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    #[test]
    fn bad_join_data_is_a_usage_failure_without_secrets() {
        let (o, _d) =
            opts("kubejoin.endpoint=10.0.2.2:6443 kubejoin.token=abcdef.0123456789abcdeZ");
        let f = rt().block_on(load_plan(&o, Path::new("/"))).unwrap_err();
        assert_eq!((f.stage, f.class), ("sources", Class::Usage));
        assert!(!f.message.contains("0123456789abcde"), "{}", f.message);
        let (o, _d) = opts("quiet");
        assert_eq!(
            rt().block_on(load_plan(&o, Path::new("/")))
                .unwrap_err()
                .class,
            Class::Usage
        );
    }

    #[test]
    fn host_settings_from_the_command_line() {
        let c = host_config("quiet kubejoin.modules=virtio_blk,nvme kubejoin.sysctl=vm.max_map_count=262144 kubejoin.modules=ip_vs");
        assert_eq!(c.modules, vec!["virtio_blk", "nvme", "ip_vs"]);
        assert_eq!(
            c.sysctls,
            vec![("vm.max_map_count".to_string(), "262144".to_string())]
        );
        assert!(c.read_modules_load_d, "the image's module list is read");
        // The shared tokenizer: quotes, tabs, `_` for `-`, nothing after `--`.
        let c = host_config(
            "kubejoin.modules=\"overlay, nvme\"\tkubejoin.sysctl=kernel.pid_max=65536 -- kubejoin.modules=ip_vs",
        );
        assert_eq!(c.modules, vec!["overlay", "nvme"]);
        assert_eq!(
            c.sysctls,
            vec![("kernel.pid_max".to_string(), "65536".to_string())]
        );
    }

    #[test]
    fn a_later_layer_adds_only_what_is_not_applied_yet() {
        let mut applied = HostApplied::default();
        applied.record(
            &["br-netfilter".into()],
            &[("net/ipv4/ip_forward".into(), "1".into())],
        );
        let file = crate::plan::merge::Source::File("/etc/kubejoin.yaml".into());
        let s = crate::plan::merge::Settings {
            modules: Some(Sourced {
                value: vec!["br_netfilter".into(), "ip_vs".into(), "ip-vs".into()],
                source: file.clone(),
            }),
            sysctls: vec![
                Sourced {
                    value: ("net.ipv4.ip_forward".into(), "1".into()),
                    source: file.clone(),
                },
                Sourced {
                    value: ("vm.swappiness".into(), "10".into()),
                    source: file.clone(),
                },
            ],
            ..crate::plan::merge::Settings::default()
        };
        let add = applied.missing(&s);
        assert_eq!(
            add.to_string(),
            "module(s) ip_vs (file:/etc/kubejoin.yaml); sysctl(s) vm.swappiness=10 (file:/etc/kubejoin.yaml)"
        );
        let cfg = add.host_config();
        assert!(cfg.skip_default_modules && cfg.skip_default_sysctls);
        assert!(!cfg.read_modules_load_d && !cfg.read_sysctl_d && cfg.read_kernel_cmdline);
        applied.record(&cfg.modules, &cfg.sysctls);
        assert!(applied.missing(&s).is_empty(), "{applied:?}");
        // A new value for a name is applied again (a higher layer won it).
        let mut s2 = s.clone();
        s2.sysctls[1].value.1 = "20".into();
        assert_eq!(
            applied.missing(&s2).to_string(),
            "sysctl(s) vm.swappiness=20 (file:/etc/kubejoin.yaml)"
        );
    }

    // ---- the network from the local sources ----

    use crate::net::{Method, NetMode};
    use crate::plan::network::{Interface, Network};
    use crate::sys::net::{DefaultRoute, LinkInfo, NetCall, RecordingNet};
    use std::net::Ipv4Addr;

    const NET_DOC: &str = "apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nnetwork:\n  \
        interfaces:\n  - name: eth0\n    address: 10.0.0.7/24\n    gateway: 10.0.0.1\n    mtu: 9000\n  \
        nameservers: [10.0.0.53]\n";

    fn static_eth0() -> Sourced<NetworkSpec> {
        Sourced {
            value: NetworkSpec::Config(Network {
                interfaces: vec![Interface {
                    name: Some("eth0".into()),
                    addressing: Addressing::Static {
                        address: Ipv4Addr::new(10, 0, 0, 7),
                        prefix_len: 24,
                        gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
                    },
                    mtu: Some(9000),
                }],
                nameservers: vec![Ipv4Addr::new(10, 0, 0, 53)],
            }),
            source: crate::plan::merge::Source::File("/etc/kubejoin.yaml".into()),
        }
    }

    fn params(cmdline: &str) -> Vec<(String, Option<String>)> {
        super::super::config::split(cmdline)
    }

    fn eth0() -> LinkInfo {
        LinkInfo {
            carrier: true,
            ..LinkInfo::ethernet(2, "eth0", [2, 0, 0, 0, 0, 1])
        }
    }

    #[test]
    fn a_config_network_stands_in_for_ip_and_keeps_the_cmdline_keys() {
        let cfg = net_config(
            &params("nameserver=10.9.9.9 rd.net.timeout.carrier=3"),
            Some(&static_eth0()),
        )
        .unwrap();
        let NetMode::Explicit(specs) = &cfg.mode else {
            panic!("{:?}", cfg.mode)
        };
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].device.as_deref(), Some("eth0"));
        assert_eq!(specs[0].mtu, Some(9000));
        assert!(
            matches!(specs[0].method, Method::Static(s) if s.address == Ipv4Addr::new(10, 0, 0, 7) && s.prefix_len == 24)
        );
        // nameserver= first, then the config's; the command line's timeouts stay.
        assert_eq!(
            cfg.nameservers,
            [Ipv4Addr::new(10, 9, 9, 9), Ipv4Addr::new(10, 0, 0, 53)]
        );
        assert_eq!(cfg.timeouts.carrier, Duration::from_secs(3));

        // No interfaces: DHCP on every physical link; no network at all: the cmdline's own.
        let all_dhcp = Sourced {
            value: NetworkSpec::Config(Network::default()),
            source: crate::plan::merge::Source::File("/etc/kubejoin.yaml".into()),
        };
        assert_eq!(
            net_config(&[], Some(&all_dhcp)).unwrap().mode,
            NetMode::Auto
        );
        assert_eq!(
            net_config(&params("ip=off"), None).unwrap().mode,
            NetMode::Off
        );
        // A network the merge took from the command line is the command line's ip=.
        let from_cmdline = Sourced {
            value: NetworkSpec::Cmdline(vec!["ip=off".into()]),
            source: crate::plan::merge::Source::Cmdline,
        };
        assert_eq!(
            net_config(&params("ip=off"), Some(&from_cmdline))
                .unwrap()
                .mode,
            NetMode::Off
        );
    }

    #[tokio::test]
    async fn the_network_stage_configures_what_the_config_says_through_the_net_seam() {
        let sys = RecordingNet::new()
            .with_link(LinkInfo::loopback())
            .with_link(eth0());
        let root = tempfile::tempdir().unwrap();
        let done = bring_up_network(
            &params("console=ttyS0 nameserver=10.9.9.9"),
            Some(&static_eth0()),
            &Root::new(root.path()),
            &sys,
        )
        .await
        .unwrap();
        assert_eq!(done, Done::Ok);
        assert_eq!(
            sys.changes(),
            [
                NetCall::SetLinkUp { link: "lo".into() },
                NetCall::SetLinkUp {
                    link: "eth0".into()
                },
                NetCall::SetMtu {
                    link: "eth0".into(),
                    mtu: 9000
                },
                NetCall::AddAddress {
                    link: "eth0".into(),
                    address: Ipv4Addr::new(10, 0, 0, 7),
                    prefix_len: 24
                },
                NetCall::AddDefaultRoute {
                    link: "eth0".into(),
                    route: DefaultRoute {
                        gateway: Ipv4Addr::new(10, 0, 0, 1),
                        metric: 100,
                        onlink: false
                    }
                },
            ]
        );
        let resolv = std::fs::read_to_string(root.path().join("etc/resolv.conf")).unwrap();
        assert!(
            resolv.ends_with("nameserver 10.9.9.9\nnameserver 10.0.0.53\n"),
            "{resolv}"
        );
    }

    #[tokio::test]
    async fn cmdline_ip_beats_the_config_network_and_the_conflict_is_reported() {
        let (mut o, dir) = opts("ip=off kubejoin.platform=none");
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/kubejoin.yaml"), NET_DOC).unwrap();
        o.root = Root::new(dir.path());
        let local = crate::source::load::load_local(&o).unwrap();
        let s = local.settings();
        let net = s.network.clone().unwrap();
        assert_eq!(net.source, crate::plan::merge::Source::Cmdline);
        assert_eq!(
            s.conflicts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                r#"network: using "ip=off" from cmdline, ignoring "eth0 10.0.0.7/24 via 10.0.0.1 mtu 9000; nameservers 10.0.0.53" from file:/etc/kubejoin.yaml"#
            ]
        );
        let sys = RecordingNet::new()
            .with_link(LinkInfo::loopback())
            .with_link(eth0());
        let done = bring_up_network(&params("ip=off"), Some(&net), &Root::new(dir.path()), &sys)
            .await
            .unwrap();
        assert!(
            matches!(done, Done::Skipped(ref w) if w.contains("from cmdline")),
            "{done:?}"
        );
        assert_eq!(sys.changes(), [NetCall::SetLinkUp { link: "lo".into() }]);
    }

    /// The boot's order, end to end through the stages: the local config file's network is
    /// applied by the network stage before any metadata request, and the join data comes from
    /// the metadata user-data fetched after it.
    #[tokio::test]
    async fn local_sources_then_network_then_metadata() {
        use crate::init::pipeline::{run_stages, Ended};
        use crate::init::policy::Schedule;
        use crate::source::metadata::mock::{quick, MockReply, MockServer};
        use crate::source::metadata::{http::Retry, Endpoints};
        use crate::sys::init::RecordingInit;

        let user_data = format!(
            "#cloud-config\nkubejoin:\n  endpoint: 10.0.0.2:6443\n  token: abcdef.0123456789abcdef\n  ca-cert-hash: {PIN}\n"
        );
        let srv = MockServer::start(move |r| match r.path.as_str() {
            "/hetzner/v1/userdata" => MockReply::ok(user_data.clone()),
            "/hetzner/v1/metadata/hostname" => MockReply::ok("cx-worker-3"),
            _ => MockReply::status(404),
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let cmdline = "console=ttyS0 kubejoin.on-failure=poweroff";
        for (rel, content) in [
            ("proc/cmdline", cmdline),
            ("etc/kubejoin.yaml", NET_DOC),
            ("sys/class/dmi/id/sys_vendor", "Hetzner\n"),
        ] {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let mut sources = crate::source::load::LoadOptions::new(Root::new(dir.path()));
        sources.metadata = crate::source::load::MetadataAccess::Live {
            endpoints: Endpoints::all(&srv.url()),
            timeouts: quick(),
            retry: Retry::none(),
            tls: None,
        };
        let net = RecordingNet::new()
            .with_link(LinkInfo::loopback())
            .with_link(eth0());
        let sys = std::sync::Arc::new(RecordingInit::new().with_file("/proc/cmdline", cmdline));
        let system = crate::sys::System::recording("host")
            .with_init(sys.clone())
            .with_net(std::sync::Arc::new(net.clone()));
        let sys = &*sys;
        let cfg = InitConfig::from_cmdline(cmdline);
        let started = std::time::Instant::now();
        let mut boot = NodeBoot::new(&system, &cfg, started, None, None)
            .with_environment(sources, Root::new(dir.path()));
        let fast = Schedule {
            first: Duration::from_millis(1),
            max: Duration::from_millis(1),
            before_reboot: Duration::ZERO,
        };
        let end = run_stages(
            &mut boot,
            &["local-sources", "network"],
            sys,
            &cfg,
            &fast,
            started,
        )
        .await;
        assert_eq!(end, Ended::Completed);
        assert!(
            net.changes().contains(&NetCall::AddAddress {
                link: "eth0".into(),
                address: Ipv4Addr::new(10, 0, 0, 7),
                prefix_len: 24
            }),
            "{:?}",
            net.changes()
        );
        assert!(
            srv.hits().is_empty(),
            "metadata asked before the network: {:?}",
            srv.hits()
        );

        let end = run_stages(&mut boot, &["sources"], sys, &cfg, &fast, started).await;
        assert_eq!(end, Ended::Completed);
        assert_eq!(
            srv.hits().first().map(String::as_str),
            Some("GET /hetzner/v1/userdata")
        );
        let plan = boot.plan_made().unwrap();
        assert!(
            matches!(&plan.discovery.mode, discovery::Mode::Token { endpoint, .. } if endpoint == "10.0.0.2:6443")
        );
        assert_eq!(plan.node_name.as_ref().unwrap().as_str(), "cx-worker-3");
        let network = plan.network.as_ref().unwrap();
        assert_eq!(network.source, "file:/etc/kubejoin.yaml");
        assert!(matches!(network.spec, NetworkSpec::Config(_)));
    }

    /// Host preparation in layers through the stages, on the recording host seam: host-prep
    /// applies the image's and the command line's, local-sources what the config file adds
    /// (before the network), sources what the metadata user-data adds (before discovery);
    /// the merge's precedence decides every value, and re-running a stage changes nothing.
    #[tokio::test]
    async fn host_settings_are_applied_in_layers_from_the_merged_sources() {
        host_layers(1).await;
    }

    /// With a second CPU the kubelet's part of host-prep runs beside the next stages at normal
    /// priority (with one, in the idle class); the layers and their precedence come out the
    /// same.
    #[tokio::test]
    async fn host_settings_are_applied_in_layers_with_the_kubelets_part_beside() {
        host_layers(2).await;
    }

    async fn host_layers(threads: usize) {
        use crate::host::testutil::{FakeRoot, RELEASE};
        use crate::init::pipeline::{run_stages, Ended};
        use crate::init::policy::Schedule;
        use crate::source::metadata::mock::{quick, MockReply, MockServer};
        use crate::source::metadata::{http::Retry, Endpoints};
        use crate::sys::host::RecordingHost;
        use crate::sys::init::RecordingInit;

        // The metadata user-data: a module and sysctls, one of which the file outranks.
        let user_data = "apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\n\
            modules: [ip_vs]\nsysctls:\n  vm.max_map_count: 1\n  kernel.pid_max: 65536\n"
            .to_string();
        let srv = MockServer::start(move |r| match r.path.as_str() {
            "/hetzner/v1/userdata" => MockReply::ok(user_data.clone()),
            "/hetzner/v1/metadata/hostname" => MockReply::ok("cx-worker-3"),
            _ => MockReply::status(404),
        })
        .await;
        let node = FakeRoot::new().with_fixture_kernel().with_default_sysctls();
        for (k, v) in [
            ("vm.swappiness", "60"),
            ("vm.max_map_count", "65530"),
            ("kernel.pid_max", "32768"),
        ] {
            node.sysctl(k, v);
        }
        // The image lists its NIC driver; the command line a sysctl that outranks the file's.
        node.write("/usr/lib/modules-load.d/image.conf", "virtio_net\n");
        // ip=off: no DHCP on the fake link (the network stage is not what this test is about);
        // the platform named, so its user-data is read although the command line can join.
        let cmdline = format!(
            "console=ttyS0 ip=off kubejoin.platform=hetzner kubejoin.sysctl=vm.swappiness=5 \
             kubejoin.endpoint=10.0.0.2:6443 \
             kubejoin.token=abcdef.0123456789abcdef kubejoin.ca-cert-hash={PIN}"
        );
        node.write("/proc/cmdline", &cmdline);
        node.write(
            "/etc/kubejoin.yaml",
            "apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nsysctls:\n  \
             vm.swappiness: 10\n  vm.max_map_count: 262144\n",
        );
        node.write("/sys/class/dmi/id/sys_vendor", "Hetzner\n");

        let mut sources = crate::source::load::LoadOptions::new(node.root.clone());
        sources.metadata = crate::source::load::MetadataAccess::Live {
            endpoints: Endpoints::all(&srv.url()),
            timeouts: quick(),
            retry: Retry::none(),
            tls: None,
        };
        let host = std::sync::Arc::new(
            RecordingHost::new(RELEASE)
                .with_kernel_root(node.dir.path())
                .with_load_threads(threads),
        );
        let net = RecordingNet::new()
            .with_link(LinkInfo::loopback())
            .with_link(eth0());
        let sys =
            std::sync::Arc::new(RecordingInit::new().with_file("/proc/cmdline", cmdline.as_str()));
        let system = crate::sys::System::recording("host")
            .with_init(sys.clone())
            .with_net(std::sync::Arc::new(net))
            .with_host(host.clone());
        let sys = &*sys;
        let cfg = InitConfig::from_cmdline(&cmdline);
        let started = std::time::Instant::now();
        let mut boot = NodeBoot::new(&system, &cfg, started, None, None)
            .with_environment(sources, node.root.clone())
            .with_host_root(node.root.clone());
        let fast = Schedule {
            first: Duration::from_millis(1),
            max: Duration::from_millis(1),
            before_reboot: Duration::ZERO,
        };
        let sysctl = |k: &str| node.read(&format!("/proc/sys/{}", crate::host::sysctl::to_path(k)));
        macro_rules! run {
            ($stages:expr) => {
                assert_eq!(
                    run_stages(&mut boot, $stages, sys, &cfg, &fast, started).await,
                    Ended::Completed,
                    "{:?}",
                    $stages
                )
            };
        }

        run!(&["host-prep"]);
        // The image's NIC driver before host-prep ends; the kubelet's modules and the sysctls
        // beside the next stages, waited for before the handoff.
        assert!(host.loaded().iter().any(|x| x == "virtio_net"));
        assert!(boot.host_kubelet.is_some());
        boot.host_kubelet_done("handoff").unwrap();
        assert!(boot.host_kubelet.is_none());
        // One CPU: the thread asked for the idle class before loading; two: it did not.
        let calls = host.calls();
        let idle = calls
            .iter()
            .position(|c| matches!(c, crate::sys::host::HostCall::IdlePriority));
        let overlay = calls.iter().position(|c| {
            matches!(c, crate::sys::host::HostCall::FinitModule { module, .. } if module == "overlay")
        });
        if threads == 1 {
            assert!(idle.is_some() && idle < overlay, "{calls:?}");
        } else {
            assert_eq!(idle, None, "{calls:?}");
        }
        let after_prep = host.loaded();
        for m in ["virtio_net", "overlay", "br_netfilter"] {
            assert!(after_prep.iter().any(|x| x == m), "{m}: {after_prep:?}");
        }
        assert!(!after_prep.iter().any(|x| x == "ip_vs"), "{after_prep:?}");
        assert_eq!(sysctl("vm.swappiness"), "5\n");
        assert_eq!(sysctl("net.ipv4.ip_forward"), "1\n");
        assert_eq!(sysctl("vm.max_map_count"), "65530\n");

        // local-sources: the file's vm.max_map_count (its vm.swappiness loses to the cmdline).
        run!(&["local-sources"]);
        assert_eq!(host.loaded(), after_prep, "no module in the local layers");
        assert_eq!(sysctl("vm.max_map_count"), "262144\n");
        assert_eq!(sysctl("vm.swappiness"), "5\n");
        assert_eq!(sysctl("kernel.pid_max"), "32768\n");
        assert!(srv.hits().is_empty(), "{:?}", srv.hits());

        // sources: the user-data's module and kernel.pid_max; its vm.max_map_count loses to the
        // file's.
        run!(&["network", "sources"]);
        let after_sources = host.loaded();
        let new: Vec<&String> = after_sources[after_prep.len()..].iter().collect();
        assert!(new.iter().any(|m| *m == "ip_vs"), "{new:?}");
        assert!(
            !new.iter().any(|m| *m == "overlay" || *m == "virtio_net"),
            "loaded again: {new:?}"
        );
        assert_eq!(sysctl("kernel.pid_max"), "65536\n");
        assert_eq!(sysctl("vm.max_map_count"), "262144\n");
        assert_eq!(sysctl("vm.swappiness"), "5\n");
        assert_eq!(
            boot.host_applied().modules,
            ["ip_vs"],
            "{:?}",
            boot.host_applied()
        );

        // Twice is harmless: the stages again load nothing and write no new value.
        run!(&["local-sources", "sources"]);
        assert_eq!(host.loaded(), after_sources);
        assert_eq!(sysctl("kernel.pid_max"), "65536\n");
    }
}
