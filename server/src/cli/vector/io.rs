//! Reading (and writing) vector files: `.fvecs`, `.npy` and JSON Lines.
//!
//! Every reader is a streaming iterator of [`FileRecord`]s that yields an error, never
//! panics, on truncated or malformed input, and stops after the first error.
//!
//! | format | layout | ids |
//! |---|---|---|
//! | `.fvecs` | per vector: little-endian `i32` dimension, then that many little-endian `f32` | the 0-based row number |
//! | `.npy` | NumPy format 1.0, 2.0 or 3.0; a 2-D array of `<f4` or `<f8` in C order | the 0-based row number |
//! | `.jsonl` | one `{"id":..,"vector":[..],"attributes":{..}}` per line; `id` optional | the `id`, else the 0-based line index |

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use opendata_vector::model::MAX_DIMENSION;

/// One vector read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    /// The id: given in the file (JSON Lines) or the row number.
    pub id: String,
    /// The components.
    pub vector: Vec<f32>,
    /// Attributes (JSON Lines only), untyped.
    pub attributes: Map<String, Value>,
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file's contents are not what the format requires.
    #[error("{0}")]
    Format(String),
}

fn bad(msg: impl Into<String>) -> ReadError {
    ReadError::Format(msg.into())
}

/// A file format this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `.fvecs`.
    Fvecs,
    /// `.npy`.
    Npy,
    /// `.jsonl` (also `.ndjson`).
    JsonLines,
}

impl FileFormat {
    /// The format a file's extension names.
    pub fn from_path(path: &Path) -> Result<Self, ReadError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "fvecs" => Ok(FileFormat::Fvecs),
            "npy" => Ok(FileFormat::Npy),
            "jsonl" | "ndjson" => Ok(FileFormat::JsonLines),
            _ => Err(bad(format!(
                "{}: unknown file type; expected .fvecs, .npy or .jsonl",
                path.display()
            ))),
        }
    }
}

/// A boxed stream of records.
pub type RecordIter = Box<dyn Iterator<Item = Result<FileRecord, ReadError>> + Send>;

/// Opens `path` by its extension as a stream of records.
pub fn open(path: &Path) -> Result<RecordIter, ReadError> {
    let format = FileFormat::from_path(path)?;
    let file = File::open(path).map_err(|e| {
        ReadError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    })?;
    let r = BufReader::with_capacity(1 << 20, file);
    Ok(match format {
        FileFormat::Fvecs => Box::new(FvecsReader::new(r)),
        FileFormat::Npy => Box::new(NpyReader::new(r)?),
        FileFormat::JsonLines => Box::new(JsonLinesReader::new(r)),
    })
}

/// The dimension of the first vector in `path` (for creating a collection).
pub fn first_dimension(path: &Path) -> Result<usize, ReadError> {
    match open(path)?.next() {
        Some(r) => Ok(r?.vector.len()),
        None => Err(bad(format!(
            "{}: the file holds no vectors",
            path.display()
        ))),
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end of input before any byte.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<ReadOutcome, std::io::Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(if filled == buf.len() {
        ReadOutcome::Full
    } else if filled == 0 {
        ReadOutcome::Eof
    } else {
        ReadOutcome::Partial(filled)
    })
}

enum ReadOutcome {
    Full,
    Eof,
    Partial(usize),
}

// ---------------------------------------------------------------------------------------
// fvecs

/// Reads `.fvecs`: every vector must have the first one's dimension.
pub struct FvecsReader<R> {
    r: R,
    row: u64,
    dimension: Option<usize>,
    done: bool,
    buf: Vec<u8>,
}

impl<R: Read> FvecsReader<R> {
    /// A reader over `r`.
    pub fn new(r: R) -> Self {
        Self {
            r,
            row: 0,
            dimension: None,
            done: false,
            buf: Vec::new(),
        }
    }

    fn read_one(&mut self) -> Result<Option<FileRecord>, ReadError> {
        let row = self.row;
        let mut head = [0u8; 4];
        match read_full(&mut self.r, &mut head)? {
            ReadOutcome::Eof => return Ok(None),
            ReadOutcome::Partial(n) => {
                return Err(bad(format!(
                    "fvecs: truncated at vector {row}: {n} of the 4 bytes of its dimension"
                )));
            }
            ReadOutcome::Full => {}
        }
        let d = i32::from_le_bytes(head);
        if d <= 0 || d as u32 > MAX_DIMENSION {
            return Err(bad(format!(
                "fvecs: vector {row} has dimension {d}; expected 1 to {MAX_DIMENSION} (is this an .fvecs file?)"
            )));
        }
        let d = d as usize;
        match self.dimension {
            None => self.dimension = Some(d),
            Some(first) if first != d => {
                return Err(bad(format!(
                    "fvecs: vector {row} has dimension {d}, the first had {first}"
                )));
            }
            Some(_) => {}
        }
        self.buf.resize(d * 4, 0);
        match read_full(&mut self.r, &mut self.buf)? {
            ReadOutcome::Full => {}
            ReadOutcome::Eof | ReadOutcome::Partial(_) => {
                return Err(bad(format!(
                    "fvecs: truncated at vector {row}: fewer than its {d} components"
                )));
            }
        }
        let vector = self
            .buf
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.row += 1;
        Ok(Some(FileRecord {
            id: row.to_string(),
            vector,
            attributes: Map::new(),
        }))
    }
}

impl<R: Read> Iterator for FvecsReader<R> {
    type Item = Result<FileRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.read_one().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Writes vectors as `.fvecs`.
pub fn write_fvecs<W: Write>(w: &mut W, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    for v in vectors {
        let d = i32::try_from(v.len())
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "vector too long"))?;
        w.write_all(&d.to_le_bytes())?;
        for x in v {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// npy

/// The element type of an `.npy` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyType {
    /// `<f4`.
    F32,
    /// `<f8` (narrowed to `f32` when read).
    F64,
}

impl NpyType {
    fn size(self) -> usize {
        match self {
            NpyType::F32 => 4,
            NpyType::F64 => 8,
        }
    }

    fn descr(self) -> &'static str {
        match self {
            NpyType::F32 => "<f4",
            NpyType::F64 => "<f8",
        }
    }
}

/// The header of an `.npy` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpyHeader {
    /// The element type.
    pub dtype: NpyType,
    /// Rows (vectors).
    pub rows: u64,
    /// Columns (the dimension).
    pub cols: usize,
}

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads and checks an `.npy` header.
pub fn read_npy_header<R: Read>(r: &mut R) -> Result<NpyHeader, ReadError> {
    let mut pre = [0u8; 8];
    if !matches!(read_full(r, &mut pre)?, ReadOutcome::Full) || &pre[..6] != NPY_MAGIC {
        return Err(bad("npy: not a NumPy .npy file (bad magic)"));
    }
    let (major, minor) = (pre[6], pre[7]);
    let len = match major {
        1 => {
            let mut b = [0u8; 2];
            if !matches!(read_full(r, &mut b)?, ReadOutcome::Full) {
                return Err(bad("npy: truncated header"));
            }
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            if !matches!(read_full(r, &mut b)?, ReadOutcome::Full) {
                return Err(bad("npy: truncated header"));
            }
            u32::from_le_bytes(b) as usize
        }
        _ => {
            return Err(bad(format!(
                "npy: unsupported format version {major}.{minor}; expected 1.0, 2.0 or 3.0"
            )));
        }
    };
    if len > 1 << 20 {
        return Err(bad(format!(
            "npy: header of {len} bytes is implausibly long"
        )));
    }
    let mut header = vec![0u8; len];
    if !matches!(read_full(r, &mut header)?, ReadOutcome::Full) && len > 0 {
        return Err(bad("npy: truncated header"));
    }
    let text = std::str::from_utf8(&header).map_err(|_| bad("npy: header is not text"))?;
    parse_npy_header(text)
}

/// Parses the header dictionary, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }`.
fn parse_npy_header(text: &str) -> Result<NpyHeader, ReadError> {
    let t = text.trim().trim_end_matches('\n').trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|s| s.trim_end().strip_suffix('}'))
        .ok_or_else(|| bad(format!("npy: header {t:?} is not a dictionary")))?;
    let value_of = |key: &str| -> Result<&str, ReadError> {
        for quote in ['\'', '"'] {
            let k = format!("{quote}{key}{quote}");
            if let Some(pos) = inner.find(&k) {
                let rest = inner[pos + k.len()..].trim_start();
                let rest = rest
                    .strip_prefix(':')
                    .ok_or_else(|| bad(format!("npy: header key {key:?} has no value")))?;
                return Ok(rest.trim_start());
            }
        }
        Err(bad(format!("npy: header lacks {key:?}")))
    };
    // descr: a quoted string.
    let d = value_of("descr")?;
    let q = d
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or_else(|| bad("npy: descr is not a string (structured arrays are not supported)"))?;
    let descr = d[1..]
        .split(q)
        .next()
        .ok_or_else(|| bad("npy: unterminated descr"))?;
    let dtype = match descr {
        "<f4" => NpyType::F32,
        "<f8" => NpyType::F64,
        other => {
            return Err(bad(format!(
                "npy: unsupported dtype {other:?}; expected '<f4' (float32) or '<f8' (float64), little-endian"
            )));
        }
    };
    let f = value_of("fortran_order")?;
    if f.starts_with("True") {
        return Err(bad(
            "npy: the array is in Fortran (column-major) order; save it in C order (numpy.ascontiguousarray)",
        ));
    } else if !f.starts_with("False") {
        return Err(bad("npy: fortran_order is neither True nor False"));
    }
    let s = value_of("shape")?;
    let s = s
        .strip_prefix('(')
        .ok_or_else(|| bad("npy: shape is not a tuple"))?;
    let s = &s[..s.find(')').ok_or_else(|| bad("npy: unterminated shape"))?];
    let dims = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| bad(format!("npy: shape element {p:?} is not a number")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(bad(format!(
            "npy: the array has shape ({s}); expected 2-D (vectors, dimension)"
        )));
    };
    if cols == 0 || cols > u64::from(MAX_DIMENSION) {
        return Err(bad(format!(
            "npy: dimension {cols}; expected 1 to {MAX_DIMENSION}"
        )));
    }
    Ok(NpyHeader {
        dtype,
        rows,
        cols: cols as usize,
    })
}

/// Reads a 2-D `.npy` array row by row.
pub struct NpyReader<R> {
    r: R,
    header: NpyHeader,
    row: u64,
    done: bool,
    buf: Vec<u8>,
}

impl<R: Read> NpyReader<R> {
    /// Reads the header of `r` and returns a reader of its rows.
    pub fn new(mut r: R) -> Result<Self, ReadError> {
        let header = read_npy_header(&mut r)?;
        Ok(Self {
            r,
            header,
            row: 0,
            done: false,
            buf: Vec::new(),
        })
    }

    /// The header.
    pub fn header(&self) -> NpyHeader {
        self.header
    }

    fn read_one(&mut self) -> Result<Option<FileRecord>, ReadError> {
        if self.row >= self.header.rows {
            return Ok(None);
        }
        let row = self.row;
        let cols = self.header.cols;
        self.buf.resize(cols * self.header.dtype.size(), 0);
        if !matches!(read_full(&mut self.r, &mut self.buf)?, ReadOutcome::Full) {
            return Err(bad(format!(
                "npy: truncated at row {row} of {}",
                self.header.rows
            )));
        }
        let vector = match self.header.dtype {
            NpyType::F32 => self
                .buf
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            NpyType::F64 => self
                .buf
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
        };
        self.row += 1;
        Ok(Some(FileRecord {
            id: row.to_string(),
            vector,
            attributes: Map::new(),
        }))
    }
}

impl<R: Read> Iterator for NpyReader<R> {
    type Item = Result<FileRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.read_one().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Writes `rows` vectors of dimension `dim` as a version 1.0 `.npy` file of `dtype`.
/// Every vector must have `dim` components.
pub fn write_npy<W: Write>(
    w: &mut W,
    vectors: &[Vec<f32>],
    dim: usize,
    dtype: NpyType,
) -> std::io::Result<()> {
    if let Some(v) = vectors.iter().find(|v| v.len() != dim) {
        return Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            format!("a vector has dimension {}, expected {dim}", v.len()),
        ));
    }
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({}, {}), }}",
        dtype.descr(),
        vectors.len(),
        dim
    );
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of
    // 64 and ended by a newline.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let len = u16::try_from(header.len())
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "npy header too long"))?;
    w.write_all(NPY_MAGIC)?;
    w.write_all(&[1, 0])?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in vectors {
        for x in v {
            match dtype {
                NpyType::F32 => w.write_all(&x.to_le_bytes())?,
                NpyType::F64 => w.write_all(&f64::from(*x).to_le_bytes())?,
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// JSON Lines

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    #[serde(default)]
    id: Option<Value>,
    vector: Vec<f64>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
}

/// Reads JSON Lines: one record per line; blank lines are skipped (but counted).
pub struct JsonLinesReader<R> {
    r: R,
    line: u64,
    done: bool,
    text: String,
}

impl<R: BufRead> JsonLinesReader<R> {
    /// A reader over `r`.
    pub fn new(r: R) -> Self {
        Self {
            r,
            line: 0,
            done: false,
            text: String::new(),
        }
    }

    fn read_one(&mut self) -> Result<Option<FileRecord>, ReadError> {
        loop {
            self.text.clear();
            let n = self.r.read_line(&mut self.text).map_err(|e| {
                if e.kind() == ErrorKind::InvalidData {
                    bad(format!("jsonl: line {} is not UTF-8", self.line + 1))
                } else {
                    ReadError::Io(e)
                }
            })?;
            if n == 0 {
                return Ok(None);
            }
            let index = self.line;
            self.line += 1;
            let t = self.text.trim();
            if t.is_empty() {
                continue;
            }
            let lineno = index + 1;
            let parsed: JsonLine =
                serde_json::from_str(t).map_err(|e| bad(format!("jsonl: line {lineno}: {e}")))?;
            let id = match parsed.id {
                None | Some(Value::Null) => index.to_string(),
                Some(Value::String(s)) => s,
                Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
                Some(other) => {
                    return Err(bad(format!(
                        "jsonl: line {lineno}: id must be a string or an integer, got {other}"
                    )));
                }
            };
            return Ok(Some(FileRecord {
                id,
                vector: parsed.vector.into_iter().map(|x| x as f32).collect(),
                attributes: parsed.attributes.unwrap_or_default(),
            }));
        }
    }
}

impl<R: BufRead> Iterator for JsonLinesReader<R> {
    type Item = Result<FileRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.read_one().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Writes records as JSON Lines (ids always written).
pub fn write_jsonl<W: Write>(w: &mut W, records: &[FileRecord]) -> std::io::Result<()> {
    for r in records {
        let mut o = Map::new();
        o.insert("id".into(), Value::String(r.id.clone()));
        o.insert("vector".into(), serde_json::json!(r.vector));
        if !r.attributes.is_empty() {
            o.insert("attributes".into(), Value::Object(r.attributes.clone()));
        }
        serde_json::to_writer(&mut *w, &Value::Object(o))?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect<I: Iterator<Item = Result<FileRecord, ReadError>>>(
        it: I,
    ) -> Result<Vec<FileRecord>, ReadError> {
        it.collect()
    }

    fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
        v.iter()
            .map(|r| {
                r.iter()
                    .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn should_read_fvecs_with_row_ids() {
        let mut buf = Vec::new();
        write_fvecs(&mut buf, &[vec![1.0, 2.0], vec![3.0, 4.5]]).unwrap();
        let recs = collect(FvecsReader::new(buf.as_slice())).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].id, "1");
        assert_eq!(recs[1].vector, vec![3.0, 4.5]);
    }

    #[test]
    fn should_report_truncated_and_malformed_fvecs() {
        let mut buf = Vec::new();
        write_fvecs(&mut buf, &[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        for cut in 1..buf.len() {
            if cut == 12 {
                continue; // a whole first vector: valid
            }
            let r = collect(FvecsReader::new(&buf[..cut]));
            let e = r.unwrap_err().to_string();
            assert!(e.contains("truncated"), "cut {cut}: {e}");
        }
        let mut mixed = Vec::new();
        write_fvecs(&mut mixed, &[vec![1.0, 2.0], vec![3.0]]).unwrap();
        let e = collect(FvecsReader::new(mixed.as_slice()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vector 1 has dimension 1, the first had 2"),
            "{e}"
        );
        let e = collect(FvecsReader::new(&(-3i32).to_le_bytes()[..]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dimension -3"), "{e}");
        // After an error the iterator ends.
        let mut it = FvecsReader::new(&buf[..5]);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn should_read_npy_f4_and_f8_in_every_version() {
        let vs = vec![vec![1.0f32, -2.0, 3.5], vec![0.25, 0.0, 7.0]];
        for dtype in [NpyType::F32, NpyType::F64] {
            let mut buf = Vec::new();
            write_npy(&mut buf, &vs, 3, dtype).unwrap();
            assert_eq!((buf.len() - vs.len() * 3 * dtype.size()) % 64, 0);
            let recs = collect(NpyReader::new(buf.as_slice()).unwrap()).unwrap();
            assert_eq!(
                recs.iter().map(|r| r.vector.clone()).collect::<Vec<_>>(),
                vs
            );
            assert_eq!(recs[0].id, "0");
        }
        // Version 2.0: a 4-byte header length.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }\n";
        let mut buf = NPY_MAGIC.to_vec();
        buf.extend_from_slice(&[2, 0]);
        buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
        buf.extend_from_slice(header.as_bytes());
        buf.extend_from_slice(&1.5f32.to_le_bytes());
        buf.extend_from_slice(&2.5f32.to_le_bytes());
        let recs = collect(NpyReader::new(buf.as_slice()).unwrap()).unwrap();
        assert_eq!(recs[0].vector, vec![1.5, 2.5]);
    }

    fn npy_with_header(dict: &str) -> Vec<u8> {
        let mut buf = NPY_MAGIC.to_vec();
        buf.extend_from_slice(&[1, 0]);
        buf.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        buf.extend_from_slice(dict.as_bytes());
        buf
    }

    #[test]
    fn should_explain_unsupported_npy_files() {
        for (dict, needle) in [
            (
                "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 2), }",
                "unsupported dtype \">f4\"",
            ),
            (
                "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }",
                "unsupported dtype \"<i8\"",
            ),
            (
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }",
                "Fortran",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                "expected 2-D",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }",
                "expected 2-D",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False}",
                "lacks \"shape\"",
            ),
            ("nonsense", "not a dictionary"),
        ] {
            let e = NpyReader::new(npy_with_header(dict).as_slice())
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(needle), "{dict}: {e}");
        }
        let e = NpyReader::new(&b"PK\x03\x04zipfile"[..])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bad magic"), "{e}");
        let mut v9 = NPY_MAGIC.to_vec();
        v9.extend_from_slice(&[9, 0, 0, 0]);
        let e = NpyReader::new(v9.as_slice()).err().unwrap().to_string();
        assert!(e.contains("version 9.0"), "{e}");
        // Truncated data.
        let mut buf = Vec::new();
        write_npy(&mut buf, &[vec![1.0, 2.0], vec![3.0, 4.0]], 2, NpyType::F32).unwrap();
        for cut in 0..buf.len() {
            match NpyReader::new(&buf[..cut]) {
                Err(_) => {}
                Ok(r) => assert!(collect(r).is_err(), "cut {cut} read fine"),
            }
        }
    }

    #[test]
    fn should_read_json_lines_with_optional_ids() {
        let text = "{\"id\":\"a\",\"vector\":[1,2],\"attributes\":{\"color\":\"red\"}}\n\n{\"vector\":[3,4]}\n{\"id\":7,\"vector\":[5,6]}\n";
        let recs = collect(JsonLinesReader::new(text.as_bytes())).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].id, "a");
        assert_eq!(recs[0].attributes["color"], Value::String("red".into()));
        assert_eq!(
            recs[1].id, "2",
            "the 0-based line index, blank lines counted"
        );
        assert_eq!(recs[2].id, "7");
        assert_eq!(recs[2].vector, vec![5.0, 6.0]);
        let mut out = Vec::new();
        write_jsonl(&mut out, &recs).unwrap();
        assert_eq!(collect(JsonLinesReader::new(out.as_slice())).unwrap(), recs);
    }

    #[test]
    fn should_report_the_line_of_bad_json_lines() {
        for (text, needle) in [
            ("{\"vector\":[1]}\n{\"vector\":[1,\n", "line 2"),
            ("{\"vectr\":[1]}\n", "unknown field `vectr`"),
            ("{\"id\":[1],\"vector\":[1]}\n", "id must be a string"),
            ("{\"vector\":[\"x\"]}\n", "line 1"),
        ] {
            let e = collect(JsonLinesReader::new(text.as_bytes()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let e = collect(JsonLinesReader::new(&b"{\"vector\":[1]}\n\xff\xfe\n"[..]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2 is not UTF-8"), "{e}");
    }

    #[test]
    fn should_pick_the_format_by_extension_and_read_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.fvecs");
        let mut f = File::create(&p).unwrap();
        write_fvecs(&mut f, &[vec![1.0, 2.0, 3.0]]).unwrap();
        drop(f);
        assert_eq!(first_dimension(&p).unwrap(), 3);
        assert_eq!(open(&p).unwrap().count(), 1);
        let e = FileFormat::from_path(Path::new("x.csv")).unwrap_err();
        assert!(e.to_string().contains("unknown file type"));
        let e = open(&dir.path().join("missing.npy")).err().unwrap();
        assert!(e.to_string().contains("missing.npy"), "{e}");
        let empty = dir.path().join("e.jsonl");
        File::create(&empty).unwrap();
        assert!(
            first_dimension(&empty)
                .unwrap_err()
                .to_string()
                .contains("no vectors")
        );
    }

    fn matrix() -> impl Strategy<Value = Vec<Vec<f32>>> {
        (1usize..8).prop_flat_map(|d| {
            proptest::collection::vec(proptest::collection::vec(any::<f32>(), d), 0..8)
        })
    }

    proptest! {
        #[test]
        fn should_roundtrip_fvecs(vs in matrix()) {
            let mut buf = Vec::new();
            write_fvecs(&mut buf, &vs).unwrap();
            let back: Vec<Vec<f32>> = collect(FvecsReader::new(buf.as_slice())).unwrap().into_iter().map(|r| r.vector).collect();
            prop_assert_eq!(bits(&back), bits(&vs));
        }

        #[test]
        fn should_roundtrip_npy(vs in matrix(), f64s in any::<bool>()) {
            let dim = vs.first().map_or(1, Vec::len);
            let dtype = if f64s { NpyType::F64 } else { NpyType::F32 };
            let mut buf = Vec::new();
            write_npy(&mut buf, &vs, dim, dtype).unwrap();
            let reader = NpyReader::new(buf.as_slice()).unwrap();
            prop_assert_eq!(reader.header(), NpyHeader { dtype, rows: vs.len() as u64, cols: dim });
            let back: Vec<Vec<f32>> = collect(reader).unwrap().into_iter().map(|r| r.vector).collect();
            prop_assert_eq!(bits(&back), bits(&vs));
        }

        #[test]
        fn should_never_panic_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = collect(FvecsReader::new(data.as_slice()));
            if let Ok(r) = NpyReader::new(data.as_slice()) {
                let _ = collect(r);
            }
            let _ = collect(JsonLinesReader::new(data.as_slice()));
            let mut npy = NPY_MAGIC.to_vec();
            npy.extend_from_slice(&[1, 0, data.len() as u8, 0]);
            npy.extend_from_slice(&data);
            if let Ok(r) = NpyReader::new(npy.as_slice()) {
                let _ = collect(r);
            }
        }
    }
}
