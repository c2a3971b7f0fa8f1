//! kubeadm's kubelet instance configuration (`NodeLocalCRISocket`): the node's CRI socket kept
//! in `/var/lib/kubelet/instance-config.yaml` and patched into `config.yaml`, instead of the
//! `--container-runtime-endpoint` flag in `kubeadm-flags.env`.
//!
//! What kubeadm writes (`cmd/kubeadm/app/phases/kubelet/config.go`, `WriteInstanceConfigToDisk`
//! and `WriteConfigToDisk` at v1.34): the instance file is `containerRuntimeEndpoint: <Go %q of
//! the CRI socket>\n`; `config.yaml` is the cluster's KubeletConfiguration with that file applied
//! as a strategic-merge patch and turned back into YAML by sigs.k8s.io/yaml (keys sorted, plain
//! scalars where YAML allows them). The cluster's KubeletConfiguration is itself that
//! marshaller's output, with `containerRuntimeEndpoint: ""` in its sorted place, so the patch is
//! the replacement of that one top-level line (or its insertion in key order when absent), and
//! the result is checked by parsing it back (the value written by [`crate::goyaml`]). When kubeadm
//! does this is in [`crate::versions`].

use super::flags::go_quote;
use crate::goyaml::string_scalar;
use crate::yaml;

/// The node path of the instance configuration.
pub const INSTANCE_CONFIG: &str = "/var/lib/kubelet/instance-config.yaml";

const KEY: &str = "containerRuntimeEndpoint";

/// The instance configuration file's content.
pub fn render(endpoint: &str) -> String {
    format!("{KEY}: {}\n", go_quote(endpoint))
}

/// The top-level key a line starts, if it starts one (`key:` at column 0).
fn top_level_key(line: &str) -> Option<&str> {
    if line.starts_with([' ', '\t', '-', '#']) || line.starts_with("---") {
        return None;
    }
    let (key, _) = line.split_once(':')?;
    (!key.is_empty()).then_some(key.trim_end())
}

/// Why the endpoint could not be placed into the KubeletConfiguration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(String);

/// `kubelet_config` with its top-level `containerRuntimeEndpoint` set to `endpoint`.
pub fn patch_kubelet_config(kubelet_config: &str, endpoint: &str) -> Result<String, PatchError> {
    let line = format!("{KEY}: {}", string_scalar(endpoint));
    let lines: Vec<&str> = kubelet_config.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 1);
    let mut placed = false;
    let mut skipping = false;
    for l in &lines {
        let key = top_level_key(l);
        if skipping {
            // The old value's continuation lines (a block or multi-line scalar).
            if key.is_none() && !l.starts_with('#') && !l.starts_with("---") {
                continue;
            }
            skipping = false;
        }
        match key {
            Some(KEY) => {
                out.push(line.clone());
                placed = true;
                skipping = true;
            }
            Some(k) if !placed && k > KEY => {
                out.push(line.clone());
                out.push((*l).to_string());
                placed = true;
            }
            _ => out.push((*l).to_string()),
        }
    }
    if !placed {
        out.push(line);
    }
    let mut text = out.join("\n");
    text.push('\n');
    check(kubelet_config, &text, endpoint)?;
    Ok(text)
}

/// The patched document parses, is still one mapping with the same other keys, and names
/// `endpoint`.
fn check(before: &str, after: &str, endpoint: &str) -> Result<(), PatchError> {
    let keys = |text: &str| -> Result<Vec<String>, PatchError> {
        let docs = yaml::documents(text).map_err(|e| PatchError(e.to_string()))?;
        let [doc] = docs.as_slice() else {
            return Err(PatchError("not exactly one YAML document".into()));
        };
        let map = doc
            .as_mapping()
            .ok_or_else(|| PatchError("not a mapping".into()))?;
        Ok(map
            .iter()
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .filter(|k| k != KEY)
            .collect())
    };
    let after_doc = yaml::documents(after).map_err(|e| PatchError(e.to_string()))?;
    let value = after_doc
        .first()
        .and_then(|d| d.get(KEY))
        .and_then(yaml::Node::as_str);
    if keys(before)? != keys(after)? || value != Some(endpoint) {
        return Err(PatchError(format!(
            "the document is not in the form kubeadm writes (one block mapping with one \
             top-level key per line), so {KEY} could not be set in it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTAINERD: &str = "unix:///var/run/containerd/containerd.sock";

    #[test]
    fn the_instance_file_is_kubeadms_one_line() {
        assert_eq!(
            render(CONTAINERD),
            "containerRuntimeEndpoint: \"unix:///var/run/containerd/containerd.sock\"\n"
        );
    }

    #[test]
    fn the_empty_endpoint_line_is_replaced_in_place() {
        let cm = "apiVersion: kubelet.config.k8s.io/v1beta1\nclusterDomain: cluster.local\n\
                  containerRuntimeEndpoint: \"\"\ncpuManagerReconcilePeriod: 0s\nkind: KubeletConfiguration\n";
        assert_eq!(
            patch_kubelet_config(cm, CONTAINERD).unwrap(),
            "apiVersion: kubelet.config.k8s.io/v1beta1\nclusterDomain: cluster.local\n\
             containerRuntimeEndpoint: unix:///var/run/containerd/containerd.sock\n\
             cpuManagerReconcilePeriod: 0s\nkind: KubeletConfiguration\n"
        );
    }

    #[test]
    fn an_absent_key_goes_in_key_order_and_a_set_one_is_overridden() {
        let cm = "apiVersion: v1\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\nkind: KubeletConfiguration\n";
        assert_eq!(
            patch_kubelet_config(cm, CONTAINERD).unwrap(),
            format!(
                "apiVersion: v1\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\n\
                 containerRuntimeEndpoint: {CONTAINERD}\nkind: KubeletConfiguration\n"
            )
        );
        let set = "containerRuntimeEndpoint: >-\n  unix:///run/crio/crio.sock\nkind: KubeletConfiguration\n";
        assert_eq!(
            patch_kubelet_config(set, CONTAINERD).unwrap(),
            format!("containerRuntimeEndpoint: {CONTAINERD}\nkind: KubeletConfiguration\n")
        );
        let last = "apiVersion: v1\n";
        assert_eq!(
            patch_kubelet_config(last, "npipe:x").unwrap(),
            "apiVersion: v1\ncontainerRuntimeEndpoint: npipe:x\n"
        );
    }

    #[test]
    fn values_yaml_would_misread_are_quoted_as_go_yaml_quotes_them() {
        for (v, want) in [
            ("true", "\"true\""),
            ("1", "\"1\""),
            ("", "\"\""),
            ("null", "\"null\""),
            ("a: b", "'a: b'"),
            ("#x", "'#x'"),
            ("x #y", "'x #y'"),
        ] {
            let out = patch_kubelet_config("kind: K\n", v).unwrap();
            assert!(out.contains(&format!("{KEY}: {want}\n")), "{v:?}: {out}");
        }
    }

    #[test]
    fn a_document_not_in_kubeadms_form_is_refused_not_mangled() {
        for doc in [
            "{kind: K, containerRuntimeEndpoint: x}\n",
            "- a\n- b\n",
            "a: 1\n---\nb: 2\n",
        ] {
            let e = patch_kubelet_config(doc, CONTAINERD).unwrap_err();
            assert!(!e.to_string().is_empty(), "{doc:?}");
        }
    }
}
