#!/bin/busybox sh
# PID 1 of the lab VM (busybox, inside the initramfs). It mounts the host's filesystem read-only
# over virtio-9p with a tmpfs overlay on top (tests may write anywhere; nothing reaches the host),
# then runs the guest script named on the kernel command line inside that root, prints its exit
# code on the console for the host to read, and powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
ip link set lo up  # the tests talk to the relay and the Mercado Pago emulator on loopback

arg() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
SCRIPT=$(arg lab.script)
ARGS=$(arg lab.args | tr ',' ' ')
SHARES=$(arg lab.shares | tr ',' ' ')

fail() { echo "QRKIOSK-LAB: $*"; echo "QRKIOSK-LAB-EXIT=99"; poweroff -f; }

# dependency order of modules.dep: the last-listed dependency first
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
  insmod /modules/$m.ko || fail "insmod $m failed"
done

mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /host || fail "9p mount of the host failed"
mount -t tmpfs -o size=512m tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay mount failed"
for d in proc sys dev; do mount --move /$d /newroot/$d; done
mount -t devpts devpts /newroot/dev/pts 2>/dev/null
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
# The checkout, node_modules and the kernel tree, each its own share (lab0, lab1...) mounted at its
# host path: a folder on another host mount (a tmpfs /tmp) is not visible through the / share.
# Mounted after the tmpfs /tmp and /run, which would otherwise hide a checkout under them.
i=0
for p in $SHARES; do
  mkdir -p /shares/$i /rw/s$i/upper /rw/s$i/work /newroot$p
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose lab$i /shares/$i || fail "9p mount of $p (lab$i) failed"
  mount -t overlay overlay -o lowerdir=/shares/$i,upperdir=/rw/s$i/upper,workdir=/rw/s$i/work /newroot$p || fail "overlay mount of $p failed"
  i=$((i + 1))
done
mkdir -p /newroot/run/lab-out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /newroot/run/lab-out || fail "9p mount of the results folder failed"

echo "QRKIOSK-LAB-STAGE booted"
chroot /newroot /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
  /bin/bash "$SCRIPT" $ARGS
code=$?
echo "$code" > /newroot/run/lab-out/exit-code
sync
echo "QRKIOSK-LAB-EXIT=$code"
poweroff -f
