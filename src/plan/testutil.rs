//! Layers and values the plan's unit tests build their merges from.

use super::key::Key;
use super::merge::{Layer, Source};
use super::values::Values;

pub const TOKEN: &str = "abcdef.0123456789abcdef";
pub const PIN: &str = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";

/// The values of `pairs`, each set as a source would set it.
pub fn values(pairs: &[(Key, &str)]) -> Values {
    let mut v = Values::default();
    for (k, val) in pairs {
        v.set(*k, Some(val)).unwrap();
    }
    v
}

pub fn file() -> Source {
    Source::File("/etc/kubejoin.yaml".into())
}

/// A command-line layer with everything a token join needs.
pub fn token_layer() -> Layer {
    Layer::new(
        Source::Cmdline,
        values(&[
            (Key::Endpoint, "10.0.0.1:6443"),
            (Key::Token, TOKEN),
            (Key::CaCertHash, PIN),
        ]),
    )
}
