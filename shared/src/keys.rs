//! API keys: the configured keys, kept only as SHA-256 hashes, and who a presented key belongs
//! to, found by its hash (one lookup, however many keys: what a lookup's timing could tell is
//! about the hash of what was sent, which tells nothing about any key); and, when sign-in is
//! configured, provider tokens (`jwt.rs`) as a second kind of bearer credential.

use crate::config::{Config, NamedKey};
use crate::jwt::{JwtVerifier, looks_like_jwt};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The owner name recorded on files and jobs created with the admin key.
pub const ADMIN_OWNER: &str = "admin";

type KeyHash = [u8; 32];

fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// The configured keys, as hashes, and the sign-in provider's verifier.
#[derive(Clone, Default)]
pub struct KeyRing {
    /// Each key's hash and its user (the first name given, for a key listed twice).
    users: HashMap<KeyHash, String>,
    admin: Option<KeyHash>,
    jwt: Option<Arc<JwtVerifier>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.values().collect();
        users.sort();
        f.debug_struct("KeyRing")
            .field("users", &users)
            .field("admin", &self.admin.is_some())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

/// An authenticated caller: the owner of what it creates and the only one who sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub owner: String,
    pub is_admin: bool,
}

/// Who a valid key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    User(String),
    Admin,
}

impl KeyRing {
    pub fn new(users: &[NamedKey], admin: Option<&str>) -> Self {
        let mut ring = Self {
            admin: admin.map(hash),
            ..Self::default()
        };
        ring.add_users(users.iter().map(|k| (hash(&k.key), &k.name)));
        ring
    }

    /// Every key of the configuration: plain keys (hashed here) and configured hashes.
    pub fn from_config(config: &Config) -> Self {
        let mut ring = Self::new(
            &config.sign_in.user_keys,
            config.sign_in.admin_key.as_ref().map(|k| k.0.as_str()),
        );
        ring.add_users(
            config
                .sign_in
                .user_key_hashes
                .iter()
                .map(|k| (k.sha256, &k.name)),
        );
        if ring.admin.is_none() {
            ring.admin = config.sign_in.admin_key_hash;
        }
        ring.jwt = config
            .sign_in
            .jwt
            .clone()
            .map(|s| Arc::new(JwtVerifier::new(s)));
        ring
    }

    /// Who a bearer credential is: an API key, or (when sign-in is configured) a provider
    /// token, whose subject signs in as a user of its own.
    pub async fn identify_credential(&self, presented: &str) -> Option<Identity> {
        match &self.jwt {
            Some(jwt) if looks_like_jwt(presented) => {
                jwt.verify(presented).await.map(Identity::User)
            }
            _ => self.identify(presented),
        }
    }

    /// Adds users' key hashes; a hash already there keeps its first name.
    fn add_users<'a>(&mut self, users: impl Iterator<Item = (KeyHash, &'a String)>) {
        for (hash, name) in users {
            self.users.entry(hash).or_insert_with(|| name.clone());
        }
    }

    /// Looks a presented key up by its hash; the admin key, compared in constant time, wins.
    pub fn identify(&self, presented: &str) -> Option<Identity> {
        let presented = hash(presented);
        if let Some(admin) = &self.admin
            && bool::from(admin.ct_eq(&presented))
        {
            return Some(Identity::Admin);
        }
        self.users
            .get(&presented)
            .map(|name| Identity::User(name.clone()))
    }
}

/// 256 random bits as text: a new secret (a status-token key nobody configured).
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The secret kept in `path` (at least `min_len` characters once trimmed), or `make()`'s,
/// written there first when there is none (or one too short to be a key). A new file is readable
/// by this user only (0600) and appears whole (written aside under a name of its own, then
/// linked in place; of two processes starting at once, both keep the one that landed first). A
/// kept file left readable by others is narrowed where the file system lets us, else a warning
/// says so. A file that is there but cannot be read is an error, never silently replaced.
pub fn kept_secret_file(
    path: &Path,
    min_len: usize,
    make: impl FnOnce() -> String,
) -> std::io::Result<String> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text.trim().to_owned()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    if let Some(existing) = existing.as_ref().filter(|k| k.len() >= min_len) {
        if let Err(err) = restrict_to_owner(path) {
            tracing::warn!(path = %path.display(), error = %err, "a kept key is readable by other users");
        }
        return Ok(existing.clone());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let secret = make();
    let aside = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&aside)
        .and_then(|mut file| std::io::Write::write_all(&mut file, secret.as_bytes()));
    let placed = written.and_then(|()| {
        if existing.is_some() {
            // Too short to be a key: replaced.
            std::fs::rename(&aside, path)
        } else {
            // Only if still absent: another process may have placed its key meanwhile.
            let linked = std::fs::hard_link(&aside, path);
            let _ = std::fs::remove_file(&aside);
            linked
        }
    });
    match placed {
        Ok(()) => Ok(secret),
        // The other process's key landed first: it is the one.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map(|text| text.trim().to_owned())
        }
        Err(err) => {
            let _ = std::fs::remove_file(&aside);
            Err(err)
        }
    }
}

fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn a_credential_is_a_key_or_a_token_never_both() {
        let vars = std::collections::HashMap::from([
            (
                "API_KEYS".to_owned(),
                "alice:alice-key-0123456789,dot:eyJ-shaped.key.0123456789".to_owned(),
            ),
            ("JWT_ISSUER".to_owned(), "https://issuer.example".to_owned()),
            ("JWT_AUDIENCE".to_owned(), "image2model".to_owned()),
            (
                "JWT_JWKS_URL".to_owned(),
                "http://127.0.0.1:9/jwks".to_owned(),
            ),
        ]);
        let ring = KeyRing::from_config(&Config::from_vars(&vars).unwrap());
        assert_eq!(
            ring.identify_credential("alice-key-0123456789").await,
            Some(Identity::User("alice".into()))
        );
        assert_eq!(ring.identify_credential("a.b.c").await, None);
        // With sign-in on, a credential shaped like a token is read as one only, even when a
        // key has that shape (no provider signed it).
        assert_eq!(
            ring.identify("eyJ-shaped.key.0123456789"),
            Some(Identity::User("dot".into()))
        );
        assert_eq!(
            ring.identify_credential("eyJ-shaped.key.0123456789").await,
            None
        );
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let new = dir.path().join("sub").join("new.key");
        let made = kept_secret_file(&new, 16, random_secret).unwrap();
        assert_eq!(mode(&new), 0o600);
        assert_eq!(kept_secret_file(&new, 16, || unreachable!()).unwrap(), made);
        // A key an older version left world-readable is kept, and closed.
        let old = dir.path().join("old.key");
        std::fs::write(&old, "an-old-key-0123456789\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            kept_secret_file(&old, 16, || unreachable!()).unwrap(),
            "an-old-key-0123456789"
        );
        assert_eq!(mode(&old), 0o600);
        // Too short to be a key: replaced.
        std::fs::write(&old, "short").unwrap();
        assert_ne!(kept_secret_file(&old, 16, random_secret).unwrap(), "short");
        assert_eq!(mode(&old), 0o600);
        // Nothing is left aside.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // A key that cannot be read is an error, not a new key: a directory stands in for it.
        let unreadable = dir.path().join("dir.key");
        std::fs::create_dir(&unreadable).unwrap();
        assert!(kept_secret_file(&unreadable, 16, random_secret).is_err());
    }

    /// Processes starting at once on one data directory keep one key between them.
    #[test]
    fn processes_starting_at_once_keep_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status-token.key");
        let keys: Vec<String> = std::thread::scope(|scope| {
            let started: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| kept_secret_file(&path, 32, random_secret).unwrap()))
                .collect();
            started.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), keys[0]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn new_secrets_are_long_and_unique() {
        let (a, b) = (random_secret(), random_secret());
        assert!(
            a.len() >= 64 && a.chars().all(|c| c.is_ascii_hexdigit()),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn no_key_may_be_named_like_the_admin_owner() {
        let entry = format!("{ADMIN_OWNER}:long-enough-key");
        let vars = std::collections::HashMap::from([("API_KEYS".to_owned(), entry)]);
        assert!(Config::from_vars(&vars).is_err());
    }

    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(
            &[
                NamedKey {
                    name: "alice".into(),
                    key: "alice-secret".into(),
                },
                NamedKey {
                    name: "bob".into(),
                    key: "bob-secret".into(),
                },
            ],
            Some("admin-secret"),
        )
    }

    #[test]
    fn identifies_users_and_admin_and_nothing_else() {
        let r = ring();
        assert_eq!(
            r.identify("alice-secret"),
            Some(Identity::User("alice".into()))
        );
        assert_eq!(r.identify("bob-secret"), Some(Identity::User("bob".into())));
        assert_eq!(r.identify("admin-secret"), Some(Identity::Admin));
        assert_eq!(r.identify("alice-secret "), None);
        assert_eq!(r.identify(""), None);
        // Logs show who is configured, never a secret or its hash.
        let debug = format!("{r:?}");
        assert_eq!(
            debug,
            r#"KeyRing { users: ["alice", "bob"], admin: true, jwt: false }"#
        );
    }

    #[test]
    fn configured_hashes_identify_their_keys() {
        let vars = std::collections::HashMap::from([
            (
                "API_KEY_HASHES".to_owned(),
                format!("carol:{}", hex::encode(hash("carol-secret"))),
            ),
            (
                "ADMIN_API_KEY_HASH".to_owned(),
                hex::encode(hash("root-secret")),
            ),
        ]);
        let ring = KeyRing::from_config(&Config::from_vars(&vars).unwrap());
        assert_eq!(
            ring.identify("carol-secret"),
            Some(Identity::User("carol".into()))
        );
        assert_eq!(ring.identify("root-secret"), Some(Identity::Admin));
        assert_eq!(ring.identify("carol-secret2"), None);
    }
}
