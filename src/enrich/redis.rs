//! `.enrich` over a `redis` connector, speaking RESP over TCP: one key per
//! lookup key, named by `key_template` (default `{key}`, e.g.
//! `user:{key}`), holding either a JSON object (`format: "json"`, the
//! default; a batch is one `MGET`) or a hash (`format: "hash"`; a batch is
//! pipelined `HGETALL`s, one round trip). A missing key is an answer with
//! no fields. Connections are kept in a small pool (named `varpulis-enrich`)
//! and dropped on errors; a pooled one the server closed is replaced once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use varpulis_program::{ConnectorDef, Value, ValueMap};

use super::cache::Answer;
use super::live::Backend;

/// Largest bulk string or array accepted from the server.
const MAX_BULK: usize = 16 << 20;

/// How values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Hash,
}

/// A Redis lookup store.
pub struct RedisBackend {
    address: String,
    password: Option<String>,
    db: Option<u32>,
    template: String,
    format: Format,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

struct Conn {
    reader: BufReader<TcpStream>,
}

/// A RESP reply.
#[derive(Debug)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply in words, for errors.
    fn describe(&self) -> String {
        match self {
            Reply::Simple(s) => format!("status {s:?}"),
            Reply::Error(e) => format!("error {e:?}"),
            Reply::Int(n) => format!("integer {n}"),
            Reply::Bulk(None) => "nil".to_string(),
            Reply::Bulk(Some(b)) => format!("a string of {} bytes", b.len()),
            Reply::Array(None) => "nil array".to_string(),
            Reply::Array(Some(a)) => format!("an array of {} items", a.len()),
        }
    }
}

impl RedisBackend {
    /// The backend of connector `def` (`url: "redis://[:password@]host:port[/db]"`).
    pub fn new(def: &ConnectorDef, timeout: Duration) -> anyhow::Result<RedisBackend> {
        let url =
            super::text_param(def, "url")?.unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
        let rest = url.strip_prefix("redis://").ok_or_else(|| {
            anyhow::anyhow!("connector `{}`: `url` must start with redis://", def.name)
        })?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let password = auth.map(|a| a.rsplit_once(':').map_or(a, |(_, p)| p).to_string());
        let (address, db) = match rest.split_once('/') {
            Some((h, d)) if !d.is_empty() => (
                h.to_string(),
                Some(d.parse::<u32>().map_err(|_| {
                    anyhow::anyhow!("connector `{}`: database {d:?} is not a number", def.name)
                })?),
            ),
            Some((h, _)) => (h.to_string(), None),
            None => (rest.to_string(), None),
        };
        let address = if address.contains(':') {
            address
        } else {
            format!("{address}:6379")
        };
        let template = super::text_param(def, "key_template")?.unwrap_or_else(|| "{key}".into());
        let format = match super::text_param(def, "format")?.as_deref() {
            None | Some("json") => Format::Json,
            Some("hash") => Format::Hash,
            Some(other) => anyhow::bail!(
                "connector `{}`: `format` must be \"json\" or \"hash\", not {other:?}",
                def.name
            ),
        };
        Ok(RedisBackend {
            address,
            password,
            db,
            template,
            format,
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn connect(&self) -> Result<Conn, String> {
        let addr = self
            .address
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.address))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.address))?;
        let s = TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| format!("{}: {e}", self.address))?;
        s.set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        let mut c = Conn {
            reader: BufReader::new(s),
        };
        if let Some(p) = &self.password {
            c.expect_ok(&[b"AUTH", p.as_bytes()])?;
        }
        if let Some(db) = self.db {
            c.expect_ok(&[b"SELECT", db.to_string().as_bytes()])?;
        }
        // Named, so `CLIENT LIST` shows whose connections these are.
        c.expect_ok(&[b"CLIENT", b"SETNAME", b"varpulis-enrich"])?;
        Ok(c)
    }

    fn run(&self, keys: &[String]) -> Result<Vec<Answer>, String> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (mut conn, reused) = match pooled {
            Some(c) => (c, true),
            None => (self.connect()?, false),
        };
        let answers = match self.attempt(&mut conn, keys) {
            Ok(a) => a,
            // A pooled connection may have been closed by the server while
            // idle: once more on a fresh one.
            Err(_) if reused => {
                conn = self.connect()?;
                self.attempt(&mut conn, keys)?
            }
            Err(e) => return Err(e),
        };
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        Ok(answers)
    }

    /// One batch on `conn`; the connection is unusable after an error.
    fn attempt(&self, conn: &mut Conn, keys: &[String]) -> Result<Vec<Answer>, String> {
        let names: Vec<String> = keys
            .iter()
            .map(|k| self.template.replace("{key}", k))
            .collect();
        let answers = match self.format {
            Format::Json => {
                let mut cmd: Vec<&[u8]> = vec![b"MGET"];
                cmd.extend(names.iter().map(|n| n.as_bytes()));
                conn.send(&[cmd])?;
                match conn.read()? {
                    Reply::Array(Some(items)) if items.len() == keys.len() => items
                        .into_iter()
                        .map(json_answer)
                        .collect::<Result<Vec<_>, _>>()?,
                    other => return Err(format!("unexpected MGET reply: {}", other.describe())),
                }
            }
            Format::Hash => {
                let cmds: Vec<Vec<&[u8]>> = names
                    .iter()
                    .map(|n| vec![&b"HGETALL"[..], n.as_bytes()])
                    .collect();
                conn.send(&cmds)?;
                let mut out = Vec::with_capacity(keys.len());
                for _ in keys {
                    out.push(hash_answer(conn.read()?)?);
                }
                out
            }
        };
        Ok(answers)
    }
}

impl Backend for RedisBackend {
    fn fetch(&self, keys: &[String]) -> Vec<Result<Answer, String>> {
        super::live::per_key(self.run(keys), keys)
    }

    fn batches(&self) -> bool {
        true
    }
}

fn json_answer(r: Reply) -> Result<Answer, String> {
    match r {
        Reply::Bulk(None) => Ok(None),
        Reply::Bulk(Some(b)) => {
            let j: serde_json::Value = serde_json::from_slice(&b)
                .map_err(|e| format!("a stored value is not JSON: {e}"))?;
            super::object_fields(&j).map(Some)
        }
        Reply::Error(e) => Err(e),
        other => Err(format!("unexpected reply: {}", other.describe())),
    }
}

fn hash_answer(r: Reply) -> Result<Answer, String> {
    match r {
        Reply::Array(Some(items)) if items.is_empty() => Ok(None),
        Reply::Array(Some(items)) => {
            let mut m = ValueMap::new();
            let mut it = items.into_iter();
            while let (Some(Reply::Bulk(Some(k))), Some(Reply::Bulk(Some(v)))) =
                (it.next(), it.next())
            {
                m.insert(
                    Arc::from(String::from_utf8_lossy(&k).as_ref()),
                    Value::str(String::from_utf8_lossy(&v)),
                );
            }
            Ok(Some(Arc::new(m)))
        }
        Reply::Error(e) => Err(e),
        other => Err(format!("unexpected HGETALL reply: {}", other.describe())),
    }
}

impl Conn {
    fn send(&mut self, cmds: &[Vec<&[u8]>]) -> Result<(), String> {
        let mut buf = Vec::new();
        for cmd in cmds {
            buf.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
            for part in cmd {
                buf.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
                buf.extend_from_slice(part);
                buf.extend_from_slice(b"\r\n");
            }
        }
        self.reader
            .get_mut()
            .write_all(&buf)
            .map_err(|e| e.to_string())
    }

    fn expect_ok(&mut self, cmd: &[&[u8]]) -> Result<(), String> {
        self.send(&[cmd.to_vec()])?;
        match self.read()? {
            Reply::Simple(_) => Ok(()),
            Reply::Error(e) => Err(e),
            other => Err(format!("unexpected reply: {}", other.describe())),
        }
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_BULK as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| "a reply line is not UTF-8".to_string())
    }

    fn read(&mut self) -> Result<Reply, String> {
        self.read_depth(0)
    }

    fn read_depth(&mut self, depth: usize) -> Result<Reply, String> {
        if depth > 8 {
            return Err("a reply nests too deeply".into());
        }
        let line = self.line()?;
        let (tag, rest) = line.split_at(line.len().min(1));
        let num = || {
            rest.parse::<i64>()
                .map_err(|_| format!("malformed reply line {line:?}"))
        };
        Ok(match tag {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(num()?),
            "$" => {
                let n = num()?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let n = usize::try_from(n).map_err(|e| e.to_string())?;
                    if n > MAX_BULK {
                        return Err(format!("a value of {n} bytes is too large"));
                    }
                    let mut b = vec![0; n + 2];
                    self.reader.read_exact(&mut b).map_err(|e| e.to_string())?;
                    b.truncate(n);
                    Reply::Bulk(Some(b))
                }
            }
            "*" => {
                let n = num()?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    let n = usize::try_from(n).map_err(|e| e.to_string())?;
                    if n > MAX_BULK / 4 {
                        return Err(format!("an array of {n} items is too large"));
                    }
                    let mut items = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        items.push(self.read_depth(depth + 1)?);
                    }
                    Reply::Array(Some(items))
                }
            }
            _ => return Err(format!("malformed reply line {line:?}")),
        })
    }
}
