//! [`Spool`]: the intended tree kept on disk in the build's work directory, in bounded
//! memory, sorted into the order an [`subroot_formats::ext::ExtTree`] walk visits paths
//! ([`path_cmp`]) so that reconcile and verify are each one merge-join pass.
//!
//! Records arriving in that order already (every source that walks a sorted tree: ext,
//! host directories, FAT) are appended straight to one file and never sorted. From the
//! first record out of order (a tar or cpio archive lists members as it likes), records
//! are gathered into in-memory runs of [`RUN_BYTES`], each sorted and written to its own
//! file, and [`Spool::finish`] merges all runs (the in-order prefix is the first one),
//! at most [`FAN_IN`] files at a time, into the final file. A path listed twice is an
//! error.

use super::record::{body_path, path_cmp, Record};
use crate::{Error, Result};
use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Encoded bytes gathered in memory before a run is sorted and written.
pub const RUN_BYTES: usize = 4 << 20;
/// Runs merged at once (each has a read buffer of [`READ_BUF`] bytes).
pub const FAN_IN: usize = 64;
/// Read buffer of each run during the merge.
const READ_BUF: usize = 64 << 10;
/// Largest record accepted (paths and xattr values are far smaller in practice).
pub const MAX_RECORD: usize = 16 << 20;

/// The sorted intended tree on disk (see the module documentation).
#[derive(Debug)]
pub struct Intended {
    path: PathBuf,
}

impl Intended {
    /// A reader of the records in path order.
    pub fn reader(&self) -> Result<RecordReader> {
        RecordReader::open(&self.path, 1 << 20)
    }
}

/// Collects records into sorted files (see the module documentation).
pub struct Spool {
    dir: PathBuf,
    run_bytes: usize,
    fan_in: usize,
    /// The file taking records while they arrive in order (the first run).
    ordered: Option<BufWriter<File>>,
    ordered_path: PathBuf,
    in_order: bool,
    last: Vec<u8>,
    /// The run being gathered once out of order: encoded records and (start, length).
    buf: Vec<u8>,
    index: Vec<(usize, usize)>,
    runs: Vec<PathBuf>,
    made: usize,
    count: u64,
    scratch: Vec<u8>,
}

impl Spool {
    /// A spool writing its files into the existing directory `dir`.
    pub fn new(dir: &Path) -> Result<Spool> {
        Spool::with_limits(dir, RUN_BYTES, FAN_IN)
    }

    /// A spool with the given run size and merge fan-in (at least 2).
    pub fn with_limits(dir: &Path, run_bytes: usize, fan_in: usize) -> Result<Spool> {
        let ordered_path = dir.join("intended.0");
        Ok(Spool {
            dir: dir.to_path_buf(),
            run_bytes,
            fan_in: fan_in.max(2),
            ordered: Some(BufWriter::with_capacity(1 << 20, create(&ordered_path)?)),
            ordered_path,
            in_order: true,
            last: Vec::new(),
            buf: Vec::new(),
            index: Vec::new(),
            runs: Vec::new(),
            made: 1,
            count: 0,
            scratch: Vec::new(),
        })
    }

    /// Number of runs written so far besides the in-order one.
    #[cfg(test)]
    pub fn runs_written(&self) -> usize {
        self.made - 1
    }

    /// Add a record.
    pub fn push(&mut self, r: &Record) -> Result<()> {
        self.scratch.clear();
        r.encode(&mut self.scratch)?;
        if self.scratch.len() > MAX_RECORD {
            return Err(Error::unsupported(format!(
                "{:?}: its metadata takes {} bytes, more than the {MAX_RECORD} recorded per entry",
                String::from_utf8_lossy(&r.entry.path),
                self.scratch.len()
            )));
        }
        self.count += 1;
        let path = &r.entry.path;
        if self.in_order {
            match (self.count == 1, path_cmp(&self.last, path)) {
                (true, _) | (false, Ordering::Less) => {
                    if let Some(w) = &mut self.ordered {
                        w.write_all(&self.scratch)
                            .map_err(|e| write_error(&self.ordered_path, e))?;
                    }
                    self.last.clear();
                    self.last.extend_from_slice(path);
                    return Ok(());
                }
                (false, Ordering::Equal) => return Err(twice(path)),
                (false, Ordering::Greater) => self.in_order = false,
            }
        }
        self.index.push((self.buf.len(), self.scratch.len()));
        self.buf.extend_from_slice(&self.scratch);
        if self.buf.len() >= self.run_bytes {
            self.write_run()?;
        }
        Ok(())
    }

    /// Sort the gathered run and write it to its own file.
    fn write_run(&mut self) -> Result<()> {
        if self.index.is_empty() {
            return Ok(());
        }
        let buf = &self.buf;
        let path_of = |&(at, len): &(usize, usize)| body_path(&buf[at + 4..at + len]);
        // Validate once so the comparison cannot fail.
        for i in &self.index {
            path_of(i)?;
        }
        self.index
            .sort_by(|a, b| path_cmp(path_of(a).unwrap_or(&[]), path_of(b).unwrap_or(&[])));
        let p = self.dir.join(format!("intended.{}", self.made));
        self.made += 1;
        let mut w = BufWriter::with_capacity(1 << 20, create(&p)?);
        for &(at, len) in &self.index {
            w.write_all(&buf[at..at + len])
                .map_err(|e| write_error(&p, e))?;
        }
        finish_file(w, &p)?;
        self.runs.push(p);
        self.buf.clear();
        self.index.clear();
        Ok(())
    }

    /// Sort what was pushed into one file.
    pub fn finish(mut self) -> Result<Intended> {
        if let Some(w) = self.ordered.take() {
            finish_file(w, &self.ordered_path)?;
        }
        if self.in_order {
            return Ok(Intended {
                path: self.ordered_path,
            });
        }
        self.write_run()?;
        let mut runs = vec![self.ordered_path.clone()];
        runs.append(&mut self.runs);
        while runs.len() > self.fan_in {
            let group: Vec<PathBuf> = runs.drain(..self.fan_in).collect();
            let p = self.dir.join(format!("intended.{}", self.made));
            self.made += 1;
            merge(&group, &p)?;
            runs.push(p);
        }
        let out = self.dir.join("intended.sorted");
        merge(&runs, &out)?;
        Ok(Intended { path: out })
    }
}

fn twice(path: &[u8]) -> Error {
    Error::InvalidArgument(format!(
        "the tree lists {:?} twice",
        String::from_utf8_lossy(path)
    ))
}

fn create(p: &Path) -> Result<File> {
    File::create(p).map_err(|e| Error::io(format!("cannot create {}", p.display()), e))
}

fn write_error(p: &Path, e: std::io::Error) -> Error {
    Error::io(format!("cannot write {}", p.display()), e)
}

fn finish_file(w: BufWriter<File>, p: &Path) -> Result<()> {
    w.into_inner().map_err(|e| write_error(p, e.into_error()))?;
    Ok(())
}

/// Merge sorted run files into `out` (removing them), refusing a path seen twice.
fn merge(runs: &[PathBuf], out: &Path) -> Result<()> {
    let mut readers = runs
        .iter()
        .map(|p| RecordReader::open(p, READ_BUF))
        .collect::<Result<Vec<_>>>()?;
    let mut heads: Vec<Option<Vec<u8>>> = Vec::with_capacity(readers.len());
    for r in &mut readers {
        heads.push(r.next_body()?.map(<[u8]>::to_vec));
    }
    let mut w = BufWriter::with_capacity(1 << 20, create(out)?);
    let mut last: Option<Vec<u8>> = None;
    loop {
        let mut best: Option<(usize, &[u8])> = None;
        for (i, h) in heads.iter().enumerate() {
            if let Some(body) = h {
                let p = body_path(body)?;
                let better = match best {
                    None => true,
                    Some((_, bp)) => path_cmp(p, bp) == Ordering::Less,
                };
                if better {
                    best = Some((i, p));
                }
            }
        }
        let Some((i, p)) = best else { break };
        if let Some(l) = &last {
            if path_cmp(l, p) != Ordering::Less {
                return Err(twice(p));
            }
        }
        last = Some(p.to_vec());
        let Some(body) = heads[i].take() else { break };
        w.write_all(&(body.len() as u32).to_le_bytes())
            .and_then(|()| w.write_all(&body))
            .map_err(|e| write_error(out, e))?;
        heads[i] = readers[i].next_body()?.map(<[u8]>::to_vec);
    }
    finish_file(w, out)?;
    for p in runs {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// Reads a spool file record by record.
pub struct RecordReader {
    r: BufReader<File>,
    path: PathBuf,
    body: Vec<u8>,
    peeked: Option<Record>,
    offset: u64,
}

impl RecordReader {
    fn open(p: &Path, buf: usize) -> Result<RecordReader> {
        let f = File::open(p).map_err(|e| Error::io(format!("cannot open {}", p.display()), e))?;
        Ok(RecordReader {
            r: BufReader::with_capacity(buf, f),
            path: p.to_path_buf(),
            body: Vec::new(),
            peeked: None,
            offset: 0,
        })
    }

    /// The next encoded record body, `None` at the end.
    fn next_body(&mut self) -> Result<Option<&[u8]>> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = self
                .r
                .read(&mut len[got..])
                .map_err(|e| Error::io(format!("cannot read {}", self.path.display()), e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            return Ok(None);
        }
        let n = u32::from_le_bytes(len) as usize;
        if got < 4 || n > MAX_RECORD {
            return Err(Error::Scratch(format!(
                "{}: record at byte {} has a bad length ({got} length bytes, {n})",
                self.path.display(),
                self.offset
            )));
        }
        self.body.resize(n, 0);
        self.r.read_exact(&mut self.body).map_err(|e| {
            Error::io(
                format!(
                    "{}: reading the {n}-byte record at byte {}",
                    self.path.display(),
                    self.offset
                ),
                e,
            )
        })?;
        self.offset += 4 + n as u64;
        Ok(Some(&self.body))
    }

    /// The next record without consuming it.
    pub fn peek(&mut self) -> Result<Option<&Record>> {
        if self.peeked.is_none() {
            self.peeked = match self.next_body()? {
                Some(b) => Some(Record::decode(b)?),
                None => None,
            };
        }
        Ok(self.peeked.as_ref())
    }

    /// The next record.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        self.peek()?;
        Ok(self.peeked.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subroot_formats::tree::{Entry, Kind, Metadata};

    fn rec(path: &str, n: u32) -> Record {
        Record {
            entry: Entry {
                path: path.as_bytes().to_vec(),
                kind: Kind::File,
                meta: Metadata {
                    uid: n,
                    ..Default::default()
                },
                size: 0,
                rdev: (0, 0),
                link_target: None,
                hardlink_id: None,
            },
            content: None,
        }
    }

    fn read_all(i: &Intended) -> Vec<Record> {
        let mut r = i.reader().unwrap();
        let mut v = Vec::new();
        while let Some(x) = r.next_record().unwrap() {
            v.push(x);
        }
        v
    }

    fn paths(n: usize) -> Vec<String> {
        // A tree in depth-first order with names that sort differently as whole strings.
        let mut v = vec![String::new()];
        for d in 0..n {
            v.push(format!("d{d}"));
            v.push(format!("d{d}/x"));
            v.push(format!("d{d}/x/y"));
            v.push(format!("d{d}/x-z"));
            v.push(format!("d{d}-f"));
        }
        v.sort_by(|a, b| path_cmp(a.as_bytes(), b.as_bytes()));
        v
    }

    #[test]
    fn in_order_input_is_not_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::with_limits(dir.path(), 64, 3).unwrap();
        let p = paths(30);
        for (i, x) in p.iter().enumerate() {
            s.push(&rec(x, i as u32)).unwrap();
        }
        assert_eq!(s.runs_written(), 0);
        let out = read_all(&s.finish().unwrap());
        let got: Vec<_> = out.iter().map(|r| r.entry.path.clone()).collect();
        let want: Vec<_> = p.iter().map(|x| x.as_bytes().to_vec()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn external_sort_merges_many_runs() {
        let dir = tempfile::tempdir().unwrap();
        // Tiny runs and a fan-in of 3: several rounds of merging.
        let mut s = Spool::with_limits(dir.path(), 200, 3).unwrap();
        let sorted = paths(40);
        // In order for a while, then a deterministic shuffle of the rest.
        let mut order: Vec<usize> = (0..sorted.len()).collect();
        let tail = &mut order[10..];
        let mut x = 12345u64;
        for i in (1..tail.len()).rev() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            tail.swap(i, (x >> 33) as usize % (i + 1));
        }
        for &i in &order {
            s.push(&rec(&sorted[i], i as u32)).unwrap();
        }
        assert!(s.runs_written() > 6, "{}", s.runs_written());
        let out = read_all(&s.finish().unwrap());
        assert_eq!(out.len(), sorted.len());
        for (i, r) in out.iter().enumerate() {
            assert_eq!(r.entry.path, sorted[i].as_bytes());
            assert_eq!(
                r.entry.meta.uid, i as u32,
                "the record travels with its path"
            );
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "runs are removed after merging");
    }

    #[test]
    fn a_path_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path()).unwrap();
        s.push(&rec("", 0)).unwrap();
        s.push(&rec("a", 0)).unwrap();
        assert!(s.push(&rec("a", 1)).is_err());
        let mut s = Spool::with_limits(dir.path(), 50, 2).unwrap();
        for p in ["", "b", "a", "c", "a"] {
            s.push(&rec(p, 0)).unwrap();
        }
        let e = s.finish().unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
