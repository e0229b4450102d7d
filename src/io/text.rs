//! Text files that come from outside (manifests, synset and class-name files): read only if they
//! are regular files, bounded in size, split into lines whose problems (not UTF-8, too long) are
//! each that line's own; and excerpts that quote outside text in a one-line message.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, ErrorKind, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// How many characters of outside text a message quotes.
pub const EXCERPT_CHARS: usize = 80;

/// Opens `path` if it is a regular file (or a link to one): a FIFO would block the run and a
/// device such as `/dev/zero` never ends.
pub fn open_regular(path: &Path) -> Result<File> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Err(Error::data(path, None, format!("{what}; expected a file")));
    }
    File::open(path).map_err(io)
}

/// The bytes of a regular file of at most `max_bytes` (`what` names the kind of file in the
/// message). The limit is checked on what is read, not only on the size the file system reports.
pub fn read_bounded(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let too_big = |bytes: u64| {
        Error::data(
            path,
            None,
            format!(
                "{} bytes; a {what} has at most {max_bytes} bytes",
                if bytes > max_bytes {
                    bytes.to_string()
                } else {
                    format!("more than {max_bytes}")
                }
            ),
        )
    };
    let reported = file.metadata().map(|m| m.len()).unwrap_or(0);
    if reported > max_bytes {
        return Err(too_big(reported));
    }
    let mut bytes = Vec::with_capacity(reported as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Why a line cannot be read as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// Not UTF-8 from this byte on (from 1).
    NotUtf8 { byte: usize },
    /// Longer than the limit; the line was skipped without being held.
    TooLong { bytes: u64, limit: usize },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotUtf8 { byte } => write!(f, "not UTF-8 text (byte {byte} of the line)"),
            LineError::TooLong { bytes, limit } => {
                write!(f, "line of {bytes} bytes; the limit is {limit}")
            }
        }
    }
}

/// One line of a text file: its number (from 1) and its text without the line end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: std::result::Result<String, LineError>,
}

/// The lines of a text stream, ended by `\n` or `\r\n`; a UTF-8 byte-order mark at the start is
/// dropped, and a last line without an end counts. A line longer than `max_line` bytes is read
/// past, never held.
pub struct Lines<R> {
    reader: R,
    number: usize,
    max_line: usize,
    buf: Vec<u8>,
}

/// Splits `reader` into [`Lines`].
pub fn lines<R: BufRead>(reader: R, max_line: usize) -> Lines<R> {
    Lines {
        reader,
        number: 0,
        max_line,
        buf: Vec::new(),
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = std::io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        // Room for the longest line allowed, a BOM and its `\r\n`.
        let keep_at_most = self.max_line + 5;
        let (mut total, mut ended) = (0u64, false);
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(e)),
            };
            if chunk.is_empty() {
                break;
            }
            let (take, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let keep = take.min(keep_at_most.saturating_sub(self.buf.len()));
            self.buf.extend_from_slice(&chunk[..keep]);
            total += take as u64;
            self.reader.consume(take);
            if found {
                ended = true;
                break;
            }
        }
        if total == 0 {
            return None;
        }
        self.number += 1;
        let mut content = total - u64::from(ended);
        let mut start = 0;
        if self.number == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
            start = 3;
            content -= 3;
        }
        if content > self.max_line as u64 + 1 {
            let text = Err(LineError::TooLong {
                bytes: content,
                limit: self.max_line,
            });
            return Some(Ok(Line {
                number: self.number,
                text,
            }));
        }
        let mut end = start + content as usize;
        if end > start && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        let text = if end - start > self.max_line {
            Err(LineError::TooLong {
                bytes: (end - start) as u64,
                limit: self.max_line,
            })
        } else {
            std::str::from_utf8(&self.buf[start..end])
                .map(str::to_owned)
                .map_err(|e| LineError::NotUtf8 {
                    byte: e.valid_up_to() + 1,
                })
        };
        Some(Ok(Line {
            number: self.number,
            text,
        }))
    }
}

/// The entries of a file that holds one a line, the line giving the class (synsets, class
/// names): each line's text, trimmed, with its number. Empty lines at the end are dropped; an
/// empty line before the last entry (it would shift every class after it), a line that is not
/// UTF-8 and a line longer than `max_line` are errors naming the line. `what` names an entry.
pub fn class_lines(
    path: &Path,
    bytes: &[u8],
    max_line: usize,
    what: &str,
) -> Result<Vec<(String, usize)>> {
    let mut entries = Vec::new();
    let mut empty_since = None;
    for line in lines(bytes, max_line) {
        let line = line.map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = line
            .text
            .map_err(|e| Error::data(path, Some(line.number), e.to_string()))?;
        let entry = text.trim();
        if entry.is_empty() {
            empty_since.get_or_insert(line.number);
            continue;
        }
        if let Some(empty) = empty_since {
            return Err(Error::data(
                path,
                Some(empty),
                format!(
                    "empty line before the last {what}: the line gives the class, so it would \
                     shift every class after it"
                ),
            ));
        }
        entries.push((entry.to_owned(), line.number));
    }
    Ok(entries)
}

/// The line (from 1) that holds byte `offset` of `bytes`.
pub fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Outside text quoted in a message: on one line (control and bidirectional-override characters
/// escaped, so that a terminal shows what is there), at most `max_chars` characters of it.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out += &format!("… ({} bytes in all)", text.len());
            break;
        }
        let invisible = matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || invisible {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8], max_line: usize) -> Vec<Line> {
        lines(bytes, max_line).map(|l| l.unwrap()).collect()
    }

    #[test]
    fn line_ends_bom_and_a_last_line_without_end() {
        let got = all(b"\xEF\xBB\xBFfirst\r\nsecond\n\nlast", 100);
        let texts: Vec<_> = got.iter().map(|l| l.text.clone().unwrap()).collect();
        assert_eq!(texts, ["first", "second", "", "last"]);
        assert_eq!(got[3].number, 4);
        assert!(all(b"", 10).is_empty());
        assert_eq!(all(b"a\n", 10).len(), 1);
    }

    #[test]
    fn bad_lines_are_their_own() {
        // A small buffer makes the long line span many reads.
        let mut text = b"ok\nbad \xff byte\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 10_000));
        text.extend(b"\nafter");
        let reader = std::io::BufReader::with_capacity(7, &text[..]);
        let got: Vec<Line> = lines(reader, 64).map(|l| l.unwrap()).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].text, Err(LineError::NotUtf8 { byte: 5 }));
        assert_eq!(
            got[2].text,
            Err(LineError::TooLong {
                bytes: 10_000,
                limit: 64
            })
        );
        assert_eq!(got[3].text.as_deref(), Ok("after"));
        // Exactly at the limit, with and without `\r\n`.
        assert_eq!(all(b"abcd\r\nabcd", 4).len(), 2);
        assert!(all(b"abcd\r\nabcd", 4).iter().all(|l| l.text.is_ok()));
        assert!(all(b"abcde", 4)[0].text.is_err());
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("plain", 10), "plain");
        assert_eq!(excerpt("a\nb\u{1b}[2J", 10), "a\\nb\\u{1b}[2J");
        let long = "é".repeat(1000);
        let e = excerpt(&long, 5);
        assert!(e.starts_with("ééééé…") && e.contains("2000 bytes"), "{e}");
        assert_eq!(excerpt("x\u{202e}y", 10), "x\\u{202e}y");
    }

    #[test]
    fn only_regular_files_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_bounded(&file, 5, "test file").unwrap(), b"12345");
        let e = read_bounded(&file, 4, "test file").unwrap_err().to_string();
        assert!(e.contains("5 bytes") && e.contains("at most 4"), "{e}");
        let e = read_bounded(dir.path(), 4, "test file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("folder"), "{e}");
        let e = read_bounded(Path::new("/dev/zero"), 4, "test file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert_eq!(line_of(b"a\nb\nc", 4), 3);
    }
}
