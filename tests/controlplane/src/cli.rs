//! The `kubejoin-testcp` command line.
//!
//! ```text
//! kubejoin-testcp serve [--listen ADDR] [--token ID.SECRET]... [--san NAME]...
//!                       [--signer-delay 5s] [--approval auto|manual] [--approval-delay 20s]
//!                       [--ca-rotation] [--server-url URL] [--pki-backdate 5m]
//!                       [--node NAME[:ready]]...
//!                       [--kube-proxy] [--no-preferences] [--kubernetes-version V]
//!                       [--state-dir DIR]
//!                       [--down-for 5s [--down-reset]] [--fault SPEC]...
//!                       [--watch-cut-every M [--watch-cut-abrupt]] [--certificate-delay 5s]
//!                       [--max-in-flight N[:RETRY_AFTER]]
//!                       [--startup-window 1500ms] [--restart down=3s,after=10s|path=PREFIX[,nth=N]]...
//!                       [--no-date-header]
//!                       [control-plane flags: --upload-certs | --certificate-key HEX, --etcd ...]
//! kubejoin-testcp upload-certs --state-dir DIR [--certificate-key HEX] [--certs-ttl 2h]
//! kubejoin-testcp approve NAME --state-dir DIR
//! kubejoin-testcp deny NAME [--reason R] [--message M] --state-dir DIR
//! kubejoin-testcp sntp [--listen ADDR] [--offset SECONDS] [--stratum N]
//!                      [--kiss CODE | --unsynchronised | --wrong-originate | --silent]
//! ```
//!
//! `serve` prints the CA pin(s), a join command and, last, `READY https://ADDR`; it runs until
//! SIGINT or SIGTERM. With `--state-dir` it first writes `ca.crt` (the bundle served in
//! cluster-info), `admin.conf`, `endpoint`, `pin` (the signing CA's) and appends one JSON line
//! per request to `requests.jsonl`. `approve` and `deny` talk to the running server with
//! `admin.conf`, exactly as `kubectl certificate approve|deny` would: GET the CSR, append the
//! condition, PUT the `approval` subresource.
//!
//! With control-plane flags, `serve` also prints the control-plane join line (with the
//! certificate key, as `kubeadm init --upload-certs` prints it) and the etcd gateway's URL, and
//! the state dir gets `pki/` (the shared CAs and keys, as on the first control-plane node),
//! `certificate-key` and `etcd-endpoint`. `upload-certs` re-uploads `kubeadm-certs` through the
//! API from those files, as `kubeadm init phase upload-certs --upload-certs` does.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error.

mod controlplane;

use crate::client::Client;
use crate::fault::{DownMode, InFlightLimit, WatchCut};
use crate::kubeconfig::parse_admin_kubeconfig;
use crate::{start, Approval, Config, Error, NodeSpec, TokenSpec};
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub const USAGE: &str = "\
kubejoin-testcp: a test Kubernetes control plane for kubejoin

USAGE:
    kubejoin-testcp serve [FLAGS]
    kubejoin-testcp upload-certs --state-dir DIR [--certificate-key HEX] [--certs-ttl DURATION]
    kubejoin-testcp approve NAME --state-dir DIR
    kubejoin-testcp deny NAME [--reason R] [--message M] --state-dir DIR
    kubejoin-testcp sntp [SNTP FLAGS]

SNTP FLAGS (a test SNTP server on UDP; prints `READY udp://ADDR`, runs until SIGINT/SIGTERM):
    --listen ADDR              address to listen on (default 127.0.0.1:0, a free port)
    --offset SECONDS           added to this machine's time in every answer (default 0; negative: behind)
    --stratum N                stratum of the answers, 1 to 15 (default 1)
    --kiss CODE                answer every request with a kiss-o'-death (DENY, RSTR, RATE, ...)
    --unsynchronised           answer with leap indicator 3 (clock not synchronised)
    --wrong-originate          answer with an originate timestamp that is not the request's
    --silent                   count requests but never answer

SERVE FLAGS:
    --listen ADDR              address to listen on (default 127.0.0.1:0, a free port)
    --token ID.SECRET          bootstrap token (repeatable; default abcdef.0123456789abcdef)
    --san NAME                 extra serving certificate SAN (repeatable)
    --signer-delay DURATION    lag of the bootstrap signer after cluster-info is written (default 0s)
    --approval auto|manual     auto-approve qualifying kubelet CSRs (default auto)
    --approval-delay DURATION  delay before auto-approval (default 0s)
    --ca-rotation              serve an extra, old CA before the signing one in cluster-info
    --ca-key ecdsa-p256|rsa-2048  key type of the CAs (default ecdsa-p256; kubeadm's default is rsa-2048)
    --server-url URL           server: written into cluster-info (default https://ADDR)
    --pki-backdate DURATION    how long before now the CA and serving certificate are valid from
                               (default 5m, as kubeadm's; 0s: newer than any kubejoin build)
    --node NAME[:ready]        a Node that already exists (repeatable)
    --kube-proxy               install the kube-proxy addon ConfigMap and RBAC
    --no-preferences           no `preferences: {}` line (client-go >= 0.34)
    --kubernetes-version V     the version to behave as, X.Y or vX.Y.Z (default v1.33.0): /version,
                               kubeadm-config (ClusterConfiguration API version of that kubeadm),
                               CSR approver/signer usage rules, kubelet-config ConfigMap name
    --kubeadm-config-version V kubernetesVersion in kubeadm-config when it differs (an upgrade in
                               progress: kubeadm-config ahead of kube-controller-manager)
    --versioned-kubelet-config UnversionedKubeletConfigMap: false (before v1.25): kubelet-config-1.X
    --image-repository REPO    ClusterConfiguration.imageRepository (default: kubeadm's for the version)
    --state-dir DIR            write ca.crt, admin.conf, endpoint, pin, requests.jsonl there

FAULT INJECTION (serve):
    --down-for DURATION        refuse connections for this long after start (port bound, not listening)
    --down-reset               while down, accept and reset connections instead of refusing them
    --fault SPEC               a per-request fault (repeatable; the first matching one with budget left
                               applies): KIND[,count=K][,skip=N][,path=PREFIX]
                               [,retry-after=SECONDS|HTTP-DATE]
                               KIND: status=CODE | reset | stall[=MAX] | delay=DUR | truncate |
                                     redirect=CODE:LOCATION | oversize=SIZE[:chunked]
                               e.g. --fault status=503,count=3,retry-after=2,path=/api/v1/namespaces/kube-public
    --watch-cut-every M        end every CSR watch stream after M events
    --watch-cut-abrupt         cut watch streams with a connection reset instead of a clean end
    --certificate-delay DUR    issue the certificate this long after the CSR is approved
    --max-in-flight N[:S]      answer 429 (Retry-After: S, default 1) beyond N concurrent gets and
                               lists (kube-apiserver's --max-requests-inflight; watches take no slot)
                               and beyond half as many concurrent writes, unless:
    --max-mutating-in-flight M beyond M concurrent writes (--max-mutating-requests-inflight)
    --startup-window DURATION  for this long after the server starts listening (at start, after
                               --down-for, after each restart) answer 401 to bearer tokens and 403 to
                               everyone but system:masters, like a kube-apiserver whose caches are not
                               synced yet
    --restart SPEC             restart once (repeatable): connections closed, the port refusing for
                               down=DURATION, then listening again with the same CA, tokens and
                               objects; SPEC: down=DURATION,after=DURATION (after it came up) or
                               down=DURATION,path=PREFIX[,nth=N] (on the Nth request under PREFIX,
                               which is cut unanswered)
                               e.g. --restart down=3s,path=/apis/certificates.k8s.io,nth=2
    --no-date-header           leave the HTTP Date header out of every answer (kube-apiserver always
                               sends one: a fault model of a proxy that strips it)
";

/// A bad command line (exit code 2).
#[derive(Debug)]
struct Usage(String);

/// The whole help text.
fn usage_text() -> String {
    format!("{USAGE}\n{}", controlplane::SERVE_FLAGS)
}

enum Command {
    Serve {
        config: Box<Config>,
        state_dir: Option<PathBuf>,
    },
    Decide {
        name: String,
        approve: bool,
        reason: String,
        message: String,
        state_dir: PathBuf,
    },
    Sntp(crate::sntp::SntpConfig),
    UploadCerts {
        state_dir: PathBuf,
        key: Option<String>,
        ttl: std::time::Duration,
    },
    Help,
}

/// Runs the command line; returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    let command = match parse(&args) {
        Ok(c) => c,
        Err(Usage(msg)) => {
            eprintln!("kubejoin-testcp: {msg}\n\n{}", usage_text());
            return 2;
        }
    };
    let result = match command {
        Command::Help => {
            print!("{}", usage_text());
            Ok(())
        }
        Command::UploadCerts {
            state_dir,
            key,
            ttl,
        } => controlplane::upload_certs(&state_dir, key, ttl),
        Command::Serve { config, state_dir } => serve(*config, state_dir.as_deref()),
        Command::Decide {
            name,
            approve,
            reason,
            message,
            state_dir,
        } => decide(&name, approve, &reason, &message, &state_dir),
        Command::Sntp(config) => sntp(config),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("kubejoin-testcp: error: {msg}");
            1
        }
    }
}

fn parse(args: &[String]) -> Result<Command, Usage> {
    let mut it = args.iter().skip(1).cloned();
    let Some(sub) = it.next() else {
        return Err(Usage("missing command".into()));
    };
    // Accept both `--flag value` and `--flag=value`.
    let mut rest: Vec<String> = Vec::new();
    for a in it {
        match a.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                rest.push(flag.to_string());
                rest.push(value.to_string());
            }
            _ => rest.push(a),
        }
    }
    let mut rest = rest.into_iter();
    let value = |flag: &str, rest: &mut std::vec::IntoIter<String>| {
        rest.next()
            .ok_or_else(|| Usage(format!("{flag} needs a value")))
    };
    match sub.as_str() {
        "help" | "--help" | "-h" => Ok(Command::Help),
        "serve" => {
            let mut config = Config::default();
            let mut tokens: Vec<TokenSpec> = Vec::new();
            let mut state_dir = None;
            let mut watch_cut_abrupt = false;
            let mut mutating_in_flight: Option<usize> = None;
            let mut cp_flags = controlplane::Flags::default();
            while let Some(flag) = rest.next() {
                match flag.as_str() {
                    "--listen" => {
                        let v = value(&flag, &mut rest)?;
                        config.bind = v.parse().map_err(|_| {
                            Usage(format!("--listen {v:?}: not an IP:PORT address"))
                        })?;
                    }
                    "--token" => {
                        let v = value(&flag, &mut rest)?;
                        tokens.push(TokenSpec::parse(&v).map_err(|_| {
                            Usage("--token must be <6 [a-z0-9]>.<16 [a-z0-9]>".into())
                        })?);
                    }
                    "--san" => config.extra_sans.push(value(&flag, &mut rest)?),
                    "--signer-delay" => {
                        config.signer_delay = duration(&flag, &value(&flag, &mut rest)?)?
                    }
                    "--approval-delay" => {
                        config.approval_delay = duration(&flag, &value(&flag, &mut rest)?)?
                    }
                    "--approval" => {
                        config.approval = match value(&flag, &mut rest)?.as_str() {
                            "auto" => Approval::Auto,
                            "manual" => Approval::Manual,
                            other => {
                                return Err(Usage(format!("--approval {other:?}: auto or manual")))
                            }
                        }
                    }
                    "--ca-rotation" => config.ca_rotation = true,
                    "--ca-key" => {
                        config.ca_key_type = match value(&flag, &mut rest)?.as_str() {
                            "ecdsa-p256" => crate::CaKeyType::EcdsaP256,
                            "rsa-2048" => crate::CaKeyType::Rsa2048,
                            other => {
                                return Err(Usage(format!(
                                    "--ca-key {other:?}: ecdsa-p256 or rsa-2048"
                                )))
                            }
                        }
                    }
                    "--server-url" => config.server_url = Some(value(&flag, &mut rest)?),
                    "--pki-backdate" => {
                        config.pki_backdate = duration(&flag, &value(&flag, &mut rest)?)?
                    }
                    "--node" => {
                        let v = value(&flag, &mut rest)?;
                        let (name, ready) = match v.split_once(':') {
                            Some((n, "ready")) => (n.to_string(), true),
                            Some((n, "notready" | "not-ready")) => (n.to_string(), false),
                            Some(_) => {
                                return Err(Usage(format!("--node {v:?}: NAME or NAME:ready")))
                            }
                            None => (v.clone(), false),
                        };
                        config.nodes.push(NodeSpec { name, ready });
                    }
                    "--kube-proxy" => config.kube_proxy = true,
                    "--no-preferences" => config.preferences_line = false,
                    "--kubernetes-version" => config.kubernetes_version = value(&flag, &mut rest)?,
                    "--kubeadm-config-version" => {
                        config.kubeadm_config_kubernetes_version = Some(value(&flag, &mut rest)?)
                    }
                    "--versioned-kubelet-config" => {
                        config.unversioned_kubelet_config_map = Some(false)
                    }
                    "--image-repository" => {
                        config.image_repository = Some(value(&flag, &mut rest)?)
                    }
                    "--state-dir" => state_dir = Some(PathBuf::from(value(&flag, &mut rest)?)),
                    "--down-for" => {
                        config.faults.down_for = duration(&flag, &value(&flag, &mut rest)?)?
                    }
                    "--down-reset" => config.faults.down_mode = DownMode::Reset,
                    "--no-date-header" => config.faults.no_date_header = true,
                    "--fault" => {
                        let v = value(&flag, &mut rest)?;
                        let fault = crate::fault::parse_spec(&v)
                            .map_err(|e| Usage(format!("--fault {v:?}: {e}")))?;
                        config.faults.requests.push(fault);
                    }
                    "--watch-cut-every" => {
                        let v = value(&flag, &mut rest)?;
                        let every = v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            Usage(format!("--watch-cut-every {v:?}: a positive number"))
                        })?;
                        let abrupt = config.faults.watch_cut.is_some_and(|c| c.abrupt);
                        config.faults.watch_cut = Some(WatchCut { every, abrupt });
                    }
                    "--watch-cut-abrupt" => watch_cut_abrupt = true,
                    "--certificate-delay" => {
                        config.faults.certificate_delay =
                            duration(&flag, &value(&flag, &mut rest)?)?
                    }
                    "--max-in-flight" => {
                        let v = value(&flag, &mut rest)?;
                        let (n, s) = v.split_once(':').unwrap_or((&v, "1"));
                        let bad =
                            || Usage(format!("--max-in-flight {v:?}: N or N:RETRY_AFTER_SECONDS"));
                        let limit = n.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
                        config.faults.max_in_flight = Some(InFlightLimit {
                            retry_after_secs: s.parse().map_err(|_| bad())?,
                            ..InFlightLimit::with_default_ratio(limit)
                        });
                    }
                    "--max-mutating-in-flight" => {
                        let v = value(&flag, &mut rest)?;
                        mutating_in_flight =
                            Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                                Usage(format!("--max-mutating-in-flight {v:?}: a positive number"))
                            })?);
                    }
                    "--startup-window" => {
                        config.faults.startup_window = duration(&flag, &value(&flag, &mut rest)?)?
                    }
                    "--restart" => {
                        let v = value(&flag, &mut rest)?;
                        let restart = crate::fault::parse_restart(&v)
                            .map_err(|e| Usage(format!("--restart {v:?}: {e}")))?;
                        config.faults.restarts.push(restart);
                    }
                    other if cp_flags.take(other, &mut rest)? => {}
                    other => return Err(Usage(format!("unknown flag {other:?}"))),
                }
            }
            if !tokens.is_empty() {
                config.tokens = tokens;
            }
            config.control_plane = cp_flags.finish()?;
            match (&mut config.faults.max_in_flight, mutating_in_flight) {
                (Some(l), Some(m)) => l.mutating = m,
                (None, Some(_)) => {
                    return Err(Usage(
                        "--max-mutating-in-flight needs --max-in-flight".into(),
                    ))
                }
                _ => {}
            }
            match (&mut config.faults.watch_cut, watch_cut_abrupt) {
                (Some(cut), true) => cut.abrupt = true,
                (None, true) => {
                    return Err(Usage("--watch-cut-abrupt needs --watch-cut-every".into()))
                }
                _ => {}
            }
            Ok(Command::Serve {
                config: Box::new(config),
                state_dir,
            })
        }
        "upload-certs" => {
            let mut state_dir = None;
            let mut key = None;
            let mut ttl = crate::copycerts::DEFAULT_TTL;
            while let Some(flag) = rest.next() {
                match flag.as_str() {
                    "--state-dir" => state_dir = Some(PathBuf::from(value(&flag, &mut rest)?)),
                    "--certificate-key" => {
                        let v = value(&flag, &mut rest)?;
                        crate::copycerts::CertificateKey::parse(&v)
                            .map_err(|why| Usage(format!("--certificate-key: {why}")))?;
                        key = Some(v);
                    }
                    "--certs-ttl" => ttl = duration(&flag, &value(&flag, &mut rest)?)?,
                    other => return Err(Usage(format!("unknown flag {other:?}"))),
                }
            }
            Ok(Command::UploadCerts {
                state_dir: state_dir
                    .ok_or_else(|| Usage("upload-certs: --state-dir is required".into()))?,
                key,
                ttl,
            })
        }
        "approve" | "deny" => {
            let approve = sub == "approve";
            let mut name = None;
            let mut state_dir = None;
            let mut reason = if approve {
                "KubectlApprove"
            } else {
                "KubectlDeny"
            }
            .to_string();
            let mut message = if approve {
                "This CSR was approved by kubectl certificate approve."
            } else {
                "This CSR was denied by kubectl certificate deny."
            }
            .to_string();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--state-dir" => state_dir = Some(PathBuf::from(value(&arg, &mut rest)?)),
                    "--reason" if !approve => reason = value(&arg, &mut rest)?,
                    "--message" if !approve => message = value(&arg, &mut rest)?,
                    flag if flag.starts_with("--") => {
                        return Err(Usage(format!("unknown flag {flag:?}")))
                    }
                    _ if name.is_none() => name = Some(arg),
                    _ => return Err(Usage(format!("unexpected argument {arg:?}"))),
                }
            }
            Ok(Command::Decide {
                name: name.ok_or_else(|| Usage(format!("{sub}: missing the CSR name")))?,
                approve,
                reason,
                message,
                state_dir: state_dir
                    .ok_or_else(|| Usage(format!("{sub}: --state-dir is required")))?,
            })
        }
        "sntp" => {
            use crate::sntp::{Behaviour, SntpConfig};
            let mut config = SntpConfig::default();
            let mut behaviours = 0;
            while let Some(flag) = rest.next() {
                match flag.as_str() {
                    "--listen" => {
                        let v = value(&flag, &mut rest)?;
                        config.bind = v.parse().map_err(|_| {
                            Usage(format!("--listen {v:?}: not an IP:PORT address"))
                        })?;
                    }
                    "--offset" => {
                        let v = value(&flag, &mut rest)?;
                        config.offset_secs = v
                            .parse::<f64>()
                            .ok()
                            .filter(|o| o.is_finite())
                            .ok_or_else(|| {
                                Usage(format!("--offset {v:?}: a number of seconds, e.g. -3600"))
                            })?;
                    }
                    "--stratum" => {
                        let v = value(&flag, &mut rest)?;
                        config.stratum = v
                            .parse::<u8>()
                            .ok()
                            .filter(|s| (1..=15).contains(s))
                            .ok_or_else(|| Usage(format!("--stratum {v:?}: 1 to 15")))?;
                    }
                    "--kiss" => {
                        let v = value(&flag, &mut rest)?;
                        let code: [u8; 4] = v
                            .as_bytes()
                            .try_into()
                            .ok()
                            .filter(|c: &[u8; 4]| c.iter().all(u8::is_ascii_uppercase))
                            .ok_or_else(|| {
                                Usage(format!("--kiss {v:?}: four capital letters, e.g. DENY"))
                            })?;
                        config.behaviour = Behaviour::Kiss(code);
                        behaviours += 1;
                    }
                    "--unsynchronised" => {
                        config.behaviour = Behaviour::Unsynchronised;
                        behaviours += 1;
                    }
                    "--wrong-originate" => {
                        config.behaviour = Behaviour::WrongOriginate;
                        behaviours += 1;
                    }
                    "--silent" => {
                        config.behaviour = Behaviour::Silent;
                        behaviours += 1;
                    }
                    other => return Err(Usage(format!("unknown flag {other:?}"))),
                }
            }
            if behaviours > 1 {
                return Err(Usage(
                    "--kiss, --unsynchronised, --wrong-originate and --silent exclude each other"
                        .into(),
                ));
            }
            Ok(Command::Sntp(config))
        }
        other => Err(Usage(format!("unknown command {other:?}"))),
    }
}

fn sntp(config: crate::sntp::SntpConfig) -> Result<(), Error> {
    let server = crate::sntp::start(config)?;
    let signals = Signals::catch()?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "kubejoin-testcp: SNTP on {} ({:?}, offset {}s, stratum {})",
        server.addr(),
        config.behaviour,
        config.offset_secs,
        config.stratum
    );
    let _ = writeln!(out, "READY udp://{}", server.addr());
    let _ = out.flush();
    drop(out);
    signals.wait();
    let requests = server.requests();
    server.shutdown();
    println!("kubejoin-testcp: SNTP answered {requests} request(s)");
    Ok(())
}

/// SIGINT and SIGTERM, caught from the moment this is made: made before `READY` is printed,
/// so that a signal sent right after it stops the server cleanly instead of killing it.
struct Signals {
    runtime: tokio::runtime::Runtime,
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn catch() -> Result<Signals, Error> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let (term, int) = runtime.block_on(async {
            (
                signal(SignalKind::terminate()).ok(),
                signal(SignalKind::interrupt()).ok(),
            )
        });
        Ok(Signals { runtime, term, int })
    }

    /// Blocks until one of them arrives.
    fn wait(self) {
        let Signals {
            runtime,
            mut term,
            mut int,
        } = self;
        runtime.block_on(async {
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(i) => {
                        i.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                _ = term => {}
                _ = int => {}
            }
        });
    }
}

fn duration(flag: &str, v: &str) -> Result<std::time::Duration, Usage> {
    crate::parse_duration(v)
        .ok_or_else(|| Usage(format!("{flag} {v:?}: a duration like 500ms, 5s, 2m")))
}

fn write_file(dir: &Path, name: &str, content: &str) -> Result<(), Error> {
    let path = dir.join(name);
    std::fs::write(&path, content).map_err(|source| Error::Io {
        action: "writing",
        path,
        source,
    })
}

fn serve(config: Config, state_dir: Option<&Path>) -> Result<(), Error> {
    let rotation = config.ca_rotation;
    let faults = config.faults.clone();
    let handle = start(config)?;
    let signals = Signals::catch()?;
    if let Some(dir) = state_dir {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        write_file(dir, "ca.crt", &handle.ca_pem())?;
        write_file(dir, "admin.conf", &handle.admin_kubeconfig())?;
        write_file(dir, "endpoint", &format!("{}\n", handle.endpoint()))?;
        write_file(dir, "pin", &format!("{}\n", handle.signing_ca_pin()))?;
        handle.log_requests_to(&dir.join("requests.jsonl"))?;
        controlplane::write_state(&handle, dir)?;
    }
    let mut out = std::io::stdout().lock();
    let signing = handle.signing_ca_pin();
    let _ = writeln!(out, "kubejoin-testcp: serving {}", handle.url());
    for pin in handle.ca_pins() {
        let role = if pin == signing {
            "signing CA"
        } else if rotation {
            "old CA (rotation)"
        } else {
            "CA"
        };
        let _ = writeln!(out, "CA pin ({role}): {pin}");
    }
    let _ = writeln!(out, "join with:\n  {}", handle.join_command());
    controlplane::print(&handle, &mut out);
    if !faults.down_for.is_zero() {
        let how = match faults.down_mode {
            DownMode::Refuse => "refusing",
            DownMode::Reset => "resetting",
        };
        let _ = writeln!(
            out,
            "fault: down for {:?} after start ({how} connections)",
            faults.down_for
        );
    }
    for f in &faults.requests {
        let _ = writeln!(out, "fault: {f:?}");
    }
    if let Some(c) = faults.watch_cut {
        let _ = writeln!(
            out,
            "fault: watch streams cut every {} events{}",
            c.every,
            if c.abrupt { " (abruptly)" } else { "" }
        );
    }
    if !faults.certificate_delay.is_zero() {
        let _ = writeln!(
            out,
            "fault: certificates issued {:?} after approval",
            faults.certificate_delay
        );
    }
    if let Some(l) = faults.max_in_flight {
        let _ = writeln!(
            out,
            "fault: 429 (Retry-After: {}) beyond {} gets/lists or {} writes in flight",
            l.retry_after_secs, l.limit, l.mutating
        );
    }
    if !faults.startup_window.is_zero() {
        let _ = writeln!(
            out,
            "fault: startup window of {:?} after each start (401 to tokens, 403 to the rest but system:masters)",
            faults.startup_window
        );
    }
    for r in &faults.restarts {
        let when = match &r.trigger {
            crate::fault::RestartTrigger::After(a) => format!("{a:?} after coming up"),
            crate::fault::RestartTrigger::Request { path_prefix, nth } => {
                format!("on request {nth} under {path_prefix}")
            }
        };
        let _ = writeln!(out, "fault: restart {when}, down for {:?}", r.down);
    }
    let _ = writeln!(out, "READY {}", handle.url());
    let _ = out.flush();
    drop(out);

    signals.wait();
    handle.shutdown();
    Ok(())
}

fn decide(
    name: &str,
    approve: bool,
    reason: &str,
    message: &str,
    state_dir: &Path,
) -> Result<(), Error> {
    let path = state_dir.join("admin.conf");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    let creds = parse_admin_kubeconfig(&text)
        .map_err(|e| Error::Client(format!("reading {}: {e}", path.display())))?;
    let client = Client::new(&creds)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let verb = if approve { "approved" } else { "denied" };
    runtime.block_on(async {
        let url = format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}");
        let got = client.request("GET", &url, None).await?;
        let mut csr: serde_json::Value = check(got, "GET", &url)?;
        let (want, other) = if approve {
            ("Approved", "Denied")
        } else {
            ("Denied", "Approved")
        };
        let conditions = csr["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if conditions.iter().any(|c| c["type"] == other) {
            return Err(Error::Client(format!(
                "certificatesigningrequest {name:?} is already {}",
                other.to_lowercase()
            )));
        }
        if !conditions.iter().any(|c| c["type"] == want) {
            let mut updated = conditions;
            updated.push(serde_json::json!({
                "type": want,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastUpdateTime": crate::util::rfc3339(std::time::SystemTime::now()),
            }));
            csr["status"]["conditions"] = serde_json::Value::Array(updated);
            let body = serde_json::to_vec(&csr).map_err(|e| Error::Client(e.to_string()))?;
            let approval = format!("{url}/approval");
            let put = client.request("PUT", &approval, Some(body)).await?;
            check(put, "PUT", &approval)?;
        }
        println!("certificatesigningrequest.certificates.k8s.io/{name} {verb}");
        Ok(())
    })
}

fn check(r: crate::client::Response, method: &str, path: &str) -> Result<serde_json::Value, Error> {
    let value: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    if r.status / 100 != 2 {
        let message = value["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&r.body).into_owned(),
            str::to_string,
        );
        let reason = value["reason"].as_str().unwrap_or("Unknown");
        return Err(Error::Client(format!(
            "{method} {path}: Error from server ({reason}): {message}"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        std::iter::once("kubejoin-testcp")
            .chain(s.split_whitespace())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn sntp_flags() {
        use crate::sntp::Behaviour;
        let Ok(Command::Sntp(c)) = parse(&args(
            "sntp --listen 127.0.0.1:1123 --offset -3600.5 --stratum 3 --kiss DENY",
        )) else {
            panic!("did not parse");
        };
        assert_eq!(c.bind.to_string(), "127.0.0.1:1123");
        assert_eq!(c.offset_secs, -3600.5);
        assert_eq!(c.stratum, 3);
        assert_eq!(c.behaviour, Behaviour::Kiss(*b"DENY"));
        let Ok(Command::Sntp(c)) = parse(&args("sntp --silent --offset=12")) else {
            panic!("did not parse");
        };
        assert_eq!((c.behaviour, c.offset_secs), (Behaviour::Silent, 12.0));
        for bad in [
            "sntp --offset soon",
            "sntp --offset inf",
            "sntp --stratum 0",
            "sntp --stratum 16",
            "sntp --kiss deny",
            "sntp --kiss DENYX",
            "sntp --silent --unsynchronised",
            "sntp --listen nowhere",
            "sntp --bogus",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn serve_flags() {
        let Ok(Command::Serve { config, state_dir }) = parse(&args(
            "serve --listen 127.0.0.1:6443 --token aaaaaa.bbbbbbbbbbbbbbbb --token=cccccc.dddddddddddddddd --san cp.example --signer-delay 5s --approval manual --approval-delay=20s --ca-rotation --server-url https://cp.example:6443 --node n1:ready --node n2 --kube-proxy --no-preferences --state-dir /tmp/x",
        )) else {
            panic!("did not parse");
        };
        assert_eq!(config.bind.to_string(), "127.0.0.1:6443");
        assert_eq!(config.tokens.len(), 2);
        assert_eq!(config.tokens[1].id, "cccccc");
        assert_eq!(config.extra_sans, vec!["cp.example"]);
        assert_eq!(config.signer_delay.as_secs(), 5);
        assert_eq!(config.approval, Approval::Manual);
        assert_eq!(config.approval_delay.as_secs(), 20);
        assert!(config.ca_rotation && config.kube_proxy && !config.preferences_line);
        assert_eq!(
            config.server_url.as_deref(),
            Some("https://cp.example:6443")
        );
        assert_eq!(
            config.nodes,
            vec![
                NodeSpec {
                    name: "n1".into(),
                    ready: true
                },
                NodeSpec {
                    name: "n2".into(),
                    ready: false
                }
            ]
        );
        assert_eq!(state_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn fault_flags() {
        let Ok(Command::Serve { config, .. }) = parse(&args(
            "serve --down-for 2s --down-reset --fault status=503,count=3,retry-after=2,path=/api --fault stall=1s,count=1 --watch-cut-every 2 --watch-cut-abrupt --certificate-delay 1500ms --max-in-flight 8:3 --no-date-header",
        )) else {
            panic!("did not parse");
        };
        let f = &config.faults;
        assert_eq!(f.down_for, std::time::Duration::from_secs(2));
        assert_eq!(f.down_mode, DownMode::Reset);
        assert_eq!(f.requests.len(), 2);
        assert_eq!(f.requests[0].count, Some(3));
        assert_eq!(f.requests[0].path_prefix.as_deref(), Some("/api"));
        assert_eq!(
            f.watch_cut,
            Some(WatchCut {
                every: 2,
                abrupt: true
            })
        );
        assert_eq!(f.certificate_delay, std::time::Duration::from_millis(1500));
        assert!(f.no_date_header);
        assert_eq!(
            f.max_in_flight,
            Some(InFlightLimit {
                limit: 8,
                mutating: 4,
                retry_after_secs: 3
            })
        );
        let limit_of = |line: &str| match parse(&args(line)) {
            Ok(Command::Serve { config, .. }) => config.faults.max_in_flight,
            _ => panic!("{line}: did not parse"),
        };
        // The mutating pool: half the other (kube-apiserver's 400/200), or as given.
        assert_eq!(
            limit_of("serve --max-in-flight 5").map(|l| l.mutating),
            Some(3)
        );
        assert_eq!(
            limit_of("serve --max-in-flight 1").map(|l| l.mutating),
            Some(1)
        );
        assert_eq!(
            limit_of("serve --max-mutating-in-flight 3 --max-in-flight 5"),
            Some(InFlightLimit {
                limit: 5,
                mutating: 3,
                retry_after_secs: 1
            })
        );
        for bad in [
            "serve --fault explode",
            "serve --watch-cut-abrupt",
            "serve --watch-cut-every 0",
            "serve --max-in-flight 0",
            "serve --max-in-flight 4:x",
            "serve --max-mutating-in-flight 2",
            "serve --max-in-flight 4 --max-mutating-in-flight 0",
            "serve --down-for soon",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn decide_flags() {
        let Ok(Command::Decide {
            name,
            approve,
            reason,
            message,
            state_dir,
        }) = parse(&args(
            "deny csr-abcde --reason Nope --message no --state-dir d",
        ))
        else {
            panic!("did not parse");
        };
        assert_eq!(
            (name.as_str(), approve, reason.as_str(), message.as_str()),
            ("csr-abcde", false, "Nope", "no")
        );
        assert_eq!(state_dir, PathBuf::from("d"));
        assert!(parse(&args("approve x")).is_err());
        assert!(parse(&args("approve x --reason r --state-dir d")).is_err());
        assert!(parse(&args("serve --token bad")).is_err());
        assert!(parse(&args("serve --bogus")).is_err());
    }
}
