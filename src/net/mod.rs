//! Network bring-up: NIC carrier wait, ip= syntax, DHCPv4, rtnetlink configuration, resolv.conf.
