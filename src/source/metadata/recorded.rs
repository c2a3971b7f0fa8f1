//! Recorded metadata: a directory of responses laid out by URL path, for replaying a boot
//! offline (`--metadata-dir DIR`) and for fixtures.
//!
//! Layout: `DIR/<platform>/<url path>`, e.g. `DIR/aws/latest/api/token`,
//! `DIR/aws/latest/user-data`, `DIR/gcp/computeMetadata/v1/instance/hostname`,
//! `DIR/azure/metadata/instance/compute/userData` (the query string is not part of the file
//! name), `DIR/url/<path of the config URL>`. The host is ignored, so the providers run
//! unchanged with their default base URLs. A file answers 200 with its contents (for any
//! method: the AWS token `PUT` reads `latest/api/token`); a missing file answers 404; a sibling
//! `<file>.status` holding a number answers that status instead (to replay a 401 or a 500).
//! The same byte limits apply as on the wire. Nothing is ever written here.

use super::http::{Request, Response, Transport, TransportError};
use futures_util::future::BoxFuture;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// A transport answering from a recorded directory (one platform's subdirectory).
#[derive(Debug, Clone)]
pub struct RecordedMetadata {
    dir: PathBuf,
}

impl RecordedMetadata {
    /// `dir` is the platform's directory (`DIR/aws`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file that answers `url`, or `None` when the path would leave the directory.
    pub fn file_for(&self, url: &str) -> Option<PathBuf> {
        let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
        let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut out = self.dir.clone();
        for c in Path::new(path).components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(p) => out.push(p),
                Component::ParentDir | Component::Prefix(_) => return None,
            }
        }
        Some(out)
    }

    fn answer(&self, req: &Request) -> Result<Response, TransportError> {
        let Some(file) = self.file_for(&req.url) else {
            return Ok(Response {
                status: 404,
                body: Vec::new(),
            });
        };
        let mut status_file = file.clone().into_os_string();
        status_file.push(".status");
        let status = match std::fs::read_to_string(&status_file) {
            Ok(s) => s.trim().parse::<u16>().map_err(|_| {
                TransportError::Body(format!(
                    "{} does not hold an HTTP status",
                    Path::new(&status_file).display()
                ))
            })?,
            Err(_) => 200,
        };
        let body = match std::fs::File::open(&file) {
            Ok(f) if file.is_file() => {
                let mut buf = Vec::new();
                f.take(req.limit as u64 + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| {
                        TransportError::Body(format!("reading {}: {e}", file.display()))
                    })?;
                if buf.len() > req.limit {
                    return Err(TransportError::TooLarge(req.limit));
                }
                buf
            }
            _ if status != 200 => Vec::new(),
            _ => {
                return Ok(Response {
                    status: 404,
                    body: Vec::new(),
                })
            }
        };
        Ok(Response { status, body })
    }
}

impl Transport for RecordedMetadata {
    fn send<'a>(&'a self, req: &'a Request) -> BoxFuture<'a, Result<Response, TransportError>> {
        Box::pin(async move { self.answer(req) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_url_path() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("latest/meta-data")).unwrap();
        std::fs::write(d.path().join("latest/user-data"), "ud").unwrap();
        std::fs::write(d.path().join("latest/meta-data/local-ipv4.status"), "500").unwrap();
        let t = RecordedMetadata::new(d.path());
        let get = |u: &str| t.answer(&Request::get(u, 10));
        assert_eq!(
            get("http://169.254.169.254/latest/user-data").unwrap(),
            Response {
                status: 200,
                body: b"ud".to_vec()
            }
        );
        assert_eq!(
            get("http://x/latest/user-data?api-version=1")
                .unwrap()
                .status,
            200
        );
        assert_eq!(get("http://x/latest/missing").unwrap().status, 404);
        assert_eq!(
            get("http://x/latest/meta-data/local-ipv4").unwrap().status,
            500
        );
        assert_eq!(
            get("http://x/latest").unwrap().status,
            404,
            "a directory is not a response"
        );
        assert_eq!(get("http://x/../etc/passwd").unwrap().status, 404);
        assert_eq!(
            t.answer(&Request::get("http://x/latest/user-data", 1))
                .unwrap_err(),
            TransportError::TooLarge(1)
        );
    }
}
