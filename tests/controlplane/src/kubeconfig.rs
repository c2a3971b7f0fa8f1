//! Kubeconfig files, byte for byte as client-go's `clientcmd.Write` serializes them (keys in
//! alphabetical order, `preferences: {}` up to client-go 0.33), and a reader for the admin
//! kubeconfig this crate writes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The `kubeconfig` value of `kube-public/cluster-info`: one unnamed cluster, nothing else.
pub fn cluster_info_kubeconfig(
    ca_bundle_pem: &str,
    server: &str,
    preferences_line: bool,
) -> String {
    let mut out = String::new();
    out.push_str("apiVersion: v1\nclusters:\n- cluster:\n");
    out.push_str(&format!(
        "    certificate-authority-data: {}\n",
        STANDARD.encode(ca_bundle_pem.as_bytes())
    ));
    out.push_str(&format!("    server: {}\n", yaml_scalar(server)));
    out.push_str("  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\n");
    if preferences_line {
        out.push_str("preferences: {}\n");
    }
    out.push_str("users: null\n");
    out
}

/// An admin kubeconfig with embedded client credentials, shaped like kubeadm's `admin.conf`.
pub fn admin_kubeconfig(
    ca_bundle_pem: &str,
    server: &str,
    cluster_name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let user = "kubernetes-admin";
    let cluster = yaml_scalar(cluster_name);
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {user}@{cluster_name}\ncurrent-context: {user}@{cluster_name}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = STANDARD.encode(ca_bundle_pem.as_bytes()),
        server = yaml_scalar(server),
        cert = STANDARD.encode(cert_pem.as_bytes()),
        key = STANDARD.encode(key_pem.as_bytes()),
    )
}

/// What the CLI needs from an admin kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCredentials {
    pub server: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Reads the four values out of a kubeconfig written by [`admin_kubeconfig`] (first cluster,
/// first user). It is a line scanner, not a YAML parser: enough for files this crate writes.
pub fn parse_admin_kubeconfig(text: &str) -> Result<AdminCredentials, String> {
    let field = |key: &str| -> Result<String, String> {
        text.lines()
            .filter_map(|l| l.trim_start().strip_prefix(key))
            .filter_map(|rest| rest.strip_prefix(':'))
            .map(|v| v.trim().trim_matches('"').to_string())
            .next()
            .ok_or_else(|| format!("no {key} in the kubeconfig"))
    };
    let decode = |key: &str| -> Result<String, String> {
        let raw = STANDARD
            .decode(field(key)?.as_bytes())
            .map_err(|e| format!("{key} is not base64: {e}"))?;
        String::from_utf8(raw).map_err(|_| format!("{key} is not PEM text"))
    };
    Ok(AdminCredentials {
        server: field("server")?,
        ca_pem: decode("certificate-authority-data")?,
        cert_pem: decode("client-certificate-data")?,
        key_pem: decode("client-key-data")?,
    })
}

/// A YAML scalar as go-yaml would write a string: plain when that reads back as the same
/// string, double-quoted otherwise.
fn yaml_scalar(s: &str) -> String {
    let reserved = matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    );
    let special_start = s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c));
    let risky = s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.ends_with(' ');
    let numeric = s.parse::<f64>().is_ok();
    if reserved || special_start || risky || numeric {
        serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_captured_cluster_info_kubeconfig_byte_for_byte() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../fixtures/apiserver/cluster-info.anonymous.json"
        ))
        .unwrap();
        let captured = fixture["data"]["kubeconfig"].as_str().unwrap();
        let ca = include_str!("../../fixtures/apiserver/ca.crt");
        assert_eq!(
            cluster_info_kubeconfig(ca, "https://127.0.0.1:6443", true),
            captured
        );
    }

    #[test]
    fn newer_client_go_drops_preferences() {
        let k = cluster_info_kubeconfig("x", "https://10.0.0.1:6443", false);
        assert!(k.ends_with("kind: Config\nusers: null\n"));
        assert!(!k.contains("preferences"));
    }

    #[test]
    fn admin_kubeconfig_round_trips() {
        let text = admin_kubeconfig(
            "CA\n",
            "https://127.0.0.1:1234",
            "kubernetes",
            "CERT\n",
            "KEY\n",
        );
        assert!(text.contains("current-context: kubernetes-admin@kubernetes\n"));
        let creds = parse_admin_kubeconfig(&text).unwrap();
        assert_eq!(creds.server, "https://127.0.0.1:1234");
        assert_eq!(creds.ca_pem, "CA\n");
        assert_eq!(creds.cert_pem, "CERT\n");
        assert_eq!(creds.key_pem, "KEY\n");
    }

    #[test]
    fn scalars_are_quoted_only_when_needed() {
        assert_eq!(yaml_scalar("https://[::1]:6443"), "https://[::1]:6443");
        assert_eq!(yaml_scalar(""), "\"\"");
        assert_eq!(yaml_scalar("true"), "\"true\"");
        assert_eq!(yaml_scalar("a: b"), "\"a: b\"");
    }
}
