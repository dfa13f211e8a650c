#!/bin/bash
# Runs inside the lab VM, as root, in the host's filesystem (read-only 9p under a tmpfs overlay).
# Loads the kernel interfaces the lab tests drive (gpio-sim through configfs, uhid, uinput, a
# virtual USB printer; vfb is loaded by the framebuffer test itself, once per depth), then runs the
# lab test files with vitest.
# Results go to /run/lab-out, a folder shared writable with the host.
set -uo pipefail
PROJECT=$1 MODROOT=$2; shift 2
cd "$PROJECT" || exit 98
export QRKIOSK_LAB=1 QRKIOSK_LAB_MODROOT="$MODROOT" CI="${CI:-true}" QRKIOSK_RUN_SOURCES=1
mp() { modprobe -d "$MODROOT" "$@" || { echo "QRKIOSK-LAB: modprobe $* failed"; exit 97; }; }
mp configfs
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
mp gpio-sim
mp uhid
mp uinput
mp evdev        # /dev/input/eventN (udev would load it on a real system)
mp hid-generic  # binds plain HID devices (the uhid encoder) and gives them a /dev/hidrawN
# the USB printer: a virtual USB host and device controller pair (dummy_hcd), the kernel's printer
# driver on the host side (usblp, /dev/usb/lp0) and the printer gadget function on the device
# side, made through configfs by test/lab/helpers/usb-printer.ts
mp dummy_hcd
mp usblp
mp usb_f_printer
# what systemd mounts on a Pi: cgroup2 (the crash tests kill a "unit" through cgroup.kill as
# systemd does), tracefs (the kernel's record of every level a GPIO line was driven to), /dev/fd
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
mountpoint -q /sys/kernel/tracing || mount -t tracefs none /sys/kernel/tracing
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
echo "QRKIOSK-LAB-STAGE modules-loaded"
node --version
echo "QRKIOSK-LAB-STAGE tests-start"
# LAB_EXEC on the host: run that shell script here instead of the tests (looking around by hand)
if [ -f /run/lab-out/exec.sh ]; then bash /run/lab-out/exec.sh; exit $?; fi
# one file at a time: the VM has one emulated CPU, and the tests share one set of kernel devices
node node_modules/vitest/vitest.mjs run --config vitest.lab.config.ts --no-file-parallelism \
  --reporter=default --reporter=json --outputFile.json=/run/lab-out/results.json "$@"
