//! PATCH of a Node: the strategic merge patch kubeadm's `PatchNodeOnce` sends (a two-way diff
//! of the Node it read and the Node it wants) and JSON merge patches, over the fields this
//! server keeps (labels, annotations, taints), then the Node validation of taints and the
//! NodeRestriction admission plugin for a node changing its own Node.
//!
//! Sources (kubernetes/kubernetes, read): `NodeSpec.Taints` has no patch strategy, so both
//! patch types replace the whole list; `plugin/pkg/admission/noderestriction/admission.go`:
//! on update, a node may not change its taints ("node %q is not allowed to modify taints"),
//! then not change labels in `node-restriction.kubernetes.io` nor `kubernetes.io`/`k8s.io`
//! labels other than the kubelet's own ("is not allowed to modify labels: a, b");
//! `pkg/apis/core/validation`: a taint needs a key and one of the three effects, and a key and
//! effect pair may appear once.

use crate::objects::{FieldError, Taint};
use serde_json::Value;
use std::collections::BTreeMap;

/// The mutable part of a Node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct NodeView {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

/// Applies `patch` (either type: for these fields they agree) to `old`. `Err` is a 400 message.
pub(crate) fn apply(old: &NodeView, patch: &Value) -> Result<NodeView, String> {
    let Value::Object(top) = patch else {
        return Err("the patch is not a JSON object".into());
    };
    let mut new = old.clone();
    if let Some(meta) = top.get("metadata") {
        match meta {
            Value::Object(meta) => {
                merge_map(&mut new.labels, meta.get("labels"), "labels")?;
                merge_map(&mut new.annotations, meta.get("annotations"), "annotations")?;
            }
            Value::Null => {}
            _ => return Err("metadata is not an object".into()),
        }
    }
    if let Some(spec) = top.get("spec") {
        match spec {
            Value::Object(spec) => match spec.get("taints") {
                None => {}
                Some(Value::Null) => new.taints.clear(),
                Some(Value::Array(items)) => {
                    new.taints = items
                        .iter()
                        .map(taint)
                        .collect::<Result<Vec<_>, String>>()?;
                }
                Some(_) => return Err("spec.taints is not a list".into()),
            },
            Value::Null => {}
            _ => return Err("spec is not an object".into()),
        }
    }
    Ok(new)
}

fn merge_map(
    target: &mut BTreeMap<String, String>,
    patch: Option<&Value>,
    what: &str,
) -> Result<(), String> {
    match patch {
        None => Ok(()),
        Some(Value::Null) => {
            target.clear();
            Ok(())
        }
        Some(Value::Object(map)) => {
            // Strategic merge directives on a map: `$patch: replace|delete`.
            match map.get("$patch").and_then(Value::as_str) {
                Some("replace") => target.clear(),
                Some("delete") => {
                    target.clear();
                    return Ok(());
                }
                Some(other) => return Err(format!("unknown patch type {other:?} in {what}")),
                None => {}
            }
            for (k, v) in map {
                if k.starts_with('$') {
                    continue;
                }
                match v {
                    Value::Null => {
                        target.remove(k);
                    }
                    Value::String(s) => {
                        target.insert(k.clone(), s.clone());
                    }
                    _ => return Err(format!("{what}[{k:?}] is not a string")),
                }
            }
            Ok(())
        }
        Some(_) => Err(format!("{what} is not an object")),
    }
}

fn taint(v: &Value) -> Result<Taint, String> {
    let Value::Object(t) = v else {
        return Err("a taint is not an object".into());
    };
    let s = |k: &str| -> Result<String, String> {
        match t.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("taint field {k:?} is not a string")),
        }
    };
    Ok(Taint {
        key: s("key")?,
        value: s("value")?,
        effect: s("effect")?,
        time_added: s("timeAdded")?,
    })
}

/// Node validation of `spec.taints` (the checks a mark-control-plane patch can trip).
pub(crate) fn validate(view: &NodeView) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (i, t) in view.taints.iter().enumerate() {
        let path = format!("spec.taints[{i}]");
        if t.key.is_empty() {
            errs.push(FieldError::required(&format!("{path}.key"), ""));
        }
        if !matches!(
            t.effect.as_str(),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute"
        ) {
            errs.push(FieldError::not_supported(
                &format!("{path}.effect"),
                &crate::objects::quote(&t.effect),
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
        if seen.contains(&(t.key.as_str(), t.effect.as_str())) {
            errs.push(FieldError::duplicate(
                &path,
                &format!(
                    "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:<nil>}}",
                    crate::objects::quote(&t.key),
                    crate::objects::quote(&t.value),
                    crate::objects::quote(&t.effect)
                ),
            ));
        }
        seen.push((&t.key, &t.effect));
    }
    errs
}

/// NodeRestriction for node `node` updating its own Node: `Err(reason)` is a 403.
pub(crate) fn node_restriction(node: &str, old: &NodeView, new: &NodeView) -> Result<(), String> {
    if old.taints != new.taints {
        return Err(format!(
            "node {} is not allowed to modify taints",
            crate::objects::quote(node)
        ));
    }
    let mut keys: Vec<&String> = old.labels.keys().chain(new.labels.keys()).collect();
    keys.sort();
    keys.dedup();
    let forbidden: Vec<&str> = keys
        .into_iter()
        .filter(|k| old.labels.get(*k) != new.labels.get(*k))
        .filter(|k| forbidden_label(k))
        .map(String::as_str)
        .collect();
    if forbidden.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "is not allowed to modify labels: {}",
            forbidden.join(", ")
        ))
    }
}

/// `getForbiddenLabels`: node-restriction labels, and kubernetes.io / k8s.io labels that are
/// not the kubelet's (`kubeletapis.IsKubeletLabel`).
fn forbidden_label(label: &str) -> bool {
    let namespace = label.split_once('/').map_or("", |(ns, _)| ns);
    let in_ns = |ns: &str, base: &str| ns == base || ns.ends_with(&format!(".{base}"));
    if in_ns(namespace, "node-restriction.kubernetes.io") {
        return true;
    }
    let kubernetes = in_ns(namespace, "kubernetes.io") || in_ns(namespace, "k8s.io");
    kubernetes && !kubelet_label(label, namespace)
}

fn kubelet_label(label: &str, namespace: &str) -> bool {
    const LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "kubernetes.io/os",
        "kubernetes.io/arch",
    ];
    LABELS.contains(&label)
        || ["kubelet.kubernetes.io", "node.kubernetes.io"]
            .iter()
            .any(|ns| namespace == *ns || namespace.ends_with(&format!(".{ns}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view() -> NodeView {
        NodeView {
            labels: [("kubernetes.io/hostname".to_string(), "cp-2".to_string())].into(),
            annotations: BTreeMap::new(),
            taints: vec![Taint {
                key: "node.kubernetes.io/not-ready".into(),
                value: String::new(),
                effect: "NoSchedule".into(),
                time_added: String::new(),
            }],
        }
    }

    #[test]
    fn kubeadms_patch_adds_labels_and_replaces_taints() {
        let patch = json!({
            "metadata": {"labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node.kubernetes.io/exclude-from-external-load-balancers": ""}},
            "spec": {"taints": [
                {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"},
                {"effect": "NoSchedule", "key": "node.kubernetes.io/not-ready"}]}
        });
        let new = apply(&view(), &patch).unwrap();
        assert_eq!(new.labels.len(), 3);
        assert_eq!(new.taints.len(), 2);
        assert_eq!(new.taints[0].key, "node-role.kubernetes.io/control-plane");
        assert!(validate(&new).is_empty());
        assert_eq!(
            node_restriction("cp-2", &view(), &new).unwrap_err(),
            "node \"cp-2\" is not allowed to modify taints"
        );
        let labels_only = apply(
            &view(),
            &json!({"metadata": {"labels": patch["metadata"]["labels"]}}),
        )
        .unwrap();
        assert_eq!(
            node_restriction("cp-2", &view(), &labels_only).unwrap_err(),
            "is not allowed to modify labels: node-role.kubernetes.io/control-plane"
        );
        let own = apply(&view(), &json!({"metadata": {"labels": {"example.com/x": "1", "node.kubernetes.io/exclude-from-external-load-balancers": ""}}})).unwrap();
        assert!(node_restriction("cp-2", &view(), &own).is_ok());
    }

    #[test]
    fn deletes_directives_and_validation() {
        let new = apply(&view(), &json!({"metadata": {"labels": {"kubernetes.io/hostname": null}}, "spec": {"taints": null}})).unwrap();
        assert!(new.labels.is_empty() && new.taints.is_empty());
        let new = apply(
            &view(),
            &json!({"metadata": {"labels": {"$patch": "replace", "a": "b"}}}),
        )
        .unwrap();
        assert_eq!(new.labels.len(), 1);
        let bad = apply(&view(), &json!({"spec": {"taints": [{"key": "k", "effect": "Sometimes"}, {"key": "", "effect": "NoSchedule"}, {"key": "", "effect": "NoSchedule"}]}})).unwrap();
        let errs = validate(&bad);
        assert_eq!(errs.len(), 4);
        assert_eq!(errs[0].body, "Unsupported value: \"Sometimes\": supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\"");
        assert!(apply(&view(), &json!([1])).is_err());
        assert!(apply(&view(), &json!({"spec": {"taints": "x"}})).is_err());
    }
}
