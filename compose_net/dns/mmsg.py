"""`recvmmsg`/`sendmmsg` through ctypes: many UDP datagrams per system call.

Python 3.11's socket module has neither. One `Batch` owns fixed receive and send buffers and the
`mmsghdr` arrays pointing into them, built once; per datagram the caller pays a memoryview slice
and a couple of ctypes field writes. Only IPv4 peers are expected (the server's sockets are bound
to 127.0.0.11), so each peer address slot is a 16-byte `sockaddr_in`.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct

MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
SOCKADDR_IN = 16


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL("libc.so.6", use_errno=True)  # ctypes.util would pull in subprocess: RSS
_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
_recvmmsg.restype = ctypes.c_int
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int


class Batch:
    def __init__(self, count: int = 64, size: int = 4096):
        self.count = count
        self.size = size
        self._rbuf = (ctypes.c_char * (count * size))()
        self._sbuf = (ctypes.c_char * (count * size))()
        self._names = (ctypes.c_char * (count * SOCKADDR_IN))()
        self.rview = memoryview(self._rbuf).cast("B")
        self.sview = memoryview(self._sbuf).cast("B")
        self.names = memoryview(self._names).cast("B")
        self._riov = (IoVec * count)()
        self._siov = (IoVec * count)()
        self._rmsgs = (MMsgHdr * count)()
        self._smsgs = (MMsgHdr * count)()
        rbase = ctypes.addressof(self._rbuf)
        sbase = ctypes.addressof(self._sbuf)
        self._nbase = ctypes.addressof(self._names)
        for i in range(count):
            self._riov[i].iov_base = rbase + i * size
            self._riov[i].iov_len = size
            self._siov[i].iov_base = sbase + i * size
            for msgs, iov in ((self._rmsgs, self._riov), (self._smsgs, self._siov)):
                hdr = msgs[i].msg_hdr
                hdr.msg_name = self._nbase + i * SOCKADDR_IN
                hdr.msg_namelen = SOCKADDR_IN
                hdr.msg_iov = ctypes.pointer(iov[i])
                hdr.msg_iovlen = 1
        self._raddr = ctypes.addressof(self._rmsgs)
        self._saddr = ctypes.addressof(self._smsgs)

        # Plain integer views of the header arrays: indexing them costs far less than going
        # through ctypes structure objects per datagram.
        stride = ctypes.sizeof(MMsgHdr)
        assert stride % 8 == 0 and MsgHdr.msg_name.offset == 0
        self._r32 = memoryview(self._rmsgs).cast("B").cast("I")
        self._len_at = MMsgHdr.msg_len.offset // 4
        self._flags_at = MsgHdr.msg_flags.offset // 4
        self._stride32 = stride // 4
        self._mmsg_size = stride
        # Public for the server's inlined send loop: stage() costs a call per datagram.
        self.s64 = memoryview(self._smsgs).cast("B").cast("Q")
        self.stride64 = stride // 8
        self.siov64 = memoryview(self._siov).cast("B").cast("Q")
        self.nbase = self._nbase

    def recv(self, fd: int) -> int:
        """Datagrams read into slots 0..n-1 (0 when none is waiting)."""
        n = _recvmmsg(fd, self._raddr, self.count, MSG_DONTWAIT, None)
        if n < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EINTR):
                return 0
            raise OSError(err, "recvmmsg")
        return n

    def lengths(self, n: int) -> list[int]:
        """Lengths of the n datagrams just read; -1 for one cut short (larger than a slot)."""
        stride = self._stride32
        lens = self._r32[self._len_at : self._len_at + n * stride : stride].tolist()
        flags = self._r32[self._flags_at : self._flags_at + n * stride : stride].tolist()
        if any(f & MSG_TRUNC for f in flags):
            lens = [-1 if f & MSG_TRUNC else n for n, f in zip(lens, flags)]
        return lens

    def stage(self, k: int, slot: int, reply: bytes) -> None:
        """Put `reply` in send slot k, addressed to the peer of received slot `slot`."""
        n = len(reply)
        start = k * self.size
        self.sview[start : start + n] = reply
        self.siov64[2 * k + 1] = n
        self.s64[k * self.stride64] = self.nbase + slot * SOCKADDR_IN

    def flush(self, fd: int, k: int) -> int:
        """Send staged slots 0..k-1; how many went (the rest are dropped: a full socket buffer
        means the client is gone or flooding)."""
        sent = 0
        while sent < k:
            r = _sendmmsg(fd, self._saddr + sent * self._mmsg_size, k - sent, MSG_DONTWAIT)
            if r <= 0:
                break
            sent += r
        return sent

    def datagrams(self, n: int) -> list[bytes]:
        """The n datagrams just read; b"" for one cut short (larger than a slot: never a query)."""
        stride = self._stride32
        lens = self._r32[self._len_at : self._len_at + n * stride : stride].tolist()
        flags = self._r32[self._flags_at : self._flags_at + n * stride : stride].tolist()
        rview = self.rview
        size = self.size
        out = []
        start = 0
        for length, flag in zip(lens, flags):
            out.append(b"" if flag & MSG_TRUNC else bytes(rview[start : start + length]))
            start += size
        return out

    def peer(self, i: int) -> tuple[str, int]:
        start = i * SOCKADDR_IN
        raw = bytes(self.names[start : start + SOCKADDR_IN])
        return socket.inet_ntoa(raw[4:8]), struct.unpack("!H", raw[2:4])[0]

    def send(self, fd: int, replies: list[tuple[int, bytes]]) -> int:
        """Send each (slot, reply) to the peer that sent slot's datagram; how many went."""
        k = 0
        for slot, reply in replies:
            if len(reply) <= self.size:
                self.stage(k, slot, reply)
                k += 1
        return self.flush(fd, k)
