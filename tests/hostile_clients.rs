//! Clients as an attacker or a careless program would be, over real sockets: sockets that idle,
//! trickle or stall, a thousand idle connections, decompression bombs and heavy images in a
//! burst, a SIGTERM with a stream open and an upload stalled, a disk that fills up, malformed
//! requests of every kind.
//! Each asserts what the client gets (status, `error_code`, the envelope) and that nothing was
//! stored or broken. Bounds are generous: they fail on a server that hangs or balloons, not on a
//! slow machine.

use image2model_tests::process::ServerProcess;
use image2model_tests::{ALICE, TestServer, assert_error, json_of, png};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_local-server");

/// A server whose connection timeouts are short, so the suite waits seconds, not minutes.
async fn impatient_server() -> TestServer {
    TestServer::start_with(|c| {
        c.local.header_read_timeout = Duration::from_millis(500);
        c.local.body_idle_timeout = Duration::from_millis(500);
    })
    .await
}

fn connect(server: &TestServer) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it sent and how long that took.
/// A socket the server never closes fails the test after the read timeout (10 s).
fn read_until_closed(mut stream: TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

/// A body that stopped arriving is 408 `REQUEST_TIMEOUT` in the envelope.
fn assert_stalled_body_answer(sent: &str) {
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains(r#""error_code":"REQUEST_TIMEOUT""#), "{sent}");
}

#[tokio::test]
async fn idle_trickling_and_stalled_connections_are_closed() {
    let server = impatient_server().await;

    // A socket that never sends.
    let idle = connect(&server);
    let (sent, after) = tokio::task::spawn_blocking(move || read_until_closed(idle))
        .await
        .unwrap();
    assert!(
        sent.is_empty() && after < Duration::from_secs(5),
        "{after:?}"
    );

    // Headers trickled a byte at a time, slower than the header timeout allows in all.
    let mut trickle = connect(&server);
    let (sent, _) = tokio::task::spawn_blocking(move || {
        let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        trickle.write_all(head).unwrap();
        for _ in 0..40 {
            if trickle.write_all(b"a").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        read_until_closed(trickle)
    })
    .await
    .unwrap();
    assert!(!sent.contains("200 OK"), "{sent}");

    // A keep-alive connection left idle after its answer.
    let mut kept = connect(&server);
    let (sent, after) = tokio::task::spawn_blocking(move || {
        kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_until_closed(kept)
    })
    .await
    .unwrap();
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert!(after < Duration::from_secs(5), "{after:?}");

    // An upload whose body stops after 100 bytes: cut, and nothing stored.
    let photo = png(64, 64);
    let body =
        json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": photo.len()}]});
    let (_, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
        .await;
    let url =
        reqwest::Url::parse(presigned["files"][0]["upload"]["url"].as_str().unwrap()).unwrap();
    let target = format!("{}?{}", url.path(), url.query().unwrap());
    let mut stalled = connect(&server);
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        photo.len()
    );
    let first = photo[..100].to_vec();
    let (sent, after) = tokio::task::spawn_blocking(move || {
        stalled.write_all(head.as_bytes()).unwrap();
        stalled.write_all(&first).unwrap();
        read_until_closed(stalled)
    })
    .await
    .unwrap();
    assert!(after < Duration::from_secs(5), "{after:?}");
    assert_stalled_body_answer(&sent);
    // JSON and multipart bodies that stop: the same answer.
    for (target, content_type, partial) in [
        ("/api/v1/jobs", "application/json", "{\"file_id\": ".to_owned()),
        (
            "/api/v1/upload/image",
            "multipart/form-data; boundary=XyZ",
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n\u{89}PNG".to_owned(),
        ),
    ] {
        let mut stalled = connect(&server);
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: {content_type}\r\nContent-Length: 5000\r\n\r\n{partial}"
        );
        let (sent, after) = tokio::task::spawn_blocking(move || {
            stalled.write_all(head.as_bytes()).unwrap();
            read_until_closed(stalled)
        })
        .await
        .unwrap();
        assert!(after < Duration::from_secs(5), "{target}: {after:?}");
        assert_stalled_body_answer(&sent);
    }
    assert!(
        server
            .ctx
            .storage
            .list("uploads/")
            .await
            .unwrap()
            .is_empty(),
        "a cut upload stores nothing"
    );
    // The server still answers.
    let (status, _) = server.get_json("/health", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// A webhook delivery without FAL's signature headers is refused before its body is read: an
/// unauthenticated route holds no connection for a body nobody will accept.
#[tokio::test]
async fn an_unsigned_webhook_is_refused_before_its_body() {
    let server = impatient_server().await;
    let mut unsigned = connect(&server);
    let (sent, after) = tokio::task::spawn_blocking(move || {
        unsigned
            .write_all(b"POST /api/v1/webhooks/fal?job_id=a42befa4-6d5a-4914-8b8f-a36358d94b43 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{")
            .unwrap();
        read_until_closed(unsigned)
    })
    .await
    .unwrap();
    assert!(after < Duration::from_secs(2), "{after:?}");
    assert!(sent.starts_with("HTTP/1.1 401"), "{sent}");
    assert!(
        sent.contains(r#""error_code":"WEBHOOK_SIGNATURE_INVALID""#),
        "{sent}"
    );
}

/// The status line a server answers `head` with (read with the test's 10 s timeout).
async fn first_answer(server: &TestServer, head: String) -> String {
    let mut stream = connect(server);
    tokio::task::spawn_blocking(move || {
        stream.write_all(head.as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    })
    .await
    .unwrap()
}

/// A body a route will not take is refused from its `Content-Length`, on every documented
/// route that takes one: a client that asks `Expect: 100-continue` is answered with the
/// refusal, never asked to send what would be refused (before, a huge body was read for 63 MB).
#[tokio::test]
async fn an_oversized_body_is_refused_before_100_continue_on_every_route() {
    let server = impatient_server().await;
    let (_, document) = server.get_json("/api/v1/openapi.json", None).await;
    let mut checked = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        let path = template.replace("{job_id}", "a42befa4-6d5a-4914-8b8f-a36358d94b43");
        for method in ["post", "put"] {
            if operations.get(method).is_none() || path.contains('{') {
                continue;
            }
            for (declared, content_type) in [
                ("10000000000".to_owned(), "application/json"),
                (
                    (60u64 << 20).to_string(),
                    "multipart/form-data; boundary=XyZ",
                ),
            ] {
                let head = format!(
                    "{} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\nx-fal-webhook-request-id: r\r\nx-fal-webhook-user-id: u\r\nx-fal-webhook-timestamp: 1\r\nx-fal-webhook-signature: 00\r\nContent-Type: {content_type}\r\nContent-Length: {declared}\r\nExpect: 100-continue\r\n\r\n",
                    method.to_uppercase()
                );
                let line = first_answer(&server, head).await;
                assert!(
                    line.starts_with("HTTP/1.1 413"),
                    "{method} {path} ({declared} bytes): {line:?}"
                );
                checked += 1;
            }
        }
    }
    println!("oversized bodies refused from Content-Length: {checked} requests, all 413");
    assert!(checked >= 20, "{checked} routes");
    // Within the server's largest body but over an upload route's own limit: still no 100.
    let server = TestServer::start_with(|c| c.limits.max_sync_upload_bytes = 1 << 20).await;
    let line = first_answer(
        &server,
        format!(
            "POST /api/v1/upload/image HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            3 << 20
        ),
    )
    .await;
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");
}

/// One trickling connection of [`slow_senders_cannot_take_the_server`]: how it ended and after
/// how long.
async fn trickle_from(from: std::net::IpAddr, to: std::net::SocketAddr) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
    let started = Instant::now();
    let Ok(mut stream) = socket.connect(to).await else {
        return ("refused".to_owned(), started.elapsed());
    };
    // Held from here (a connect may wait in the listen backlog first).
    let started = Instant::now();
    // Signed-looking (a fresh timestamp, a signature of the right shape), so the webhook route
    // reads the body; 200 kB announced, a byte at a time.
    let now = chrono::Utc::now().timestamp();
    let signature = "ab".repeat(64);
    let head = format!(
        "POST /api/v1/webhooks/fal?job_id=a42befa4-6d5a-4914-8b8f-a36358d94b43 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-fal-webhook-request-id: r\r\nx-fal-webhook-user-id: u\r\nx-fal-webhook-timestamp: {now}\r\nx-fal-webhook-signature: {signature}\r\nContent-Length: 200000\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return ("reset".to_owned(), started.elapsed());
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // The client's patience: far beyond the rate's grace, so a connection still open at its end
    // was never cut (the wait in the listen backlog of a loaded machine included).
    let patience = Duration::from_secs(60);
    while started.elapsed() < patience {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if stream.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
    }
    let held = started.elapsed();
    if answer.is_empty() && held >= patience {
        return ("never cut".to_owned(), held);
    }
    let answer = String::from_utf8_lossy(&answer);
    (answer.lines().next().unwrap_or("closed").to_owned(), held)
}

/// 5,000 connections from one address, each trickling a body a byte at a time, take neither
/// the server nor anyone else's requests: past its per-client cap an address's connections are
/// answered 429 at once, the ones it holds are cut (408) once they fall behind the minimum
/// body rate, and liveness and an authenticated status request from another address answer
/// meanwhile.
#[tokio::test]
async fn slow_senders_cannot_take_the_server() {
    let server = TestServer::start_with(|c| {
        c.local.body_read.grace = Duration::from_secs(3);
        c.local.max_connections_per_client = 200;
    })
    .await;
    let (_, job) = server
        .upload_presigned(ALICE, &png(16, 16), "image/png", true)
        .await;
    let job = job.unwrap();
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let attacker: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let attack: Vec<_> = (0..5000)
        .map(|_| tokio::spawn(trickle_from(attacker, addr)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        for (path, key) in [
            ("/api/v1/health/liveness".to_owned(), None),
            (format!("/api/v1/status/tasks/{job}/status"), Some(ALICE)),
        ] {
            let started = Instant::now();
            let (status, body) =
                tokio::time::timeout(Duration::from_secs(10), server.get_json(&path, key))
                    .await
                    .unwrap_or_else(|_| panic!("{path} answers during the attack"));
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            slowest = slowest.max(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!("slowest answer during the attack: {slowest:?}");
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    let mut endings = std::collections::BTreeMap::<String, usize>::new();
    let mut longest = Duration::ZERO;
    for trickle in attack {
        let (ending, after) = trickle.await.unwrap();
        *endings.entry(ending).or_default() += 1;
        longest = longest.max(after);
    }
    println!("attack endings: {endings:?}; longest connection {longest:?}");
    // Refused connections read the 429, or a reset when it overtook their own head.
    let count = |ending: &str| endings.get(ending).copied().unwrap_or(0);
    let cut = count("HTTP/1.1 408 Request Timeout");
    let refused = count("HTTP/1.1 429 Too Many Requests") + count("closed") + count("reset");
    // The held ones (the cap's worth, and later ones that took a freed place) were all cut.
    assert!(cut >= 200, "{endings:?}");
    assert_eq!(refused + cut, 5000, "{endings:?}");
    assert!(count("HTTP/1.1 429 Too Many Requests") > 0, "{endings:?}");
    // Every connection was answered or cut by the server: none stayed open until the client
    // gave up (the longest, printed above, includes the wait to be accepted).
    assert_eq!(count("never cut"), 0, "{endings:?}");
}

#[tokio::test]
async fn liveness_answers_while_a_thousand_sockets_idle() {
    let server = TestServer::start_with(|c| c.local.max_connections_per_client = 1000).await;
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    // From another address than the probe's: one client's idle sockets are its own to waste.
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        idle.push(socket.connect(addr).await.expect("connects"));
    }
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(10),
        server.get_json("/api/v1/health/liveness", None),
    )
    .await
    .expect("liveness answers");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

#[tokio::test]
async fn every_refusal_is_the_json_envelope() {
    let server = TestServer::start().await;
    let check = |what: &'static str, response: reqwest::Response| async move {
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let (status, body) = json_of(response).await;
        assert!(status.is_client_error(), "{what}: {status}");
        assert!(
            content_type.starts_with("application/json"),
            "{what}: {content_type}"
        );
        assert_error(
            status,
            &body,
            status.as_u16(),
            body["error_code"].as_str().unwrap_or("?"),
        );
        body
    };
    let client = &server.client;
    for (what, content_type) in [
        ("json to a multipart route", Some("application/json")),
        ("no content type", None),
        ("multipart without a boundary", Some("multipart/form-data")),
    ] {
        for path in ["/api/v1/upload/image", "/api/v1/upload"] {
            let mut request = client.post(server.url(path)).bearer_auth(ALICE).body("{}");
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            check(what, request.send().await.unwrap()).await;
        }
    }
    check(
        "undecodable path",
        client
            .get(server.url("/local-storage/%ff"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let huge = json!({"file_id": "x".repeat(3 << 20)});
    let body = check(
        "JSON body over the limit",
        client
            .post(server.url("/api/v1/jobs"))
            .bearer_auth(ALICE)
            .json(&huge)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["error_code"], "PAYLOAD_TOO_LARGE", "{body}");
    // Ids in a body take the canonical form only, as in a path.
    let id = uuid::Uuid::new_v4();
    for loose in [
        id.simple().to_string(),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
    ] {
        let (status, body) = server
            .post_json("/api/v1/jobs", Some(ALICE), &json!({"file_id": loose}))
            .await;
        assert_error(status, &body, 422, "VALIDATION_ERROR");
    }
}

#[tokio::test]
async fn a_stream_timeout_beyond_any_duration_is_the_longest_stream() {
    let server =
        TestServer::start_with(|c| c.status.sse_max_duration = Duration::from_millis(300)).await;
    let (_, job) = server
        .upload_presigned(ALICE, &png(32, 32), "image/png", true)
        .await;
    let job = job.unwrap();
    // A number too large for a float is as long as one that fits: the longest stream.
    let digits = "9".repeat(400);
    for timeout in ["1e20", "1e308", "18446744073709551616", "1e400", &digits] {
        let response = server
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/status/tasks/{job}/sse?timeout={timeout}"),
                Some(ALICE),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "timeout={timeout}");
        let text = tokio::time::timeout(Duration::from_secs(10), response.text())
            .await
            .expect("the stream ends at the longest stream")
            .unwrap();
        assert!(text.contains("event:"), "{text}");
    }
    for timeout in ["inf", "NaN", "-1", "0"] {
        let (status, body) = server
            .get_json(
                &format!("/api/v1/status/tasks/{job}/sse?timeout={timeout}"),
                Some(ALICE),
            )
            .await;
        assert_error(status, &body, 422, "VALIDATION_ERROR");
    }
    let (status, _) = server.get_json("/health", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// A PNG of a few hundred kilobytes that decodes to 288 MB: 6000x6000 16-bit RGBA of zeros,
/// written a row at a time so that making it takes no such memory.
fn png_bomb() -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, 6000, 6000);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Sixteen);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    let row = vec![0u8; 6000 * 8];
    for _ in 0..6000 {
        stream.write_all(&row).unwrap();
    }
    stream.finish().unwrap();
    drop(writer);
    out
}

/// A heavy but honest photo: 4000x4000 RGBA (64 MB once decoded), a few MB as PNG.
fn heavy_png() -> Vec<u8> {
    let img = image::RgbaImage::from_fn(4000, 4000, |x, y| {
        image::Rgba([(x / 16) as u8, (y / 16) as u8, ((x + y) / 32) as u8, 255])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The server as a child process (its memory alone is measured) with the defaults of 2 CPUs:
/// two decodes at once, and a rate limit out of the way.
fn two_decodes_at_once() -> ServerProcess {
    ServerProcess::start(
        SERVER,
        &[
            ("MAX_CONCURRENT_DECODES", "2"),
            ("RATE_LIMIT_PER_MINUTE", "1000"),
        ],
    )
}

#[tokio::test]
async fn bombs_and_heavy_images_in_a_burst_stay_within_the_decode_budget() {
    let server = two_decodes_at_once();
    let client = reqwest::Client::new();
    let bomb = png_bomb();
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let heavy = heavy_png();
    let upload = |bytes: Vec<u8>| {
        let client = client.clone();
        let url = format!("{}/api/v1/upload/image", server.base);
        async move {
            let part = reqwest::multipart::Part::bytes(bytes)
                .file_name("photo.png")
                .mime_str("image/png")
                .unwrap();
            let form = reqwest::multipart::Form::new().part("file", part);
            let response = client
                .post(url)
                .bearer_auth(ALICE)
                .multipart(form)
                .send()
                .await
                .unwrap();
            json_of(response).await
        }
    };
    // Liveness is watched while 30 bombs and 12 heavy photos arrive at once.
    let watch = {
        let client = client.clone();
        let url = format!("{}/api/v1/health/liveness", server.base);
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for _ in 0..60 {
                let started = Instant::now();
                let response = client.get(&url).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            slowest
        })
    };
    let burst: Vec<_> = (0..30)
        .map(|_| bomb.clone())
        .chain((0..12).map(|_| heavy.clone()))
        .map(|bytes| tokio::spawn(upload(bytes)))
        .collect();
    let mut answers: Vec<(StatusCode, Value)> = Vec::new();
    for answer in burst {
        answers.push(answer.await.unwrap());
    }
    for (status, body) in &answers[..30] {
        assert_error(*status, body, 413, "IMAGE_TOO_LARGE");
    }
    for (status, body) in &answers[30..] {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
    }
    let slowest = watch.await.unwrap();
    let peak = server.peak_rss_mib();
    println!("liveness slowest {slowest:?}, server peak memory {peak:.0} MiB");
    assert!(
        slowest < Duration::from_secs(2),
        "liveness stalled: {slowest:?}"
    );
    // Two decodes of 64 MB at a time, plus request bodies and the rest of the process: about
    // 200 MiB measured; with the decodes unbounded the same burst peaks near 700 MiB.
    assert!(peak < 400.0, "peak memory {peak:.0} MiB");
}

/// A 6300 x 6300 JPEG (39.7 million pixels, within `MAX_PIXELS`): 119 MB decoded.
fn big_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(6300, 6300, |x, y| {
        image::Rgb([(x / 25) as u8, (y / 25) as u8, ((x ^ y) & 0xff) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&img)
        .unwrap();
    out.into_inner()
}

/// Generation's memory is bounded as validation's is: with the defaults on 2 CPUs, jobs on the
/// largest photos the limits let in peak at `MAX_CONCURRENT_DECODES` decoded images (each at
/// most `MAX_DECODE_BYTES`) plus a working set of a few megabytes each, over the process's own
/// 60 to 90 MiB: under 500 MiB (the whole pipeline once held the full image twice and a
/// full-height resampling buffer, 708 MB for 20 such jobs).
#[tokio::test]
async fn jobs_on_the_largest_photos_stay_within_the_decode_budget() {
    let server = two_decodes_at_once();
    let client = reqwest::Client::new();
    let photo = tokio::task::spawn_blocking(big_jpeg).await.unwrap();
    let mut jobs = Vec::new();
    for _ in 0..6 {
        jobs.push(server.upload_with_job(&client, &photo, "image/jpeg").await);
    }
    for job in &jobs {
        let url = format!("{}/api/v1/jobs/{job}", server.base);
        let ended = wait_for(&client, &url, Duration::from_secs(240), |job| {
            matches!(job["status"].as_str(), Some("completed" | "failed"))
        })
        .await;
        assert_eq!(ended["status"], "completed", "{ended}");
    }
    let peak = server.peak_rss_mib();
    println!("6 jobs on 6300x6300 photos: server peak memory {peak:.0} MiB");
    assert!(peak < 500.0, "peak memory {peak:.0} MiB");
}

#[tokio::test]
async fn sigterm_ends_streams_and_cuts_stalled_uploads_within_the_grace() {
    let mut server = ServerProcess::start(
        SERVER,
        &[
            ("SHUTDOWN_GRACE_SECONDS", "2"),
            ("BODY_IDLE_TIMEOUT_SECONDS", "120"),
        ],
    );
    let client = reqwest::Client::new();
    // A job waiting for an upload that stalls, and a stream following it.
    let photo = png(64, 64);
    let body = json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": photo.len()}], "generate": {}});
    let presigned: Value = client
        .post(format!("{}/api/v1/uploads/presign", server.base))
        .bearer_auth(ALICE)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = presigned["files"][0]["job_id"].as_str().unwrap().to_owned();
    let mut stream = client
        .get(format!("{}/api/v1/status/tasks/{job}/sse", server.base))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("task_queued"));
    let url =
        reqwest::Url::parse(presigned["files"][0]["upload"]["url"].as_str().unwrap()).unwrap();
    let addr = url.host_str().unwrap().to_owned() + ":" + &url.port().unwrap().to_string();
    let mut stalled = TcpStream::connect(addr).unwrap();
    write!(
        stalled,
        "PUT {}?{} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        url.path(),
        url.query().unwrap(),
        photo.len()
    )
    .unwrap();
    stalled.write_all(&photo[..100]).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    server.terminate();
    let mut rest = String::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
        .await
        .expect("the stream ends")
    {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("event: shutdown"), "{rest}");
    let exited = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let status = exited.expect("the server exits despite the stalled upload");
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "{:?}",
        signalled.elapsed()
    );
}

/// A photo of noise: it does not compress, so a few megabytes of PNG.
fn noise_png(w: u32, h: u32) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let [r, g, b, ..] = state.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Polls `GET path` until `done` holds for its JSON body; panics after `within`.
async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let body: Value = client
            .get(url)
            .bearer_auth(ALICE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "still {body} after {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A disk that fills up (the server's file-size limit lowered from outside, as a quota does):
/// every write that does not fit is refused with 503 and the envelope, nothing is stored or left
/// half-written (no object, no record, no temp file, an upload grant still unused), the server
/// goes on serving; once space returns, the job that could not store its model is retried to
/// completion and the refused uploads go through.
#[tokio::test]
async fn a_full_disk_refuses_writes_cleanly_and_work_resumes_when_space_returns() {
    let server = ServerProcess::start(
        SERVER,
        &[
            ("RATE_LIMIT_PER_MINUTE", "1000"),
            ("VISIBILITY_TIMEOUT_SECONDS", "2"),
        ],
    );
    let client = reqwest::Client::new();
    let api = |path: &str| format!("{}{path}", server.base);
    let big = noise_png(1200, 1200);
    assert!(big.len() > 3 << 20, "{}", big.len());
    let upload = |bytes: Vec<u8>| {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name("photo.png")
            .mime_str("image/png")
            .unwrap();
        client
            .post(api("/api/v1/upload/image"))
            .bearer_auth(ALICE)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
    };
    // While there is room: a ready photo, and a grant for the big one.
    let (status, ready) = json_of(upload(png(64, 64)).await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{ready}");
    let presign =
        json!({"files": [{"filename": "big.png", "content_type": "image/png", "size": big.len()}]});
    let granted: Value = client
        .post(api("/api/v1/uploads/presign"))
        .bearer_auth(ALICE)
        .json(&presign)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grant = &granted["files"][0];
    let put_big = || {
        let mut put = client.put(grant["upload"]["url"].as_str().unwrap());
        for (name, value) in grant["upload"]["headers"].as_object().unwrap() {
            put = put.header(name.as_str(), value.as_str().unwrap());
        }
        put.body(big.clone()).send()
    };
    let objects_before = server.stored_files("data").len();
    let create_job = || async {
        let request = client
            .post(api("/api/v1/jobs"))
            .bearer_auth(ALICE)
            .json(&json!({"file_id": ready["file_id"]}));
        json_of(request.send().await.unwrap()).await
    };

    // 1 MiB per file: the database still fits; a 3 MB photo or a 1.5 MB model does not.
    server.limit_file_size(Some(1 << 20));
    let (status, body) = json_of(upload(big.clone()).await.unwrap()).await;
    assert_error(status, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(body["details"]["component"], "object storage");
    let (status, body) = json_of(put_big().await.unwrap()).await;
    assert_error(status, &body, 503, "SERVICE_UNAVAILABLE");
    let file_url = api(&format!(
        "/api/v1/files/{}",
        grant["file_id"].as_str().unwrap()
    ));
    let file = wait_for(&client, &file_url, Duration::ZERO, |_| true).await;
    assert_eq!(file["status"], "pending", "the grant wrote nothing: {file}");
    assert_eq!(server.stored_files("data").len(), objects_before);
    assert_eq!(server.stored_files("tmp"), Vec::<std::path::PathBuf>::new());
    let (status, job) = create_job().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_url = api(&format!("/api/v1/jobs/{}", job["job_id"].as_str().unwrap()));
    // The job says why it waits.
    let waiting = wait_for(&client, &job_url, Duration::from_secs(30), |job| {
        job["attempts"].as_u64() >= Some(1) && job["status"] == "queued"
    })
    .await;
    assert!(
        waiting["message"]
            .as_str()
            .unwrap()
            .contains("object storage is unavailable"),
        "{waiting}"
    );

    // Nothing fits any more: the database refuses too, and reads go on.
    server.limit_file_size(Some(0));
    let (status, body) = create_job().await;
    assert_error(status, &body, 503, "SERVICE_UNAVAILABLE");
    let live = client
        .get(api("/api/v1/health/liveness"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(server.stored_files("tmp"), Vec::<std::path::PathBuf>::new());

    // Space returns: the job completes, the grant and the upload go through.
    server.limit_file_size(None);
    wait_for(&client, &job_url, Duration::from_secs(60), |job| {
        job["status"] == "completed"
    })
    .await;
    let response = put_big().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    wait_for(&client, &file_url, Duration::from_secs(30), |file| {
        file["status"] == "ready"
    })
    .await;
    let (status, body) = json_of(upload(big.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let jobs: Value = client
        .get(api("/api/v1/jobs"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        1,
        "the refused job left nothing: {jobs}"
    );
    assert_eq!(server.stored_files("tmp"), Vec::<std::path::PathBuf>::new());
}
