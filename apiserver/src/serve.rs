//! The HTTP server loop: accept connections and serve each with hyper (HTTP/1.1 and HTTP/2)
//! through the router, with a deadline for a request's headers (a client that opens a
//! connection and trickles its headers - slowloris - is cut off, as kube-apiserver's
//! `ReadHeaderTimeout` does), and a graceful stop: when `signal` resolves no connection is
//! accepted, every connection finishes its requests in flight and closes.

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Serve `router` on `listener` until `signal` resolves, then stop gracefully; resolves once
/// every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    read_header_timeout: Duration,
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
        let service = router
            .clone()
            .map_request(|req: Request<Incoming>| req.map(Body::new));
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(read_header_timeout);
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            tokio::pin!(conn);
            let mut stopping = false;
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
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}
