//! Coalesced writes for HTTP/2 connections.
//!
//! The h2 crate writes and flushes each DATA frame larger than 256 bytes on its own (it chains
//! the payload instead of copying it, and must flush before it can buffer the next frame).
//! client-go multiplexes all of a process's watches over one HTTP/2 connection, so one event
//! for 125 watchers on a connection became 125 TLS records and 125 `writev` calls, most of the
//! server's CPU per watch delivery (docs/benchmarks.md).
//!
//! [`CoalescedWrites`] sits between hyper and the TLS stream. A write appends to a buffer the
//! connection shares with a writer task; a flush returns at once, as a TCP socket's does
//! (the bytes are handed to the transport). The writer task, woken by the first write into an
//! empty buffer, first yields to the scheduler, so that every stream made ready by the same
//! event has queued its frame, and then writes everything buffered in one go. Order is kept
//! (one buffer, one writer), errors reach the connection on its next write, flush or shutdown,
//! and a full buffer holds the connection back until the writer has drained it.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::Notify;

/// Bytes buffered before writes wait for the writer task.
const MAX_BUFFERED: usize = 256 * 1024;
/// How long the writer may still take once the connection is dropped: a peer that stopped
/// reading must not keep the task and its socket forever.
const GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// An I/O stream whose writes a background task coalesces (module docs).
pub struct CoalescedWrites<T> {
    read: ReadHalf<T>,
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer task: bytes to write, a shutdown, or the connection gone.
    work: Notify,
    /// Signalled when the connection is dropped.
    gone: Notify,
}

#[derive(Default)]
struct State {
    buf: BytesMut,
    /// Bytes the writer has taken and not written yet.
    in_flight: usize,
    /// The connection asked to shut down (or was dropped): write what is left, then close.
    closing: bool,
    /// The writer has shut the stream's write side down.
    closed: bool,
    /// The connection is dropped: the writer gets [`GRACE`] to finish, then gives up.
    dropped: bool,
    /// The first write error; every later write, flush and shutdown returns it.
    error: Option<(io::ErrorKind, String)>,
    /// The connection, waiting for room in the buffer or for the shutdown to finish.
    waiting: Option<Waker>,
}

impl State {
    fn failed(&self) -> Option<io::Error> {
        self.error
            .as_ref()
            .map(|(kind, msg)| io::Error::new(*kind, msg.clone()))
    }

    fn wait(&mut self, cx: &Context<'_>) {
        match &mut self.waiting {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
    }

    /// Asks the writer to write what is left and close; true the first time.
    fn close(&mut self) -> bool {
        !std::mem::replace(&mut self.closing, true)
    }

    fn wake(&mut self) {
        if let Some(w) = self.waiting.take() {
            w.wake();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain bytes and flags: still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T> CoalescedWrites<T>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    /// Wraps `io` and spawns its writer task on the current runtime.
    pub fn new(io: T) -> Self {
        let (read, write) = tokio::io::split(io);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Notify::new(),
            gone: Notify::new(),
        });
        tokio::spawn(writer(write, Arc::clone(&shared)));
        Self { read, shared }
    }
}

async fn writer<T: AsyncWrite>(mut io: WriteHalf<T>, shared: Arc<Shared>) {
    loop {
        shared.work.notified().await;
        // Let the tasks already queued (the other streams the same event made ready) add
        // their frames before the bytes go out.
        to_back_of_queue().await;
        loop {
            let (bytes, closing) = {
                let mut state = shared.lock();
                let bytes = state.buf.split().freeze();
                state.in_flight = bytes.len();
                (bytes, state.closing)
            };
            if !bytes.is_empty() {
                let written = tokio::select! {
                    written = async {
                        io.write_all(&bytes).await?;
                        io.flush().await
                    } => written,
                    () = abandoned(&shared) => Err(gave_up()),
                };
                let mut state = shared.lock();
                state.in_flight = 0;
                if let Err(e) = written {
                    state.error = Some((e.kind(), e.to_string()));
                    state.buf.clear();
                    state.wake();
                    return;
                }
                // Room again for a connection held back by a full buffer.
                state.wake();
                if !state.buf.is_empty() {
                    // More arrived while writing; it went out with no yield in between, so
                    // a connection that keeps writing is not held up a scheduler round each.
                    continue;
                }
            }
            if closing {
                let shut = tokio::select! {
                    shut = io.shutdown() => shut,
                    () = abandoned(&shared) => Err(gave_up()),
                };
                let mut state = shared.lock();
                if let Err(e) = shut
                    && state.error.is_none()
                {
                    state.error = Some((e.kind(), e.to_string()));
                }
                state.closed = true;
                state.wake();
                return;
            }
            break;
        }
    }
}

/// Completes [`GRACE`] after the connection was dropped.
async fn abandoned(shared: &Shared) {
    loop {
        let gone = shared.gone.notified();
        if shared.lock().dropped {
            break;
        }
        gone.await;
    }
    tokio::time::sleep(GRACE).await;
}

fn gave_up() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the connection was dropped and its peer does not read",
    )
}

/// Reschedules the task behind the tasks queued now. Unlike `tokio::task::yield_now`, which
/// waits until the worker has no other work at all, this keeps the latency of a busy server's
/// writes to one pass over its run queue.
async fn to_back_of_queue() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        // A task woken while it runs goes to the back of the run queue.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

impl<T: AsyncRead> AsyncRead for CoalescedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<T> CoalescedWrites<T> {
    fn push(&self, cx: &Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let mut state = self.shared.lock();
        if let Some(e) = state.failed() {
            return Poll::Ready(Err(e));
        }
        if state.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let pending = state.buf.len() + state.in_flight;
        if pending > 0 && pending + len > MAX_BUFFERED {
            state.wait(cx);
            return Poll::Pending;
        }
        let was_empty = state.buf.is_empty();
        for b in bufs {
            state.buf.extend_from_slice(b);
        }
        drop(state);
        if was_empty && len > 0 {
            self.shared.work.notify_one();
        }
        Poll::Ready(Ok(len))
    }
}

impl<T> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.push(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// The bytes are the writer task's once written (as a socket's are the kernel's): a flush
    /// only reports an earlier write error.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shared.lock().failed().map_or(Ok(()), Err))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.shared.lock();
        if let Some(e) = state.failed() {
            return Poll::Ready(Err(e));
        }
        if state.closed {
            return Poll::Ready(Ok(()));
        }
        state.wait(cx);
        let first = state.close();
        drop(state);
        if first {
            self.shared.work.notify_one();
        }
        Poll::Pending
    }
}

impl<T> Drop for CoalescedWrites<T> {
    /// The writer writes what is left and closes the stream's write side, then ends.
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let first = state.close();
        state.dropped = true;
        drop(state);
        if first {
            self.shared.work.notify_one();
        }
        self.shared.gone.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn writes_arrive_in_order_and_shutdown_closes_the_stream() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = CoalescedWrites::new(a);
        let mut expected = Vec::new();
        for i in 0..2_000u32 {
            let chunk = format!("frame {i};");
            io.write_all(chunk.as_bytes()).await.expect("write");
            io.flush().await.expect("flush");
            expected.extend_from_slice(chunk.as_bytes());
        }
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.expect("read");
            got
        });
        io.shutdown().await.expect("shutdown");
        drop(io);
        assert_eq!(reader.await.expect("reader"), expected);
    }

    #[tokio::test]
    async fn a_full_buffer_holds_writes_back_until_the_peer_reads() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut io = CoalescedWrites::new(a);
        let big = vec![7u8; MAX_BUFFERED];
        io.write_all(&big).await.expect("first fills the buffer");
        // The peer reads nothing: the writer is stuck in the duplex, so a second buffer-full
        // waits.
        let second =
            tokio::time::timeout(std::time::Duration::from_millis(200), io.write_all(&big)).await;
        assert!(second.is_err(), "a write past the limit must wait");
        let mut got = vec![0u8; 2 * MAX_BUFFERED];
        let read = tokio::spawn(async move {
            b.read_exact(&mut got).await.expect("read");
            got
        });
        io.write_all(&big)
            .await
            .expect("drained, the write goes on");
        io.flush().await.expect("flush");
        let got = read.await.expect("reader");
        assert!(got.iter().all(|&x| x == 7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_connection_whose_peer_does_not_read_releases_the_stream() {
        let (a, b) = tokio::io::duplex(16);
        let mut io = CoalescedWrites::new(a);
        io.write_all(&[1u8; 4096]).await.expect("buffered");
        // The writer is now stuck: the peer reads nothing.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let shared = Arc::downgrade(&io.shared);
        drop(io);
        tokio::time::sleep(GRACE + std::time::Duration::from_secs(1)).await;
        assert!(
            shared.upgrade().is_none(),
            "the writer task must give up and drop the stream"
        );
        drop(b);
    }

    #[tokio::test]
    async fn a_write_error_reaches_the_connection() {
        let (a, b) = tokio::io::duplex(16);
        drop(b);
        let mut io = CoalescedWrites::new(a);
        // The first write is only buffered; the writer's failure shows on a later call.
        io.write_all(b"hello").await.expect("buffered");
        let mut failed = false;
        for _ in 0..100 {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if io.write_all(b"again").await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "the broken pipe must surface");
        assert!(io.flush().await.is_err());
    }
}
