#!/bin/bash
# dracut module "kubejoin": join the node from the initramfs of a regular distribution, before
# dracut switches to the real root. kubejoin writes the kubelet's files into /sysroot; after the
# switch, kubelet.service starts with them. (For images whose initramfs is kubejoin alone, with
# kubejoin as /init, use kubejoin-image instead.)
#
# Enable with: dracut --add kubejoin …   (or add_dracutmodules+=" kubejoin " in dracut.conf.d)
# Join data: kubejoin.* keys on the kernel command line; network: dracut's own (rd.neednet=1 ip=dhcp).

# Only when asked for: a join module must never end up in every initramfs by accident.
check() {
    require_binaries kubejoin || return 1
    return 255
}

depends() {
    echo network
    return 0
}

installkernel() {
    # What every Kubernetes node needs; kubejoin's host preparation loads them in the initramfs so
    # that the net.bridge.* sysctls exist before the switch.
    hostonly='' instmods overlay br_netfilter
}

install() {
    inst_binary kubejoin /usr/bin/kubejoin
    inst_hook pre-pivot 90 "$moddir/kubejoin-join.sh"
    # Discovery over HTTPS (--discovery-file https://…) verifies against the system bundle.
    inst_multiple -o /etc/ssl/certs/ca-certificates.crt /etc/kubejoin.yaml
}
