//! Object storage on S3: objects, presigned PUT URLs that sign the content type and length,
//! and presigned GET URLs that download as an attachment.

use super::describe;
use crate::ports::storage::{
    ObjectMeta, ObjectStorage, PresignedPost, PresignedRequest, StorageError, StorageLocation,
    expiry_from_now,
};
use crate::validation::filename::attachment_disposition;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::SharedCredentialsProvider;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    /// Signs POST policies (the SDK presigns only single requests).
    credentials: Option<SharedCredentialsProvider>,
    region: String,
    /// Where form POSTs go: the bucket's virtual-hosted URL, or `<endpoint>/<bucket>` on an
    /// emulator.
    post_url: String,
}

impl S3Storage {
    pub fn new(client: Client, bucket: &str, sdk: &aws_config::SdkConfig) -> Self {
        let region = sdk
            .region()
            .map_or("us-east-1".to_owned(), |r| r.to_string());
        let post_url = match sdk.endpoint_url() {
            Some(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        Self {
            client,
            bucket: bucket.to_owned(),
            credentials: sdk.credentials_provider(),
            region,
            post_url,
        }
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn sign(key: &[u8], data: &str) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key size");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn backend<E, R>(err: SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StorageError::Backend(describe(&err))
}

fn to_chrono(t: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

fn presigning(expires_in: Duration) -> Result<PresigningConfig, StorageError> {
    PresigningConfig::expires_in(expires_in).map_err(|e| StorageError::Backend(e.to_string()))
}

#[async_trait]
impl ObjectStorage for S3Storage {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(StorageError::NotFound(key.to_owned()));
            }
            Err(err) => return Err(backend(err)),
        };
        let data = output
            .body
            .collect()
            .await
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        Ok(data.into_bytes())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectMeta {
                key: key.to_owned(),
                size: head.content_length().unwrap_or_default().max(0) as u64,
                content_type: head
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
                last_modified: to_chrono(head.last_modified()),
            })),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(backend(err)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for object in page.map_err(backend)?.contents() {
                let Some(key) = object.key() else { continue };
                // Listings carry no content type; it is read per object when needed.
                out.push(ObjectMeta {
                    key: key.to_owned(),
                    size: object.size().unwrap_or_default().max(0) as u64,
                    content_type: String::new(),
                    last_modified: to_chrono(object.last_modified()),
                });
            }
        }
        Ok(out)
    }

    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        let length =
            i64::try_from(content_length).map_err(|_| StorageError::InvalidKey(key.to_owned()))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(length)
            .presigned(presigning(expires_in)?)
            .await
            .map_err(backend)?;
        let mut headers: BTreeMap<String, String> = request
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        headers.insert("Content-Type".to_owned(), content_type.to_owned());
        headers.insert("Content-Length".to_owned(), content_length.to_string());
        headers.retain(|k, _| !k.eq_ignore_ascii_case("content-type") || k == "Content-Type");
        headers.retain(|k, _| !k.eq_ignore_ascii_case("content-length") || k == "Content-Length");
        Ok(PresignedRequest {
            url: request.uri().to_owned(),
            method: "PUT",
            headers,
            expires_at: expiry_from_now(expires_in),
        })
    }

    async fn presign_post(
        &self,
        key: &str,
        content_type: &str,
        max_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedPost, StorageError> {
        use aws_sdk_s3::config::ProvideCredentials;
        use base64::Engine;
        let region = &self.region;
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| StorageError::Backend("no AWS credentials configured".to_owned()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        let now = Utc::now();
        let date = now.format("%Y%m%d").to_string();
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let credential = format!(
            "{}/{date}/{region}/s3/aws4_request",
            credentials.access_key_id()
        );
        let expires_at = expiry_from_now(expires_in);
        let mut conditions = vec![
            serde_json::json!({"bucket": self.bucket}),
            serde_json::json!({"key": key}),
            serde_json::json!(["eq", "$Content-Type", content_type]),
            serde_json::json!(["content-length-range", 1, max_length]),
            serde_json::json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
            serde_json::json!({"x-amz-credential": credential}),
            serde_json::json!({"x-amz-date": amz_date}),
        ];
        if let Some(token) = credentials.session_token() {
            conditions.push(serde_json::json!({"x-amz-security-token": token}));
        }
        let policy = serde_json::json!({
            "expiration": expires_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "conditions": conditions,
        });
        let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
        let signing_key = ["s3", "aws4_request"].iter().fold(
            sign(
                &sign(
                    format!("AWS4{}", credentials.secret_access_key()).as_bytes(),
                    &date,
                ),
                region,
            ),
            |key, part| sign(&key, part),
        );
        let signature = hex::encode(sign(&signing_key, &policy));
        let mut fields = BTreeMap::from([
            ("key".to_owned(), key.to_owned()),
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            ("x-amz-credential".to_owned(), credential),
            ("x-amz-date".to_owned(), amz_date),
            ("policy".to_owned(), policy),
            ("x-amz-signature".to_owned(), signature),
        ]);
        if let Some(token) = credentials.session_token() {
            fields.insert("x-amz-security-token".to_owned(), token.to_owned());
        }
        Ok(PresignedPost {
            url: self.post_url.clone(),
            method: "POST",
            fields,
            expires_at,
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        download_name: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(attachment_disposition(download_name))
            .presigned(presigning(expires_in)?)
            .await
            .map_err(backend)?;
        Ok(PresignedRequest {
            url: request.uri().to_owned(),
            method: "GET",
            headers: BTreeMap::new(),
            expires_at: expiry_from_now(expires_in),
        })
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn location(&self) -> StorageLocation {
        StorageLocation::Bucket(self.bucket.clone())
    }
}
