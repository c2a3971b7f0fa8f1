//! Error classes and exit codes.
//!
//! Every module has its own error enum (tests compare variants, not strings). Each implements
//! [`Classify`] so the binary can map any failure to one documented exit code and print a hint a
//! user can act on. Display texts are lowercase, one line, and say what was being done to what;
//! causes are kept as `source()` so the whole chain is printed once, at the top.

use std::fmt;

/// What kind of failure ended the run; decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Bad arguments, config or input data: fix the invocation. Exit 2.
    Usage,
    /// The server could not be trusted: pin mismatch, bad JWS, TLS verification failure. Exit 3.
    Trust,
    /// The cluster answered and said no: token rejected, RBAC 403, CSR denied, node exists. Exit 4.
    Rejected,
    /// A deadline passed (including a server that never became reachable). Exit 5.
    Timeout,
    /// Anything else (local I/O, internal). Exit 1.
    Other,
}

impl Class {
    /// The process exit code for this class (documented in `--help` and README).
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Other => 1,
            Class::Usage => 2,
            Class::Trust => 3,
            Class::Rejected => 4,
            Class::Timeout => 5,
        }
    }
}

/// Implemented by every error enum in the crate.
pub trait Classify: std::error::Error {
    /// The class of this error (decides the exit code).
    fn class(&self) -> Class;
    /// An actionable next step for a person, when there is one.
    fn hint(&self) -> Option<String> {
        None
    }
}

/// Renders an error as `error: <line>` followed by its cause chain and an optional hint.
/// Used by `main` and by tests that assert on what a user sees.
pub struct Report<'a>(
    pub &'a (dyn std::error::Error + 'static),
    pub Option<String>,
);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.0)?;
        let mut cause = self.0.source();
        let mut last = self.0.to_string();
        while let Some(c) = cause {
            let text = match c.downcast_ref::<std::io::Error>() {
                Some(io) => io_text(io),
                None => c.to_string(),
            };
            // Some wrapped errors repeat their cause in their own message; print each text once.
            if !last.contains(&text) {
                write!(f, "\n  caused by: {text}")?;
            }
            last = text;
            cause = c.source();
        }
        if let Some(h) = &self.1 {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// An I/O error in words, without the raw `(os error N)` std appends: `no such file or
/// directory`, `permission denied`.
pub fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading /etc/kubejoin.yaml")]
    struct Reading(#[source] std::io::Error);

    #[test]
    fn io_causes_are_words_without_the_raw_os_error() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_text(&e), "no such file or directory");
        assert_eq!(
            io_text(&std::io::Error::from_raw_os_error(libc::EACCES)),
            "permission denied"
        );
        assert_eq!(io_text(&std::io::Error::other("Custom")), "custom");
        let report = Report(&Reading(e), None).to_string();
        assert_eq!(
            report,
            "error: reading /etc/kubejoin.yaml\n  caused by: no such file or directory"
        );
    }
}
