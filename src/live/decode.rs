//! Parsing and decoding of live payloads, on the loop's thread or, for a run
//! on engine workers (`--workers N`, N > 1), on N decoding threads one turn
//! ahead of the loop.
//!
//! A payload's items depend only on the payload, its subscription's default
//! type, its arrival time and `--max-future-skew`, and decoding an item
//! ([`decode_alone`]) only on the program: so any thread may do both. What
//! depends on the order of the input (the event-time merge of sources, the
//! time given to items that are not events, counters, reports, `--strict`,
//! dead letters) stays on the loop's thread, which takes the decoded
//! payloads back in arrival order ([`crate::job::Job::admit`] when an item
//! runs).
//!
//! The loop hands over one turn at a time (at most `DRAIN_BATCH` payloads):
//! [`Decoders::dispatch`] cuts it into contiguous parts of about equal bytes
//! and sends one to each thread over a bounded channel of one, without
//! waiting; the loop goes on with the turn before and takes this one back
//! in order ([`Decoders::collect`]) on its next turn. A thread still busy
//! holds the next dispatch back, so nothing is queued past one turn ahead.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};
use varpulis_program::{EventDecoder, RawEvent};

use crate::job::{decode_alone, Decoded};

/// A turn whose payloads hold fewer bytes than this is decoded on the loop's
/// thread: a hop to another thread would cost more than it saves, and a
/// single small request keeps the latency of one engine's path.
const INLINE_BYTES: usize = 16 * 1024;

/// What is known of one payload before its items are parsed.
#[derive(Clone)]
pub(crate) struct Payload {
    /// The bytes.
    pub(crate) bytes: Arc<[u8]>,
    /// The type of items that name none (the subscription's `.from` type).
    pub(crate) default_type: Option<Arc<str>>,
    /// Its arrival (ns since the epoch): the time of items without a
    /// `timestamp`.
    pub(crate) arrival: i64,
    /// Keep each event's parsed form beside its decoded one (a traced
    /// payload: the span names the event's type).
    pub(crate) keep_raw: bool,
}

/// One item of a payload as the merge keeps it.
#[derive(Debug)]
pub(crate) enum Body {
    /// Parsed, to be decoded when it runs (one engine).
    Raw(RawEvent),
    /// Parsed and decoded already (engine workers): [`crate::job::Job::admit`]
    /// applies the rest in order.
    Decoded {
        /// The decoded record.
        decoded: Decoded,
        /// Its parsed form, when the payload is traced.
        raw: Option<RawEvent>,
        /// Its index among its payload's items, to parse it again (a hot
        /// update decodes what is still held back with the new program).
        item: u32,
    },
}

/// An item of a payload: its event time and body, or why it is skipped
/// (`malformed`, `future_timestamp`) and the message. A skipped item's time
/// depends on the items before it, so the loop gives it.
pub(crate) type Item = Result<(i64, Body), (&'static str, String)>;

/// Splits `payload` into its items and, with `decoder`, decodes each event
/// at its time (its `timestamp`, else the payload's arrival). An event whose
/// timestamp is more than `skew` ns after its arrival is refused.
pub(crate) fn items(
    payload: &Payload,
    skew: Option<i64>,
    decoder: Option<&EventDecoder>,
) -> Vec<Item> {
    let arrival = payload.arrival;
    super::payload_events(&payload.bytes, payload.default_type.as_deref())
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let raw = item.map_err(|message| ("malformed", message))?;
            let time = raw.timestamp.unwrap_or(arrival);
            // An event from far in the future would move event time past every other event
            // (they would all be late): it is refused instead.
            if let Some(s) = skew.filter(|&s| raw.timestamp.is_some_and(|t| t > arrival.saturating_add(s))) {
                let ahead = time.saturating_sub(arrival);
                return Err((
                    "future_timestamp",
                    format!(
                        "its timestamp is {}s after its arrival, beyond --max-future-skew ({}s); check the sender's clock",
                        ahead / 1_000_000_000,
                        s / 1_000_000_000
                    ),
                ));
            }
            let body = match decoder {
                None => Body::Raw(raw),
                Some(decoder) => Body::Decoded {
                    decoded: decode_alone(decoder, &raw, Some(time)),
                    raw: payload.keep_raw.then_some(raw),
                    item: u32::try_from(i).unwrap_or(u32::MAX),
                },
            };
            Ok((time, body))
        })
        .collect()
}

/// A part of a turn for a decoding thread.
struct Part {
    decoder: Arc<EventDecoder>,
    skew: Option<i64>,
    payloads: Vec<Payload>,
}

/// The decoding threads of a live run on engine workers.
pub(crate) struct Decoders {
    /// The program's decoder (replaced by a hot update).
    decoder: Arc<EventDecoder>,
    to: Vec<Sender<Part>>,
    from: Vec<Receiver<Vec<Vec<Item>>>>,
    handles: Vec<JoinHandle<()>>,
}

impl Decoders {
    /// Starts `threads` decoding threads for `decoder`'s program (none when
    /// `threads` is 0: the loop decodes everything itself).
    pub(crate) fn start(decoder: EventDecoder, threads: usize) -> anyhow::Result<Decoders> {
        let mut decoders = Decoders {
            decoder: Arc::new(decoder),
            to: Vec::new(),
            from: Vec::new(),
            handles: Vec::new(),
        };
        for i in 0..threads {
            let (tx, rx) = bounded::<Part>(1);
            let (dtx, drx) = bounded::<Vec<Vec<Item>>>(1);
            let handle = std::thread::Builder::new()
                .name(format!("varpulis-decode-{i}"))
                .spawn(move || {
                    for part in rx {
                        let out = part
                            .payloads
                            .iter()
                            .map(|p| items(p, part.skew, Some(&part.decoder)))
                            .collect();
                        if dtx.send(out).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| anyhow::anyhow!("cannot start decoding thread {i}: {e}"))?;
            decoders.to.push(tx);
            decoders.from.push(drx);
            decoders.handles.push(handle);
        }
        Ok(decoders)
    }

    /// Decodes with `decoder` from now on (a hot update's new program).
    pub(crate) fn set_decoder(&mut self, decoder: EventDecoder) {
        self.decoder = Arc::new(decoder);
    }

    /// Starts decoding a turn's payloads: cut into one part per thread of
    /// about equal bytes, sent without waiting for the answers
    /// ([`Decoders::collect`] takes them, in order). A small turn, or a run
    /// without threads, is decoded here at once.
    pub(crate) fn dispatch(&self, payloads: Vec<Payload>, skew: Option<i64>) -> Turn {
        let total: usize = payloads.iter().map(|p| p.bytes.len()).sum();
        let parts = self.to.len();
        if parts == 0 || payloads.len() < 2 || total < INLINE_BYTES {
            return Turn::Here(self.decode_here(&payloads, skew));
        }
        // Contiguous parts: part k ends where the bytes so far pass
        // (k + 1) / parts of the total.
        let mut cut: Vec<Vec<Payload>> = (0..parts).map(|_| Vec::new()).collect();
        let mut seen = 0usize;
        for p in payloads {
            let k = (seen.saturating_mul(parts) / total.max(1)).min(parts - 1);
            seen += p.bytes.len();
            if let Some(part) = cut.get_mut(k) {
                part.push(p);
            }
        }
        // Each part is kept (its payloads are shared, not copied): a thread
        // that cannot take it or answer for it (it stopped: a bug) leaves it
        // to this one, so no payload is lost. A thread still busy with the
        // turn before holds this send back (back-pressure, one turn ahead).
        let sent = cut
            .into_iter()
            .enumerate()
            .map(|(k, payloads)| {
                let part = Part {
                    decoder: self.decoder.clone(),
                    skew,
                    payloads: payloads.clone(),
                };
                let taken = self.to.get(k).is_some_and(|tx| tx.send(part).is_ok());
                (taken, payloads)
            })
            .collect();
        Turn::There { sent, skew }
    }

    /// The items of each payload of a dispatched turn, in the order given.
    pub(crate) fn collect(&self, turn: Turn) -> Vec<Vec<Item>> {
        let (sent, skew) = match turn {
            Turn::Here(items) => return items,
            Turn::There { sent, skew } => (sent, skew),
        };
        let mut out = Vec::new();
        for (k, (taken, payloads)) in sent.into_iter().enumerate() {
            let answer = match (taken, self.from.get(k)) {
                (true, Some(rx)) => rx.recv().ok(),
                _ => None,
            };
            out.extend(answer.unwrap_or_else(|| self.decode_here(&payloads, skew)));
        }
        out
    }

    /// The items of each payload, in the order given ([`Decoders::dispatch`]
    /// then [`Decoders::collect`]).
    #[cfg(test)]
    pub(crate) fn decode(&self, payloads: Vec<Payload>, skew: Option<i64>) -> Vec<Vec<Item>> {
        let turn = self.dispatch(payloads, skew);
        self.collect(turn)
    }

    fn decode_here(&self, payloads: &[Payload], skew: Option<i64>) -> Vec<Vec<Item>> {
        payloads
            .iter()
            .map(|p| items(p, skew, Some(&self.decoder)))
            .collect()
    }
}

/// A turn's payloads being decoded ([`Decoders::dispatch`]).
pub(crate) enum Turn {
    /// Decoded already (a small turn).
    Here(Vec<Vec<Item>>),
    /// Parts sent to the threads (`true`: the thread took it), in order.
    There {
        sent: Vec<(bool, Vec<Payload>)>,
        skew: Option<i64>,
    },
}

impl Drop for Decoders {
    fn drop(&mut self) {
        // Closing the queues ends the threads; each has at most one part to
        // finish.
        self.to.clear();
        self.from.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
