"""A photo to a model through the Python client generated from the served OpenAPI document
(`openapi-python-client`, run by scripts/clients.sh), against a running local server. Every
call goes through the client's typed functions and models; the signed PUT and the SSE stream are
not API operations and use httpx directly. Each stream frame (a single job, a batch, a failure,
a timeout) is validated against the document's `StreamEvent` schema with jsonschema.

Usage: python python_journey.py BASE_URL API_KEY PHOTOS_DIR (the generated package
`image2model_client` on PYTHONPATH).
"""

import collections
import json
import sys
import time

import httpx
import jsonschema
import referencing
from image2model_client import AuthenticatedClient
from image2model_client.api.downloads import download
from image2model_client.api.jobs import available_models, create_job, get_job
from image2model_client.api.status import task_status, task_stream
from image2model_client.api.uploads import get_file, presign_uploads, upload_batch
from image2model_client.models import (
    BatchForm,
    BatchUploaded,
    CreatedJob,
    CreateJobRequest,
    DownloadLink,
    FileView,
    GenerateSpec,
    ImageType,
    LinkedJobView,
    LinkedTaskStatus,
    PresignedFiles,
    PresignedRequest,
    PresignFile,
    PresignRequest,
)
from image2model_client.types import File

DEADLINE_SECONDS = 120
TERMINAL = {"task_completed", "task_failed", "timeout", "shutdown"}


def expect(value, kind, what):
    """`value` must be the typed model `kind` (else the client met an error or an untyped body)."""
    if not isinstance(value, kind):
        raise SystemExit(f"{what}: expected {kind.__name__}, got {value!r}")
    return value


class Frames:
    """Reads SSE streams and validates each frame against the document's `StreamEvent`: the
    frame's fields (`event`, `data`, `id`, `retry`), then its decoded `data` against the
    `contentSchema` the document gives for that event."""

    def __init__(self, document):
        resource = referencing.Resource.from_contents(
            document, default_specification=referencing.jsonschema.DRAFT202012
        )
        self.registry = referencing.Registry().with_resource("urn:image2model", resource)
        self.frame = self.validator("#/components/schemas/StreamEvent")
        self.data = {}
        for branch in document["components"]["schemas"]["StreamEvent"]["oneOf"]:
            (name,) = branch["properties"]["event"]["enum"]
            self.data[name] = self.validator(branch["properties"]["data"]["contentSchema"]["$ref"])
        self.counts = collections.Counter()

    def validator(self, pointer):
        schema = {"$ref": f"urn:image2model{pointer}"}
        return jsonschema.Draft202012Validator(schema, registry=self.registry)

    def check(self, frame, what):
        errors = list(self.frame.iter_errors(frame))
        if not errors:
            errors = list(self.data[frame["event"]].iter_errors(json.loads(frame["data"])))
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            raise SystemExit(f"{what}: frame {frame} breaks StreamEvent: {best.message}")

    def read(self, lines, what):
        """The frames of an event stream's `lines` up to its last event, each validated, with
        their data decoded."""
        frames = []
        started = time.monotonic()
        frame = {}
        for line in lines:
            if time.monotonic() - started > DEADLINE_SECONDS:
                raise SystemExit(f"{what}: the stream did not end in {DEADLINE_SECONDS} s")
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field in ("event", "id"):
                frame[field] = value
            elif field == "data":
                frame["data"] = f"{frame['data']}\n{value}" if "data" in frame else value
            elif field == "retry":
                frame["retry"] = int(value)
            elif line == "" and frame:
                self.check(frame, what)
                self.counts[frame["event"]] += 1
                frames.append({"event": frame["event"], "data": json.loads(frame["data"])})
                if frame["event"] in TERMINAL:
                    break
                frame = {}
        return frames

    def follow(self, url, what):
        """Every frame of the stream at `url` until its last, each validated."""
        with httpx.stream("GET", url, timeout=DEADLINE_SECONDS) as response:
            if response.status_code != 200:
                raise SystemExit(f"{what}: stream answered {response.status_code}")
            frames = self.read(response.iter_lines(), what)
        if not frames or frames[-1]["event"] not in TERMINAL:
            raise SystemExit(f"{what}: the stream ended without a last event: {frames}")
        print(f"{what}: {len(frames)} frames valid, " + " -> ".join(f["event"] for f in frames))
        return frames


def put_signed(upload, body):
    """Sends `body` to a signed PUT with exactly its headers."""
    upload = expect(upload, PresignedRequest, "upload")
    answer = httpx.put(upload.url, content=body, headers=upload.headers.additional_properties)
    if answer.status_code not in (200, 201, 204):
        raise SystemExit(f"signed PUT answered {answer.status_code}: {answer.text}")


def main(base_url, key, photos):
    client = AuthenticatedClient(base_url=base_url, token=key, timeout=httpx.Timeout(60))
    document = httpx.get(f"{base_url}/api/v1/openapi.json").json()
    frames = Frames(document)

    models = available_models.sync(client=client)
    print("models:", ", ".join(f"{m.name}{' (default)' if m.default else ''}" for m in models))

    # One photo: presign -> PUT -> job -> stream -> download.
    photo = (photos / "rocket.jpg").read_bytes()
    announced = presign_uploads.sync(
        client=client,
        body=PresignRequest(
            files=[PresignFile(filename="rocket.jpg", content_type=ImageType.IMAGEJPEG, size=len(photo))]
        ),
    )
    announced = expect(announced, PresignedFiles, "presign")
    file_id = announced.files[0].file_id
    put_signed(announced.files[0].upload, photo)
    print(f"uploaded rocket.jpg as file {file_id}")
    job = expect(create_job.sync(client=client, body=CreateJobRequest(file_id=file_id)), CreatedJob, "job")
    print(f"job {job.job_id}: {job.status.value}, model {job.model_type.value}")
    last = frames.follow(job.events_url, "single job")[-1]
    if last["event"] != "task_completed":
        raise SystemExit(f"the job did not complete: {last}")
    shown = expect(get_job.sync(job.job_id, client=client), LinkedJobView, "get job")
    status = expect(task_status.sync(job.job_id, client=client), LinkedTaskStatus, "task status")
    if status.result is None or status.completed_files != 1:
        raise SystemExit(f"the status does not show the model: {status}")
    # The stream through the generated client too (with the key; it ends at the terminal event).
    streamed = task_stream.sync_detailed(job.job_id, client=client, timeout=30.0)
    if streamed.status_code != 200:
        raise SystemExit(f"the generated client's stream answered {streamed.status_code}")
    replayed = frames.read(streamed.content.decode().splitlines(), "stream through the client")
    print(f"stream through the generated client: {len(replayed)} frame(s), last {replayed[-1]['event']}")
    link = expect(download.sync(job.job_id, client=client, redirect=False), DownloadLink, "download")
    model = httpx.get(link.url)
    if model.status_code != 200 or model.content[:4] != b"glTF":
        raise SystemExit(f"the model is no GLB: {model.status_code} {model.content[:16]!r}")
    print(f"job {shown.job_id}: {shown.status.value}; {link.filename}: {len(model.content)} bytes of glTF binary")

    # A batch of two photos.
    form = BatchForm(
        files=[
            File(payload=(photos / name).read_bytes(), file_name=name, mime_type=mime)
            for name, mime in [("horse.png", "image/png"), ("coffee.webp", "image/webp")]
        ]
    )
    batch = expect(upload_batch.sync(client=client, body=form), BatchUploaded, "batch upload")
    last = frames.follow(batch.events_url, f"batch {batch.batch_id}")[-1]
    if last["event"] != "task_completed" or last["data"]["summary"]["successful_files"] != 2:
        raise SystemExit(f"the batch did not complete both files: {last}")

    # A failure: the job waits for an upload whose bytes are no image; the file is rejected and
    # the job fails. Before the bytes come, a short stream ends by its timeout.
    garbage = b"this is no image, whatever it claims" * 20
    announced = presign_uploads.sync(
        client=client,
        body=PresignRequest(
            files=[PresignFile(filename="fake.jpg", content_type=ImageType.IMAGEJPEG, size=len(garbage))],
            generate=GenerateSpec(),
        ),
    )
    announced = expect(announced, PresignedFiles, "presign with generate")
    waiting = announced.files[0]
    frames.follow(f"{waiting.events_url}&timeout=1", "waiting job, 1 s stream")
    put_signed(waiting.upload, garbage)
    last = frames.follow(waiting.events_url, "failing job")[-1]
    if last["event"] != "task_failed" or not last["data"]["error_code"]:
        raise SystemExit(f"the job did not fail with a code: {last}")
    rejected = expect(get_file.sync(waiting.file_id, client=client), FileView, "file")
    print(f"file {rejected.file_id}: {rejected.status.value} ({rejected.rejection.code}); job failed with {last['data']['error_code']}")

    print("frames validated by event:", dict(sorted(frames.counts.items())))
    expected = {"task_queued", "task_completed", "task_failed", "timeout"}
    missing = expected - set(frames.counts)
    if missing:
        raise SystemExit(f"no frame of {sorted(missing)} was seen")


if __name__ == "__main__":
    import pathlib

    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(sys.argv[1].rstrip("/"), sys.argv[2], pathlib.Path(sys.argv[3]))
