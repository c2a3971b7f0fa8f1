//! Time before trust: how kubejoin learns the time on a machine whose clock is wrong.
//!
//! Edge boards without a battery-backed clock, PXE-booted servers and fresh VMs often start with
//! a clock years in the past, and then every certificate of the cluster is "not yet valid". This
//! module holds the self-contained pieces (docs/time.md has the design and its reasons):
//!
//! - [`floor`]: the binary's build time, a clock earlier than which is certainly wrong, and the
//!   best time known without any network source;
//! - [`sntp`]: the SNTP codec (RFC 4330 / RFC 5905 client mode): request, reply checks, NTP
//!   eras, offset and round-trip delay;
//! - [`client`]: several servers queried over UDP, bounded in time and attempts, and one
//!   consistent answer (or a refusal that says why);
//! - [`step`]: whether to set the system clock, and setting it through
//!   [`crate::sys::clock::Clock`] with `old → new` in the log;
//! - [`phase`]: the clock phase of a join, before discovery: ask, vote, step or fall back to the
//!   best time known, and the record of it for `result.json` and the timeline;
//! - [`cert`]: the error that says the clock is the likely cause when a certificate is "not yet
//!   valid" or "expired", and a rustls server verifier that checks validity against the best
//!   time known.
//! - [`datehdr`]: the last source, when SNTP gave nothing: the `Date` header of an anonymous
//!   answer over TLS verified against the pinned CA, validity times aside, under its rules.
//!
//! Times here are [`crate::time::WallTime`]s (nanoseconds since the Unix epoch, signed: a reset
//! RTC can say 1970 or earlier) and differences are [`crate::time::Offset`]s.

pub mod build_floor;
pub mod cert;
pub mod client;
pub mod datehdr;
pub mod floor;
pub mod phase;
pub mod sntp;
pub mod step;
