//! Node names: a lower-case RFC 1123 DNS subdomain, as the apiserver validates Node names.

use std::fmt;

/// A valid node name (`[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, ≤ 253).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeName(String);

/// Why a node name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node name {name:?}: {why} (a node name must be a lower-case RFC 1123 subdomain: [a-z0-9] and '-' in dot-separated labels, at most 253 characters)")]
pub struct NodeNameError {
    pub name: String,
    pub why: &'static str,
}

impl NodeName {
    /// Validates `s` as given (no case folding; use [`NodeName::from_hostname`] for hostnames).
    pub fn parse(s: &str) -> Result<Self, NodeNameError> {
        let err = |why| NodeNameError {
            name: s.to_string(),
            why,
        };
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.len() > 253 {
            return Err(err("it is longer than 253 characters"));
        }
        for label in s.split('.') {
            let b = label.as_bytes();
            if b.is_empty() {
                return Err(err("it has an empty label"));
            }
            if !b
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            {
                return Err(err("it has a character other than [a-z0-9.-]"));
            }
            if b[0] == b'-' || b[b.len() - 1] == b'-' {
                return Err(err("a label starts or ends with '-'"));
            }
        }
        Ok(Self(s.to_string()))
    }

    /// A node name from the OS hostname: trimmed and lower-cased as kubeadm's `GetHostname`.
    pub fn from_hostname(h: &str) -> Result<Self, NodeNameError> {
        Self::parse(&h.trim().to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_subdomains_and_lowercases_hostnames() {
        assert!(NodeName::parse("worker-1").is_ok());
        assert!(NodeName::parse("worker-1.example.com").is_ok());
        assert_eq!(
            NodeName::from_hostname(" Worker-1\n").unwrap().as_str(),
            "worker-1"
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "-a", "a-", "a..b", "A", "a_b", "a b", &"a".repeat(254)] {
            assert!(NodeName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
