//! Dispatches commands; the join's phases live in [`crate::join`].

use crate::cli::Command;
use crate::pki::pin::CaPin;
use crate::plan::JoinPlan;
use crate::sys::System;
use std::path::PathBuf;

pub use crate::join::Error;

/// Runs one command to completion.
pub async fn run(cmd: Command, system: &System) -> Result<(), Error> {
    match cmd {
        Command::Help(text) => {
            print!("{text}");
            Ok(())
        }
        // `main` runs PID-1 mode itself, before any runtime exists; it never gets here.
        Command::Init => Err(Error::Internal(
            "`kubejoin init` is run by main, not by app::run".into(),
        )),
        Command::Version => {
            println!("kubejoin {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::CaHash(files) => ca_hash(&files),
        Command::FinishControlPlane { root } => {
            crate::controlplane::after::finish_from_handover(&crate::fs::root::Root::new(&root))
                .await
                .map(|_| ())
                .map_err(Error::from)
        }
        Command::Join(plan) => crate::join::run(*plan, system).await,
        Command::HostPrep(h) => {
            crate::join::host_prep(&h.host, &h.root, h.dry_run, &*system.host).map(|_| ())
        }
        Command::JoinFromSources(j) => {
            join_from_sources(&j, &load_options(&j.sources, system), system).await
        }
        Command::Plan(args) => {
            let loaded = load_sources(&args, system).await?;
            let json = crate::plan::json::plan_json(&loaded.settings);
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
            if json["valid"] == serde_json::Value::Bool(true) {
                Ok(())
            } else {
                // The JSON says what is missing or wrong; the exit code says it is not joinable.
                loaded
                    .settings
                    .to_plan(&args.root)
                    .map(|_| ())
                    .map_err(Error::Settings)
            }
        }
    }
}

/// The boot sources of `kubejoin join`/`plan` as the command line names them. On this machine
/// (`--root /`) an OpenStack config drive is mounted for real (read-only, and unmounted again);
/// replays (`--metadata-dir`) never mount anything.
pub fn load_options(
    args: &crate::cli::SourceArgs,
    system: &System,
) -> crate::source::load::LoadOptions {
    use crate::source::load::{LoadOptions, MetadataAccess};
    let mut opts = LoadOptions::live(crate::fs::root::Root::new(&args.root), system.drive.clone());
    opts.cmdline_file = args.cmdline_file.clone();
    opts.config_file = args.config.clone();
    if let Some(dir) = &args.metadata_dir {
        opts.metadata = MetadataAccess::Recorded(dir.clone());
    }
    opts
}

/// Gathers the boot sources (kernel command line, local config, metadata) into merged settings.
pub async fn load_sources(
    args: &crate::cli::SourceArgs,
    system: &System,
) -> Result<crate::source::load::Loaded, Error> {
    load_sources_with(&load_options(args, system)).await
}

async fn load_sources_with(
    opts: &crate::source::load::LoadOptions,
) -> Result<crate::source::load::Loaded, Error> {
    let loaded = crate::source::load::load(opts).await?;
    for w in &loaded.settings.warnings {
        crate::warn!("{w}");
    }
    for c in &loaded.settings.conflicts {
        crate::info!("sources: {c}");
    }
    Ok(loaded)
}

/// The join plan of the boot sources, validated like the command line's.
pub async fn plan_from_sources(
    args: &crate::cli::SourceArgs,
    system: &System,
) -> Result<JoinPlan, Error> {
    let loaded = load_sources(args, system).await?;
    loaded.settings.to_plan(&args.root).map_err(Error::Settings)
}

/// `kubejoin join` without discovery flags: the plan of the boot sources `opts` describes
/// (normally [`load_options`] of `j.sources`; tests point the metadata at a loopback server),
/// with the flags that were given as its top layer, then host preparation and the join.
pub async fn join_from_sources(
    j: &crate::cli::SourcesJoin,
    opts: &crate::source::load::LoadOptions,
    system: &System,
) -> Result<(), Error> {
    let mut opts = opts.clone();
    opts.flags = Some(j.flags.clone());
    let loaded = load_sources_with(&opts).await?;
    let mut plan = loaded
        .settings
        .to_plan(&j.sources.root)
        .map_err(Error::Settings)?;
    plan.dry_run |= j.dry_run;
    j.only.apply(&mut plan);
    crate::join::run(plan, system).await
}

fn ca_hash(files: &[PathBuf]) -> Result<(), Error> {
    for path in files {
        let pem = std::fs::read(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let ders = crate::pki::pem::certs_from_pem(&pem).map_err(|source| Error::Pem {
            path: path.clone(),
            source,
        })?;
        for der in ders {
            let pin = CaPin::of_cert_der(&der).map_err(|e| Error::Pem {
                path: path.clone(),
                source: crate::pki::pem::PemError::Cert(e),
            })?;
            println!("{pin}");
        }
    }
    Ok(())
}
