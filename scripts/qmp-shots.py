#!/usr/bin/env python3
"""Takes per-device QMP screendumps of a running QEMU whenever its console log says so.

    qmp-shots.py QMP_SOCKET LOG OUT_DIR DEVICE=NAME [DEVICE=NAME ...]

Follows LOG until QEMU's socket goes away; for each line holding "VGPU-VFIO-SHOT <label>" it
writes OUT_DIR/<label>-<NAME>.png of every DEVICE (a QEMU device id with a console), and prints
what it took. Used by scripts/nested.sh --suite vfio: the inner guest holds its pictures on the
passed-through devices while the host takes them."""
import json
import os
import re
import socket
import sys
import time

sock_path, log_path, out_dir = sys.argv[1:4]
devices = [arg.split("=", 1) for arg in sys.argv[4:]]
shot = re.compile(r"VGPU-VFIO-SHOT (\S+)")


def connect():
    for _ in range(600):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock_path)
            f = s.makefile("rw")
            json.loads(f.readline())  # greeting
            command(f, "qmp_capabilities")
            return f
        except OSError:
            time.sleep(0.1)
    sys.exit("qmp-shots: no QMP socket at " + sock_path)


def command(f, name, **arguments):
    f.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "return" in reply or "error" in reply:
            return reply


qmp = connect()
with open(log_path, "rb") as log:
    pending = b""
    while True:
        chunk = log.read()
        if not chunk:
            if not os.path.exists(sock_path):
                break
            try:
                command(qmp, "query-status")
            except (OSError, ValueError):
                break
            time.sleep(0.2)
            continue
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            m = shot.search(line.decode("utf-8", "replace"))
            if not m:
                continue
            for device, name in devices:
                path = os.path.join(out_dir, f"{m.group(1)}-{name}.png")
                reply = command(qmp, "screendump", filename=path, device=device, format="png")
                print(f"qmp-shots: {m.group(1)} {device}: {'error ' + str(reply['error']) if 'error' in reply else path}",
                      flush=True)
