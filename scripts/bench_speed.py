"""The speed benchmarks of scripts/bench.sh: every row of issue 10's table,
each command timed side by side with its peer in one run, with the goal.

  bench_speed.py MMPCONV DIR RUNS [ROW...]

Runs in the numpy1 environment (numpy, h5py); mmappickle runs in the
reference environment ($MMP_PYENVS/reference). Each command is a whole
process: wall time (median of RUNS), CPU (user + system) over wall time as
cores busy, and peak RSS from wait4. Outputs are fsync'ed by every side
(mmpconv always syncs before renaming into place; its peers are given the
same `os.fsync`, and `cp` is followed by `sync FILE`). The page cache is
warm: every input is read once before the runs.
"""
import os
import statistics
import subprocess
import sys
import time

MMPCONV, DIR, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
ONLY = set(sys.argv[4:])
PY = sys.executable
REF = os.path.join(os.environ.get("MMP_PYENVS", os.path.expanduser("~/.cache/mmpbridge/pyenvs")), "reference", "bin", "python")
os.makedirs(DIR, exist_ok=True)


def p(name):
    return os.path.join(DIR, name)


def rm(*names):
    for n in names:
        try:
            os.remove(n)
        except FileNotFoundError:
            pass


def run(cmd, before=None):
    """One run of cmd under GNU time: (wall s, cores busy, peak RSS MiB).
    GNU time reports the command's own peak RSS (a child forked from this
    interpreter would start with its pages)."""
    if before:
        before()
    os.sync()
    tf = p("time.txt")
    t = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf, *cmd], stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t
    _, u, s_, m = open(tf).read().split()[-4:]  # GNU time's own wall has 10 ms steps
    return wall, (float(u) + float(s_)) / wall, int(m) / 1024


def measure(cmd, before=None):
    rs = [run(cmd, before) for _ in range(RUNS)]
    wall = statistics.median(r[0] for r in rs)
    cores = statistics.median(r[1] for r in rs)
    return wall, cores, max(r[2] for r in rs)


def warm(*paths):
    for path in paths:
        with open(path, "rb") as f:
            while f.read(8 << 20):
                pass


rows = []


def row(name, ours, peer_name, peer, goal, extra=""):
    ratio = ours[0] / peer[0]
    ok = ratio <= goal
    rows.append((name, ours, peer_name, peer, ratio, goal, ok, extra))
    print(f"  {name}: {ours[0]:.3f} s vs {peer_name} {peer[0]:.3f} s = {ratio:.3f}x (goal <= {goal}x) {extra}", flush=True)


def want(name):
    return not ONLY or name in ONLY


GEN = r"""
import sys, numpy as np
def signal(n, seed):
    rng = np.random.default_rng(seed)
    # smooth signal plus noise: compressible, but not trivially
    return (np.sin(np.arange(n, dtype=np.float32) / (50 + seed)) + rng.standard_normal(n, dtype=np.float32) * 0.01).astype(np.float32)
what, out = sys.argv[1], sys.argv[2:]
if what == "npz":
    n = int(out[2]) * 2**20 // 4 // 16
    arrs = {f"band{i:02d}": signal(n, i) for i in range(16)}
    np.savez(out[0], **arrs)
    np.savez_compressed(out[1], **arrs)
elif what == "h5":
    import h5py
    n = 256 * 2**20 // 4
    with h5py.File(out[0], "w") as f:
        f.create_dataset("gzip", data=signal(n, 1).reshape(-1, 4096), chunks=(64, 4096), compression="gzip", compression_opts=4, shuffle=True)
        f.create_dataset("contiguous", data=signal(n, 2).reshape(-1, 4096))
elif what == "npy":
    np.save(out[0], signal(2**28, 7))
"""


def gen(*args):
    """Makes inputs in a child process, so that this one stays small."""
    subprocess.run([PY, "-c", GEN, *args], check=True)


def make_npz(mib):
    stored, deflated = p(f"stored-{mib}.npz"), p(f"deflated-{mib}.npz")
    if not (os.path.exists(stored) and os.path.exists(deflated)):
        gen("npz", stored, deflated, str(mib))
    return stored, deflated


def cp_sync(src, dst):
    return ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", src, dst]


out_mmpkl, out_npz, out_npy, out_pkl = p("out.mmpkl"), p("out.npz"), p("out.npy"), p("out.pkl")
clean = lambda: rm(out_mmpkl, out_npz, out_npy, out_pkl)

# 1. stored npz -> mmpkl, 256 MiB and 1 GiB, against cp + fsync.
for mib in (256, 1024):
    if not want(f"stored{mib}"):
        continue
    stored, _ = make_npz(mib)
    warm(stored)
    cps = measure(cp_sync(stored, out_npz), clean)
    ours = measure([MMPCONV, "convert", "--quiet", stored, out_mmpkl], clean)
    row(f"stored npz -> mmpkl, {mib} MiB", ours, "cp + fsync", cps, 1.15, f"peak RSS {ours[2]:.0f} MiB (goal <= 64)")

# 2. deflated npz -> mmpkl, 256 MiB in 16 members, against numpy + mmappickle.
if want("deflated"):
    _, deflated = make_npz(256)
    warm(deflated)
    peer_py = f"""
import os, sys, numpy as np, mmappickle
d = np.load(sys.argv[1])
m = mmappickle.mmapdict(sys.argv[2])
for k in d.files:
    m[k] = d[k]
del m
fd = os.open(sys.argv[2], os.O_RDONLY); os.fsync(fd)
"""
    peer = measure([REF, "-c", peer_py, deflated, out_pkl], clean)
    ours = measure([MMPCONV, "convert", "--quiet", deflated, out_mmpkl], clean)
    row("deflated npz -> mmpkl, 256 MiB / 16 members", ours, "numpy + mmappickle", peer, 0.67, f"cores busy {ours[1]:.2f} (goal >= 1.7)")

# 3. ls, inspect --json, verify of a 10,000-key file, against mmappickle opening it.
if want("ls"):
    keys = p("keys10000.mmpkl")
    if not os.path.exists(keys):
        subprocess.run([PY, os.path.join(os.path.dirname(__file__), "bench_python.py"), "make-keys", "10000", keys], check=True, stdout=subprocess.DEVNULL)
    warm(keys)
    peer = measure([REF, "-c", "import sys, mmappickle; m = mmappickle.mmapdict(sys.argv[1], True); list(m.keys())", keys])
    for cmd, goal in ((["ls"], 0.05), (["inspect", "--json"], 0.05), (["verify"], 0.1)):
        ours = measure([MMPCONV, *cmd, keys])
        row(f"{' '.join(cmd)} of a 10,000-key file", ours, "mmappickle opening it", peer, goal)

# 4. HDF5 -> mmpkl: 256 MiB chunked gzip+shuffle + 256 MiB contiguous, against h5py + pickle.dump.
if want("hdf5"):
    h5 = p("mixed-512.h5")
    if not os.path.exists(h5):
        gen("h5", h5)
    warm(h5)
    peer_py = """
import os, sys, pickle, h5py
with h5py.File(sys.argv[1], "r") as f:
    d = {k: f[k][()] for k in f}
with open(sys.argv[2], "wb") as out:
    pickle.dump(d, out, 4)
    out.flush(); os.fsync(out.fileno())
"""
    peer = measure([PY, "-c", peer_py, h5, out_pkl], clean)
    ours = measure([MMPCONV, "convert", "--quiet", h5, out_mmpkl], clean)
    row("HDF5 -> mmpkl, 256 MiB gzip+shuffle + 256 MiB contiguous", ours, "h5py + pickle.dump", peer, 0.25, f"cores busy {ours[1]:.2f} (goal >= 1.5)")

# 5. mmpkl -> npz, 1 GiB (16 arrays): peak RSS; --compress: size against np.savez_compressed.
if want("tonpz"):
    stored, deflated = make_npz(1024)
    src = p("bands-1024.mmpkl")
    if not os.path.exists(src):
        subprocess.run([MMPCONV, "convert", "--quiet", stored, src], check=True)
    warm(src)
    cps = measure(cp_sync(src, out_npz), clean)
    ours = measure([MMPCONV, "convert", "--quiet", src, out_npz], clean)
    row("mmpkl -> npz, 1 GiB", ours, "cp + fsync", cps, 99, f"peak RSS {ours[2]:.0f} MiB (goal <= 64)")
    peer_py = """
import os, sys, numpy as np
d = np.load(sys.argv[1])
np.savez_compressed(sys.argv[2], **{k: d[k] for k in d.files})
fd = os.open(sys.argv[2], os.O_RDONLY); os.fsync(fd)
"""
    peer = measure([PY, "-c", peer_py, stored, out_npz], clean)
    ours = measure([MMPCONV, "convert", "--quiet", "--compress", "--force", src, out_npz], clean)
    ours_size = os.path.getsize(out_npz)  # the last run's output
    size_ratio = ours_size / os.path.getsize(deflated)
    rows.append(("mmpkl -> npz --compress, size", (ours_size / 1e6, 0, 0), "np.savez_compressed", (os.path.getsize(deflated) / 1e6, 0, 0), size_ratio, 1.02, size_ratio <= 1.02, "sizes in MB"))
    print(f"  --compress size: {ours_size/1e6:.1f} MB vs numpy {os.path.getsize(deflated)/1e6:.1f} MB = {size_ratio:.3f}x; "
          f"time {ours[0]:.2f} s vs numpy {peer[0]:.2f} s; peak RSS {ours[2]:.0f} MiB", flush=True)
    rows.append(("mmpkl -> npz --compress, time", ours, "np.savez_compressed", peer, ours[0] / peer[0], 1.0, ours[0] <= peer[0], f"peak RSS {ours[2]:.0f} MiB (goal <= 64)"))

# 6. Extract one 1 GiB array to .npy, against cp + fsync of the file.
if want("extract"):
    one = p("one-1024.mmpkl")
    if not os.path.exists(one):
        npy = p("one-1024.npy")
        gen("npy", npy)
        subprocess.run([MMPCONV, "convert", "--quiet", npy, one], check=True)
        rm(npy)
    warm(one)
    cps = measure(cp_sync(one, out_npz), clean)
    ours = measure([MMPCONV, "get", one, "one-1024", "-o", out_npy], clean)
    row("get -o: one 1 GiB array to .npy", ours, "cp + fsync", cps, 1.15)
    ours = measure([MMPCONV, "convert", "--quiet", "--key", "one-1024", one, out_npy], clean)
    row("convert --key: one 1 GiB array to .npy", ours, "cp + fsync", cps, 1.15)
# 7. Remote: listing and one array of the 10,000-key file and of the 1 GiB
#    file, served by `mmpconv serve` on loopback, against curl fetching the
#    same bytes (the whole small file; the array's byte range).
if want("remote"):
    import json, re, socket
    keys, one = p("keys10000.mmpkl"), p("one-1024.mmpkl")
    if os.path.exists(keys) and os.path.exists(one):
        with socket.socket() as so:
            so.bind(("127.0.0.1", 0))
            port = so.getsockname()[1]
        logf = open(p("serve.log"), "w")
        srv = subprocess.Popen([MMPCONV, "serve", DIR, "--addr", f"127.0.0.1:{port}"], stderr=logf)
        base = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)

        def served():
            lines = [l for l in open(p("serve.log")).read().splitlines() if '"/' in l]
            open(p("serve.log"), "w").close()
            logf.seek(0)
            return len(lines), sum(int(l.split()[-2]) for l in lines)

        def remote_row(name, cmd, curl):
            served()
            ours = measure(cmd, clean)
            reqs, moved = served()
            peer = measure(curl)
            row(name, ours, "curl, same bytes", peer, 99, f"{reqs // RUNS} requests, {moved // RUNS} bytes moved per run")

        # The same keys rewritten by the bridge (so with its index).
        indexed = p("keys10000-indexed.mmpkl")
        if not os.path.exists(indexed):
            subprocess.run([MMPCONV, "convert", "--quiet", keys, indexed], check=True)
        try:
            remote_row("ls of the 10,000-key file over HTTP (mmappickle-written: the walk)", [MMPCONV, "ls", base + "keys10000.mmpkl"],
                       ["curl", "-s", "-o", "/dev/null", base + "keys10000.mmpkl"])
            remote_row("ls of the same keys written by the bridge (its index)", [MMPCONV, "ls", base + "keys10000-indexed.mmpkl"],
                       ["curl", "-s", "-o", "/dev/null", base + "keys10000-indexed.mmpkl"])
            idx = json.loads(subprocess.run([MMPCONV, "inspect", "--json", one], capture_output=True, check=True).stdout)
            a = idx["keys"]["one-1024"]
            rng = f"{a['data_offset']}-{a['data_offset'] + a['nbytes'] - 1}"
            remote_row("get -o of the 1 GiB array over HTTP", [MMPCONV, "get", base + "one-1024.mmpkl", "one-1024", "-o", out_npy, "--quiet"],
                       ["curl", "-s", "-r", rng, "-o", out_npy, base + "one-1024.mmpkl"])
            remote_row("ls of the 1 GiB file over HTTP", [MMPCONV, "ls", base + "one-1024.mmpkl"],
                       ["curl", "-s", "-r", "0-4095", "-o", "/dev/null", base + "one-1024.mmpkl"])
        finally:
            srv.terminate()
            srv.wait()
            logf.close()
# 7. diff of 1 GiB pairs: peak RSS (constant memory), time against cmp and numpy.
if want("diff"):
    stored, _ = make_npz(1024)
    src = p("bands-1024.mmpkl")
    if not os.path.exists(src):
        subprocess.run([MMPCONV, "convert", "--quiet", stored, src], check=True)
    copy = p("bands-1024-copy.mmpkl")
    if not os.path.exists(copy):
        subprocess.run([MMPCONV, "convert", "--quiet", "--align", "4096", src, copy], check=True)
    same = p("bands-1024-bytes.mmpkl")
    if not os.path.exists(same):
        subprocess.run(["cp", src, same], check=True)
    warm(src, copy, same, stored)
    peer = measure(["cmp", src, same])
    ours = measure([MMPCONV, "diff", "--quiet", src, copy])
    row("diff of two 1 GiB mmpkl files (16 arrays)", ours, "cmp of byte-identical copies", peer, 99, f"peak RSS {ours[2]:.0f} MiB (goal <= 64), cores busy {ours[1]:.2f}")
    peer_py = """
import sys, numpy as np, pickle
a = np.load(sys.argv[1], mmap_mode="r")
with open(sys.argv[2], "rb") as f:
    b = pickle.load(f)
assert all(np.array_equal(a[k], b[k]) for k in a.files)
"""
    peer = measure([PY, "-c", peer_py, stored, src])
    ours = measure([MMPCONV, "diff", "--quiet", "--tmpdir", DIR, stored, src])
    row("diff of a 1 GiB npz with its mmpkl", ours, "np.load + pickle.load + array_equal", peer, 99, f"peak RSS {ours[2]:.0f} MiB (goal <= 64)")

clean()

print()
print(f"Speed, {os.cpu_count()} cores, median of {RUNS} runs, whole processes, outputs fsync'ed")
print(f"| work | mmpconv | peer | peer | ratio | goal | |")
print(f"|---|---|---|---|---|---|---|")
for name, ours, peer_name, peer, ratio, goal, ok, extra in rows:
    unit = "" if "size" in name else " s"
    goal_s = "-" if goal >= 99 else f"<= {goal}x"
    print(f"| {name} | {ours[0]:.3f}{unit} | {peer_name} | {peer[0]:.3f}{unit} | {ratio:.3f}x | {goal_s} | {'ok' if ok else 'MISSED'} {extra} |")
