#!/bin/sh
# dracut pre-pivot hook: the real root is mounted at $NEWROOT (/sysroot) and the network is up;
# join now, installing into the real root. Sourced by dracut's shell: `return`, never `exit`.
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

# Nothing to do without join data, or on a node that already joined.
if ! getarg kubejoin.endpoint >/dev/null && ! getarg kubejoin.config >/dev/null && ! getarg kubejoin.discovery-file >/dev/null; then
    return 0
fi
root="${NEWROOT:-/sysroot}"
if [ -e "$root/etc/kubernetes/kubelet.conf" ]; then
    info "kubejoin: $root/etc/kubernetes/kubelet.conf exists: already joined"
    return 0
fi

info "kubejoin: joining the cluster, installing into $root"
if /usr/bin/kubejoin join --root "$root" --handoff none; then
    info "kubejoin: joined; kubelet.service will start after the switch to $root"
    return 0
fi
rc=$?
warn "kubejoin: the join failed (exit code $rc); see the lines above and /run/kubejoin/result.json"
case "$(getarg kubejoin.on-failure)" in
    shell) emergency_shell -n kubejoin "kubejoin failed (exit code $rc)" ;;
    poweroff) poweroff -f ;;
    reboot) reboot -f ;;
    # retry (the default) is for kubejoin as /init; here the booted system's kubejoin.service
    # (if installed) tries again, so boot on.
    *) return 0 ;;
esac
