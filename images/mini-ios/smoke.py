#!/usr/bin/env python3
"""Smoke test of the mini-ios image: boot it under QEMU (TCG) and walk the console.

    python3 images/mini-ios/smoke.py [--image-dir DIR] [--no-nodisk]

Needs pexpect (python3 -m venv /tmp/venv && /tmp/venv/bin/pip install pexpect).
Boot 1 on a blank data disk: login (a wrong password first), enable, paging,
config mode, hostname, interface address, static route, write memory, logout and
login again. Then the VM is killed ("power off") and booted again from the same
data disk: the hostname, addresses and route must be back. Boot 3 has no data
disk: "write memory" must fail as IOS does. Exits non-zero on the first failure.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

try:
    import pexpect
except ImportError:  # pragma: no cover
    sys.exit("smoke.py needs pexpect: python3 -m venv /tmp/venv && "
             "/tmp/venv/bin/pip install pexpect, then run it with /tmp/venv/bin/python")

PROMPT = r"[\w.-]+(\([\w-]+\))?[>#]\s*$"
MORE = r" --More-- "
TIMINGS = {}
RUNNING = []  # every VM started, killed at the end whatever happens


class Failure(Exception):
    pass


def check(cond, what, text=""):
    if not cond:
        raise Failure(f"{what}\n--- output ---\n{text}")
    print(f"  ok  {what}")


class VM:
    def __init__(self, image_dir, data_disk, nics=2, qemu="qemu-system-x86_64", log=None):
        args = ["-accel", "tcg", "-m", "256", "-nographic",
                "-kernel", os.path.join(image_dir, "vmlinuz"),
                "-initrd", os.path.join(image_dir, "initrd.img"),
                "-append", "console=ttyS0 quiet"]
        if data_disk:
            args += ["-drive", f"file={data_disk},if=virtio"]
        for n in range(nics):
            args += ["-netdev", f"user,id=n{n}", "-device", f"e1000,netdev=n{n}"]
        self.t0 = time.monotonic()
        self.p = pexpect.spawn(qemu, args, encoding="utf-8", codec_errors="replace",
                               timeout=60, dimensions=(50, 250))
        RUNNING.append(self)
        if log:
            self.p.logfile_read = log

    def wait_banner(self):
        self.p.expect("Press RETURN to get started!", timeout=120)
        return time.monotonic() - self.t0

    def login(self, user="admin", password="admin"):
        self.p.send("\r")
        self.p.expect("Username: ")
        self.p.send(user + "\r")
        self.p.expect("Password: ")
        self.p.send(password + "\r")
        i = self.p.expect([PROMPT, r"% Login invalid"])
        return i == 0

    def cmd(self, line, more=" ", timeout=30):
        """Send a command; answer --More-- with `more`. Returns (output, pages)."""
        self.p.send(line + "\r")
        out, pages = "", 0
        while True:
            i = self.p.expect([PROMPT, MORE], timeout=timeout)
            out += self.p.before
            if i == 0:
                break
            pages += 1
            self.p.send(more)
        # drop the echoed command line
        out = out.replace("\r", "")
        out = out.split("\n", 1)[1] if "\n" in out else ""
        return out, pages

    @property
    def prompt(self):
        return self.p.after.strip()

    def power_off(self):
        if self.p.isalive():
            self.p.terminate(force=True)
        self.p.close()


def boot1(args, disk):
    print("boot 1: blank data disk")
    vm = VM(args.image_dir, disk, log=args.log)
    TIMINGS["boot1"] = vm.wait_banner()
    print(f"  boot to 'Press RETURN': {TIMINGS['boot1']:.1f} s")
    check(not vm.login("admin", "wrong"), "wrong password rejected with '% Login invalid'")
    vm.p.expect("Username: ")
    vm.p.send("admin\r")
    vm.p.expect("Password: ")
    vm.p.send("admin\r")
    vm.p.expect(PROMPT)
    check(vm.prompt == "Router>", "admin/admin gives user mode Router>", vm.prompt)

    out, _ = vm.cmd("frobnicate")
    check("% Invalid input detected at '^' marker." in out and "^" in out.split("\n")[0],
          "unknown command: IOS caret error", out)
    check(vm.prompt == "Router>", "still in user mode after the error", vm.prompt)

    t = time.monotonic()
    vm.cmd("enable")
    TIMINGS["roundtrip"] = time.monotonic() - t
    check(vm.prompt == "Router#", "enable gives Router#", vm.prompt)

    vm.p.sendcontrol("c")
    vm.p.expect(PROMPT)
    check(vm.prompt == "Router#", "Ctrl-C re-prompts", vm.prompt)

    out, pages = vm.cmd("show running-config", more=" ")
    check(pages >= 1, f"paging on by default: --More-- seen {pages} time(s)", out)
    check(out.rstrip().endswith("end"), "space pages through to 'end'", out)
    out, pages = vm.cmd("show running-config", more="q")
    check(pages == 1 and "\nend" not in out, "'q' at --More-- stops the output", out)

    vm.cmd("terminal length 0")
    out, pages = vm.cmd("show running-config")
    lines = out.strip().split("\n")
    check(pages == 0 and len(lines) > 24, f"terminal length 0: no paging, {len(lines)} lines", out)
    check(lines[0] == "Building configuration..." and re.search(r"Current configuration : \d+ bytes", out)
          and "hostname Router" in out and "interface GigabitEthernet0/0" in out
          and "interface GigabitEthernet0/1" in out and lines[-1] == "end",
          "running-config looks like IOS", out)

    out, _ = vm.cmd("show version")
    check("Cisco IOS Software, IOSv Software (VIOS-ADVENTERPRISEK9-M), Version 15.9(3)M" in out
          and "mini-ios" in out and "uptime is" in out, "show version", out)

    steps = [
        ("configure terminal", "Router(config)#"),
        ("hostname R1", "R1(config)#"),
        ("interface gi0/1", "R1(config-if)#"),
        ("ip address 10.11.12.1 255.255.255.0", "R1(config-if)#"),
        ("no shutdown", "R1(config-if)#"),
        ("description smoke link", "R1(config-if)#"),
        ("exit", "R1(config)#"),
        ("interface GigabitEthernet 0/0", "R1(config-if)#"),
        ("ip address 10.0.2.15 255.255.255.0", "R1(config-if)#"),
        ("no shutdown", "R1(config-if)#"),
        ("exit", "R1(config)#"),
        ("ip route 192.168.50.0 255.255.255.0 10.11.12.2", "R1(config)#"),
        ("no ip domain-lookup", "R1(config)#"),
        ("end", "R1#"),
    ]
    for line, want in steps:
        out, _ = vm.cmd(line)
        check(vm.prompt == want and "Invalid" not in out, f"{line!r} -> {want}", out)

    out, _ = vm.cmd("show ip interface brief")
    check(re.search(r"GigabitEthernet0/1\s+10\.11\.12\.1\s+YES manual (up|down)\s", out)
          and re.search(r"GigabitEthernet0/0\s+10\.0\.2\.15\s+YES manual", out),
          "show ip interface brief shows the addresses", out)

    ok = False
    for _ in range(5):  # the e1000 link needs a moment after "no shutdown"
        out, _ = vm.cmd("ping 10.0.2.2")
        if re.search(r"Success rate is [1-9]\d* percent \([1-5]/5\)", out):
            ok = True
            break
        time.sleep(1)
    check(ok, "ping the QEMU user-net gateway through Gi0/0", out)

    out, _ = vm.cmd("show running-config")
    for want in ("hostname R1", " ip address 10.11.12.1 255.255.255.0", " description smoke link",
                 "ip route 192.168.50.0 255.255.255.0 10.11.12.2", "no ip domain-lookup"):
        check(want in out, f"running-config has {want.strip()!r}", out)

    out, _ = vm.cmd("write memory")
    check("Building configuration..." in out and "[OK]" in out, "write memory: [OK]", out)

    vm.p.send("exit\r")
    vm.p.expect("Press RETURN to get started!")
    check(vm.login(), "logout, then a new login")
    check(vm.prompt == "R1>", "the new session sees the same state (R1>)", vm.prompt)
    vm.power_off()


def boot2(args, disk):
    print("boot 2: same data disk after power off")
    vm = VM(args.image_dir, disk, log=args.log)
    TIMINGS["boot2"] = vm.wait_banner()
    print(f"  boot to 'Press RETURN': {TIMINGS['boot2']:.1f} s")
    check(vm.login(), "login")
    check(vm.prompt == "R1>", "hostname survived the reboot (R1>)", vm.prompt)
    vm.cmd("enable")
    vm.cmd("terminal length 0")
    out, _ = vm.cmd("show ip interface brief")
    check(re.search(r"GigabitEthernet0/1\s+10\.11\.12\.1\s+YES NVRAM\s+(up|down)\s", out),
          "Gi0/1 address and no-shutdown survived", out)
    out, _ = vm.cmd("show running-config")
    for want in (" ip address 10.0.2.15 255.255.255.0", " description smoke link",
                 "ip route 192.168.50.0 255.255.255.0 10.11.12.2", "no ip domain-lookup"):
        check(want in out, f"running-config still has {want.strip()!r}", out)
    out, _ = vm.cmd("show startup-config")
    check(re.match(r"Using \d+ out of \d+ bytes", out) and "hostname R1" in out,
          "show startup-config", out)
    vm.power_off()


def boot3(args):
    print("boot 3: no data disk")
    vm = VM(args.image_dir, None, nics=1, log=args.log)
    TIMINGS["boot3"] = vm.wait_banner()
    check(vm.login(), "login")
    check(vm.prompt == "Router>", "fresh state without a disk", vm.prompt)
    vm.cmd("enable")
    out, _ = vm.cmd("write memory")
    check("%Error opening nvram:startup-config" in out, "write memory without a disk fails as IOS does", out)
    vm.power_off()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image-dir", default="/var/lib/archetype/images/mini-ios")
    ap.add_argument("--no-nodisk", action="store_true", help="skip the boot without a data disk")
    ap.add_argument("--verbose", action="store_true", help="copy the console to stdout")
    args = ap.parse_args()
    args.log = sys.stdout if args.verbose else None
    for f in ("vmlinuz", "initrd.img"):
        if not os.path.exists(os.path.join(args.image_dir, f)):
            sys.exit(f"{args.image_dir}/{f} missing: run images/mini-ios/build.sh {args.image_dir}")
    with tempfile.TemporaryDirectory(prefix="mini-ios-smoke-") as tmp:
        disk = os.path.join(tmp, "data.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "64M"], check=True)
        try:
            boot1(args, disk)
            boot2(args, disk)
            if not args.no_nodisk:
                boot3(args)
        except (Failure, pexpect.ExceptionPexpect) as e:
            print(f"FAIL: {e}")
            return 1
        finally:
            for vm in RUNNING:
                vm.power_off()
    print("PASS: " + ", ".join(
        [f"{k} {v:.1f} s" for k, v in TIMINGS.items() if k.startswith("boot")]
        + [f"command round trip {TIMINGS['roundtrip'] * 1000:.0f} ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
