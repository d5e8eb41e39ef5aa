//! An uploaded file and its ingestion state (`pending -> ready | rejected`).

use super::ids::FileId;
use super::job_error::JobErrorCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where uploaded bytes live in object storage.
pub const UPLOADS_PREFIX: &str = "uploads/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Pending,
    Ready,
    Rejected,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Rejected => "rejected",
        }
    }
}

/// Why ingestion refused a file: a stable error code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRejection {
    pub code: JobErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadedFile {
    pub file_id: FileId,
    /// Id of the API key that uploaded the file.
    pub owner: String,
    /// Sanitised original filename.
    pub filename: String,
    /// Declared type while pending; the sniffed type once ready.
    pub content_type: String,
    pub size: u64,
    pub sha256: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub status: FileStatus,
    pub rejection: Option<FileRejection>,
    pub object_key: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub version: u64,
}

/// What ingestion learned from the bytes of an accepted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedImage {
    pub content_type: String,
    /// The extension of the sniffed type; the stored filename takes it.
    pub extension: &'static str,
    pub size: u64,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

/// A file may leave `pending` once; any other change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file is {0}, not pending")]
pub struct FileNotPending(pub &'static str);

/// `name` with its extension (if any) replaced by `extension`: a stored file is named after
/// what its bytes are, whatever the client called it.
fn with_extension(name: &str, extension: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    format!("{stem}.{extension}")
}

impl UploadedFile {
    /// A file announced for a presigned upload: `pending` until ingestion has seen its bytes.
    /// `filename` is already sanitised; `content_type` is the declared one.
    pub fn pending(
        owner: &str,
        filename: &str,
        content_type: &str,
        size: u64,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        let file_id = FileId::new();
        Self {
            file_id,
            owner: owner.to_owned(),
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            size,
            sha256: None,
            width: None,
            height: None,
            status: FileStatus::Pending,
            rejection: None,
            object_key: Self::object_key_for(owner, file_id),
            created_at,
            expires_at,
            version: 1,
        }
    }

    /// A file whose bytes were validated as they arrived (a direct upload): `ready` at once.
    pub fn ready(
        owner: &str,
        filename: &str,
        image: AcceptedImage,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        let pending = Self::pending(
            owner,
            &with_extension(filename, image.extension),
            &image.content_type,
            image.size,
            created_at,
            expires_at,
        );
        Self {
            sha256: Some(image.sha256),
            width: Some(image.width),
            height: Some(image.height),
            status: FileStatus::Ready,
            ..pending
        }
    }

    /// The object key under which the bytes of `file_id` of `owner` are stored.
    pub fn object_key_for(owner: &str, file_id: FileId) -> String {
        format!("{UPLOADS_PREFIX}{owner}/{file_id}")
    }

    /// The file id of an upload key (`uploads/<owner>/<file_id>`); `None` for any other key.
    pub fn file_id_of_key(key: &str) -> Option<FileId> {
        let mut parts = key.strip_prefix(UPLOADS_PREFIX)?.split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(owner), Some(id), None) if !owner.is_empty() => id.parse().ok(),
            _ => None,
        }
    }

    pub fn accept(&self, image: AcceptedImage) -> Result<Self, FileNotPending> {
        self.ensure_pending()?;
        Ok(Self {
            filename: with_extension(&self.filename, image.extension),
            content_type: image.content_type,
            size: image.size,
            sha256: Some(image.sha256),
            width: Some(image.width),
            height: Some(image.height),
            status: FileStatus::Ready,
            version: self.version + 1,
            ..self.clone()
        })
    }

    pub fn reject(&self, rejection: FileRejection) -> Result<Self, FileNotPending> {
        self.ensure_pending()?;
        Ok(Self {
            status: FileStatus::Rejected,
            rejection: Some(rejection),
            version: self.version + 1,
            ..self.clone()
        })
    }

    /// A ready file whose bytes were written again after validation: they are not what was
    /// validated, so the file is refused after all.
    pub fn revoke(&self, rejection: FileRejection) -> Result<Self, FileNotPending> {
        if self.status != FileStatus::Ready {
            return Err(FileNotPending(self.status.as_str()));
        }
        Ok(Self {
            status: FileStatus::Rejected,
            rejection: Some(rejection),
            version: self.version + 1,
            ..self.clone()
        })
    }

    fn ensure_pending(&self) -> Result<(), FileNotPending> {
        match self.status {
            FileStatus::Pending => Ok(()),
            other => Err(FileNotPending(other.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_take_the_extension_of_what_the_bytes_are() {
        assert_eq!(with_extension("photo.jpg", "png"), "photo.png");
        assert_eq!(with_extension("photo", "webp"), "photo.webp");
        assert_eq!(with_extension("archive.tar.gz", "jpg"), "archive.tar.jpg");
        let now = chrono::Utc::now();
        let image = AcceptedImage {
            content_type: "image/png".into(),
            extension: "png",
            size: 3,
            sha256: "ab".into(),
            width: 1,
            height: 1,
        };
        let pending = UploadedFile::pending("a", "cat.jpeg", "image/jpeg", 3, now, now);
        assert_eq!(pending.accept(image.clone()).unwrap().filename, "cat.png");
        assert_eq!(
            UploadedFile::ready("a", "cat", image, now, now).filename,
            "cat.png"
        );
    }

    /// What the bytes are replaces what the client declared, and only a pending file settles.
    #[test]
    fn accepting_records_the_image_as_validated_once() {
        let now = chrono::Utc::now();
        let image = AcceptedImage {
            content_type: "image/png".into(),
            extension: "png",
            size: 1234,
            sha256: "ab".into(),
            width: 64,
            height: 48,
        };
        let pending = UploadedFile::pending("a", "cat.jpg", "image/jpeg", 99, now, now);
        for file in [
            pending.accept(image.clone()).unwrap(),
            UploadedFile::ready("a", "cat.jpg", image.clone(), now, now),
        ] {
            assert_eq!(
                (
                    file.content_type.as_str(),
                    file.size,
                    file.sha256.as_deref(),
                    file.width,
                    file.height,
                    file.status
                ),
                (
                    "image/png",
                    1234,
                    Some("ab"),
                    Some(64),
                    Some(48),
                    FileStatus::Ready
                )
            );
        }
        let ready = pending.accept(image.clone()).unwrap();
        assert_eq!(ready.version, pending.version + 1);
        let reason = FileRejection {
            code: JobErrorCode::InvalidImage,
            message: "x".into(),
        };
        assert!(ready.accept(image).is_err());
        assert!(ready.reject(reason.clone()).is_err());
        let rejected = pending.reject(reason.clone()).unwrap();
        assert_eq!(rejected.status, FileStatus::Rejected);
        assert!(rejected.revoke(reason.clone()).is_err());
        assert!(pending.revoke(reason.clone()).is_err());
        assert_eq!(ready.revoke(reason).unwrap().status, FileStatus::Rejected);
    }

    #[test]
    fn upload_keys_name_their_file_and_nothing_else_does() {
        let id = FileId::new();
        let key = UploadedFile::object_key_for("alice", id);
        assert_eq!(key, format!("uploads/alice/{id}"));
        assert_eq!(UploadedFile::file_id_of_key(&key), Some(id));
        assert_eq!(
            UploadedFile::file_id_of_key(&format!("results/alice/{id}")),
            None
        );
        assert_eq!(
            UploadedFile::file_id_of_key(&format!("uploads/alice/{id}/x")),
            None
        );
        assert_eq!(
            UploadedFile::file_id_of_key(&format!("uploads//{id}")),
            None
        );
        assert_eq!(
            UploadedFile::file_id_of_key("uploads/alice/not-an-id"),
            None
        );
    }
}
