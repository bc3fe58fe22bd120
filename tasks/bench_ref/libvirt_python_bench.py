"""Reference figures from libvirt-python (the C client library), same measurements as bench_rpc.ts."""
import json
import sys
import threading
import time

try:
    import libvirt
except ImportError:
    print(json.dumps({"skipped": "python3-libvirt is not installed"}))
    sys.exit(0)

uri = sys.argv[1] if len(sys.argv) > 1 else "qemu:///system"
libvirt.registerErrorHandler(lambda *_: None, None)


def mean_us(n, fn):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


for _ in range(3):
    libvirt.open(uri).close()
t0 = time.perf_counter()
for _ in range(20):
    libvirt.open(uri).close()
connect_us = (time.perf_counter() - t0) / 20 * 1e6

conn = libvirt.open(uri)
for _ in range(500):
    conn.getLibVersion()
rtt = mean_us(2000, conn.getLibVersion)
doms = conn.listAllDomains(0)
lst = mean_us(50, lambda: conn.listAllDomains(0))


def seq():
    for d in doms:
        d.info()


seq_us = mean_us(5, seq)


def par():
    idx = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = idx[0]
                idx[0] += 1
            if i >= len(doms):
                return
            doms[i].info()

    ts = [threading.Thread(target=worker) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


par_us = mean_us(5, par)
stats = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON
records = [0]


def bulk():
    records[0] = len(conn.getAllDomainStats(stats, 0))


bulk_us = mean_us(50, bulk)
conn.close()
print(json.dumps({
    "connect_us": round(connect_us, 1),
    "rtt_us": round(rtt, 1),
    "domains": len(doms),
    "list_all_us": round(lst, 1),
    "per_domain_info_us": round(seq_us, 1),
    "per_domain_info_16way_us": round(par_us, 1),
    "bulk_stats_us": round(bulk_us, 1),
    "bulk_stats_records": records[0],
}))
