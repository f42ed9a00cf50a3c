//! The HTTP server loop: accept connections and serve each with hyper (HTTP/1.1 and HTTP/2)
//! through the router, with a deadline for a request's headers (a client that opens a
//! connection and trickles its headers - slowloris - is cut off, as kube-apiserver's
//! `ReadHeaderTimeout` does), an idle deadline (a connection with no request in flight and no
//! bytes moving is closed, as kube-apiserver's `IdleTimeout`; hyper's HTTP/1.1 already applies
//! the header deadline while it waits for the next request, so this matters for HTTP/2), and a
//! graceful stop: when `signal` resolves no connection is accepted, every connection finishes
//! its requests in flight and closes.

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// The server's connection deadlines.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// How long a client may take to send a request's headers.
    pub read_header: Duration,
    /// How long a connection may sit with no request in flight and no bytes moving.
    pub idle: Duration,
}

/// Serve `router` on `listener` until `signal` resolves, then stop gracefully; resolves once
/// every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    deadlines: Deadlines,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        let _ = stop_tx.send(true);
        // Keep the sender until every connection has seen it.
        stop_tx.closed().await;
    });
    // Each connection task holds a receiver; all dropped means all closed.
    let (open_tx, open_rx) = watch::channel(());
    let mut stop = stop_rx.clone();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let activity = Activity::new();
        let in_flight = activity.clone();
        let service = router
            .clone()
            .map_request(move |req: Request<Incoming>| {
                in_flight.requests.fetch_add(1, Ordering::Relaxed);
                req.map(Body::new)
            })
            .map_response({
                let activity = activity.clone();
                move |res: axum::response::Response| {
                    // The request counts as in flight until its response body is dropped
                    // (sent or abandoned): a watch is never idle.
                    let done = RequestDone(activity.clone());
                    res.map(|b| {
                        Body::new(b.map_frame(move |f| {
                            let _ = &done;
                            f
                        }))
                    })
                }
            });
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(deadlines.read_header);
            let io = Counted {
                inner: stream,
                activity: activity.clone(),
            };
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(io),
                TowerToHyperService::new(service),
            );
            tokio::pin!(conn);
            let mut stopping = false;
            let mut tick = tokio::time::interval(idle_check_period(deadlines.idle));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = stop.wait_for(|s| *s), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = tick.tick() => {
                        let idle = activity.idle_for();
                        if !stopping && idle >= deadlines.idle {
                            tracing::debug!("closing an idle connection");
                            stopping = true;
                            conn.as_mut().graceful_shutdown();
                        } else if stopping && idle >= deadlines.idle + deadlines.idle.min(Duration::from_secs(10)) {
                            // A client that does not answer the goodbye (HTTP/2's PING after
                            // GOAWAY) is dropped.
                            tracing::debug!("dropping an idle connection that did not close");
                            break;
                        }
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// How often a connection checks whether it has been idle too long.
fn idle_check_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// A connection's requests in flight and when bytes last moved.
#[derive(Clone)]
struct Activity(Arc<ActivityInner>);

struct ActivityInner {
    epoch: Instant,
    /// Milliseconds since `epoch` when bytes last moved.
    last_ms: AtomicU64,
    requests: AtomicUsize,
}

impl std::ops::Deref for Activity {
    type Target = ActivityInner;
    fn deref(&self) -> &ActivityInner {
        &self.0
    }
}

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(ActivityInner {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        }))
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has had no request in flight and no bytes moving (zero while a
    /// request is in flight).
    fn idle_for(&self) -> Duration {
        if self.requests.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// Ends a request's time in flight when dropped (with its response body).
struct RequestDone(Activity);

impl Drop for RequestDone {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A TCP stream that notes when bytes move.
struct Counted {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
