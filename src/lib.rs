//! # kubejoin
//!
//! One static binary that turns a freshly booted machine into a Kubernetes worker node: it
//! discovers the cluster with a bootstrap token and a pinned CA hash, performs the kubelet's TLS
//! bootstrap itself, writes the kubelet's files atomically and hands off to the kubelet.
//!
//! ## Exit codes
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | other failure (local I/O, internal) |
//! | 2 | usage error: bad flags, config or input |
//! | 3 | trust failure: CA pin mismatch, bad JWS, TLS verification failed, a certificate outside its validity window at the best time known (the clock error) |
//! | 4 | the cluster rejected us: token refused, RBAC 403, CSR denied, node exists |
//! | 5 | timeout: a deadline passed (including a server that never became reachable) |

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod controlplane;
pub mod deadline;
pub mod discovery;
pub mod error;
pub mod fs;
#[doc(hidden)]
pub mod fuzzing;
pub mod goyaml;
pub mod handoff;
pub mod host;
pub mod http;
pub mod init;
pub mod install;
pub mod join;
pub mod kube;
pub mod log;
pub mod net;
pub mod pki;
pub mod plan;
pub mod source;
pub mod suggest;
pub mod sys;
pub mod time;
pub mod trace;
pub mod versions;
pub mod yaml;
