//! The `websocket` connector, client side: read messages from a WebSocket server (source) and
//! send records to one (sink), over `ws://` or `wss://`.
//!
//! `connector Feed = websocket (url: "wss://host/path", subscribe: "{\"op\":\"subscribe\"}")`
//!
//! Parameters of both roles: `url` (required, `ws://` or `wss://`, `${ENV}` expands), `headers`
//! (an array of `"Name: value"` added to the upgrade request, `${ENV}` expands in values),
//! `subscribe` (a text, or an array of texts, sent after each connection, `${ENV}` expands),
//! `keep_alive` (default `30s`; `0s` turns pings off), `max_message` (bytes, default 16 MiB),
//! `backoff` (default `100ms`) and `max_backoff` (default `5s`) between connection attempts, and
//! for `wss://` `ca_file`, `client_cert` and `client_key` (see [`crate::tls`]). Sink only
//! ([`SINK_PARAMS`]): `queue_capacity`, `dead_letter`, `close_timeout` and `retries`.
//!
//! This file reads the parameters and makes connections (`connect`); [`source`] and [`sink`]
//! hold the two roles, each on a thread of its own running the synchronous tungstenite client,
//! so the engine never waits on the network.
//!
//! **Limits.** A message (or frame) larger than `max_message` is refused by tungstenite from the
//! frame header, before its payload is read or allocated; the connection is then dropped and
//! made again. The upgrade answer is limited by tungstenite (64 KiB of headers), and a connection
//! attempt (TCP, TLS and upgrade) takes at most [`CONNECT_TIMEOUT`].
//!
//! **Final failures.** A server certificate that does not verify, and an upgrade answered with
//! 401 or 403 (bad credentials in `headers`), come back on every attempt: the source stops with a
//! fatal problem, the sink dead-letters its records. Everything else (refused connections,
//! other statuses, broken connections) is retried with backoff.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderName, HeaderValue, Uri};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::config::{expand_env, ConnectorConfig, Params};
use crate::error::ConfigError;
use crate::source::{Source, SourceConfig, SourceContext, SourceSender};
use crate::tls::TlsSettings;
use crate::{Sink, SinkContext};

pub mod sink;
pub mod source;

/// Parameters only the websocket source reads: none, every source parameter is shared with the
/// sink.
pub const SOURCE_PARAMS: &[&str] = &[];

/// Parameters only the websocket sink reads (a websocket connector used as a source tolerates
/// them).
pub const SINK_PARAMS: &[&str] = &[
    "queue_capacity",
    "dead_letter",
    "close_timeout",
    "retries",
    "idempotency_field",
];

/// The default of `max_message`: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;

/// How long one connection attempt (TCP connect, TLS handshake, HTTP upgrade) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a blocked write may wait before the connection counts as broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a handshake in progress looks at the stop flag and its deadline.
const HANDSHAKE_POLL: Duration = Duration::from_millis(100);

/// Headers the WebSocket handshake sets itself; `headers` may not replace them.
const HANDSHAKE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "host",
];

/// Settings shared by the websocket source and sink, after validation and `${ENV}` expansion.
#[derive(Clone)]
pub struct WsSettings {
    /// The URL as configured, secrets expanded (the request goes there).
    url: String,
    /// `ws://host:port/path`: the URL without its query (which often carries a token), for
    /// messages, places and [`Source::describe`].
    pub display: String,
    /// Server host name or IP address (without brackets for IPv6).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Extra headers of the upgrade request, secrets already expanded.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Texts sent, in order, after each connection.
    subscribe: Vec<String>,
    /// How long the connection may be quiet before a ping, and how long a ping may wait for an
    /// answer; zero turns pings off.
    pub keep_alive: Duration,
    /// The largest message (and frame) accepted or sent, in bytes.
    pub max_message: usize,
    /// First delay before reconnecting; it doubles up to `max_backoff`.
    pub backoff: Duration,
    /// Longest delay between two connection attempts.
    pub max_backoff: Duration,
    /// TLS settings; `None` for `ws://`.
    pub tls: Option<TlsSettings>,
}

impl std::fmt::Debug for WsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values, the query and the subscribe texts may hold secrets: show names only.
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("WsSettings")
            .field("url", &self.display)
            .field("headers", &header_names)
            .field("subscribe", &self.subscribe.len())
            .field("keep_alive", &self.keep_alive)
            .field("max_message", &self.max_message)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("tls", &self.tls)
            .finish()
    }
}

impl PartialEq for WsSettings {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
            && self.headers == other.headers
            && self.subscribe == other.subscribe
            && self.keep_alive == other.keep_alive
            && self.max_message == other.max_message
            && self.backoff == other.backoff
            && self.max_backoff == other.max_backoff
            && self.tls == other.tls
    }
}

impl WsSettings {
    /// Reads the parameters common to both roles.
    pub(crate) fn read(p: &mut Params<'_>, base_dir: &Path) -> Result<WsSettings, ConfigError> {
        let name = p.connector();
        let raw = p.required_string("url", "write `url: \"wss://host/path\"`")?;
        let url = expand_env(name, "url", raw.trim())?;
        let target = parse_url(&url).map_err(|why| p.invalid("url", why))?;
        let mut headers = Vec::new();
        for raw in p.strings("headers")? {
            let (header, value) = crate::http::parse_header(p, raw)?;
            if HANDSHAKE_HEADERS.contains(&header.to_ascii_lowercase().as_str()) {
                return Err(p.invalid(
                    "headers",
                    format!("`{header}` is set by the WebSocket handshake itself"),
                ));
            }
            let header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                p.invalid("headers", format!("`{header}` is not a valid header name"))
            })?;
            let value = HeaderValue::from_str(&value).map_err(|_| {
                p.invalid(
                    "headers",
                    format!("the value of header `{header}` contains characters not allowed in HTTP headers"),
                )
            })?;
            headers.push((header, value));
        }
        let subscribe = p
            .string_or_strings("subscribe")?
            .into_iter()
            .map(|text| expand_env(name, "subscribe", text))
            .collect::<Result<Vec<_>, _>>()?;
        let keep_alive = p.duration("keep_alive", Duration::from_secs(30))?;
        if !keep_alive.is_zero() && keep_alive < Duration::from_millis(100) {
            return Err(p.invalid(
                "keep_alive",
                "must be at least 100ms (or 0s to turn pings off)",
            ));
        }
        let max_message = p.count("max_message", DEFAULT_MAX_MESSAGE as u64, 1)?;
        let max_message = usize::try_from(max_message)
            .map_err(|_| p.invalid("max_message", format!("{max_message} is too large")))?;
        if let Some(text) = subscribe.iter().find(|t| t.len() > max_message) {
            return Err(p.invalid(
                "subscribe",
                format!(
                    "a text of {} bytes is larger than `max_message` ({max_message})",
                    text.len()
                ),
            ));
        }
        let backoff = p.duration("backoff", Duration::from_millis(100))?;
        if backoff.is_zero() {
            return Err(p.invalid("backoff", "must be longer than 0s"));
        }
        let max_backoff = p.duration("max_backoff", Duration::from_secs(5))?;
        if max_backoff < backoff {
            return Err(p.invalid("max_backoff", "must not be shorter than `backoff`"));
        }
        let tls = if target.tls {
            Some(TlsSettings::read(p, base_dir, "server")?)
        } else {
            for param in crate::tls::TLS_FILE_PARAMS {
                if p.string(param)?.is_some() {
                    return Err(p.invalid(param, "needs a TLS connection: write `wss://` in `url`"));
                }
            }
            None
        };
        Ok(WsSettings {
            url,
            display: target.display,
            host: target.host,
            port: target.port,
            headers,
            subscribe,
            keep_alive,
            max_message,
            backoff,
            max_backoff,
            tls,
        })
    }

    /// The tungstenite limits: `max_message` for whole messages and single frames.
    fn protocol_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message))
    }

    /// The upgrade request: tungstenite's handshake headers plus `headers`.
    fn request(&self) -> Result<tungstenite::handshake::client::Request, tungstenite::Error> {
        let mut request = self.url.as_str().into_client_request()?;
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        Ok(request)
    }
}

/// What [`parse_url`] finds in a `ws://` or `wss://` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    tls: bool,
    display: String,
}

/// Checks a `ws://` or `wss://` URL and takes out what connecting and messages need.
fn parse_url(text: &str) -> Result<Target, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("\"{}\" is not a URL: {e}", redact(text)))?;
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        Some(other) => {
            return Err(format!(
                "unknown scheme `{other}://`; write ws://host/path or wss://host/path"
            ))
        }
        None => return Err("write ws://host/path or wss://host/path".into()),
    };
    let Some(authority) = uri.authority() else {
        return Err("the URL has no host".into());
    };
    if authority.as_str().contains('@') {
        return Err(
            "user names and passwords do not go in the URL; send them in `headers` \
             (e.g. \"Authorization: Bearer ${TOKEN}\")"
                .into(),
        );
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    let port = match authority.port_u16() {
        Some(0) => return Err("port 0 is not a TCP port one can connect to".into()),
        Some(port) => port,
        None if tls => 443,
        None => 80,
    };
    let scheme = if tls { "wss" } else { "ws" };
    let display = format!("{scheme}://{authority}{}", uri.path());
    Ok(Target {
        host,
        port,
        tls,
        display,
    })
}

/// `text` without its query string, which may hold a token.
fn redact(text: &str) -> &str {
    text.split_once('?').map_or(text, |(before, _)| before)
}

/// The TCP stream under a connection, plain or with TLS.
pub(crate) enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }

    /// Ends TLS politely (close_notify) before the socket is dropped.
    fn shutdown(&mut self) {
        if let Stream::Tls(tls) = self {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// Retrying may help (refused, unreachable, timed out, a 5xx answer): the reason.
    Retry(String),
    /// Retrying cannot help: what was refused and why (`the TLS handshake: ...`, `the upgrade
    /// request: HTTP 401 Unauthorized (check `headers`)`).
    Final(String),
    /// The connector was stopped meanwhile.
    Stopped,
}

/// Why an open connection ended.
#[derive(Debug)]
pub(crate) struct Lost {
    /// What happened, for messages.
    pub(crate) reason: String,
    /// The server sent a message larger than `max_message` (refused unread).
    pub(crate) too_large: bool,
}

impl Lost {
    fn new(reason: impl Into<String>) -> Lost {
        Lost {
            reason: reason.into(),
            too_large: false,
        }
    }
}

/// An open WebSocket connection with its keep-alive bookkeeping.
pub(crate) struct Connection {
    ws: WebSocket<Stream>,
    keep_alive: Duration,
    /// When the server last sent anything (a message, a ping, a pong).
    last_heard: Instant,
    /// When our unanswered ping went out.
    ping_sent: Option<Instant>,
}

/// A data message read from the server.
pub(crate) enum Data {
    /// A text message.
    Text(Vec<u8>),
    /// A binary message, as received.
    Binary(Vec<u8>),
}

impl Connection {
    /// Reads at most one message, waiting at most the socket's read timeout. `Ok(None)` when
    /// nothing (or only a control frame) arrived; pings are answered by tungstenite and the
    /// keep-alive ping goes out from here.
    pub(crate) fn poll(&mut self) -> Result<Option<Data>, Lost> {
        match self.ws.read() {
            Ok(message) => {
                self.last_heard = Instant::now();
                self.ping_sent = None;
                match message {
                    Message::Text(text) => Ok(Some(Data::Text(text.as_bytes().to_vec()))),
                    Message::Binary(bytes) => Ok(Some(Data::Binary(bytes.to_vec()))),
                    Message::Close(frame) => {
                        // Send tungstenite's queued answer, so the server sees a clean close.
                        let _ = self.ws.flush();
                        Err(Lost::new(match frame {
                            Some(f) if f.reason.is_empty() => {
                                format!("the server closed the connection (code {})", f.code)
                            }
                            Some(f) => format!(
                                "the server closed the connection (code {}: {})",
                                f.code, f.reason
                            ),
                            None => "the server closed the connection".to_string(),
                        }))
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
                }
            }
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                self.keep_alive()?;
                Ok(None)
            }
            Err(tungstenite::Error::Capacity(e)) => Err(Lost {
                reason: format!("the server sent a message over `max_message`: {e}"),
                too_large: true,
            }),
            Err(e) => Err(Lost::new(describe(&e))),
        }
    }

    /// Pings a quiet server; gives up on one that does not answer within `keep_alive`.
    fn keep_alive(&mut self) -> Result<(), Lost> {
        if self.keep_alive.is_zero() {
            return Ok(());
        }
        let now = Instant::now();
        match self.ping_sent {
            Some(sent) if now.duration_since(sent) >= self.keep_alive => Err(Lost::new(format!(
                "no answer to a ping within {}ms (keep_alive)",
                self.keep_alive.as_millis()
            ))),
            Some(_) => Ok(()),
            None if now.duration_since(self.last_heard) >= self.keep_alive => {
                self.ping_sent = Some(now);
                self.ws
                    .send(Message::Ping(Default::default()))
                    .map_err(|e| Lost::new(describe(&e)))
            }
            None => Ok(()),
        }
    }

    /// Queues one text message (written out by [`Connection::flush`] or when the buffer fills).
    pub(crate) fn write_text(&mut self, text: String) -> Result<(), Lost> {
        self.ws
            .write(Message::text(text))
            .map_err(|e| Lost::new(describe(&e)))
    }

    /// Writes everything queued to the socket.
    pub(crate) fn flush(&mut self) -> Result<(), Lost> {
        self.ws.flush().map_err(|e| Lost::new(describe(&e)))
    }

    /// The close handshake: sends a Close frame and waits at most `wait` for the server's
    /// answer, then drops the connection.
    pub(crate) fn close(mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        if self.ws.close(None).is_ok() {
            while Instant::now() < deadline {
                match self.ws.read() {
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                    // ConnectionClosed: the server answered and closed; anything else: gone.
                    Err(_) => break,
                }
            }
        }
        self.ws.get_mut().shutdown();
    }
}

/// Whether an I/O error is a read or write timeout (the socket's poll interval).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A tungstenite error in words.
fn describe(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "the connection was closed".into()
        }
        tungstenite::Error::Io(io) if is_timeout(io) => {
            format!("a write took longer than {}s", WRITE_TIMEOUT.as_secs())
        }
        other => other.to_string(),
    }
}

/// Connects to the server, upgrades to WebSocket and sends the `subscribe` texts, within
/// [`CONNECT_TIMEOUT`]. `read_timeout` becomes the socket's poll interval afterwards.
pub(crate) fn connect(
    settings: &WsSettings,
    read_timeout: Duration,
    stopped: &dyn Fn() -> bool,
) -> Result<Connection, ConnectError> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let tcp = tcp_connect(settings, deadline)?;
    let io_error = |e: io::Error| ConnectError::Retry(e.to_string());
    tcp.set_nodelay(true).map_err(io_error)?;
    tcp.set_read_timeout(Some(HANDSHAKE_POLL))
        .map_err(io_error)?;
    tcp.set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(io_error)?;
    let stream = match &settings.tls {
        None => Stream::Plain(tcp),
        Some(tls) => tls_handshake(settings, tls, tcp, deadline, stopped)?,
    };
    let request = settings
        .request()
        .map_err(|e| ConnectError::Final(format!("the upgrade request: {e}")))?;
    let mut attempt =
        tungstenite::client::client_with_config(request, stream, Some(settings.protocol_config()));
    let mut ws = loop {
        match attempt {
            Ok((ws, _response)) => break ws,
            Err(HandshakeError::Interrupted(mid)) => {
                if stopped() {
                    return Err(ConnectError::Stopped);
                }
                if Instant::now() >= deadline {
                    return Err(ConnectError::Retry(format!(
                        "no WebSocket upgrade within {}s",
                        CONNECT_TIMEOUT.as_secs()
                    )));
                }
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(e)) => return Err(upgrade_failure(e)),
        }
    };
    for text in &settings.subscribe {
        ws.send(Message::text(text.clone()))
            .map_err(|e| ConnectError::Retry(format!("sending `subscribe`: {}", describe(&e))))?;
    }
    ws.get_ref()
        .tcp()
        .set_read_timeout(Some(read_timeout))
        .map_err(io_error)?;
    Ok(Connection {
        ws,
        keep_alive: settings.keep_alive,
        last_heard: Instant::now(),
        ping_sent: None,
    })
}

/// The TCP connection, trying each address of the host in turn.
fn tcp_connect(settings: &WsSettings, deadline: Instant) -> Result<TcpStream, ConnectError> {
    let addrs = (settings.host.as_str(), settings.port)
        .to_socket_addrs()
        .map_err(|e| ConnectError::Retry(format!("cannot resolve `{}`: {e}", settings.host)))?;
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(ConnectError::Retry(match last {
        Some(e) => format!("cannot connect: {e}"),
        None => format!("`{}` has no address to connect to", settings.host),
    }))
}

/// The TLS handshake, looking at the stop flag and the deadline between reads.
fn tls_handshake(
    settings: &WsSettings,
    tls: &TlsSettings,
    mut tcp: TcpStream,
    deadline: Instant,
    stopped: &dyn Fn() -> bool,
) -> Result<Stream, ConnectError> {
    let server_name =
        rustls::pki_types::ServerName::try_from(settings.host.clone()).map_err(|e| {
            ConnectError::Final(format!(
                "the TLS handshake: the host is not a valid TLS server name ({e})"
            ))
        })?;
    let mut conn = rustls::ClientConnection::new(tls.config(), server_name)
        .map_err(|e| ConnectError::Final(format!("the TLS handshake: {e}")))?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                if stopped() {
                    return Err(ConnectError::Stopped);
                }
                if Instant::now() >= deadline {
                    return Err(ConnectError::Retry(format!(
                        "no TLS handshake within {}s",
                        CONNECT_TIMEOUT.as_secs()
                    )));
                }
            }
            Err(e) => {
                return Err(
                    match crate::tls::rustls_error(&e)
                        .and_then(|r| crate::tls::final_failure(r, "server"))
                    {
                        Some(why) => ConnectError::Final(why),
                        None => ConnectError::Retry(format!("the TLS handshake failed: {e}")),
                    },
                )
            }
        }
    }
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
}

/// Sorts a failed upgrade into final (credentials) or retryable.
fn upgrade_failure(e: tungstenite::Error) -> ConnectError {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let text = format!(
                "HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            let text = text.trim_end();
            if matches!(status.as_u16(), 401 | 403) {
                ConnectError::Final(format!("the upgrade request: {text} (check `headers`)"))
            } else {
                ConnectError::Retry(format!("the server answered the upgrade with {text}"))
            }
        }
        tungstenite::Error::Io(io) => match crate::tls::rustls_error(&io)
            .and_then(|r| crate::tls::final_failure(r, "server"))
        {
            Some(why) => ConnectError::Final(why),
            None => ConnectError::Retry(format!("the WebSocket upgrade failed: {io}")),
        },
        other => ConnectError::Retry(format!(
            "the WebSocket upgrade failed: {}",
            describe(&other)
        )),
    }
}

/// Starts a websocket source: connects and delivers each message.
pub(crate) fn open_source(
    config: &SourceConfig,
    context: &SourceContext,
    sender: SourceSender,
) -> Result<Box<dyn Source>, ConfigError> {
    Ok(Box::new(source::WebSocketSource::start(
        config, context, sender,
    )?))
}

/// Opens a websocket sink: sends each record as one text message.
pub(crate) fn open_sink(
    config: &ConnectorConfig,
    context: &SinkContext,
) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(sink::WebSocketSink::open(config, context)?))
}

/// Shared by the tests of both roles.
#[cfg(test)]
pub(crate) fn settings_of(
    params: &[(&str, crate::ConfigValue)],
) -> Result<WsSettings, ConfigError> {
    let config = params
        .iter()
        .fold(ConnectorConfig::new("Feed", "websocket"), |c, (k, v)| {
            c.param(*k, v.clone())
        });
    let mut p = Params::for_role(&config, "source");
    let settings = WsSettings::read(&mut p, Path::new("/base"))?;
    p.finish()?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigValue::{Array, Duration as Dur, Int, Str};

    fn check(text: &str) -> Result<(String, u16, bool, String), String> {
        parse_url(text).map(|t| (t.host, t.port, t.tls, t.display))
    }

    #[test]
    fn urls_give_host_port_tls_and_a_display_without_the_query() {
        assert_eq!(
            check("ws://127.0.0.1:9001/feed?token=s3cret"),
            Ok((
                "127.0.0.1".into(),
                9001,
                false,
                "ws://127.0.0.1:9001/feed".into()
            ))
        );
        assert_eq!(
            check("wss://example.com"),
            Ok(("example.com".into(), 443, true, "wss://example.com/".into()))
        );
        assert_eq!(
            check("ws://[::1]/x"),
            Ok(("::1".into(), 80, false, "ws://[::1]/x".into()))
        );
    }

    #[test]
    fn bad_urls_say_why_without_echoing_the_query() {
        assert!(check("http://h/x")
            .expect_err("scheme")
            .contains("unknown scheme `http://`"));
        assert!(check("ws://user:pw@h/x")
            .expect_err("userinfo")
            .contains("`headers`"));
        assert!(check("ws://h:0/").expect_err("port 0").contains("port 0"));
        assert!(check("h/x").is_err());
        let err = check("ws://h x/?token=s3cret").expect_err("space");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn parameters_are_read_with_their_defaults() {
        let s = settings_of(&[("url", Str("ws://h:1/x".into()))]).expect("valid");
        assert_eq!(s.keep_alive, Duration::from_secs(30));
        assert_eq!(s.max_message, DEFAULT_MAX_MESSAGE);
        assert_eq!(s.backoff, Duration::from_millis(100));
        assert_eq!(s.max_backoff, Duration::from_secs(5));
        assert!(s.subscribe.is_empty() && s.headers.is_empty() && s.tls.is_none());
        let s = settings_of(&[
            ("url", Str("ws://h:1/x".into())),
            ("subscribe", Str("{\"op\":\"sub\"}".into())),
            (
                "headers",
                Array(vec![Str("Authorization: Bearer t".into())]),
            ),
            ("max_message", Int(1024)),
            ("keep_alive", Dur(0)),
        ])
        .expect("valid");
        assert_eq!(s.subscribe, vec!["{\"op\":\"sub\"}".to_string()]);
        assert_eq!(s.headers.len(), 1);
        assert_eq!(s.max_message, 1024);
        assert!(s.keep_alive.is_zero());
        let many = settings_of(&[
            ("url", Str("ws://h:1/x".into())),
            ("subscribe", Array(vec![Str("a".into()), Str("b".into())])),
        ])
        .expect("array of texts");
        assert_eq!(many.subscribe, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn unusable_parameters_are_configuration_errors() {
        let err = settings_of(&[]).expect_err("no url");
        assert!(
            err.to_string().contains("missing required parameter `url`"),
            "{err}"
        );
        let url = || ("url", Str("ws://h:1/x".into()));
        let err = settings_of(&[url(), ("ca_file", Str("ca.pem".into()))]).expect_err("ws://");
        assert!(err.to_string().contains("needs a TLS connection"), "{err}");
        let err = settings_of(&[url(), ("headers", Array(vec![Str("Upgrade: h2c".into())]))])
            .expect_err("handshake header");
        assert!(err.to_string().contains("handshake itself"), "{err}");
        let err = settings_of(&[url(), ("keep_alive", Dur(1_000_000))]).expect_err("1ms");
        assert!(err.to_string().contains("`keep_alive`"), "{err}");
        let err = settings_of(&[
            url(),
            ("max_message", Int(2)),
            ("subscribe", Str("abc".into())),
        ])
        .expect_err("subscribe over the limit");
        assert!(
            err.to_string().contains("larger than `max_message`"),
            "{err}"
        );
        let err = settings_of(&[url(), ("subscrbe", Str("x".into()))]).expect_err("typo");
        assert!(
            err.to_string().ends_with("did you mean `subscribe`?"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = settings_of(&[
            ("url", Str("ws://h:1/x?token=s3cret".into())),
            (
                "headers",
                Array(vec![Str("Authorization: Bearer t0ken".into())]),
            ),
            ("subscribe", Str("{\"key\":\"k3y\"}".into())),
        ])
        .expect("valid");
        let shown = format!("{s:?}");
        for secret in ["s3cret", "t0ken", "k3y"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("authorization"), "{shown}");
    }
}
