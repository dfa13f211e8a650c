#!/usr/bin/env bash
# `npm run test:lab`: the hardware lab. Boots Debian's own kernel in a small qemu VM (software
# emulation, no KVM), with the host's filesystem visible read-only inside over virtio-9p, and runs
# the lab test files (test/lab/) there against real kernel interfaces: gpio-sim chips labelled like
# a Raspberry Pi's, a uhid encoder, a uinput keypad, a vfb framebuffer. The exit code is the tests'.
#
# Everything comes from Debian packages. Only installing the tools (qemu, busybox-static, cpio,
# kmod, gcc, make, gpiod) needs root; the kernel, its headers and source are fetched with
# `apt-get download` and unpacked with `dpkg -x` into .lab-cache/ (git-ignored), no root needed.
#
# Usage: npm run test:lab [-- test/lab/some.lab.test.ts ...]
# Env:   LAB_EXEC='shell commands' runs those in the VM instead of the tests (for looking around)
#        LAB_CACHE (default .lab-cache), LAB_MEM_MB (default 1024), LAB_TIMEOUT_S (default 2400)
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=$PWD
CACHE=$(realpath -m "${LAB_CACHE:-.lab-cache}")
MEM=${LAB_MEM_MB:-1024}
TIMEOUT=${LAB_TIMEOUT_S:-2400}
mkdir -p "$CACHE"
case "$PROJECT$CACHE" in *[\ ,]*) echo "lab: the project and cache paths must not contain spaces or commas (they travel on the kernel command line)" >&2; exit 2;; esac

t0=$(date +%s.%N); stage_t=$t0
stage() { # one line per stage with its time
  local now; now=$(date +%s.%N)
  printf 'lab: %-10s %6.1f s  %s\n' "$1" "$(echo "$now - $stage_t" | bc)" "${2:-}"
  stage_t=$now
}

# --- packages: tools on the host, kernel packages unpacked into the cache -----------------------
need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want qemu-system-x86_64 qemu-system-x86
want cpio cpio
want depmod kmod
want make make
want gcc-12 gcc-12
want bc bc
want gpioset gpiod
file_is_static() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }
file_is_static || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "lab: missing Debian packages: ${need[*]}. Installing them needs root: sudo apt-get install ${need[*]}" >&2
    exit 2
  fi
  echo "lab: installing Debian packages (root): ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
[ -n "$KPKG" ] || { echo "lab: apt does not know linux-image-amd64 (run apt-get update as root once)" >&2; exit 2; }
KVER=${KPKG#linux-image-}                     # 6.1.0-57-amd64
KFLAVOUR_COMMON=linux-headers-${KVER%-amd64}-common
KSERIES=$(echo "$KVER" | cut -d. -f1,2)       # 6.1
ROOT=$CACHE/kernel-$KVER                      # dpkg -x target: boot/, lib/modules/, usr/src/
if [ ! -e "$ROOT/.unpacked" ]; then
  rm -rf "$ROOT" "$CACHE/debs"; mkdir -p "$CACHE/debs" "$ROOT"
  (cd "$CACHE/debs" && apt-get download -q "$KPKG" "linux-headers-$KVER" "$KFLAVOUR_COMMON" "linux-kbuild-$KSERIES" "linux-source-$KSERIES" >/dev/null 2>&1) \
    || { echo "lab: apt-get download of the $KVER kernel packages failed" >&2; exit 2; }
  for d in "$CACHE"/debs/linux-{image,headers,kbuild}-*.deb; do dpkg -x "$d" "$ROOT"; done
  # the headers' Makefile includes the -common tree by its installed path; point it into the cache
  sed -i "s#^include /usr/src/#include $ROOT/usr/src/#" "$ROOT/usr/src/linux-headers-$KVER/Makefile"
  # gpio-sim's three source files, out of the 130 MB source tarball
  mkdir -p "$ROOT/gpio-sim-src"
  dpkg-deb --fsys-tarfile "$CACHE"/debs/linux-source-"$KSERIES"_*.deb | tar -xO "./usr/src/linux-source-$KSERIES.tar.xz" \
    | tar -xJ -C "$ROOT/gpio-sim-src" --strip-components=1 \
      "linux-source-$KSERIES/drivers/gpio/gpio-sim.c" "linux-source-$KSERIES/drivers/gpio/gpiolib.h" "linux-source-$KSERIES/kernel/irq/irq_sim.c"
  rm -rf "$CACHE/debs"
  touch "$ROOT/.unpacked"
fi
stage packages "kernel $KVER"

# --- module: gpio-sim, built out of tree (Debian's kernel does not ship it) ---------------------
KO=$ROOT/lib/modules/$KVER/extra/gpio-sim.ko
if [ ! -e "$KO" ]; then
  B=$CACHE/build-gpio-sim; rm -rf "$B"; mkdir -p "$B"
  cp "$ROOT/gpio-sim-src/drivers/gpio/gpio-sim.c" "$B/gpio-sim-main.c"
  cp "$ROOT/gpio-sim-src/drivers/gpio/gpiolib.h" "$B/"
  # Debian's kernel does not export irq_to_desc, which irq_sim.c calls once; generic_handle_irq
  # does the same lookup-and-handle through an exported function
  sed 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' \
    "$ROOT/gpio-sim-src/kernel/irq/irq_sim.c" > "$B/irq_sim.c"
  grep -q 'generic_handle_irq(irqnum)' "$B/irq_sim.c" || { echo "lab: irq_sim.c changed upstream; the irq_to_desc fix no longer applies" >&2; exit 2; }
  printf 'obj-m += gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' > "$B/Kbuild"
  make -s -C "$ROOT/usr/src/linux-headers-$KVER" M="$B" modules >"$B/build.log" 2>&1 \
    || { cat "$B/build.log" >&2; echo "lab: building gpio-sim failed" >&2; exit 2; }
  mkdir -p "$(dirname "$KO")"; cp "$B/gpio-sim.ko" "$KO"
  depmod -b "$ROOT" "$KVER"
fi
stage module "gpio-sim.ko"

# --- initramfs: static busybox, /init, the modules needed to reach the host over 9p -------------
INITRD=$CACHE/initrd-$KVER.cpio.gz
if [ ! -e "$INITRD" ] || [ lab/guest-init.sh -nt "$INITRD" ]; then
  I=$CACHE/initrd; rm -rf "$I"; mkdir -p "$I"/{bin,proc,sys,dev,modules}
  cp /bin/busybox "$I/bin/busybox"
  cp lab/guest-init.sh "$I/init"; chmod +x "$I/init"
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
    f=$(find "$ROOT/lib/modules/$KVER/kernel" -name "$m.ko" | head -1)
    [ -n "$f" ] || { echo "lab: module $m not found in $KVER" >&2; exit 2; }
    cp "$f" "$I/modules/"
  done
  (cd "$I" && find . | cpio -o -H newc --quiet | gzip -1) > "$INITRD.tmp" && mv "$INITRD.tmp" "$INITRD"
fi
stage initramfs "$(du -h "$INITRD" | cut -f1)"

# --- boot and tests -----------------------------------------------------------------------------
OUT=$(mktemp -d "${TMPDIR:-/tmp}/qrkiosk-lab.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
[ -z "${LAB_EXEC:-}" ] || printf '%s\n' "$LAB_EXEC" > "$OUT/exec.sh"
args=$(IFS=,; echo "$PROJECT,$ROOT,$*")
args=${args%,}
# The guest sees the host's / (node, python, the gpiod tools), but not every folder of it: the
# guest's own tmpfs /tmp hides a checkout under the host's /tmp (CI's), and a node_modules symlinked
# elsewhere or a cache on another host mount need not be reachable either. So the checkout, the
# real node_modules and the kernel tree each get their own share, mounted at the same path inside
# the guest after its tmpfs mounts.
shares=()
add_share() { # path: skipped when an already shared folder contains it
  local p s; p=$(realpath -e "$1") || { echo "lab: $1 does not exist" >&2; exit 2; }
  case "$p" in *[\ ,]*) echo "lab: $p must not contain spaces or commas (it travels on the kernel command line)" >&2; exit 2;; esac
  for s in "${shares[@]}"; do case "$p/" in "$s"/*) return;; esac; done
  shares+=("$p")
}
add_share "$PROJECT"
[ -e "$PROJECT/node_modules" ] || { echo "lab: $PROJECT/node_modules is missing: run npm ci first" >&2; exit 2; }
add_share "$PROJECT/node_modules"
add_share "$ROOT"
virtfs=(); i=0
for s in "${shares[@]}"; do
  virtfs+=(-virtfs "local,path=$s,mount_tag=lab$i,security_model=none,readonly=on,multidevs=remap"); i=$((i + 1))
done
sharelist=$(IFS=,; echo "${shares[*]}")
qemu=(qemu-system-x86_64 -accel tcg -m "$MEM" -smp 1 -nographic -vga none -no-reboot -nodefaults -serial stdio
  -kernel "$ROOT/boot/vmlinuz-$KVER" -initrd "$INITRD"
  -append "console=ttyS0 quiet loglevel=3 panic=-1 lab.script=$PROJECT/lab/guest-run.sh lab.args=$args lab.shares=$sharelist"
  -virtfs "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap"
  "${virtfs[@]}"
  -virtfs "local,path=$OUT,mount_tag=out,security_model=none")
code=
while IFS= read -r line; do
  line=${line%$'\r'}
  case "$line" in
    *QRKIOSK-LAB-STAGE\ booted) stage boot "kernel up, host mounted";;
    *QRKIOSK-LAB-STAGE\ modules-loaded) stage modules "gpio-sim, uhid, uinput, dummy_hcd + usblp loaded";;
    *QRKIOSK-LAB-STAGE\ tests-start) stage node "node ready in the VM";;
    *QRKIOSK-LAB-EXIT=*) code=${line##*QRKIOSK-LAB-EXIT=};;
    *) printf '%s\n' "$line";;
  esac
done < <(exec timeout --kill-after=10 "$TIMEOUT" "${qemu[@]}" </dev/null 2>&1)
[ -n "$code" ] || { [ -s "$OUT/exit-code" ] && code=$(cat "$OUT/exit-code"); }
ran=0 skipped=0
if [ -s "$OUT/results.json" ]; then
  mkdir -p "$CACHE/results" && cp "$OUT/results.json" "$CACHE/results/last.json"
  read -r ran skipped summary < <(node -e 'const r=require(process.argv[1]);const skip=r.numPendingTests+r.numTodoTests;console.log(r.numPassedTests+r.numFailedTests, skip, `${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skip} skipped of ${r.numTotalTests} in ${r.testResults.length} files`)' "$OUT/results.json")
else summary="no results"; fi
stage tests "$summary; exit ${code:-none}"
printf 'lab: %-10s %6.1f s\n' total "$(echo "$(date +%s.%N) - $t0" | bc)"
[ -n "${LAB_EXEC:-}" ] && exit "${code:-3}"  # looking around: no tests expected
[ -n "$code" ] || { echo "lab: the VM stopped without reporting an exit code (timeout ${TIMEOUT}s or a crash)" >&2; exit 3; }
# a lab that ran nothing must not pass: that is how a checkout the VM could not see went unnoticed
[ "$ran" -gt 0 ] || { echo "lab: FAILED: no test ran in the VM (exit ${code}); see the VM's output above" >&2; exit 4; }
# the whole lab skips nothing: a skipped test is a driver behaviour nobody checked
[ $# -gt 0 ] || [ "$skipped" -eq 0 ] || { echo "lab: FAILED: $skipped tests were skipped; the lab runs every test" >&2; exit 5; }
exit "$code"
