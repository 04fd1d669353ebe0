//! The listener: accept loop, connection cap, per-connection limits and a bounded shutdown.

use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::Role;
use crate::body::GuardedBody;
use crate::config::{HttpConfig, Limits};
use crate::error::{json_error, HttpError};
use crate::io::{Activity, Tracked};
use crate::stats::{bump, Counters, HttpStats};

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Connections being refused at the same time (each answered `503` within a second); past
/// this, a connection over the cap is closed without an answer.
const REFUSING_AT_ONCE: usize = 64;

/// Reads a listener's counters ([`Server::stats_handle`]).
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// The listener's counters now.
    pub fn stats(&self) -> HttpStats {
        self.0.stats()
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsHandle").field(&self.stats()).finish()
    }
}

/// A running listener. Dropping it shuts it down (bounded, see [`Server::shutdown`]).
pub struct Server {
    name: String,
    address: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    router: Router,
    limits: Limits,
    keys: Option<crate::auth::Keys>,
    public_paths: Vec<String>,
    tls: Option<TlsAcceptor>,
    counters: Counters,
    slots: Arc<Semaphore>,
    max_connections: u32,
    refusing: Arc<Semaphore>,
}

fn resolve(config: &HttpConfig) -> Result<SocketAddr, HttpError> {
    let invalid = |reason: String| HttpError::Address {
        listener: config.name.clone(),
        address: config.listen.clone(),
        reason,
    };
    let mut addresses = config
        .listen
        .to_socket_addrs()
        .map_err(|e| invalid(e.to_string()))?;
    addresses
        .next()
        .ok_or_else(|| invalid("it resolves to no address".into()))
}

impl Server {
    /// Binds the listener and starts serving `router` on a runtime of its own.
    ///
    /// Fails with a message naming the listener when the address is unusable, a TLS file is
    /// wrong, or the address is not a loopback one and neither keys nor client certificates
    /// are required.
    pub fn start(config: HttpConfig, router: Router) -> Result<Server, HttpError> {
        let name = config.name.clone();
        let wanted = resolve(&config)?;
        if !wanted.ip().is_loopback() && !config.authenticated() {
            return Err(HttpError::Insecure {
                listener: name,
                address: wanted.to_string(),
            });
        }
        let tls = match &config.tls {
            Some(files) => Some(TlsAcceptor::from(crate::tls::server_config(&name, files)?)),
            None => None,
        };
        let bind_error = |source| HttpError::Bind {
            listener: name.clone(),
            address: wanted.to_string(),
            source,
        };
        let std_listener = std::net::TcpListener::bind(wanted).map_err(bind_error)?;
        std_listener.set_nonblocking(true).map_err(bind_error)?;
        let address = std_listener.local_addr().map_err(bind_error)?;
        let runtime_error = |source| HttpError::Runtime {
            listener: name.clone(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("http-{name}"))
            .enable_all()
            .build()
            .map_err(runtime_error)?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(std_listener).map_err(runtime_error)?
        };
        let max_connections = config
            .limits
            .max_connections
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize))
            as u32;
        let shared = Arc::new(Shared {
            router,
            limits: config.limits,
            keys: config.keys.clone().filter(|k| !k.is_empty()),
            public_paths: config.public_paths.clone(),
            tls: tls.clone(),
            counters: Counters::default(),
            slots: Arc::new(Semaphore::new(max_connections as usize)),
            max_connections,
            refusing: Arc::new(Semaphore::new(REFUSING_AT_ONCE)),
        });
        let (stop, stop_rx) = watch::channel(false);
        let looping = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("http-{name}"))
            .spawn(move || {
                runtime.block_on(accept_loop(listener, looping, stop_rx));
                // Whatever still runs after the grace period (a stuck handler, an endless
                // stream) is dropped here.
                runtime.shutdown_timeout(Duration::from_millis(250));
            })
            .map_err(runtime_error)?;
        Ok(Server {
            name,
            address,
            tls: tls.is_some(),
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// The address bound (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The listener's counters.
    pub fn stats(&self) -> HttpStats {
        self.shared.stats()
    }

    /// A handle that reads the listener's counters, for handlers of the listener itself.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.shared.clone())
    }

    /// Stops accepting, lets requests in progress finish for at most
    /// [`Limits::shutdown_grace`], then closes every connection. Returns within the grace
    /// period plus a quarter of a second.
    pub fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match shared.slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    bump(&shared.counters.connections);
                    tokio::spawn(connection(stream, peer, slot, shared.clone(), stop.clone()));
                }
                Err(_) => {
                    bump(&shared.counters.refused);
                    if let Ok(permit) = shared.refusing.clone().try_acquire_owned() {
                        tokio::spawn(refuse(stream, shared.tls.is_some(), permit));
                    }
                }
            },
            Err(_) => {
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener itself is fine. Back off a little so a full table can drain.
                bump(&shared.counters.accept_errors);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    let grace = shared.limits.shutdown_grace;
    let _ = tokio::time::timeout(grace, shared.slots.acquire_many(shared.max_connections)).await;
}

/// Answers a connection over the cap with `503` (plain HTTP only; a TLS client just sees the
/// connection close) without reading its request.
async fn refuse(mut stream: TcpStream, tls: bool, _permit: OwnedSemaphorePermit) {
    if tls {
        return;
    }
    let body = r#"{"error":"too many connections; retry later"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    match shared.tls.clone() {
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(shared.limits.header_timeout, acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(tls)) => {
                    serve(
                        Tracked::new(tls, activity.clone()),
                        peer,
                        activity,
                        shared,
                        stop,
                    )
                    .await
                }
                Ok(Err(_)) | Err(_) => bump(&shared.counters.tls_failures),
            }
        }
        None => {
            serve(
                Tracked::new(stream, activity.clone()),
                peer,
                activity,
                shared,
                stop,
            )
            .await
        }
    }
}

async fn serve<IO>(
    io: IO,
    peer: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let handler = shared.clone();
    // Requests of this connection being answered: a shutdown closes a connection at once
    // when there is none (an idle one, or one still sending its headers).
    let busy = Arc::new(AtomicUsize::new(0));
    let in_service = busy.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let shared = handler.clone();
        let busy = Busy::enter(&in_service);
        async move {
            let answer = shared.respond(request, peer).await;
            drop(busy);
            Ok::<_, Infallible>(answer)
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        return;
    }
    loop {
        let idle_until = activity.last() + limits.idle_timeout;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        bump(&shared.counters.timeouts);
                    } else if e.is_parse_too_large() {
                        bump(&shared.counters.too_large);
                    } else {
                        bump(&shared.counters.protocol_errors);
                    }
                }
                break;
            }
            () = tokio::time::sleep_until(idle_until) => {
                if activity.last() + limits.idle_timeout <= Instant::now() {
                    // Dropping the connection closes the socket.
                    bump(&shared.counters.timeouts);
                    break;
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                if busy.load(Ordering::Acquire) == 0 {
                    break;
                }
                // Finish the request in progress (within the grace period), then close.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Counts a request as being answered for as long as it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn content_length(request: &Request<Incoming>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Shared {
    fn stats(&self) -> HttpStats {
        let open = self.max_connections as usize - self.slots.available_permits();
        self.counters.snapshot(open as u64)
    }

    async fn respond(&self, request: Request<Incoming>, peer: SocketAddr) -> Response {
        bump(&self.counters.requests);
        // The size first: nothing of a body over the limit is read, whatever its framing
        // claims (a chunked body is cut off by the guarded body instead).
        if let Some(length) = content_length(&request) {
            if length > self.limits.max_body {
                bump(&self.counters.too_large);
                let mut answer = json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "the body ({length} bytes) is larger than this endpoint accepts ({} bytes)",
                        self.limits.max_body
                    ),
                );
                answer
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return answer;
            }
        }
        let role = match self.authorise(&request) {
            Ok(role) => role,
            Err(answer) => {
                bump(&self.counters.unauthorized);
                return *answer;
            }
        };
        let (parts, body) = request.into_parts();
        let body = GuardedBody::new(body, self.limits.max_body, self.limits.body_timeout);
        let mut request = Request::from_parts(parts, axum::body::Body::new(body));
        request.extensions_mut().insert(Peer(peer));
        request.extensions_mut().insert(role);
        match self.router.clone().oneshot(request).await {
            Ok(answer) => answer,
            Err(never) => match never {},
        }
    }

    /// The role of the request's key; `Admin` on a listener without keys (loopback or mTLS).
    fn authorise(&self, request: &Request<Incoming>) -> Result<Role, Box<Response>> {
        let Some(keys) = &self.keys else {
            return Ok(Role::Admin);
        };
        let path = request.uri().path();
        if self.public_paths.iter().any(|p| p == path) {
            return Ok(Role::Read);
        }
        match keys.check(request.headers()) {
            Err(why) => {
                let mut answer = json_error(StatusCode::UNAUTHORIZED, why);
                answer
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Err(Box::new(answer))
            }
            Ok(role) if !role.allows(request.method()) => Err(Box::new(json_error(
                StatusCode::FORBIDDEN,
                &format!(
                    "this key has the {} role, which may not {} here",
                    role.as_str(),
                    request.method()
                ),
            ))),
            Ok(role) => Ok(role),
        }
    }
}
