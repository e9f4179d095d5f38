//! `TestApp`: the real application on port 0, with typed helpers.

use std::net::SocketAddr;
use std::sync::Once;

use missive::Config;
use missive_core::DeliveryStatus;
use missive_store::Store;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::TestDb;
use crate::sink::{SinkOptions, SmtpSink};
use missive::app::startup::{Roles, TaskEnded};
use missive::edge::smtp::SmtpContext;
use missive::queue::delivery::{DeliveryWorker, Routes};
use missive::queue::webhooks::Dispatcher;
use missive::queue::webhooks::client::{ClientSettings, WebhookClient};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The admin key every test app is started with.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    None,
    Admin,
    /// A tenant API key.
    Key(&'a str),
    /// A raw `Authorization` header value.
    Header(&'a str),
}

fn with_auth(request: reqwest::RequestBuilder, auth: Auth<'_>) -> reqwest::RequestBuilder {
    match auth {
        Auth::None => request,
        Auth::Admin => request.bearer_auth(ADMIN_KEY),
        Auth::Key(key) => request.bearer_auth(key),
        Auth::Header(value) => request.header("authorization", value),
    }
}

/// A response with its body parsed as JSON (or `Value::Null` when it is not JSON).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    /// Asserts the status and, for errors, our JSON error shape; returns the body.
    ///
    /// # Panics
    /// On any mismatch, with the whole response in the message.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        if status >= 400 {
            self.assert_error_shape();
        }
        &self.body
    }

    /// Asserts an error of this status and name.
    ///
    /// # Panics
    /// On any mismatch.
    #[track_caller]
    pub fn expect_error(&self, status: u16, name: &str) -> &str {
        self.expect(status);
        assert_eq!(self.body["name"], name, "body: {}", self.text);
        self.body["message"].as_str().unwrap_or_default()
    }

    /// # Panics
    /// When the body is not `{"statusCode", "name", "message"}` matching the status.
    #[track_caller]
    pub fn assert_error_shape(&self) {
        let object = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("error body is not JSON: {}", self.text));
        assert_eq!(
            object.len(),
            3,
            "error body has extra fields: {}",
            self.text
        );
        assert_eq!(self.body["statusCode"], self.status, "body: {}", self.text);
        assert!(
            self.body["name"].as_str().is_some_and(|n| !n.is_empty()),
            "body: {}",
            self.text
        );
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "body: {}",
            self.text
        );
    }
}

/// A tenant created through the admin API, with its first key.
#[derive(Debug, Clone)]
pub struct CreatedTenant {
    pub id: String,
    pub key: String,
    pub key_id: String,
}

/// A running application against its own fresh database.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    /// SMTP submission with STARTTLS offered.
    pub smtp_addr: SocketAddr,
    /// SMTP submission over implicit TLS.
    pub smtps_addr: SocketAddr,
    /// The inbound MX (reports to return paths).
    pub mx_addr: SocketAddr,
    /// What SMTP sessions share, to run one over an in-memory stream.
    pub smtp: Arc<SmtpContext>,
    /// The shared relay every test app delivers to.
    pub sink: SmtpSink,
    /// A worker on the same database and relay, driven by the test (`drain`), never in the
    /// background.
    pub worker: DeliveryWorker,
    /// The webhook dispatcher, driven by hand like the worker (`dispatcher.drain()`); its
    /// posts time out after 2 s.
    pub dispatcher: Dispatcher,
    pub base_url: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    shutdown: CancellationToken,
    server: Option<JoinHandle<Result<(), TaskEnded>>>,
    /// Set by [`TestApp::expect_unsent_mail`]: the test means to leave deliveries queued.
    unsent_mail_expected: AtomicBool,
}

/// An HTTP client for tests (installs the TLS provider reqwest needs first).
#[must_use]
pub fn http_client() -> reqwest::Client {
    init_process();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// The `MISSIVE_SECRET_KEY` of every test app (so a `missive serve` started by a test opens what
/// the test app sealed).
pub const TEST_SECRET_KEY: [u8; 32] = [0x5e; 32];
/// [`TEST_SECRET_KEY`] as the environment gives it.
pub const TEST_SECRET_KEY_BASE64: &str = "Xl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl4=";

/// Once per test process: the TLS provider every client and server here uses.
pub fn init_process() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        drop(rustls::crypto::ring::default_provider().install_default());
    });
}

impl TestApp {
    /// Starts the application with the admin API on.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the application after `adjust` has changed the test configuration.
    ///
    /// # Panics
    /// When the application cannot start.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with_sink(SinkOptions::default(), |config, _| adjust(config)).await
    }

    /// Starts the application with a sink of the given kind; `adjust` sees the sink, to point the
    /// relay at it with the right TLS mode and credentials.
    ///
    /// # Panics
    /// When the application cannot start.
    pub async fn spawn_with_sink(
        options: SinkOptions,
        adjust: impl FnOnce(&mut Config, &SmtpSink),
    ) -> Self {
        init_process();
        let db = TestDb::create().await;
        let sink = SmtpSink::start_with(options).await;
        let mut config = Config::with_database_url(&db.url);
        config.relay.url = sink.relay_url().parse().expect("sink relay URL");
        config.http.addr = "127.0.0.1:0".parse().expect("address");
        config.smtp.addr = "127.0.0.1:0".parse().expect("address");
        config.smtp.smtps_addr = "127.0.0.1:0".parse().expect("address");
        config.mx.addr = "127.0.0.1:0".parse().expect("address");
        config.secrets.admin_key = Some(SecretString::from(ADMIN_KEY));
        config.secrets.secret_key = Some(secrecy::SecretBox::new(Box::new(TEST_SECRET_KEY)));
        config.shutdown.timeout_secs = std::time::Duration::from_secs(5);
        // The test cluster runs with fsync=off for speed; nothing in it outlives the run.
        config.database.allow_unsafe_commits = true;
        adjust(&mut config, &sink);
        let app =
            missive::Application::build_with_store(&config, db.store.clone(), Roles::SUBMISSION)
                .await
                .expect("application starts");
        let addr = app.http_addr().expect("the api role binds");
        let (smtp_addr, smtps_addr) = app.smtp_addrs().expect("the smtp role binds");
        let mx_addr = app.mx_addr().expect("the mx role binds");
        let smtp = app.smtp_context().expect("the smtp role runs");
        let worker = DeliveryWorker::new(
            db.store.clone(),
            Arc::new(
                Routes::new(
                    &config.relay.url,
                    missive::app::startup::tenant_relays(&config).expect("tenant relays"),
                )
                .expect("relay transport"),
            ),
            config.worker_settings(),
        );
        let webhooks = missive::app::startup::webhooks(&config, &db.store).expect("webhooks");
        let client = WebhookClient::new(
            webhooks.targets().clone(),
            ClientSettings {
                timeout: std::time::Duration::from_secs(2),
                ..ClientSettings::default()
            },
        )
        .expect("webhook client");
        let dispatcher = Dispatcher::new(
            db.store.clone(),
            webhooks,
            client,
            config.dispatcher_settings(),
        );
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            addr,
            smtp_addr,
            smtps_addr,
            mx_addr,
            smtp,
            sink,
            worker,
            dispatcher,
            base_url: format!("http://{addr}"),
            client: http_client(),
            db,
            shutdown,
            server: Some(server),
            unsent_mail_expected: AtomicBool::new(false),
        }
    }

    /// Says the test ends with deliveries still queued, deferred or leased on purpose (it checks
    /// acceptance, scheduling or retries, not delivery). Without it, a test that leaves any fails
    /// when its app is dropped, so a path that forgets to deliver cannot hide.
    pub fn expect_unsent_mail(&self) {
        self.unsent_mail_expected.store(true, Ordering::SeqCst);
    }

    #[must_use]
    pub fn store(&self) -> &Store {
        &self.db.store
    }

    /// Sends a request with an optional JSON body.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        request = with_auth(request, auth);
        if let Some(body) = body {
            request = request.json(body);
        }
        Self::read(request.send().await.expect("server answers")).await
    }

    /// Sends raw bytes with the given content type.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn request_raw(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request = with_auth(request, auth);
        Self::read(request.send().await.expect("server answers")).await
    }

    async fn read(response: reqwest::Response) -> Response {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, auth: Auth<'_>) -> Response {
        self.request(Method::GET, path, auth, None).await
    }

    pub async fn post(&self, path: &str, auth: Auth<'_>, body: &Value) -> Response {
        self.request(Method::POST, path, auth, Some(body)).await
    }

    pub async fn patch(&self, path: &str, auth: Auth<'_>, body: &Value) -> Response {
        self.request(Method::PATCH, path, auth, Some(body)).await
    }

    pub async fn delete(&self, path: &str, auth: Auth<'_>) -> Response {
        self.request(Method::DELETE, path, auth, None).await
    }

    /// Runs one SQL statement against the application's database, as another process would.
    ///
    /// # Panics
    /// When the statement fails.
    pub async fn execute_sql(&self, statement: &'static str) {
        sqlx::query(statement)
            .execute(self.store().pool())
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Polls `GET path` with `key` until it answers `status`: for changes made by another
    /// process, which reach this one's key cache through a notification.
    ///
    /// # Panics
    /// After two seconds without that answer.
    pub async fn wait_for_status(&self, path: &str, key: &str, status: u16) {
        for _ in 0..200 {
            if self.get(path, Auth::Key(key)).await.status == status {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("GET {path} never answered {status}");
    }

    /// Sends an email with a tenant key and returns its id.
    ///
    /// # Panics
    /// Unless the API answers 200 with an id.
    pub async fn send_email(&self, key: &str, body: &Value) -> String {
        let response = self.post("/v1/emails", Auth::Key(key), body).await;
        response.expect(200)["id"]
            .as_str()
            .expect("email id")
            .to_owned()
    }

    /// Creates a tenant through the admin API.
    ///
    /// # Panics
    /// Unless the API answers 201 with a tenant and a key.
    pub async fn create_tenant(&self, name: &str) -> CreatedTenant {
        let response = self
            .post("/v1/tenants", Auth::Admin, &json!({ "name": name }))
            .await;
        let body = response.expect(201);
        CreatedTenant {
            id: body["tenant"]["id"].as_str().expect("tenant id").to_owned(),
            key: body["api_key"]["token"].as_str().expect("token").to_owned(),
            key_id: body["api_key"]["id"].as_str().expect("key id").to_owned(),
        }
    }

    /// Issues a key with these scopes through the admin API; returns (key id, token).
    ///
    /// # Panics
    /// Unless the API answers 201.
    pub async fn create_key(
        &self,
        tenant_id: &str,
        name: &str,
        scopes: &[&str],
    ) -> (String, String) {
        let response = self
            .post(
                &format!("/v1/tenants/{tenant_id}/api-keys"),
                Auth::Admin,
                &json!({ "name": name, "scopes": scopes }),
            )
            .await;
        let body = response.expect(201);
        (
            body["id"].as_str().expect("key id").to_owned(),
            body["token"].as_str().expect("token").to_owned(),
        )
    }

    /// Triggers graceful shutdown and waits for the server task.
    ///
    /// # Panics
    /// When the server failed.
    /// Starts the shutdown without waiting for it (to watch what open sessions see).
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if std::thread::panicking() || self.unsent_mail_expected.load(Ordering::SeqCst) {
            return;
        }
        let unsent = unsent_deliveries(&self.db.url);
        assert!(
            unsent.is_empty(),
            "the test ended with {} deliveries not sent (drain the worker, or call \
             `app.expect_unsent_mail()` if that is the point):\n{}",
            unsent.len(),
            unsent.join("\n")
        );
    }
}

/// Deliveries not yet final (queued, deferred or leased) in the database at `url`, one line each.
///
/// Asked from a thread of its own with its own runtime, since `Drop` cannot wait on the test's.
fn unsent_deliveries(url: &str) -> Vec<String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("connect to the test database");
            let unfinished: Vec<&str> = DeliveryStatus::ALL
                .into_iter()
                .filter(|s| !s.is_final())
                .map(DeliveryStatus::as_str)
                .collect();
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT email_id::text, recipient, status FROM deliveries
                 WHERE status = ANY($1) ORDER BY email_id, id",
            )
            .bind(&unfinished)
            .fetch_all(&mut conn)
            .await
            .expect("list unsent deliveries");
            rows.into_iter()
                .map(|(email, recipient, status)| format!("  {email} {recipient}: {status}"))
                .collect()
        })
    })
    .join()
    .expect("the unsent-delivery check ran")
}
