//! The accept loop: HTTP/1.1 connections with a header-read timeout and a
//! bound on how many are open at once.
//!
//! `axum::serve` reads headers for as long as a client cares to send them
//! and accepts until the process runs out of descriptors, so a few hundred
//! idle or slow-loris connections starve everyone else. Here every
//! connection is registered; one that has no request in flight is *idle*.
//! When the bound is reached, or `accept` fails for want of descriptors,
//! the oldest idle connection is closed to make room, so a new client is
//! served while idle ones are shed. Busy connections are never cut: when
//! every connection is busy, new ones wait in the listen backlog until a
//! request finishes (the request timeout bounds how long that is).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// How connections are accepted and read.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// Longest a client may take to send a request's headers, counted from
    /// the connection's start or the end of its previous response (so it
    /// also closes keep-alive connections idle that long).
    pub header_read_timeout: Duration,
    /// Most connections open at once; past it the oldest idle one is shed.
    pub connections_max: usize,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            connections_max: 4_096,
        }
    }
}

/// One open connection: requests in flight and the signal that sheds it.
struct Conn {
    in_flight: AtomicUsize,
    shed: AtomicBool,
    notify: Notify,
}

/// Every open connection, oldest first.
#[derive(Default)]
struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicUsize,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) as u64;
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            shed: AtomicBool::new(false),
            notify: Notify::new(),
        });
        self.lock().insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Open connections not yet told to close.
    fn open(&self) -> usize {
        self.lock().values().filter(|c| !c.shed.load(Ordering::Relaxed)).count()
    }

    /// Tells the oldest idle connection to close; false if none is idle.
    fn shed_oldest_idle(&self) -> bool {
        let conns = self.lock();
        for conn in conns.values() {
            if conn.in_flight.load(Ordering::Acquire) == 0 && !conn.shed.swap(true, Ordering::AcqRel) {
                conn.notify.notify_one();
                return true;
            }
        }
        false
    }
}

/// Counts a request in flight on its connection until its response body
/// has been sent (or dropped).
struct InFlight(Arc<Conn>);

impl InFlight {
    fn new(conn: Arc<Conn>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection counted busy while it is sent.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `accept` failed for want of descriptors (or kernel memory), the
/// errors shedding an idle connection can cure.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 on Linux.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight: the listener closes at once, idle connections
/// are closed, and busy ones close after their current response.
pub async fn serve_router_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    settings: ServeSettings,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let connections_max = settings.connections_max.max(1);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the bound: make room by shedding an idle connection, or wait
        // for one to finish when all are busy.
        while registry.open() >= connections_max {
            if !registry.shed_oldest_idle() {
                tokio::select! {
                    () = &mut shutdown => return drain(listener, stop_tx, stop_rx).await,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            } else {
                tokio::task::yield_now().await;
            }
        }
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if out_of_descriptors(&e) => {
                if !registry.shed_oldest_idle() {
                    tracing::warn!(error = %e, "accept: out of descriptors and no idle connection to shed");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            // The peer went away between SYN and accept, and the like.
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let (id, conn) = registry.add();
        let registry = registry.clone();
        let builder = builder.clone();
        let router = router.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let tracked = conn.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let in_flight = InFlight::new(tracked.clone());
                let mut router = router.clone();
                async move {
                    let resp = tower::ServiceExt::oneshot(&mut router, req.map(Body::new)).await;
                    let resp = match resp {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    };
                    Ok::<_, Infallible>(resp.map(|inner| {
                        Body::new(TrackedBody {
                            inner,
                            _in_flight: in_flight,
                        })
                    }))
                }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let told = tokio::select! {
                _ = connection.as_mut() => false,
                () = conn.notify.notified() => true,
                _ = stop.wait_for(|s| *s) => true,
            };
            if told && conn.in_flight.load(Ordering::Acquire) > 0 {
                // Finish the response in flight, then close.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
            // Idle (or done): dropping the connection closes it.
            registry.remove(id);
            drop(stop);
        });
    }
    drain(listener, stop_tx, stop_rx).await
}

/// Closes the listener, tells every connection to stop, and waits for the
/// busy ones to send their last response.
async fn drain(
    listener: TcpListener,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
) -> std::io::Result<()> {
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
    Ok(())
}

/// A request body that fails once `deadline` passes before it is all read.
pub(crate) struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

/// The error a body past its read deadline ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within body_read_timeout_ms")]
pub(crate) struct BodyReadTimeout;

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyReadTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Gives the request body `timeout` to arrive in full, counted from now.
pub(crate) fn with_body_deadline(req: Request, timeout: Duration) -> Request {
    req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        })
    })
}

/// Whether `err` (or what caused it) is a body read timeout.
pub(crate) fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<BodyReadTimeout>() {
            return true;
        }
        cur = e.source();
    }
    false
}
