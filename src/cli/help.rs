//! The help texts of every command: the documented flags are the accepted flags
//! ([`documented_flags`]).

/// `kubejoin help`: every command, and where to find each one's flags.
pub const HELP: &str = "\
kubejoin: turn this machine into a Kubernetes worker node

USAGE:
    kubejoin COMMAND [FLAGS]
    kubejoin COMMAND --help        the flags of one command (also `kubejoin help COMMAND`)

COMMANDS:
    join        discover the cluster (CA pinned), bootstrap the node's certificate, install the
                kubelet's files, hand off; with no discovery flags the join data comes from the
                kernel command line, /etc/kubejoin.yaml or cloud metadata
    plan        print the merged, validated join plan of those boot sources (JSON, secrets redacted)
    host-prep   load kernel modules, set sysctls, turn off swap, then verify (join's first step)
    ca-hash     print the sha256: pin of each certificate in PEM files
    init        run as PID 1 of an initramfs: mounts, host preparation, network, join, handoff
    finish-control-plane
                the phases of a control-plane join that need the running kubelet (PID 1 starts it)
    version     print the version
    help        print this help

EXIT CODES:
    0  success
    1  other failure (local I/O, internal)
    2  usage error: bad flags, config or input (a missing input file included)
    3  trust failure: CA pin mismatch, bad JWS signature, TLS verification failed
    4  the cluster rejected the join: token refused, RBAC 403, CSR denied, node exists
    5  timeout: a deadline passed (including a server that never became reachable)
";

/// `kubejoin join --help`.
pub const JOIN_HELP: &str = "\
kubejoin join: turn this machine into a Kubernetes worker node (or a control plane: --control-plane)

USAGE:
    kubejoin join API_SERVER_ENDPOINT --token TOKEN --discovery-token-ca-cert-hash sha256:HEX [FLAGS]
    kubejoin join --discovery-file PATH|https://URL [FLAGS]
    kubejoin join --config FILE [FLAGS]
    kubejoin join [FLAGS]          no discovery flags: the join data comes from the kernel command
                                   line, /etc/kubejoin.yaml or cloud metadata (see `kubejoin plan`)

JOIN FLAGS (same names as kubeadm join):
    --token TOKEN                                  discovery and TLS bootstrap token (<id>.<secret>); visible
                                                   to local users in /proc: prefer --token-file
    --token-file FILE                              read --token from FILE (mode 0600: owner-only)
    --discovery-token TOKEN                        token for discovery only
    --discovery-token-file FILE                    read --discovery-token from FILE (mode 0600)
    --discovery-token-ca-cert-hash sha256:HEX      pin of the cluster CA's public key (repeatable)
    --discovery-token-unsafe-skip-ca-verification  join without a CA pin (dangerous: trusts the network)
    --discovery-file PATH|https://URL              discover from a kubeconfig file or HTTPS URL
    --discovery-file-ca FILE                       CA bundle to verify an HTTPS discovery URL (default: system)
    --tls-bootstrap-token TOKEN                    token for the TLS bootstrap (defaults to --token)
    --tls-bootstrap-token-file FILE                read --tls-bootstrap-token from FILE (mode 0600)
    --node-name NAME                               node name (default: lower-cased hostname)
    --cri-socket ENDPOINT                          container runtime socket
                                                   (default unix:///var/run/containerd/containerd.sock)
    --config FILE                                  kubeadm JoinConfiguration (v1beta3/v1beta4) file, optionally
                                                   with a kubejoin.dev/v1alpha1 KubejoinConfiguration; flags win
    --dry-run                                      discover for real, print what would be done, write nothing
    --ignore-preflight-errors LIST                 preflight checks to downgrade to warnings, or 'all'
    --skip-phases LIST                             phases to skip
    --control-plane                                join as a control-plane node (certificates from kubeadm-certs,
                                                   static Pods, etcd member); with --handoff exec the
                                                   phases after the kubelet run in finish-control-plane
    --certificate-key HEX                          key that decrypts kube-system/kubeadm-certs (64 hex digits);
                                                   visible to local users in /proc: prefer --certificate-key-file
    --certificate-key-file FILE                    read --certificate-key from FILE (mode 0600: owner-only)
    --apiserver-advertise-address IP               address this node's API server and etcd advertise
    --apiserver-bind-port PORT                     port of this node's API server (default 6443)

HOST PREPARATION (runs before discovery when installing onto this machine, --root /):
    --module NAME[,NAME]                           extra kernel module to load (with its dependencies)
    --sysctl KEY=VALUE                             extra sysctl to set and verify
    --keep-swap                                    leave swap on (kubelet configured for NodeSwap)
    --skip-phases host                             skip host preparation and preflight

KUBEJOIN FLAGS:
    --root DIR                                     install under DIR (an existing directory) instead of /
    --cmdline-file FILE                            replay a recorded kernel command line (instead of /proc/cmdline)
    --metadata-dir DIR                             replay recorded cloud metadata responses (offline)
    --force                                        re-join even if this node already has a valid identity
    --handoff exec|none                            exec the kubelet, or exit 0 for systemd (default none)
    --kubelet-path PATH                            kubelet binary for --handoff=exec (default /usr/bin/kubelet)
    --kubelet-arg NAME=VALUE                       extra kubelet flag (repeatable; overrides computed ones)
    --discovery-timeout DURATION                   bound of each cluster-info fetch loop (default 5m)
    --discovery-retry-interval DURATION            pause between cluster-info attempts (default 5s)
    --tls-bootstrap-timeout DURATION               bound of the wait for the CSR to be issued (default 5m)
    --timeout DURATION                             overall deadline of the join, all phases included (default 10m)
    --ntp HOST[:PORT]|off                          SNTP server to set the clock from before discovery
                                                   (repeatable; off: none, not even DHCP's or the platform's)
    --control-plane-healthz-url URL                where a control-plane join waits for the local API server
                                                   (default https://ADVERTISE-ADDRESS:BIND-PORT/healthz)
    -v, --verbose                                  debug logging
    -h, --help                                     print this help

Exit codes: see `kubejoin help`.
";

/// `kubejoin plan --help`.
pub const PLAN_HELP: &str = "\
kubejoin plan: print the join plan of the boot sources, merged and validated

USAGE:
    kubejoin plan [--root DIR] [--cmdline-file FILE] [--metadata-dir DIR] [--config FILE]

Reads the kernel command line, the local config file and cloud metadata (user-data) the way a
`kubejoin join` without discovery flags would, and prints the merged plan as JSON: every value with
its source, every conflict between layers, secrets redacted. Exits 2 when the plan is not joinable.

FLAGS:
    --root DIR                                     read the sources under DIR (an existing directory) instead of /
    --cmdline-file FILE                            a recorded kernel command line instead of /proc/cmdline
    --metadata-dir DIR                             recorded cloud metadata responses (offline replay)
    --config FILE                                  a JoinConfiguration / KubejoinConfiguration file
    -v, --verbose                                  debug logging
    -h, --help                                     print this help
";

/// `kubejoin host-prep --help`.
pub const HOST_PREP_HELP: &str = "\
kubejoin host-prep: prepare this machine's kernel for the kubelet, then verify

USAGE:
    kubejoin host-prep [--dry-run] [--module NAME] [--sysctl KEY=VALUE] [--keep-swap]

Loads overlay, br_netfilter and the modules of modules-load.d (with their dependencies, from
modules.dep) and, where an image lists drivers in /usr/lib/kubejoin/drivers.conf, those that match
a device present (its modalias); sets the forwarding and bridge sysctls plus sysctl.d's, reads each
one back, and turns swap off. `kubejoin join` does the same first when it installs onto this machine.

FLAGS:
    --dry-run                                      print what would be done, change nothing
    --module NAME[,NAME]                           extra kernel module to load (with its dependencies)
    --sysctl KEY=VALUE                             extra sysctl to set and verify
    --keep-swap                                    leave swap on
    --root DIR                                     where /proc, /sys and /lib/modules are (default /)
    -v, --verbose                                  debug logging
    -h, --help                                     print this help
";

/// `kubejoin ca-hash --help`.
pub const CA_HASH_HELP: &str = "\
kubejoin ca-hash: print the pin of each certificate in PEM files

USAGE:
    kubejoin ca-hash FILE...

Prints `sha256:<hex>` (the SHA-256 of the certificate's SubjectPublicKeyInfo) for every certificate
in each file, e.g. `kubejoin ca-hash /etc/kubernetes/pki/ca.crt` on a control-plane node; pass it to
`kubejoin join` as --discovery-token-ca-cert-hash.

FLAGS:
    -h, --help                                     print this help
";

/// `kubejoin finish-control-plane --help`.
pub const FINISH_CONTROL_PLANE_HELP: &str = "\
kubejoin finish-control-plane: finish a control-plane join once the kubelet runs

USAGE:
    kubejoin finish-control-plane [--root DIR]

PID 1 (kubejoin.control-plane on the kernel command line), like `kubejoin join --control-plane
--handoff exec`, writes every file of a control-plane join, leaves
/run/kubejoin/control-plane-handover.json, starts this command in the background and execs the
kubelet. This command then adds the etcd member (stacked etcd) and writes etcd.yaml, marks the
Node control-plane once the kubelet registered it, and waits for the local API server's /healthz,
using only the files the join wrote (admin.conf, the CAs, the etcd healthcheck client): the
certificate key is not needed and not read. Its outcome is in /run/kubejoin/control-plane.json; on
success the handover is removed. After a switch-root the booted system runs it (re-run it by hand
after a failure). Without a handover it does nothing and exits 0.

FLAGS:
        --root DIR                                 the node's root (default /)
    -h, --help                                     print this help
";

/// `kubejoin init --help`.
pub const INIT_HELP: &str = "\
kubejoin init: run as PID 1 of an initramfs

USAGE:
    kubejoin init                  (or kubejoin installed as /init: it detects PID 1 itself)

Mounts /proc, /sys, /dev and /run, logs to the console, prepares the host, reads the join data
(kernel command line kubejoin.*, a config file, a config drive, cloud metadata), brings the network
up, joins, and hands off (kubejoin.handoff=exec|switch-root|none). On failure it follows
kubejoin.on-failure=retry|reboot|poweroff|shell. It is meant for an initramfs, not for a running
system: use `kubejoin join` there.

FLAGS:
    -h, --help                                     print this help
";

/// `kubejoin version --help`.
pub const VERSION_HELP: &str = "\
kubejoin version: print the version

USAGE:
    kubejoin version
";

/// The commands `kubejoin help` lists, with their help texts.
pub const COMMANDS: &[(&str, &str)] = &[
    ("join", JOIN_HELP),
    ("plan", PLAN_HELP),
    ("host-prep", HOST_PREP_HELP),
    ("ca-hash", CA_HASH_HELP),
    ("init", INIT_HELP),
    ("finish-control-plane", FINISH_CONTROL_PLANE_HELP),
    ("version", VERSION_HELP),
    ("help", HELP),
];

/// The flags a help text documents (`--name` and `-x`), in order: the flags a command accepts,
/// and the candidates of "did you mean".
pub fn documented_flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = Vec::new();
    for word in
        help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '`')
    {
        let word = word.split('=').next().unwrap_or_default();
        let is_long = word.len() > 2
            && word.starts_with("--")
            && word[2..]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let is_short = word.len() == 2
            && word.starts_with('-')
            && word[1..].chars().all(|c| c.is_ascii_lowercase());
        if (is_long || is_short) && !flags.iter().any(|f| f == word) {
            flags.push(word.to_string());
        }
    }
    flags
}
