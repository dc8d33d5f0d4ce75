"""numpy model of the stress top's traffic (:mod:`gen.noc_stress`): what packet ``k`` of source ``s``
is, and so what every node must have received once every source has sent its first ``tx[s]`` packets.

Bit-exact with the hardware generators: the same hash (MurmurHash3's 32-bit finalizer, Appleby, public
domain, applied twice), the same decisions from its bits. The constants are repeated here on purpose (the
golden model never imports the generator); ``tests/test_noc_stress.py`` checks that they agree.
"""

import numpy as np

__all__ = ["SEQ_BITS", "packet_hash", "decisions", "expected_counts", "transpose"]

SEQ_BITS = 16
FMIX_C1, FMIX_C2 = 0x85EBCA6B, 0xC2B2AE35
GOLDEN = 0x9E3779B9
MASK_K2, MASK_K3 = 0x5BD1E995, 0x27D4EB2F
M32 = np.uint64(0xFFFFFFFF)


def _fmix(h):
    h = np.asarray(h, dtype=np.uint64) & M32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(FMIX_C1)) & M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(FMIX_C2)) & M32
    h ^= h >> np.uint64(16)
    return h


def packet_hash(seed, src, seq):
    """``H`` of packet ``seq`` (taken modulo 2**16) of source ``src`` (arrays broadcast)."""
    seed = np.uint64(seed & 0xFFFFFFFF)
    key = ((np.asarray(src, dtype=np.uint64) << np.uint64(SEQ_BITS))
           | (np.asarray(seq, dtype=np.uint64) & np.uint64((1 << SEQ_BITS) - 1)))
    h1 = _fmix(key ^ seed)
    return _fmix((h1 + seed) & M32)


def transpose(kx, ky, n):
    x, y = n % kx, n // kx
    if kx == ky:
        return x * kx + y
    return (ky - 1 - y) * kx + (kx - 1 - x)


def decisions(h, *, kx, ky, max_packet_flits, mcast_256=51, hotspot=0, src=None):
    """The packets of hashes ``h``: a dict of arrays ``length``, ``mcast``, ``pattern`` (0 uniform,
    1 transpose, 2 hotspot) and ``dests``, a boolean array (packet, node) of destinations (needs
    ``src``, the sources, for the transpose pattern)."""
    nodes = kx * ky
    h = np.asarray(h, dtype=np.uint64)
    byte = lambda v, k: ((v >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.int64)  # noqa: E731
    h2 = _fmix(h ^ np.uint64(MASK_K2))
    words = [h2]
    if nodes > 32:
        words.append(_fmix(h2 ^ np.uint64(MASK_K3)))
    bits = np.concatenate([((w[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1))
                           for w in words], axis=1)[:, :nodes].astype(bool)
    empty = ~bits.any(axis=1)
    bits[empty, 0] = True
    length = ((byte(h, 0) * max_packet_flits) >> 8) + 1
    mcast = byte(h, 1) < mcast_256
    pattern = (byte(h, 2) * 3) >> 8
    ux = (byte(h2, 0) * kx) >> 8
    uy = (byte(h2, 1) * ky) >> 8
    hot = ((h2 >> np.uint64(16)) & np.uint64(1)).astype(bool)
    uniform = uy * kx + ux
    dest = uniform.copy()
    if src is not None:
        src = np.broadcast_to(np.asarray(src), h.shape)
        tr = np.array([transpose(kx, ky, n) for n in range(nodes)])[src]
        dest = np.where(pattern == 1, tr, dest)
    dest = np.where((pattern == 2) & hot, hotspot, dest)
    dests = np.where(mcast[:, None], bits, np.arange(nodes)[None, :] == dest[:, None])
    return {"length": length, "mcast": mcast, "pattern": pattern, "dests": dests}


def expected_counts(seed, tx_packets, *, kx, ky, max_packet_flits, mcast_256=51, hotspot=0,
                    chunk=1 << 18):
    """What every node must have received, and every source sent, when source ``s`` has sent packets
    ``0 .. tx_packets[s] - 1``: a dict of per-node integer lists ``tx_flits``, ``tx_mcast``,
    ``tx_copies`` (destinations summed over the packets), ``rx_packets``, ``rx_flits``, and
    ``patterns`` (packets per pattern, multicast last)."""
    nodes = kx * ky
    out = {k: [0] * nodes for k in ("tx_flits", "tx_mcast", "tx_copies")}
    rx_packets = np.zeros(nodes, dtype=np.int64)
    rx_flits = np.zeros(nodes, dtype=np.int64)
    patterns = np.zeros(4, dtype=np.int64)
    for s in range(nodes):
        for start in range(0, int(tx_packets[s]), chunk):
            seq = np.arange(start, min(int(tx_packets[s]), start + chunk))
            d = decisions(packet_hash(seed, s, seq), kx=kx, ky=ky,
                          max_packet_flits=max_packet_flits, mcast_256=mcast_256,
                          hotspot=hotspot, src=s)
            dests = d["dests"]
            out["tx_flits"][s] += int(d["length"].sum())
            out["tx_mcast"][s] += int(d["mcast"].sum())
            out["tx_copies"][s] += int(dests.sum())
            rx_packets += dests.sum(axis=0)
            rx_flits += (dests * d["length"][:, None]).sum(axis=0)
            patterns += np.bincount(np.where(d["mcast"], 3, d["pattern"]), minlength=4)
    out["rx_packets"] = [int(v) for v in rx_packets]
    out["rx_flits"] = [int(v) for v in rx_flits]
    out["patterns"] = [int(v) for v in patterns]
    return out
