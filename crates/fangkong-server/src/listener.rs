//! What happens to a connection before hyper and axum see it: the server's two listeners.
//!
//! * [`ShapedListener`] (the API). hyper answers some malformed requests itself, before any
//!   route or middleware runs — an unreadable request line or header (400), too many or too
//!   large headers (431), a URI too long (414) — with an empty body, and offers no hook to
//!   write another (`hyper::proto::h1::role::Server::on_error` builds the head; nothing
//!   reaches the service). So the connection's writes pass through [`ShapedIo`], which
//!   replaces such an answer with the same status and the standard error body. Only hyper
//!   writes a 4xx/5xx head with `content-length: 0` and nothing after it: every answer of
//!   the application has a body (`middleware::shape_errors` gives one to those without).
//! * [`GuardedListener`] (the OsmAnd port, open to devices on a network). At most
//!   [`Limits::max_connections`] connections at once — the next waits in the kernel's
//!   backlog until one closes — and each request must arrive and be answered within
//!   [`Limits::request_deadline`], counted from the connection's start or the previous
//!   answer, so a peer that trickles bytes (or never reads its answer) is disconnected.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::error::{ApiError, code_for_status};

/// Accepts the next connection, riding out errors that concern one connection only and
/// pausing on the others (e.g. too many open files), as axum's own listener does.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                ) => {}
            Err(error) => {
                tracing::error!(%error, "accepting a connection failed; pausing");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The API's listener: hyper's own error answers leave in the standard shape.
#[derive(Debug)]
pub struct ShapedListener(pub TcpListener);

impl axum::serve::Listener for ShapedListener {
    type Io = ShapedIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, peer) = accept(&self.0).await;
        (ShapedIo { inner: stream, pending: Vec::new() }, peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A connection whose writes are watched for hyper's bodiless error answers.
#[derive(Debug)]
pub struct ShapedIo<T> {
    inner: T,
    /// A replacement answer not yet written in full.
    pending: Vec<u8>,
}

impl<T: AsyncWrite + Unpin> ShapedIo<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ShapedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

// `poll_write_vectored` is left to its default and `is_write_vectored` says no, so hyper
// flattens each answer's head (and a small body) into one buffer: a head alone in a write
// is an answer without a body.
impl<T: AsyncWrite + Unpin> AsyncWrite for ShapedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        match shaped_answer(buf) {
            Some(answer) => {
                // Taken whole; written by this call if the socket has room, else on flush.
                self.pending = answer;
                if let Poll::Ready(Err(error)) = self.poll_pending(cx) {
                    return Poll::Ready(Err(error));
                }
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// If `written` is a whole HTTP/1 answer head with an error status and `content-length: 0`
/// (hyper's own answer to a request it could not read), the same answer with the standard
/// error body.
pub(crate) fn shaped_answer(written: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(written).ok()?.strip_suffix("\r\n\r\n")?;
    if head.contains("\r\n\r\n") {
        return None;
    }
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let code = status_line.strip_prefix("HTTP/1.")?.get(2..5)?.parse::<u16>().ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    let headers: Vec<&str> = lines.collect();
    let empty =
        headers.iter().any(|h| h.split_once(':').is_some_and(|(n, v)| is(n, "content-length") && v.trim() == "0"));
    if !(status.is_client_error() || status.is_server_error()) || !empty {
        return None;
    }
    let message = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request's headers are too many or too large",
        StatusCode::URI_TOO_LONG => "the request's URI is too long",
        StatusCode::BAD_REQUEST => "the request is not readable HTTP (request line or headers)",
        _ => "the request could not be read",
    };
    let body = ApiError::new(status, code_for_status(status), message).body_bytes();
    let mut answer = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for header in headers {
        let name = header.split_once(':').map_or(header, |(name, _)| name);
        if !is(name, "content-length") && !is(name, "connection") && !is(name, "content-type") {
            answer.push_str(header);
            answer.push_str("\r\n");
        }
    }
    answer.push_str("\r\n");
    let mut answer = answer.into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

fn is(name: &str, wanted: &str) -> bool {
    name.trim().eq_ignore_ascii_case(wanted)
}

/// Bounds on a listener open to devices.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// Time for a whole request, from the connection's start or the previous answer until
    /// its answer is written: headers, body and handling.
    pub request_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_connections: 1_024, request_deadline: Duration::from_secs(10) }
    }
}

/// A listener for devices: a bounded number of connections, each held to a deadline.
#[derive(Debug)]
pub struct GuardedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    deadline: Duration,
}

impl GuardedListener {
    pub fn new(listener: TcpListener, limits: Limits) -> GuardedListener {
        GuardedListener {
            listener,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            deadline: limits.request_deadline,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Waiting for a permit before accepting leaves the rest in the kernel's backlog.
        let permit = Arc::clone(&self.permits).acquire_owned().await.expect("the semaphore is never closed");
        let (stream, peer) = accept(&self.listener).await;
        let timer = Box::pin(tokio::time::sleep(self.deadline));
        (GuardedIo { inner: stream, deadline: self.deadline, timer, _permit: permit }, peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A device's connection: reading and writing fail once the current request's deadline
/// has passed, which makes hyper close it. Each answer written starts the next request's.
#[derive(Debug)]
pub struct GuardedIo<T> {
    inner: T,
    deadline: Duration,
    timer: Pin<Box<Sleep>>,
    /// Held while the connection lives: its place among the listener's connections.
    _permit: OwnedSemaphorePermit,
}

impl<T> GuardedIo<T> {
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }

    fn timed_out() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "the request took longer than its deadline")
    }
}

use std::future::Future as _;

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(Self::timed_out()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(written)) => {
                let next = Instant::now() + self.deadline;
                self.timer.as_mut().reset(next);
                Poll::Ready(Ok(written))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bodiless_error_answers_get_the_standard_body() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 18:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(shaped_answer(hyper).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{head}");
        assert!(head.contains("content-type: application/json") && head.contains("date: Mon"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "headers_too_large");

        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let answer = String::from_utf8(shaped_answer(bad).unwrap()).unwrap();
        assert!(
            answer.ends_with(
                "\"code\":\"bad_request\",\"message\":\"the request is not readable HTTP (request line or headers)\"}}"
            ),
            "{answer}"
        );
    }

    #[test]
    fn the_applications_answers_pass_untouched() {
        for written in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n{\"error\":{}}"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 52\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"{\"some\":\"body bytes\"}",
            b"",
        ] {
            assert_eq!(shaped_answer(written), None, "{}", String::from_utf8_lossy(written));
        }
    }
}
