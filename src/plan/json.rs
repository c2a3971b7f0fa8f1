//! `kubejoin plan`: the merged settings as JSON — every value with its source, the conflicts
//! between layers, whether they make a join — with secrets redacted.

use crate::discovery::Mode;
use crate::plan::key::Key;
use crate::plan::merge::{Settings, Sourced};
use crate::plan::values::Shown;
use std::path::Path;

fn entry<T: Shown>(
    out: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    v: &Option<Sourced<T>>,
) {
    if let Some(s) = v {
        out.insert(
            key.to_string(),
            serde_json::json!({ "value": s.value.shown(), "source": s.source.to_string() }),
        );
    }
}

fn list_entry(
    out: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    v: &Option<Sourced<Vec<String>>>,
) {
    if let Some(s) = v {
        out.insert(
            key.to_string(),
            serde_json::json!({ "value": s.value, "source": s.source.to_string() }),
        );
    }
}

fn pairs_json(v: &[Sourced<(String, String)>]) -> serde_json::Value {
    v.iter()
        .map(|s| serde_json::json!({ "name": s.value.0, "value": s.value.1, "source": s.source.to_string() }))
        .collect()
}

/// The merged settings for `kubejoin plan`: whether they make a valid join (and if not, why),
/// every value with its source, conflicts and warnings. Tokens appear as `abcdef.<redacted>`.
pub fn plan_json(settings: &Settings) -> serde_json::Value {
    let s = settings;
    let mut values = serde_json::Map::new();
    entry(&mut values, "endpoint", &s.endpoint);
    entry(&mut values, "token", &s.token);
    entry(&mut values, "tls-bootstrap-token", &s.tls_bootstrap_token);
    if let Some(p) = &s.ca_cert_hashes {
        let pins: Vec<String> = p.value.iter().map(ToString::to_string).collect();
        values.insert(
            "ca-cert-hash".into(),
            serde_json::json!({ "value": pins, "source": p.source.to_string() }),
        );
    }
    if let Some(u) = &s.unsafe_skip_ca_verification {
        values.insert(
            Key::UnsafeSkipCaVerification.name().into(),
            serde_json::json!({ "value": u.value, "source": u.source.to_string() }),
        );
    }
    entry(&mut values, "discovery-file", &s.discovery_file);
    entry(&mut values, "node-name", &s.node_name);
    entry(&mut values, "node-ip", &s.node_ip);
    entry(&mut values, "cri-socket", &s.cri_socket);
    list_entry(&mut values, "modules", &s.modules);
    list_entry(&mut values, "taints", &s.taints);
    list_entry(
        &mut values,
        "ignore-preflight-errors",
        &s.ignore_preflight_errors,
    );
    list_entry(&mut values, "skip-phases", &s.skip_phases);
    entry(&mut values, "platform", &s.platform);
    // A config URL can carry credentials (user:password@, a signed query): shown redacted.
    let config = s.config.as_ref().map(|c| Sourced {
        value: crate::http::redact_url(&c.value),
        source: c.source.clone(),
    });
    entry(&mut values, "config", &config);
    entry(&mut values, "config.sha256", &s.config_sha256);
    entry(&mut values, "handoff", &s.handoff);
    entry(&mut values, "kubelet-path", &s.kubelet_path);
    entry(&mut values, "on-failure", &s.on_failure);
    entry(&mut values, "timeout", &s.timeout);
    entry(&mut values, "discovery-timeout", &s.discovery_timeout);
    entry(
        &mut values,
        "tls-bootstrap-timeout",
        &s.tls_bootstrap_timeout,
    );
    list_entry(&mut values, "ntp", &s.ntp);
    if let Some(c) = &s.control_plane {
        values.insert(
            Key::ControlPlane.name().into(),
            serde_json::json!({ "value": c.value, "source": c.source.to_string() }),
        );
    }
    // The certificate key's type shows itself as `<redacted>`.
    entry(&mut values, Key::CertificateKey.name(), &s.certificate_key);
    entry(
        &mut values,
        Key::AdvertiseAddress.name(),
        &s.advertise_address,
    );
    entry(&mut values, "bind-port", &s.bind_port);
    if let Some(n) = &s.network {
        values.insert(
            "network".into(),
            serde_json::json!({ "value": n.value.to_json(), "source": n.source.to_string() }),
        );
    }

    let conflicts: Vec<serde_json::Value> = s
        .conflicts
        .iter()
        .map(|c| {
            serde_json::json!({
                "key": c.key,
                "kept": { "value": c.kept.value, "source": c.kept.source.to_string() },
                "dropped": { "value": c.dropped.value, "source": c.dropped.source.to_string() },
            })
        })
        .collect();
    let mut out = serde_json::json!({
        "values": values,
        "kubelet-args": pairs_json(&s.kubelet_args),
        "sysctls": pairs_json(&s.sysctls),
        "conflicts": conflicts,
        "warnings": s.warnings,
    });
    match s.to_plan(Path::new("/")) {
        Ok(plan) => {
            out["valid"] = true.into();
            out["discovery"] = match plan.discovery.mode {
                Mode::Token { .. } => "token",
                Mode::File { .. } => "file",
                Mode::Https { .. } => "https",
            }
            .into();
            // The clock phase's servers (docs/time.md): what a join would ask before discovery.
            out["time"] = serde_json::json!({
                "servers": plan.time.servers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "source": plan.time.source,
                "off": plan.time.off,
                "summary": plan.time.describe(),
            });
            out["kubelet-extra-args"] = plan
                .kubelet_extra_args
                .iter()
                .map(|(n, v)| serde_json::Value::from(format!("--{n}={v}")))
                .collect();
        }
        Err(e) => {
            out["valid"] = false.into();
            out["error"] = e.to_string().into();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::key::Key;
    use crate::plan::merge::{merge, Layer, Source};
    use crate::plan::values::Values;

    use crate::plan::testutil::{file, token_layer, values, TOKEN};

    #[test]
    fn the_time_sources_are_taken_whole_from_the_highest_layer_and_shown() {
        let mut cmd = token_layer();
        cmd.values
            .set(Key::Ntp, Some("10.0.0.1:10123,time.example.org"))
            .unwrap();
        let dhcp = Layer::new(Source::Dhcp, values(&[(Key::Ntp, "192.0.2.1")]));
        let plat = Layer::new(
            Source::Platform(crate::plan::platform::Platform::Aws),
            values(&[(Key::Ntp, "169.254.169.123")]),
        );
        let j = plan_json(&merge(&[cmd, dhcp.clone(), plat.clone()]));
        assert_eq!(j["values"]["ntp"]["source"], "cmdline");
        assert_eq!(
            j["time"]["servers"],
            serde_json::json!(["10.0.0.1:10123", "time.example.org:123"])
        );
        assert_eq!(j["time"]["source"], "cmdline");
        // The dropped lower layer is a recorded conflict, not a silent merge.
        assert!(j["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"] == "ntp" && c["dropped"]["source"] == "dhcp"));
        // Without a higher layer: DHCP option 42, then the platform's time source.
        let j = plan_json(&merge(&[token_layer(), dhcp, plat.clone()]));
        assert_eq!(j["time"]["summary"], "192.0.2.1:123 (from dhcp)");
        let j = plan_json(&merge(&[token_layer(), plat.clone()]));
        assert_eq!(
            j["time"]["summary"],
            "169.254.169.123:123 (from platform:aws)"
        );
        // `off` on the command line silences every lower layer.
        let mut off = token_layer();
        off.values.set(Key::Ntp, Some("off")).unwrap();
        let j = plan_json(&merge(&[off, plat]));
        assert_eq!(j["time"]["off"], true);
        assert_eq!(j["time"]["servers"], serde_json::json!([]));
        // Bad values and `off` mixed with servers are refused where they are read.
        let mut v = Values::default();
        assert!(v.set(Key::Ntp, Some("bad host")).is_err());
        assert!(v.set(Key::Ntp, Some("10.0.0.1,off")).is_err());
        let j = plan_json(&merge(&[token_layer()]));
        assert_eq!(j["time"]["summary"], "none");
    }

    #[test]
    fn plan_json_redacts_and_shows_sources() {
        let s = merge(&[
            token_layer(),
            Layer::new(
                file(),
                values(&[
                    (Key::Token, "zzzzzz.0123456789abcdef"),
                    (Key::Modules, "br_netfilter"),
                ]),
            ),
            Layer::new(Source::Default, Values::builtin_defaults()),
        ]);
        let j = plan_json(&s);
        let text = j.to_string();
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert_eq!(j["valid"], true);
        assert_eq!(j["discovery"], "token");
        assert_eq!(
            j["values"]["token"],
            serde_json::json!({"value": "abcdef.<redacted>", "source": "cmdline"})
        );
        assert_eq!(
            j["values"]["modules"],
            serde_json::json!({"value": ["br_netfilter"], "source": "file:/etc/kubejoin.yaml"})
        );
        assert_eq!(
            j["values"]["timeout"],
            serde_json::json!({"value": "10m0s", "source": "default"})
        );
        assert_eq!(j["conflicts"][0]["dropped"]["value"], "zzzzzz.<redacted>");

        let bad = plan_json(&merge(&[Layer::new(
            Source::Cmdline,
            values(&[(Key::Token, TOKEN)]),
        )]));
        assert_eq!(bad["valid"], false);
        assert!(
            bad["error"]
                .as_str()
                .unwrap()
                .starts_with("no API server endpoint"),
            "{bad}"
        );
        assert!(!bad.to_string().contains("0123456789abcdef"));
    }
}
