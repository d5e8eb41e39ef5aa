"""Photos to models in every format through a running local server, as a client would: upload,
a job asking for `glb`, `usdz` and `obj` at creation, then each of the four formats downloaded
(`stl` made on its first request: 202 and `Retry-After` until it is). The files land in OUT_DIR
as `<photo stem>.<extension>` for the format checkers; their sizes are printed.

Usage: python journey.py BASE_URL API_KEY OUT_DIR PHOTO [PHOTO ...] (standard library only).
"""

import json
import pathlib
import sys
import time
import urllib.error
import urllib.request
import uuid

DEADLINE_SECONDS = 120
EXTENSIONS = {"glb": "glb", "usdz": "usdz", "obj": "obj.zip", "stl": "stl"}


def call(base, key, method, path, body=None, content_type="application/json"):
    """(status, headers, parsed JSON) of an API call."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, answer.headers, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


def upload(base, key, photo):
    boundary = uuid.uuid4().hex
    kind = "image/png" if photo.suffix == ".png" else "image/jpeg"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{photo.name}\"\r\n"
        f"Content-Type: {kind}\r\n\r\n"
    ).encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, _, answer = call(
        base, key, "POST", "/api/v1/upload/image", body, f"multipart/form-data; boundary={boundary}"
    )
    assert status in (200, 201), f"upload of {photo.name}: {status} {answer}"
    return answer["file_id"]


def wait_for_job(base, key, job_id):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        status, _, job = call(base, key, "GET", f"/api/v1/jobs/{job_id}")
        assert status == 200, job
        if job["status"] in ("completed", "failed", "cancelled"):
            assert job["status"] == "completed", job
            return job
        assert time.monotonic() < deadline, f"job {job_id} never finished: {job}"
        time.sleep(0.2)


def download(base, key, job_id, fmt):
    """(link, how many 202s came first)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    waits = 0
    while True:
        status, headers, answer = call(
            base, key, "GET", f"/api/v1/download/{job_id}?format={fmt}&redirect=false"
        )
        if status == 200:
            return answer, waits
        assert status == 202, f"{fmt}: {status} {answer}"
        assert answer["status"] == "converting" and answer["format"] == fmt, answer
        retry_after = int(headers["Retry-After"])
        assert retry_after == answer["retry_after"], answer
        waits += 1
        assert time.monotonic() < deadline, f"{fmt} was never made"
        time.sleep(min(retry_after, 1))


def main(base, key, out_dir, *photos):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for photo in map(pathlib.Path, photos):
        file_id = upload(base, key, photo)
        status, _, created = call(
            base, key, "POST", "/api/v1/jobs",
            {"file_id": file_id, "options": {"formats": ["glb", "usdz", "obj"]}},
        )
        assert status == 202, created
        job = wait_for_job(base, key, created["job_id"])
        made = {f["format"]: f["status"] for f in job["result"]["formats"]}
        assert made == {"glb": "ready", "usdz": "ready", "obj": "ready", "stl": "on_request"}, made
        sizes = []
        for fmt, extension in EXTENSIONS.items():
            link, waits = download(base, key, job["job_id"], fmt)
            assert (waits > 0) == (fmt == "stl"), f"{fmt}: {waits} waits"
            with urllib.request.urlopen(link["url"]) as answer:
                data = answer.read()
            assert len(data) == link["size"], (fmt, len(data), link["size"])
            assert link["filename"] == f"{photo.stem}.{extension}", link
            (out / f"{photo.stem}.{extension}").write_bytes(data)
            sizes.append(f"{fmt} {len(data):,} B" + (f" (after {waits} x 202)" if waits else ""))
        print(f"{photo.name}: " + ", ".join(sizes))


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
