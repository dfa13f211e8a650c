#!/usr/bin/env python3
"""A virtual USB numeric keypad through /dev/uinput (linux/uinput.h), for the lab's evdev tests.

Node has no ioctl, so this small program owns the device: it creates a keyboard that can send the
keys given as arguments (Linux key codes), prints "ready /dev/input/eventN", then reads commands
on stdin: "tap CODE" (key down, SYN, key up, SYN; answers "ok") and "quit" (destroys the device).
"""
import fcntl
import glob
import os
import struct
import sys
import time

UI_SET_EVBIT = 0x40045564  # _IOW('U', 100, int)
UI_SET_KEYBIT = 0x40045565  # _IOW('U', 101, int)
UI_DEV_CREATE = 0x5501  # _IO('U', 1)
UI_DEV_DESTROY = 0x5502  # _IO('U', 2)
EV_SYN, EV_KEY, SYN_REPORT = 0, 1, 0
NAME = b"qrkiosk lab USB keypad"


def event(fd, type_, code, value):
    now = time.time()
    os.write(fd, struct.pack("llHHi", int(now), int((now % 1) * 1e6), type_, code, value))


def main():
    codes = [int(c) for c in sys.argv[1:]]
    fd = os.open("/dev/uinput", os.O_WRONLY | os.O_NONBLOCK)
    fcntl.ioctl(fd, UI_SET_EVBIT, EV_KEY)
    for c in codes:
        fcntl.ioctl(fd, UI_SET_KEYBIT, c)
    # struct uinput_user_dev: name[80], input_id {bustype, vendor, product, version}, ff_effects_max,
    # absmax/absmin/absfuzz/absflat[64]
    os.write(fd, struct.pack("80sHHHHi256i", NAME, 0x03, 0x04D9, 0x1203, 1, 0, *([0] * 256)))
    fcntl.ioctl(fd, UI_DEV_CREATE)
    node = None
    for _ in range(500):
        for ev in glob.glob("/sys/class/input/event*"):
            try:
                with open(ev + "/device/name", "rb") as f:
                    if f.read().strip() == NAME and os.path.exists("/dev/input/" + os.path.basename(ev)):
                        node = "/dev/input/" + os.path.basename(ev)
            except OSError:
                pass
        if node:
            break
        time.sleep(0.01)
    if not node:
        print("error no event node for the keypad", flush=True)
        sys.exit(1)
    print("ready " + node, flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "tap":
            code = int(cmd[1])
            event(fd, EV_KEY, code, 1)
            event(fd, EV_SYN, SYN_REPORT, 0)
            event(fd, EV_KEY, code, 0)
            event(fd, EV_SYN, SYN_REPORT, 0)
            print("ok", flush=True)
        elif cmd[0] == "quit":
            break
    fcntl.ioctl(fd, UI_DEV_DESTROY)
    os.close(fd)


main()
