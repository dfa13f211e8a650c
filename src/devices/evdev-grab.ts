// The keypad reader: a tiny python3 program the agent runs for each open evdev device (python3 is
// on every Raspberry Pi OS image). Node has no ioctl(), and EVIOCGRAB is the only way to keep a
// keypad's keys away from the console on tty1; the grab belongs to the open file, so the process
// that holds it must be the one that reads. It does three things:
//   - grabs the device (EVIOCGRAB = _IOW('E', 0x90, int) = 0x40044590, the same on arm, arm64 and
//     x86: test/evdev-reader.test.ts checks it against <linux/input.h>); the grab ends with it;
//   - reads struct input_event in the layout the kernel uses for IT (24 bytes for a 64-bit process,
//     16 for a 32-bit one, also with 64-bit time_t): its own C long size decides, so a 32-bit
//     userland on a 64-bit kernel, or a Node of another word size than the OS, cannot confuse it;
//   - forwards every record in one layout, <q q H H i little-endian (24 bytes), on stdout.
// stdin (fd 0) is the device, opened by the agent (so open errors keep their errno: EACCES,
// ENOENT). argv[1]: "auto", or 16/24 to force the device's record size; argv[2]: "grab" or
// "nograb". stderr: one line "ready <size> grabbed" or "ready <size> not-grabbed <ERRNO> <text>",
// later "error <ERRNO> <text>" if reading fails.

/** record size the reader forwards, whatever the device's */
export const FORWARDED_EVENT_SIZE = 24;

/** EVIOCGRAB as <linux/input.h> defines it: _IOW('E', 0x90, int) */
export const EVIOCGRAB = (1 << 30) | (4 << 16) | (0x45 << 8) | 0x90;

export const GRAB_READER_PY = String.raw`
import errno, fcntl, os, struct, sys

EVIOCGRAB = ${EVIOCGRAB}
IN = struct.Struct({'auto': '@llHHi', '16': '<IIHHi', '24': '<qqHHi'}[sys.argv[1]])
OUT = struct.Struct('<qqHHi')

def name(e):
    return errno.errorcode.get(e.errno, 'EIO')

# the agent opened the device non-blocking (so that a FIFO standing in for it cannot block the open)
fcntl.fcntl(0, fcntl.F_SETFL, fcntl.fcntl(0, fcntl.F_GETFL) & ~os.O_NONBLOCK)

status = 'ready %d not-grabbed - grab not asked' % IN.size
if sys.argv[2] == 'grab':
    try:
        fcntl.ioctl(0, EVIOCGRAB, 1)
        status = 'ready %d grabbed' % IN.size
    except OSError as e:
        status = 'ready %d not-grabbed %s %s' % (IN.size, name(e), e.strerror)
sys.stderr.write(status + '\n')
sys.stderr.flush()

rest = b''
while True:
    try:
        chunk = os.read(0, IN.size * 64)
    except OSError as e:
        sys.stderr.write('error %s %s\n' % (name(e), e.strerror))
        sys.exit(1)
    if not chunk:
        sys.exit(0)
    rest += chunk
    n = len(rest) // IN.size
    if n:
        sys.stdout.buffer.write(b''.join(OUT.pack(*IN.unpack_from(rest, i * IN.size)) for i in range(n)))
        sys.stdout.buffer.flush()
        rest = rest[n * IN.size:]
`;
