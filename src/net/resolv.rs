//! `/etc/resolv.conf` from the DNS servers the bring-up found, written atomically under the root
//! through the crate's atomic writer (`crate::fs::atomic`).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::fs::atomic;
use crate::fs::root::Root;

use super::NetError;

/// The node path written.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The file's text: a comment naming its origin, an optional `search` line, then one
/// `nameserver` line per server. Resolvers (glibc, musl) use only the first three servers; all
/// are written so the file shows everything that was offered.
pub fn render(nameservers: &[Ipv4Addr], search: &[String], origin: &str) -> String {
    let mut out = format!("# written by kubejoin at boot from {origin}\n");
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for ns in nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    out
}

/// Writes `content` to `/etc/resolv.conf` under `root` (0644; `/etc` created 0755 if missing)
/// and returns the real path.
pub fn write(root: &Root, content: &str) -> Result<PathBuf, NetError> {
    let path = root.join(RESOLV_CONF).map_err(NetError::ResolvPath)?;
    atomic::write_file(
        root,
        std::path::Path::new(RESOLV_CONF),
        content.as_bytes(),
        0o644,
        0o755,
    )
    .map_err(NetError::ResolvConf)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_search_and_nameservers_in_order() {
        let text = render(
            &[Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(1, 1, 1, 1)],
            &["cluster.example".into(), "example.org".into()],
            "DHCP on eth0",
        );
        assert_eq!(
            text,
            "# written by kubejoin at boot from DHCP on eth0\n\
             search cluster.example example.org\n\
             nameserver 10.0.0.2\n\
             nameserver 1.1.1.1\n"
        );
        assert_eq!(
            render(
                &[Ipv4Addr::new(10, 0, 0, 2)],
                &[],
                "the kernel command line"
            ),
            "# written by kubejoin at boot from the kernel command line\nnameserver 10.0.0.2\n"
        );
    }

    #[test]
    fn writes_under_the_root_replacing_an_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let path = write(&root, "nameserver 10.0.0.2\n").unwrap();
        assert_eq!(path, dir.path().join("etc/resolv.conf"));
        let path = write(&root, "nameserver 10.0.0.3\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "nameserver 10.0.0.3\n"
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
}
