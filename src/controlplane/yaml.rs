//! A small deterministic YAML emitter that writes a JSON value the way kubeadm's
//! `kubeadmutil.MarshalToYaml` does: the object is JSON-encoded, then sigs.k8s.io/yaml's
//! `JSONToYAML` re-emits it with go-yaml v2, which sorts mapping keys, puts a sequence that is a
//! mapping value at the mapping's own indentation (`- ` flush with the key), writes `{}`/`[]`
//! for empty collections and `null` for null, and quotes a string only when it would not read
//! back as the same string.
//!
//! Scalar rules follow go-yaml v2 (`encode.go` `stringv`, `resolve.go`, `emitterc.go`
//! `yaml_emitter_analyze_scalar`/`select_scalar_style`): a string that would resolve to another
//! type (null, bool incl. `yes`/`on`, int incl. `0x`/octal/`_`, float, base-60 float,
//! timestamp) is double-quoted; one that cannot be plain (leading or trailing space, an
//! indicator at the start, `: ` or ` #` inside) is single-quoted; one with control characters is
//! double-quoted with escapes. Not reproduced: go-yaml's folding of plain strings with spaces at
//! 80 columns and multi-line literal blocks (no manifest kubejoin renders has either; a string
//! containing a newline is emitted double-quoted, which reads back identically).
//!
//! kubejoin is moving off serde_yaml; this emitter serves the fixed shapes of phase 1.

use serde_json::Value;

/// Emits `v` (normally an object) as a YAML document.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => emit_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => emit_seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn is_collection(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn sorted(m: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// A mapping whose first line continues the current one when `first_inline` (after `- `).
fn emit_map_body(
    out: &mut String,
    m: &serde_json::Map<String, Value>,
    indent: usize,
    first_inline: bool,
) {
    for (i, (k, v)) in sorted(m).into_iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        out.push_str(&string_scalar(k));
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_map(out, inner, indent + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                emit_seq(out, items, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn emit_map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    emit_map_body(out, m, indent, false);
}

fn emit_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => emit_map_body(out, m, indent + 2, true),
            Value::Array(inner) if !inner.is_empty() => {
                // go-yaml puts a nested sequence's first item on the same line.
                let mut nested = String::new();
                emit_seq(&mut nested, inner, indent + 2);
                out.push_str(nested.trim_start());
            }
            other => {
                debug_assert!(!is_collection(other));
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_scalar(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

pub use crate::goyaml::string_scalar;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_yaml_layout() {
        let v = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"creationTimestamp": null, "labels": {"tier": "control-plane"}},
            "spec": {"containers": [{"name": "a", "command": ["x", "--y=1"], "b": {}}],
                      "empty": []},
            "status": {},
        });
        assert_eq!(
            to_yaml(&v),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: null\n  labels:\n    \
             tier: control-plane\nspec:\n  containers:\n  - b: {}\n    command:\n    - x\n    \
             - --y=1\n    name: a\n  empty: []\nstatus: {}\n"
        );
    }

    #[test]
    fn quoting_follows_go_yaml() {
        for (s, want) in [
            ("", "\"\""),
            ("0", "\"0\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("on", "\"on\""),
            ("null", "\"null\""),
            ("1.5", "\"1.5\""),
            ("1e3", "\"1e3\""),
            ("0x1F", "\"0x1F\""),
            ("1_000", "\"1_000\""),
            ("1:20", "\"1:20\""),
            ("2001-12-14", "\"2001-12-14\""),
            ("250m", "250m"),
            ("100Mi", "100Mi"),
            ("10.0.2.15", "10.0.2.15"),
            ("10.0.2.15:6443", "10.0.2.15:6443"),
            (
                "--controllers=*,bootstrapsigner,tokencleaner",
                "--controllers=*,bootstrapsigner,tokencleaner",
            ),
            ("*", "'*'"),
            ("- x", "'- x'"),
            ("a: b", "'a: b'"),
            ("a #b", "'a #b'"),
            ("a#b", "a#b"),
            (" x", "' x'"),
            ("it's", "it's"),
            ("'q", "'''q'"),
            ("a\nb", "\"a\\nb\""),
            ("https://x:1", "https://x:1"),
            ("::1", "::1"),
        ] {
            assert_eq!(string_scalar(s), want, "{s:?}");
        }
    }
}
