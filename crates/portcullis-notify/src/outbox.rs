//! The outbox: one task per sink reads the store's alarms after its place and delivers the ones it takes.
//!
//! - A sink's place (the id of the last alarm it took) is kept in the store (`notify:<sink>:after`); a new sink
//!   starts at the newest alarm, so turning one on does not send the history.
//! - At most [`BATCH`] alarms go in one message, and at most `max_per_minute` messages a minute: alarms beyond wait
//!   and go together in the next message.
//! - A failed delivery keeps the place and is tried again after a pause that doubles up to [`MAX_BACKOFF`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_store::Store;
use tokio_util::sync::CancellationToken;

use crate::{Alarm, Sink};

/// The most alarms in one message.
pub const BATCH: usize = 50;
/// The longest pause between two tries of a sink that is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The sinks and the store they read from.
pub struct Outbox {
    store: Arc<Store>,
    sinks: Vec<Sink>,
    poll: Duration,
    http: reqwest::Client,
}

/// What [`Outbox::spawn`] started: wake the tasks at once (after raising an alarm), or wait for them to end.
pub struct OutboxHandle {
    wake: Arc<tokio::sync::Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl OutboxHandle {
    /// The tasks look at the store now instead of at their next poll.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Waits for every task to end (after the shutdown token is cancelled).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn place_key(sink: &str) -> String {
    format!("notify:{sink}:after")
}

impl Outbox {
    pub fn new(store: Arc<Store>, sinks: Vec<Sink>) -> Self {
        // Redirects are not followed: a webhook's answer must not send the alarm (or its secret URL) elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Outbox { store, sinks, poll: Duration::from_secs(2), http }
    }

    /// How often the store is looked at (default 2 s).
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// One task per sink, until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> OutboxHandle {
        let wake = Arc::new(tokio::sync::Notify::new());
        let tasks = self
            .sinks
            .into_iter()
            .map(|sink| {
                let worker = SinkWorker {
                    store: self.store.clone(),
                    sink,
                    poll: self.poll,
                    http: self.http.clone(),
                    wake: wake.clone(),
                    shutdown: shutdown.clone(),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        OutboxHandle { wake, tasks }
    }
}

struct SinkWorker {
    store: Arc<Store>,
    sink: Sink,
    poll: Duration,
    http: reqwest::Client,
    wake: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
}

impl SinkWorker {
    /// The sink's place: as kept, or the newest alarm for a sink seen for the first time.
    fn place(&self) -> i64 {
        let key = place_key(&self.sink.name);
        match self.store.meta_get(&key) {
            Ok(Some(v)) => v.parse().unwrap_or(0),
            Ok(None) => {
                let newest = self.store.alerts_newest_id().unwrap_or(0);
                self.keep(newest);
                newest
            }
            Err(e) => {
                tracing::warn!(sink = %self.sink.name, "outbox: the sink's place could not be read: {e}");
                self.store.alerts_newest_id().unwrap_or(0)
            }
        }
    }

    fn keep(&self, after: i64) {
        if let Err(e) = self.store.meta_set(&place_key(&self.sink.name), &after.to_string()) {
            tracing::warn!(sink = %self.sink.name, "outbox: the sink's place could not be kept: {e}");
        }
    }

    /// Waits `pause` (or until woken); false once the outbox is shut down.
    async fn pause(&self, pause: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            () = self.wake.notified() => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Waits out a failed delivery's pause, which new alarms do not cut short; false once shut down.
    async fn back_off(&self, pause: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// The next alarms the sink takes after `after`, at most [`BATCH`], and the place once they are delivered
    /// (past the alarms it does not take, too).
    fn next(&self, after: i64) -> (Vec<Alarm>, i64) {
        let read = match self.store.alerts_after(after, BATCH * 4) {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(sink = %self.sink.name, "outbox: alarms could not be read: {e}");
                return (Vec::new(), after);
            }
        };
        let mut taken = Vec::new();
        let mut place = after;
        for a in &read {
            let alarm = Alarm::from_store(a);
            if self.sink.wants(&alarm) {
                if taken.len() == BATCH {
                    break;
                }
                taken.push(alarm);
            }
            place = a.id;
        }
        (taken, place)
    }

    async fn run(self) {
        let mut after = self.place();
        let mut backoff = FIRST_BACKOFF;
        let mut window = (Instant::now(), 0u32);
        while self.pause(self.poll).await {
            loop {
                let (alarms, place) = self.next(after);
                if alarms.is_empty() {
                    if place != after {
                        after = place;
                        self.keep(after);
                    }
                    break;
                }
                if window.0.elapsed() >= Duration::from_secs(60) {
                    window = (Instant::now(), 0);
                }
                if window.1 >= self.sink.max_per_minute.max(1) {
                    break; // they wait, and go together once the minute is over
                }
                match self.sink.deliver(&self.http, &alarms).await {
                    Ok(()) => {
                        tracing::debug!(sink = %self.sink.name, alarms = alarms.len(), "outbox: delivered");
                        after = place;
                        self.keep(after);
                        window.1 += 1;
                        backoff = FIRST_BACKOFF;
                    }
                    Err(e) => {
                        tracing::warn!(sink = %self.sink.name, retry_in = ?backoff, "outbox: delivery failed: {e}");
                        if !self.back_off(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Severity, SinkKind, WebhookFormat, WebhookSink};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A webhook receiver on loopback: answers 200 and keeps each request's JSON body.
    async fn receiver(listener: tokio::net::TcpListener, got: Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let got = got.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = conn.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    if let Ok(v) = serde_json::from_str(body) {
                        got.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                    }
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                    return;
                }
            });
        }
    }

    fn webhook(name: &str, port: u16, max_per_minute: u32) -> Sink {
        Sink {
            name: name.into(),
            kind: SinkKind::Webhook(WebhookSink {
                url: format!("http://127.0.0.1:{port}/hook"),
                format: WebhookFormat::Json,
            }),
            kinds: Vec::new(),
            min_severity: Severity::Info,
            max_per_minute,
        }
    }

    async fn until(mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..200 {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_sink_that_is_down_gets_the_alarms_once_it_is_up_in_order_and_once() {
        let store = Arc::new(Store::open_in_memory().expect("store"));
        store.alert_raise("drift", "portcullis", "before the sink existed", chrono::Utc::now()).expect("raise");
        // A port that nothing listens on yet.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let shutdown = CancellationToken::new();
        let outbox = Outbox::new(store.clone(), vec![webhook("hook", port, 100)]).with_poll(Duration::from_millis(20));
        let handle = outbox.spawn(shutdown.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..3 {
            store.alert_raise("denial_burst", "mallory", &format!("burst {i}"), chrono::Utc::now()).expect("raise");
        }
        handle.wake();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the same port");
        tokio::spawn(receiver(listener, got.clone()));
        let count = || {
            got.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|b| b["alarms"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
        };
        assert!(until(|| count() == 3).await, "retried until up: {:?}", got.lock().unwrap_or_else(|p| p.into_inner()));
        let bodies = got.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let messages: Vec<&str> = bodies
            .iter()
            .flat_map(|b| b["alarms"].as_array().into_iter().flatten())
            .filter_map(|a| a["message"].as_str())
            .collect();
        assert_eq!(messages, ["burst 0", "burst 1", "burst 2"], "the history before the sink is not sent");
        assert_eq!(bodies[0]["alarms"][0]["severity"], "high");
        shutdown.cancel();
        handle.join().await;

        // Started again: nothing is sent twice.
        let shutdown = CancellationToken::new();
        let handle = Outbox::new(store.clone(), vec![webhook("hook", port, 100)])
            .with_poll(Duration::from_millis(20))
            .spawn(shutdown.clone());
        store.alert_raise("change_applied", "ada", "block 192.0.2.7", chrono::Utc::now()).expect("raise");
        assert!(until(|| count() == 4).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(count(), 4, "each alarm once");
        shutdown.cancel();
        handle.join().await;
    }

    #[tokio::test]
    async fn past_the_rate_alarms_wait_and_go_together() {
        let store = Arc::new(Store::open_in_memory().expect("store"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        tokio::spawn(receiver(listener, got.clone()));
        let shutdown = CancellationToken::new();
        let handle = Outbox::new(store.clone(), vec![webhook("one-a-minute", port, 1)])
            .with_poll(Duration::from_millis(20))
            .spawn(shutdown.clone());
        tokio::time::sleep(Duration::from_millis(60)).await;
        store.alert_raise("drift", "portcullis", "first", chrono::Utc::now()).expect("raise");
        assert!(until(|| got.lock().unwrap_or_else(|p| p.into_inner()).len() == 1).await);
        for i in 0..5 {
            store.alert_raise("drift", "portcullis", &format!("then {i}"), chrono::Utc::now()).expect("raise");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(got.lock().unwrap_or_else(|p| p.into_inner()).len(), 1, "one message a minute");
        shutdown.cancel();
        handle.join().await;
        assert_eq!(store.meta_get("notify:one-a-minute:after").expect("meta").as_deref(), Some("1"), "the rest wait");
    }
}
