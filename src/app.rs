//! The one place that knows the order of stages.

use crate::cli::{Command, UsageError, HELP};
use crate::discovery::{self, Discovered, Method};
use crate::error::{Class, Classify};
use crate::log;
use crate::plan::pin::CaPin;
use crate::plan::JoinPlan;
use std::path::PathBuf;

/// Any failure of a command, classified for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Discovery(#[from] discovery::Error),
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no usable certificate")]
    Pem {
        path: PathBuf,
        #[source]
        source: crate::plan::pin::PemError,
    },
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Usage(e) => e.class(),
            Error::Discovery(e) => e.class(),
            Error::Read { .. } => Class::Other,
            Error::Pem { .. } => Class::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Usage(e) => e.hint(),
            Error::Discovery(e) => e.hint(),
            _ => None,
        }
    }
}

/// Runs one command to completion.
pub async fn run(cmd: Command) -> Result<(), Error> {
    match cmd {
        Command::Help => {
            print!("{HELP}");
            Ok(())
        }
        Command::Version => {
            println!("kubejoin {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::CaHash(files) => ca_hash(&files),
        Command::Join(plan) => join(&plan).await,
    }
}

fn ca_hash(files: &[PathBuf]) -> Result<(), Error> {
    for path in files {
        let pem = std::fs::read(path).map_err(|source| Error::Read { path: path.clone(), source })?;
        let ders = crate::plan::pin::certs_from_pem(&pem)
            .map_err(|source| Error::Pem { path: path.clone(), source })?;
        for der in ders {
            let pin = CaPin::of_cert_der(&der).map_err(|e| Error::Pem {
                path: path.clone(),
                source: crate::plan::pin::PemError::Cert(e),
            })?;
            println!("{pin}");
        }
    }
    Ok(())
}

async fn join(plan: &JoinPlan) -> Result<(), Error> {
    let phase = log::phase("discovery");
    let discovered = discovery::discover(&plan.discovery).await?;
    phase.ok();
    if plan.dry_run {
        print_dry_run(plan, &discovered);
        return Ok(());
    }
    // BOOTSTRAP-HOOK
    Ok(())
}

/// What a dry run verified, for a person (stdout).
fn print_dry_run(_plan: &JoinPlan, d: &Discovered) {
    println!("dry run: discovery verified the cluster; nothing was written");
    match &d.method {
        Method::Token { endpoint } => println!("  discovery:   bootstrap token via {endpoint}"),
        Method::File { path } => println!("  discovery:   kubeconfig file {path}"),
        Method::Https { url } => println!("  discovery:   kubeconfig from {url}"),
    }
    println!("  API server:  {}", d.server);
    for der in &d.ca_der {
        let subject = x509_parser::parse_x509_certificate(der)
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default();
        let pin = CaPin::of_cert_der(der).map(|p| p.to_string()).unwrap_or_default();
        let mark = if d.matched_pin.as_ref().map(|p| p.to_string()) == Some(pin.clone()) {
            "  <- matches the pinned hash"
        } else {
            ""
        };
        println!("  cluster CA:  {subject}  {pin}{mark}");
    }
    match (&d.method, &d.matched_pin) {
        (Method::Token { .. }, Some(_)) => println!(
            "  trust:       JWS signature of cluster-info valid for the token; CA pinned; TLS re-fetch verified and identical"
        ),
        (Method::Token { .. }, None) => println!(
            "  trust:       JWS signature valid; CA NOT verified (--discovery-token-unsafe-skip-ca-verification)"
        ),
        _ => println!("  trust:       TLS verified against the kubeconfig's CA"),
    }
    println!("would: fetch kubelet-config, kubeadm-config and kube-proxy with the bootstrap token,");
    println!("       submit a CSR for system:node:<name>, wait for approval, install the kubelet's files");
}
