#!/bin/bash
# Build (or find in the cache) the artefacts of the VM test tier: a Debian kernel to boot
# with QEMU (TCG) and a busybox initramfs whose init runs the host's own root read-only
# over 9p, so the guest runs the host's /usr/sbin/pppd on a kernel that has PPP.
# Why a VM, and every measured fact used here: shared/REAL-PPPD-VM.md.
#
# Usage: scripts/vm/build.sh [--print]      (as root on Debian 12, x86_64)
#   LARAPPP_VM_DIR   cache folder (default /var/cache/larappp-vm)
# Prints the paths it produced as shell assignments (VM_KERNEL=..., VM_INITRD=...).
# Idempotent: installs missing Debian packages only, downloads the kernel once, and
# rebuilds the initramfs only when this script or the kernel changes.
set -euo pipefail

VM_DIR=${LARAPPP_VM_DIR:-/var/cache/larappp-vm}
HOST_PACKAGES=(qemu-system-x86 busybox-static ppp socat cpio)
# Load order measured in REAL-PPPD-VM.md; 8250 serial, devtmpfs and ptys are built in.
MODULES=(virtio_pci_modern_dev virtio_pci_legacy_dev virtio_ring virtio virtio_pci
         9pnet 9pnet_virtio netfs fscache 9p overlay slhc ppp_generic ppp_async
         ppp_deflate bsd_comp tun virtio_console sch_tbf)

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: it installs Debian packages (qemu-system-x86, busybox-static, ppp)"
[ "$(uname -m)" = x86_64 ] || die "the VM tier needs an x86_64 host (it boots Debian's amd64 kernel)"
command -v apt-get >/dev/null || die "the VM tier is built from Debian packages: apt-get is missing"

apt_updated=0
apt_update_once() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
}

# -- 1. host packages -----------------------------------------------------------------
missing=()
for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
        apt_update_once
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
fi

mkdir -p "$VM_DIR"
exec 9>"$VM_DIR/build.lock"
flock 9   # two builds at once (two pytest sessions) would race on the same files
rm -rf "$VM_DIR"/stage.*   # left by a build that was killed

# -- 2. the kernel package (never installed: unpacked into the cache) ------------------
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1
}
download_kernel() {  # $1: package name, into $VM_DIR/kernel-<version>/<package>.deb
    local dl="$VM_DIR/kernel-${1#linux-image-}/dl"
    rm -rf "$dl" && mkdir -p "$dl"
    # apt's sandbox user must be able to write where it downloads.
    if id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
    (cd "$dl" && apt-get download -qq "$1" >&2) || return 1
    mv "$dl"/*.deb "$VM_DIR/kernel-${1#linux-image-}/$1.deb"
    rm -rf "$dl"
}

kpkg=$(kernel_pkg)
if [ -z "$kpkg" ]; then
    apt_update_once
    kpkg=$(kernel_pkg)
fi
[ -n "$kpkg" ] || die "apt-cache does not know linux-image-amd64: check /etc/apt/sources.list(.d) for Debian's main archive"
if [ ! -s "$VM_DIR/kernel-${kpkg#linux-image-}/$kpkg.deb" ]; then
    # Older kernels in the cache are of no use any more.
    rm -rf "$VM_DIR"/kernel-*
    log "downloading $kpkg"
    if ! download_kernel "$kpkg"; then
        # Stale package lists name a kernel the archive no longer has: refresh, ask again.
        apt_update_once
        rm -rf "$VM_DIR"/kernel-*
        kpkg=$(kernel_pkg)
        log "downloading $kpkg"
        download_kernel "$kpkg" || die "cannot download $kpkg: check that Debian's archive is reachable"
    fi
fi
kver=${kpkg#linux-image-}
kdir="$VM_DIR/kernel-$kver"
deb="$kdir/$kpkg.deb"

file_hash=$(cat "$0" /bin/busybox | sha256sum | cut -c1-16)
vmlinux="$kdir/vmlinux"
initrd="$kdir/initramfs-$file_hash.cpio"
if [ -s "$vmlinux" ] && [ -s "$initrd" ]; then
    echo "VM_KERNEL=$vmlinux"
    echo "VM_INITRD=$initrd"
    echo "VM_KVER=$kver"
    exit 0
fi

# The unpacked package is about 400 MB: keep only the .deb and unpack it when building.
stage=$(mktemp -d "$VM_DIR/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
log "unpacking $kpkg"
dpkg-deb -x "$deb" "$stage/kernel"

# -- 3. uncompressed vmlinux: QEMU boots its PVH entry about 2.5 s faster under TCG ------
if [ ! -s "$vmlinux" ]; then
    log "extracting vmlinux from vmlinuz-$kver"
    python3 - "$stage/kernel/boot/vmlinuz-$kver" "$vmlinux.tmp" <<'PY'
import lzma, sys
image = open(sys.argv[1], "rb").read()
magic = b"\xfd7zXZ\x00"
start = image.find(magic)
while start >= 0:
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(image[start:])
    except lzma.LZMAError:
        elf = b""
    if elf[:4] == b"\x7fELF":
        open(sys.argv[2], "wb").write(elf)
        sys.exit(0)
    start = image.find(magic, start + 1)
sys.exit(f"no xz-compressed ELF payload in {sys.argv[1]}")
PY
    mv "$vmlinux.tmp" "$vmlinux"
fi

# -- 4. initramfs: busybox-static, the modules, and init --------------------------------
busybox=/bin/busybox
if [ ! -s "$initrd" ]; then
    log "building initramfs for $kver"
    mods="$stage/kernel/lib/modules/$kver"
    # The .deb has no modules.dep; busybox's depmod makes one.
    [ -f "$mods/modules.dep" ] || "$busybox" depmod -b "$stage/kernel" "$kver"
    ird="$stage/initramfs"
    mkdir -p "$ird"/{bin,dev,proc,sys,lower,rw,newroot,share} "$ird/lib/modules/$kver"
    cp "$busybox" "$ird/bin/busybox"
    for name in "${MODULES[@]}"; do
        rel=$(grep -E "(^|/)${name}\.ko(\.xz|\.zst)?:" "$mods/modules.dep" | head -n1 | cut -d: -f1)
        if [ -z "$rel" ]; then
            # built into this kernel: nothing to load
            grep -qE "(^|/)${name}\.ko$" "$mods/modules.builtin" 2>/dev/null && continue
            die "kernel $kver has no module $name (renamed?): update MODULES in $0"
        fi
        mkdir -p "$ird/lib/modules/$kver/$(dirname "$rel")"
        case "$rel" in
            *.ko.xz) "$busybox" xz -dc "$mods/$rel" >"$ird/lib/modules/$kver/${rel%.xz}" ;;
            *.ko.zst) die "module $rel is zstd-compressed, which busybox cannot unpack" ;;
            *) cp "$mods/$rel" "$ird/lib/modules/$kver/$rel" ;;
        esac
        echo "$name" >>"$ird/modules.load"
    done
    # Checking each module's signature costs about 0.5 s of boot under TCG, and this
    # initramfs is trusted: drop the appended signatures (the kernel then only logs a taint).
    python3 - "$ird/lib/modules/$kver" <<'PY'
import pathlib, struct, sys
MAGIC = b"~Module signature appended~\n"
for ko in pathlib.Path(sys.argv[1]).rglob("*.ko"):
    data = ko.read_bytes()
    if not data.endswith(MAGIC):
        continue
    # struct module_signature: algo, hash, id_type, signer_len, key_id_len, pad[3], be32 sig_len
    info = data[-len(MAGIC) - 12 : -len(MAGIC)]
    signer_len, key_id_len, sig_len = info[3], info[4], struct.unpack(">I", info[8:])[0]
    ko.write_bytes(data[: -len(MAGIC) - 12 - sig_len - signer_len - key_id_len])
PY
    "$busybox" depmod -b "$ird" "$kver"
    cat >"$ird/init" <<'INIT'
#!/bin/busybox sh
# larappp VM init: host / read-only over 9p + tmpfs overlay, run the guest command, power off.
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
say() { echo "larappp-vm: $*"; }
for m in $(cat /modules.load); do modprobe "$m" || say "modprobe $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower || say "cannot mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot
N=/newroot
mkdir -p $N/proc $N/sys $N/dev $N/run $N/tmp $N/share
mount -t proc proc $N/proc
mount -t sysfs sysfs $N/sys
mount -t devtmpfs devtmpfs $N/dev
mkdir -p $N/dev/pts $N/dev/shm
mount -t devpts -o ptmxmode=0666,newinstance devpts $N/dev/pts
ln -sf pts/ptmx $N/dev/ptmx 2>/dev/null
mount -t tmpfs -o mode=0755 tmpfs $N/run
mkdir -p $N/run/lock
mount -t tmpfs -o mode=1777 tmpfs $N/tmp
# The writable share: no cache, so what the guest writes is on the host at once.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share $N/share || say "cannot mount the share"
ip link set lo up 2>/dev/null
hostname larappp-vm
cmd=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in larappp.b64=*) cmd=$(echo "${arg#larappp.b64=}" | base64 -d) ;; esac
done
say "guest start $(cut -d' ' -f1 /proc/uptime)"
if [ -n "$cmd" ]; then
    chroot $N /bin/sh -c "$cmd"
elif [ -f $N/share/guest.sh ]; then
    chroot $N /bin/sh /share/guest.sh
else
    say "nothing to run: pass larappp.b64=<base64 command> or put guest.sh in the share"
    false
fi
status=$?
say "guest exit $status at $(cut -d' ' -f1 /proc/uptime)"
echo "$status" >$N/share/.exit-status
sync
umount $N/share 2>/dev/null
poweroff -f
INIT
    chmod 755 "$ird/init"
    (cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    for old in "$kdir"/initramfs-*.cpio; do
        [ "$old" = "$initrd" ] || rm -f "$old"
    done
fi
rm -rf "$stage"
trap - EXIT

echo "VM_KERNEL=$vmlinux"
echo "VM_INITRD=$initrd"
echo "VM_KVER=$kver"
