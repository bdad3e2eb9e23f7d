#!/usr/bin/env bash
# What an idle SSE connection costs the kernel on the server side, beside
# the proxy's own RSS (issue 16; the memory line of perf/PLAN-16-CORES.md).
#
# One run: a nisshi broker and the proxy (one shard on CPU 0, perf/lib.sh),
# then K idle connections from `sse-kafka-load subscribe` (on CPU 1, as in
# perf/compare.sh's scenario E). Once `ss` shows K established on the
# client port and every accept queue is empty, and SETTLE seconds more
# (heads written, the first keep-alive tick), it reads, before and after:
#
#   - the proxy's VmRSS;
#   - /proc/net/sockstat (TCP inuse, alloc, mem in pages: the kernel's
#     tcp_memory_allocated, both ends);
#   - /proc/slabinfo: every cache that moved by K/100 objects or more, and
#     the socket caches always (objects, bytes = objects x objsize, and
#     slab pages, which include each cache's slack);
#   - /proc/meminfo's Slab, SUnreclaim, VmallocUsed (descriptor tables),
#     PageTables;
#   - `ss -tmn state established '( sport = :PORT )'`: the skmem of the
#     server's K sockets, summed;
#   - /proc/net/softnet_stat: per CPU, packets dropped at the backlog
#     (net.core.netdev_max_backlog; loopback packets queue there);
#   - the proxy's /metrics: bytes it wrote per connection while opening,
#     and bytes per event during the burst (below).
#
# Both ends of every connection are on this host, so each kernel figure
# counts the client too. How the slab deltas are split (the table's
# "side" column; the JSON keeps every raw delta):
#
#   both/2    one object per socket at each end: the socket (TCP), its
#             inode and struct socket (sock_inode_cache), its file (filp)
#             and the file's LSM blob (lsm_file_cache). A connection has
#             two sockets with the same objects (an accepted socket gets
#             its own inode and file at accept), so the server's share is
#             half; the objects-per-connection column (2.0) checks it.
#   inode/2   one per inode: the dentry (sockfs, one per socket file) and
#             the inode's LSM blob (lsm_inode_cache). These rows also
#             carry the observer's (below): its count is taken off, then
#             the rest halved (4.0 per connection minus 2.0, halved).
#   observer  proc_inode_cache: this host lists every process's
#             /proc/PID/fd within a second of it opening descriptors
#             (checked: a python process opening 3,000 sockets and
#             nothing else gained 3,048 proc inodes), which builds a proc
#             inode and dentry per descriptor of the proxy and of the
#             generator. A monitoring agent that counts descriptors does
#             the same in production; it is not the connection's cost and
#             is left out of both sides.
#   client    epoll (eventpoll_epi, eventpoll_pwq, ep_head) and local port
#             buckets (tcp_bind_bucket, tcp_bind2_bucket: one per port a
#             connect() bound; accepted sockets share their listener's).
#             The proxy does its I/O with io_uring; the script prints both
#             processes' epoll registrations, so a proxy that registered
#             its sockets with epoll would show.
#   server    io_uring requests (io_kiocb): only the proxy has an io_uring
#             (descriptors counted for both, and the polls it has armed).
#             io_uring keeps freed requests for reuse, so these stay after
#             the connections end (the down leg shows it).
#   ?         kmalloc-*, skbuff_*, request and time-wait minisocks: not
#             split; summed over both ends; the server's share is
#             somewhere between none and all of it.
#   noise     any other cache that moved (filesystem, VMAs): another
#             process's work on this shared host; shown, in no sum.
#
# SLUB merges caches of one size and flags: /proc/slabinfo prints a merged
# group under one member's name (eventpoll_pwq as anon_vma_chain,
# eventpoll_epi beside tcp_bind_bucket...). The side goes by the members
# (from /sys/kernel/slab; the table lists them). The "down" leg (after the
# clients hung up and the proxy closed their sockets) is a second reading
# of the same objects; it takes longer (teardown, a build's files
# meanwhile), so it is the noisier of the two: read the "up" figures.
#
# After the idle readings, a burst: STALLED clients that send their
# request and never read (4 KiB receive buffer, lib.sh slow_clients) join,
# then BURST_RATE records a second for BURST_SECS seconds (150-byte
# values) go to every connection. The stalled sockets' skmem then is what
# a socket whose client stops reading holds for that burst (wmem_queued
# against the bytes queued, Send-Q). ss samples during the burst give the
# readers' sockets' peak too, but on loopback a receiver acknowledges
# within the sender's own softirq, so a reader's send queue empties at
# once and its data waits in the client's receive queue instead: that
# peak is near zero here and says nothing of a network's, where a burst
# waits a round trip for its ACK.
#
#   perf/kernel_mem.sh            # K=15000, about a minute
#   K=5000 STALLED=0 perf/kernel_mem.sh
#
# Like perf/compare.sh it raises net.core.somaxconn and
# net.ipv4.tcp_max_syn_backlog to 65535 for the run and puts the old
# values back on exit. PROXY_BIN and LOAD_BIN pick the binaries (built here
# when unset). Output: a table on stdout, one JSON line appended to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${K:-15000}
SETTLE=${SETTLE:-3}
OPEN_DEADLINE=${OPEN_DEADLINE:-90}
STALLED=${STALLED:-100}
BURST_RATE=${BURST_RATE:-50}
BURST_SECS=${BURST_SECS:-2}
OUT=${OUT:-perf/results/kernel_mem.jsonl}

if [ -z "${PROXY_BIN:-}" ] || [ -z "${LOAD_BIN:-}" ]; then
  cargo build --release --quiet --bin sse-kafka --bin sse-kafka-load
fi
export PROXY_BIN=${PROXY_BIN:-./target/release/sse-kafka}
LOAD_BIN=${LOAD_BIN:-./target/release/sse-kafka-load}
./examples/install-nisshi.sh
. perf/lib.sh

raise_connection_queues

# until_ok SECONDS COMMAND...: true once COMMAND succeeds, polled every 50 ms.
until_ok() {
  local end=$(( $(date +%s) + $1 )); shift
  while ! "$@"; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.05
  done
}
established() { ss -Htn state established "( sport = :$1 )" | wc -l; }
# all_accepted PORT N: N established sockets on PORT, every accept queue empty.
all_accepted() {
  [ "$(established "$1")" -ge "$2" ] && [ -z "$(ss -Hltn "( sport = :$1 )" | awk '$2 != 0')" ]
}
# none_left PORT: no socket of the client port's connections in any state
# but TIME-WAIT (whose minisocks are tw_sock_TCP, not TCP objects).
none_left() { [ "$(ss -Htan "( sport = :$1 )" | awk '$1 != "LISTEN" && $1 != "TIME-WAIT"' | wc -l)" -eq 0 ]; }

# snap NAME: the kernel's counters as they are now, into $work/NAME.*.
snap() {
  cat /proc/slabinfo >"$work/$1.slab"
  cat /proc/net/sockstat >"$work/$1.sockstat"
  cat /proc/meminfo >"$work/$1.meminfo"
  cat /proc/net/softnet_stat >"$work/$1.softnet"
}
# scrape NAME: the proxy's /metrics into $work/NAME.metrics.
scrape() { curl -sf "http://127.0.0.1:$APORT/metrics" >"$work/$1.metrics" || : >"$work/$1.metrics"; }
# fd_kinds PID: descriptors by kind, epoll registrations (tfd: lines of
# an epoll's fdinfo) and io_uring polls armed (op= lines under an
# io_uring's PollList:), as JSON. Reading /proc/PID/fd makes a proc inode
# per descriptor: run after the readings it would disturb.
fd_kinds() {
  local fd link epolls=0 uring=0 sockets=0 tfds=0 polls=0
  for fd in /proc/"$1"/fd/*; do
    link=$(readlink "$fd" 2>/dev/null) || continue
    case "$link" in
      socket:*) sockets=$((sockets + 1)) ;;
      'anon_inode:[eventpoll]')
        epolls=$((epolls + 1))
        tfds=$((tfds + $(grep -c '^tfd:' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null || true))) ;;
      'anon_inode:[io_uring]')
        uring=$((uring + 1))
        polls=$((polls + $(grep -c '^ *op=' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null || true))) ;;
    esac
  done
  echo "{\"sockets\": $sockets, \"epoll_fds\": $epolls, \"epoll_registrations\": $tfds, \"io_uring_fds\": $uring, \"io_uring_polls\": $polls}"
}

read -r KPORT PORT APORT < <(free_ports 3)
BROKER_CPU=1 start_broker "$KPORT"
# Create the topic before the proxy looks for it.
"$LOAD_BIN" produce --brokers "127.0.0.1:$KPORT" --topic items --rate 1 --seconds 0 >/dev/null
write_proxy_config "$PORT" "$APORT" "$KPORT"
start_proxy "$APORT"
sleep 1

rss_before=$(rss_kb "$PROXY")
snap before
scrape before
taskset -c 1 "$LOAD_BIN" subscribe --url "http://127.0.0.1:$PORT/items" --connections "$K" --cpus 1 \
  --warmup 0 --seconds $(( OPEN_DEADLINE + 120 )) >/dev/null 2>"$work/load.err" &
GEN=$!; pids+=($GEN)
t0=$(date +%s.%N)
opened=yes
until_ok "$OPEN_DEADLINE" all_accepted "$PORT" "$K" || opened=no
t1=$(date +%s.%N)
[ $opened = yes ] || echo "kernel_mem: $(established "$PORT") of $K established within ${OPEN_DEADLINE}s: $(tail -3 "$work/load.err")" >&2
sleep "$SETTLE"
snap after
rss_after=$(rss_kb "$PROXY")
ss -Htmn state established "( sport = :$PORT )" >"$work/after.ss"
open_after=$(metric "$APORT" sse_kafka_connections_open || true)
scrape after
proxy_fds=$(fd_kinds "$PROXY")
gen_fds=$(fd_kinds "$GEN")
queues_in_effect="$(sysctl -n net.core.somaxconn) $(sysctl -n net.ipv4.tcp_max_syn_backlog)"

# The burst.
: >"$work/burst.samples"
if [ "$STALLED" -gt 0 ]; then
  SLOW_CPU=1 slow_clients "$PORT" "$STALLED" 120
  until_ok 30 all_accepted "$PORT" $(( K + STALLED )) || echo "kernel_mem: stalled clients not all in" >&2
  scrape burst_start
  taskset -c 1 "$LOAD_BIN" produce --brokers "127.0.0.1:$KPORT" --topic items --rate "$BURST_RATE" \
    --seconds "$BURST_SECS" --producer-cpu 1 >/dev/null 2>"$work/produce.err" &
  prod=$!; pids+=($prod)
  # Samples every ~0.3 s until the producer is done and 3 s more.
  end=0
  while :; do
    { echo "== $(date +%s.%N)"; grep -E '^TCP:' /proc/net/sockstat
      ss -Htmn state established "( sport = :$PORT )"; } >>"$work/burst.samples"
    if ! kill -0 "$prod" 2>/dev/null; then
      [ "$end" != 0 ] || end=$(( $(date +%s) + 3 ))
      [ "$(date +%s)" -lt "$end" ] || break
    fi
    sleep 0.3
  done
  wait "$prod" || echo "kernel_mem: producer exited $?: $(tail -2 "$work/produce.err")" >&2
  ss -Htmn state established "( sport = :$PORT )" >"$work/burst_end.ss"
  scrape burst_end
  # The stalled clients' own ports, to pick their server sockets out.
  ss -Htnp state established "( dport = :$PORT )" | awk -v p="pid=$SLOW_PID," 'index($0, p) {print $3}' \
    | sed 's/.*://' >"$work/stalled.ports"
  stop "$SLOW_PID"
fi

# The down leg: the clients hang up, the proxy closes its sockets.
stop "$GEN"
closed=yes
until_ok 60 none_left "$PORT" || closed=no
[ $closed = yes ] || echo "kernel_mem: $(ss -Htan "( sport = :$PORT )" | wc -l) sockets left on the port after 60 s" >&2
sleep 2
snap end
rss_end=$(rss_kb "$PROXY" 2>/dev/null || echo 0)

mkdir -p "$(dirname "$OUT")"
python3 - "$work" "$OUT" <<PY
import json, os, re, sys
work, out = sys.argv[1], sys.argv[2]
K = $K
meta = dict(
    date="$(date -u +%FT%TZ)", kernel="$(uname -r)",
    commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +dirty)",
    proxy_bin="$PROXY_BIN", load_bin="$LOAD_BIN",
    command="K=$K SETTLE=$SETTLE STALLED=$STALLED BURST_RATE=$BURST_RATE BURST_SECS=$BURST_SECS perf/kernel_mem.sh",
    queues_in_effect="$queues_in_effect", opened="$opened" == "yes", closed="$closed" == "yes",
    opening_s=round($t1 - $t0, 2))
PAGE = os.sysconf("SC_PAGE_SIZE")

def slabs(name):
    rows = {}
    for line in open(f"{work}/{name}.slab").read().splitlines()[2:]:
        f = line.split()
        # name active_objs num_objs objsize objperslab pagesperslab : tunables ... : slabdata active num shared
        rows[f[0]] = dict(objs=int(f[1]), objsize=int(f[3]), pages=int(f[14]) * int(f[5]))
    return rows

def sockstat(name):
    for line in open(f"{work}/{name}.sockstat"):
        if line.startswith("TCP:"):
            f = line.split()[1:]
            return {f[i]: int(f[i + 1]) for i in range(0, len(f), 2)}

def meminfo(name):
    keep = ("Slab", "SReclaimable", "SUnreclaim", "VmallocUsed", "PageTables", "KernelStack")
    m = {}
    for line in open(f"{work}/{name}.meminfo"):
        k, v = line.split(":")
        if k in keep:
            m[k] = int(v.split()[0])
    return m

def skmem_of(text):
    # One socket: "ESTAB 0 0 local peer\n\t skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0)".
    socks = []
    for m in re.finditer(r"(\d+)\s+(\d+)\s+\S+:(\d+)\s+\S+:(\d+)\s+skmem:\(([^)]*)\)", text):
        d = dict(recvq=int(m[1]), sendq=int(m[2]), peer=int(m[4]))
        for kv in m[5].split(","):
            k = re.match(r"[a-z]+", kv)[0]
            d[k] = int(kv[len(k):])
        socks.append(d)
    return socks

# Which side a cache's objects are on (see the header of perf/kernel_mem.sh).
SIDE = {"TCP": "both/2", "sock_inode_cache": "both/2", "filp": "both/2", "lsm_file_cache": "both/2",
        "dentry": "inode/2", "lsm_inode_cache": "inode/2", "proc_inode_cache": "observer",
        "eventpoll_epi": "client", "eventpoll_pwq": "client", "ep_head": "client",
        "tcp_bind_bucket": "client", "tcp_bind2_bucket": "client", "io_kiocb": "server"}
UNSPLIT = ("kmalloc-", "skbuff_", "request_sock_TCP", "tw_sock_TCP")
ALWAYS = ["TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq",
          "io_kiocb", "skbuff_head_cache", "skbuff_small_head", "request_sock_TCP", "tw_sock_TCP"]
# Merged caches: a sysfs link per member names the group's directory; the
# group is printed under one member's name.
groups = {}
for n in os.listdir("/sys/kernel/slab"):
    p = f"/sys/kernel/slab/{n}"
    groups.setdefault(os.path.basename(os.readlink(p)) if os.path.islink(p) else n, set()).add(n)
members = {}
b, a, e = slabs("before"), slabs("after"), slabs("end")
for name in a:
    g = next((ms for ms in groups.values() if name in ms), {name})
    members[name] = sorted(m for m in g if not m.startswith(":"))
def side(name):
    known = {SIDE[m] for m in members[name] if m in SIDE}
    # A group with one known member (and others that do not move per
    # connection): that member's side, e.g. anon_vma_chain carrying
    # eventpoll_pwq. Two known sides: not split.
    if len(known) == 1:
        return known.pop()
    return "?" if known or name.startswith(UNSPLIT) else "noise"
threshold = max(K // 100, 1)
rows = []
for name in a:
    up = a[name]["objs"] - b.get(name, a[name])["objs"]
    down = a[name]["objs"] - e.get(name, a[name])["objs"]
    if name not in ALWAYS and abs(up) < threshold and abs(down) < threshold:
        continue
    size = a[name]["objsize"]
    rows.append(dict(cache=name, members=[m for m in members[name] if m != name],
        objsize=size, side=side(name), up_objs=up, down_objs=down,
        up_bytes=up * size, up_page_bytes=(a[name]["pages"] - b.get(name, a[name])["pages"]) * PAGE,
        down_bytes=down * size))
rows.sort(key=lambda r: (-abs(r["up_bytes"])))
# The observer's /proc/PID/fd inodes, per leg: each came with a dentry and
# an LSM inode blob, which the inode/2 rows take off before halving.
proc = {leg: next((r[leg + "_objs"] for r in rows if r["cache"] == "proc_inode_cache"), 0) for leg in ("up", "down")}

def share(r, leg):
    """(server, client) bytes of a row in one leg."""
    s, n = r["side"], r[leg + "_objs"]
    if s == "both/2":
        return n * r["objsize"] / 2, n * r["objsize"] / 2
    if s == "inode/2":
        return (n - proc[leg]) * r["objsize"] / 2, (n - proc[leg]) * r["objsize"] / 2
    return {"client": (0, n * r["objsize"]), "server": (n * r["objsize"], 0)}.get(s, (0, 0))
def total(leg, sides):
    return sum(r[leg + "_bytes"] for r in rows if r["side"] in sides)
server_up = sum(share(r, "up")[0] for r in rows)
client_up = sum(share(r, "up")[1] for r in rows)
server_down = sum(share(r, "down")[0] for r in rows)
client_down = sum(share(r, "down")[1] for r in rows)
unsplit_up, unsplit_down = total("up", {"?"}), total("down", {"?"})
# The observer's share of the dentry and LSM inode rows, with its inodes.
observer = {leg: proc[leg] * sum(r["objsize"] for r in rows if r["side"] in ("inode/2", "observer")) for leg in ("up", "down")}
noise_up, noise_down = total("up", {"noise"}), total("down", {"noise"})

ss_after = skmem_of(open(f"{work}/after.ss").read())
FIELDS = ["r", "rb", "t", "tb", "f", "w", "o", "bl", "d"]
skmem = {k: sum(s.get(k, 0) for s in ss_after) for k in FIELDS}
skmem["sockets"] = len(ss_after)
skmem["recvq"] = sum(s["recvq"] for s in ss_after)
skmem["sendq"] = sum(s["sendq"] for s in ss_after)
# What the sockets hold (rmem_alloc + wmem_queued + forward alloc + option
# memory); wmem_alloc (t) is in-flight bytes, a part of wmem_queued.
skmem["held_bytes"] = skmem["r"] + skmem["w"] + skmem["f"] + skmem["o"]

ssb, ssa, sse = sockstat("before"), sockstat("after"), sockstat("end")
mb, ma, me = meminfo("before"), meminfo("after"), meminfo("end")
rss_b, rss_a, rss_e = $rss_before, $rss_after, $rss_end

burst = None
if $STALLED > 0:
    stalled_ports = {int(p) for p in open(f"{work}/stalled.ports").read().split()}
    if not stalled_ports:
        print("kernel_mem: the stalled clients' ports were not found", file=sys.stderr)
    end_socks = skmem_of(open(f"{work}/burst_end.ss").read())
    st = [s for s in end_socks if s["peer"] in stalled_ports]
    peak = dict(readers_w_sum=0, readers_w_max=0, readers_sendq_sum=0, sockstat_mem_pages=0)
    for chunk in open(f"{work}/burst.samples").read().split("== ")[1:]:
        socks = [s for s in skmem_of(chunk) if s["peer"] not in stalled_ports]
        m = re.search(r"mem (\d+)", chunk)
        peak["sockstat_mem_pages"] = max(peak["sockstat_mem_pages"], int(m[1]) if m else 0)
        peak["readers_w_sum"] = max(peak["readers_w_sum"], sum(s["w"] for s in socks))
        peak["readers_sendq_sum"] = max(peak["readers_sendq_sum"], sum(s["sendq"] for s in socks))
        peak["readers_w_max"] = max([peak["readers_w_max"]] + [s["w"] for s in socks])
    n = max(len(st), 1)
    burst = dict(stalled=len(st), records=$BURST_RATE * $BURST_SECS,
        stalled_sendq_mean=round(sum(s["sendq"] for s in st) / n),
        stalled_w_mean=round(sum(s["w"] for s in st) / n), stalled_w_max=max([0] + [s["w"] for s in st]),
        stalled_tb_mean=round(sum(s["tb"] for s in st) / n),
        samples=open(f"{work}/burst.samples").read().count("== "), peak=peak)

def counters(name):
    c = {}
    for l in open(f"{work}/{name}.metrics"):
        f = l.split()
        if len(f) == 2 and f[0].startswith("sse_kafka_"):
            c[f[0]] = float(f[1])
    return c
def moved(a, b):
    keys = ("events_sent_total", "bytes_sent_total", "keepalives_sent_total", "demotions_total")
    return {k: int(counters(b).get("sse_kafka_" + k, 0) - counters(a).get("sse_kafka_" + k, 0)) for k in keys}
opening = moved("before", "after")
def softnet(name):
    # Per CPU: packets processed, dropped (the CPU's backlog, at
    # net.core.netdev_max_backlog, was full: loopback and RPS packets
    # queue there), time squeezes (hex columns 1-3).
    return [[int(x, 16) for x in l.split()[:3]] for l in open(f"{work}/{name}.softnet")]
def softnet_moved(a, b):
    return [dict(processed=y[0] - x[0], dropped=y[1] - x[1], squeezed=y[2] - x[2])
            for x, y in zip(softnet(a), softnet(b))]
backlog = dict(opening=softnet_moved("before", "after"), burst_and_close=softnet_moved("after", "end"),
    netdev_max_backlog=int(open("/proc/sys/net/core/netdev_max_backlog").read()))
if burst:
    burst["sent"] = moved("burst_start", "burst_end")
    ev = burst["sent"]["events_sent_total"]
    # Bytes written per event during the burst (keep-alives included: a
    # few per connection at most).
    burst["bytes_per_event"] = round(burst["sent"]["bytes_sent_total"] / ev, 1) if ev else None
per = lambda x: round(x / K)
line = dict(meta=meta, connections=K,
    established=skmem["sockets"], connections_open=${open_after:-None},
    rss_kb=dict(before=rss_b, after=rss_a, end=rss_e), rss_per_conn_b=per((rss_a - rss_b) * 1024),
    sockstat=dict(before=ssb, after=ssa, end=sse), meminfo_kb=dict(before=mb, after=ma, end=me),
    fds=dict(proxy=$proxy_fds, generator=$gen_fds), opening_sent=opening, softnet=backlog,
    slab=rows, skmem_server=skmem,
    kernel_per_conn_b=dict(server=per(server_up), client=per(client_up), unsplit=per(unsplit_up),
        server_down=per(server_down), client_down=per(client_down), unsplit_down=per(unsplit_down),
        observer=per(observer["up"]), observer_down=per(observer["down"]),
        noise=per(noise_up), noise_down=per(noise_down),
        vmalloc=per((ma["VmallocUsed"] - mb["VmallocUsed"]) * 1024),
        skmem_server=per(skmem["held_bytes"]),
        sockstat_mem=per((ssa["mem"] - ssb["mem"]) * PAGE),
        slab_total_meminfo=per((ma["Slab"] - mb["Slab"]) * 1024)),
    burst=burst)
with open(out, "a") as f:
    f.write(json.dumps(line) + "\n")

print(f"kernel_mem: K={K}, {skmem['sockets']} established on the client port, "
      f"connections_open {line['connections_open']}, opened in {meta['opening_s']} s "
      f"(somaxconn/syn_backlog {meta['queues_in_effect']})")
print(f"proxy fds {line['fds']['proxy']}")
print(f"generator fds {line['fds']['generator']}")
print()
print(f"{'cache':<20} {'side':<8} {'objsize':>7} {'up objs':>8} {'/conn':>5} {'down objs':>9} {'/conn':>5} "
      f"{'up KiB':>8} {'pages KiB':>9} {'server B/conn':>13}  merged with")
for r in rows:
    sb = f"{share(r, 'up')[0] / K:.0f}" if r["side"] not in ("?", "noise", "observer") else "-"
    print(f"{r['cache']:<20} {r['side']:<8} {r['objsize']:>7} {r['up_objs']:>8} {r['up_objs']/K:>5.2f} "
          f"{r['down_objs']:>9} {r['down_objs']/K:>5.2f} {r['up_bytes']/1024:>8.0f} {r['up_page_bytes']/1024:>9.0f} "
          f"{sb:>13}  {' '.join(r['members'][:4])}")
print()
kp = line["kernel_per_conn_b"]
print(f"{'per connection, bytes':<44} {'up':>7} {'down':>7}")
print(f"{'server slab (both/2 + server rows)':<44} {kp['server']:>7} {kp['server_down']:>7}")
print(f"{'client slab (both/2 + client rows)':<44} {kp['client']:>7} {kp['client_down']:>7}")
print(f"{'not split (? rows, both ends)':<44} {kp['unsplit']:>7} {kp['unsplit_down']:>7}")
print(f"{'observer (/proc/PID/fd inodes, dentries)':<44} {kp['observer']:>7} {kp['observer_down']:>7}")
print(f"{'noise (other caches that moved)':<44} {kp['noise']:>7} {kp['noise_down']:>7}")
print(f"{'VmallocUsed delta (both fd tables)':<44} {kp['vmalloc']:>7}")
print(f"{'meminfo Slab delta (both ends, all caches)':<44} {kp['slab_total_meminfo']:>7}")
print(f"{'sockstat TCP mem delta (both ends)':<44} {kp['sockstat_mem']:>7}")
print(f"{'server skmem held (r+w+f+o, ss -tm)':<44} {kp['skmem_server']:>7}")
print(f"{'proxy RSS':<44} {line['rss_per_conn_b']:>7}")
print()
print(f"sockstat TCP before {ssb}, after {ssa}, end {sse}")
print(f"server skmem summed over {skmem['sockets']} sockets: " + ", ".join(f"{k}={skmem[k]}" for k in FIELDS + ['recvq', 'sendq']))
print(f"meminfo kB before {mb}, after {ma}")
print(f"proxy RSS kB before {rss_b}, after {rss_a}, end {rss_e}")
if burst:
    print(f"burst: {burst['records']} records; {burst['stalled']} stalled sockets hold Send-Q {burst['stalled_sendq_mean']} B, "
          f"wmem_queued {burst['stalled_w_mean']} B (max {burst['stalled_w_max']}), sndbuf {burst['stalled_tb_mean']} B each; "
          f"readers' peak over {burst['samples']} samples: wmem_queued sum {burst['peak']['readers_w_sum']} B, "
          f"one socket {burst['peak']['readers_w_max']} B, Send-Q sum {burst['peak']['readers_sendq_sum']} B, "
          f"sockstat mem {burst['peak']['sockstat_mem_pages']} pages")
    print(f"burst: the proxy wrote {burst['sent']['events_sent_total']} events, {burst['sent']['bytes_sent_total']} bytes "
          f"({burst['bytes_per_event']} B an event), {burst['sent']['demotions_total']} demotions")
print(f"softnet per CPU (netdev_max_backlog {backlog['netdev_max_backlog']}): opening {backlog['opening']}; "
      f"burst and close {backlog['burst_and_close']}")
print(f"opening: the proxy wrote {opening['bytes_sent_total']} bytes to {K} connections ({opening['bytes_sent_total'] / K:.0f} B each), "
      f"{opening['keepalives_sent_total']} keep-alives")
PY
