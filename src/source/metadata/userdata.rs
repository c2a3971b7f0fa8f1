//! User-data and config documents: undo gzip/base64 (found by magic), then read flat kubejoin
//! YAML, typed documents (kubeadm `JoinConfiguration`, kubejoin `KubejoinConfiguration`: handed
//! to [`crate::source::joinconfig`]), or the `kubejoin:` subtree of a `#cloud-config` (flat keys,
//! or typed documents).
//!
//! Decoding: gzip is recognised by its magic bytes (`1f 8b`); base64 by its alphabet (a YAML
//! document always has a `:` or a space somewhere, base64 never does). One base64 layer and one
//! gzip layer are undone, in that order (`base64(gzip(doc))` is what some cloud APIs require).
//! Every step is bounded by [`MAX_USER_DATA`], so a gzip bomb stops at 1 MiB.
//!
//! kubejoin YAML uses the kernel command line's keys without the `kubejoin.` prefix; lists for
//! repeatable keys, mappings for `kubelet-arg` and `sysctl`:
//! ```yaml
//! endpoint: 10.0.0.1:6443
//! token: abcdef.0123456789abcdef
//! ca-cert-hash: [sha256:…]
//! kubelet-arg: {max-pods: "50"}
//! sysctl: {net.ipv4.ip_forward: "1"}
//! ```
//! `config` and `config.sha256` are refused in documents: a fetched config must not redirect or
//! re-pin itself. Error messages never quote values (they may hold a token).

use super::MAX_USER_DATA;
use crate::plan::key::{did_you_mean, Key, KeyError};
use crate::plan::values::Values;
use crate::yaml;
use base64::Engine as _;
use std::io::Read;

/// Why a document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    #[error("gzip data is truncated or corrupt ({0})")]
    Gzip(String),
    #[error("the document is larger than {0} bytes once decoded")]
    TooLarge(usize),
    #[error("the document is not UTF-8 text")]
    NotUtf8,
    #[error("the document is empty")]
    Empty,
    #[error("the document is a shell script; kubejoin reads kubejoin YAML, a kubeadm JoinConfiguration or a #cloud-config with a `kubejoin:` key")]
    Script,
    #[error("the #cloud-config has no `kubejoin:` key")]
    NoKubejoinKey,
    #[error("`kubejoin:` must hold a mapping of kubejoin keys")]
    NotMapping,
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// Over a budget of [`crate::yaml`] (nesting, nodes, documents); names the limit.
    #[error("{0}")]
    Limit(String),
    #[error("{key}: {error}")]
    Key { key: String, error: KeyError },
    #[error("{key}: expects {expected}")]
    Shape { key: String, expected: &'static str },
}

/// What a document turned out to be. `Debug` shows no content (it may hold a token).
// One value per document read, moved once: boxing `Values` would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Document {
    /// kubejoin keys (top level, or under `kubejoin:`).
    Kubejoin {
        values: Values,
        warnings: Vec<String>,
    },
    /// Typed documents (`apiVersion` + `kind`: kubeadm `JoinConfiguration`, kubejoin
    /// `KubejoinConfiguration`, …) for [`crate::source::joinconfig::parse`]: the original text,
    /// or the `kubejoin:` subtree of a `#cloud-config` re-serialized.
    Config(String),
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Document::Kubejoin { values, warnings } => f
                .debug_struct("Kubejoin")
                .field("values", values)
                .field("warnings", warnings)
                .finish(),
            Document::Config(t) => write!(f, "Config({} bytes)", t.len()),
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn gunzip(data: &[u8]) -> Result<Vec<u8>, UserDataError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(MAX_USER_DATA as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| UserDataError::Gzip(e.to_string()))?;
    if out.len() > MAX_USER_DATA {
        return Err(UserDataError::TooLarge(MAX_USER_DATA));
    }
    Ok(out)
}

fn looks_base64(data: &[u8]) -> bool {
    let mut n = 0usize;
    for &b in data {
        if b.is_ascii_whitespace() {
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=') {
            return false;
        }
        n += 1;
    }
    n >= 8 && n.is_multiple_of(4)
}

/// Undoes base64 and gzip wrapping (see the module docs).
pub fn decode(raw: &[u8]) -> Result<Vec<u8>, UserDataError> {
    if raw.len() > MAX_USER_DATA {
        return Err(UserDataError::TooLarge(MAX_USER_DATA));
    }
    let mut data = raw.to_vec();
    if looks_base64(&data) {
        let compact: Vec<u8> = data
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(compact) {
            data = decoded;
        }
    }
    if data.starts_with(&GZIP_MAGIC) {
        data = gunzip(&data)?;
    }
    Ok(data)
}

/// A scalar's text (`None`: null), booleans in lower case; `None` for a collection.
fn scalar(v: &yaml::Node) -> Option<Option<String>> {
    let s = v.as_scalar()?;
    Some(match s.resolve() {
        yaml::Resolved::Null => None,
        yaml::Resolved::Bool(b) => Some(b.to_string()),
        _ => Some(s.text.clone()),
    })
}

/// A mapping of kubejoin keys as a layer's values (warnings for unknown keys).
pub fn values_from_mapping(
    map: &[(yaml::Node, yaml::Node)],
) -> Result<(Values, Vec<String>), UserDataError> {
    let mut values = Values::default();
    let mut warnings = Vec::new();
    let mut unknown = 0usize;
    for (k, v) in map {
        let Some(name) = k.as_str() else {
            // No value is quoted: only where the key is.
            return Err(UserDataError::Shape {
                key: format!("the key at line {}", k.location.line),
                expected: "a string key",
            });
        };
        let Some(key) = Key::parse(name) else {
            // Each one named up to a point; past it, counted (a hostile document with 50,000
            // keys must not cost 50,000 suggestions and log lines).
            unknown += 1;
            if unknown <= MAX_UNKNOWN_NAMED {
                let hint = did_you_mean(name)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                warnings.push(format!("ignoring unknown key {name}{hint}"));
            }
            continue;
        };
        if key.cmdline_only() {
            return Err(UserDataError::Key {
                key: name.into(),
                error: KeyError::CmdlineOnly,
            });
        }
        let mut set = |value: Option<&str>| -> Result<(), UserDataError> {
            match values.set(key, value) {
                Ok(None) => Ok(()),
                Ok(Some(note)) => {
                    warnings.push(format!("{name}: {note}"));
                    Ok(())
                }
                Err(error) => Err(UserDataError::Key {
                    key: name.into(),
                    error,
                }),
            }
        };
        match &v.value {
            yaml::Value::Sequence(items) => {
                if !key.repeatable() {
                    return Err(UserDataError::Shape {
                        key: name.into(),
                        expected: "a single value, not a list",
                    });
                }
                for item in items {
                    let s = scalar(item).ok_or(UserDataError::Shape {
                        key: name.into(),
                        expected: "a list of scalars",
                    })?;
                    set(s.as_deref())?;
                }
            }
            yaml::Value::Mapping(m) if matches!(key, Key::KubeletArg | Key::Sysctl) => {
                for (n, val) in m {
                    let (Some(Some(n)), Some(val)) = (scalar(n), scalar(val)) else {
                        return Err(UserDataError::Shape {
                            key: name.into(),
                            expected: "a mapping of name: value",
                        });
                    };
                    set(Some(&format!("{n}={}", val.unwrap_or_default())))?;
                }
            }
            _ => {
                let s = scalar(v).ok_or(UserDataError::Shape {
                    key: name.into(),
                    expected: "a single value",
                })?;
                set(s.as_deref())?;
            }
        }
    }
    if unknown > MAX_UNKNOWN_NAMED {
        warnings.push(format!(
            "ignoring {} more unknown keys",
            unknown - MAX_UNKNOWN_NAMED
        ));
    }
    Ok((values, warnings))
}

/// Unknown keys warned about one by one.
const MAX_UNKNOWN_NAMED: usize = 20;

fn yaml_err(e: yaml::Error) -> UserDataError {
    // A budget names itself; otherwise only the position: messages can quote a scalar, and that
    // scalar may be a token.
    let at = e
        .location()
        .map(|l| format!(" at line {} column {}", l.line, l.column))
        .unwrap_or_default();
    match e.kind() {
        yaml::ErrorKind::Limit { what, limit } => UserDataError::Limit(format!(
            "the YAML exceeds kubejoin's limit of {limit} {what}{at}"
        )),
        _ => UserDataError::Yaml(format!("syntax error{at}")),
    }
}

/// A typed document (kubeadm or kubejoin API object): joinconfig's business.
fn is_typed(v: &yaml::Node) -> bool {
    v.get("kind").is_some() || v.get("apiVersion").is_some()
}

/// The `kubejoin:` subtree of a `#cloud-config` as typed documents, when it holds them (one
/// mapping with apiVersion/kind, or a list of them), re-encoded as JSON documents (JSON is
/// YAML) for [`crate::source::joinconfig::parse`].
fn typed_subtree(sub: &yaml::Node) -> Result<Option<String>, UserDataError> {
    let docs: Vec<&yaml::Node> = match &sub.value {
        yaml::Value::Sequence(items) if !items.is_empty() && items.iter().all(is_typed) => {
            items.iter().collect()
        }
        _ if is_typed(sub) => vec![sub],
        _ => return Ok(None),
    };
    let mut text = String::new();
    for d in docs {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string_pretty(d).map_err(|_| UserDataError::NotMapping)?);
        text.push('\n');
    }
    Ok(Some(text))
}

/// Reads a decoded document.
pub fn parse(bytes: &[u8]) -> Result<Document, UserDataError> {
    let text = std::str::from_utf8(bytes).map_err(|_| UserDataError::NotUtf8)?;
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.is_empty() {
        return Err(UserDataError::Empty);
    }
    if trimmed.starts_with("#!") {
        return Err(UserDataError::Script);
    }
    let cloud_config = trimmed
        .lines()
        .next()
        .is_some_and(|l| l.trim_end() == "#cloud-config");
    let docs: Vec<yaml::Node> = yaml::documents(text)
        .map_err(yaml_err)?
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    if !cloud_config && docs.iter().any(is_typed) {
        return Ok(Document::Config(text.to_string()));
    }
    let [doc] = docs.as_slice() else {
        return Err(if docs.is_empty() {
            UserDataError::Empty
        } else {
            UserDataError::Shape {
                key: "document".into(),
                expected: "a single YAML document (or kubeadm documents)",
            }
        });
    };
    let map = doc.as_mapping().ok_or(UserDataError::NotMapping)?;
    let subtree = doc.get("kubejoin");
    let map = match (cloud_config, subtree) {
        (true, None) => return Err(UserDataError::NoKubejoinKey),
        (_, Some(sub)) => {
            if let Some(text) = typed_subtree(sub)? {
                return Ok(Document::Config(text));
            }
            sub.as_mapping().ok_or(UserDataError::NotMapping)?
        }
        (false, None) => map,
    };
    let (values, warnings) = values_from_mapping(map)?;
    Ok(Document::Kubejoin { values, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const DOC: &str = "endpoint: 10.0.0.1:6443\ntoken: abcdef.0123456789abcdef\n\
                       ca-cert-hash:\n  - sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a\n\
                       kubelet-arg: {max-pods: 50, node-labels: \"a=b\"}\nsysctl:\n  net.ipv4.ip_forward: 1\n";

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn kubejoin(bytes: &[u8]) -> Values {
        match parse(&decode(bytes).unwrap()).unwrap() {
            Document::Kubejoin { values, .. } => values,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_gzip_base64_and_base64_of_gzip() {
        let b64 = |b: &[u8]| {
            base64::engine::general_purpose::STANDARD
                .encode(b)
                .into_bytes()
        };
        for raw in [
            DOC.as_bytes().to_vec(),
            gz(DOC.as_bytes()),
            b64(DOC.as_bytes()),
            b64(&gz(DOC.as_bytes())),
        ] {
            let v = kubejoin(&raw);
            assert_eq!(v.endpoint.as_deref(), Some("10.0.0.1:6443"));
            assert_eq!(v.token.as_ref().map(|t| t.id()), Some("abcdef"));
            assert_eq!(v.ca_cert_hashes.as_ref().map(Vec::len), Some(1));
            assert_eq!(
                v.kubelet_args,
                vec![
                    ("max-pods".into(), "50".into()),
                    ("node-labels".into(), "a=b".into())
                ]
            );
            assert_eq!(v.sysctls, vec![("net.ipv4.ip_forward".into(), "1".into())]);
        }
    }

    #[test]
    fn cloud_config_kubejoin_subtree() {
        let doc = "#cloud-config\npackages: [htop]\nkubejoin:\n  endpoint: 10.0.0.1:6443\n  node-name: Cloud-1\n";
        let v = kubejoin(doc.as_bytes());
        assert_eq!(v.node_name.as_deref(), Some("cloud-1"));
        assert_eq!(
            parse(b"#cloud-config\npackages: [htop]\n").unwrap_err(),
            UserDataError::NoKubejoinKey
        );
        assert_eq!(
            parse(b"#cloud-config\nkubejoin: 3\n").unwrap_err(),
            UserDataError::NotMapping
        );
    }

    #[test]
    fn typed_documents_are_passed_on() {
        let doc = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.1:6443\n";
        assert!(matches!(parse(doc.as_bytes()).unwrap(), Document::Config(t) if t == doc));
        let cc = "#cloud-config\nkubejoin:\n  apiVersion: kubejoin.dev/v1alpha1\n  kind: KubejoinConfiguration\n  modules: [br_netfilter]\n";
        match parse(cc.as_bytes()).unwrap() {
            Document::Config(t) => assert!(
                t.starts_with(
                    "---\n{\n  \"apiVersion\": \"kubejoin.dev/v1alpha1\",\n  \"kind\": \"KubejoinConfiguration\",\n"
                ),
                "{t}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_gzip_and_bombs() {
        let full = gz(DOC.as_bytes());
        let e = decode(&full[..full.len() / 2]).unwrap_err();
        assert!(matches!(e, UserDataError::Gzip(_)), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("gzip data is truncated or corrupt"),
            "{e}"
        );
        let bomb = gz(&vec![b' '; MAX_USER_DATA + 10]);
        assert!(bomb.len() < 10_000);
        assert_eq!(
            decode(&bomb).unwrap_err(),
            UserDataError::TooLarge(MAX_USER_DATA)
        );
        assert_eq!(
            decode(&vec![b'a'; MAX_USER_DATA + 1]).unwrap_err(),
            UserDataError::TooLarge(MAX_USER_DATA)
        );
    }

    #[test]
    fn bad_documents_say_what_is_wrong_without_echoing_values() {
        assert_eq!(
            parse(b"#!/bin/sh\necho hi\n").unwrap_err(),
            UserDataError::Script
        );
        assert_eq!(parse(b"\xff\xfe").unwrap_err(), UserDataError::NotUtf8);
        assert_eq!(parse(b"  \n").unwrap_err(), UserDataError::Empty);
        let e = parse(b"token: abcdef.0123456789ABCDEF\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("token: the bootstrap token is not of the form"),
            "{e}"
        );
        assert!(!e.contains("0123456789"), "{e}");
        let e = parse(b"token: [abcdef.0123456789abcdef]\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "token: expects a single value, not a list");
        let e = parse(b"config: https://elsewhere/\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("only accepted on the kernel command line"),
            "{e}"
        );
        let e = parse(b"endpoint: [unclosed\ntoken: abcdef.0123456789abcdef")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("not valid YAML: syntax error at line"), "{e}");
        assert!(!e.contains("abcdef"), "{e}");
    }

    #[test]
    fn unknown_keys_warn() {
        match parse(b"endpont: 10.0.0.1:6443\n").unwrap() {
            Document::Kubejoin { warnings, .. } => {
                assert_eq!(
                    warnings,
                    ["ignoring unknown key endpont (did you mean endpoint?)"]
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
