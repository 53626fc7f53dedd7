//! Writing a file the way an operator can trust: under a temporary name beside it
//! (`NAME.partial-PID`, mode 0600 from its creation, as what inquiryd writes may hold hashes or
//! visitors' data), flushed to disk, then given its name in one step. An existing file is
//! replaced only when asked (otherwise a hard link places it, which fails rather than replace a
//! file that appeared meanwhile); a file never placed is removed, so a failed or interrupted
//! write leaves nothing at the name.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written beside its final name; removed unless [`NewFile::place`]d.
pub struct NewFile {
    partial: PathBuf,
    dest: PathBuf,
    overwrite: bool,
    out: Option<BufWriter<File>>,
    placed: bool,
}

/// The error for a destination that exists and may not be replaced.
fn exists() -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        "already exists: choose another name, or give --force to replace it",
    )
}

impl NewFile {
    /// Starts writing `dest`, readable by its owner only (0600: backups and exports hold hashes
    /// and visitor data). Fails at once when `dest` exists and `overwrite` is false.
    pub fn create(dest: &Path, overwrite: bool) -> io::Result<NewFile> {
        NewFile::create_with_mode(dest, overwrite, 0o600)
    }

    /// As [`NewFile::create`], with the file's permission bits (before the umask).
    pub fn create_with_mode(dest: &Path, overwrite: bool, mode: u32) -> io::Result<NewFile> {
        use std::os::unix::fs::OpenOptionsExt;
        if !overwrite && std::fs::symlink_metadata(dest).is_ok() {
            return Err(exists());
        }
        let mut name = dest.as_os_str().to_owned();
        name.push(format!(".partial-{}", std::process::id()));
        let partial = PathBuf::from(name);
        let _ = std::fs::remove_file(&partial);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&partial)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", partial.display()),
                )
            })?;
        Ok(NewFile {
            partial,
            dest: dest.to_path_buf(),
            overwrite,
            out: Some(BufWriter::with_capacity(256 << 10, file)),
            placed: false,
        })
    }

    /// The temporary file, for a writer that opens it by name (SQLite).
    pub fn path(&self) -> &Path {
        &self.partial
    }

    /// Where to write the content.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.out.as_mut().expect("open until placed")
    }

    /// Flushes the content to disk, gives the file its name, and flushes the directory; returns
    /// the file's size.
    pub fn place(mut self) -> io::Result<u64> {
        let out = self.out.take().expect("placed once");
        out.into_inner().map_err(|e| e.into_error())?;
        // Reopened: a writer that went through the path (SQLite) is flushed too.
        let file = File::open(&self.partial)?;
        file.sync_all()?;
        let size = file.metadata()?.len();
        if self.overwrite {
            std::fs::rename(&self.partial, &self.dest)?;
        } else {
            std::fs::hard_link(&self.partial, &self.dest).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => exists(),
                _ => e,
            })?;
            let _ = std::fs::remove_file(&self.partial);
        }
        self.placed = true;
        let dir = match self.dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(size)
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.partial);
            for sidecar in ["-journal", "-wal", "-shm"] {
                let mut name = self.partial.as_os_str().to_owned();
                name.push(sidecar);
                let _ = std::fs::remove_file(PathBuf::from(name));
            }
        }
    }
}

impl Write for NewFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}
