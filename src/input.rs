//! Reading input files and pipes: `.evt` (docs/LANGUAGE.md#event-files-evt) or JSON lines
//! (docs/LANGUAGE.md#json-events), one record at a time, so files of any size stream in constant
//! memory.

use std::io::BufRead;
use std::path::Path;

use varpulis_program::evt::{EvtReader, EvtRecord};
use varpulis_program::json::parse_json_event;
use varpulis_program::RawEvent;

/// Which reader a file needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// The `.evt` line format (which also accepts JSON lines).
    Evt,
    /// One JSON event per line.
    Jsonl,
}

impl InputFormat {
    /// `.evt` files use the `.evt` reader; everything else (including
    /// stdin) is read as JSON lines.
    pub fn for_path(path: &Path) -> InputFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("evt") => InputFormat::Evt,
            _ => InputFormat::Jsonl,
        }
    }
}

/// One input line, decoded.
#[derive(Clone, Debug)]
pub enum InputRecord {
    /// An `.evt` record (time = offset unless it has a JSON timestamp).
    Evt(EvtRecord),
    /// A JSON event (time = its `timestamp`, else the previous event's).
    Json {
        /// 1-based line.
        line: usize,
        /// The event.
        event: RawEvent,
    },
    /// A line that is not an event.
    Bad {
        /// 1-based line.
        line: usize,
        /// Why.
        message: String,
    },
}

/// Streams records from a reader.
pub struct Records<R> {
    reader: R,
    format: InputFormat,
    evt: EvtReader,
    line: usize,
    buf: String,
    /// Bytes consumed so far, for progress reporting.
    pub bytes: u64,
}

impl<R: BufRead> Records<R> {
    /// Records of `reader` in `format`.
    pub fn new(reader: R, format: InputFormat) -> Records<R> {
        Records {
            reader,
            format,
            evt: EvtReader::new(),
            line: 0,
            buf: String::new(),
            bytes: 0,
        }
    }
}

impl<R> Records<R> {
    /// The format being read.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// The reader, positioned at the next line, and that line's 1-based
    /// number: for reading JSON lines some other way (the parallel reader
    /// of `run --workers`). `.evt` records need this reader's state.
    pub fn into_lines(self) -> (R, usize) {
        (self.reader, self.line + 1)
    }
}

/// One input line as [`Records::next_line`] gives it: a JSON line still as text (the job decodes
/// it straight into an event: [`crate::job::Job::push_line`]), anything else read.
#[derive(Debug)]
pub enum Line<'a> {
    /// A read record: an `.evt` record or a line that is not an event.
    Record(InputRecord),
    /// The text of a JSON line (trimmed, not empty).
    Json {
        /// 1-based line.
        line: usize,
        /// The text, borrowed from the reader's buffer until the next line.
        text: &'a str,
    },
}

impl<R> Records<R> {
    /// The text of the line [`Records::next_line`] read last (with its line break).
    pub fn line_text(&self) -> &str {
        &self.buf
    }
}

impl<R: BufRead> Records<R> {
    /// The next line: JSON lines as text, so decoding them allocates no intermediate record.
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        loop {
            self.buf.clear();
            let n = match self.reader.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(n) => n,
                Err(e) => {
                    self.line += 1;
                    // A line that is not UTF-8 (or an IO error mid-file) is
                    // reported; reading goes on with the next line.
                    let message = format!("cannot read line: {e}");
                    if e.kind() != std::io::ErrorKind::InvalidData {
                        return None;
                    }
                    // The `.evt` reader numbers the lines it reads: this one counts too.
                    self.evt.skip_line();
                    return Some(Line::Record(InputRecord::Bad {
                        line: self.line,
                        message,
                    }));
                }
            };
            self.bytes += n as u64;
            self.line += 1;
            match self.format {
                InputFormat::Evt => match self.evt.parse_line(&self.buf) {
                    Ok(Some(rec)) => return Some(Line::Record(InputRecord::Evt(rec))),
                    Ok(None) => continue,
                    Err(e) => {
                        return Some(Line::Record(InputRecord::Bad {
                            line: self.line,
                            message: e.kind.to_string(),
                        }))
                    }
                },
                InputFormat::Jsonl => {
                    if self.buf.trim().is_empty() {
                        continue;
                    }
                    return Some(Line::Json {
                        line: self.line,
                        text: self.buf.trim(),
                    });
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = InputRecord;

    fn next(&mut self) -> Option<InputRecord> {
        Some(match self.next_line()? {
            Line::Record(rec) => rec,
            Line::Json { line, text } => match parse_json_event(text) {
                Ok(event) => InputRecord::Json { line, event },
                Err(e) => InputRecord::Bad {
                    line,
                    message: e.to_string(),
                },
            },
        })
    }
}

impl crate::job::Job {
    /// Pushes one input line, whatever its kind ([`Records::next_line`]).
    pub fn push_line(
        &mut self,
        line: &Line<'_>,
        out: &mut Vec<varpulis_vm::Output>,
    ) -> Result<(), crate::job::InputProblem> {
        match line {
            Line::Record(rec) => self.push_record(rec, out),
            Line::Json { line, text } => self.push_json_line(text, *line, out),
        }
    }

    /// Pushes one input record, whatever its kind.
    pub fn push_record(
        &mut self,
        rec: &InputRecord,
        out: &mut Vec<varpulis_vm::Output>,
    ) -> Result<(), crate::job::InputProblem> {
        match rec {
            InputRecord::Evt(r) => self.push_evt(r, out),
            InputRecord::Json { line, event } => self.push_raw(event, None, *line, out),
            InputRecord::Bad { line, message } => self.malformed(*line, message.clone()),
        }
    }

    /// Decodes one input record, whatever its kind, without running it
    /// ([`crate::job::Job::decode_from`]): `Ok(None)` when it is counted and
    /// skipped.
    pub fn decode_record(
        &mut self,
        rec: &InputRecord,
    ) -> Result<Option<varpulis_program::Event>, crate::job::InputProblem> {
        use crate::job::RecordFrom;
        match rec {
            InputRecord::Evt(r) => {
                self.decode_from(&r.event, Some(r.event_time(0)), RecordFrom::Line(r.line))
            }
            InputRecord::Json { line, event } => {
                self.decode_from(event, None, RecordFrom::Line(*line))
            }
            InputRecord::Bad { line, message } => {
                self.malformed(*line, message.clone()).map(|()| None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str, format: InputFormat) -> Vec<InputRecord> {
        Records::new(text.as_bytes(), format).collect()
    }

    #[test]
    fn evt_lines_skip_comments_and_report_bad_lines_with_numbers() {
        let recs = records(
            "# c\n@1s A { x: 1 }\n@zz B { }\n\nC { y: 2 }\n",
            InputFormat::Evt,
        );
        assert_eq!(recs.len(), 3);
        assert!(matches!(&recs[0], InputRecord::Evt(r) if r.line == 2));
        assert!(matches!(&recs[1], InputRecord::Bad { line: 3, .. }));
        assert!(matches!(&recs[2], InputRecord::Evt(r) if r.line == 5));
    }

    #[test]
    fn json_lines_report_non_events() {
        let recs = records(
            "{\"event_type\":\"A\",\"x\":1}\n\nnot json\n[1]\n",
            InputFormat::Jsonl,
        );
        assert_eq!(recs.len(), 3);
        assert!(matches!(&recs[0], InputRecord::Json { line: 1, .. }));
        assert!(matches!(&recs[1], InputRecord::Bad { line: 3, .. }));
        assert!(matches!(&recs[2], InputRecord::Bad { line: 4, .. }));
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            InputFormat::for_path(Path::new("a/b.evt")),
            InputFormat::Evt
        );
        assert_eq!(
            InputFormat::for_path(Path::new("a/b.jsonl")),
            InputFormat::Jsonl
        );
        assert_eq!(InputFormat::for_path(Path::new("-")), InputFormat::Jsonl);
    }
}
