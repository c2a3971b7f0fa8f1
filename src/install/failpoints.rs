//! The failpoints of a join ([`crate::fs::failpoint`]), derived from the install plan.

use super::{completion_steps, plan, Inputs, Step, DIRS, KEY_TMP};
use crate::fs::failpoint::name;
use std::path::Path;

/// Every failpoint a first join into an empty root passes, in order. Derived from the install
/// plan itself (so a new step gets its failpoints listed), and checked against a traced run by
/// `tests/crash.rs`.
pub fn list() -> Vec<String> {
    let mut out = Vec::new();
    let mut made: Vec<String> = Vec::new();
    let mut mkdirs = |node_file: &str, out: &mut Vec<String>| {
        // ensure_dirs_for: every DIRS entry above the file, each with its missing ancestors.
        for (dir, _) in DIRS {
            if !node_file.starts_with(&format!("{dir}/")) {
                continue;
            }
            let mut chain: Vec<&Path> = Path::new(dir)
                .ancestors()
                .filter(|a| a.parent().is_some())
                .collect();
            chain.reverse();
            for d in chain {
                let d = d.display().to_string();
                if !made.contains(&d) {
                    for at in ["before", "staged", "renamed", "dir-synced"] {
                        out.push(name(&format!("mkdir.{at}"), &d));
                    }
                    made.push(d);
                }
            }
        }
    };
    let write = |p: &str, out: &mut Vec<String>| {
        for at in ["before", "opened", "temp-synced", "renamed", "dir-synced"] {
            out.push(name(&format!("write.{at}"), p));
        }
    };

    mkdirs(KEY_TMP, &mut out);
    write(KEY_TMP, &mut out);
    out.push(name("key.persisted", KEY_TMP));
    out.push(name("csr.posted", "node-csr-*"));
    let inputs = Inputs {
        server: "https://127.0.0.1:6443",
        ca_pem: b"",
        cert_chain_pem: "",
        key_pem: "",
        kubelet_config: "",
        flags_env: "",
        instance_config: None,
        now: std::time::SystemTime::UNIX_EPOCH,
    };
    for step in plan(&inputs).iter().chain(completion_steps().iter()) {
        match step {
            Step::File { path, .. } => {
                mkdirs(path, &mut out);
                write(path, &mut out);
            }
            Step::Symlink { link, .. } => {
                mkdirs(link, &mut out);
                for at in ["before", "staged", "swapped", "dir-synced"] {
                    out.push(name(&format!("symlink.{at}"), link));
                }
            }
            Step::Remove { path, .. } => {
                for at in ["before", "unlinked", "dir-synced"] {
                    out.push(name(&format!("remove.{at}"), path));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_covers_every_step_once_in_order() {
        let l = list();
        let mut sorted = l.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), l.len(), "names are unique");
        let pos = |n: &str| l.iter().position(|x| x == n).unwrap();
        // The key is durable before the CSR exists; kubelet.conf comes after the PEM and the
        // symlink it references; the pending key goes last but for the completion files.
        assert!(
            pos("key.persisted:/var/lib/kubelet/pki/kubelet-client.key.tmp")
                < pos("csr.posted:node-csr-*")
        );
        assert!(
            pos("symlink.dir-synced:/var/lib/kubelet/pki/kubelet-client-current.pem")
                < pos("write.before:/etc/kubernetes/kubelet.conf")
        );
        assert!(pos("mkdir.before:/var") < pos("mkdir.before:/var/lib/kubelet"));
        assert!(l.contains(&"mkdir.staged:/etc/kubernetes/pki".to_string()));
        assert!(l.contains(&"write.opened:/run/cluster-api/bootstrap-success.complete".to_string()));
        assert_eq!(
            l.iter().filter(|n| n.starts_with("mkdir.before:")).count(),
            10,
            "/etc /etc/kubernetes /etc/kubernetes/pki /var /var/lib /var/lib/kubelet \
             /var/lib/kubelet/pki /run /run/kubejoin /run/cluster-api: {l:?}"
        );
    }
}
