//! The cloud platforms kubejoin reads metadata from (`kubejoin.platform=`); their providers are
//! in [`crate::source::metadata`].

use std::fmt;

/// A metadata platform. `Url` is the generic `kubejoin.config=https://…` source (NoCloud-style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    Aws,
    Gcp,
    Azure,
    OpenStack,
    DigitalOcean,
    Hetzner,
    Equinix,
    Url,
}

impl Platform {
    /// Every platform `kubejoin.platform=` can name (the generic URL is chosen by
    /// `kubejoin.config=` instead).
    pub const NAMED: [Platform; 7] = [
        Platform::Aws,
        Platform::Gcp,
        Platform::Azure,
        Platform::OpenStack,
        Platform::DigitalOcean,
        Platform::Hetzner,
        Platform::Equinix,
    ];

    /// The id used in `kubejoin.platform=`, in sources (`metadata:aws`) and recorded dirs.
    pub fn id(self) -> &'static str {
        match self {
            Platform::Aws => "aws",
            Platform::Gcp => "gcp",
            Platform::Azure => "azure",
            Platform::OpenStack => "openstack",
            Platform::DigitalOcean => "digitalocean",
            Platform::Hetzner => "hetzner",
            Platform::Equinix => "equinix",
            Platform::Url => "url",
        }
    }

    /// A platform by id (`url` included, for recorded metadata directories).
    pub fn parse(id: &str) -> Option<Platform> {
        Platform::NAMED
            .into_iter()
            .chain([Platform::Url])
            .find(|p| p.id() == id)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}
