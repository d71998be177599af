"""The probe agent `reach --verify` starts in each namespace (run by file path, standard library
only, so it starts in tens of milliseconds): it listens, then probes, talking JSON lines.

stdin line 1: {"name": N, "listen": [[proto, port], ...]}: bind on 0.0.0.0 (IPv4), answer every
  TCP connection and UDP datagram with N (so a probe knows who answered); print {"ready": true,
  "failed": [[proto, port, error], ...]}.
stdin line 2: {"probe": [[id, proto, address, port], ...], "timeout": T}: try them all at once,
  print {"results": {id: "answer:NAME" | "timeout" | "refused" | "error:..."}}.
Then it keeps answering until stdin closes.
"""

import errno
import json
import resource
import selectors
import socket
import sys
import threading
import time


def _raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def listen(name, specs):
    sel = selectors.DefaultSelector()
    failed = []
    for proto, port in specs:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            if proto == "tcp":
                s.listen(1024)
        except OSError as exc:
            failed.append([proto, port, exc.strerror or str(exc)])
            s.close()
            continue
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, proto)
    answer = name.encode()

    def serve():
        while True:
            for key, _ in sel.select():
                s = key.fileobj
                try:
                    if key.data == "tcp":
                        conn, _ = s.accept()
                        conn.setblocking(True)
                        conn.settimeout(1)
                        try:
                            conn.sendall(answer)
                        finally:
                            conn.close()
                    else:
                        _, peer = s.recvfrom(512)
                        s.sendto(answer, peer)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return failed


def probe(items, timeout):
    sel = selectors.DefaultSelector()
    results = {}
    for pid, proto, address, port in items:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        s.setblocking(False)
        try:
            if proto == "tcp":
                err = s.connect_ex((address, port))
                if err not in (0, errno.EINPROGRESS):
                    results[pid] = "refused" if err == errno.ECONNREFUSED else f"error:{errno.errorcode.get(err, err)}"
                    s.close()
                    continue
                sel.register(s, selectors.EVENT_WRITE, (pid, "connecting"))
            else:
                s.connect((address, port))
                s.send(b"?")
                sel.register(s, selectors.EVENT_READ, (pid, "reading"))
        except OSError as exc:
            results[pid] = "refused" if exc.errno == errno.ECONNREFUSED else f"error:{exc.strerror}"
            s.close()
    deadline = time.monotonic() + timeout
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(left):
            s, (pid, stage) = key.fileobj, key.data
            if stage == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    results[pid] = "refused" if err == errno.ECONNREFUSED else f"error:{errno.errorcode.get(err, err)}"
                    sel.unregister(s)
                    s.close()
                else:
                    sel.modify(s, selectors.EVENT_READ, (pid, "reading"))
                continue
            try:
                data = s.recv(512)
                results[pid] = "answer:" + data.decode(errors="replace") if data else "error:closed"
            except OSError as exc:
                results[pid] = "refused" if exc.errno == errno.ECONNREFUSED else f"error:{exc.strerror}"
            sel.unregister(s)
            s.close()
    for key in list(sel.get_map().values()):
        results.setdefault(key.data[0], "timeout")
        key.fileobj.close()
    return results


def main():
    _raise_fd_limit()
    first = json.loads(sys.stdin.readline())
    failed = listen(first["name"], first.get("listen", []))
    print(json.dumps({"ready": True, "failed": failed}), flush=True)
    line = sys.stdin.readline()
    if line:
        order = json.loads(line)
        print(json.dumps({"results": probe(order.get("probe", []), order.get("timeout", 0.5))}), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
