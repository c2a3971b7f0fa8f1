//! Coldplug: the image's drivers loaded for the devices that are present, as udevd does in an
//! initramfs (dracut, Talos) — without udev.
//!
//! The kernel describes every device it found on a bus by a `modalias` (`/sys/bus/*/devices/*/
//! modalias`, e.g. `pci:v00001AF4d00001000sv…` for a virtio NIC); a driver declares the devices
//! it handles as fnmatch patterns (modules.alias: `alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci`).
//! [`run`] reads the modaliases, loads each driver of the image's list
//! ([`super::modules::DRIVERS_PATH`]) that one of them selects and that is neither loaded nor
//! built in, with what it needs, then reads the buses again: a driver's probe may create
//! devices on another bus (virtio_pci creates `virtio:d00000001v00001AF4`, which selects
//! virtio_net), whose drivers the next round loads. At most [`MAX_ROUNDS`] rounds; a round that
//! finds nothing new ends it.
//!
//! Only drivers of the image's list are loaded, not every module of the index a modalias
//! matches: the list is what the image's author chose to bind to hardware, while the index also
//! holds modules shipped as another's dependency or for a filesystem mounted on demand; and on
//! a booted node (no list) the distribution's udev does this, not kubejoin. Loads are best
//! effort, as udev's are: a driver that fails is logged and the boot goes on (the device it was
//! for is then missing, which the stage that needs it reports).

use super::load::load_all;
use super::modules::{self, Coldplug, ModulePlan, ModuleRequest};
use super::{Action, HostReport};
use crate::fs::root::Root;
use crate::sys::host::Host;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

/// Rounds at most (each reads the buses, then loads what it found): virtio needs two (PCI,
/// then the virtio bus) and a third that finds nothing new; a USB or SCSI host adapter's
/// devices one more. More would mean drivers creating devices without end.
pub const MAX_ROUNDS: usize = 4;

/// A device the kernel lists on a bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Its node path (`/sys/bus/pci/devices/0000:00:02.0`).
    pub path: PathBuf,
    /// Its `modalias`.
    pub modalias: String,
}

/// The devices of every bus under `root` that have a modalias, in path order. Unreadable
/// entries are skipped (a device going away while it is read).
pub fn scan(root: &Root) -> Vec<Device> {
    scan_new(root, &mut BTreeSet::new(), None)
}

/// The buses whose devices can select one of `aliases` (the drivers' own), of those in
/// `buses`; `None`: all of them. A bus's modalias starts with its name (`pci:`, `virtio:`,
/// `usb:`, `platform:`), so a driver whose aliases all start with `pci:` or `virtio:` needs
/// only those buses read (the VM: its PCI functions, not its ~36 devices). Except for firmware-described devices:
/// a platform, I²C or SPI device enumerated from ACPI or a device tree carries an `acpi:` or
/// `of:` modalias on its own bus; so an `acpi` or `of` alias, or one whose prefix is no bus
/// name (a wildcard, `mdio:` on bus `mdio_bus`), means reading every bus.
/// A prefix of [`BUS_NAMED`] whose bus is not registered yet (virtio's, before virtio.ko)
/// selects no device now: it is skipped until a driver registers the bus. Aliases without a
/// `:` (`fs-iso9660`) select no device.
pub fn buses_to_read(
    aliases: &[(String, String)],
    buses: &BTreeSet<String>,
) -> Option<BTreeSet<String>> {
    let mut read = BTreeSet::new();
    for (pattern, _) in aliases {
        let Some((prefix, _)) = pattern.split_once(':') else {
            continue;
        };
        if prefix == "acpi" || prefix == "of" {
            return None;
        }
        if buses.contains(prefix) {
            read.insert(prefix.to_string());
        } else if !BUS_NAMED.contains(&prefix) {
            return None;
        }
    }
    Some(read)
}

/// Buses whose devices' modalias starts with the bus's own name, from each bus's uevent
/// callback in the kernel (`pci_uevent`: `pci:v…`, `virtio_uevent`: `virtio:d…`, …). Platform,
/// I²C and SPI are left out: their devices may carry `acpi:` or `of:` instead.
pub const BUS_NAMED: &[&str] = &[
    "pci", "virtio", "usb", "serio", "hid", "scsi", "sdio", "mmc", "cpu", "xen", "vmbus", "ccw",
];

/// [`scan`], reading the modalias only of devices not in `seen` (which gains them) and, with
/// `only`, only on those buses: a rescan lists the buses again but reads only what appeared
/// since (sysfs reads are slow under emulation: the ~36 devices of the VM took 20–60 ms to
/// read once, their first lookup included).
pub fn scan_new(
    root: &Root,
    seen: &mut BTreeSet<PathBuf>,
    only: Option<&BTreeSet<String>>,
) -> Vec<Device> {
    use rustix::fs::{Mode, OFlags};
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let Ok(buses) = root.join("/sys/bus") else {
        return Vec::new();
    };
    // sysfs hands an attribute out whole in the first read (at most a page): one openat from
    // the bus's devices directory and one read per device, where a plain read of the path
    // would walk /sys/bus/… and the device's symlink again and stat and read twice (~1 ms a
    // device under emulation).
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    for bus in names(&buses) {
        if only.is_some_and(|o| !o.contains(&bus)) {
            continue;
        }
        let devices = format!("/sys/bus/{bus}/devices");
        let Ok(real) = root.join(&devices) else {
            continue;
        };
        let Ok(dir) = rustix::fs::open(
            &real,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        for dev in names(&real) {
            let path = PathBuf::from(format!("{devices}/{dev}"));
            if !seen.insert(path.clone()) {
                continue;
            }
            let Ok(fd) = rustix::fs::openat(
                &dir,
                format!("{dev}/modalias"),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            let Ok(n) = rustix::io::read(&fd, &mut buf) else {
                continue;
            };
            let modalias = String::from_utf8_lossy(&buf[..n]);
            let modalias = modalias.trim();
            if !modalias.is_empty() {
                out.push(Device {
                    path,
                    modalias: modalias.to_string(),
                });
            }
        }
    }
    out
}

/// The drivers that the `devices` select (`aliases`: the drivers' own, from
/// [`modules::ModuleIndex::aliases_of`]), each once and only when not in `tried` (which gains
/// them) and not loaded: `(driver, the first device that selects it)`.
pub fn select(
    aliases: &[(String, String)],
    devices: &[Device],
    root: &Root,
    tried: &mut BTreeSet<String>,
) -> Vec<(String, Device)> {
    let mut out = Vec::new();
    for d in devices {
        for m in modules::matching(aliases, &d.modalias) {
            if !tried.insert(m.clone()) {
                continue;
            }
            if modules::is_loaded(root, &m) {
                crate::debug!("host: coldplug: {m} (for {}) is loaded already", d.modalias);
                continue;
            }
            out.push((m, d.clone()));
        }
    }
    out
}

/// Loads the drivers of `cp` for the devices present, round after round (see the module doc),
/// recording each load in `report` (and the timeline) with the device it is for. `modules`:
/// the plan the drivers belong to (its in-kernel decompression decides how files are loaded).
pub(super) fn run(
    cp: &Coldplug,
    modules: &ModulePlan,
    root: &Root,
    sys: &dyn Host,
    report: &mut HostReport,
) {
    let mut tried = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let aliases = cp.index.aliases_of(&cp.drivers);
    for round in 1..=MAX_ROUNDS {
        let started = Instant::now();
        // Listed each round: a driver may register a bus (virtio's appears with virtio.ko).
        let buses: BTreeSet<String> = root
            .join("/sys/bus")
            .ok()
            .and_then(|p| std::fs::read_dir(p).ok())
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let only = buses_to_read(&aliases, &buses);
        let devices = scan_new(root, &mut seen, only.as_ref());
        let wanted = select(&aliases, &devices, root, &mut tried);
        crate::trace::record(
            "coldplug",
            || {
                format!(
                    "round {round}: {} new device(s) with a modalias, driver(s) to load: {}",
                    devices.len(),
                    if wanted.is_empty() {
                        "none".to_string()
                    } else {
                        wanted
                            .iter()
                            .map(|(m, _)| m.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )
            },
            started,
        );
        if wanted.is_empty() {
            return;
        }
        let requests = wanted
            .iter()
            .map(|(m, d)| ModuleRequest {
                name: m.clone(),
                source: format!("device {} ({})", d.modalias, d.path.display()),
                required: false,
            })
            .collect();
        let mut plan = ModulePlan {
            kernel_compression: modules.kernel_compression,
            ..ModulePlan::default()
        };
        let mut notes = Vec::new();
        if let Err(e) =
            modules::place_requests(&mut plan, requests, &cp.index, root, &cp.params, &mut notes)
        {
            crate::warn!("host: coldplug round {round}: {e}");
            return;
        }
        for n in notes {
            crate::info!("host: coldplug: {n}");
        }
        for (l, loaded) in plan.loads.iter().zip(load_all(&plan.loads, root, sys)) {
            let why = l.wanted_by.first().and_then(|driver| {
                let (_, d) = wanted.iter().find(|(m, _)| m == driver)?;
                Some(if *driver == l.name {
                    format!("device {}", d.modalias)
                } else {
                    format!("{driver}, for device {}", d.modalias)
                })
            });
            report.record_took(
                Action::LoadModule {
                    name: l.name.clone(),
                    path: l.path.clone(),
                    method: l.method,
                    why,
                },
                loaded.outcome,
                loaded.started,
                loaded.took,
            );
        }
    }
    crate::warn!(
        "host: coldplug: round {MAX_ROUNDS} still found drivers to load; not reading the buses again"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::testutil::{synthetic_ko, FakeRoot, RELEASE};
    use crate::host::{self, HostConfig, HostPlan};
    use crate::sys::host::RecordingHost;

    const VIRTIO_NET_PCI: &str = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
    const VIRTIO_NET: &str = "virtio:d00000001v00001AF4";
    const PIIX_IDE: &str = "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80";
    const E1000: &str = "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00";
    const UNKNOWN: &str = "pci:v00001B36d00000100sv00001AF4sd00001100bc03sc00i00";

    /// A node with a small kernel: the virtio chain, e1000 (in the index, not in the image's
    /// driver list), isofs (listed, no device alias), ata_piix (listed, built in).
    fn node(drivers: &str) -> FakeRoot {
        let r = FakeRoot::new();
        let dir = format!("/lib/modules/{RELEASE}");
        let files = [
            ("kernel/drivers/virtio/virtio_ring.ko", ""),
            (
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
            ),
            (
                "kernel/drivers/virtio/virtio_pci.ko",
                "kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
            ),
            (
                "kernel/drivers/net/virtio_net.ko",
                "kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
            ),
            (
                "kernel/drivers/block/virtio_blk.ko",
                "kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
            ),
            ("kernel/drivers/net/e1000.ko", ""),
            ("kernel/fs/isofs/isofs.ko", ""),
        ];
        let mut dep = String::new();
        for (path, deps) in files {
            dep.push_str(&format!("{path}: {deps}\n"));
            let name = path.rsplit('/').next().unwrap().trim_end_matches(".ko");
            r.write(&format!("{dir}/{path}"), synthetic_ko(&[("name", name)]));
        }
        r.write(&format!("{dir}/modules.dep"), dep);
        r.write(
            &format!("{dir}/modules.alias"),
            "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n\
             alias virtio:d00000001v* virtio_net\n\
             alias virtio:d00000002v* virtio_blk\n\
             alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\n\
             alias fs-iso9660 isofs\n\
             alias iso9660 isofs\n",
        );
        r.write(
            &format!("{dir}/modules.builtin"),
            "kernel/drivers/ata/ata_piix.ko\n",
        );
        r.write(
            &format!("{dir}/modules.builtin.modinfo"),
            b"ata_piix.alias=pci:v00008086d00007010sv*sd*bc*sc*i*\0ata_piix.license=GPL\0",
        );
        r.write(crate::host::modules::DRIVERS_PATH, drivers);
        for (dev, alias) in [
            ("pci/devices/0000:00:01.1", PIIX_IDE),
            ("pci/devices/0000:00:02.0", VIRTIO_NET_PCI),
            ("pci/devices/0000:00:03.0", E1000),
            ("pci/devices/0000:00:04.0", UNKNOWN),
        ] {
            r.write(&format!("/sys/bus/{dev}/modalias"), format!("{alias}\n"));
        }
        // A device without a modalias, and a bus without devices.
        std::fs::create_dir_all(r.real("/sys/bus/platform/devices/serial8250")).unwrap();
        std::fs::create_dir_all(r.real("/sys/bus/virtio/devices")).unwrap();
        r
    }

    const DRIVERS: &str =
        "# the image's drivers\nvirtio_pci\nvirtio-net\nvirtio_blk\nata_piix\nisofs\n";

    fn cfg() -> HostConfig {
        HostConfig {
            skip_default_modules: true,
            skip_default_sysctls: true,
            read_modules_load_d: false,
            read_sysctl_d: false,
            ..HostConfig::default()
        }
    }

    /// virtio_pci's probe creates the virtio device that selects virtio_net.
    fn kernel(r: &FakeRoot) -> RecordingHost {
        RecordingHost::new(RELEASE)
            .with_kernel_root(r.dir.path())
            .with_device_on_load("virtio_pci", "/sys/bus/virtio/devices/virtio0", VIRTIO_NET)
    }

    fn loads(report: &host::HostReport) -> Vec<(String, Option<String>)> {
        report
            .actions
            .iter()
            .filter_map(|a| match &a.action {
                Action::LoadModule { name, why, .. } => Some((name.clone(), why.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn scan_reads_every_bus_in_path_order_and_skips_devices_without_modalias() {
        let r = node(DRIVERS);
        let got: Vec<(String, String)> = scan(&r.root)
            .into_iter()
            .map(|d| (d.path.display().to_string(), d.modalias))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/sys/bus/pci/devices/0000:00:01.1".to_string(),
                    PIIX_IDE.to_string()
                ),
                (
                    "/sys/bus/pci/devices/0000:00:02.0".into(),
                    VIRTIO_NET_PCI.into()
                ),
                ("/sys/bus/pci/devices/0000:00:03.0".into(), E1000.into()),
                ("/sys/bus/pci/devices/0000:00:04.0".into(), UNKNOWN.into()),
            ]
        );
        // No /sys at all: nothing, not an error.
        assert!(scan(&FakeRoot::new().root).is_empty());
        // A rescan reads only the devices that appeared since.
        let mut seen = BTreeSet::new();
        assert_eq!(scan_new(&r.root, &mut seen, None).len(), 4);
        assert!(scan_new(&r.root, &mut seen, None).is_empty());
        r.write("/sys/bus/virtio/devices/virtio0/modalias", VIRTIO_NET);
        let new = scan_new(&r.root, &mut seen, None);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].modalias, VIRTIO_NET);
    }

    #[test]
    fn only_the_buses_the_drivers_aliases_name_are_read_unless_firmware_or_unknown_prefixes() {
        let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
        let a = |v: &[&str]| -> Vec<(String, String)> {
            v.iter().map(|p| (p.to_string(), "m".to_string())).collect()
        };
        let buses = set(&["acpi", "cpu", "pci", "platform", "serio", "virtio"]);
        assert_eq!(
            buses_to_read(
                &a(&["pci:v00001AF4d*", "virtio:d00000001v*", "fs-iso9660"]),
                &buses
            ),
            Some(set(&["pci", "virtio"]))
        );
        // A bus the drivers' aliases name that is not registered yet (virtio before
        // virtio.ko): nothing of it to read now.
        let before = set(&["acpi", "pci", "platform"]);
        assert_eq!(
            buses_to_read(&a(&["pci:v00001AF4d*", "virtio:d00000001v*"]), &before),
            Some(set(&["pci"]))
        );
        // A firmware prefix, or one that is no bus's name (mdio: is on bus mdio_bus): every
        // bus is read.
        for p in [
            "acpi:PNP0A03:*",
            "of:N*T*Cfoo",
            "mdio:0000*",
            "*:v00001AF4*",
        ] {
            assert_eq!(buses_to_read(&a(&[p]), &buses), None, "{p}");
        }
        assert_eq!(buses_to_read(&a(&["fs-vfat"]), &buses), Some(set(&[])));

        // Applied: only pci is read, so the (pci) devices still select their drivers and a
        // device of another bus is not read at all.
        let r = node(DRIVERS);
        r.write("/sys/bus/acpi/devices/PNP0A03:00/modalias", "acpi:PNP0A03:");
        let mut seen = BTreeSet::new();
        let got = scan_new(&r.root, &mut seen, Some(&set(&["pci"])));
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|d| d.modalias.starts_with("pci:")));
    }

    /// Round 1 loads virtio_pci (with what it needs) for the PCI device; its probe creates the
    /// virtio device, which round 2 finds and loads virtio_net for. Not loaded: e1000 (its
    /// device is there, but it is not in the image's list), virtio_blk (no disk), ata_piix
    /// (built in), isofs (no device selects a filesystem), nothing for the unknown device.
    #[test]
    fn two_rounds_load_virtio_pci_then_the_virtio_net_its_probe_revealed() {
        let r = node(DRIVERS);
        let fake = kernel(&r);
        let plan = host::plan(&cfg(), &r.root, &fake).unwrap();
        let cp = plan.modules.coldplug.as_ref().unwrap();
        assert_eq!(
            cp.drivers,
            [
                "virtio_pci",
                "virtio_net",
                "virtio_blk",
                "ata_piix",
                "isofs"
            ]
        );
        assert!(plan.modules.loads.is_empty());
        assert!(plan.to_string().contains(
            "coldplug: for the devices present, the drivers of /usr/lib/kubejoin/drivers.conf that match them: virtio_pci virtio_net virtio_blk ata_piix isofs"
        ), "{plan}");
        assert!(!plan.is_empty());

        let report = host::apply(&plan, &r.root, &fake).unwrap();
        assert_eq!(
            fake.loaded(),
            ["virtio_ring", "virtio", "virtio_pci", "virtio_net"]
        );
        let pci = format!("device {VIRTIO_NET_PCI}");
        assert_eq!(
            loads(&report),
            [
                (
                    "virtio_ring".to_string(),
                    Some(format!("virtio_pci, for {pci}"))
                ),
                ("virtio".into(), Some(format!("virtio_pci, for {pci}"))),
                ("virtio_pci".into(), Some(pci.clone())),
                ("virtio_net".into(), Some(format!("device {VIRTIO_NET}"))),
            ]
        );
        assert!(report.to_string().contains(&format!(
            "load module virtio_net from /lib/modules/{RELEASE}/kernel/drivers/net/virtio_net.ko (finit_module) for device {VIRTIO_NET}: done"
        )), "{report}");

        // Everything is loaded now: a second coldplug (a retried stage) loads nothing.
        let again = host::apply(&host::plan(&cfg(), &r.root, &fake).unwrap(), &r.root, &fake);
        assert!(loads(&again.unwrap()).is_empty());
        assert_eq!(fake.loaded().len(), 4);
    }

    #[test]
    fn a_driver_already_loaded_is_not_loaded_again_but_the_devices_it_made_are_served() {
        let r = node(DRIVERS);
        for m in ["virtio_ring", "virtio", "virtio_pci"] {
            r.loaded(m);
        }
        r.write("/sys/bus/virtio/devices/virtio0/modalias", VIRTIO_NET);
        let fake = kernel(&r);
        let plan = host::plan(&cfg(), &r.root, &fake).unwrap();
        let report = host::apply(&plan, &r.root, &fake).unwrap();
        assert_eq!(fake.loaded(), ["virtio_net"]);
        assert_eq!(
            loads(&report),
            [(
                "virtio_net".to_string(),
                Some(format!("device {VIRTIO_NET}"))
            )]
        );
    }

    #[test]
    fn a_device_whose_driver_is_not_listed_or_built_in_loads_nothing() {
        // Only e1000's, ata_piix's and the unknown device's: e1000 is in the index but not in
        // the list, ata_piix is built in, the unknown device has no driver at all.
        let r = node("e1000_is_not_here\nata_piix\n");
        std::fs::remove_dir_all(r.real("/sys/bus/pci/devices/0000:00:02.0")).unwrap();
        let fake = kernel(&r);
        let plan = host::plan(&cfg(), &r.root, &fake).unwrap();
        let report = host::apply(&plan, &r.root, &fake).unwrap();
        assert!(fake.loaded().is_empty(), "{:?}", fake.loaded());
        assert!(loads(&report).is_empty());
    }

    /// Coldplug loads are best effort, as udev's: a driver that fails is reported, the rest of
    /// host preparation goes on; the device it was for brings nothing in the next round.
    #[test]
    fn a_failing_driver_is_ignored_and_named_with_its_device() {
        let r = node(DRIVERS);
        let fake = kernel(&r).failing_load("virtio_pci", libc::ENODEV);
        let plan = host::plan(&cfg(), &r.root, &fake).unwrap();
        let report = host::apply(&plan, &r.root, &fake).unwrap();
        let a = report
            .actions
            .iter()
            .find(|a| matches!(&a.action, Action::LoadModule { name, .. } if name == "virtio_pci"))
            .unwrap();
        assert!(
            matches!(&a.outcome, host::Outcome::Ignored(why) if why.contains("no such device")),
            "{a:?}"
        );
        assert!(!fake.loaded().contains(&"virtio_net".to_string()));
    }

    #[test]
    fn no_driver_list_no_coldplug_and_later_layers_skip_it() {
        let r = node(DRIVERS);
        std::fs::remove_file(r.real(crate::host::modules::DRIVERS_PATH)).unwrap();
        let fake = kernel(&r);
        let plan = host::plan(&cfg(), &r.root, &fake).unwrap();
        assert_eq!(plan.modules.coldplug, None);
        assert!(plan.is_empty());
        assert!(plan.to_string().contains("(none requested)"));

        let r = node(DRIVERS);
        let off = HostConfig {
            coldplug: false,
            ..cfg()
        };
        assert_eq!(
            host::plan(&off, &r.root, &fake).unwrap().modules.coldplug,
            None
        );
    }

    #[test]
    fn the_boot_part_of_the_plan_keeps_the_coldplug() {
        let r = node(DRIVERS);
        let fake = kernel(&r);
        let plan: HostPlan = host::plan(&cfg(), &r.root, &fake).unwrap();
        let (boot, kubelet) = host::split_for_boot(plan);
        assert!(boot.modules.coldplug.is_some());
        assert!(kubelet.modules.coldplug.is_none());
    }

    #[test]
    fn a_bad_driver_list_line_is_a_parse_error_naming_it() {
        let r = node("virtio_net\nvirtio_pci extra\n");
        let e = host::plan(&cfg(), &r.root, &kernel(&r)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parsing /usr/lib/kubejoin/drivers.conf:2: expected a module name, found \"virtio_pci extra\""
        );
    }

    #[test]
    fn command_line_parameters_reach_a_coldplugged_driver() {
        let r = node(DRIVERS);
        r.write("/proc/cmdline", "quiet virtio_net.napi_tx=1\n");
        let fake = kernel(&r);
        let plan = host::plan(&cfg(), &r.root, &fake).unwrap();
        host::apply(&plan, &r.root, &fake).unwrap();
        let params: Vec<String> = fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                crate::sys::host::HostCall::FinitModule { module, params, .. }
                    if module == "virtio_net" =>
                {
                    Some(params)
                }
                _ => None,
            })
            .collect();
        assert_eq!(params, ["napi_tx=1"]);
    }
}
