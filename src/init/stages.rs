//! The boot stages of PID-1 mode, composed from the rest of the crate.
//!
//! Each stage calls the public functions of the module that owns it and turns its error into a
//! [`Failure`] named after the stage; the outputs (the plan, the discovered cluster, the join)
//! are kept here so a retry re-runs only the stage that failed.

use super::config::{Handoff, InitConfig, SYSROOT};
use super::console::Tee;
use super::pipeline::{Boot, Done};
use super::policy::Failure;
use super::switch_root;
use crate::app::{self, Joined, Tuning};
use crate::discovery::{self, Discovered};
use crate::error::Class;
use crate::host::{self, HostConfig};
use crate::net;
use crate::plan::{HandoffMode, JoinPlan};
use crate::root::Root;
use crate::source::merge;
use crate::sys::host::RealHostSys;
use crate::sys::init::InitSys;
use crate::sys::net::RealNetSys;
use crate::sys::Sys;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the real root's device may take to appear.
const ROOT_DEVICE_WAIT: Duration = Duration::from_secs(30);

/// The join from the initramfs.
pub struct NodeBoot<'a> {
    sys: &'a dyn InitSys,
    exec: &'a dyn Sys,
    cfg: &'a InitConfig,
    started: Instant,
    kernel_to_init: Option<Duration>,
    tee: Option<Tee>,
    cmdline: String,
    plan: Option<JoinPlan>,
    discovered: Option<Discovered>,
    joined: Option<Joined>,
}

impl std::fmt::Debug for NodeBoot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBoot")
            .field("handoff", &self.cfg.handoff)
            .field("planned", &self.plan.is_some())
            .field("discovered", &self.discovered.is_some())
            .field("joined", &self.joined.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> NodeBoot<'a> {
    pub fn new(
        sys: &'a dyn InitSys,
        exec: &'a dyn Sys,
        cfg: &'a InitConfig,
        started: Instant,
        kernel_to_init: Option<Duration>,
        tee: Option<Tee>,
    ) -> Self {
        let cmdline = sys
            .read_file(Path::new("/proc/cmdline"))
            .unwrap_or_default();
        Self {
            sys,
            exec,
            cfg,
            started,
            kernel_to_init,
            tee,
            cmdline: String::from_utf8_lossy(&cmdline).into_owned(),
            plan: None,
            discovered: None,
            joined: None,
        }
    }

    /// The log copy, for the caller to finish once the stages are over.
    pub fn take_tee(&mut self) -> Option<Tee> {
        self.tee.take()
    }

    /// Where the node's files go: the real root when switching to one, else the initramfs.
    fn root(&self) -> PathBuf {
        match self.cfg.handoff {
            Handoff::SwitchRoot => PathBuf::from(SYSROOT),
            _ => PathBuf::from("/"),
        }
    }

    async fn host_prep(&mut self) -> Result<Done, Failure> {
        let cfg = host_config(&self.cmdline);
        let root = Root::new("/");
        let sys = RealHostSys;
        let plan =
            host::plan(&cfg, &root, &sys).map_err(|e| Failure::from_error("host-prep", &e))?;
        crate::info!(
            "host: kernel {}: {} module(s) and {} sysctl(s) to apply",
            plan.kernel_release,
            plan.modules.loads.len(),
            plan.sysctls.len()
        );
        host::apply(&plan, &root, &sys).map_err(|e| Failure::from_error("host-prep", &e))?;
        Ok(Done::Ok)
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

    async fn network(&mut self) -> Result<Done, Failure> {
        let cfg = net::NetConfig::from_cmdline(&super::config::split(&self.cmdline))
            .map_err(|e| Failure::from_error("network", &e))?;
        let root = Root::new("/");
        let sys = RealNetSys::new(root.clone());
        let report = net::bring_up(&cfg, &root, &sys)
            .await
            .map_err(|e| Failure::from_error("network", &e))?;
        if report.disabled {
            return Ok(Done::Skipped("ip=off: only loopback is up".into()));
        }
        for (link, c) in report.configured() {
            let how = match c.source {
                net::Source::Static => "static (ip=)".to_string(),
                net::Source::Dhcp { server } => format!(
                    "DHCP lease from {server}{}",
                    c.lease_secs.map(|s| format!(", {s}s")).unwrap_or_default()
                ),
            };
            crate::info!(
                "network: {link} {}/{}{} ({how})",
                c.address,
                c.prefix_len,
                c.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
            );
        }
        Ok(Done::Ok)
    }

    async fn sources(&mut self) -> Result<Done, Failure> {
        let plan = load_plan(&merge::LoadOptions::new(Root::new("/")), &self.root()).await?;
        self.plan = Some(plan);
        Ok(Done::Ok)
    }

    fn plan(&self, stage: &'static str) -> Result<&JoinPlan, Failure> {
        self.plan.as_ref().ok_or_else(|| {
            Failure::new(
                stage,
                Class::Other,
                "no join plan (the sources stage did not run)",
            )
        })
    }

    async fn discovery(&mut self) -> Result<Done, Failure> {
        let plan = self.plan("discovery")?;
        let d = discovery::discover(&plan.discovery)
            .await
            .map_err(|e| Failure::from_error("discovery", &e))?;
        match &d.matched_pin {
            Some(pin) => crate::info!("cluster CA pinned: {pin} matches; API server {}", d.server),
            None => crate::warn!(
                "cluster CA not pinned (unsafe skip); API server {}",
                d.server
            ),
        }
        self.discovered = Some(d);
        Ok(Done::Ok)
    }

    async fn join(&mut self) -> Result<Done, Failure> {
        let plan = self.plan("join")?;
        let d = self.discovered.as_ref().ok_or_else(|| {
            Failure::new(
                "join",
                Class::Other,
                "no discovered cluster (discovery did not run)",
            )
        })?;
        let joined = app::bootstrap_and_install(plan, d, self.exec, &Tuning::default())
            .await
            .map_err(|e| Failure::from_error("join", &e))?;
        crate::info!(
            "node identity system:node:{} ({:?}); files installed under {}",
            joined.node,
            joined.outcome,
            plan.root.display()
        );
        for s in &joined.steps {
            crate::info!("  {s}");
        }
        self.joined = Some(joined);
        Ok(Done::Ok)
    }

    /// Prints the timeline and stops the log copy: the last things before an exec.
    fn before_exec(&mut self, outcome: &str) {
        // From here on a hang is the exec'd program's business, not ours.
        super::watchdog::disarm();
        super::print_timeline(outcome, self.started, self.kernel_to_init);
        if let Some(t) = self.tee.take() {
            t.finish(self.sys);
        }
    }

    async fn handoff(&mut self) -> Result<Done, Failure> {
        let plan = self.plan("handoff")?.clone();
        match self.cfg.handoff {
            Handoff::None => Ok(Done::Ok),
            Handoff::Exec => {
                self.before_exec("handoff");
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
                let theirs = Path::new(SYSROOT).join("run/kubejoin/result.json");
                if let Ok(bytes) = self.sys.read_file(&theirs) {
                    let _ = self.sys.write_file(Path::new(super::RESULT_PATH), &bytes);
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
            "network" => self.network().await,
            "sources" => self.sources().await,
            "discovery" => self.discovery().await,
            "join" => self.join().await,
            "handoff" => self.handoff().await,
            other => Err(Failure::new(
                other,
                Class::Other,
                format!("unknown boot stage {other:?}"),
            )),
        }
    }
}

/// The join plan from the boot sources — the kernel command line, `/etc/kubejoin.yaml` and
/// cloud metadata, merged by the sources module exactly as `kubejoin plan` shows them — with
/// the node's files going under `root`.
pub async fn load_plan(opts: &merge::LoadOptions, root: &Path) -> Result<JoinPlan, Failure> {
    let loaded = merge::load(opts)
        .await
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
    Ok(plan)
}

/// Host preparation's settings from the kernel command line: the defaults (overlay,
/// br_netfilter, forwarding and bridge-netfilter sysctls, modules-load.d — where the image lists
/// its NIC drivers), plus `kubejoin.modules=a,b` and `kubejoin.sysctl=key=value`.
// TODO(source): take these from the merged join settings (config file and metadata layers too)
// once the sources stage runs before host preparation can use them.
pub fn host_config(cmdline: &str) -> HostConfig {
    let mut cfg = HostConfig::default();
    for word in cmdline.split_whitespace() {
        if let Some(list) = word.strip_prefix("kubejoin.modules=") {
            cfg.modules
                .extend(list.split(',').filter(|m| !m.is_empty()).map(String::from));
        } else if let Some((k, v)) = word
            .strip_prefix("kubejoin.sysctl=")
            .and_then(|kv| kv.split_once('='))
        {
            cfg.sysctls.push((k.to_string(), v.to_string()));
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "sha256:0f90fc16ca8700dea6e04dd26e9925296f500cadb2dc8221bee9034bb5dec0c2";

    fn opts(cmdline: &str) -> (merge::LoadOptions, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cmdline"), cmdline).unwrap();
        let mut o = merge::LoadOptions::new(Root::new(dir.path()));
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
    }
}
