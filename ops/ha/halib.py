"""What the cluster scripts share: where the cluster is and one HTTP helper.

Ports follow ops/ha/cluster.sh: HAProxy's write port is HA_PG_BASE (25430),
its read port HA_PG_BASE + 10, and node n's Patroni REST API HA_REST_BASE + n."""
import json, os, subprocess, sys, time, urllib.error, urllib.request

HA_DIR = os.environ.get("HA_DIR", "/tmp/xuefen-ha")
PG_BASE = int(os.environ.get("HA_PG_BASE", "25430"))
REST_BASE = int(os.environ.get("HA_REST_BASE", "28000"))
URL = f"postgres://postgres@127.0.0.1:{PG_BASE}/xuefen"
READ_URL = f"postgres://postgres@127.0.0.1:{PG_BASE + 10}/xuefen"


def req(method, url, token, body=None, timeout=10):
    """One JSON request: (status, body); status 0 when no answer came."""
    data = None if body is None else json.dumps(body).encode()
    r = urllib.request.Request(url, data=data, method=method,
                               headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except Exception:
        return 0, None


def get_text(url, timeout=10):
    """One unauthenticated GET of a text resource (e.g. the log's `/checkpoint`): (status, text)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, None
    except Exception:
        return 0, None


def log_size(note):
    """The size of a checkpoint note (docs/ledger-format.md section 7: origin, size, root)."""
    return int(note.split("\n")[1])


def start_serve(bin, port, work, i, env):
    """Starts `xuefen serve` on 127.0.0.1:port with its output in work/serve{i}.*
    and waits (at most 30 s) until it listens."""
    proc = subprocess.Popen([bin, "serve", "--listen", f"127.0.0.1:{port}"],
                            stdout=open(f"{work}/serve{i}.out", "w"),
                            stderr=open(f"{work}/serve{i}.err", "w"), env=env)
    for _ in range(150):  # 30 s
        if "listening on" in open(f"{work}/serve{i}.out").read():
            return proc
        time.sleep(0.2)
    sys.exit(f"instance {i} did not start; see {work}")
