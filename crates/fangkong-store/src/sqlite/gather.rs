//! A VFS over SQLite's default one that gathers the WAL's writes while a bulk write runs.
//!
//! SQLite writes its WAL one frame at a time: a 24-byte header, then the page, two
//! `pwrite`s of odd sizes. perf of the registry import at 2 M residents (AMD EPYC, 2
//! vCPU, ext4) put 37 % of the writer thread in those `pwrite`s: per frame, the syscall,
//! the page cache lookups and the kernel zeroing the parts of each new 4 KiB block the
//! frame does not cover (as much time as copying the bytes). The same bytes written in
//! 1 MiB pieces cost a fraction of that.
//!
//! The writer's connection opens its files through this VFS ([`NAME`]). Every file is the
//! default VFS's, reached through a copy of its methods; a WAL file additionally keeps a
//! buffer of consecutive writes while [`gather`] has switched it on (the writer does so for
//! a job that runs alone, an import). What SQLite relies on is kept:
//! - a read sees what was written: a read within the buffer is served from it, one that
//!   overlaps it partly first writes the buffer out;
//! - the buffer is written out before every sync, size query, truncation and close, so a
//!   commit is on disk, in full, before SQLite publishes it to other connections (the
//!   writer commits with `synchronous = FULL`, which syncs the WAL at every commit);
//! - writes elsewhere in the file (a page spilled again overwrites its earlier frame) go
//!   straight through or into the buffer where they land inside it: the file's bytes end
//!   up the same whatever the order.
//!
//! Frames SQLite wrote but did not commit are worth nothing after a crash, buffered or not.
//!
//! A full buffer is written by a thread of its own ([`Behind`]) while SQLite goes on: perf
//! of the import at 20 M residents put 15 % of the writer thread in the kernel copying the
//! gathered bytes into the page cache, on a core the reading thread left half idle. Up to
//! [`IN_FLIGHT`] buffers are handed over before the writer waits; a read or a write that
//! overlaps a buffer not yet written waits until it is, and so does every sync, size query,
//! truncation and close. A failed write fails the next call SQLite makes, so the
//! transaction cannot commit.
//!
//! This is the one module of the workspace with `unsafe` code: a VFS is a C interface.

use std::collections::VecDeque;
use std::ffi::{CStr, c_int, c_void};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use rusqlite::Connection;
use rusqlite::ffi;

/// The VFS's name, for `Connection::open_with_flags_and_vfs`.
pub(super) const NAME: &CStr = c"fangkong-gather";

/// Bytes gathered before they are written.
const CAPACITY: usize = 1 << 20;
/// Gathered buffers handed to the writing thread and not yet written, at most.
const IN_FLIGHT: usize = 4;

/// Our file: SQLite's handle, then the default VFS's file (allocated by SQLite right after
/// this struct, in the `szOsFile` bytes we asked for).
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    wal: bool,
    gathering: bool,
    /// The file offset of `buffer[0]`.
    start: i64,
    buffer: Vec<u8>,
    /// The file's name (a WAL's: its writing thread opens it).
    path: Option<PathBuf>,
    /// The thread that writes full buffers, while gathering (none if it could not start).
    behind: Option<Behind>,
}

/// Where the default VFS's file starts within ours.
const REAL_OFFSET: usize = std::mem::size_of::<File>().next_multiple_of(16);

/// The default VFS, kept as an address so that the `OnceLock` is `Sync`.
static REAL_VFS: OnceLock<usize> = OnceLock::new();
/// Whether ours is registered (an error message otherwise).
static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// Registers the VFS (once per process); the error says why it could not be.
pub(super) fn register() -> Result<(), String> {
    REGISTERED
        .get_or_init(|| {
            // SAFETY: sqlite3_vfs_find and sqlite3_vfs_register are thread-safe; the VFS
            // struct we register is leaked, so it lives as long as the process, as SQLite
            // requires; it is a copy of the default VFS with our open and file size.
            unsafe {
                let real = ffi::sqlite3_vfs_find(ptr::null());
                if real.is_null() {
                    return Err("SQLite has no default VFS".into());
                }
                let real_size = usize::try_from((*real).szOsFile).map_err(|e| e.to_string())?;
                let mut ours = *real;
                ours.pNext = ptr::null_mut();
                ours.zName = NAME.as_ptr();
                ours.szOsFile = c_int::try_from(REAL_OFFSET + real_size).map_err(|e| e.to_string())?;
                ours.xOpen = Some(open);
                REAL_VFS.get_or_init(|| real as usize);
                let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(ours)), 0);
                if rc == ffi::SQLITE_OK { Ok(()) } else { Err(format!("sqlite3_vfs_register: error {rc}")) }
            }
        })
        .clone()
}

/// Switches gathering of `conn`'s WAL on or off; off writes out what is gathered. `false`
/// if there was nothing to switch: the connection has no WAL open or is not on this VFS.
pub(super) fn gather(conn: &Connection, on: bool) -> rusqlite::Result<bool> {
    let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
    // SAFETY: SQLITE_FCNTL_JOURNAL_POINTER writes the connection's journal or WAL file
    // (or NULL) into `file`; the handle is only used on this thread while `conn` is
    // borrowed. A file whose methods are ours was initialised by `open` as a `File`.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&raw mut file).cast::<c_void>(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || !ptr::eq((*file).pMethods, &raw const METHODS) {
            return Ok(false);
        }
        let file = file.cast::<File>();
        if !(*file).wal {
            return Ok(false);
        }
        if !on {
            let rc = settle(file);
            let f = &mut *file;
            let stopped = f.behind.take().map_or(ffi::SQLITE_OK, Behind::stop);
            f.buffer = Vec::new();
            f.gathering = false;
            let rc = if rc != ffi::SQLITE_OK { rc } else { stopped };
            if rc != ffi::SQLITE_OK {
                return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some("writing the WAL".into())));
            }
            return Ok(true);
        }
        let f = &mut *file;
        if f.behind.is_none()
            && let Some(path) = &f.path
        {
            match Behind::start(path) {
                Ok(behind) => f.behind = Some(behind),
                // Gathered buffers are then written on this thread.
                Err(error) => tracing::warn!(%error, "the WAL's writing thread did not start"),
            }
        }
        f.gathering = true;
    }
    Ok(true)
}

/// The default VFS's methods of our file's inner file.
///
/// # Safety
/// `file` was opened by [`open`].
unsafe fn real(file: *mut ffi::sqlite3_file) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: by the caller's promise `file` is a `File` whose `real` file was opened by
    // the default VFS, which set methods that live as long as the process.
    unsafe {
        let real = (*file.cast::<File>()).real;
        (real, &*(*real).pMethods)
    }
}

/// Writes the buffer out (if any) and empties it: hands it to the writing thread if there
/// is one (see [`settle`]), or writes it here.
///
/// # Safety
/// `file` was opened by [`open`].
unsafe fn flush(file: *mut File) -> c_int {
    // SAFETY: as the caller promises; the buffer's bytes are valid for its length.
    unsafe {
        let f = &mut *file;
        if f.buffer.is_empty() {
            return ffi::SQLITE_OK;
        }
        if let Some(behind) = &f.behind {
            let full = std::mem::take(&mut f.buffer);
            return match behind.hand_over(f.start, full) {
                Ok(empty) => {
                    f.buffer = empty;
                    ffi::SQLITE_OK
                }
                Err(rc) => rc,
            };
        }
        let (real, methods) = real(file.cast());
        let write = methods.xWrite.expect("xWrite");
        // The default VFS writes at most 128 KiB - 1 bytes a call (`seekAndWriteFd` masks
        // the length with 0x1ffff): pieces end on 64 KiB boundaries of the file, so that
        // every block but the buffer's first and last is written whole.
        let mut at = 0;
        let mut rc = ffi::SQLITE_OK;
        while at < f.buffer.len() && rc == ffi::SQLITE_OK {
            let offset = f.start + at as i64;
            let next_boundary = (offset / PIECE + 1) * PIECE;
            let piece = ((next_boundary - offset) as usize).min(f.buffer.len() - at);
            rc = write(real, f.buffer.as_ptr().add(at).cast(), piece as c_int, offset);
            at += piece;
        }
        f.buffer.clear();
        rc
    }
}

/// The largest write handed to the default VFS at once.
const PIECE: i64 = 64 * 1024;

/// Writes the buffer out and waits until everything handed over is written: the file then
/// holds every byte SQLite wrote.
///
/// # Safety
/// `file` was opened by [`open`].
unsafe fn settle(file: *mut File) -> c_int {
    // SAFETY: as the caller promises.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        (*file).behind.as_ref().map_or(ffi::SQLITE_OK, Behind::drain)
    }
}

/// Waits for the writing thread if it has not yet written bytes in `offset..last`, which a
/// read or a write there must see or come after.
///
/// # Safety
/// `file` was opened by [`open`].
unsafe fn wait_for_range(file: *mut File, offset: i64, last: i64) -> c_int {
    // SAFETY: as the caller promises.
    unsafe {
        match &(*file).behind {
            Some(behind) if behind.overlaps(offset, last) => behind.drain(),
            _ => ffi::SQLITE_OK,
        }
    }
}

/// A thread that writes gathered buffers, in the order handed over, through a descriptor
/// of its own (the page cache is the file's, whichever descriptor wrote it; a sync through
/// SQLite's syncs it all).
struct Behind {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// Buffers to write, with their file offsets, oldest first.
    queue: VecDeque<(i64, Vec<u8>)>,
    /// The range the thread is writing now, taken off the queue.
    writing: Option<(i64, i64)>,
    /// Written buffers, empty, for the gathering to reuse (fresh memory is slow to touch).
    spare: Vec<Vec<u8>>,
    /// The first failed write's error code; later buffers are dropped unwritten.
    error: c_int,
    stop: bool,
    /// Bytes written, and how long the gathering thread waited for the writing one.
    written: u64,
    waited: std::time::Duration,
}

impl Behind {
    fn start(path: &std::path::Path) -> std::io::Result<Behind> {
        let target = std::fs::OpenOptions::new().write(true).open(path)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                writing: None,
                spare: (0..IN_FLIGHT).map(|_| Vec::with_capacity(CAPACITY)).collect(),
                error: ffi::SQLITE_OK,
                stop: false,
                written: 0,
                waited: std::time::Duration::ZERO,
            }),
            changed: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("sqlite-wal-write".into()).spawn(move || write_behind(&shared, &target))?
        };
        Ok(Behind { shared, thread: Some(thread) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `full` (its bytes go at `offset`) and returns an empty buffer, waiting while
    /// [`IN_FLIGHT`] are queued.
    fn hand_over(&self, offset: i64, full: Vec<u8>) -> Result<Vec<u8>, c_int> {
        let mut state = self.lock();
        state.queue.push_back((offset, full));
        self.shared.changed.notify_all();
        loop {
            if state.error != ffi::SQLITE_OK {
                return Err(state.error);
            }
            if let Some(empty) = state.spare.pop() {
                return Ok(empty);
            }
            state = self.wait(state);
        }
    }

    /// Waits for the writing thread to finish a buffer, counting the time.
    fn wait<'a>(&'a self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let began = std::time::Instant::now();
        let mut state = self.shared.changed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        state.waited += began.elapsed();
        state
    }

    /// Waits until everything handed over is written; the first error if a write failed.
    fn drain(&self) -> c_int {
        let mut state = self.lock();
        while !state.queue.is_empty() || state.writing.is_some() {
            state = self.wait(state);
        }
        state.error
    }

    /// Whether bytes in `offset..last` are handed over and not yet written.
    fn overlaps(&self, offset: i64, last: i64) -> bool {
        let state = self.lock();
        let pending = state.queue.iter().map(|(at, bytes)| (*at, at + bytes.len() as i64));
        state.writing.into_iter().chain(pending).any(|(start, end)| offset < end && last > start)
    }

    /// Writes what is handed over and ends the thread; the first error if a write failed.
    fn stop(mut self) -> c_int {
        let rc = self.drain();
        let mut state = self.lock();
        state.stop = true;
        tracing::info!(
            bytes = state.written,
            waited_s = state.waited.as_secs_f64(),
            "WAL written behind the gathering thread"
        );
        drop(state);
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            return ffi::SQLITE_IOERR_WRITE;
        }
        rc
    }
}

impl Drop for Behind {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.lock().stop = true;
            self.shared.changed.notify_all();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Bytes the writing threads have written (tests ask whether the thread did the writing).
#[cfg(test)]
static WRITTEN_BEHIND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The writing thread: writes each queued buffer at its offset, in order.
fn write_behind(shared: &Shared, target: &std::fs::File) {
    let lock = || shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut state = lock();
    loop {
        let Some((offset, mut bytes)) = state.queue.pop_front() else {
            if state.stop {
                return;
            }
            state = shared.changed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
            continue;
        };
        state.writing = Some((offset, offset + bytes.len() as i64));
        let failed = state.error != ffi::SQLITE_OK;
        drop(state);
        let written = if failed { Ok(()) } else { target.write_all_at(&bytes, offset as u64) };
        let length = if !failed && written.is_ok() { bytes.len() as u64 } else { 0 };
        #[cfg(test)]
        WRITTEN_BEHIND.fetch_add(length, std::sync::atomic::Ordering::Relaxed);
        bytes.clear();
        state = lock();
        state.writing = None;
        state.written += length;
        state.spare.push(bytes);
        if let Err(error) = written {
            tracing::error!(%error, offset, "writing the gathered WAL failed");
            state.error = if error.kind() == std::io::ErrorKind::StorageFull {
                ffi::SQLITE_FULL
            } else {
                ffi::SQLITE_IOERR_WRITE
            };
        }
        shared.changed.notify_all();
    }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite hands us `szOsFile` bytes at `file`, which `register` sized for a
    // `File` followed by the default VFS's file at REAL_OFFSET.
    unsafe {
        let Some(&real_vfs) = REAL_VFS.get() else { return ffi::SQLITE_ERROR };
        let real_vfs = real_vfs as *mut ffi::sqlite3_vfs;
        let real = file.cast::<u8>().add(REAL_OFFSET).cast::<ffi::sqlite3_file>();
        (*real).pMethods = ptr::null();
        let ours = file.cast::<File>();
        let wal = flags & ffi::SQLITE_OPEN_WAL != 0;
        // A file's name stays valid until it is closed (SQLite's contract); only a WAL's is
        // kept, for its writing thread.
        let path = (wal && !name.is_null()).then(|| CStr::from_ptr(name).to_str().ok().map(PathBuf::from)).flatten();
        ptr::write(
            ours,
            File {
                base: ffi::sqlite3_file { pMethods: ptr::null() },
                real,
                wal,
                gathering: false,
                start: 0,
                buffer: Vec::new(),
                path,
                behind: None,
            },
        );
        let rc = (*real_vfs).xOpen.expect("xOpen")(real_vfs, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK || (*real).pMethods.is_null() {
            // SQLite calls no method of a file whose `pMethods` is NULL, close included.
            ptr::drop_in_place(ours);
            (*file).pMethods = ptr::null();
            return if rc == ffi::SQLITE_OK { ffi::SQLITE_CANTOPEN } else { rc };
        }
        (*ours).base.pMethods = &raw const METHODS;
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls our methods only on files `open` initialised; after close it
    // never touches the file again, so the buffer is dropped here.
    unsafe {
        let mut flushed = settle(file.cast());
        if let Some(behind) = (*file.cast::<File>()).behind.take() {
            let stopped = behind.stop();
            if flushed == ffi::SQLITE_OK {
                flushed = stopped;
            }
        }
        let (real, methods) = real(file);
        let closed = methods.xClose.expect("xClose")(real);
        ptr::drop_in_place(file.cast::<File>());
        if flushed != ffi::SQLITE_OK { flushed } else { closed }
    }
}

unsafe extern "C" fn read(file: *mut ffi::sqlite3_file, out: *mut c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: `out` holds `amount` bytes (SQLite's contract); the copy stays within the
    // buffer, checked just before.
    unsafe {
        let f = &mut *file.cast::<File>();
        if !f.buffer.is_empty() {
            let (start, end) = (f.start, f.start + f.buffer.len() as i64);
            let last = offset + i64::from(amount);
            if offset >= start && last <= end {
                let from = (offset - start) as usize;
                ptr::copy_nonoverlapping(f.buffer.as_ptr().add(from), out.cast::<u8>(), amount as usize);
                return ffi::SQLITE_OK;
            }
            if offset < end && last > start {
                let rc = settle(file.cast());
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
        }
        let rc = wait_for_range(file.cast(), offset, offset + i64::from(amount));
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let (real, methods) = real(file);
        methods.xRead.expect("xRead")(real, out, amount, offset)
    }
}

unsafe extern "C" fn write(file: *mut ffi::sqlite3_file, data: *const c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: `data` holds `amount` bytes (SQLite's contract); copies into the buffer stay
    // within it, checked just before.
    unsafe {
        let f = &mut *file.cast::<File>();
        let size = amount as usize;
        if f.gathering && size < CAPACITY {
            let bytes = std::slice::from_raw_parts(data.cast::<u8>(), size);
            let (start, end) = (f.start, f.start + f.buffer.len() as i64);
            let last = offset + i64::from(amount);
            if f.buffer.is_empty() {
                f.start = offset;
                f.buffer.reserve(CAPACITY);
                f.buffer.extend_from_slice(bytes);
                return ffi::SQLITE_OK;
            }
            if offset == end && f.buffer.len() + size <= CAPACITY {
                f.buffer.extend_from_slice(bytes);
                return ffi::SQLITE_OK;
            }
            if offset >= start && last <= end {
                let from = (offset - start) as usize;
                f.buffer[from..from + size].copy_from_slice(bytes);
                return ffi::SQLITE_OK;
            }
            if offset == end || (offset < end && last > start) {
                // The buffer is full, or the write overlaps its edge: out with it first,
                // then this write starts the next one.
                let rc = flush(file.cast());
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let f = &mut *file.cast::<File>();
                f.start = offset;
                f.buffer.extend_from_slice(bytes);
                return ffi::SQLITE_OK;
            }
            // Elsewhere in the file, apart from the buffer: straight through, once any
            // earlier bytes there are written.
        } else if !f.buffer.is_empty() {
            let rc = settle(file.cast());
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        let rc = wait_for_range(file.cast(), offset, offset + i64::from(amount));
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let (real, methods) = real(file);
        methods.xWrite.expect("xWrite")(real, data, amount, offset)
    }
}

/// The methods that write the buffer out, then pass through to the default VFS's file:
/// after them the file holds everything SQLite wrote.
macro_rules! flush_then_pass {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: a file `open` initialised (SQLite's contract for every method); the
            // arguments are SQLite's, passed on.
            unsafe {
                let rc = settle(file.cast());
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let (real, methods) = real(file);
                methods.$method.expect(stringify!($method))(real $(, $arg)*)
            }
        }
    };
}

flush_then_pass!(truncate, xTruncate, (size: i64));
flush_then_pass!(sync, xSync, (flags: c_int));
flush_then_pass!(file_size, xFileSize, (size: *mut i64));

/// The methods that only pass through to the default VFS's file.
macro_rules! pass {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: a file `open` initialised; the arguments are SQLite's, passed on.
            unsafe {
                let (real, methods) = real(file);
                match methods.$method {
                    Some(method) => method(real $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

pass!(lock, xLock, (level: c_int) -> c_int, ffi::SQLITE_IOERR_LOCK);
pass!(unlock, xUnlock, (level: c_int) -> c_int, ffi::SQLITE_IOERR_UNLOCK);
pass!(check_reserved_lock, xCheckReservedLock, (out: *mut c_int) -> c_int, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK);
pass!(file_control, xFileControl, (op: c_int, arg: *mut c_void) -> c_int, ffi::SQLITE_NOTFOUND);
pass!(sector_size, xSectorSize, () -> c_int, 4096);
pass!(device_characteristics, xDeviceCharacteristics, () -> c_int, 0);
pass!(shm_map, xShmMap, (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_IOERR_SHMMAP);
pass!(shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int) -> c_int, ffi::SQLITE_IOERR_SHMLOCK);
pass!(shm_unmap, xShmUnmap, (delete: c_int) -> c_int, ffi::SQLITE_OK);
// Memory-mapped reads are off on the writer's connection (`mmap_size` 0): SQLite then
// never asks; a NULL page would make it read instead.
pass!(fetch, xFetch, (offset: i64, amount: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_OK);
pass!(unfetch, xUnfetch, (offset: i64, page: *mut c_void) -> c_int, ffi::SQLITE_OK);

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: as for the passed-through methods.
    unsafe {
        let (real, methods) = real(file);
        if let Some(barrier) = methods.xShmBarrier {
            barrier(real);
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, OpenFlags, params};

    use super::*;

    fn open(path: &std::path::Path) -> Connection {
        register().unwrap();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Connection::open_with_flags_and_vfs(path, flags, NAME).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             PRAGMA cache_size = 64; CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB NOT NULL, w TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS t_w ON t (w);",
        )
        .unwrap();
        conn
    }

    /// Rows whose index entries land all over the index, so that the small cache spills
    /// pages and spills some of them again (overwriting their frames in place).
    fn insert(conn: &Connection, from: i64, rows: i64) {
        let mut statement = conn.prepare("INSERT INTO t (k, v, w) VALUES (?1, ?2, ?3)").unwrap();
        for k in from..from + rows {
            let spread = (k * 7_919) % 10_007;
            statement.execute(params![k, vec![(k % 251) as u8; 300], format!("{spread:05}-{k}")]).unwrap();
        }
    }

    fn summary(conn: &Connection) -> (i64, i64, String) {
        let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        conn.query_row("SELECT count(*), total(length(v) + k) FROM t", [], |r| {
            Ok((r.get(0)?, r.get::<_, f64>(1)? as i64, integrity))
        })
        .unwrap()
    }

    #[test]
    fn the_writing_thread_writes_buffers_in_the_order_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("behind");
        std::fs::write(&path, []).unwrap();
        let behind = Behind::start(&path).unwrap();
        let mut spare = behind.hand_over(0, vec![1; 10_000]).unwrap();
        assert!(spare.is_empty() && spare.capacity() >= CAPACITY, "an empty buffer comes back to gather into");
        spare.extend_from_slice(&[2; 5_000]);
        // Over the end of the first: written after it, so its bytes win.
        behind.hand_over(8_000, spare).unwrap();
        // More than IN_FLIGHT buffers: the writer waits for spare ones, nothing is lost.
        for n in 0..(2 * IN_FLIGHT as i64) {
            behind.hand_over(20_000 + n * 100, vec![3 + n as u8; 100]).unwrap();
        }
        assert_eq!(behind.drain(), ffi::SQLITE_OK);
        assert!(!behind.overlaps(0, 1 << 20), "nothing is pending once drained");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 20_000 + 2 * IN_FLIGHT * 100);
        assert!(bytes[..8_000].iter().all(|&b| b == 1));
        assert!(bytes[8_000..13_000].iter().all(|&b| b == 2));
        assert!(bytes[13_000..20_000].iter().all(|&b| b == 0), "a gap the buffers did not cover");
        for n in 0..2 * IN_FLIGHT {
            assert!(bytes[20_000 + n * 100..20_000 + (n + 1) * 100].iter().all(|&b| b == 3 + n as u8));
        }
        assert_eq!(behind.stop(), ffi::SQLITE_OK);
    }

    #[test]
    fn a_failed_write_behind_fails_what_comes_after() {
        // Every write to /dev/full fails with ENOSPC.
        let behind = Behind::start(std::path::Path::new("/dev/full")).unwrap();
        let next = behind.hand_over(0, vec![1; 4_096]);
        assert_eq!(behind.drain(), ffi::SQLITE_FULL);
        // Whether the first hand-over saw it or not, every later call does.
        assert!(next.is_ok() || next == Err(ffi::SQLITE_FULL));
        assert_eq!(behind.hand_over(4_096, vec![2; 4_096]), Err(ffi::SQLITE_FULL));
        assert_eq!(behind.stop(), ffi::SQLITE_FULL);
    }

    #[test]
    fn a_gathered_transaction_commits_in_full_and_a_rolled_back_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gather.db");
        let conn = open(&path);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        assert!(gather(&conn, true).unwrap(), "the WAL of a connection on this VFS is found and switched");
        let behind_before = WRITTEN_BEHIND.load(std::sync::atomic::Ordering::Relaxed);
        insert(&conn, 0, 20_000);
        assert!(
            WRITTEN_BEHIND.load(std::sync::atomic::Ordering::Relaxed) > behind_before,
            "full buffers are written by the WAL's writing thread"
        );
        // The writer reads its own spilled pages back (through the buffer or the file).
        let (count, _, _) = summary(&conn);
        assert_eq!(count, 20_000);
        conn.execute_batch("COMMIT").unwrap();

        // As soon as the commit returns (gathering still on), another connection, on
        // SQLite's own VFS, sees all of it, intact.
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        assert!(!gather(&reader, true).unwrap(), "a connection on SQLite's own VFS is left alone");
        let committed = summary(&reader);
        assert_eq!((committed.0, committed.2.as_str()), (20_000, "ok"));

        // So does a copy of the files as they are on disk now, recovered from its WAL.
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::copy(dir.path().join("gather.db-wal"), dir.path().join("copy.db-wal")).unwrap();
        let recovered = Connection::open(&copy).unwrap();
        assert_eq!(summary(&recovered), committed);
        assert!(gather(&conn, false).unwrap());

        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        gather(&conn, true).unwrap();
        insert(&conn, 20_000, 10_000);
        conn.execute_batch("ROLLBACK").unwrap();
        gather(&conn, false).unwrap();
        assert_eq!(summary(&reader), committed);

        // And the next transaction, not gathered, writes on from there.
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        insert(&conn, 20_000, 1_000);
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(summary(&reader).0, 21_000);
        drop(conn);
        assert_eq!(summary(&Connection::open(&path).unwrap()).2, "ok");
    }
}
