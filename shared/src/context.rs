//! The dependencies every service and handler gets: the configuration, the keys and the ports.
//! Built once per process (by `wiring.rs`, or a test) and cloned cheaply into each request or
//! event. It knows no adapter: which ones run is chosen above the services, in `wiring.rs`.

use crate::config::{Config, Secret};
use crate::issued_tokens::IssuedTokens;
use crate::keys::KeyRing;
use crate::ports::{ObjectStorage, Ports, Store, WebhookStore, WorkQueue};
use crate::rate_window::LocalCounts;
use crate::shutdown::Shutdown;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// One allocation shared by every clone: a request, its layers and its handler each hold one,
/// so a clone is one reference count, not one per dependency.
#[derive(Clone)]
pub struct AppContext(Arc<Dependencies>);

impl std::ops::Deref for AppContext {
    type Target = Dependencies;

    fn deref(&self) -> &Dependencies {
        &self.0
    }
}

/// What an [`AppContext`] holds.
pub struct Dependencies {
    pub config: Arc<Config>,
    pub keys: Arc<KeyRing>,
    status_secret: Arc<Secret>,
    pub store: Arc<dyn Store>,
    pub storage: Arc<dyn ObjectStorage>,
    pub queue: Arc<dyn WorkQueue>,
    /// The owners' webhook endpoints and their deliveries.
    pub webhooks: Arc<dyn WebhookStore>,
    /// The webhook deliveries' own queue (events to announce, attempts to make), so that no
    /// delivery holds the worker.
    pub deliveries: Arc<dyn WorkQueue>,
    /// Permits to decode an image (`MAX_CONCURRENT_DECODES`): validation and generation each
    /// hold one, so decoding's memory stays within the permits times `MAX_DECODE_BYTES`.
    pub decodes: Arc<Semaphore>,
    /// This instance's counts of keyless status requests between writes to the store's
    /// shared counters (`web::rate_limit`).
    pub keyless_counts: LocalCounts,
    /// The status tokens this instance issued lately (`web::links`).
    pub issued_tokens: IssuedTokens,
    /// Triggered when the process stops (the local server); open streams end on it.
    pub shutdown: Shutdown,
}

impl AppContext {
    /// A context on `ports`; status tokens are signed with `status_secret` (a key every
    /// instance shares, or tokens one instance signs fail on the next).
    pub fn new(config: Config, status_secret: Secret, ports: Ports) -> Self {
        let keys = KeyRing::from_config(&config);
        crate::host::uptime(); // Uptime counts from here.
        let decodes = Arc::new(Semaphore::new(config.limits.max_concurrent_decodes));
        let Ports {
            store,
            storage,
            queue,
            webhooks,
            deliveries,
        } = ports;
        Self(Arc::new(Dependencies {
            config: Arc::new(config),
            keys: Arc::new(keys),
            status_secret: Arc::new(status_secret),
            store,
            storage,
            queue,
            webhooks,
            deliveries,
            decodes,
            keyless_counts: LocalCounts::default(),
            issued_tokens: IssuedTokens::default(),
            shutdown: Shutdown::default(),
        }))
    }

    /// The key status tokens are signed with.
    pub fn status_secret(&self) -> &[u8] {
        self.status_secret.0.as_bytes()
    }
}
