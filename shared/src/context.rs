//! The dependencies every service and handler gets: the configuration, the keys and the ports.
//! Built once per process (by `wiring.rs`, or a test) and cloned cheaply into each request or
//! event. It knows no adapter: which ones run is chosen above the services, in `wiring.rs`.

use crate::config::{Config, Secret};
use crate::keys::KeyRing;
use crate::ports::{ObjectStorage, Ports, Store, WebhookStore, WorkQueue};
use crate::shutdown::Shutdown;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct AppContext {
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
        Self {
            config: Arc::new(config),
            keys: Arc::new(keys),
            status_secret: Arc::new(status_secret),
            store,
            storage,
            queue,
            webhooks,
            deliveries,
            decodes,
            shutdown: Shutdown::default(),
        }
    }

    /// The key status tokens are signed with.
    pub fn status_secret(&self) -> &[u8] {
        self.status_secret.0.as_bytes()
    }
}
