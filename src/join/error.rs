//! Any failure of a command or a join phase, classified for the exit code.

use crate::bootstrap;
use crate::cli::UsageError;
use crate::deadline::Expired;
use crate::discovery;
use crate::error::{Class, Classify};
use crate::handoff;
use crate::install;
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
        source: crate::pki::pem::PemError,
    },
    #[error(transparent)]
    Host(crate::host::HostError),
    #[error(transparent)]
    Sources(#[from] crate::source::load::LoadError),
    #[error(transparent)]
    Settings(crate::plan::build::SettingsError),
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::Error),
    #[error(transparent)]
    Install(#[from] install::Error),
    #[error(transparent)]
    Handoff(#[from] handoff::Error),
    /// Boxed: the control-plane join's errors are large and rare.
    #[error(transparent)]
    ControlPlane(Box<crate::controlplane::join::Error>),
    /// The clock had to be stepped and could not be.
    #[error(transparent)]
    Clock(crate::clock::step::StepError),
    /// A join phase ran out of time (its own bound or `--timeout`).
    #[error(transparent)]
    Deadline(#[from] Expired),
    /// A bug (a task that panicked); never expected.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Usage(e) => e.class(),
            Error::Discovery(e) => e.class(),
            Error::Read { .. } => Class::Other,
            Error::Pem { .. } => Class::Usage,
            Error::Host(e) => e.class(),
            Error::Sources(e) => e.class(),
            Error::Settings(e) => e.class(),
            Error::Bootstrap(e) => e.class(),
            Error::Install(e) => e.class(),
            Error::Handoff(e) => e.class(),
            Error::Clock(e) => e.class(),
            Error::ControlPlane(e) => e.class(),
            Error::Deadline(e) => e.class(),
            Error::Internal(_) => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Usage(e) => e.hint(),
            Error::Host(e) => e.hint(),
            Error::Sources(e) => e.hint(),
            Error::Settings(e) => e.hint(),
            Error::Discovery(e) => e.hint(),
            Error::Bootstrap(e) => e.hint(),
            Error::Install(e) => e.hint(),
            Error::Handoff(e) => e.hint(),
            Error::Clock(e) => e.hint(),
            Error::ControlPlane(e) => e.hint(),
            Error::Deadline(e) => e.hint(),
            _ => None,
        }
    }
}

impl From<crate::controlplane::join::Error> for Error {
    fn from(e: crate::controlplane::join::Error) -> Self {
        Error::ControlPlane(Box::new(e))
    }
}
