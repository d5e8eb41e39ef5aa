"""Webhooks as a client's server meets them, against local servers this script starts (the debug
`local-server`), with every delivery verified by the Standard Webhooks specification's own
Python library (`standardwebhooks`), not by our code.

1. A server with `WEBHOOK_ALLOW_PRIVATE=true` and a one-second retry schedule, and receivers on
   loopback: one that answers 204, one that answers 500 twice then 200, one that hangs past the
   timeout once, one that answers 410 Gone, one that redirects. A job, a batch, a failed and a
   cancelled job, a ping, a secret rotation and a resend go through them; the deliveries each
   receiver saw, their ids, signatures and bodies, and the deliveries' records are checked.
2. The server killed with SIGKILL while a delivery waits for its retry, and started again on the
   same data directory: the delivery arrives, with its `webhook-id`.
3. A server without `WEBHOOK_ALLOW_PRIVATE`: every internal URL form is refused at registration,
   and a name that resolves to loopback is refused at delivery, without a connection.

Usage: python webhook_journey.py LOCAL_SERVER PHOTOS_DIR WORK_DIR
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

USER = "alice-key-webhooks-0123456789"
ADMIN = "admin-key-webhooks-0123456789"
DEADLINE = 90
TIMEOUT_SECONDS = 2
# What the receivers found wrong (a handler thread cannot end the script itself).
FAILURES = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receivers:
    """HTTP receivers on one loopback port, one per path; each delivery is verified with the
    secrets the path's endpoint signs with and recorded."""

    def __init__(self):
        self.secrets = {}  # path -> [whsec_...]
        self.seen = []  # dicts: path, id, type, body, verified_with
        self.calls = {}  # path -> attempts so far
        self.late_ok = threading.Event()
        self.lock = threading.Lock()
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = receivers.handle(self.path, dict(self.headers), body)
                if status == "hang":
                    time.sleep(TIMEOUT_SECONDS * 2)
                    return
                self.send_response(status)
                if status == 307:
                    self.send_header("location", "/ok")
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def handle(self, path, headers, body):
        with self.lock:
            n = self.calls.get(path, 0) + 1
            self.calls[path] = n
            verified = []
            for secret in self.secrets.get(path, []):
                try:
                    event = Webhook(secret).verify(body, headers)
                    verified.append(secret)
                except WebhookVerificationError:
                    pass
            if not verified:
                FAILURES.append(f"{path}: a delivery no secret of its endpoint verifies: {headers}")
                return 400
            self.seen.append(
                {"path": path, "id": headers["webhook-id"], "type": event["type"], "body": event,
                 "verified_with": verified, "attempt": n, "at": time.monotonic(),
                 "signature": headers["webhook-signature"], "timestamp": headers["webhook-timestamp"]}
            )
        if path == "/flaky":
            return 500 if n <= 2 else 200
        if path == "/hang":
            return "hang" if n == 1 else 200
        if path == "/gone":
            return 410
        if path == "/redirect":
            return 307
        if path == "/late":
            return 200 if self.late_ok.is_set() else 503
        return 204

    def at(self, path, kind=None):
        with self.lock:
            return [s for s in self.seen if s["path"] == path and (kind is None or s["type"] == kind)]


class Server:
    """A local server process on a data directory, started and stopped (or killed) at will."""

    def __init__(self, binary, data_dir, **settings):
        self.binary = binary
        self.data_dir = data_dir
        self.settings = settings
        self.process = None
        self.base = None
        self.log = pathlib.Path(data_dir).with_suffix(".log")

    def start(self):
        port = free_port()
        env = dict(os.environ, PORT=str(port), DATA_DIR=str(self.data_dir), RUST_LOG="warn",
                   API_KEYS=f"alice:{USER}", ADMIN_API_KEY=ADMIN, **self.settings)
        self.process = subprocess.Popen([self.binary], env=env, stdout=open(self.log, "a"),
                                        stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit(f"the local server did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def call(self, method, path, key=USER, **kwargs):
        return httpx.request(method, f"{self.base}{path}", headers={"authorization": f"Bearer {key}"},
                             timeout=30, **kwargs)

    def ok(self, method, path, **kwargs):
        answer = self.call(method, path, **kwargs)
        if not answer.is_success:
            raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None


def until(what, check, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if FAILURES:
            raise SystemExit("; ".join(FAILURES))
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def register(server, receivers, path, **body):
    endpoint = server.ok("POST", "/api/v1/webhooks/endpoints", json={"url": receivers.url(path), **body})
    if not endpoint["secret"].startswith("whsec_"):
        raise SystemExit(f"not a Standard Webhooks secret: {endpoint['secret']}")
    receivers.secrets[path] = [endpoint["secret"]]
    return endpoint


def upload(server, photo, name):
    files = {"file": (name, photo.read_bytes(), "image/jpeg" if name.endswith(".jpg") else "image/png")}
    return server.ok("POST", "/api/v1/upload/image", files=files)


def job_of(server, photo, name):
    uploaded = upload(server, photo, name)
    return server.ok("POST", "/api/v1/jobs", json={"file_id": uploaded["file_id"]})["job_id"]


def ended(server, job_id):
    job = server.ok("GET", f"/api/v1/jobs/{job_id}")
    return job if job["status"] in ("completed", "failed", "cancelled") else None


def deliveries(server, endpoint):
    return server.ok("GET", f"/api/v1/webhooks/endpoints/{endpoint['endpoint_id']}/deliveries")["deliveries"]


def flow(binary, photos, work, receivers):
    server = Server(binary, work / "flow", WEBHOOK_ALLOW_PRIVATE="true",
                    WEBHOOK_RETRY_SCHEDULE_SECONDS="1,1,1,1,1,1,1",
                    WEBHOOK_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS)).start()
    try:
        ok = register(server, receivers, "/ok", description="every event")
        flaky = register(server, receivers, "/flaky", events=["job.completed"])
        hang = register(server, receivers, "/hang", events=["job.completed"])
        gone = register(server, receivers, "/gone", events=["job.completed"])
        redirect = register(server, receivers, "/redirect", events=["job.completed"])
        listed = server.ok("GET", "/api/v1/webhooks/endpoints")["endpoints"]
        if len(listed) != 5 or any("secret" in e for e in listed):
            raise SystemExit(f"the listing shows {len(listed)} endpoints or a secret: {listed}")

        job_id = job_of(server, photos / "rocket.jpg", "rocket.jpg")
        job = until("the job to end", lambda: ended(server, job_id))
        if job["status"] != "completed":
            raise SystemExit(f"the job did not complete: {job}")

        # 204 at once.
        (done,) = until("job.completed at /ok", lambda: receivers.at("/ok", "job.completed"))
        data = done["body"]["data"]
        if data["job_id"] != job_id or data["status"] != "completed" or not data["result"]:
            raise SystemExit(f"job.completed carries another job: {data}")
        glb = httpx.get(data["links"]["downloads"]["glb"], headers={"authorization": f"Bearer {USER}"},
                        follow_redirects=True, timeout=30)
        if glb.status_code != 200 or glb.content[:4] != b"glTF":
            raise SystemExit(f"the payload's download link gave {glb.status_code}")
        print(f"job.completed at /ok: webhook-id {done['id']}, verified; its GLB link gave {len(glb.content)} bytes")

        # 500, 500, 200: one event, three attempts, one webhook-id.
        attempts = until("three attempts at /flaky", lambda: len(receivers.at("/flaky")) >= 3 and receivers.at("/flaky"))
        ids = {a["id"] for a in attempts}
        if len(attempts) != 3 or len(ids) != 1:
            raise SystemExit(f"/flaky saw {len(attempts)} attempts with ids {ids}")
        record = until("the /flaky delivery recorded delivered",
                       lambda: [d for d in deliveries(server, flaky) if d["status"] == "delivered"])[0]
        if (record["attempts"], record["last_status_code"], record["event_id"]) != (3, 200, ids.pop()):
            raise SystemExit(f"the /flaky delivery's record: {record}")
        start = attempts[0]["at"]
        timeline = ", ".join(f"+{a['at'] - start:.2f} s {s}" for a, s in zip(attempts, (500, 500, 200)))
        print(f"/flaky: 3 attempts ({timeline}), one webhook-id {record['event_id']}, every signature verified")
        print(f"  e.g. webhook-id: {attempts[2]['id']}; webhook-timestamp: {attempts[2]['timestamp']}; "
              f"webhook-signature: {attempts[2]['signature']}")

        # Hangs past the timeout once, then answers.
        hung = until("the /hang delivery delivered",
                     lambda: [d for d in deliveries(server, hang) if d["status"] == "delivered"])[0]
        if hung["attempts"] != 2 or len({a["id"] for a in receivers.at("/hang")}) != 1:
            raise SystemExit(f"the /hang delivery: {hung}")
        print(f"/hang: timed out after {TIMEOUT_SECONDS} s, delivered on attempt {hung['attempts']}")

        # 410 Gone: the delivery fails and the endpoint is disabled at once.
        shown = until("the /gone endpoint disabled",
                      lambda: (e := server.ok("GET", f"/api/v1/webhooks/endpoints/{gone['endpoint_id']}"))["state"] == "disabled" and e)
        gone_deliveries = deliveries(server, gone)
        if shown["disabled_reason"] != "gone" or [d["status"] for d in gone_deliveries] != ["failed"] \
                or len(receivers.at("/gone")) != 1:
            raise SystemExit(f"/gone: {shown} {gone_deliveries}")
        print("/gone: one attempt, 410, endpoint disabled (reason gone)")

        # A redirect (to /ok) is not followed: it is a failed attempt, retried, and /ok still has
        # the event once (its own delivery).
        until("two attempts at /redirect", lambda: len(receivers.at("/redirect")) >= 2)
        if len(receivers.at("/ok", "job.completed")) != 1:
            raise SystemExit("a redirect was followed")
        last = deliveries(server, redirect)[0]
        if last["last_status_code"] != 307:
            raise SystemExit(f"the redirect's delivery: {last}")
        server.ok("DELETE", f"/api/v1/webhooks/endpoints/{redirect['endpoint_id']}")
        print("/redirect: 307 recorded and retried, never followed")

        # A batch of two: each job, then batch.completed with both.
        form = [("files", (n, (photos / n).read_bytes(), m)) for n, m in
                [("horse.png", "image/png"), ("coffee.webp", "image/webp")]]
        batch = server.ok("POST", "/api/v1/upload", files=form)
        batch_events = until("batch.completed at /ok", lambda: receivers.at("/ok", "batch.completed"))
        time.sleep(1)
        batch_events = receivers.at("/ok", "batch.completed")
        if len(batch_events) != 1:
            raise SystemExit(f"batch.completed came {len(batch_events)} times: {[(e['id'], [(j['job_id'], j['version'], j['status']) for j in e['body']['data']['jobs']]) for e in batch_events]}")
        batch_event = batch_events[0]
        batch_data = batch_event["body"]["data"]
        if batch_data["batch_id"] != batch["batch_id"] or len(batch_data["jobs"]) != 2 \
                or batch_data["counts"] != {"completed": 2}:
            raise SystemExit(f"batch.completed: {batch_data}")
        print(f"batch.completed: {batch_data['counts']} for batch {batch_data['batch_id']}")

        # A failed job (bytes that are no image) and a cancelled one (cancelled while waiting).
        garbage = b"this is no image, whatever it claims" * 20
        for generate_then in ("fail", "cancel"):
            presigned = server.ok("POST", "/api/v1/uploads/presign", json={
                "files": [{"filename": "fake.jpg", "content_type": "image/jpeg", "size": len(garbage)}],
                "generate": {}})["files"][0]
            if generate_then == "fail":
                upload_grant = presigned["upload"]
                httpx.put(upload_grant["url"], content=garbage, headers=upload_grant["headers"], timeout=30)
            else:
                server.ok("DELETE", f"/api/v1/jobs/{presigned['job_id']}")
        failed = until("job.failed at /ok", lambda: receivers.at("/ok", "job.failed"))[0]["body"]["data"]
        cancelled = until("job.cancelled at /ok", lambda: receivers.at("/ok", "job.cancelled"))[0]["body"]["data"]
        if not failed["error"]["code"] or cancelled["status"] != "cancelled":
            raise SystemExit(f"job.failed {failed} / job.cancelled {cancelled}")
        print(f"job.failed ({failed['error']['code']}) and job.cancelled delivered")

        # A ping; a rotation: for a day both secrets sign, each verifies alone.
        server.ok("POST", f"/api/v1/webhooks/endpoints/{ok['endpoint_id']}/test")
        until("ping at /ok", lambda: receivers.at("/ok", "ping"))
        rotated = server.ok("POST", f"/api/v1/webhooks/endpoints/{ok['endpoint_id']}/rotate-secret")
        if rotated["secret"] == ok["secret"] or not rotated["previous_secret_expires_at"]:
            raise SystemExit(f"rotation: {rotated}")
        receivers.secrets["/ok"] = [ok["secret"], rotated["secret"]]
        server.ok("POST", f"/api/v1/webhooks/endpoints/{ok['endpoint_id']}/test")
        second = until("a second ping", lambda: len(receivers.at("/ok", "ping")) >= 2 and receivers.at("/ok", "ping"))[1]
        if sorted(second["verified_with"]) != sorted([ok["secret"], rotated["secret"]]):
            raise SystemExit(f"after rotation the ping verified with {len(second['verified_with'])} secret(s)")
        print("rotation: the next ping verified with the old secret and with the new one, each alone")

        # A resend: the same webhook-id again.
        delivered = [d for d in deliveries(server, ok) if d["event_type"] == "job.completed"][0]
        def times_seen():
            return sum(1 for s in receivers.at("/ok") if s["id"] == delivered["event_id"])

        before = times_seen()
        server.ok("POST", f"/api/v1/webhooks/deliveries/{delivered['delivery_id']}/retry")
        until("the resend", lambda: times_seen() == before + 1)
        print(f"resend: the same webhook-id {delivered['event_id']}")

        # Owners see only their own; the admin sees all; bad ids and bodies are refused.
        stranger = server.call("GET", f"/api/v1/webhooks/endpoints/{ok['endpoint_id']}", key="nobody")
        admin_list = server.ok("GET", "/api/v1/webhooks/endpoints", key=ADMIN)["endpoints"]
        checks = [
            (stranger.status_code, 401),
            (len(admin_list), 4),
            (server.call("GET", "/api/v1/webhooks/endpoints/nope").json()["error_code"], "INVALID_ID"),
            (server.call("POST", "/api/v1/webhooks/deliveries/00000000-0000-4000-8000-000000000000/retry").status_code, 404),
            (server.call("POST", "/api/v1/webhooks/endpoints", json={"url": receivers.url("/x"), "events": ["job.exploded"]}).status_code, 422),
            (server.call("POST", "/api/v1/webhooks/endpoints", json={"url": "https://example.com/" + "a" * 2100}).status_code, 422),
        ]
        for got, wanted in checks:
            if got != wanted:
                raise SystemExit(f"expected {wanted}, got {got}")
    finally:
        server.stop()


def killed(binary, work, receivers):
    server = Server(binary, work / "killed", WEBHOOK_ALLOW_PRIVATE="true",
                    WEBHOOK_RETRY_SCHEDULE_SECONDS="2,2,2,2,2,2,2",
                    WEBHOOK_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS)).start()
    try:
        late = register(server, receivers, "/late")
        server.ok("POST", f"/api/v1/webhooks/endpoints/{late['endpoint_id']}/test")
        first = until("the first attempt at /late", lambda: receivers.at("/late"))[0]
        time.sleep(0.3)  # the attempt's record and its retry are written
        server.kill()
        receivers.late_ok.set()
        print(f"/late answered 503; the server was killed (SIGKILL) with the delivery pending")
        time.sleep(3)  # the retry falls due while nothing runs
        if len(receivers.at("/late")) != 1:
            raise SystemExit("a delivery arrived while the server was down")
        server.start()
        until("the delivery after the restart", lambda: len(receivers.at("/late")) >= 2)
        again = receivers.at("/late")[-1]
        if again["id"] != first["id"]:
            raise SystemExit(f"after the restart another webhook-id: {again['id']} != {first['id']}")
        record = until("the delivery recorded", lambda: [d for d in deliveries(server, late) if d["status"] == "delivered"])[0]
        print(f"restarted: delivered on attempt {record['attempts']} with the same webhook-id {again['id']}")
    finally:
        server.stop()


def ssrf(binary, work):
    server = Server(binary, work / "ssrf", WEBHOOK_RETRY_SCHEDULE_SECONDS="60").start()
    try:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.1)
        port = listener.getsockname()[1]
        refused = [
            f"http://example.com/hook",
            f"https://127.0.0.1:{port}/", f"https://127.1:{port}/", f"https://0x7f000001:{port}/",
            f"https://2130706433:{port}/", f"https://0177.0.0.1:{port}/", f"https://0.0.0.0:{port}/",
            f"https://[::1]:{port}/", f"https://[::ffff:127.0.0.1]:{port}/", f"https://[::ffff:7f00:1]:{port}/",
            "https://10.0.0.1/", "https://172.16.5.4/", "https://192.168.1.1/", "https://100.64.0.1/",
            "https://169.254.169.254/latest/meta-data/", "https://[fd00:ec2::254]/", "https://[fe80::1]/",
            "https://[fc00::1]/", "https://224.0.0.1/", "https://255.255.255.255/", "https://[ff02::1]/",
            "https://[64:ff9b::a9fe:a9fe]/", "https://[2002:7f00:1::]/", "https://[::]/",
            "https://user:pass@example.com/", "ftp://example.com/", "file:///etc/passwd", "not a url",
        ]
        for url in refused:
            answer = server.call("POST", "/api/v1/webhooks/endpoints", json={"url": url})
            body = answer.json()
            if answer.status_code != 422 or body.get("error_code") != "VALIDATION_ERROR":
                raise SystemExit(f"{url} was not refused: {answer.status_code} {body}")
        print(f"{len(refused)} internal, non-https or malformed URLs refused at registration (422 VALIDATION_ERROR)")
        # A name is resolved at delivery: localhost is loopback, so no connection is made.
        endpoint = server.ok("POST", "/api/v1/webhooks/endpoints", json={"url": f"https://localhost:{port}/hook"})
        server.ok("POST", f"/api/v1/webhooks/endpoints/{endpoint['endpoint_id']}/test")
        record = until("the attempt to localhost", lambda: [d for d in deliveries(server, endpoint) if d["attempts"] >= 1])[0]
        try:
            listener.accept()
            raise SystemExit("the delivery connected to loopback")
        except socket.timeout:
            pass
        if record["last_status_code"] is not None or "public" not in (record["last_error"] or ""):
            raise SystemExit(f"the attempt to localhost: {record}")
        print(f"https://localhost:{port}/hook: accepted, then refused at delivery without a connection ({record['last_error']})")
    finally:
        server.stop()


def main(binary, photos, work):
    work = pathlib.Path(work)
    photos = pathlib.Path(photos)
    receivers = Receivers()
    flow(binary, photos, work, receivers)
    killed(binary, work, receivers)
    ssrf(binary, work)
    if FAILURES:
        raise SystemExit("; ".join(FAILURES))
    verified = len(receivers.seen)
    print(f"webhooks: {verified} deliveries received, every one verified by standardwebhooks")


if __name__ == "__main__":
    try:
        main(*sys.argv[1:4])
    except SystemExit as failure:
        if failure.code not in (None, 0):
            for log in pathlib.Path(sys.argv[3]).glob("*.log"):
                print(f"--- {log.name}\n{log.read_text()[-4000:]}", file=sys.stderr)
        raise
