//! Handing the node over to the kubelet: exec, or exit for systemd.
