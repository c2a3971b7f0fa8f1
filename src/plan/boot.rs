//! What PID 1 does with a join: its failure policy. (Read by `src/init/config.rs` from the
//! kernel command line, and by config files.)

/// What to do when the join fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Retry with backoff until `kubejoin.timeout`, then reboot.
    Retry,
    Reboot,
    Poweroff,
    /// Exec `/bin/sh` on the console when the image has one; otherwise say so and power off.
    Shell,
}

impl OnFailure {
    pub fn name(self) -> &'static str {
        match self {
            OnFailure::Retry => "retry",
            OnFailure::Reboot => "reboot",
            OnFailure::Poweroff => "poweroff",
            OnFailure::Shell => "shell",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "retry" => Some(OnFailure::Retry),
            "reboot" => Some(OnFailure::Reboot),
            "poweroff" => Some(OnFailure::Poweroff),
            "shell" => Some(OnFailure::Shell),
            _ => None,
        }
    }
}
