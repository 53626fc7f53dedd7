//! Opening the files inquiryd only reads outside the plugins directory (the configuration file,
//! an import, the database's header, the lock file beside it) without ever waiting on one: the
//! file is opened with `O_NONBLOCK`, so a FIFO with no writer does not hold the open, and checked
//! on the open descriptor, so a FIFO, socket, device (`/dev/zero` reads forever) or directory is
//! refused at once with what it is. [`check`] does the same for a path SQLite is about to open
//! itself (the database and its `-wal`, `-shm` and `-journal` sidecars), where the open is not
//! ours to make.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a non-regular file is, for messages; `None` for a regular file.
pub fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else {
        Some("not a file")
    }
}

fn refused(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is {what}, not a regular file"),
    )
}

/// Opens the regular file at `path` (following symlinks) for reading; anything else is refused
/// without being waited on.
pub fn open(path: &Path) -> io::Result<File> {
    // O_NONBLOCK only matters for what is refused below: on a regular file it changes nothing.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    match not_regular(&file.metadata()?) {
        None => Ok(file),
        Some(what) => Err(refused(what)),
    }
}

/// `Ok` when nothing is at `path` or it is a regular file (following symlinks); a stat, which
/// never waits on a FIFO.
pub fn check(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) => match not_regular(&meta) {
            None => Ok(()),
            Some(what) => Err(refused(what)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_open_and_the_rest_are_refused_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("write");
        assert!(open(&file).is_ok());
        assert!(check(&file).is_ok());
        assert!(check(&dir.path().join("missing")).is_ok());
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .expect("mkfifo")
                .success()
        );
        // with no writer, a blocking open would never return
        let e = open(&fifo).expect_err("a FIFO");
        assert_eq!(e.to_string(), "is a FIFO, not a regular file");
        assert!(check(&fifo).is_err());
        assert!(open(Path::new("/dev/zero")).is_err());
        assert!(open(dir.path()).is_err());
    }
}
