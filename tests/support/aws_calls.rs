//! A recording proxy in front of the AWS API emulator: every request passes through unchanged,
//! and each is noted as the IAM authorizations AWS would check for it: (access key, action,
//! resource ARN). The access key comes from where AWS reads it (the SigV4 `Authorization`
//! header, a presigned URL's `X-Amz-Credential`, a browser POST's `x-amz-credential` field), so
//! SDK calls, presigned URLs and POST policies are all charged to the credentials that signed
//! them, as IAM charges them to the role that signed.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::Value;
use std::sync::{Arc, Mutex};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// One authorization AWS would check.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Authorization {
    pub access_key: String,
    pub action: String,
    pub resource: String,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Authorization>>>,
    unknown: Arc<Mutex<Vec<String>>>,
}

pub struct RecordingProxy {
    pub url: String,
    seen: Arc<Mutex<Vec<Authorization>>>,
    unknown: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    /// Listens on a loopback port and forwards to `upstream` (the emulator's URL).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let proxy = Proxy {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            seen: Arc::default(),
            unknown: Arc::default(),
        };
        let (seen, unknown) = (proxy.seen.clone(), proxy.unknown.clone());
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        tokio::spawn(async move { axum::serve(listener, app).await.expect("proxy serves") });
        Self { url, seen, unknown }
    }

    /// Every authorization so far.
    pub fn authorizations(&self) -> Vec<Authorization> {
        self.seen.lock().expect("lock").clone()
    }

    /// Requests this proxy could not read as an AWS action (the check must know every one).
    pub fn unknown(&self) -> Vec<String> {
        self.unknown.lock().expect("lock").clone()
    }
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let found = authorizations(&parts.method, &parts.uri, &parts.headers, &body);
    if found.is_none() {
        proxy
            .unknown
            .lock()
            .expect("lock")
            .push(format!("{} {path_and_query}", parts.method));
    }
    let mut upstream = proxy.http.request(
        parts.method.clone(),
        format!("{}{path_and_query}", proxy.upstream),
    );
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => {
            // Asked for, so authorized (or refused) on AWS: noted all the same.
            if let Some(found) = found {
                proxy.seen.lock().expect("lock").extend(found);
            }
            return Response::builder()
                .status(502)
                .body(Body::from(e.to_string()))
                .expect("response");
        }
    };
    if let Some(mut found) = found {
        // S3 answers a read of a missing key with 404 only to a caller that may list the bucket
        // (403 to anyone else), so such a read needs `s3:ListBucket` too.
        if answer.status() == http::StatusCode::NOT_FOUND {
            let missing: Vec<Authorization> = found
                .iter()
                .filter(|a| a.action == "s3:GetObject")
                .filter_map(|a| {
                    let bucket = a
                        .resource
                        .strip_prefix("arn:aws:s3:::")?
                        .split('/')
                        .next()?;
                    Some(Authorization {
                        access_key: a.access_key.clone(),
                        action: "s3:ListBucket".to_owned(),
                        resource: format!("arn:aws:s3:::{bucket}"),
                    })
                })
                .collect();
            found.extend(missing);
        }
        proxy.seen.lock().expect("lock").extend(found);
    }
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != http::header::TRANSFER_ENCODING && name != http::header::CONTENT_LENGTH {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).expect("response")
}

/// The access key and service of a signed request, wherever it was signed.
fn credential(uri: &http::Uri, headers: &http::HeaderMap, body: &[u8]) -> Option<(String, String)> {
    let scope = if let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        auth.split("Credential=")
            .nth(1)?
            .split(',')
            .next()?
            .to_owned()
    } else if let Some(query) = uri.query() {
        let value = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("X-Amz-Credential="))?;
        percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .ok()?
            .into_owned()
    } else {
        form_field(body, "x-amz-credential")?
    };
    let mut parts = scope.split('/');
    let key = parts.next()?.to_owned();
    let service = parts.nth(2)?.to_owned();
    Some((key, service))
}

/// A field of a `multipart/form-data` body (a browser's POST upload).
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let marker = format!("name=\"{name}\"\r\n\r\n");
    let start = text.find(&marker)? + marker.len();
    let end = text[start..].find("\r\n")?;
    Some(text[start..start + end].to_owned())
}

fn authorizations(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Option<Vec<Authorization>> {
    let (access_key, service) = credential(uri, headers, body)?;
    let pairs = match service.as_str() {
        "s3" => s3(method, uri, headers, body)?,
        "dynamodb" | "sqs" => {
            let target = headers.get("x-amz-target")?.to_str().ok()?;
            let operation = target.rsplit('.').next()?;
            let input: Value = serde_json::from_slice(body).ok()?;
            if service == "sqs" {
                sqs(operation, &input)?
            } else {
                dynamodb(operation, &input)?
            }
        }
        _ => return None,
    };
    Some(
        pairs
            .into_iter()
            .map(|(action, resource)| Authorization {
                access_key: access_key.clone(),
                action,
                resource,
            })
            .collect(),
    )
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// S3's REST requests (path style), as the actions its authorization reference lists.
fn s3(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Option<Vec<(String, String)>> {
    let path = uri.path().trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) if !key.is_empty() => (bucket, Some(decode(key))),
        _ => (path.trim_end_matches('/'), None),
    };
    let query = uri.query().unwrap_or("");
    // Subresources (`?acl`, `?tagging`, `?uploads`...) and ACL or tagging headers are other
    // actions: unknown here, so that the check fails rather than misreads them.
    let plain_query = |name: &str| {
        name.starts_with("X-Amz-")
            || name.starts_with("response-")
            || [
                "x-id",
                "list-type",
                "prefix",
                "continuation-token",
                "max-keys",
                "delimiter",
                "start-after",
                "encoding-type",
                "fetch-owner",
                "delete",
            ]
            .contains(&name)
    };
    if query
        .split('&')
        .filter(|p| !p.is_empty())
        .any(|p| !plain_query(p.split('=').next().unwrap_or_default()))
        || headers.contains_key("x-amz-acl")
        || headers.contains_key("x-amz-tagging")
    {
        return None;
    }
    let object = |key: &str| format!("arn:aws:s3:::{bucket}/{key}");
    let action = |name: &str, resource: String| (format!("s3:{name}"), resource);
    let found = match (method.as_str(), key) {
        ("GET" | "HEAD", Some(key)) => vec![action("GetObject", object(&key))],
        ("PUT", Some(key)) => {
            let mut found = vec![action("PutObject", object(&key))];
            if let Some(source) = headers.get("x-amz-copy-source") {
                let source = decode(source.to_str().ok()?);
                found.push(action(
                    "GetObject",
                    format!("arn:aws:s3:::{}", source.trim_start_matches('/')),
                ));
            }
            found
        }
        ("DELETE", Some(key)) => vec![action("DeleteObject", object(&key))],
        ("GET" | "HEAD", None) => vec![action("ListBucket", format!("arn:aws:s3:::{bucket}"))],
        ("POST", None) if query.split('&').any(|p| p == "delete" || p == "delete=") => {
            let text = String::from_utf8_lossy(body);
            text.split("<Key>")
                .skip(1)
                .filter_map(|rest| rest.split("</Key>").next())
                .map(|key| action("DeleteObject", object(key)))
                .collect()
        }
        ("POST", None) => vec![action("PutObject", object(&form_field(body, "key")?))],
        _ => return None,
    };
    Some(found)
}

fn table_arn(table: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}")
}

/// DynamoDB's operations as IAM sees them: a transaction is authorized item by item.
fn dynamodb(operation: &str, input: &Value) -> Option<Vec<(String, String)>> {
    let action = |name: &str, table: &str| (format!("dynamodb:{name}"), table_arn(table));
    let found = match operation {
        "TransactWriteItems" => input["TransactItems"]
            .as_array()?
            .iter()
            .filter_map(|item| {
                let (kind, body) = item.as_object()?.iter().next()?;
                let name = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    _ => return None,
                };
                Some(action(name, body["TableName"].as_str()?))
            })
            .collect(),
        "TransactGetItems" => input["TransactItems"]
            .as_array()?
            .iter()
            .filter_map(|item| Some(action("GetItem", item["Get"]["TableName"].as_str()?)))
            .collect(),
        "BatchGetItem" | "BatchWriteItem" => input["RequestItems"]
            .as_object()?
            .keys()
            .map(|table| action(operation, table))
            .collect(),
        _ => {
            let table = input["TableName"].as_str()?;
            let resource = match input["IndexName"].as_str() {
                Some(index) => format!("{}/index/{index}", table_arn(table)),
                None => table_arn(table),
            };
            vec![(format!("dynamodb:{operation}"), resource)]
        }
    };
    Some(found)
}

/// SQS's operations; a batch call is authorized as its single-message action.
fn sqs(operation: &str, input: &Value) -> Option<Vec<(String, String)>> {
    let name = input["QueueUrl"]
        .as_str()?
        .trim_end_matches('/')
        .rsplit('/')
        .next()?;
    let action = operation.strip_suffix("Batch").unwrap_or(operation);
    Some(vec![(
        format!("sqs:{action}"),
        format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
    )])
}

/// Whether an IAM pattern (`*` and `?` wildcards) matches `value`.
pub fn iam_match(pattern: &str, value: &str, case_insensitive: bool) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    let fold = |s: &str| -> Vec<char> {
        if case_insensitive {
            s.to_ascii_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    go(&fold(pattern), &fold(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_reads_them() {
        assert!(iam_match("sqs:SendMessage*", "sqs:sendmessage", true));
        assert!(iam_match(
            "arn:aws:s3:::b/*",
            "arn:aws:s3:::b/uploads/x",
            false
        ));
        assert!(!iam_match("arn:aws:s3:::b/*", "arn:aws:s3:::b", false));
        assert!(!iam_match("arn:aws:s3:::B/*", "arn:aws:s3:::b/x", false));
        assert!(iam_match("a?c", "abc", false));
    }

    #[test]
    fn transactions_are_authorized_item_by_item() {
        let input = serde_json::json!({"TransactItems": [
            {"Put": {"TableName": "t"}}, {"ConditionCheck": {"TableName": "t"}}
        ]});
        let found = dynamodb("TransactWriteItems", &input).unwrap();
        assert_eq!(
            found.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
            ["dynamodb:PutItem", "dynamodb:ConditionCheckItem"]
        );
    }
}
